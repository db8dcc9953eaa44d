/// Keys of `[tenant]` and `[tenant.php]` in a jail file.
enum TenantSchema {
    struct Draft: Sendable {
        var webroot: String?
        var socket: String?
        var phpConfig: String?
        var php = PHPPoolSpec()
    }

    static let valid = "a table [tenant] with webroot, socket, php_config and optional [tenant.php]"

    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("tenant", valid: valid) { value, path, draft, context in
            guard let table = context.table(value, at: path, valid: valid) else { return }
            var t = Draft()
            context.decode(table, at: path, fields: tenantFields, into: &t, what: "[tenant]")
            guard let w = t.webroot, let s = t.socket, let c = t.phpConfig else { return }
            var spec = TenantSpec(webroot: w, socket: s, phpConfig: c)
            spec.php = t.php
            draft.tenant = spec
        },
    ]

    static func insidePath(_ key: String, _ keyPath: WritableKeyPath<Draft, String?> & Sendable, valid: String) -> SpecField<Draft> {
        SpecField(key, required: true, valid: valid) { value, path, t, context in
            guard let text = context.string(value, at: path, valid: valid),
                  let p = context.absolutePath(text, at: path, valid: valid) else { return }
            if p == "/" {
                context.report(path, "\"\(text)\" is the jail root", valid: valid)
                return
            }
            t[keyPath: keyPath] = p
        }
    }

    static let tenantFields: [SpecField<Draft>] = [
        insidePath("webroot", \.webroot, valid: "the target of the web root volume inside the jail, e.g. \"/srv/www\""),
        insidePath("socket", \.socket, valid: "the FastCGI socket inside the jail, in a volume's target directory, e.g. \"/run/fpm/php.sock\""),
        insidePath("php_config", \.phpConfig, valid: "the target of a read-only file volume for the generated php-fpm config, e.g. \"/etc/jailctl/php-fpm.conf\""),
        SpecField("php", valid: "a table [tenant.php] with pm, max_children, memory_limit, disable_functions, slowlog_timeout, request_timeout, ping_path, open_basedir, session_dir") {
            value, path, t, context in
            guard let table = context.table(value, at: path, valid: "a table [tenant.php]") else { return }
            context.decode(table, at: path, fields: phpFields, into: &t.php, what: "[tenant.php]")
        },
    ]

    static let functionName = "names of PHP functions, e.g. [\"exec\", \"shell_exec\"]"

    static let phpFields: [SpecField<PHPPoolSpec>] = [
        SpecField("pm", valid: "\"ondemand\", \"dynamic\" or \"static\"") { value, path, p, context in
            guard let text = context.string(value, at: path, valid: "\"ondemand\", \"dynamic\" or \"static\"") else { return }
            guard let pm = PHPPoolSpec.ProcessManager(rawValue: text) else {
                context.report(path, "\"\(text)\" is not a process manager", valid: "\"ondemand\", \"dynamic\" or \"static\"")
                return
            }
            p.pm = pm
        },
        SpecField("max_children", valid: "a number of worker processes, 1-1000") { value, path, p, context in
            if let n = IsolationSchema.integer(value, at: path, range: 1...1000, valid: "a number of worker processes, 1-1000", context: &context) {
                p.maxChildren = n
            }
        },
        SpecField("memory_limit", valid: IsolationSchema.sizeValid) { value, path, p, context in
            if let n = IsolationSchema.size(value, at: path, context: &context) { p.memoryLimit = n }
        },
        SpecField("disable_functions", valid: functionName) { value, path, p, context in
            guard let names = context.strings(value, at: path, valid: functionName) else { return }
            for n in names {
                guard !n.text.isEmpty, n.text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                    context.report(n.path, "\"\(n.text)\" is not a PHP function name", valid: functionName)
                    continue
                }
                p.disableFunctions.append(n.text)
            }
        },
        SpecField("slowlog_timeout", valid: "seconds, 0-3600 (0: off)") { value, path, p, context in
            if let n = IsolationSchema.integer(value, at: path, range: 0...3600, valid: "seconds, 0-3600 (0: off)", context: &context) {
                p.slowlogTimeout = n
            }
        },
        SpecField("request_timeout", valid: "seconds, 0-86400 (0: never)") { value, path, p, context in
            if let n = IsolationSchema.integer(value, at: path, range: 0...86400, valid: "seconds, 0-86400 (0: never)", context: &context) {
                p.requestTimeout = n
            }
        },
        SpecField("ping_path", valid: "a path starting with /, e.g. \"/ping\"") { value, path, p, context in
            guard let text = context.string(value, at: path, valid: "a path starting with /"),
                  text.hasPrefix("/"), text.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                context.report(path, "not a ping path", valid: "a path starting with /, e.g. \"/ping\"")
                return
            }
            p.pingPath = text
        },
        SpecField("open_basedir", valid: "an array of absolute paths inside the jail") { value, path, p, context in
            p.openBasedir = (context.pathList(value, at: path, valid: "an array of absolute paths inside the jail", keepAsWritten: false) ?? []).map(\.text)
        },
        SpecField("session_dir", valid: "an absolute path inside the jail") { value, path, p, context in
            guard let text = context.string(value, at: path, valid: "an absolute path inside the jail"),
                  let n = context.absolutePath(text, at: path, valid: "an absolute path inside the jail") else { return }
            p.sessionDirectory = n
        },
    ]

    /// Cross-checks against the volumes: the web root, the socket's directory and the
    /// config file are volume targets, writable as each needs to be.
    static func check(_ draft: JailSchema.Draft, context: inout SpecContext) {
        guard let t = draft.tenant else { return }
        let base = TOMLKeyPath.root.appending("tenant")
        func volume(_ target: String) -> VolumeSpec? { draft.volumes.first { $0.target == target } }
        if volume(t.webroot) == nil {
            context.report(base.appending("webroot"), "\"\(t.webroot)\" is not the target of a volume",
                           valid: "add a [[volumes]] with target = \"\(t.webroot)\"")
        }
        if let v = volume(t.socketDirectory) {
            if v.readonly {
                context.report(base.appending("socket"), "the socket's directory \(t.socketDirectory) is a read-only volume",
                               valid: "php-fpm creates the socket there: readonly = false")
            }
        } else {
            context.report(base.appending("socket"), "the socket's directory \"\(t.socketDirectory)\" is not the target of a volume",
                           valid: "add a [[volumes]] with target = \"\(t.socketDirectory)\" (a per-tenant host directory)")
        }
        if let v = volume(t.phpConfig) {
            if !v.readonly {
                context.report(base.appending("php_config"), "the config volume \(t.phpConfig) is writable",
                               valid: "readonly = true: the tenant must not change its own pool")
            }
        } else {
            context.report(base.appending("php_config"), "\"\(t.phpConfig)\" is not the target of a volume",
                           valid: "add a [[volumes]] with target = \"\(t.phpConfig)\" and readonly = true")
        }
    }
}
