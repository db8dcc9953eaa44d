import Foundation
import Glibc
import Testing

@testable import JailKit

/// A network namespace and a veth pair of the test's own: the client side of the
/// end-to-end test. Addresses 10.90.255.0/30 (host .1, client .2), gone at `remove`.
struct ClientNamespace {
    let name: String
    let hostInterface: String
    static let hostAddress = "10.90.255.1"

    init() throws {
        let tag = String(UInt32.random(in: 0..<0xffffff), radix: 16)
        name = "jt-php-" + tag
        hostInterface = "jtphp" + tag
        for argv in [["/usr/bin/ip", "netns", "add", name],
                     ["/usr/bin/ip", "link", "add", hostInterface, "type", "veth", "peer", "name", "eth0", "netns", name],
                     ["/usr/bin/ip", "addr", "add", Self.hostAddress + "/30", "dev", hostInterface],
                     ["/usr/bin/ip", "link", "set", hostInterface, "up"],
                     ["/usr/bin/ip", "-n", name, "addr", "add", "10.90.255.2/30", "dev", "eth0"],
                     ["/usr/bin/ip", "-n", name, "link", "set", "eth0", "up"],
                     ["/usr/bin/ip", "-n", name, "link", "set", "lo", "up"]]
        {
            guard run(argv) == 0 else {
                remove()
                throw JailError(.system, "test network: \(argv.joined(separator: " ")) failed")
            }
        }
    }

    /// curl inside the namespace; returns (exit status, body).
    func curl(_ args: [String]) -> (Int32, String) {
        capture(["/usr/bin/ip", "netns", "exec", name, "/usr/bin/curl", "-s", "-m", "10"] + args)
    }

    func remove() {
        _ = run(["/usr/bin/ip", "link", "del", hostInterface])
        _ = run(["/usr/bin/ip", "netns", "del", name])
    }
}

func site(_ name: String) -> [String: String] {
    [
        "index.php": #"<?php echo "site @TENANT@ uid=", posix_getuid(), " docroot=", $_SERVER['DOCUMENT_ROOT'], " script=", $_SERVER['SCRIPT_FILENAME'], " tz=", date_default_timezone_get(), "\n";"#
            .replacingOccurrences(of: "@TENANT@", with: name),
        "static.txt": "static of \(name)\n",
        "upload.php": #"<?php $f = $_FILES['f']; echo move_uploaded_file($f['tmp_name'], __DIR__ . '/uploads/' . basename($f['name'])) ? "stored" : "failed";"#,
        "uploads/.keep": "",
    ]
}

@Suite("Shared hosting end to end (root)", .serialized)
struct TenantEndToEndTests {
    @Test func twoTenantsServedByNginxToAClientNamespace() throws {
        let net = try ClientNamespace()
        defer { net.remove() }
        let f = try HostingFixture("hosting", port: 18080, listen: ClientNamespace.hostAddress)
        defer { f.cleanUp() }
        let alice = try f.addTenant("alice", files: site("alice"))
        let bob = try f.addTenant("bob", files: site("bob"))
        try f.startNginx()

        // Each site's own dynamic output, as its tenant, with the paths its jail sees.
        let (s1, a) = net.curl(["-H", "Host: alice.test", "http://\(ClientNamespace.hostAddress):18080/"])
        #expect(s1 == 0)
        #expect(a.hasPrefix("site alice uid=1000 docroot=/srv/www script=/srv/www/index.php tz="))
        let (_, b) = net.curl(["-H", "Host: bob.test", "http://\(ClientNamespace.hostAddress):18080/index.php"])
        #expect(b.hasPrefix("site bob uid=1000 docroot=/srv/www script=/srv/www/index.php"))
        // Static files come from nginx.
        #expect(net.curl(["-H", "Host: alice.test", "http://\(ClientNamespace.hostAddress):18080/static.txt"]).1 == "static of alice\n")
        #expect(net.curl(["-H", "Host: bob.test", "http://\(ClientNamespace.hostAddress):18080/static.txt"]).1 == "static of bob\n")

        // An uploaded .php in a writable directory runs as the tenant, on the host too.
        let payload = f.dir.path + "/who.php"
        try FS.writeAtomically(payload, #"<?php echo "uid=", posix_getuid(), " euid=", posix_geteuid();"#)
        let (s2, stored) = net.curl(["-H", "Host: alice.test", "-F", "f=@\(payload)", "http://\(ClientNamespace.hostAddress):18080/upload.php"])
        #expect(s2 == 0)
        #expect(stored == "stored")
        let (_, who) = net.curl(["-H", "Host: alice.test", "http://\(ClientNamespace.hostAddress):18080/uploads/who.php"])
        #expect(who == "uid=1000 euid=1000")
        let hostUid = try #require(alice.hostUid)
        #expect(hostUid == alice.uid + (try #require(try f.manager.state.existingIdRange(for: "php-tenant@alice"))).base)
        let workers = f.workers(of: "alice")
        #expect(!workers.isEmpty)
        #expect(workers.allSatisfy { $0.uid == hostUid })
        #expect(!workers.contains { $0.uid == 0 || $0.uid == 33 })
        #expect(alice.hostUid != bob.hostUid)

        // Template instances through the ordinary commands.
        #expect(try f.manager.expandNames(["php-tenant@*"]) == ["php-tenant@alice", "php-tenant@bob"])
        #expect(try f.manager.statuses().filter { $0.state == .running }.map(\.name) == ["php-tenant@alice", "php-tenant@bob"])
        #expect(try f.tenants.info("alice").state == "running")
        // php-fpm's own log lines reach the jail's log.
        let log = try FS.readText(f.manager.root.jailLog("php-tenant@alice"))
        #expect(log.contains("ready to handle connections"))
    }
}
