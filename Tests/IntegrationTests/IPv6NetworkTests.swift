import Glibc
import Testing

@testable import JailKit

/// IPv6 of private jails against the real kernel, in the namespaces of
/// NetworkIntegrationTests' world (its uplink has fd6a:6c00:91:c::1/64, the client ::2):
/// forwards with the client's real source, hairpin, the [::1] relay, links, anti-spoofing
/// and egress. Pools under fd6a:6c00:91::/48, host ports 18600-18699.
@Suite("IPv6 network (root)", .serialized)
struct IPv6NetworkTests {
    let base = NetworkIntegrationTests()
    static let pool6 = IPv6Network("fd6a:6c00:91:1::/64")

    @Test func forwardsRelayLinksAntiSpoofingAndEgress() throws {
        try requireRoot()
        let w = try base.makeWorld()
        defer { w.destroy() }
        let net = base.manager(w, instance: "j7e57a66", pool6: Self.pool6)
        defer { try? net.teardown() }
        #expect(net.ruleset.ipv6)
        w.add("a")
        w.add("b")
        let specA = base.privateSpec(ports: ["18600:80/tcp", "[fd6a:6c00:91:c::1]:18601:81/tcp", "[::1]:18602:80/tcp"])
        var specB = base.privateSpec(egress: .none)
        let a = try net.attach(jail: "a", netnsPath: w.path("a"), spec: specA)
        let b = try net.attach(jail: "b", netnsPath: w.path("b"), spec: specB)
        #expect(a.jailAddress6 == "fd6a:6c00:91:1::3" && a.hostAddress6 == "fd6a:6c00:91:1::2")
        #expect(b.jailAddress6 == "fd6a:6c00:91:1::5")
        // Usable at once (no DAD: not "tentative"), with a default route via the host side.
        #expect(w.output("a", "ip -6 -o addr show dev eth0 scope global").1.contains("fd6a:6c00:91:1::3/127 scope global nodad"))
        #expect(!w.output("a", "ip -6 -o addr show dev eth0 scope global").1.contains("tentative"))
        #expect(w.output("a", "ip -6 route show default").1.hasPrefix("default via fd6a:6c00:91:1::2 dev eth0"))

        func entries() -> [NetworkJail] { [a.firewallEntry(specA), b.firewallEntry(specB)].compactMap { $0 } }
        try net.apply(net.render(jails: entries()))

        // The jail reaches its gateway by ping (neighbour discovery works), nothing else of the host.
        #expect(w.sh("a", "busybox ping -6 -c1 -W1 fd6a:6c00:91:1::2 >/dev/null") == 0)
        w.server6("h", port: 18605)
        #expect(w.connect("a", "fd6a:6c00:91:1::2", 18605).0 != 0)
        #expect(w.connect("a", "fd6a:6c00:91:c::1", 18605).0 != 0)

        // A remote client over IPv6 reaches the forwarded port; the jail sees its real address.
        w.server6("a", port: 80)
        w.server6("a", port: 81)
        let seen = w.connect("c", "fd6a:6c00:91:c::1", 18600)
        #expect(seen.0 == 0 && seen.1 == "fd6a:6c00:91:c::2", "\(seen)")
        #expect(w.connect("c", "fd6a:6c00:91:c::1", 18601).1 == "fd6a:6c00:91:c::2")
        // Hairpin: the host on its own IPv6 address.
        let hairpin = w.connect("h", "fd6a:6c00:91:c::1", 18600)
        #expect(hairpin.0 == 0 && hairpin.1 == "fd6a:6c00:91:c::1", "\(hairpin)")
        // The host's ::1 on a wildcard forward is refused (not NATed, not lost); a [::1]
        // forward goes through the relay, and the jail sees the host side of its link.
        #expect(w.connect("h", "::1", 18600).0 != 0)
        let entryA = try #require(a.firewallEntry(specA))
        let relay = try #require(try Relay6.start(for: entryA, hostNetns: w.path("h"), jailPid: 0))
        defer { relay.stop() }
        let local = w.connect("h", "::1", 18602)
        #expect(local.0 == 0 && local.1 == "fd6a:6c00:91:1::2", "\(local)")
        #expect(w.connect("c", "fd6a:6c00:91:c::1", 18602).0 != 0)
        // A second relay on the same port is refused with a clear error.
        #expect(throws: JailError.self) { _ = try Relay6.start(for: entryA, hostNetns: w.path("h"), jailPid: 0) }

        // b reaches a over IPv6 only once linked, and a sees b's own address.
        #expect(w.connect("b", "fd6a:6c00:91:1::3", 80).0 != 0)
        specB.links = [JailLink(jail: "a", port: 80, proto: .tcp)]
        try net.apply(net.render(jails: entries()))
        let linked = w.connect("b", "fd6a:6c00:91:1::3", 80)
        #expect(linked.0 == 0 && linked.1 == "fd6a:6c00:91:1::5", "\(linked)")
        #expect(w.connect("b", "fd6a:6c00:91:1::3", 81).0 != 0)

        // Egress: a (nat) reaches the client masqueraded to the uplink; b (none) does not.
        w.server6("c", port: 18603)
        w.server6("c", port: 18604)
        let out = w.connect("a", "fd6a:6c00:91:c::2", 18603)
        #expect(out.0 == 0 && out.1 == "fd6a:6c00:91:c::1", "\(out)")
        #expect(w.connect("b", "fd6a:6c00:91:c::2", 18603).0 != 0)
        // An IPv6 allowlist: exactly its entry.
        specB.egress = .allow([EgressRule(network: .v6(try #require(IPv6Network("fd6a:6c00:91:c::/64"))), port: 18603, proto: .tcp)])
        try net.apply(net.render(jails: entries()))
        #expect(w.connect("b", "fd6a:6c00:91:c::2", 18603).1 == "fd6a:6c00:91:c::1")
        #expect(w.connect("b", "fd6a:6c00:91:c::2", 18604).0 != 0)

        // A spoofed IPv6 source from inside a jail is dropped.
        // (deprecated, so the kernel never picks it as a source by itself)
        w.sh("a", "ip addr add fd6a:6c00:91:1::99/128 dev eth0 nodad preferred_lft 0")
        #expect(w.connect("a", "fd6a:6c00:91:c::2", 18603, from: "fd6a:6c00:91:1::99").0 != 0)
        #expect(w.connect("a", "fd6a:6c00:91:c::2", 18603).0 == 0)

        relay.stop()
        #expect(w.connect("h", "::1", 18602).0 != 0)
        try net.teardown()
        #expect(try net.leaks().isEmpty)
    }

    /// Attach time with and without IPv6, same world, for the note.
    @Test func attachTimeWithAndWithoutIPv6() throws {
        try requireRoot()
        let w = try base.makeWorld()
        defer { w.destroy() }
        let v4 = base.manager(w, instance: "j7e57a64")
        let v6 = base.manager(w, instance: "j7e57a65", pool6: IPv6Network("fd6a:6c00:91:2::/64"))
        defer {
            try? v4.teardown()
            try? v6.teardown()
        }
        var times: [String: [Double]] = [:]
        for i in 0..<40 {
            for (label, net) in [("v4", v4), ("v4+v6", v6)] {
                let ns = "\(label == "v4" ? "p" : "q")\(i)"
                w.add(ns)
                let t0 = monotonic()
                _ = try net.attach(jail: ns, netnsPath: w.path(ns), spec: base.privateSpec())
                times[label, default: []].append(monotonic() - t0)
            }
        }
        func median(_ xs: [Double]) -> Int { Int((xs.sorted()[xs.count / 2] * 1e6).rounded()) }
        print("attach median: IPv4 only \(median(times["v4"] ?? [0])) us, IPv4+IPv6 \(median(times["v4+v6"] ?? [0])) us (40 jails each)")
        try v4.teardown()
        try v6.teardown()
        #expect(try v4.leaks().isEmpty && v6.leaks().isEmpty)
    }
}
