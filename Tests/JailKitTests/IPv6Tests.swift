import Glibc
import Testing

@testable import JailKit

/// IPv6 of jails: pool6, address6, bracketed ports and allowlists, IPAM6, the v6 half of
/// the ruleset, and the doctor's v6 findings. No root.
@Suite struct IPv6SpecTests {
    func host(_ source: String) -> (HostSettings?, [String]) {
        let (h, d) = SpecLoader.parseHost(source: source, file: "jailctl.toml")
        return (h, d.map(\.description))
    }

    func jail(_ extra: String) -> (JailSpec?, [String]) {
        let (j, d) = SpecLoader.parseJail(source: "image = \"shell\"\ncommand = [\"/bin/sh\"]\n" + extra, file: "j.toml", name: "web")
        return (j, d.map { "\($0.line):\($0.column) \($0.field): \($0.message)" })
    }

    @Test func addressesParseAndPrintCanonically() throws {
        let a = try #require(IPv6Address("FD6A:6C00:0000:0001:0000:0000:0000:0003"))
        #expect(a.description == "fd6a:6c00:0:1::3")
        #expect(IPv6Address("::1") == .loopback)
        #expect(try #require(IPv6Address("fe80::1")).isLinkLocal)
        #expect(try #require(IPv6Address("fd00::1")).isUniqueLocal)
        #expect(try #require(IPv6Address("::ffff:10.0.0.1")).isIPv4Mapped)
        for bad in ["", "1.2.3.4", ":::", "fd00::1::2", "fd00::g", "[::1]", "fd00::1/64"] {
            #expect(IPv6Address(bad) == nil, "\(bad)")
        }
        #expect(IPv6Network("fd6a:6c00:0:1::/64")?.contains(a) == true)
        #expect(IPv6Network("fd6a:6c00:0:1::1/64") == nil)  // host bits set
        #expect(IPv6Network("fd00::/129") == nil)
        #expect(a.adding(UInt64.max).description == "fd6a:6c00:0:2::2")
    }

    @Test func pool6IsOptionalAndChecked() throws {
        #expect(host("").0?.pool6 == nil)
        let (h, lines) = host("[network]\npool6 = \"fd6a:6c00:0:1::/64\"\n")
        #expect(lines == [])
        #expect(h?.pool6?.description == "fd6a:6c00:0:1::/64")
        let cases: [(String, String)] = [
            ("pool6 = \"fd6a::1/64\"", "jailctl.toml:2:9: error: network.pool6: \"fd6a::1/64\" is not an IPv6 network with its host bits zero"),
            ("pool6 = \"10.88.0.0/16\"", "jailctl.toml:2:9: error: network.pool6: \"10.88.0.0/16\" is not an IPv6 network"),
            ("pool6 = \"fd6a:6c00::/48\"", "jailctl.toml:2:9: error: network.pool6: a /48 pool6 is more than jailctl uses; one /64 of it, e.g. \"fd6a:6c00::/64\""),
            ("pool6 = \"fd6a:6c00::/124\"", "jailctl.toml:2:9: error: network.pool6: a /124 pool6 is too small"),
            ("pool6 = \"fe80::/64\"", "jailctl.toml:2:9: error: network.pool6: fe80::/64 is not a unicast range a jail can use"),
            ("pool6 = \"::/64\"", "jailctl.toml:2:9: error: network.pool6: ::/64 is not a unicast range a jail can use"),
            ("pool6 = 64", "jailctl.toml:2:9: error: network.pool6: expected a string"),
        ]
        for (line, expected) in cases {
            let (h, lines) = host("[network]\n" + line + "\n")
            #expect(h == nil, "\(line)")
            #expect(lines.count == 1 && lines[0].hasPrefix(expected), "\(lines) should start with \(expected)")
        }
        // A global prefix is allowed with a warning (a host may be routed one on purpose).
        let (g, warned) = host("[network]\npool6 = \"2001:db8:1:2::/64\"\n")
        #expect(g?.pool6 != nil)
        #expect(warned.count == 1 && warned[0].hasPrefix("jailctl.toml:2:9: warning: network.pool6: 2001:db8:1:2::/64 is not a unique local"), "\(warned)")
    }

