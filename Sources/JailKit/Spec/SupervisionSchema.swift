/// The jail keys of supervision: restart policy, backoff, crash-loop limits, order.
enum SupervisionSchema {
    static let secondsValid = "a number of seconds greater than 0, e.g. 1 or 0.5"

    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("restart", valid: "\"always\", \"on-failure\" or \"no\"") { value, path, draft, context in
            let valid = "\"always\", \"on-failure\" or \"no\""
            guard let text = context.string(value, at: path, valid: valid) else { return }
            guard let r = SupervisionSpec.Restart(rawValue: text) else {
                context.report(path, "\"\(text)\" is not a restart policy", valid: valid)
                return
            }
            draft.supervision.restart = r
        },
        seconds("restart_delay") { $0.restartDelay = $1 },
        seconds("restart_max_delay") { $0.restartMaxDelay = $1 },
        seconds("restart_reset") { $0.restartReset = $1 },
        seconds("restart_window") { $0.restartWindow = $1 },
        SpecField("restart_limit", valid: "a number of restarts, 1-1000") { value, path, draft, context in
            if let n = IsolationSchema.integer(value, at: path, range: 1...1000, valid: "a number of restarts, 1-1000", context: &context) {
                draft.supervision.restartLimit = n
            }
        },
        SpecField("log_max_size", valid: IsolationSchema.sizeValid) { value, path, draft, context in
            if let n = IsolationSchema.size(value, at: path, context: &context) { draft.supervision.logMaxBytes = n }
        },
        SpecField("log_keep", valid: "a number of old log files to keep, 0-100") { value, path, draft, context in
            if let n = IsolationSchema.integer(value, at: path, range: 0...100, valid: "a number of old log files to keep, 0-100", context: &context) {
                draft.supervision.logKeep = n
            }
        },
        SpecField("after", valid: "an array of jail names, e.g. [\"db\"]") { value, path, draft, context in
            guard let names = context.strings(value, at: path, valid: "an array of jail names") else { return }
            var out: [String] = []
            for n in names {
                if let problem = SpecName.parse(n.text).problem {
                    context.report(n.path, problem, valid: SpecName.validDescription)
                } else if out.contains(n.text) {
                    context.report(n.path, "duplicate entry \"\(n.text)\"", valid: "list each jail once")
                } else {
                    out.append(n.text)
                }
            }
            draft.supervision.after = out
        },
    ]

    static func seconds(_ key: String, _ set: @escaping @Sendable (inout SupervisionSpec, Double) -> Void) -> SpecField<JailSchema.Draft> {
        SpecField(key, valid: secondsValid) { value, path, draft, context in
            switch value {
            case .integer(let n) where n > 0: set(&draft.supervision, Double(n))
            case .float(let x) where x > 0 && x.isFinite: set(&draft.supervision, x)
            case .integer, .float: context.report(path, "must be greater than 0", valid: secondsValid)
            default: context.wrongType(value, at: path, expected: "a number", valid: secondsValid)
            }
        }
    }
}
