#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// What `attach` made for one jail; `detach` takes it back.
public struct NetworkAttachment: Sendable, Equatable, Hashable, Codable {
    public var jail: String
    /// Host-side veth, unique per launch.
    public var hostInterface: String
    public var jailAddress: String
    public var hostAddress: String
    /// The IPv6 ends of the link; nil without a pool6 (or with address6 = "none").
    public var jailAddress6: String?
    public var hostAddress6: String?

    public init(jail: String, hostInterface: String, lease: Lease, lease6: Lease6? = nil) {
        self.jail = jail
        self.hostInterface = hostInterface
        self.jailAddress = "\(lease.jailAddress)"
        self.hostAddress = "\(lease.hostAddress)"
        self.jailAddress6 = lease6.map { "\($0.jailAddress)" }
        self.hostAddress6 = lease6.map { "\($0.hostAddress)" }
    }

    /// The firewall's view of the jail, with what its spec allows.
    public func firewallEntry(_ spec: NetworkSpec) -> NetworkJail? {
        guard let a = IPv4Address(jailAddress) else { return nil }
        return NetworkJail(name: jail, address: a, address6: jailAddress6.flatMap(IPv6Address.init), hostInterface: hostInterface,
                           ports: spec.ports, egress: spec.egress, links: spec.links)
    }
}

/// The network edge of jailctl: leases (IPAM), veth pairs (netlink) and the instance's
/// nftables table (`nft -f`). Planning is pure (`Ruleset`); this type only applies.
///
/// Typical `up`: `attach` inside Launcher.spawn's `outside` closure (the child waits in
/// its new net namespace), then `apply(render(jails:))` or `addElements`. `down`:
/// `detach`, then re-render or `removeElements`; `release` on `down --purge`.
public final class NetworkManager: Sendable {
    public let instance: String
    public let ipam: IPAM
    /// nil: no pool6 in jailctl.toml, jails are IPv4 only.
    public let ipam6: IPAM6?
    public let ruleset: Ruleset
    /// The namespace that plays the host (tests); nil: the caller's own.
    public let hostNetns: String?
    public let nft: NFT

    public init(instance: String, store: StateStore, pool: IPv4Network = IPAM.defaultPool, pool6: IPv6Network? = nil,
                uplinks: [String] = [], hostNetns: String? = nil, inProcessNFT: Bool = true)
    {
        self.instance = instance
        self.ipam = IPAM(store: store, pool: pool)
        self.ipam6 = pool6.map { IPAM6(store: store, pool: $0) }
        self.ruleset = Ruleset(instance: instance, uplinks: uplinks, ipv6: pool6 != nil)
        self.hostNetns = hostNetns
        self.nft = NFT(netnsPath: hostNetns, inProcess: inProcessNFT)
    }

    // MARK: links

    /// Leases the jail's address and connects the process `pid`'s net namespace to the
    /// host: veth pair (jail end created as `eth0` directly inside), addresses, default
    /// route via the host side. On any failure nothing stays: no veth, and no lease unless
    /// the jail held it before this call (a lease kept across restarts stays its own).
    public func attach(jail: String, pid: Int32, spec: NetworkSpec) throws -> NetworkAttachment {
        try attach(jail: jail, netnsPath: "/proc/\(pid)/ns/net", spec: spec)
    }

    public func attach(jail: String, netnsPath: String, spec: NetworkSpec) throws -> NetworkAttachment {
        guard spec.mode == .private else {
            throw JailError(.invalidSpec, "jail \(jail): network mode is \"\(spec.mode.rawValue)\"; only \"private\" attaches")
        }
        let hadLease = try ipam.existing(jail: jail) != nil
        let hadLease6 = try IPAM6.existing(jail: jail, store: ipam.store) != nil
        do {
            // One transaction for both families: a commit (an fsync) is most of a lease's cost.
            let v6 = spec.address6 == NetworkSpec.Address6.none ? nil : ipam6
            let (lease, lease6) = try ipam.store.db.write { db in
                (try ipam.lease(in: db, jail: jail, requested: spec.address), try v6?.lease(in: db, jail: jail, requested: spec.address6))
            }
            if lease6 == nil, let p = spec.ports.first(where: { if case .v6(let h)? = $0.hostAddress { h != .loopback } else { false } }) {
                throw JailError(.invalidSpec, "jail \(jail): the forward \(p.description) needs an IPv6 address of the jail (a pool6 in jailctl.toml, address6 not \"none\")")
            }
            return try connect(jail: jail, netnsPath: netnsPath, lease: lease, lease6: lease6)
        } catch {
            // A failed first `up` leaves no lease behind; the error that matters is the
            // one above, so a failing release is not reported over it.
            if !hadLease { try? ipam.release(jail: jail) }
            if !hadLease6 { try? IPAM6.release(jail: jail, store: ipam.store) }
            throw error
        }
    }

