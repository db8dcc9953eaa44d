#if canImport(Glibc)
import Glibc
#endif

/// The `[network]` table of a jail: how it is connected, which host ports reach it,
/// where it may go. The default keeps today's behaviour: a private net namespace with
/// loopback only.
public struct NetworkSpec: Sendable, Equatable, Hashable {
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// A routed veth pair with a leased address, forwards, links and egress.
        case `private`
        /// No network at all. The launcher brings loopback up in every net namespace
        /// today, so at the kernel level this equals `loopback` until it learns not to.
        case none
        /// Loopback only (the default).
        case loopback
    }

    public enum Address: Sendable, Equatable, Hashable {
        case auto
        case fixed(IPv4Address)
    }

    /// The jail's IPv6 address; only used when jailctl.toml has a `pool6`.
    public enum Address6: Sendable, Equatable, Hashable {
        case auto
        case fixed(IPv6Address)
        /// IPv4 only, even with a pool6.
        case none
    }

    public enum Egress: Sendable, Hashable {
        /// Masqueraded out of the uplink.
        case nat
        /// No new connections leave the jail (replies to forwarded ports still do).
        case none
        /// Masqueraded out of the uplink, but only to these destinations.
        case allow([EgressRule])
    }

    public var mode: Mode = .loopback
    public var address: Address = .auto
    public var address6: Address6 = .auto
    public var ports: [PortForward] = []
    public var egress: Egress = .nat
    public var links: [JailLink] = []

    public init() {}
}

public enum L4Proto: String, Sendable, Hashable, CaseIterable, Comparable {
    case tcp, udp
    public static func < (a: L4Proto, b: L4Proto) -> Bool { a.rawValue < b.rawValue }
}

/// One entry of an egress allowlist: `"CIDR"` (anything to that network),
/// `"CIDR:PORT"` (tcp and udp) or `"CIDR:PORT/PROTO"`; a bare address is its /32.
public struct EgressRule: Sendable, Equatable, Hashable {
    public var network: IPNetwork
    public var port: UInt16?
    /// nil with a port: both tcp and udp.
    public var proto: L4Proto?

    public init(network: IPNetwork, port: UInt16? = nil, proto: L4Proto? = nil) {
        self.network = network
        self.port = port
        self.proto = proto
    }

    public init(network: IPv4Network, port: UInt16? = nil, proto: L4Proto? = nil) {
        self.init(network: .v4(network), port: port, proto: proto)
    }

    /// An IPv6 network with a port is bracketed, as in "[2001:db8::/32]:443/tcp".
    public var description: String {
        let net = port != nil && network.isV6 ? "[\(network)]" : "\(network)"
        return net + (port.map { ":\($0)" } ?? "") + (proto.map { "/\($0.rawValue)" } ?? "")
    }

    /// Both would put overlapping intervals into one nftables set: port-less entries
    /// whose networks overlap, or entries for one port and protocol (nil is both) whose
    /// networks overlap.
    func collides(with o: EgressRule) -> Bool {
        let networks = network.overlaps(o.network)
        switch (port, o.port) {
        case (nil, nil): return networks
        case (let a?, let b?): return networks && a == b && (proto == nil || o.proto == nil || proto == o.proto)
        default: return false
        }
    }
}

/// `"[HOSTADDR:]HOSTPORT:JAILPORT/PROTO"`.
public struct PortForward: Sendable, Equatable, Hashable {
    /// nil: every local address of the host, IPv4 and (for jails with one) IPv6.
    public var hostAddress: IPAddress?
    public var hostPort: UInt16
    public var jailPort: UInt16
    public var proto: L4Proto

    public init(hostAddress: IPAddress? = nil, hostPort: UInt16, jailPort: UInt16, proto: L4Proto) {
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.jailPort = jailPort
        self.proto = proto
    }

    public init(hostAddress: IPv4Address?, hostPort: UInt16, jailPort: UInt16, proto: L4Proto) {
        self.init(hostAddress: hostAddress.map { IPAddress.v4($0) }, hostPort: hostPort, jailPort: jailPort, proto: proto)
    }

    /// IPv6 host addresses in brackets: "[::1]:8443:443/tcp".
    public var description: String {
        let host: String = switch hostAddress {
        case nil: ""
        case .v4(let a)?: "\(a):"
        case .v6(let a)?: "[\(a)]:"
        }
        return host + "\(hostPort):\(jailPort)/\(proto.rawValue)"
    }

    /// A forward from the host's ::1: the kernel cannot NAT it (no route_localnet for
    /// IPv6), so jailctl relays it in user space.
    public var isIPv6Loopback: Bool { hostAddress == .v6(.loopback) }
}

/// `"JAIL:PORT/PROTO"`: this jail may open connections to that port of that jail.
public struct JailLink: Sendable, Equatable, Hashable {
    public var jail: String
    public var port: UInt16
    public var proto: L4Proto

    public init(jail: String, port: UInt16, proto: L4Proto) {
        self.jail = jail
        self.port = port
        self.proto = proto
    }
}

/// An IPv4 address as a host-order integer; prints and parses dotted quads.
public struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var value: UInt32
    public init(_ value: UInt32) { self.value = value }

    /// Exactly four decimal octets 0-255, no leading zeros (which some tools read as
    /// octal), nothing around them.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(p.count > 1 && p.hasPrefix("0")), let n = UInt32(p), n <= 255 else { return nil }
            v = v << 8 | n
        }
        value = v
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 255).\(value >> 8 & 255).\(value & 255)"
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

