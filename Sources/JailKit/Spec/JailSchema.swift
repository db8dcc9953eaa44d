/// The keys of `Jails/NAME.toml` and of each of its `[[volumes]]`.
enum JailSchema {
    struct Draft: Sendable {
        var image: String?
        var command: [String]?
        var user: IDRef = JailSpec.defaultUser
        var group: IDRef?
        var hostname: String?
        var workdir: String = JailSpec.defaultWorkdir
        var env: [String: String] = [:]
        var volumes: [VolumeSpec] = []
        var stopSignal: Int32 = JailSpec.defaultStopSignal
        var stopTimeout: Double = JailSpec.defaultStopTimeout
        var description: String?
        var isolation = IsolationSpec()
        var supervision = SupervisionSpec()
        var network = NetworkSpec()
        var tenant: TenantSpec?
        var backup: BackupSpec?
        var users: [JailUserSpec] = []
        /// Where each of `users` stands in the file's [[users]] (bad entries are left out).
        var userIndices: [Int] = []
    }

    struct VolumeDraft: Sendable {
        var source: String?
        var target: String?
        var readonly = false
        var create = false
        var owner: IDRef?
        var group: IDRef?
        var mode: UInt32?
        var idmap = false
    }

    static let fields: [SpecField<Draft>] = baseFields + IsolationSchema.fields + SupervisionSchema.fields + NetworkSchema.fields
        + TenantSchema.fields
        + BackupSchema.fields
        + JailUserSchema.fields

    static let baseFields: [SpecField<Draft>] = [
        SpecField("image", required: true, valid: "the name of a file in Images/ without .toml, e.g. \"shell\"") {
            value, path, draft, context in
            guard let name = context.string(value, at: path, valid: valid("image")) else { return }
            if let problem = SpecName.parsePlain(name).problem {
                context.report(path, problem, valid: SpecName.validDescription)
                return
            }
            draft.image = name
        },
        SpecField("command", required: true, valid: "a non-empty array of strings starting with an absolute path, e.g. [\"/bin/sh\", \"-c\", \"...\"]") {
            value, path, draft, context in
            draft.command = decodeCommand(value, at: path, context: &context)
        },
        SpecField("user", valid: "a user name of the image (e.g. \"root\") or a uid 0-4294967294") {
            value, path, draft, context in
            if let user = context.idRef(value, at: path, valid: valid("user")) { draft.user = user }
        },
        SpecField("group", valid: "a group name of the image (e.g. \"nogroup\") or a gid 0-4294967294") {
            value, path, draft, context in
            draft.group = context.idRef(value, at: path, valid: valid("group"))
        },
        SpecField("hostname", valid: "1-63 letters, digits and '-', not starting or ending with '-'") {
            value, path, draft, context in
            guard let name = context.string(value, at: path, valid: valid("hostname")) else { return }
            guard SpecRules.isValidHostname(name) else {
                context.report(path, "\"\(name)\" is not a valid hostname", valid: valid("hostname"))
                return
            }
            draft.hostname = name
        },
        SpecField("workdir", valid: "an absolute path inside the jail, e.g. \"/\" or \"/srv\"") {
            value, path, draft, context in
            guard let text = context.string(value, at: path, valid: valid("workdir")),
                let normalised = context.absolutePath(text, at: path, valid: valid("workdir"))
            else { return }
            draft.workdir = normalised
        },
        SpecField("env", valid: "a table of NAME = \"value\" with NAME matching [A-Za-z_][A-Za-z0-9_]*") {
            value, path, draft, context in
            draft.env = decodeEnv(value, at: path, context: &context)
        },
        SpecField("volumes", valid: "an array of tables [[volumes]] with source, target and optional readonly") {
            value, path, draft, context in
            draft.volumes = decodeVolumes(value, at: path, context: &context)
        },
        SpecField("stop_signal", valid: "a signal name like \"SIGTERM\", \"TERM\", \"SIGQUIT\" or a number 1-64") {
            value, path, draft, context in
            if let signal = decodeSignal(value, at: path, context: &context) { draft.stopSignal = signal }
        },
        SpecField("stop_timeout", valid: "a number of seconds greater than 0, e.g. 10 or 2.5") {
            value, path, draft, context in
            if let timeout = decodeTimeout(value, at: path, context: &context) { draft.stopTimeout = timeout }
        },
        SpecField("description", valid: "a string") { value, path, draft, context in
            draft.description = context.string(value, at: path, valid: "a string")
        },
    ]

