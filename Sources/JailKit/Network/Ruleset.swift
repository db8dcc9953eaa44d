/// One jail as the firewall sees it: its address, the host-side veth it sits behind, and
/// what its spec allows.
public struct NetworkJail: Sendable, Equatable, Hashable {
    public var name: String
    public var address: IPv4Address
    /// nil: the jail is IPv4 only.
    public var address6: IPv6Address?
    public var hostInterface: String
    public var ports: [PortForward]
    public var egress: NetworkSpec.Egress
    public var links: [JailLink]

    public init(name: String, address: IPv4Address, address6: IPv6Address? = nil, hostInterface: String, ports: [PortForward] = [],
                egress: NetworkSpec.Egress = .nat, links: [JailLink] = [])
    {
        self.name = name
        self.address = address
        self.address6 = address6
        self.hostInterface = hostInterface
        self.ports = ports
        self.egress = egress
        self.links = links
    }
}

/// The nftables table of one instance, rendered as `nft -f` text by pure functions.
///
/// The rules are fixed; everything per jail is an element of a set or map, so a lookup
/// costs the same for 5 or 5,000 jails and one jail's change is an element change:
/// - `jail_src` (ifname . ipv4): anti-spoofing, checked before conntrack sees the packet;
/// - `fwd_port` (proto . port → addr . port) and `fwd_addr_port` (host addr . proto .
///   port → ...): the dnat verdict maps, from the wire (prerouting) and from the host
///   itself (output: hairpin on the host's own addresses);
/// - `links` (saddr . daddr . proto . dport): the only jail-to-jail traffic let through;
/// - `egress_nat`: jails that may open connections out, masqueraded on the uplink;
/// - `egress_allow` (saddr . daddr/prefix . proto . dport) and `egress_allow_any` (saddr .
///   daddr/prefix): the allowlists of jails that may reach only some destinations;
///   `egress_masq`: every jail with some egress, for the masquerade.
/// Inbound forwards keep the client's source address (no SNAT on the way in).
///
/// With `ipv6` (a pool6 in jailctl.toml) each of these has an IPv6 twin named with a
/// "6" (`jail_src6`, `fwd_port6`, ...), used by the same fixed rules for IPv6 packets.
/// Forwards on the host's ::1 are not in the table: the kernel cannot NAT IPv6
/// loopback (see `Relay6`).
public struct Ruleset: Sendable {
    public var instance: String
    /// Interfaces masquerade applies on; empty: any interface that is not one of ours.
    public var uplinks: [String] = []
    /// IPv6 sets and rules; false: the table is IPv4 only and drops every IPv6 packet
    /// of a jail.
    public var ipv6: Bool

    public init(instance: String, uplinks: [String] = [], ipv6: Bool = false) {
        self.instance = instance
        self.uplinks = uplinks
        self.ipv6 = ipv6
    }

    public var table: String { "jailctl_\(instance)" }
    /// Every host-side veth of the instance starts with this; see `Links.interfaceName`.
    public var interfacePrefix: String { Links.interfacePrefix(instance: instance) }

    // MARK: elements

    /// The elements of each set and map for `jails`, sorted so the text is stable.
    public func elements(_ jails: [NetworkJail]) -> [String: [String]] {
        let byName = Dictionary(jails.map { ($0.name, $0.address) }, uniquingKeysWith: { a, _ in a })
        var out: [String: [String]] = Dictionary(uniqueKeysWithValues: setNames.map { ($0, []) })
        for j in jails.sorted(by: { $0.address < $1.address }) {
            out["jail_src", default: []].append("\(quote(j.hostInterface)) . \(j.address)")
            switch j.egress {
            case .none: break
            case .nat:
                out["egress_nat", default: []].append("\(j.address)")
                out["egress_masq", default: []].append("\(j.address)")
            case .allow(let rules):
                out["egress_masq", default: []].append("\(j.address)")
                for r in rules where !r.network.isV6 {
                    guard let port = r.port else {
                        out["egress_allow_any", default: []].append("\(j.address) . \(r.network)")
                        continue
                    }
                    for proto in r.proto.map({ [$0] }) ?? L4Proto.allCases {
                        out["egress_allow", default: []].append("\(j.address) . \(r.network) . \(proto.rawValue) . \(port)")
                    }
                }
            }
            for p in j.ports {
                let target = "\(j.address) . \(p.jailPort)"
                switch p.hostAddress {
                case nil: out["fwd_port", default: []].append("\(p.proto.rawValue) . \(p.hostPort) : \(target)")
                case .v4(let h)?: out["fwd_addr_port", default: []].append("\(h) . \(p.proto.rawValue) . \(p.hostPort) : \(target)")
                case .v6?: break  // elements6
                }
            }
            // A link to a jail that is not attached now has no address to name; it comes
            // back with the next render after that jail's `up`.
            for l in j.links {
                guard let peer = byName[l.jail] else { continue }
                out["links", default: []].append("\(j.address) . \(peer) . \(l.proto.rawValue) . \(l.port)")
            }
            if ipv6, let a6 = j.address6 { elements6(j, a6, peers: jails, into: &out) }
        }
        return out.mapValues { $0.sorted(by: Self.naturalOrder) }
    }