/// An IPv4 prefix such as 10.88.0.0/16, host bits zero.
public struct IPv4Network: Sendable, Hashable, CustomStringConvertible {
    public var base: IPv4Address
    public var prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(String(parts[0])), let p = Int(parts[1]), (0...32).contains(p) else { return nil }
        let mask: UInt32 = p == 0 ? 0 : ~UInt32(0) << UInt32(32 - p)
        guard a.value & ~mask == 0 else { return nil }
        base = a
        prefix = p
    }

    public var size: UInt64 { UInt64(1) << UInt64(32 - prefix) }

    public func contains(_ a: IPv4Address) -> Bool {
        UInt64(a.value) >= UInt64(base.value) && UInt64(a.value) < UInt64(base.value) + size
    }

    public var description: String { "\(base)/\(prefix)" }
}

/// An IPv6 address, printed in the RFC 5952 form (inet_ntop).
public struct IPv6Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Any textual form inet_pton accepts, without zone (%eth0) or brackets; an
    /// IPv4-mapped form like ::ffff:1.2.3.4 parses too (callers refuse what they must).
    public init?(_ text: String) {
        guard !text.isEmpty, text.count <= 45, text.contains(":") else { return nil }
        var raw = in6_addr()
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: raw) { Array($0) }
        self.init(bytes: bytes)
    }

    init(bytes: [UInt8]) {
        var h: UInt64 = 0, l: UInt64 = 0
        for i in 0..<8 { h = h << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { l = l << 8 | UInt64(bytes[i]) }
        high = h
        low = l
    }

    /// Network byte order.
    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
    }

    public static let loopback = IPv6Address(high: 0, low: 1)
    public static let unspecified = IPv6Address(high: 0, low: 0)

    public var isLinkLocal: Bool { high >> 54 == 0x3FA }  // fe80::/10
    public var isMulticast: Bool { high >> 56 == 0xFF }
    public var isUniqueLocal: Bool { high >> 57 == 0x7E }  // fc00::/7
    /// ::ffff:a.b.c.d: IPv4 in IPv6 clothes.
    public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xFFFF }

    public var description: String {
        var raw = in6_addr()
        let b = bytes
        withUnsafeMutableBytes(of: &raw) { p in for i in 0..<16 { p[i] = b[i] } }
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, &raw, &buf, socklen_t(buf.count)) != nil else { return "?" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool { (a.high, a.low) < (b.high, b.low) }

    /// The address `n` above this one (wrapping within 128 bits).
    public func adding(_ n: UInt64) -> IPv6Address {
        let (l, carry) = low.addingReportingOverflow(n)
        return IPv6Address(high: carry ? high &+ 1 : high, low: l)
    }
}

/// An IPv6 prefix such as fd6a:6c00:0:1::/64, host bits zero.
public struct IPv6Network: Sendable, Hashable, CustomStringConvertible {
    public var base: IPv6Address
    public var prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv6Address(String(parts[0])), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
              let p = Int(parts[1]), (0...128).contains(p) else { return nil }
        let n = IPv6Network(base: a, prefix: p)
        guard n.base == a else { return nil }
        self = n
    }

    /// `a` with its host bits cleared.
    init(base a: IPv6Address, prefix p: Int) {
        let (hm, lm) = Self.mask(p)
        base = IPv6Address(high: a.high & hm, low: a.low & lm)
        prefix = p
    }

    static func mask(_ p: Int) -> (UInt64, UInt64) {
        let hm: UInt64 = p >= 64 ? ~0 : (p == 0 ? 0 : ~UInt64(0) << UInt64(64 - p))
        let lm: UInt64 = p <= 64 ? 0 : (p == 128 ? ~0 : ~UInt64(0) << UInt64(128 - p))
        return (hm, lm)
    }

    public func contains(_ a: IPv6Address) -> Bool {
        let (hm, lm) = Self.mask(prefix)
        return a.high & hm == base.high && a.low & lm == base.low
    }

    public var description: String { "\(base)/\(prefix)" }
}

/// An address of either family.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    public init?(_ text: String) {
        if let a = IPv4Address(text) { self = .v4(a) } else if let a = IPv6Address(text) { self = .v6(a) } else { return nil }
    }

    public var description: String {
        switch self {
        case .v4(let a): "\(a)"
        case .v6(let a): "\(a)"
        }
    }
}

/// A network of either family (egress allowlists).
public enum IPNetwork: Sendable, Hashable, CustomStringConvertible {
    case v4(IPv4Network)
    case v6(IPv6Network)

    public var isV6: Bool { if case .v6 = self { true } else { false } }

    /// Networks of one family that share an address (prefixes nest or are equal).
    public func overlaps(_ o: IPNetwork) -> Bool {
        switch (self, o) {
        case (.v4(let a), .v4(let b)): a.contains(b.base) || b.contains(a.base)
        case (.v6(let a), .v6(let b)): a.contains(b.base) || b.contains(a.base)
        default: false
        }
    }

    public var description: String {
        switch self {
        case .v4(let n): "\(n)"
        case .v6(let n): "\(n)"
        }
    }
}
