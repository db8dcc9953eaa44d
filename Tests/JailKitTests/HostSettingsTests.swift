import Testing

@testable import JailKit

/// `jailctl.toml`: host settings, their defaults and their diagnostics.
@Suite struct HostSettingsTests {
    func parse(_ source: String) -> (HostSettings?, [String]) {
        let (host, diagnostics) = SpecLoader.parseHost(source: source, file: "jailctl.toml")
        return (host, diagnostics.map(\.description))
    }

    @Test func emptyFileMeansDefaults() {
        let (host, lines) = parse("")
        #expect(lines == [])
        #expect(host == HostSettings())
        #expect(host?.pool.description == "10.88.0.0/16")
    }

    @Test func everyKey() throws {
        let (host, lines) = parse("""
            [network]
            pool = "192.168.77.0/24"
            uplink = ["eth0", "wlan0"]
            dns = ["192.0.2.53"]
            [supervisor]
            notify = ["/usr/local/bin/alert", "--to", "ops"]
            """)
        #expect(lines == [])
        let h = try #require(host)
        #expect(h.pool.description == "192.168.77.0/24")
        #expect(h.uplinks == ["eth0", "wlan0"])
        #expect(h.dns.map(\.description) == ["192.0.2.53"])
        #expect(h.notify == ["/usr/local/bin/alert", "--to", "ops"])
        #expect(parse("[network]\nuplink = \"eth1\"\n").0?.uplinks == ["eth1"])
    }

    @Test func badValuesNameLineFieldAndWhatIsValid() {
        let cases: [(String, String)] = [
            ("[network]\npool = \"8.8.0.0/16\"\n", "jailctl.toml:2:8: error: network.pool: 8.8.0.0/16 is not inside a private range"),
            ("[network]\npool = \"10.88.0.1/16\"\n", "jailctl.toml:2:8: error: network.pool: \"10.88.0.1/16\" is not an IPv4 network"),
            ("[network]\npool = \"10.0.0.0/31\"\n", "jailctl.toml:2:8: error: network.pool: a /31 pool is too small"),
            ("[network]\nuplink = \"a/b\"\n", "jailctl.toml:2:10: error: network.uplink: \"a/b\" is not an interface name"),
            ("[network]\ndns = [\"1.2.3\"]\n", "jailctl.toml:2:8: error: network.dns[0]: \"1.2.3\" is not an IPv4 address"),
            ("[supervisor]\nnotify = [\"alert\"]\n", "jailctl.toml:2:11: error: supervisor.notify[0]: \"alert\" is not an absolute path"),
            ("[network]\npol = \"10.0.0.0/8\"\n", "jailctl.toml:2:1: error: network.pol: unknown key in [network]; did you mean \"pool\"?"),
        ]
        for (source, expected) in cases {
            let (host, lines) = parse(source)
            #expect(host == nil, "\(source)")
            #expect(lines.count == 1 && lines[0].hasPrefix(expected), "\(lines) should start with \(expected)")
        }
    }
}

@Suite struct ResolvConfTests {
    @Test func hostServersButNotLoopback() {
        let host = "# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\nnameserver 2001:db8::1\nnameserver\t198.51.100.2\n"
        #expect(JailManager.resolvConf(dns: [], hostResolvConf: host) == "nameserver 192.0.2.1\nnameserver 198.51.100.2\n")
        #expect(JailManager.resolvConf(dns: IPv4Address("203.0.113.9").map { [$0] } ?? [], hostResolvConf: host) == "nameserver 203.0.113.9\n")
        #expect(JailManager.resolvConf(dns: [], hostResolvConf: "nameserver 127.0.0.53\n").hasPrefix("# jailctl: no name server"))
    }
}