    /// The IPv6 twins of a jail's elements.
    func elements6(_ j: NetworkJail, _ a6: IPv6Address, peers: [NetworkJail], into out: inout [String: [String]]) {
        out["jail_src6", default: []].append("\(quote(j.hostInterface)) . \(a6)")
        switch j.egress {
        case .none: break
        case .nat:
            out["egress_nat6", default: []].append("\(a6)")
            out["egress_masq6", default: []].append("\(a6)")
        case .allow(let rules):
            out["egress_masq6", default: []].append("\(a6)")
            for r in rules {
                guard case .v6(let net) = r.network else { continue }
                guard let port = r.port else {
                    out["egress_allow_any6", default: []].append("\(a6) . \(net)")
                    continue
                }
                for proto in r.proto.map({ [$0] }) ?? L4Proto.allCases {
                    out["egress_allow6", default: []].append("\(a6) . \(net) . \(proto.rawValue) . \(port)")
                }
            }
        }
        for p in j.ports {
            let target = "\(a6) . \(p.jailPort)"
            switch p.hostAddress {
            case nil: out["fwd_port6", default: []].append("\(p.proto.rawValue) . \(p.hostPort) : \(target)")
            // ::1 is relayed in user space (Relay6); IPv4 host addresses are above.
            case .v6(let h)? where h != .loopback:
                out["fwd_addr_port6", default: []].append("\(h) . \(p.proto.rawValue) . \(p.hostPort) : \(target)")
            default: break
            }
        }
        let byName = Dictionary(peers.compactMap { p in p.address6.map { (p.name, $0) } }, uniquingKeysWith: { a, _ in a })
        for l in j.links {
            guard let peer = byName[l.jail] else { continue }
            out["links6", default: []].append("\(a6) . \(peer) . \(l.proto.rawValue) . \(l.port)")
        }
    }

    /// Every set and map of the table, in the order they are declared.
    static let setNames4 = ["jail_src", "fwd_port", "fwd_addr_port", "links", "egress_nat", "egress_masq",
                            "egress_allow", "egress_allow_any"]
    static let setNames6 = setNames4.map { $0 + "6" }
    var setNames: [String] { ipv6 ? Self.setNames4 + Self.setNames6 : Self.setNames4 }

    // MARK: the whole table

