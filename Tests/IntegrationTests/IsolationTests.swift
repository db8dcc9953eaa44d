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
        #expect(r["Seccomp"] == "2")
        for call in ["keyctl", "bpf", "unshare_user", "mount", "perf_event_open", "ptrace", "settime", "mknod", "raw_socket"] {
            #expect(r["try:\(call)"] == "Operation not permitted", "\(call): \(r["try:\(call)"] ?? "?")")
        }
        // /proc/kallsyms (kernel addresses) is /dev/null; /proc/sys is read-only even to root.
        let (_, syms) = try f.exec("tight", ["/bin/cat", "/proc/kallsyms"])
        #expect(syms.isEmpty)
        let (st, _) = try f.exec("tight", ["/bin/sh", "-c", "echo 1 > /proc/sys/kernel/domainname"])
        #expect(st != 0)
        // The whole /proc is read-only: the sysrq trigger and the jail's own entries too.
        for file in ["/proc/sysrq-trigger", "/proc/self/oom_score_adj", "/proc/irq/default_smp_affinity"] {
            let (w, out) = try f.exec("tight", ["/bin/sh", "-c", "echo 0 > \(file)"])
            #expect(w != 0, "\(file): \(out)")
        }
        #expect(try f.exec("tight", ["/bin/sh", "-c", "echo 0 > /proc/self/oom_score_adj"]).1.contains("Read-only file system"))
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
            [seccomp]
            allow = ["ptrace"]
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
        // ptrace is let through seccomp; the kernel then refuses to trace pid 1 without
        // CAP_SYS_PTRACE (EPERM) — but keyctl, still denied, stays EPERM from the filter.
        #expect(r["Seccomp"] == "2")
        #expect(r["try:keyctl"] == "Operation not permitted")
        let (cp, _) = try f.exec("loose", ["/bin/sh", "-c", "cat \(f.probe) > /tmp/p && chmod 755 /tmp/p && /tmp/p exit 0"])
        #expect(cp == 0)
        let (_, out) = try f.exec("loose", ["/bin/sh", "-c", "ulimit -n"])
        #expect(out == "4096\n")
        _ = try f.manager.down("loose")
        // The writable layer went with the jail; the shared image was never written.
        #expect(!FS.exists(f.manager.root.jailRun("loose")))
    }
}

@Suite("User namespaces (root)", .serialized)
struct UserNamespaceTests {
    /// The host's view of a process's ids: "Uid: real effective saved fs".
    func hostUid(_ pid: Int32) -> String? {
        let status = (try? FS.readText("/proc/\(pid)/status")) ?? ""
        return status.split(separator: "\n").first { $0.hasPrefix("Uid:") }.map {
            String($0.split(separator: "\t").dropFirst().first ?? "")
        }
    }

    @Test func tenantsAreNobodyOutsideAndStrangersToEachOther() throws {
        let f = try JailFixture("userns")
        defer { f.cleanUp() }
        let shared = f.dir.path + "/shared"
        try FS.mkdirs(shared + "/a-private")
        try FS.writeAtomically(shared + "/host-file", "host\n", mode: 0o644)
        let volume = """
            userns = true
            [[volumes]]
            source = "\(shared)"
            target = "/shared"
            """
        try f.sleeper("tenant-a", extra: volume)
        try f.sleeper("tenant-b", extra: volume)
        let a = try f.manager.up("tenant-a").status
        let b = try f.manager.up("tenant-b").status
        let rangeA = try f.manager.state.idRange(for: "tenant-a")
        let rangeB = try f.manager.state.idRange(for: "tenant-b")
        #expect(rangeA.base != rangeB.base)
        #expect(rangeA.base >= StateStore.idRangeStart)
        // Root inside, an unprivileged stranger outside.
        #expect(hostUid(a.pid ?? -1) == "\(rangeA.base)")
        #expect(hostUid(b.pid ?? -1) == "\(rangeB.base)")
        let (_, inside) = try f.exec("tenant-a", [f.probe, "report"])
        #expect(probeReport(inside)["uid"] == "0")

        // A's private directory, owned by A's root with mode 0700.
        try check("chown", chown(shared + "/a-private", rangeA.base, rangeA.base))
        chmod(shared + "/a-private", 0o700)
        let (wa, _) = try f.exec("tenant-a", ["/bin/sh", "-c", "echo secret > /shared/a-private/key"])
        #expect(wa == 0)
        let (rb, out) = try f.exec("tenant-b", ["/bin/cat", "/shared/a-private/key"])
        #expect(rb != 0)
        #expect(out.contains("Permission denied"))
        // Host files are not writable by either root.
        let (wh, _) = try f.exec("tenant-b", ["/bin/sh", "-c", "echo x >> /shared/host-file"])
        #expect(wh != 0)
        #expect(try FS.readText(shared + "/host-file") == "host\n")
        // B cannot see A's processes at all.
        let (_, ps) = try f.exec("tenant-b", [f.probe, "report"])
        #expect(probeReport(ps)["pids"]?.split(separator: ",").count ?? 0 <= 2)
        _ = try f.manager.down("tenant-a")
        _ = try f.manager.down("tenant-b")
        // The range stays leased to the jail across restarts.
        #expect(try f.manager.state.idRange(for: "tenant-a").base == rangeA.base)
    }