    static let volumeFields: [SpecField<VolumeDraft>] = [
        SpecField("source", required: true, valid: "an absolute path on the host, e.g. \"/srv/data\"") {
            value, path, draft, context in
            guard let text = context.string(value, at: path, valid: volumeValid("source")) else { return }
            draft.source = context.absolutePath(text, at: path, valid: volumeValid("source")).map { _ in text }
        },
        SpecField("target", required: true, valid: "an absolute path inside the jail, not / and not under /proc, /dev or /sys") {
            value, path, draft, context in
            draft.target = decodeTarget(value, at: path, context: &context)
        },
        SpecField("readonly", valid: "true or false") { value, path, draft, context in
            if let flag = context.bool(value, at: path, valid: "true or false") { draft.readonly = flag }
        },
        SpecField("create", valid: "true or false: make the source directory when it is missing") {
            value, path, draft, context in
            if let flag = context.bool(value, at: path, valid: "true or false") { draft.create = flag }
        },
        SpecField("owner", valid: "a user name of the image or a uid 0-4294967294, as the jail sees it; with create = true") {
            value, path, draft, context in
            draft.owner = context.idRef(value, at: path, valid: volumeValid("owner"))
        },
        SpecField("group", valid: "a group name of the image or a gid 0-4294967294, as the jail sees it; with create = true") {
            value, path, draft, context in
            draft.group = context.idRef(value, at: path, valid: volumeValid("group"))
        },
        SpecField("mode", valid: "octal permission bits as a string, e.g. \"0750\" (no setuid, setgid or sticky); with create = true") {
            value, path, draft, context in
            let valid = volumeValid("mode")
            guard let text = context.string(value, at: path, valid: valid) else { return }
            guard (3...4).contains(text.count), let bits = UInt32(text, radix: 8), bits <= 0o777 else {
                context.report(path, "\"\(text)\" is not octal permission bits 000-777", valid: valid)
                return
            }
            draft.mode = bits
        },
        SpecField("idmap", valid: "true or false: mount idmapped, host ids 0-65535 as the jail's 0-65535 (needs userns = true and a filesystem with idmapped mounts: ext4, xfs, btrfs, tmpfs)") {
            value, path, draft, context in
            if let flag = context.bool(value, at: path, valid: "true or false") { draft.idmap = flag }
        },
    ]

    /// What needs the whole file: an idmapped volume needs the jail's user namespace.
    static func checkIdmap(_ table: [String: TOMLNode], draft: Draft, context: inout SpecContext) {
        guard !draft.isolation.userns, case .array(let elements)? = table["volumes"] else { return }
        for (index, element) in elements.enumerated() {
            guard case .table(let v) = element, case .boolean(true)? = v["idmap"] else { continue }
            context.report(TOMLKeyPath.root.appending("volumes").appending(index: index).appending("idmap"),
                           "an idmapped volume needs the jail's user namespace",
                           valid: "add userns = true to the jail, or remove idmap")
        }
    }

    static func valid(_ key: String) -> String {
        fields.first { $0.key == key }?.valid ?? ""
    }

    static func volumeValid(_ key: String) -> String {
        volumeFields.first { $0.key == key }?.valid ?? ""
    }

    static func decodeCommand(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String]? {
        let valid = valid("command")
        guard case .array(let raw) = value else {
            context.wrongType(value, at: path, expected: "an array of strings", valid: valid)
            return nil
        }
        guard !raw.isEmpty else {
            context.report(path, "the command is empty", valid: valid)
            return nil
        }
        guard let argv = context.strings(value, at: path, valid: valid), argv.count == raw.count,
            let program = argv.first
        else { return nil }
        guard program.text.hasPrefix("/") else {
            // No PATH lookup happens at exec time, so argv[0] must say where the program is.
            context.report(program.path, "\"\(program.text)\" is not an absolute path", valid: valid)
            return nil
        }
        return argv.map(\.text)
    }