    /// The complete table, to be applied with `transaction(_:)`.
    public func render(jails: [NetworkJail]) -> String {
        let e = elements(jails)
        let jc = quote(interfacePrefix + "*")
        let out = uplinks.isEmpty ? "oifname != \(jc)" : "oifname { \(uplinks.sorted().map(quote).joined(separator: ", ")) }"
        var s = "table inet \(table) {\n"
        s += set("jail_src", type: "ifname . ipv4_addr", e["jail_src"])
        s += set("fwd_port", type: "inet_proto . inet_service : ipv4_addr . inet_service", e["fwd_port"], map: true)
        s += set("fwd_addr_port", type: "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service", e["fwd_addr_port"], map: true)
        s += set("links", type: "ipv4_addr . ipv4_addr . inet_proto . inet_service", e["links"])
        s += set("egress_nat", type: "ipv4_addr", e["egress_nat"])
        s += set("egress_masq", type: "ipv4_addr", e["egress_masq"])
        s += set("egress_allow", type: "ipv4_addr . ipv4_addr . inet_proto . inet_service", e["egress_allow"], interval: true)
        s += set("egress_allow_any", type: "ipv4_addr . ipv4_addr", e["egress_allow_any"], interval: true)
        if ipv6 {
            s += set("jail_src6", type: "ifname . ipv6_addr", e["jail_src6"])
            s += set("fwd_port6", type: "inet_proto . inet_service : ipv6_addr . inet_service", e["fwd_port6"], map: true)
            s += set("fwd_addr_port6", type: "ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service", e["fwd_addr_port6"], map: true)
            s += set("links6", type: "ipv6_addr . ipv6_addr . inet_proto . inet_service", e["links6"])
            s += set("egress_nat6", type: "ipv6_addr", e["egress_nat6"])
            s += set("egress_masq6", type: "ipv6_addr", e["egress_masq6"])
            s += set("egress_allow6", type: "ipv6_addr . ipv6_addr . inet_proto . inet_service", e["egress_allow6"], interval: true)
            s += set("egress_allow_any6", type: "ipv6_addr . ipv6_addr", e["egress_allow_any6"], interval: true)
        }
        s += chain("guard", hook: "type filter hook prerouting priority raw; policy accept;", ipv6 ? [
            "# a jail speaks only from its own addresses; neighbour discovery also from",
            "# its link-local (or no) address, which never leaves the link",
            "iifname \(jc) iifname . ip saddr != @jail_src drop",
            "iifname \(jc) ip6 saddr { ::, fe80::/10 } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept",
            "iifname \(jc) iifname . ip6 saddr != @jail_src6 drop",
        ] : [
            "# a jail speaks only from its own address, and only IPv4",
            "iifname \(jc) iifname . ip saddr != @jail_src drop",
            "iifname \(jc) meta nfproto ipv6 drop",
        ])
        s += chain("dnat_in", hook: "type nat hook prerouting priority dstnat; policy accept;", dnatRules)
        s += chain("dnat_local", hook: "type nat hook output priority -100; policy accept;", dnatRules)
        s += chain("forward", hook: "type filter hook forward priority filter; policy accept;", [
            "ct state established,related accept",
            "# a declared port forward: the dnat map chose the jail",
            "oifname \(jc) ct status dnat accept",
            "iifname \(jc) oifname \(jc) ip saddr . ip daddr . meta l4proto . th dport @links accept",
        ] + (ipv6 ? ["iifname \(jc) oifname \(jc) ip6 saddr . ip6 daddr . meta l4proto . th dport @links6 accept"] : []) + [
            "oifname \(jc) drop",
            "iifname \(jc) ip saddr @egress_nat \(out) accept",
            "iifname \(jc) ip saddr . ip daddr . meta l4proto . th dport @egress_allow \(out) accept",
            "iifname \(jc) ip saddr . ip daddr @egress_allow_any \(out) accept",
        ] + (ipv6 ? [
            "iifname \(jc) ip6 saddr @egress_nat6 \(out) accept",
            "iifname \(jc) ip6 saddr . ip6 daddr . meta l4proto . th dport @egress_allow6 \(out) accept",
            "iifname \(jc) ip6 saddr . ip6 daddr @egress_allow_any6 \(out) accept",
        ] : []) + [
            "iifname \(jc) drop",
        ])
        s += chain("input", hook: "type filter hook input priority filter; policy accept;", [
            "# jail to host: replies, and ping of the gateway for diagnostics",
            "iifname \(jc) ct state established,related accept",
            "iifname \(jc) icmp type echo-request accept",
        ] + (ipv6 ? [
            "# IPv6 needs neighbour discovery with the gateway to reach it at all",
            "iifname \(jc) icmpv6 type { echo-request, nd-neighbor-solicit, nd-neighbor-advert } accept",
        ] : []) + [
            "iifname \(jc) drop",
        ])
        s += chain("outbound", hook: "type nat hook postrouting priority srcnat; policy accept;", [
            "ip saddr @egress_masq \(out) masquerade",
        ] + (ipv6 ? ["ip6 saddr @egress_masq6 \(out) masquerade"] : []) + [
            "# localhost forwards: 127/8 cannot leave the host as a source",
            "ip saddr 127.0.0.0/8 oifname \(jc) masquerade",
        ])
        s += "}\n"
        return s
    }

    var dnatRules: [String] {
        [
            "fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @fwd_addr_port",
            "fib daddr type local dnat ip to meta l4proto . th dport map @fwd_port",
        ] + (ipv6 ? [
            "fib daddr type local dnat ip6 to ip6 daddr . meta l4proto . th dport map @fwd_addr_port6",
            "# not ::1: a packet from it cannot leave the host (see Relay6); refused, not lost",
            "fib daddr type local ip6 daddr != ::1 dnat ip6 to meta l4proto . th dport map @fwd_port6",
        ] : [])
    }