    func connect(jail: String, netnsPath: String, lease: Lease, lease6: Lease6? = nil) throws -> NetworkAttachment {
        let host = try NetlinkSocket(netnsPath: hostNetns)
        let inside = try NetlinkSocket(netnsPath: netnsPath)
        let jailNs = open(netnsPath, O_RDONLY | O_CLOEXEC)
        if jailNs < 0 { throw SystemError("open \(netnsPath)") }
        defer { close(jailNs) }

        // A random name can, rarely, hit one in use: draw again.
        var name = ""
        var rc: Int32 = -EEXIST
        for _ in 0..<4 where rc == -EEXIST {
            name = Links.interfaceName(instance: instance)
            rc = jl_nl_veth_add(host.fd, name, "eth0", jailNs)
        }
        try host.check("jail \(jail): veth \(name)", rc)
        do {
            let hostIndex = try host.ifindex(name)
            try host.addAddress(lease.hostAddress, prefix: Lease.prefix, ifindex: hostIndex, name: name)
            // Localhost forwards leave through this interface with a 127/8 source until
            // the snat chain rewrites it; only our own interfaces get this.
            try host.check("route_localnet on \(name)", jl_nl_route_localnet(host.fd, hostIndex, 1))
            let eth0 = try inside.ifindex("eth0")
            try inside.check("eth0 of jail \(jail) up", jl_nl_link_up(inside.fd, eth0))
            try inside.addAddress(lease.jailAddress, prefix: Lease.prefix, ifindex: eth0, name: "eth0 of jail \(jail)")
            try inside.check("default route of jail \(jail)", jl_nl_default_route(inside.fd, lease.hostAddress.value, eth0))
            if let lease6 {
                try host.addAddress6(lease6.hostAddress, prefix: Lease6.prefix, ifindex: hostIndex, name: name)
                try inside.addAddress6(lease6.jailAddress, prefix: Lease6.prefix, ifindex: eth0, name: "eth0 of jail \(jail)")
                try inside.check("IPv6 default route of jail \(jail)", lease6.hostAddress.bytes.withUnsafeBufferPointer {
                    jl_nl_default_route6(inside.fd, $0.baseAddress, eth0)
                })
            }
        } catch {
            // The first error is the one worth reporting; a failing cleanup here leaves a
            // name `teardown` and `leaks` still find by its prefix.
            _ = try? host.deleteLink(name)
            throw error
        }
        return NetworkAttachment(jail: jail, hostInterface: name, lease: lease, lease6: lease6)
    }

    /// Removes the veth pair; a pair already gone is fine. The lease stays.
    ///
    /// `jailGone`: the jail's last process has exited, so its net namespace is being
    /// destroyed and the kernel removes the pair with it. Deleting it ourselves costs
    /// 20-40 ms here (RTM_DELLINK waits for an RCU grace period inside sendmsg), so
    /// `down` skips it; the name is unique per launch, so a re-`up` cannot collide with
    /// the dying pair, and `teardown`/`leaks` still find it if anything kept the
    /// namespace alive.
    public func detach(_ a: NetworkAttachment, jailGone: Bool = false) throws {
        if jailGone { return }
        let host = try NetlinkSocket(netnsPath: hostNetns)
        _ = try host.deleteLink(a.hostInterface)
    }

    // MARK: firewall

    public func render(jails: [NetworkJail]) -> String { ruleset.render(jails: jails) }

    /// Replaces the whole table in one transaction.
    public func apply(_ rendered: String) throws { try nft.apply(ruleset.transaction(rendered)) }

    /// One jail's elements in or out, without reloading the rules. The table must exist
    /// (apply a render once first).
    public func addElements(_ jail: NetworkJail, peers: [NetworkJail] = []) throws {
        let s = ruleset.elementChange(.add, jail: jail, peers: peers)
        if !s.isEmpty { try nft.apply(s) }
    }

    public func removeElements(_ jail: NetworkJail, peers: [NetworkJail] = []) throws {
        let s = ruleset.elementChange(.delete, jail: jail, peers: peers)
        if !s.isEmpty { try nft.apply(s) }
    }

    // MARK: cleanup

    public struct Leaks: Sendable, Equatable {
        public var interfaces: [String]
        public var table: Bool
        public var isEmpty: Bool { interfaces.isEmpty && !table }
    }

    /// What of this instance exists in the host namespace.
    public func leaks() throws -> Leaks {
        let host = try NetlinkSocket(netnsPath: hostNetns)
        let names = try host.links(prefix: ruleset.interfacePrefix)
        let tables = try nft.query(["list", "tables"])
        return Leaks(interfaces: names, table: tables.split(separator: "\n").contains { $0 == "table inet \(ruleset.table)" })
    }

    /// Removes every veth and the table of this instance, found by name; running twice
    /// is fine. Leases stay (they are state, not kernel objects).
    public func teardown() throws {
        let host = try NetlinkSocket(netnsPath: hostNetns)
        for name in try host.links(prefix: ruleset.interfacePrefix) { _ = try host.deleteLink(name) }
        try nft.apply(ruleset.teardown)
        // A namespace of a test's own must not be held alive by the kept nft context.
        if hostNetns != nil { nft.release() }
    }
}
