/// The keys of a jail's `[network]` table, table-driven like IsolationSchema.
enum NetworkSchema {
    static let portsValid = "\"HOSTPORT:JAILPORT/PROTO\", \"HOSTADDR:HOSTPORT:JAILPORT/PROTO\" or \"[HOSTADDR6]:HOSTPORT:JAILPORT/PROTO\", e.g. \"8080:80/tcp\", \"127.0.0.1:2222:22/tcp\", \"[::1]:8443:443/tcp\", \"53:53/udp\""
    static let linksValid = "\"JAIL:PORT/PROTO\", e.g. \"db:5432/tcp\""
    static let addressValid = "\"auto\" or an IPv4 address of the pool, e.g. \"10.88.0.5\""
    static let address6Valid = "\"auto\" (the default, with a pool6 in jailctl.toml), \"none\" (IPv4 only) or an IPv6 address of the pool6, e.g. \"fd6a:6c00:0:1::5\""
    static let modeValid = "\"private\", \"none\" or \"loopback\" (the default)"
    static let egressValid = "\"nat\" (the default), \"none\", or an allowlist of \"CIDR\", \"CIDR:PORT\" or \"CIDR:PORT/PROTO\", e.g. [\"0.0.0.0/0:53/udp\", \"0.0.0.0/0:443/tcp\", \"192.0.2.0/24\"]; IPv6 networks with a port in brackets: \"[::/0]:443/tcp\", \"2001:db8::/32\""

