/// A jail template, `Jails/BASE@.toml`: one file, many jails `BASE@INSTANCE`.
///
/// The file is parsed once; each instance is the same document with placeholders filled
/// in every string value, then validated by the ordinary jail schema against the
/// template's own source map, so an error in an instance names the template's file, line
/// and field. Placeholders only ever replace whole characters inside strings: an instance
/// name cannot add keys, quotes or lines.
///
/// | placeholder | value |
/// |---|---|
/// | `%i` | the instance (`alice` of `php-tenant@alice`) |
/// | `%n` | the whole jail name (`php-tenant@alice`) |
/// | `%p` | the template's name (`php-tenant`) |
/// | `%h` | the instance's host directory: `<state root>/tenants/<instance>` |
/// | `%L` | the directory of the jailctl executable (helper programs such as `jailctl-sendmail`) |
/// | `%%` | a literal `%` |
public struct JailTemplate: Sendable, Equatable {
    public var base: String
    public var file: String
    let table: [String: TOMLNode]
    let map: TOMLSourceMap

    /// What each placeholder stands for in one instance.
    public struct Values: Sendable, Equatable {
        public var instance: String
        public var base: String
        public var home: String
        public var libexec: String

        public init(instance: String, base: String, home: String, libexec: String) {
            self.instance = instance
            self.base = base
            self.home = home
            self.libexec = libexec
        }

        /// Stand-ins used to validate the template file itself.
        public static func sample(base: String) -> Values {
            Values(instance: "example", base: base, home: "/nonexistent/tenants/example", libexec: "/nonexistent/libexec")
        }

        func value(of c: Character) -> String? {
            switch c {
            case "i": return instance
            case "n": return base + "@" + instance
            case "p": return base
            case "h": return home
            case "L": return libexec
            case "%": return "%"
            default: return nil
            }
        }
    }

    public static let placeholdersDescription = "placeholders: %i instance, %n jail name, %p template name, %h the instance's host directory, %L jailctl's directory, %% a literal %"

    /// Replaces placeholders in `text`, plus the first unknown placeholder if any. An
    /// unknown one becomes "x", so the value's other checks still say something true
    /// (a path stays absolute) instead of a second error caused by the first.
    public static func expand(_ text: String, _ values: Values) -> (String, bad: String?) {
        guard text.contains("%") else { return (text, nil) }
        var out = ""
        var bad: String?
        var it = text.makeIterator()
        while let c = it.next() {
            guard c == "%" else { out.append(c); continue }
            guard let next = it.next() else {
                bad = bad ?? "%"
                out += "x"
                break
            }
            guard let v = values.value(of: next) else {
                bad = bad ?? "%\(next)"
                out += "x"
                continue
            }
            out += v
        }
        return (out, bad)
    }

    /// The document of one instance; unknown placeholders are reported at their string.
    func substitute(_ values: Values, context: inout SpecContext) -> [String: TOMLNode] {
        func walk(_ node: TOMLNode, _ path: TOMLKeyPath) -> TOMLNode {
            switch node {
            case .string(let s):
                let (expanded, bad) = Self.expand(s, values)
                if let bad {
                    context.report(path, "unknown placeholder \"\(bad)\" in \"\(s)\"", valid: Self.placeholdersDescription)
                }
                return .string(expanded)
            case .array(let a):
                return .array(a.enumerated().map { walk($1, path.appending(index: $0)) })
            case .table(let t):
                var out: [String: TOMLNode] = [:]
                for (k, v) in t { out[k] = walk(v, path.appending(k)) }
                return .table(out)
            default:
                return node
            }
        }
        var out: [String: TOMLNode] = [:]
        for (k, v) in table { out[k] = walk(v, TOMLKeyPath.root.appending(k)) }
        return out
    }
}
