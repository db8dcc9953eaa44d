/// The keys of a jail's `[network]` table, table-driven like IsolationSchema.
enum NetworkSchema {
    static let portsValid = "\"HOSTPORT:JAILPORT/PROTO\" or \"HOSTADDR:HOSTPORT:JAILPORT/PROTO\", e.g. \"8080:80/tcp\", \"127.0.0.1:2222:22/tcp\", \"53:53/udp\""
    static let linksValid = "\"JAIL:PORT/PROTO\", e.g. \"db:5432/tcp\""
    static let addressValid = "\"auto\" or an IPv4 address of the pool, e.g. \"10.88.0.5\""
    static let modeValid = "\"private\", \"none\" or \"loopback\" (the default)"
    static let egressValid = "\"nat\" (the default), \"none\", or an allowlist of \"CIDR\", \"CIDR:PORT\" or \"CIDR:PORT/PROTO\", e.g. [\"0.0.0.0/0:53/udp\", \"0.0.0.0/0:443/tcp\", \"192.0.2.0/24\"]"

    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("network", valid: "a table [network] with mode, address, ports, egress, links") {
            value, path, draft, context in
            guard let table = context.table(value, at: path, valid: "a table [network]") else { return }
            context.decode(table, at: path, fields: networkFields, into: &draft.network, what: "[network]")
            // Everything but mode needs an interface; said at each key given in vain.
            if draft.network.mode != .private {
                for key in ["address", "ports", "egress", "links"] where table[key] != nil {
                    context.report(path.appending(key), atValue: false,
                                   "\(key) needs an address of the jail's own, but mode is \"\(draft.network.mode.rawValue)\"",
                                   valid: "set mode = \"private\" in [network], or remove \(key)")
                }
            }
        }
    ]

    static let networkFields: [SpecField<NetworkSpec>] = [
        SpecField("mode", valid: modeValid) { value, path, n, context in
            guard let text = context.string(value, at: path, valid: modeValid) else { return }
            guard let mode = NetworkSpec.Mode(rawValue: text) else {
                let hint = SpecRules.suggestion(for: text, among: NetworkSpec.Mode.allCases.map(\.rawValue)).map { "did you mean \"\($0)\"?" }
                context.report(path, "\"\(text)\" is not a network mode", valid: hint ?? modeValid)
                return
            }
            n.mode = mode
        },
        SpecField("address", valid: addressValid) { value, path, n, context in
            guard let text = context.string(value, at: path, valid: addressValid) else { return }
            if text == "auto" { n.address = .auto; return }
            guard let a = IPv4Address(text) else {
                context.report(path, "\"\(text)\" is not an IPv4 address", valid: addressValid)
                return
            }
            // Whether it lies in the pool and is free is the lease's business (IPAM), which
            // knows the host's pool and the other jails.
            n.address = .fixed(a)
        },
        SpecField("egress", valid: egressValid) { value, path, n, context in
            if case .array = value {
                guard let entries = context.strings(value, at: path, valid: egressValid) else { return }
                var rules: [(rule: EgressRule, index: Int)] = []
                for (i, e) in entries.enumerated() {
                    switch parseEgress(e.text) {
                    case .failure(let problem): context.report(e.path, "\"\(e.text)\": \(problem.message)", valid: egressValid)
                    case .success(let r):
                        // The kernel refuses overlapping intervals in one set: an entry
                        // inside another's network for the same port is an error here,
                        // not a failing `up` (or a table no jail can change) later.
                        if let other = rules.first(where: { $0.rule.collides(with: r) }) {
                            context.report(e.path, "\"\(e.text)\" overlaps network.egress[\(other.index)] \"\(other.rule.description)\"",
                                           valid: "one entry per destination; drop the narrower one")
                        } else {
                            rules.append((r, i))
                        }
                    }
                }
                n.egress = .allow(rules.map(\.rule))
                return
            }
            guard let text = context.string(value, at: path, valid: egressValid) else { return }
            switch text {
            case "nat": n.egress = .nat
            case "none": n.egress = .none
            default: context.report(path, "\"\(text)\" is not an egress policy", valid: egressValid)
            }
        },
        SpecField("ports", valid: portsValid) { value, path, n, context in
            guard let entries = context.strings(value, at: path, valid: portsValid) else { return }
            var seen: [String: TOMLKeyPath] = [:]
            for e in entries {
                switch parsePort(e.text) {
                case .failure(let problem):
                    context.report(e.path, "\"\(e.text)\": \(problem.message)", valid: portsValid)
                case .success(let p):
                    // Two forwards of one host port would make the dnat map ambiguous.
                    let key = "\(p.hostAddress.map { "\($0)" } ?? "*"):\(p.hostPort)/\(p.proto.rawValue)"
                    if let first = seen[key] {
                        context.report(e.path, "host port \(p.hostPort)/\(p.proto.rawValue) is already forwarded by \(first)", valid: "forward each host port once")
                        continue
                    }
                    seen[key] = e.path
                    n.ports.append(p)
                }
            }
        },
        SpecField("links", valid: linksValid) { value, path, n, context in
            guard let entries = context.strings(value, at: path, valid: linksValid) else { return }
            for e in entries {
                switch parseLink(e.text) {
                case .failure(let problem): context.report(e.path, "\"\(e.text)\": \(problem.message)", valid: linksValid)
                case .success(let l):
                    if n.links.contains(l) {
                        context.report(e.path, "duplicate link \"\(e.text)\"", valid: "list each link once")
                    } else {
                        n.links.append(l)
                    }
                }
            }
        },
    ]

    struct Problem: Error { let message: String }

    /// "8080:80/tcp", "127.0.0.1:2222:22/tcp".
    static func parsePort(_ text: String) -> Result<PortForward, Problem> {
        let (body, protoResult) = splitProto(text)
        guard case .success(let proto) = protoResult else {
            if case .failure(let p) = protoResult { return .failure(p) }
            return .failure(Problem(message: "no protocol"))
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var address: IPv4Address?
        let portTexts: [String]
        switch parts.count {
        case 2: portTexts = parts
        case 3:
            guard let a = IPv4Address(parts[0]) else { return .failure(Problem(message: "\"\(parts[0])\" is not an IPv4 host address")) }
            address = a
            portTexts = Array(parts[1...])
        case 1: return .failure(Problem(message: "missing the jail port (HOSTPORT:JAILPORT)"))
        default: return .failure(Problem(message: "too many ':'"))
        }
        guard let hostPort = port(portTexts[0]) else { return .failure(Problem(message: "host port \"\(portTexts[0])\" is not a port 1-65535")) }
        guard let jailPort = port(portTexts[1]) else { return .failure(Problem(message: "jail port \"\(portTexts[1])\" is not a port 1-65535")) }
        return .success(PortForward(hostAddress: address, hostPort: hostPort, jailPort: jailPort, proto: proto))
    }

    /// "0.0.0.0/0:443/tcp", "192.0.2.0/24", "192.0.2.1:53".
    static func parseEgress(_ text: String) -> Result<EgressRule, Problem> {
        var body = text
        var proto: L4Proto?
        if text.contains("/"), let slash = text.lastIndex(of: "/"), L4Proto(rawValue: String(text[text.index(after: slash)...])) != nil {
            proto = L4Proto(rawValue: String(text[text.index(after: slash)...]))
            body = String(text[..<slash])
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2 else { return .failure(Problem(message: "too many ':'")) }
        let network: IPv4Network
        if parts[0].contains("/") {
            guard let net = IPv4Network(parts[0]) else {
                return .failure(Problem(message: "\"\(parts[0])\" is not an IPv4 network with its host bits zero"))
            }
            network = net
        } else {
            guard let a = IPv4Address(parts[0]), let net = IPv4Network("\(a)/32") else {
                return .failure(Problem(message: "\"\(parts[0])\" is not an IPv4 address or network"))
            }
            network = net
        }
        var port: UInt16?
        if parts.count == 2 {
            guard let p = Self.port(parts[1]) else { return .failure(Problem(message: "port \"\(parts[1])\" is not a port 1-65535")) }
            port = p
        } else if proto != nil {
            return .failure(Problem(message: "a protocol needs a port (CIDR:PORT/PROTO)"))
        }
        return .success(EgressRule(network: network, port: port, proto: proto))
    }

    /// "db:5432/tcp".
    static func parseLink(_ text: String) -> Result<JailLink, Problem> {
        let (body, protoResult) = splitProto(text)
        guard case .success(let proto) = protoResult else {
            if case .failure(let p) = protoResult { return .failure(p) }
            return .failure(Problem(message: "no protocol"))
        }
        let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 else { return .failure(Problem(message: "expected one JAIL:PORT")) }
        if let problem = SpecName.parse(parts[0]).problem { return .failure(Problem(message: "jail \"\(parts[0])\": \(problem)")) }
        guard let p = port(parts[1]) else { return .failure(Problem(message: "port \"\(parts[1])\" is not a port 1-65535")) }
        return .success(JailLink(jail: parts[0], port: p, proto: proto))
    }

    static func splitProto(_ text: String) -> (String, Result<L4Proto, Problem>) {
        guard let slash = text.lastIndex(of: "/") else { return (text, .failure(Problem(message: "missing the protocol (/tcp or /udp)"))) }
        let name = String(text[text.index(after: slash)...])
        guard let proto = L4Proto(rawValue: name) else { return (text, .failure(Problem(message: "\"\(name)\" is not a protocol (tcp or udp)"))) }
        return (String(text[..<slash]), .success(proto))
    }

    static func port(_ text: String) -> UInt16? {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), !(text.count > 1 && text.hasPrefix("0")),
              let n = Int(text), (1...65535).contains(n) else { return nil }
        return UInt16(n)
    }
}
