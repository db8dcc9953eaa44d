import Glibc
import Testing

@testable import JailKit

@Suite("Jail lifecycle (root)", .serialized)
struct JailLifecycleTests {
    @Test func upStatusExecDown() throws {
        let f = try JailFixture("life")
        defer { f.cleanUp() }
        let data = f.dir.path + "/data"
        try FS.mkdirs(data)
        try f.sleeper("web", extra: """
            hostname = "web-host"
            [[volumes]]
            source = "\(data)"
            target = "/srv/data"
            [[volumes]]
            source = "\(data)"
            target = "/tmp/ro"
            readonly = true
            """)
        let up = try f.manager.up("web")
        #expect(!up.alreadyRunning)
        #expect(up.status.state == .running)
        let again = try f.manager.up("web")
        #expect(again.alreadyRunning)
        #expect(try f.manager.status(of: "web")?.state == .running)

        let (status, out) = try f.exec("web", [f.probe, "report", "/srv/data", "/tmp/ro"])
        #expect(status == 0)
        let r = probeReport(out)
        #expect(r["hostname"] == "web-host")
        // Only the jail's processes: its pid 1 and the probe itself.
        let pids = Set((r["pids"] ?? "").split(separator: ",").compactMap { Int($0) })
        #expect(pids.contains(1))
        #expect(pids.count <= 3)
        #expect(pids.allSatisfy { $0 < 100 })
        #expect(r["exe1"] == f.probe)
        #expect(r["root"]?.split(separator: ",").sorted() ==
            ["bin", "dev", "etc", "lib", "lib64", "proc", "root", "run", "srv", "sys", "tmp", "usr", "var"])
        #expect(r["writable:/"] == "Read-only file system")
        #expect(r["writable:/etc"] == "Read-only file system")
        #expect(r["writable:/tmp"] == "yes")
        #expect(r["writable:/srv/data"] == "yes")
        #expect(r["writable:/tmp/ro"] == "Read-only file system")
        #expect(r["fds"] == "0,1,2")
        #expect(r["CapEff"] == "0000000000000000")
        #expect(!out.contains("env:JAILCTL"))

        let (code, _) = try f.exec("web", [f.probe, "exit", "7"])
        #expect(code >> 8 == 7)

