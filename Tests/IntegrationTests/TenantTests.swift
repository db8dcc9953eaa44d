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
        let f = try HostingFixture("hosting", port: 18080, pool: "10.90.0.0/26", listen: ClientNamespace.hostAddress)
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

@Suite("Tenant commands through the CLI (root)", .serialized)
struct TenantCLITests {
    /// Runs jailctl with the fixture's root and specs; returns (exit code, stdout+stderr).
    func jailctl(_ f: HostingFixture, _ args: [String]) -> (Int32, String) {
        runJailctl(root: f.manager.root.path, specs: f.specs, args)
    }

    @Test func aTenantWhoseJailFailsLeavesNothing() throws {
        // A volume whose source nobody makes: `up` fails after the tenant was recorded.
        let f = try HostingFixture("tenant-fail", port: 18087, pool: "10.90.0.128/26") {
            $0.replacingOccurrences(of: "[limits]", with: "[[volumes]]\nsource = \"%h/missing\"\ntarget = \"/srv/data\"\n\n[limits]")
        }
        defer { f.cleanUp() }
        let error = #expect(throws: JailError.self) { try f.tenants.add("frank", options: TenantOptions()) }
        #expect(error?.message.contains("volume source \(f.manager.instanceHome("frank"))/missing") == true, "\(String(describing: error))")
        #expect(try f.manager.state.tenant("frank") == nil)
        #expect(try f.manager.state.existingIdRange(for: "php-tenant@frank") == nil)
        #expect(!FS.exists(f.manager.instanceHome("frank")))
        #expect(try f.manager.status(of: "php-tenant@frank") == nil)
    }

    @Test func addShowListPatternsAndRemove() throws {
        let f = try HostingFixture("tenant-cli", port: 18086, pool: "10.90.0.128/26")
        defer { f.cleanUp() }
        var (code, out) = jailctl(f, ["tenant", "add", "carol", "--domain", "carol.example", "--memory", "200M", "--pids", "40"])
        #expect(code == 0, "\(out)")
        (code, out) = jailctl(f, ["tenant", "add", "dave"])
        #expect(code == 0, "\(out)")

        (code, out) = jailctl(f, ["tenant", "show", "carol", "--json"])
        #expect(code == 0)
        let carol = try JSONDecoder().decode(TenantInfo.self, from: Data(out.utf8))
        #expect(carol.domain == "carol.example")
        #expect(carol.state == "running")
        #expect(carol.webroot == f.manager.root.path + "/tenants/carol/www")
        #expect(carol.documentRoot == "/srv/www")
        #expect(carol.socket == f.manager.root.path + "/tenants/carol/run/php.sock")
        #expect(carol.limits.memory == 200 << 20)
        #expect(carol.limits.pids == 40)
        #expect(carol.uid == 1000)
        let range = try #require(try f.manager.state.existingIdRange(for: "php-tenant@carol"))
        #expect(carol.hostUid == range.base + 1000)
        // The limits the jail really got: the override, in its cgroup.
        #expect(try f.manager.cgroup(of: "php-tenant@carol").directories.contains { FS.exists($0 + "/pids.max") })
        // Ownership on the host: the web root is the tenant's, the socket's directory is
        // shared only with the web server's group, home only with the jail's root and it.
        var st = stat()
        #expect(stat(carol.webroot, &st) == 0 && st.st_uid == range.base + 1000 && st.st_mode & 0o777 == 0o755)
        #expect(stat(f.manager.root.path + "/tenants/carol/run", &st) == 0 && st.st_uid == range.base + 1000
                && st.st_gid == 33 && st.st_mode & 0o777 == 0o750)
        #expect(stat(carol.home, &st) == 0 && st.st_uid == range.base && st.st_gid == 33 && st.st_mode & 0o777 == 0o750)

        (code, out) = jailctl(f, ["tenant", "list", "--json"])
        let list = try JSONDecoder().decode([TenantInfo].self, from: Data(out.utf8))
        #expect(list.map(\.name) == ["carol", "dave"])
        #expect(list.map(\.domain) == ["carol.example", "dave.test"])

