import CJailLaunch
import Glibc
import Testing

@testable import JailKit

/// A private jail with IPv6 through `up`/`down`: its /127, /etc/hosts, the [::1] relay
/// (gone with `down`, back with an immediate `up`), the lease kept and purged. Traffic
/// only from this host to the jail's own address and to ::1.
@Suite("Jail IPv6 (root)", .serialized)
struct JailIPv6Tests {
    /// What a server at [address]:port says, or nil.
    func ask6(_ address: String, _ port: UInt16) -> String? {
        let s = socket(AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { return nil }
        defer { close(s) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var a = sockaddr_in6()
        a.sin6_family = sa_family_t(AF_INET6)
        a.sin6_port = port.bigEndian
        guard inet_pton(AF_INET6, address, &a.sin6_addr) == 1 else { return nil }
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        }
        guard rc == 0 else { return nil }
        let text = readPipe(s)
        return text.isEmpty ? nil : text
    }

    func eventually(_ address: String, _ port: UInt16) -> String? {
        let deadline = monotonic() + 5
        while monotonic() < deadline {
            if let r = ask6(address, port) { return r }
            usleep(50_000)
        }
        return nil
    }

    @Test func privateJailOnIPv6() throws {
        let f = try JailFixture("net6", host: "[network]\npool = \"10.86.0.0/24\"\npool6 = \"fd6a:6c00:91:3::/64\"\ndns = [\"192.0.2.53\"]")
        defer { f.cleanUp() }
        try f.jail("db", """
            image = "probe"
            command = ["\(f.probe)", "sleep", "3600"]
            [network]
            mode = "private"
            egress = "none"
            ports = ["[::1]:18611:5432/tcp"]
            """)
        try f.jail("web", """
            image = "probe"
            command = ["\(f.probe)", "serve6", "8080"]
            hostname = "www"
            [network]
            mode = "private"
            egress = "none"
            ports = ["[::1]:18610:8080/tcp"]
            links = ["db:5432/tcp"]
            """)
        _ = try f.manager.up("db")
        _ = try f.manager.up("web")
        let run = f.manager.root.jailRun("web")
        let fields = try FS.readText(run + "/network").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        #expect(fields.count == 3 && fields[1] == "10.86.0.5" && fields[2] == "fd6a:6c00:91:3::5", "\(fields)")
        let hosts = try f.exec("web", ["/bin/cat", "/etc/hosts"]).1
        #expect(hosts.contains("fd6a:6c00:91:3::5\twww\n") && hosts.contains("fd6a:6c00:91:3::3\tdb\n"), "\(hosts)")
        // The host reaches the jail's own IPv6 address (seen as the host side of the /127).
        #expect(eventually("fd6a:6c00:91:3::5", 8080) == "hello fd6a:6c00:91:3::4\n")
        // ... and its [::1] forward, through the relay.
        #expect(eventually("::1", 18610) == "hello fd6a:6c00:91:3::4\n")
        let table = try f.manager.network.nft.query(["list", "table", "inet", "jailctl_\(f.manager.root.instance)"])
        #expect(table.contains("set jail_src6") && table.contains(". fd6a:6c00:91:3::5"), "\(table)")
        var relay = try #require(Relay6(record: try FS.readText(run + "/relay6")))
        #expect(relay.isRunning)
        #expect(try f.manager.ensureRelays() == [])
        // Killed by hand: `network reapply` (and the daemon's reconcile) start it again.
        kill(relay.pid, SIGKILL)
        let dead = monotonic() + 2
        while relay.isRunning && monotonic() < dead { usleep(10_000) }
        #expect(ask6("::1", 18610) == nil)
        #expect(try f.manager.ensureRelays() == ["web"])
        relay = try #require(Relay6(record: try FS.readText(run + "/relay6")))
        #expect(eventually("::1", 18610) == "hello fd6a:6c00:91:3::4\n")
        // One jail's relay failing (a host process took its port) does not keep the
        // other's from starting; the failure is thrown after.
        let dbRelay = try #require(Relay6(record: try FS.readText(f.manager.root.jailRun("db") + "/relay6")))
        kill(dbRelay.pid, SIGKILL)
        kill(relay.pid, SIGKILL)
        let bothDead = monotonic() + 2
        while (relay.isRunning || dbRelay.isRunning) && monotonic() < bothDead { usleep(10_000) }
        // The port of the jail ensureRelays comes to first is taken, so the other one's
        // relay starting shows it went on.
        let first = try #require(try f.manager.attachedJails().map(\.name).first { $0 == "db" || $0 == "web" })
        let other = first == "db" ? "web" : "db"
        let squatter = jl_relay_listen(-1, first == "db" ? 18611 : 18610)
        try #require(squatter >= 0)
        #expect(throws: JailError.self) { try f.manager.ensureRelays() }
        let otherRelay = Relay6(record: try FS.readText(f.manager.root.jailRun(other) + "/relay6"))
        #expect(otherRelay?.isRunning == true && otherRelay != (other == "db" ? dbRelay : relay))
        close(squatter)
        #expect(try f.manager.ensureRelays() == [first])
        #expect(eventually("::1", 18610) == "hello fd6a:6c00:91:3::4\n")
        relay = try #require(Relay6(record: try FS.readText(run + "/relay6")))

        // down takes the relay with it; an immediate up binds the port again.
        _ = try f.manager.down("web")
        // Gone, or a zombie this VM's init has not reaped yet: either way it holds no port.
        #expect(!relay.isRunning)
        #expect(ask6("::1", 18610) == nil)
        _ = try f.manager.up("web")
        #expect(eventually("::1", 18610) == "hello fd6a:6c00:91:3::4\n")
        _ = try f.manager.down("web")
        // The lease stays across restarts, and goes with --purge.
        #expect(try IPAM6.existing(jail: "web", store: f.manager.state)?.jailAddress.description == "fd6a:6c00:91:3::5")
        try f.manager.purge("web")
        #expect(try IPAM6.existing(jail: "web", store: f.manager.state) == nil)
        #expect(try IPAM6.existing(jail: "db", store: f.manager.state) != nil)
        _ = try f.manager.down("db")
    }
}