        let down = try f.manager.down("web")
        #expect(down.wasRunning)
        #expect(try f.manager.status(of: "web")?.state == .stopped)
        #expect(hostMounts(under: f.dir.path).isEmpty)
        #expect(processes(rootedUnder: f.dir.path).isEmpty)
        #expect(!FS.exists(f.manager.root.jailRun("web")))
        let second = try f.manager.down("web")
        #expect(!second.wasRunning)
    }

    @Test func exitIsRecorded() throws {
        let f = try JailFixture("exit")
        defer { f.cleanUp() }
        try f.jail("short", """
            image = "probe"
            command = ["\(f.probe)", "exit", "3"]
            """)
        _ = try f.manager.up("short")
        var s = try f.manager.status(of: "short")
        let deadline = monotonic() + 5
        while s?.state == .running && monotonic() < deadline {
            usleep(10_000)
            s = try f.manager.status(of: "short")
        }
        #expect(s?.state == .exited)
        #expect(s?.exitCode == 3)
        #expect(s?.summary == "exited (code 3)")
        _ = try f.manager.down("short")
    }

    @Test func outputGoesToTheLog() throws {
        let f = try JailFixture("log")
        defer { f.cleanUp() }
        try f.jail("talk", """
            image = "probe"
            command = ["/bin/sh", "-c", "echo out-line; echo err-line >&2"]
            """)
        _ = try f.manager.up("talk")
        _ = f.manager.waitForExitFile("talk", seconds: 5)
        let log = try FS.readText(f.manager.root.jailLog("talk"))
        #expect(log.contains("out-line\n"))
        #expect(log.contains("err-line\n"))
        _ = try f.manager.down("talk")
    }

    /// What programs send to syslog reaches the jail's log through /dev/log, also from a
    /// user namespace, including the last message before the jail ends.
    @Test func syslogGoesToTheLog() throws {
        let f = try JailFixture("syslog")
        defer { f.cleanUp() }
        try f.jail("sys", """
            image = "probe"
            command = ["/bin/sh", "-c", "\(f.probe) syslog first; echo between; exec \(f.probe) syslog last"]
            userns = true
            user = 1000
            """)
        _ = try f.manager.up("sys")
        _ = f.manager.waitForExitFile("sys", seconds: 5)
        // Two channels (the output pipe, the socket): no order between them, only within.
        let lines = try FS.readText(f.manager.root.jailLog("sys")).split(separator: "\n").map { String($0.dropFirst(25)) }
        #expect(lines.count == 3, "\(lines)")
        let syslog = lines.filter { $0.hasPrefix("syslog: ") }
        #expect(syslog.count == 2 && syslog[0].hasPrefix("syslog: Nov 30 12:00:00 probe[") && syslog[0].hasSuffix("]: first")
                && syslog[1].hasSuffix("]: last"), "\(lines)")
        #expect(lines.contains("between"))
        _ = try f.manager.down("sys")
    }

    @Test func logsAreStampedAndRotated() throws {
        let f = try JailFixture("logrot")
        defer { f.cleanUp() }
        // 400 numbered lines of ~45 bytes with the stamp: ~18 KiB through a 4 KiB log.
        try f.jail("chatty", """
            image = "probe"
            command = ["/bin/sh", "-c", "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo line-$i; done"]
            log_max_size = 4096
            log_keep = 2
            """)
        _ = try f.manager.up("chatty")
        _ = f.manager.waitForExitFile("chatty", seconds: 10)
        let log = f.manager.root.jailLog("chatty")
        #expect(FS.exists(log + ".1") && FS.exists(log + ".2"))
        #expect(!FS.exists(log + ".3"))
        var numbers: [Int] = []
        for file in [log + ".2", log + ".1", log] {
            let text = try FS.readText(file)
            #expect(text.utf8.count < 4096 + 200)
            for line in text.split(separator: "\n") {
                #expect(line.dropFirst(23).hasPrefix("Z line-"), "\(line)")
                if let n = Int(line.split(separator: "-").last ?? "") { numbers.append(n) }
            }
        }
        // The kept files hold the newest lines, in order, none lost between them.
        #expect(numbers.last == 400)
        #expect(numbers == Array((numbers.first ?? 0)...400))
        _ = try f.manager.down("chatty")
    }

    @Test func dryRunMakesNothing() throws {
        let f = try JailFixture("dryrun")
        defer { f.cleanUp() }
        try f.sleeper("plan", extra: """
            userns = true
            [filesystem]
            readonly_root = false
            [[volumes]]
            source = "\(f.dir.path)"
            target = "/not/in/image"
            """)
        _ = try f.manager.build("probe")
        let plan = try f.manager.dryRun("plan")
        #expect(plan.root == f.manager.root.jailRun("plan") + "/root")
        #expect(plan.mounts.first?.data?.contains("upperdir=") == true)
        #expect(plan.idMap?.base == StateStore.idRangeStart)
        // Nothing made, nothing leased.
        #expect(!FS.exists(f.manager.root.jailRun("plan")))
        #expect(try f.manager.state.existingIdRange(for: "plan") == nil)
        // `run` refuses while the jail runs detached (they would share a writable layer).
        _ = try f.manager.up("plan")
        #expect(throws: JailError.self) { _ = try f.manager.runForeground("plan") }
        _ = try f.manager.down("plan")
    }

    @Test func failedUpRollsBack() throws {
        let f = try JailFixture("rollback")
        defer { f.cleanUp() }
        try FS.writeAtomically(f.dir.path + "/bin/garbage", "not a program\n", mode: 0o755)
        try f.image("broken", """
            binaries = ["/bin/sh"]
            files = ["\(f.dir.path)/bin/garbage"]
            """)
        let cases: [(String, String, String)] = [
            ("nouser", "image = \"probe\"\ncommand = [\"/bin/sh\"]\nuser = \"no-such-user\"", "unknown user no-such-user"),
            ("nocmd", "image = \"probe\"\ncommand = [\"/bin/nope\"]", "command /bin/nope is not an executable file in image probe"),
            ("novol", "image = \"probe\"\ncommand = [\"/bin/sh\"]\n[[volumes]]\nsource = \"\(f.dir.path)/missing\"\ntarget = \"/data\"",
             "volume source \(f.dir.path)/missing: No such file or directory"),
            ("noexec", "image = \"broken\"\ncommand = [\"\(f.dir.path)/bin/garbage\"]", "execve \(f.dir.path)/bin/garbage: Exec format error"),
        ]
        for (name, toml, message) in cases {
            try f.jail(name, toml)
            do {
                _ = try f.manager.up(name)
                Issue.record("up \(name) succeeded")
            } catch {
                #expect("\(error)".contains(message), "\(name): \(error)")
            }
            #expect(try f.manager.state.jail(name) == nil)
            #expect(!FS.exists(f.manager.root.jailRun(name)))
            #expect(hostMounts(under: f.dir.path).isEmpty)
            #expect(processes(rootedUnder: f.dir.path).isEmpty)
        }
    }

    @Test func fiftyCyclesLeaveNothing() throws {
        let f = try JailFixture("cycles")
        defer { f.cleanUp() }
        try f.sleeper("cycle")
        for _ in 0..<50 {
            let up = try f.manager.up("cycle")
            #expect(up.status.state == .running)
            let down = try f.manager.down("cycle")
            #expect(down.wasRunning)
        }
        #expect(hostMounts(under: f.dir.path).isEmpty)
        #expect(processes(rootedUnder: f.dir.path).isEmpty)
        #expect(try FS.list(f.manager.root.runDir).isEmpty)
    }
}

@Suite("Stale images (root)", .serialized)
struct StaleImageTests {
    @Test func statusMarksAJailWhoseImageSourceChanged() throws {
        let f = try JailFixture("stale")
        defer { f.cleanUp() }
        // A private copy of a program as an image source, changed after the build.
        let source = f.dir.path + "/bin/tool"
        #expect(run(["/bin/cp", "/bin/true", source]) == 0)
        try f.image("tooled", "binaries = [\"/bin/sh\"]\nfiles = [\"\(source)\", \"\(f.probe)\"]")
        try f.jail("t", "image = \"tooled\"\ncommand = [\"\(f.probe)\", \"sleep\", \"3600\"]")
        _ = try f.manager.up("t")
        #expect(try f.manager.status(of: "t")?.staleImage == false)
        let fd = open(source, O_WRONLY | O_APPEND)
        #expect(write(fd, "x", 1) == 1)
        close(fd)
        #expect(try f.manager.status(of: "t")?.staleImage == true)
        _ = try f.manager.down("t")
    }
}