        (code, out) = jailctl(f, ["status", "php-tenant@*"])
        #expect(code == 0)
        #expect(out.contains("php-tenant@carol") && out.contains("php-tenant@dave"))
        (code, out) = jailctl(f, ["down", "php-tenant@*"])
        #expect(out == "php-tenant@carol: stopped\nphp-tenant@dave: stopped\n")
        (code, out) = jailctl(f, ["up", "php-tenant@*"])
        #expect(code == 0)
        #expect(out.contains("php-tenant@carol: running") && out.contains("php-tenant@dave: running"))

        // The supervisor health-checks instances through php-fpm's ping page over the
        // tenant's socket, and restarts one whose master was killed.
        let daemon = try spawn([CLITests.binary, "daemon"],
                               env: ["JAILCTL_ROOT=\(f.manager.root.path)", "JAILCTL_SPECS=\(f.specs)", "PATH=/usr/bin:/bin"],
                               appendTo: f.dir.path + "/daemon.log")
        defer {
            kill(daemon, SIGTERM)
            var st: Int32 = 0
            waitpid(daemon, &st, 0)
        }
        var healthy = false
        let deadline = monotonic() + 20
        while !healthy && monotonic() < deadline {
            healthy = try f.manager.status(of: "php-tenant@dave")?.health == .healthy
            if !healthy { usleep(200_000) }
        }
        #expect(healthy, "\((try? FS.readText(f.dir.path + "/daemon.log")) ?? "")")
        let before = try #require(try f.manager.state.jail("php-tenant@dave"))
        #expect(kill(before.pid, SIGKILL) == 0)
        var restarted = false
        let again = monotonic() + 15
        while !restarted && monotonic() < again {
            if let now = try f.manager.state.jail("php-tenant@dave"), now.pid != before.pid, f.manager.isAlive(now) { restarted = true }
            if !restarted { usleep(100_000) }
        }
        #expect(restarted)

        let confDir = f.dir.path + "/sites"
        try FS.mkdirs(confDir)
        (code, out) = jailctl(f, ["tenant", "nginx-config", "carol", "--write", confDir])
        #expect(code == 0)
        #expect(try FS.readText(confDir + "/carol.conf").contains("server_name carol.example;"))

        // The jail has what a PHP site needs: CA certificates, the zone, a resolver.
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let status = try f.manager.exec("php-tenant@carol", argv: ["/bin/sh", "-c",
            "for p in /etc/ssl/certs/ca-certificates.crt /etc/resolv.conf /etc/localtime /usr/share/zoneinfo/America/New_York; do [ -e $p ] && echo $p; done"],
            stdio: .init(stdin: -1, stdout: fds[1], stderr: fds[1]))
        close(fds[1])
        let found = readPipe(fds[0])
        close(fds[0])
        #expect(status == 0)
        #expect(found == "/etc/ssl/certs/ca-certificates.crt\n/etc/resolv.conf\n/etc/localtime\n/usr/share/zoneinfo/America/New_York\n")

        // Bad input changes nothing.
        for args in [["tenant", "add", "Eve"], ["tenant", "add", "eve", "--domain", "no spaces"],
                     ["tenant", "add", "eve", "--domain", "carol.example"], ["tenant", "add", "eve", "--web-group", "no-such-group"],
                     ["tenant", "add", "eve", "--memory", "lots"], ["tenant", "add", "eve", "--template", "nothing"]]
        {
            (code, out) = jailctl(f, args)
            #expect(code != 0, "\(args): \(out)")
        }
        #expect(try f.manager.state.tenants().map(\.name) == ["carol", "dave"])
        #expect(!FS.exists(f.manager.root.path + "/tenants/eve"))
        #expect(try f.manager.state.existingIdRange(for: "php-tenant@eve") == nil)

        (code, out) = jailctl(f, ["tenant", "remove", "carol", "--purge"])
        #expect(code != 0)  // --purge needs --yes
        #expect(FS.exists(carol.home))
        (code, out) = jailctl(f, ["tenant", "remove", "carol", "--purge", "--yes"])
        #expect(code == 0, "\(out)")
        #expect(!FS.exists(carol.home))
        #expect(try f.manager.state.tenant("carol") == nil)
        #expect(try f.manager.state.jail("php-tenant@carol") == nil)
        (code, out) = jailctl(f, ["tenant", "remove", "dave"])
        #expect(code == 0)
        #expect(FS.exists(f.manager.root.path + "/tenants/dave/www"))  // kept without --purge
        #expect(try f.manager.status(of: "php-tenant@dave")?.state == .stopped)
    }
}
