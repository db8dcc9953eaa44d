import Glibc
import Testing

@testable import JailKit

/// A private-network jail through `up`/`down`: its address on a veth pair, the instance's
/// nftables table, and nothing left after `down`. Traffic goes only from the host to the
/// jail's own address, inside a namespace this test made.
@Suite("Jail network (root)", .serialized)
struct JailNetworkTests {
    /// Connects to addr:port and returns what the server says.
    func ask(_ address: String, _ port: UInt16) -> String? {
        guard let s = tcpConnect(address, port) else { return nil }
        defer { close(s) }
        return readPipe(s)
    }

    @Test func privateJailGetsAnAddressAndLeavesNothing() throws {
        // A pool of this test's own, apart from the default one a real jailctl would use.
        let f = try JailFixture("net", host: "[network]\npool = \"10.87.0.0/24\"\ndns = [\"192.0.2.53\"]")
        defer { f.cleanUp() }
        try f.jail("web", """
            image = "probe"
            command = ["\(f.probe)", "serve", "8080"]
            hostname = "www"
            [network]
            mode = "private"
            egress = "none"
            ports = ["18978:8080/tcp"]
            """)
        _ = try f.manager.up("web")
        let attachment = try FS.readText(f.manager.root.jailRun("web") + "/network").split(separator: " ")
        #expect(attachment.count == 2)
        let ifname = String(attachment.first ?? "")
        let address = String(attachment.last ?? "").trimmingCharacters(in: .newlines)
        #expect(address == "10.87.0.3")
        // Its own /etc/hosts and /etc/resolv.conf, read-only.
        #expect(try f.exec("web", ["/bin/cat", "/etc/hosts"]).1.hasSuffix("10.87.0.3\twww\n"))
        #expect(try f.exec("web", ["/bin/cat", "/etc/resolv.conf"]).1 == "nameserver 192.0.2.53\n")
        #expect(try f.exec("web", ["/bin/sh", "-c", "echo x >> /etc/hosts"]).0 != 0)
        #expect(FS.exists("/sys/class/net/\(ifname)"))
        #expect(run(["/usr/sbin/nft", "list", "table", "inet", "jailctl_\(f.manager.root.instance)"]) == 0)
        // The server in the jail sees the host side of its point-to-point link.
        var reply: String?
        let deadline = monotonic() + 5
        while reply == nil && monotonic() < deadline {
            reply = ask(address, 8080)
            if reply == nil { usleep(50_000) }
        }
        #expect(reply == "hello 10.87.0.2\n")
        // Another tool flushes our table; reapply restores it from the state.
        let table = "jailctl_\(f.manager.root.instance)"
        #expect(run(["/usr/sbin/nft", "delete", "table", "inet", table]) == 0)
        try f.manager.applyFirewall()
        #expect(run(["/usr/sbin/nft", "list", "table", "inet", table]) == 0)
        #expect(try f.manager.attachedJails().map(\.name) == ["web"])
        // A broken spec file later does not change what the running jail's rules are:
        // they come from the policy recorded at attach (egress none stays none).
        try f.jail("web", "image = ")
        try f.manager.applyFirewall()
        let listed = try f.manager.network.nft.query(["list", "table", "inet", table])
        #expect(listed.contains("tcp . 18978 : 10.87.0.3 . 8080"), "\(listed)")
        #expect(!listed.contains("egress_nat {\n\t\ttype ipv4_addr\n\t\telements"), "\(listed)")
        _ = try f.manager.down("web")
        // The address stays leased to the jail; the link and the table are gone.
        #expect(try f.manager.network.ipam.existing(jail: "web") != nil)
        try f.manager.purge("web")
        #expect(try f.manager.network.ipam.existing(jail: "web") == nil)
        #expect(try f.manager.state.jail("web") == nil)
        #expect(!FS.exists(f.manager.root.jailLog("web")))
        let gone = monotonic() + 2
        while FS.exists("/sys/class/net/\(ifname)") && monotonic() < gone { usleep(20_000) }
        #expect(!FS.exists("/sys/class/net/\(ifname)"))
        #expect(run(["/usr/sbin/nft", "list", "table", "inet", "jailctl_\(f.manager.root.instance)"]) != 0)
    }
}

@Suite("Jail network rollback (root)", .serialized)
struct JailNetworkRollbackTests {
    @Test func failedUpLeavesNoLeaseLinkOrTable() throws {
        let f = try JailFixture("netfail", host: "[network]\npool = \"10.87.0.0/24\"")
        defer { f.cleanUp() }
        try FS.writeAtomically(f.dir.path + "/bin/garbage", "not a program\n", mode: 0o755)
        try f.image("broken", "binaries = [\"/bin/sh\"]\nfiles = [\"\(f.dir.path)/bin/garbage\"]")
        try f.jail("web", """
            image = "broken"
            command = ["\(f.dir.path)/bin/garbage"]
            [network]
            mode = "private"
            """)
        #expect(throws: JailError.self) { _ = try f.manager.up("web") }
        #expect(try f.manager.network.ipam.existing(jail: "web") == nil)
        #expect(try f.manager.network.leaks().isEmpty)
        #expect(run(["/usr/sbin/nft", "list", "table", "inet", "jailctl_\(f.manager.root.instance)"]) != 0)
    }
}
