import Glibc
import Testing

@testable import JailKit

@Suite("Isolation (root)", .serialized)
struct IsolationTests {
    func report(_ f: JailFixture, _ name: String, _ args: [String] = []) throws -> [String: String] {
        let (status, out) = try f.exec(name, [f.probe, "report"] + args)
        #expect(status == 0)
        return probeReport(out)
    }

    @Test func defaultsHoldAHostileProcess() throws {
        let f = try JailFixture("iso")
        defer { f.cleanUp() }
        try f.sleeper("tight")
        _ = try f.manager.up("tight")
        let r = try report(f, "tight")
        for key in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] { #expect(r[key] == "0000000000000000", "\(key)") }
        #expect(r["no_new_privs"] == "1")
        // /proc/kallsyms (kernel addresses) is /dev/null; /proc/sys is read-only even to root.
        let (_, syms) = try f.exec("tight", ["/bin/cat", "/proc/kallsyms"])
        #expect(syms.isEmpty)
        let (st, _) = try f.exec("tight", ["/bin/sh", "-c", "echo 1 > /proc/sys/kernel/domainname"])
        #expect(st != 0)
        // Nothing runs from /tmp.
        let (cp, _) = try f.exec("tight", ["/bin/sh", "-c", "cat \(f.probe) > /tmp/p && chmod 755 /tmp/p && /tmp/p exit 0"])
        #expect(cp >> 8 == 126)
        let (lim, out) = try f.exec("tight", ["/bin/sh", "-c", "ulimit -n; ulimit -c"])
        #expect(lim == 0)
        #expect(out == "1024\n0\n")
        _ = try f.manager.down("tight")
    }

    @Test func specLoosensOnlyWhatItNames() throws {
        let f = try JailFixture("loose")
        defer { f.cleanUp() }
        try f.sleeper("loose", extra: """
            capabilities = ["NET_BIND_SERVICE", "CHOWN"]
            [filesystem]
            readonly_root = false
            tmp_exec = true
            [limits]
            nofile = 4096
            """)
        _ = try f.manager.up("loose")
        let r = try report(f, "loose", ["/etc"])
        // CHOWN is 0, NET_BIND_SERVICE 10.
        #expect(r["CapEff"] == "0000000000000401")
        #expect(r["CapBnd"] == "0000000000000401")
        #expect(r["CapAmb"] == "0000000000000401")
        #expect(r["writable:/"] == "yes")
        #expect(r["writable:/etc"] == "yes")
        let (cp, _) = try f.exec("loose", ["/bin/sh", "-c", "cat \(f.probe) > /tmp/p && chmod 755 /tmp/p && /tmp/p exit 0"])
        #expect(cp == 0)
        let (_, out) = try f.exec("loose", ["/bin/sh", "-c", "ulimit -n"])
        #expect(out == "4096\n")
        _ = try f.manager.down("loose")
        // The writable layer went with the jail; the shared image was never written.
        #expect(!FS.exists(f.manager.root.jailRun("loose")))
    }
}
