import Glibc
import Testing

@testable import JailKit

@Suite struct NetworkSpecTests {
    func parse(_ extra: String) -> (JailSpec?, [SpecDiagnostic]) {
        SpecLoader.parseJail(source: "image = \"shell\"\ncommand = [\"/bin/sh\"]\n" + extra, file: "j.toml", name: "web")
    }

    func messages(_ extra: String) -> [String] {
        parse(extra).1.map { "\($0.line):\($0.column) \($0.field): \($0.message)" }
    }

    @Test func defaultIsLoopback() throws {
        let (jail, d) = parse("")
        #expect(d.isEmpty)
        #expect(try #require(jail).network == NetworkSpec())
        #expect(NetworkSpec().mode == .loopback)
    }

    @Test func decodesEveryKey() throws {
        let (jail, d) = parse("""
            [network]
            mode = "private"
            address = "10.88.0.5"
            ports = ["8080:80/tcp", "127.0.0.1:2222:22/tcp", "53:53/udp"]
            egress = "none"
            links = ["db:5432/tcp"]
            """)
        #expect(d.isEmpty)
        let n = try #require(jail).network
        #expect(n.mode == .private)
        #expect(n.address == .fixed(try #require(IPv4Address("10.88.0.5"))))
        #expect(n.ports == [
            PortForward(hostPort: 8080, jailPort: 80, proto: .tcp),
            PortForward(hostAddress: IPv4Address("127.0.0.1"), hostPort: 2222, jailPort: 22, proto: .tcp),
            PortForward(hostPort: 53, jailPort: 53, proto: .udp),
        ])
        #expect(n.egress == NetworkSpec.Egress.none)
        #expect(n.links == [JailLink(jail: "db", port: 5432, proto: .tcp)])
    }

    @Test func everyBadFormIsReportedAtItsElement() {
        let m = messages("""
            [network]
            mode = "private"
            address = "10.88.0.256"
            ports = ["8080", "80:80", "0:80/tcp", "8080:70000/tcp", "1.2.3:80:80/tcp", "80:80/sctp", "a:b:c:d/tcp", "08:80/tcp", 5, "9000:90/tcp", "9000:91/tcp"]
            egress = "open"
            links = ["db", "db:5432", "Bad Name:1/tcp", "db:0/udp", "db:5432/tcp", "db:5432/tcp"]
            """)
        #expect(m == [
            "5:11 network.address: \"10.88.0.256\" is not an IPv4 address",
            "6:10 network.ports[0]: \"8080\": missing the protocol (/tcp or /udp)",
            "6:18 network.ports[1]: \"80:80\": missing the protocol (/tcp or /udp)",
            "6:27 network.ports[2]: \"0:80/tcp\": host port \"0\" is not a port 1-65535",
            "6:39 network.ports[3]: \"8080:70000/tcp\": jail port \"70000\" is not a port 1-65535",
            "6:57 network.ports[4]: \"1.2.3:80:80/tcp\": \"1.2.3\" is not an IPv4 host address",
            "6:76 network.ports[5]: \"80:80/sctp\": \"sctp\" is not a protocol (tcp or udp)",
            "6:90 network.ports[6]: \"a:b:c:d/tcp\": too many ':'",
            "6:105 network.ports[7]: \"08:80/tcp\": host port \"08\" is not a port 1-65535",
            "6:118 network.ports[8]: expected a string, found an integer",
            "6:136 network.ports[10]: host port 9000/tcp is already forwarded by network.ports[9]",
            "7:10 network.egress: \"open\" is not an egress policy",
            "8:10 network.links[0]: \"db\": missing the protocol (/tcp or /udp)",
            "8:16 network.links[1]: \"db:5432\": missing the protocol (/tcp or /udp)",
            "8:27 network.links[2]: \"Bad Name:1/tcp\": jail \"Bad Name\": \"Bad Name\" is not a valid name",
            "8:45 network.links[3]: \"db:0/udp\": port \"0\" is not a port 1-65535",
            "8:72 network.links[5]: duplicate link \"db:5432/tcp\"",
        ])
    }

    @Test func egressAllowlist() throws {
        let (jail, d) = parse("""
            [network]
            mode = "private"
            egress = ["0.0.0.0/0:53", "0.0.0.0/0:443/tcp", "192.0.2.0/24", "198.51.100.7"]
            """)
        #expect(d.isEmpty)
        let net = { (s: String) in try #require(IPv4Network(s)) }
        #expect(try #require(jail).network.egress == .allow([
            EgressRule(network: try net("0.0.0.0/0"), port: 53),
            EgressRule(network: try net("0.0.0.0/0"), port: 443, proto: .tcp),
            EgressRule(network: try net("192.0.2.0/24")),
            EgressRule(network: try net("198.51.100.7/32")),
        ]))
        #expect(messages("""
            [network]
            mode = "private"
            egress = ["10.0.0.1/8", "0.0.0.0/0:0/tcp", "1.2.3.4/tcp", "a:b:c", "x"]
            """) == [
                "5:11 network.egress[0]: \"10.0.0.1/8\": \"10.0.0.1/8\" is not an IPv4 network with its host bits zero",
                "5:25 network.egress[1]: \"0.0.0.0/0:0/tcp\": port \"0\" is not a port 1-65535",
                "5:44 network.egress[2]: \"1.2.3.4/tcp\": a protocol needs a port (CIDR:PORT/PROTO)",
                "5:59 network.egress[3]: \"a:b:c\": too many ':'",
                "5:68 network.egress[4]: \"x\": \"x\" is not an IPv4 address or network",
            ])
    }

    @Test func firewallPolicyRoundTrips() throws {
        let (jail, d) = parse("""
            [network]
            mode = "private"
            ports = ["8080:80/tcp", "127.0.0.1:2222:22/tcp"]
            egress = ["0.0.0.0/0:53", "192.0.2.0/24"]
            links = ["db:5432/tcp"]
            """)
        #expect(d.isEmpty)
        let n = try #require(jail).network
        let text = FirewallPolicy.render(n)
        #expect(text == "ports 8080:80/tcp 127.0.0.1:2222:22/tcp\negress allow 0.0.0.0/0:53 192.0.2.0/24\nlinks db:5432/tcp\n")
        #expect(try FirewallPolicy.parse(text) == n)
        var none = NetworkSpec()
        none.mode = .private
        none.egress = .none
        #expect(try FirewallPolicy.parse(FirewallPolicy.render(none)) == none)
        #expect(throws: (any Error).self) { try FirewallPolicy.parse("ports 80\negress none\n") }
        #expect(throws: (any Error).self) { try FirewallPolicy.parse("ports\nlinks\n") }
    }

    @Test func overlappingAllowlistEntriesAreErrors() {
        #expect(messages("""
            [network]
            mode = "private"
            egress = ["10.0.0.0/8:443/tcp", "10.1.0.0/16:443/tcp", "10.1.0.0/16:80/tcp", "0.0.0.0/0", "192.0.2.0/24", "192.0.2.0/24:443", "198.51.100.0/24:53", "198.51.100.9:53/udp"]
            """) == [
                "5:33 network.egress[1]: \"10.1.0.0/16:443/tcp\" overlaps network.egress[0] \"10.0.0.0/8:443/tcp\"",
                "5:91 network.egress[4]: \"192.0.2.0/24\" overlaps network.egress[3] \"0.0.0.0/0\"",
                "5:149 network.egress[7]: \"198.51.100.9:53/udp\" overlaps network.egress[6] \"198.51.100.0/24:53\"",
            ])
    }

    @Test func keysNeedPrivateMode() {
        let m = messages("""
            [network]
            ports = ["8080:80/tcp"]
            """)
        #expect(m == ["4:1 network.ports: ports needs an address of the jail's own, but mode is \"loopback\""])
        #expect(messages("[network]\nmode = \"privat\"\n") == ["4:8 network.mode: \"privat\" is not a network mode"])
        #expect(messages("[network]\nmod = \"private\"\n").first?.hasSuffix("network.mod: unknown key in [network]") == true)
    }

    @Test func addressParsing() {
        #expect(IPv4Address("10.88.0.1")?.value == 0x0A58_0001)
        for bad in ["", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.-4", "256.1.1.1", " 1.2.3.4", "1..2.3"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
        #expect(IPv4Network("10.88.0.0/16")?.size == 65536)
        #expect(IPv4Network("10.88.0.1/16") == nil)
    }
}

@Suite struct IPAMTests {
    func withStore(_ body: (StateStore) throws -> Void) throws {
        var template = Array("/tmp/jailctl-ipam-XXXXXX".utf8CString)
        let dir = template.withUnsafeMutableBufferPointer { p in p.baseAddress.flatMap { mkdtemp($0) }.map { String(cString: $0) } }
        guard let dir else { throw SystemError("mkdtemp") }
        defer { try? FS.removeTree(dir) }
        try body(try StateStore(path: dir + "/state.db"))
    }

    @Test func leasesArePairsKeptAndNeverShared() throws {
        try withStore { store in
            let ipam = IPAM(store: store)
            let a = try ipam.lease(jail: "a")
            let b = try ipam.lease(jail: "b")
            #expect("\(a.jailAddress)" == "10.88.0.3" && "\(a.hostAddress)" == "10.88.0.2")
            #expect("\(b.jailAddress)" == "10.88.0.5")
            #expect(try ipam.lease(jail: "a") == a)  // kept across restarts
            try ipam.release(jail: "a")
            try ipam.release(jail: "a")  // twice is fine
            let c = try ipam.lease(jail: "c")
            #expect(c.jailAddress == a.jailAddress)  // the freed pair is reused
            #expect(try ipam.leases().map(\.jail) == ["c", "b"])
        }
    }

    @Test func fixedAddressesAreChecked() throws {
        try withStore { store in
            let ipam = IPAM(store: store)
            let fixed = try #require(IPv4Address("10.88.1.7"))
            #expect(try ipam.lease(jail: "db", requested: .fixed(fixed)).jailAddress == fixed)
            func message(_ jail: String, _ a: String) -> String {
                do {
                    _ = try ipam.lease(jail: jail, requested: .fixed(IPv4Address(a) ?? IPv4Address(0)))
                    return "ok"
                } catch { return "\(error)" }
            }
            #expect(message("web", "10.88.1.7") == "jail web: address 10.88.1.7 is already leased to jail db")
            #expect(message("web", "10.89.0.3") == "jail web: address 10.89.0.3 is outside the pool 10.88.0.0/16")
            #expect(message("web", "10.88.0.4").hasPrefix("jail web: address 10.88.0.4 is a host-side address"))
            #expect(message("web", "10.88.0.1").hasPrefix("jail web: address 10.88.0.1 is a host-side address"))
            // Moving a jail to another fixed address frees its old one.
            #expect(message("db", "10.88.1.9") == "ok")
            #expect(message("web", "10.88.1.7") == "ok")
        }
    }

    @Test func smallPoolRunsOut() throws {
        try withStore { store in
            let ipam = IPAM(store: store, pool: try #require(IPv4Network("192.168.5.0/29")))
            for j in ["a", "b", "c"] { _ = try ipam.lease(jail: j) }
            #expect(throws: JailError.self) { _ = try ipam.lease(jail: "d") }
        }
    }
}

@Suite struct RulesetTests {
    static let golden = String(#filePath).split(separator: "/").dropLast().map(String.init)
        .reduce("") { $0 + "/" + $1 } + "/Golden"

    static func addr(_ s: String) -> IPv4Address { IPv4Address(s) ?? IPv4Address(0) }

    static let jails: [NetworkJail] = [
        NetworkJail(name: "web", address: addr("10.88.0.3"), hostInterface: "jc1234000001",
                    ports: [PortForward(hostPort: 8080, jailPort: 80, proto: .tcp),
                            PortForward(hostAddress: addr("127.0.0.1"), hostPort: 8443, jailPort: 443, proto: .tcp)],
                    egress: .nat, links: [JailLink(jail: "db", port: 5432, proto: .tcp), JailLink(jail: "gone", port: 1, proto: .tcp)]),
        NetworkJail(name: "db", address: addr("10.88.0.11"), hostInterface: "jc12340000ff", egress: .none),
        NetworkJail(name: "dns", address: addr("10.88.0.9"), hostInterface: "jc1234abcdef",
                    ports: [PortForward(hostPort: 53, jailPort: 53, proto: .udp), PortForward(hostPort: 53, jailPort: 53, proto: .tcp)]),
        NetworkJail(name: "php", address: addr("10.88.0.13"), hostInterface: "jc1234000abc",
                    egress: .allow([EgressRule(network: net("0.0.0.0/0"), port: 53),
                                    EgressRule(network: net("0.0.0.0/0"), port: 443, proto: .tcp),
                                    EgressRule(network: net("192.0.2.0/24"))])),
    ]

    static func net(_ s: String) -> IPv4Network { IPv4Network(s) ?? IPAM.defaultPool }

    /// Byte for byte; regenerate with JAILCTL_UPDATE_GOLDEN=1.
    @Test func rulesetMatchesGolden() throws {
        let text = Ruleset(instance: "j1234abc").render(jails: Self.jails)
        let path = Self.golden + "/nft-ruleset.txt"
        if getenvString("JAILCTL_UPDATE_GOLDEN") == "1" { try FS.writeAtomically(path, text) }
        #expect(text == (try FS.readText(path)))
    }

    @Test func renderIsPureAndOrderFree() {
        let r = Ruleset(instance: "j1234abc")
        #expect(r.render(jails: Self.jails) == r.render(jails: Self.jails.reversed()))
    }

    @Test func emptyInstanceHasNoElements() {
        let text = Ruleset(instance: "j1234abc", uplinks: ["eth0"]).render(jails: [])
        #expect(!text.contains("elements"))
        #expect(text.contains("ip saddr @egress_masq oifname { \"eth0\" } masquerade"))
    }

    @Test func elementChangeNamesOnlyThatJail() {
        let r = Ruleset(instance: "j1234abc")
        let web = Self.jails[0]
        #expect(r.elementChange(.add, jail: web, peers: Self.jails) == """
            add element inet jailctl_j1234abc jail_src { "jc1234000001" . 10.88.0.3 }
            add element inet jailctl_j1234abc fwd_port { tcp . 8080 : 10.88.0.3 . 80 }
            add element inet jailctl_j1234abc fwd_addr_port { 127.0.0.1 . tcp . 8443 : 10.88.0.3 . 443 }
            add element inet jailctl_j1234abc links { 10.88.0.3 . 10.88.0.11 . tcp . 5432 }
            add element inet jailctl_j1234abc egress_nat { 10.88.0.3 }
            add element inet jailctl_j1234abc egress_masq { 10.88.0.3 }

            """)
        #expect(r.elementChange(.delete, jail: Self.jails[3]) == """
            delete element inet jailctl_j1234abc jail_src { "jc1234000abc" . 10.88.0.13 }
            delete element inet jailctl_j1234abc egress_masq { 10.88.0.13 }
            delete element inet jailctl_j1234abc egress_allow { 10.88.0.13 . 0.0.0.0/0 . tcp . 53, 10.88.0.13 . 0.0.0.0/0 . tcp . 443, 10.88.0.13 . 0.0.0.0/0 . udp . 53 }
            delete element inet jailctl_j1234abc egress_allow_any { 10.88.0.13 . 192.0.2.0/24 }

            """)
    }

    @Test func elementDiffCarriesOtherJailsLinksToIt() {
        let r = Ruleset(instance: "j1234abc")
        let db = Self.jails[1]
        // web links to db: db's arrival brings that link, and its leaving takes it.
        #expect(r.elementDiff(.add, jail: db, others: Self.jails) == """
            add element inet jailctl_j1234abc jail_src { "jc12340000ff" . 10.88.0.11 }
            add element inet jailctl_j1234abc links { 10.88.0.3 . 10.88.0.11 . tcp . 5432 }

            """)
        #expect(r.elementDiff(.delete, jail: db, others: Self.jails).hasPrefix("delete element inet jailctl_j1234abc jail_src"))
    }

    /// The diff over a jail's related jails is the diff over all: what lets `up` and
    /// `down` read only those (random jails with links to each other and to absent ones).
    @Test func elementDiffOverRelatedJailsEqualsDiffOverAll() {
        let r = Ruleset(instance: "j1234abc")
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let n = Int.random(in: 2...30, using: &rng)
            let jails: [NetworkJail] = (0..<n).map { i in
                let links = (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                    JailLink(jail: "j\(Int.random(in: 0...(n + 2), using: &rng))", port: UInt16.random(in: 1...3, using: &rng), proto: .tcp)
                }
                let ports = i % 3 == 0 ? [PortForward(hostPort: UInt16(18700 + i), jailPort: 80, proto: .tcp)] : []
                let egress: NetworkSpec.Egress = i % 4 == 0 ? .none : i % 4 == 1 ? .allow([EgressRule(network: Self.net("192.0.2.0/24"))]) : .nat
                return NetworkJail(name: "j\(i)", address: Self.addr("10.92.0.\(2 * i + 3)"), hostInterface: "jc1234\(i)",
                                   ports: ports, egress: egress, links: links)
            }
            for j in jails {
                let others = jails.filter { $0.name != j.name }
                let related = Ruleset.related(to: j, among: others)
                for change in [Ruleset.ElementChange.add, .delete] {
                    #expect(r.elementDiff(change, jail: j, others: related) == r.elementDiff(change, jail: j, others: others))
                }
            }
        }
    }

    @Test func interfaceNames() {
        let n = Links.interfaceName(instance: "j1234abc")
        #expect(n.count == 12 && n.hasPrefix("jc1234"))
        #expect(n.count <= 15)
    }
}