    @Test func bracketedPortsAndTheirErrors() throws {
        let (j, d) = jail("""
            [network]
            mode = "private"
            address6 = "fd6a:6c00:0:1::5"
            ports = ["[2001:db8::1]:8443:443/tcp", "[::1]:8444:443/tcp", "8080:80/tcp", "[fd6a::9]:53:53/udp"]
            """)
        #expect(d == [])
        let n = try #require(j).network
        #expect(n.address6 == .fixed(try #require(IPv6Address("fd6a:6c00:0:1::5"))))
        #expect(n.ports.map(\.description) == ["[2001:db8::1]:8443:443/tcp", "[::1]:8444:443/tcp", "8080:80/tcp", "[fd6a::9]:53:53/udp"])
        #expect(n.ports[1].isIPv6Loopback && !n.ports[0].isIPv6Loopback)
        #expect(jail("""
            [network]
            mode = "private"
            address6 = "fd6a::g"
            ports = ["[::1:8443:443/tcp", "::1:8443:443/tcp", "[1.2.3.4]:80:80/tcp", "[::]:80:80/tcp", "[fe80::1]:80:80/tcp", "[ff02::1]:80:80/tcp", "[::1]8443:443/tcp", "[::1]:53:53/udp", "[::ffff:10.0.0.1]:80:80/tcp", "[::1]:8443/tcp"]
            """).1 == [
                "5:12 network.address6: \"fd6a::g\" is not an IPv6 address",
                "6:10 network.ports[0]: \"[::1:8443:443/tcp\": missing ']' after the IPv6 host address",
                "6:31 network.ports[1]: \"::1:8443:443/tcp\": an IPv6 host address goes in brackets, e.g. \"[::1]:8443:443/tcp\"",
                "6:51 network.ports[2]: \"[1.2.3.4]:80:80/tcp\": \"1.2.3.4\" is not an IPv6 host address",
                "6:74 network.ports[3]: \"[::]:80:80/tcp\": [::] is every address: leave the address out (\"HOSTPORT:JAILPORT/PROTO\")",
                "6:92 network.ports[4]: \"[fe80::1]:80:80/tcp\": fe80::1 is link-local: it is not routed to a jail",
                "6:115 network.ports[5]: \"[ff02::1]:80:80/tcp\": ff02::1 is a multicast address",
                "6:138 network.ports[6]: \"[::1]8443:443/tcp\": expected ':' after \"[::1]\"",
                "6:159 network.ports[7]: \"[::1]:53:53/udp\": [::1] forwards are TCP only (the kernel cannot NAT IPv6 loopback; jailctl relays TCP in user space)",
                "6:178 network.ports[8]: \"[::ffff:10.0.0.1]:80:80/tcp\": ::ffff:10.0.0.1 is IPv4-mapped: write the IPv4 address without brackets",
                "6:209 network.ports[9]: \"[::1]:8443/tcp\": missing the jail port (HOSTPORT:JAILPORT)",
            ])
        #expect(jail("[network]\nmode = \"private\"\naddress6 = \"none\"\n").0?.network.address6 == NetworkSpec.Address6.none)
        let many = (18600..<18633).map { "\"[::1]:\($0):80/tcp\"" }.joined(separator: ", ")
        #expect(jail("[network]\nmode = \"private\"\nports = [\(many)]\n").1 == ["5:9 network.ports: 33 [::1] forwards; a jail may have at most 32"])
        #expect(jail("[network]\naddress6 = \"auto\"\n").1 == ["4:1 network.address6: address6 needs an address of the jail's own, but mode is \"loopback\""])
    }

    @Test func ipv6Allowlists() throws {
        let (j, d) = jail("""
            [network]
            mode = "private"
            egress = ["[::/0]:53", "[2001:db8::/32]:443/tcp", "2001:db8:1::/48", "2001:db8:2::7", "0.0.0.0/0:53"]
            """)
        #expect(d == [])
        let egress = try #require(j).network.egress
        guard case .allow(let rules) = egress else { Issue.record("not an allowlist"); return }
        #expect(rules.map(\.description) == ["[::/0]:53", "[2001:db8::/32]:443/tcp", "2001:db8:1::/48", "2001:db8:2::7/128", "0.0.0.0/0:53"])
        #expect(jail("""
            [network]
            mode = "private"
            egress = ["[2001:db8::/32]", "[2001:db8::/32:443", "2001:db8::1/32", "[10.0.0.0/8]:80", "[::/0]:0", "2001:db8::/32/tcp", "[2001:db8::/32]:443", "[2001:db8:5::/48]:443/tcp"]
            """).1 == [
                "5:11 network.egress[0]: \"[2001:db8::/32]\": brackets need a port after them, e.g. \"[2001:db8::/32]:443\"",
                "5:30 network.egress[1]: \"[2001:db8::/32:443\": missing ']' after the IPv6 network",
                "5:52 network.egress[2]: \"2001:db8::1/32\": \"2001:db8::1/32\" is not an IPv6 network with its host bits zero",
                "5:70 network.egress[3]: \"[10.0.0.0/8]:80\": \"10.0.0.0/8\" is not an IPv6 address or network",
                "5:89 network.egress[4]: \"[::/0]:0\": port \"0\" is not a port 1-65535",
                "5:101 network.egress[5]: \"2001:db8::/32/tcp\": a protocol needs a port ([CIDR6]:PORT/PROTO)",
                "5:145 network.egress[7]: \"[2001:db8:5::/48]:443/tcp\" overlaps network.egress[6] \"[2001:db8::/32]:443\"",
            ])
    }

    @Test func firewallPolicyRoundTripsIPv6() throws {
        let (j, d) = jail("""
            [network]
            mode = "private"
            ports = ["[2001:db8::1]:8443:443/tcp", "[::1]:8444:443/tcp"]
            egress = ["[::/0]:53", "2001:db8::/32", "0.0.0.0/0:443/tcp"]
            """)
        #expect(d == [])
        let n = try #require(j).network
        let text = FirewallPolicy.render(n)
        #expect(text == "ports [2001:db8::1]:8443:443/tcp [::1]:8444:443/tcp\negress allow [::/0]:53 2001:db8::/32 0.0.0.0/0:443/tcp\nlinks\n")
        var back = try FirewallPolicy.parse(text)
        back.address6 = n.address6
        #expect(back == n)
    }

    @Test func forwardsFromIPv6NeedAPool6() throws {
        let dir = try TempSpecDir()
        defer { dir.remove() }
        try dir.write("Jails/web.toml", """
            image = "shell"
            command = ["/bin/sh"]
            [network]
            mode = "private"
            address6 = "fd6a:6c00:91:1::3"
            ports = ["[2001:db8::1]:8443:443/tcp", "[::1]:8444:443/tcp"]
            """)
        try dir.write("Images/shell.toml", "binaries = [\"/bin/sh\"]\n")
        let (_, d) = SpecLoader.load(directory: dir.path, hostChecks: false)
        let errors = d.filter { $0.severity == .error }.map { "\($0.line):\($0.column) \($0.field): \($0.message)" }
        #expect(errors == [
            "5:12 network.address6: address6 fd6a:6c00:91:1::3 needs a pool6 in jailctl.toml; without one jails are IPv4 only",
            "6:10 network.ports[0]: a forward from the IPv6 address 2001:db8::1 needs the jail on IPv6: jailctl.toml has no pool6",
        ], "\(errors)")
        try dir.write("jailctl.toml", "[network]\npool6 = \"fd6a:6c00:91:1::/64\"\n")
        #expect(SpecLoader.load(directory: dir.path, hostChecks: false).1.filter { $0.severity == .error }.isEmpty)
    }
}

/// A spec directory under /tmp for loader tests.
struct TempSpecDir {
    let path: String

    init() throws {
        var template = Array("/tmp/jailctl-spec6-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { p in p.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) } }
        guard let dir else { throw SystemError("mkdtemp") }
        path = dir
        try FS.mkdirs(dir + "/Jails", mode: 0o755)
        try FS.mkdirs(dir + "/Images", mode: 0o755)
    }

    func write(_ name: String, _ text: String) throws { try FS.writeAtomically(path + "/" + name, text) }

    func remove() { try? FS.removeTree(path) }
}

@Suite struct IPAM6Tests {
    func withStore(_ body: (StateStore) throws -> Void) throws {
        let dir = try TempSpecDir()
        defer { dir.remove() }
        try body(try StateStore(path: dir.path + "/state.db"))
    }

    static let pool = IPv6Network(base: IPv6Address("fd6a:6c00:91:1::") ?? .unspecified, prefix: 64)

    @Test func leasesArePairsKeptAndNeverShared() throws {
        try withStore { store in
            let ipam = IPAM6(store: store, pool: Self.pool)
            let a = try ipam.lease(jail: "a")
            let b = try ipam.lease(jail: "b")
            #expect("\(a.jailAddress)" == "fd6a:6c00:91:1::3" && "\(a.hostAddress)" == "fd6a:6c00:91:1::2")
            #expect("\(b.jailAddress)" == "fd6a:6c00:91:1::5")
            #expect(try ipam.lease(jail: "a") == a)
            try IPAM6.release(jail: "a", store: store)
            try IPAM6.release(jail: "a", store: store)
            #expect(try ipam.lease(jail: "c") == Lease6(jail: "c", jailAddress: a.jailAddress))
            #expect(try IPAM6.existing(jail: "b", store: store) == b)
            // The IPv4 leases are a table of their own.
            #expect(try IPAM(store: store).existing(jail: "b") == nil)
        }
    }

    @Test func fixedAddressesAreChecked() throws {
        try withStore { store in
            let ipam = IPAM6(store: store, pool: Self.pool)
            func message(_ jail: String, _ a: String) -> String {
                do {
                    _ = try ipam.lease(jail: jail, requested: .fixed(IPv6Address(a) ?? .unspecified))
                    return "ok"
                } catch { return "\(error)" }
            }
            #expect(message("db", "fd6a:6c00:91:1::1:7") == "ok")
            #expect(message("web", "fd6a:6c00:91:1::1:7") == "jail web: address6 fd6a:6c00:91:1::1:7 is already leased to jail db")
            #expect(message("web", "fd6a:6c00:91:2::3") == "jail web: address6 fd6a:6c00:91:2::3 is outside the pool6 fd6a:6c00:91:1::/64")
            #expect(message("web", "fd6a:6c00:91:1::4").hasPrefix("jail web: address6 fd6a:6c00:91:1::4 is a host-side address of the pool6 fd6a:6c00:91:1::/64; jails get odd addresses (/127 pairs), e.g. fd6a:6c00:91:1::5"))
            #expect(message("web", "fd6a:6c00:91:1::1").hasPrefix("jail web: address6 fd6a:6c00:91:1::1 is a host-side address"))
            // Moving to another fixed address frees the old one.
            #expect(message("db", "fd6a:6c00:91:1::9") == "ok")
            #expect(message("web", "fd6a:6c00:91:1::1:7") == "ok")
        }
    }

    @Test func smallPoolRunsOut() throws {
        try withStore { store in
            let ipam = IPAM6(store: store, pool: try #require(IPv6Network("fd6a:6c00:91:1::/125")))
            for j in ["a", "b", "c"] { _ = try ipam.lease(jail: j) }
            #expect(throws: JailError.self) { _ = try ipam.lease(jail: "d") }
        }
    }
}

@Suite struct Ruleset6Tests {
    static func a6(_ s: String) -> IPv6Address { IPv6Address(s) ?? .unspecified }
    static func net6(_ s: String) -> IPNetwork { .v6(IPv6Network(s) ?? IPv6Network(base: .unspecified, prefix: 0)) }

    /// The IPv4 fixture of RulesetTests, with IPv6 addresses and v6 forwards/allowlists.
    static var jails: [NetworkJail] {
        var j = RulesetTests.jails
        j[0].address6 = a6("fd6a:6c00:91:1::3")
        j[0].ports += [PortForward(hostAddress: .v6(a6("2001:db8::1")), hostPort: 8443, jailPort: 443, proto: .tcp),
                       PortForward(hostAddress: .v6(.loopback), hostPort: 8444, jailPort: 443, proto: .tcp)]
        j[1].address6 = a6("fd6a:6c00:91:1::b")
        // dns stays IPv4 only (address6 = "none"): none of its v6 twins.
        j[3].address6 = a6("fd6a:6c00:91:1::d")
        if case .allow(let rules) = j[3].egress {
            j[3].egress = .allow(rules + [EgressRule(network: net6("::/0"), port: 53),
                                          EgressRule(network: net6("2001:db8::/32"), port: 443, proto: .tcp),
                                          EgressRule(network: net6("2001:db8:1::/48"))])
        }
        return j
    }

    @Test func rulesetMatchesGolden() throws {
        let text = Ruleset(instance: "j1234abc", ipv6: true).render(jails: Self.jails)
        let path = RulesetTests.golden + "/nft-ruleset-v6.txt"
        if getenvString("JAILCTL_UPDATE_GOLDEN") == "1" { try FS.writeAtomically(path, text) }
        #expect(text == (try FS.readText(path)))
    }

    @Test func withoutPool6TheTableIsAsBefore() throws {
        // IPv6 addresses on the jails change nothing in an IPv4-only table.
        let text = Ruleset(instance: "j1234abc").render(jails: Self.jails)
        #expect(text == (try FS.readText(RulesetTests.golden + "/nft-ruleset.txt")))
    }

    @Test func elementChangeCarriesTheV6Twins() {
        let r = Ruleset(instance: "j1234abc", ipv6: true)
        let web = Self.jails[0]
        let text = r.elementChange(.add, jail: web, peers: Self.jails)
        #expect(text.contains("add element inet jailctl_j1234abc jail_src6 { \"jc1234000001\" . fd6a:6c00:91:1::3 }\n"))
        #expect(text.contains("add element inet jailctl_j1234abc fwd_port6 { tcp . 8080 : fd6a:6c00:91:1::3 . 80 }\n"))
        #expect(text.contains("add element inet jailctl_j1234abc fwd_addr_port6 { 2001:db8::1 . tcp . 8443 : fd6a:6c00:91:1::3 . 443 }\n"))
        #expect(text.contains("add element inet jailctl_j1234abc links6 { fd6a:6c00:91:1::3 . fd6a:6c00:91:1::b . tcp . 5432 }\n"))
        #expect(!text.contains("8444"))  // [::1] is relayed, not NATed
        let db = Self.jails[1]
        #expect(r.elementDiff(.add, jail: db, others: Self.jails).contains("links6 { fd6a:6c00:91:1::3 . fd6a:6c00:91:1::b . tcp . 5432 }"))
    }
}

@Suite struct HostPorts6Tests {
    @Test func ipv6ListenersKeepTheirAddress() throws {
        let tcp6 = """
              sl  local_address rem_address st
               0: 00000000000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 0
               1: B80D0120000000000000000001000000:20FB 00000000000000000000000000000000:0000 0A 0
               2: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 0
               3: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 0
            """
        #expect(HostPorts.parse(tcp: "", tcp6: tcp6, udp: "", udp6: "") == [
            HostPorts.Bound(proto: .tcp, ip: .v6(.loopback), port: 8443),
            HostPorts.Bound(proto: .tcp, ip: .v6(try #require(IPv6Address("2001:db8::1"))), port: 8443),
            HostPorts.Bound(proto: .tcp, address: IPv4Address("127.0.0.1"), port: 80),
            HostPorts.Bound(proto: .tcp, ip: nil, port: 443),
        ])
    }
}

@Suite struct ResolvConf6Tests {
    @Test func ipv6ServersOnlyForIPv6Jails() {
        let host = "nameserver 127.0.0.53\nnameserver ::1\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\nnameserver 192.0.2.1\n"
        #expect(JailManager.resolvConf(dns: [], hostResolvConf: host) == "nameserver 192.0.2.1\n")
        #expect(JailManager.resolvConf(dns: [], hostResolvConf: host, ipv6: true) == "nameserver 2001:db8::53\nnameserver 192.0.2.1\n")
    }
}

@Suite struct Doctor6Tests {
    func run(_ f: Doctor.HostFacts, pool6: IPv6Network? = IPv6Network("fd6a:6c00:0:1::/64")) -> [String] {
        Doctor.findings(f, pool: IPAM.defaultPool, pool6: pool6, ourTable: "jailctl_x", interfacePrefix: "jc1234")
            .map { "\($0.severity.rawValue): \($0.what) | \($0.fix)" }
    }

    @Test func forwardingAndRouterAdvertisements() {
        var f = Doctor.HostFacts(ipForward: true)
        f.ipv6Forward = false
        f.acceptRA = ["eth0", "jc1234000001"]
        let off = run(f).filter { $0.contains("ipv6") }
        #expect(off.count == 1)
        #expect(off[0].hasPrefix("warning: net.ipv6.conf.all.forwarding is 0"))
        #expect(off[0].contains("first sysctl -w net.ipv6.conf.eth0.accept_ra=2 (those interfaces"), "\(off)")
        #expect(!off[0].contains("jc1234000001"))
        f.ipv6Forward = true
        let on = run(f)
        #expect(on.contains("ok: net.ipv6.conf.all.forwarding is 1 | "))
        #expect(on.contains { $0.hasPrefix("warning: IPv6 forwarding is on, so eth0 ignores router advertisements") })
        // A route inside the pool6 through another interface competes with the jails'.
        f.routes6 = Doctor.parseRoutes6("""
            fd6a6c00000000010000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001     eth1
            fd6a6c00000000010000000000000002 7f 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 jc1234000001
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
            """)
        #expect(f.routes6 == ["fd6a:6c00:0:1::/64 dev eth1", "fd6a:6c00:0:1::2/127 dev jc1234000001", "::/0 dev eth0"])
        let overlap = run(f).filter { $0.contains("overlaps") }
        #expect(overlap == ["problem: route fd6a:6c00:0:1::/64 via eth1 overlaps the jail pool6 fd6a:6c00:0:1::/64: jail addresses may be sent there | pick another pool6 in jailctl.toml or remove the route"])
        f.routes6 = []
        f.ipv6Disabled = true
        #expect(run(f).contains { $0.hasPrefix("problem: IPv6 is disabled for new interfaces") })
        // Without a pool6, IPv6 is none of jailctl's business.
        #expect(!run(f, pool6: nil).contains { $0.contains("ipv6") || $0.contains("IPv6") })
    }
}