    static func decodeEnv(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [String: String] {
        let valid = valid("env")
        guard let table = context.table(value, at: path, valid: valid) else { return [:] }
        var env: [String: String] = [:]
        for key in table.keys.sorted() {
            guard let entry = table[key] else { continue }
            let entryPath = path.appending(key)
            guard SpecRules.isValidEnvKey(key) else {
                context.report(entryPath, atValue: false, "\"\(key)\" is not a valid variable name", valid: valid)
                continue
            }
            if let text = context.string(entry, at: entryPath, valid: valid) {
                env[key] = text
            }
        }
        return env
    }

    static func decodeVolumes(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> [VolumeSpec] {
        let valid = valid("volumes")
        guard case .array(let elements) = value else {
            context.wrongType(value, at: path, expected: "an array of tables", valid: valid)
            return []
        }
        var volumes: [VolumeSpec] = []
        var targets: [String: TOMLKeyPath] = [:]
        for (index, element) in elements.enumerated() {
            let elementPath = path.appending(index: index)
            guard let table = context.table(element, at: elementPath, valid: valid) else { continue }
            var draft = VolumeDraft()
            context.decode(table, at: elementPath, fields: volumeFields, into: &draft, what: "a volume")
            guard let target = draft.target else { continue }
            let targetPath = elementPath.appending("target")
            if let first = targets[target] {
                context.report(
                    targetPath, "target \"\(target)\" is already mounted by \(first)",
                    valid: "each volume needs its own target")
                continue
            }
            targets[target] = elementPath
            if !draft.create {
                // Ownership of data that exists is the sysadmin's; say so where it is asked for.
                for key in ["owner", "group", "mode"] where table[key] != nil {
                    context.report(elementPath.appending(key), atValue: false,
                                   "\(key) applies only to a directory jailctl creates",
                                   valid: "add create = true to this volume, or remove \(key)")
                }
            }
            if let source = draft.source {
                var volume = VolumeSpec(source: source, target: target, readonly: draft.readonly)
                volume.create = draft.create
                volume.owner = draft.owner
                volume.group = draft.group
                volume.mode = draft.mode ?? 0o755
                volume.idmap = draft.idmap
                volumes.append(volume)
            }
        }
        return volumes
    }

    static func decodeTarget(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> String? {
        let valid = volumeValid("target")
        guard let text = context.string(value, at: path, valid: valid) else { return nil }
        switch SpecRules.normalise(text) {
        case .relative:
            context.report(path, "\"\(text)\" is a relative path", valid: valid)
        case .escapesRoot:
            context.report(path, "\"\(text)\" escapes the jail root", valid: valid)
        case .path(let normalised):
            if normalised == "/" {
                context.report(path, "\"\(text)\" is the jail root itself", valid: valid)
            } else if let reserved = SpecRules.isReserved(normalised) {
                context.report(path, "\"\(text)\" is under \(reserved), which the runtime mounts", valid: valid)
            } else {
                return normalised
            }
        }
        return nil
    }

    static func decodeSignal(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> Int32? {
        let valid = valid("stop_signal")
        switch value {
        case .string(let name):
            guard let number = SignalName.number(for: name) else {
                context.report(path, "\"\(name)\" is not a signal name", valid: valid)
                return nil
            }
            return number
        case .integer(let number):
            guard SignalName.validRange.contains(number) else {
                context.report(path, "\(number) is not a signal number", valid: valid)
                return nil
            }
            return Int32(number)
        default:
            context.wrongType(value, at: path, expected: "a string or an integer", valid: valid)
            return nil
        }
    }

    static func decodeTimeout(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> Double? {
        let valid = valid("stop_timeout")
        let seconds: Double
        let written: String  // as the user wrote it: "0", not "0.0"
        switch value {
        case .integer(let number):
            seconds = Double(number)
            written = String(number)
        case .float(let number):
            seconds = number
            written = String(number)
        default:
            context.wrongType(value, at: path, expected: "a number", valid: valid)
            return nil
        }
        // `!(x > 0)` also catches nan; inf is refused as no timeout ever fires.
        guard seconds > 0, seconds.isFinite else {
            context.report(path, "\(written) is not a positive number of seconds", valid: valid)
            return nil
        }
        return seconds
    }
}
