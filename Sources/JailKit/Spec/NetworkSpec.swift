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
    public var network: IPv4Network
    public var port: UInt16?
    /// nil with a port: both tcp and udp.
    public var proto: L4Proto?

    public init(network: IPv4Network, port: UInt16? = nil, proto: L4Proto? = nil) {
        self.network = network
        self.port = port
        self.proto = proto
    }

    public var description: String {
        "\(network)" + (port.map { ":\($0)" } ?? "") + (proto.map { "/\($0.rawValue)" } ?? "")
    }

    /// Both would put overlapping intervals into one nftables set: port-less entries
    /// whose networks overlap, or entries for one port and protocol (nil is both) whose
    /// networks overlap.
    func collides(with o: EgressRule) -> Bool {
        let networks = network.contains(o.network.base) || o.network.contains(network.base)
        switch (port, o.port) {
        case (nil, nil): return networks
        case (let a?, let b?): return networks && a == b && (proto == nil || o.proto == nil || proto == o.proto)
        default: return false
        }
    }
}

/// `"[HOSTADDR:]HOSTPORT:JAILPORT/PROTO"`.
public struct PortForward: Sendable, Equatable, Hashable {
    /// nil: every local address of the host.
    public var hostAddress: IPv4Address?
    public var hostPort: UInt16
    public var jailPort: UInt16
    public var proto: L4Proto

    public init(hostAddress: IPv4Address? = nil, hostPort: UInt16, jailPort: UInt16, proto: L4Proto) {
        self.hostAddress = hostAddress
        self.hostPort = hostPort
        self.jailPort = jailPort
        self.proto = proto
    }

    public var description: String {
        (hostAddress.map { "\($0):" } ?? "") + "\(hostPort):\(jailPort)/\(proto.rawValue)"
    }
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