    @Test func createdVolumeIsOwnedThroughTheIdMap() throws {
        let f = try JailFixture("volown")
        defer { f.cleanUp() }
        let data = f.dir.path + "/srv/tenant/data"
        try f.sleeper("owned", extra: """
            userns = true
            user = 1000
            [[volumes]]
            source = "\(data)"
            target = "/data"
            create = true
            mode = "0750"
            """)
        let status = try f.manager.up("owned").status
        let range = try f.manager.state.idRange(for: "owned")
        var st = stat()
        #expect(stat(data, &st) == 0)
        #expect(st.st_uid == range.base + 1000 && st.st_gid == range.base + 1000)
        #expect(st.st_mode & 0o7777 == 0o750)
        #expect(stat(f.dir.path + "/srv", &st) == 0 && st.st_uid == 0 && st.st_mode & 0o777 == 0o755)
        #expect(hostUid(status.pid ?? -1) == "\(range.base + 1000)")
        let (w, out) = try f.exec("owned", ["/bin/sh", "-c", "echo mine > /data/file && cat /data/file"])
        #expect(w == 0 && out == "mine\n", "\(out)")
        _ = try f.manager.down("owned")
        // An existing source is the sysadmin's: a second up leaves owner and mode alone.
        chmod(data, 0o700)
        _ = try f.manager.up("owned")
        #expect(stat(data, &st) == 0 && st.st_mode & 0o7777 == 0o700)
        _ = try f.manager.down("owned")

        // A failed up removes the directories it made, and only those.
        try FS.writeAtomically(f.dir.path + "/bin/garbage", "not a program\n", mode: 0o755)
        try f.image("broken", "binaries = [\"/bin/sh\"]\nfiles = [\"\(f.dir.path)/bin/garbage\"]")
        try f.jail("fails", """
            image = "broken"
            command = ["\(f.dir.path)/bin/garbage"]
            [[volumes]]
            source = "\(f.dir.path)/srv/new/deep/vol"
            target = "/vol"
            create = true
            """)
        #expect(throws: (any Error).self) { try f.manager.up("fails") }
        #expect(!FS.exists(f.dir.path + "/srv/new"))
        #expect(FS.exists(data))
    }
}

@Suite("Limits (root)", .serialized)
struct LimitTests {
    @Test func forkLoopStopsAtThePidsLimit() throws {
        let f = try JailFixture("pids")
        defer { f.cleanUp() }
        try f.sleeper("forky", extra: "[limits]\npids = 20")
        _ = try f.manager.up("forky")
        let (status, out) = try f.exec("forky", [f.probe, "forks", "100"])
        #expect(status == 0)
        let forked = Int(probeReport(out)["forked"] ?? "") ?? -1
        // 20 in all: pid 1 and the probe itself take two.
        #expect(forked > 0 && forked <= 18, "forked \(forked)")
        #expect(try f.manager.stats(of: "forky").pidsCurrent ?? 0 <= 20)
        _ = try f.manager.down("forky")
        #expect(!FS.exists(try f.manager.cgroup(of: "forky").directories.first ?? "/nonexistent"))
    }

    @Test func memoryHogIsOOMKilledAndReported() throws {
        let f = try JailFixture("oom")
        defer { f.cleanUp() }
        try f.jail("hog", """
            image = "probe"
            command = ["\(f.probe)", "alloc", "1024"]
            [limits]
            memory = "32M"
            memory_swap = "0"
            """)
        _ = try f.manager.up("hog")
        var s = try f.manager.status(of: "hog")
        let deadline = monotonic() + 20
        while s?.state == .running && monotonic() < deadline {
            usleep(20_000)
            s = try f.manager.status(of: "hog")
        }
        #expect(s?.state == .exited)
        #expect(s?.signal == 9)
        #expect(s?.oomKilled == true)
        #expect(s?.summary == "exited (signal 9, OOM)")
        #expect(try f.manager.state.events(jail: "hog").contains { $0.kind == "oom" })
        _ = try f.manager.down("hog")
    }

    @Test func cpuQuotaHoldsABusyLoop() throws {
        let f = try JailFixture("cpu")
        defer { f.cleanUp() }
        try f.jail("spin", """
            image = "probe"
            command = ["\(f.probe)", "spin", "30"]
            [limits]
            cpu = 0.2
            """)
        _ = try f.manager.up("spin")
        usleep(300_000)
        let a = try f.manager.stats(of: "spin").cpuUsageMicros ?? 0
        let t0 = monotonic()
        usleep(2_000_000)
        let b = try f.manager.stats(of: "spin").cpuUsageMicros ?? 0
        let share = Double(b - a) / 1e6 / (monotonic() - t0)
        #expect(share > 0.1 && share < 0.3, "used \(share) CPUs")
        _ = try f.manager.down("spin", timeout: 1)
    }
}