    static let fields: [SpecField<JailSchema.Draft>] = [
        SpecField("network", valid: "a table [network] with mode, address, ports, egress, links") {
            value, path, draft, context in
            guard let table = context.table(value, at: path, valid: "a table [network]") else { return }
            context.decode(table, at: path, fields: networkFields, into: &draft.network, what: "[network]")
            // Everything but mode needs an interface; said at each key given in vain.
            if draft.network.mode != .private {
                for key in ["address", "address6", "ports", "egress", "links"] where table[key] != nil {
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
        SpecField("address6", valid: address6Valid) { value, path, n, context in
            guard let text = context.string(value, at: path, valid: address6Valid) else { return }
            switch text {
            case "auto": n.address6 = .auto
            case "none": n.address6 = NetworkSpec.Address6.none
            default:
                guard let a = IPv6Address(text), !text.contains("%") else {
                    context.report(path, "\"\(text)\" is not an IPv6 address", valid: address6Valid)
                    return
                }
                // In the pool6 and free: the lease's business, as for `address`.
                n.address6 = .fixed(a)
            }
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
            // One relay per jail serves them (Relay6), from a fixed table of 32.
            let relayed = n.ports.filter(\.isIPv6Loopback).count
            if relayed > 32 {
                context.report(path, "\(relayed) [::1] forwards; a jail may have at most 32", valid: "fewer [::1] forwards, or 127.0.0.1 ones")
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

    /// "8080:80/tcp", "127.0.0.1:2222:22/tcp", "[::1]:8443:443/tcp".
    static func parsePort(_ text: String) -> Result<PortForward, Problem> {
        let (body, protoResult) = splitProto(text)
        guard case .success(let proto) = protoResult else {
            if case .failure(let p) = protoResult { return .failure(p) }
            return .failure(Problem(message: "no protocol"))
        }
        var address: IPAddress?
        var rest = body
        if body.hasPrefix("[") {
            guard let close = body.firstIndex(of: "]") else { return .failure(Problem(message: "missing ']' after the IPv6 host address")) }
            let inside = String(body[body.index(after: body.startIndex)..<close])
            guard let a = IPv6Address(inside), !inside.contains("%") else {
                return .failure(Problem(message: "\"\(inside)\" is not an IPv6 host address"))
            }
            if let problem = hostAddressProblem(a) { return .failure(Problem(message: problem)) }
            address = .v6(a)
            rest = String(body[body.index(after: close)...])
            guard rest.hasPrefix(":") else { return .failure(Problem(message: "expected ':' after \"[\(inside)]\"")) }
            rest.removeFirst()
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let portTexts: [String]
        switch parts.count {
        case 2: portTexts = parts
        case 3 where address == nil:
            guard let a = IPv4Address(parts[0]) else { return .failure(Problem(message: "\"\(parts[0])\" is not an IPv4 host address")) }
            address = .v4(a)
            portTexts = Array(parts[1...])
        case 1: return .failure(Problem(message: "missing the jail port (HOSTPORT:JAILPORT)"))
        default:
            if address == nil, IPv6Address(parts.dropLast(2).joined(separator: ":")) != nil {
                return .failure(Problem(message: "an IPv6 host address goes in brackets, e.g. \"[::1]:8443:443/tcp\""))
            }
            return .failure(Problem(message: "too many ':'"))
        }
        guard let hostPort = port(portTexts[0]) else { return .failure(Problem(message: "host port \"\(portTexts[0])\" is not a port 1-65535")) }
        guard let jailPort = port(portTexts[1]) else { return .failure(Problem(message: "jail port \"\(portTexts[1])\" is not a port 1-65535")) }
        let forward = PortForward(hostAddress: address, hostPort: hostPort, jailPort: jailPort, proto: proto)
        // The kernel cannot NAT ::1 (no route_localnet for IPv6); jailctl relays those
        // connections in user space, which it does for TCP.
        if forward.isIPv6Loopback && proto != .tcp {
            return .failure(Problem(message: "[::1] forwards are TCP only (the kernel cannot NAT IPv6 loopback; jailctl relays TCP in user space)"))
        }
        return .success(forward)
    }

    /// Why an IPv6 address cannot be the host side of a forward; nil when it can.
    static func hostAddressProblem(_ a: IPv6Address) -> String? {
        if a == .unspecified { return "[::] is every address: leave the address out (\"HOSTPORT:JAILPORT/PROTO\")" }
        if a.isMulticast { return "\(a) is a multicast address" }
        if a.isLinkLocal { return "\(a) is link-local: it is not routed to a jail" }
        if a.isIPv4Mapped { return "\(a) is IPv4-mapped: write the IPv4 address without brackets" }
        return nil
    }

    /// "0.0.0.0/0:443/tcp", "192.0.2.0/24", "192.0.2.1:53", "[2001:db8::/32]:443/tcp",
    /// "2001:db8::/32", "[2001:db8::1]:53".
    static func parseEgress(_ text: String) -> Result<EgressRule, Problem> {
        var body = text
        var proto: L4Proto?
        if text.contains("/"), let slash = text.lastIndex(of: "/"), L4Proto(rawValue: String(text[text.index(after: slash)...])) != nil {
            proto = L4Proto(rawValue: String(text[text.index(after: slash)...]))
            body = String(text[..<slash])
        }
        let netText: String
        var portText: String?
        if body.hasPrefix("[") {
            guard let close = body.firstIndex(of: "]") else { return .failure(Problem(message: "missing ']' after the IPv6 network")) }
            netText = String(body[body.index(after: body.startIndex)..<close])
            let rest = body[body.index(after: close)...]
            guard rest.hasPrefix(":"), rest.count > 1 else {
                return .failure(Problem(message: "brackets need a port after them, e.g. \"[\(netText)]:443\""))
            }
            portText = String(rest.dropFirst())
            guard netText.contains(":") else { return .failure(Problem(message: "\"\(netText)\" is not an IPv6 address or network")) }
        } else if looksIPv6(body) {
            // An IPv6 network without brackets has no port.
            netText = body
        } else {
            let parts = body.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2 else { return .failure(Problem(message: "too many ':'")) }
            netText = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
        }
        let network: IPNetwork
        switch parseNetwork(netText) {
        case .failure(let p): return .failure(p)
        case .success(let n): network = n
        }
        var port: UInt16?
        if let portText {
            guard let p = Self.port(portText) else { return .failure(Problem(message: "port \"\(portText)\" is not a port 1-65535")) }
            port = p
        } else if proto != nil {
            return .failure(Problem(message: network.isV6 ? "a protocol needs a port ([CIDR6]:PORT/PROTO)" : "a protocol needs a port (CIDR:PORT/PROTO)"))
        }
        return .success(EgressRule(network: network, port: port, proto: proto))
    }

    /// IPv6 text rather than a mistyped "A:B:C": a "::", a prefix after two colons or
    /// more, or all eight groups.
    static func looksIPv6(_ text: String) -> Bool {
        let colons = text.filter { $0 == ":" }.count
        return text.contains("::") || (text.contains("/") && colons > 1) || colons >= 7
    }

    /// "192.0.2.0/24", "192.0.2.1" (its /32), "2001:db8::/32", "2001:db8::1" (its /128).
    static func parseNetwork(_ text: String) -> Result<IPNetwork, Problem> {
        if text.contains(":") {
            if text.contains("/") {
                guard let net = IPv6Network(text) else {
                    return .failure(Problem(message: "\"\(text)\" is not an IPv6 network with its host bits zero"))
                }
                return .success(.v6(net))
            }
            guard let a = IPv6Address(text), !text.contains("%") else {
                return .failure(Problem(message: "\"\(text)\" is not an IPv6 address or network"))
            }
            return .success(.v6(IPv6Network(base: a, prefix: 128)))
        }
        if text.contains("/") {
            guard let net = IPv4Network(text) else {
                return .failure(Problem(message: "\"\(text)\" is not an IPv4 network with its host bits zero"))
            }
            return .success(.v4(net))
        }
        guard let a = IPv4Address(text), let net = IPv4Network("\(a)/32") else {
            return .failure(Problem(message: "\"\(text)\" is not an IPv4 address or network"))
        }
        return .success(.v4(net))
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
