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
        healthField,
    ]

    struct HealthDraft: Sendable {
        var checks: [(String, HealthSpec.Check)] = []
        var port: UInt16?
        var socket: String?
        var interval: Double?
        var timeout: Double?
        var retries: Int?
        var startPeriod: Double?
    }

    static let healthValid = "a table [health] with one of exec = [argv], tcp = PORT, http = \"/path\", fcgi = \"/path\"; port or socket for http and fcgi; interval, timeout, retries, start_period"
    static let pathValid = "an absolute URL path, e.g. \"/ping\""

    static let healthField = SpecField<JailSchema.Draft>("health", valid: healthValid) { value, path, draft, context in
        guard let table = context.table(value, at: path, valid: healthValid) else { return }
        var h = HealthDraft()
        context.decode(table, at: path, fields: healthFields, into: &h, what: "[health]")
        guard h.checks.count == 1, let (_, check) = h.checks.first else {
            // A check key with a bad value has its own error already.
            if h.checks.isEmpty && ["exec", "tcp", "http", "fcgi"].contains(where: { table[$0] != nil }) { return }
            context.report(path, atValue: false, h.checks.isEmpty ? "no check" : "more than one check: \(h.checks.map(\.0).joined(separator: ", "))",
                           valid: "exactly one of exec, tcp, http, fcgi")
            return
        }
        var endpoint: HealthSpec.Endpoint?
        switch (check, h.port, h.socket) {
        case (_, .some, .some):
            context.report(path.appending("socket"), atValue: false, "both port and socket", valid: "one of them")
            return
        case (.http, nil, nil), (.fcgi, nil, nil):
            context.report(path, atValue: false, "http and fcgi checks need port or socket", valid: "port = 9000 or socket = \"/run/php/fpm.sock\"")
            return
        case (.exec, .some, _), (.exec, _, .some), (.tcp, .some, _), (.tcp, _, .some):
            context.report(path.appending(h.port != nil ? "port" : "socket"), atValue: false,
                           "only http and fcgi checks connect to a port or socket", valid: "remove it")
            return
        case (_, let port?, nil): endpoint = .port(port)
        case (_, nil, let socket?): endpoint = .socket(socket)
        default: break
        }
        var spec = HealthSpec(check: check, endpoint: endpoint)
        spec.interval = h.interval ?? spec.interval
        // The default timeout never outlasts a short interval; a longer one given on
        // purpose only delays the next check (one check runs at a time).
        spec.timeout = h.timeout ?? min(spec.timeout, spec.interval)
        spec.retries = h.retries ?? spec.retries
        spec.startPeriod = h.startPeriod ?? spec.startPeriod
        draft.supervision.health = spec
    }

    static func healthSeconds(_ key: String, zero: Bool = false, _ set: @escaping @Sendable (inout HealthDraft, Double) -> Void) -> SpecField<HealthDraft> {
        let valid = zero ? "a number of seconds, 0 or more" : secondsValid
        return SpecField(key, valid: valid) { value, path, h, context in
            switch value {
            case .integer(let n) where n > 0 || (zero && n == 0): set(&h, Double(n))
            case .float(let x) where (x > 0 || (zero && x == 0)) && x.isFinite: set(&h, x)
            case .integer, .float: context.report(path, zero ? "must be 0 or more" : "must be greater than 0", valid: valid)
            default: context.wrongType(value, at: path, expected: "a number", valid: valid)
            }
        }
    }

    static func urlPath(_ value: TOMLNode, at path: TOMLKeyPath, context: inout SpecContext) -> String? {
        guard let text = context.string(value, at: path, valid: pathValid) else { return nil }
        // The probe writes it into a request line and FastCGI params: no spaces or controls.
        guard text.hasPrefix("/"), text.utf8.count <= 100, text.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            context.report(path, "\"\(text)\" is not an absolute URL path of up to 100 printable characters", valid: pathValid)
            return nil
        }
        return text
    }

    static let healthFields: [SpecField<HealthDraft>] = [
        SpecField("exec", valid: "a non-empty array of strings starting with an absolute path inside the jail") { value, path, h, context in
            if let argv = JailSchema.decodeCommand(value, at: path, context: &context) { h.checks.append(("exec", .exec(argv))) }
        },
        SpecField("tcp", valid: "a port 1-65535 of the jail") { value, path, h, context in
            if let p = IsolationSchema.integer(value, at: path, range: 1...65535, valid: "a port 1-65535", context: &context) {
                h.checks.append(("tcp", .tcp(port: UInt16(p))))
            }
        },
        SpecField("http", valid: pathValid) { value, path, h, context in
            if let p = urlPath(value, at: path, context: &context) { h.checks.append(("http", .http(path: p))) }
        },
        SpecField("fcgi", valid: pathValid) { value, path, h, context in
            if let p = urlPath(value, at: path, context: &context) { h.checks.append(("fcgi", .fcgi(path: p))) }
        },
        SpecField("port", valid: "a port 1-65535 of the jail") { value, path, h, context in
            if let p = IsolationSchema.integer(value, at: path, range: 1...65535, valid: "a port 1-65535", context: &context) { h.port = UInt16(p) }
        },
        SpecField("socket", valid: "an absolute path of a Unix socket inside the jail, e.g. \"/run/php/fpm.sock\"") { value, path, h, context in
            let valid = "an absolute path inside the jail, at most 80 bytes"
            guard let text = context.string(value, at: path, valid: valid),
                  let normalised = context.absolutePath(text, at: path, valid: valid) else { return }
            // It is reached as /proc/PID/root + path, within sun_path's 108 bytes.
            guard normalised.utf8.count <= 80 else {
                context.report(path, "the path is longer than 80 bytes", valid: valid)
                return
            }
            h.socket = normalised
        },
        healthSeconds("interval") { $0.interval = $1 },
        healthSeconds("timeout") { $0.timeout = $1 },
        healthSeconds("start_period", zero: true) { $0.startPeriod = $1 },
        SpecField("retries", valid: "a number of failed checks in a row, 1-100") { value, path, h, context in
            if let n = IsolationSchema.integer(value, at: path, range: 1...100, valid: "a number of failed checks in a row, 1-100", context: &context) {
                h.retries = n
            }
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
