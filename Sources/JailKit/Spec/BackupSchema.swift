/// The keys of a jail's `[backup]` table.
enum BackupSchema {
    static let durationValid = "a number of seconds, or a string like \"48h\", \"90m\", \"2d\""

    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("backup", valid: "a table [backup] with directory, max_age, quota, keep_daily, keep_weekly, keep_monthly") {
            value, path, draft, context in
            guard let table = context.table(value, at: path, valid: "a table [backup]") else { return }
            var b = BackupDraft()
            context.decode(table, at: path, fields: backupFields, into: &b, what: "[backup]")
            guard let dir = b.directory else { return }
            var spec = BackupSpec(directory: dir)
            spec.maxAge = b.maxAge ?? spec.maxAge
            spec.quota = b.quota
            spec.keepDaily = b.keepDaily ?? spec.keepDaily
            spec.keepWeekly = b.keepWeekly ?? spec.keepWeekly
            spec.keepMonthly = b.keepMonthly ?? spec.keepMonthly
            draft.backup = spec
        }
    ]

    struct BackupDraft: Sendable {
        var directory: String?
        var maxAge: Double?
        var quota: UInt64?
        var keepDaily: Int?
        var keepWeekly: Int?
        var keepMonthly: Int?
    }

    static let backupFields: [SpecField<BackupDraft>] = [
        SpecField("directory", required: true, valid: "an absolute host path for the backup area, e.g. \"/srv/backup\"") {
            value, path, b, context in
            let valid = "an absolute host path for the backup area, e.g. \"/srv/backup\""
            guard let text = context.string(value, at: path, valid: valid),
                let normalised = context.absolutePath(text, at: path, valid: valid)
            else { return }
            if normalised == "/" {
                context.report(path, "the backup area cannot be the host's root", valid: valid)
                return
            }
            b.directory = normalised
        },
        SpecField("max_age", valid: durationValid) { value, path, b, context in
            b.maxAge = duration(value, at: path, context: &context)
        },
        SpecField("quota", valid: IsolationSchema.sizeValid) { value, path, b, context in
            b.quota = IsolationSchema.size(value, at: path, context: &context)
        },
        keep("keep_daily") { $0.keepDaily = $1 },
        keep("keep_weekly") { $0.keepWeekly = $1 },
        keep("keep_monthly") { $0.keepMonthly = $1 },
    ]

    static func keep(_ key: String, _ set: @escaping @Sendable (inout BackupDraft, Int) -> Void) -> SpecField<BackupDraft> {
        let valid = "a number of snapshots to keep, 0-1000"
        return SpecField(key, valid: valid) { value, path, b, context in
            if let n = IsolationSchema.integer(value, at: path, range: 0...1000, valid: valid, context: &context) { set(&b, n) }
        }
    }

    static func duration(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> Double? {
        switch value {
        case .integer(let n) where n > 0: return Double(n)
        case .float(let x) where x > 0 && x.isFinite: return x
        case .string(let text):
            if let s = parseDuration(text) { return s }
            context.report(path, "\"\(text)\" is not a duration", valid: durationValid)
        case .integer, .float: context.report(path, "must be greater than 0", valid: durationValid)
        default: context.wrongType(value, at: path, expected: "a number or a string", valid: durationValid)
        }
        return nil
    }

    /// "48h" → 172800; units s, m, h, d, w.
    static func parseDuration(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
        guard let last = text.last, let unit = units[last] else { return nil }
        guard let n = Double(text.dropLast()), n > 0, n.isFinite, text.dropLast().allSatisfy({ $0.isNumber || $0 == "." })
        else { return nil }
        return n * unit
    }
}