    /// One atomic `nft -f` transaction that replaces the table: the empty declaration
    /// makes the delete valid when the table does not exist yet.
    public func transaction(_ rendered: String) -> String {
        "table inet \(table)\ndelete table inet \(table)\n" + rendered
    }

    /// Removes the table (idempotent, one transaction).
    public var teardown: String { "table inet \(table)\ndelete table inet \(table)\n" }

    // MARK: one jail's elements

    public enum ElementChange: String, Sendable { case add, delete }

    /// Adds or removes one jail's elements without touching the rules. A link whose
    /// peer is not in `peers` is skipped, as in `render`.
    public func elementChange(_ change: ElementChange, jail: NetworkJail, peers: [NetworkJail] = []) -> String {
        let e = elements([jail] + peers.filter { $0.name != jail.name })
        let own = elements([jail])
        var s = ""
        for name in setNames {
            // Only this jail's own entries, plus its links to the given peers.
            let mine: [String] = switch name {
            case "links": (e[name] ?? []).filter { $0.hasPrefix("\(jail.address) . ") }
            case "links6": jail.address6.map { a6 in (e[name] ?? []).filter { $0.hasPrefix("\(a6) . ") } } ?? []
            default: own[name] ?? []
            }
            if mine.isEmpty { continue }
            s += "\(change.rawValue) element inet \(table) \(name) { \(mine.joined(separator: ", ")) }\n"
        }
        return s
    }

    /// What changes in the table when `jail` joins (`.add`) or leaves (`.delete`) the
    /// attached `others`: the difference of the rendered elements with and without it,
    /// so links of other jails to it come and go with it too. Empty text: nothing.
    public func elementDiff(_ change: ElementChange, jail: NetworkJail, others: [NetworkJail]) -> String {
        let without = elements(others.filter { $0.name != jail.name })
        let with = elements(others.filter { $0.name != jail.name } + [jail])
        var s = ""
        for name in setNames {
            let old = Set(without[name] ?? [])
            let delta = (with[name] ?? []).filter { !old.contains($0) }
            if delta.isEmpty { continue }
            s += "\(change.rawValue) element inet \(table) \(name) { \(delta.joined(separator: ", ")) }\n"
        }
        return s
    }

    /// The jails among `others` whose elements can change with `jail`'s: those it links
    /// to and those that link to it. `elementDiff` over them equals the diff over all.
    public static func related(to jail: NetworkJail, among others: [NetworkJail]) -> [NetworkJail] {
        let targets = Set(jail.links.map(\.jail))
        return others.filter { o in
            o.name != jail.name && (targets.contains(o.name) || o.links.contains { $0.jail == jail.name })
        }
    }

    // MARK: text helpers

    func set(_ name: String, type: String, _ elements: [String]?, map: Bool = false, interval: Bool = false) -> String {
        var s = "\t\(map ? "map" : "set") \(name) {\n\t\ttype \(type)\n" + (interval ? "\t\tflags interval\n" : "")
        if let elements, !elements.isEmpty {
            s += "\t\telements = {\n" + elements.map { "\t\t\t\($0)," }.joined(separator: "\n") + "\n\t\t}\n"
        }
        return s + "\t}\n"
    }

    func chain(_ name: String, hook: String, _ rules: [String]) -> String {
        "\tchain \(name) {\n\t\t\(hook)\n" + rules.map { "\t\t\($0)\n" }.joined() + "\t}\n"
    }

    func quote(_ s: String) -> String { "\"\(s)\"" }

    /// Numbers inside the strings compare as numbers (10.88.0.9 before 10.88.0.11).
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        let ka = key(a), kb = key(b)
        return ka.lexicographicallyPrecedes(kb) { x, y in
            switch (x, y) {
            case (.number(let m), .number(let n)): return m < n
            case (.text(let m), .text(let n)): return m < n
            case (.number, .text): return true
            case (.text, .number): return false
            }
        }
    }

    enum Piece: Equatable { case number(UInt64), text(String) }

    static func key(_ s: String) -> [Piece] {
        var out: [Piece] = []
        var digits = ""
        var text = ""
        for c in s {
            if c.isASCII && c.isNumber {
                if !text.isEmpty { out.append(.text(text)); text = "" }
                digits.append(c)
            } else {
                if !digits.isEmpty { out.append(.number(UInt64(digits) ?? 0)); digits = "" }
                text.append(c)
            }
        }
        if !text.isEmpty { out.append(.text(text)) }
        if !digits.isEmpty { out.append(.number(UInt64(digits) ?? 0)) }
        return out
    }
}
