import CJailLaunch
import Glibc
import Testing

@testable import JailKit

/// `[health]` checks through the real daemon, and the probes against real servers.
@Suite("Health checks (root)", .serialized)
struct HealthTests {
    let sup = SupervisorTests()

    @Test func unhealthyJailIsRestartedAndAHealthyOneLeftAlone() throws {
        let f = try JailFixture("health")
        defer { f.cleanUp() }
        try f.jail("web", """
            image = "probe"
            command = ["\(f.probe)", "http", "8080"]
            restart = "always"
            restart_delay = 0.1
            stop_timeout = 1
            [health]
            http = "/healthz"
            port = 8080
            interval = 0.2
            timeout = 0.5
            retries = 2
            """)
        // restart = "no": an unhealthy jail is only marked and alerted.
        try f.jail("marked", """
            image = "probe"
            command = ["\(f.probe)", "sleep", "3600"]
            restart = "no"
            [health]
            exec = ["/bin/sh", "-c", "test ! -e /tmp/bad"]
            interval = 0.2
            retries = 1
            """)
        let daemon = try sup.startDaemon(f)
        defer { sup.stopDaemon(daemon) }
        let first = try #require(try f.manager.up("web").status.pid)
        _ = try f.manager.up("marked")
        #expect(try sup.waitFor(5) { try f.manager.status(of: "web")?.health == .healthy })
        #expect(try sup.waitFor(5) { try f.manager.status(of: "marked")?.summary == "running (healthy)" })

        // The server starts answering 500: two failed checks, then a stop and a restart.
        #expect(try f.exec("web", ["/bin/sh", "-c", ": > /tmp/unhealthy"]).0 == 0)
        #expect(try sup.waitFor(10) {
            let s = try f.manager.status(of: "web")
            return s?.state == .running && s?.pid != first && s?.health == .healthy
        })
        let events = try f.manager.state.events(jail: "web").map(\.kind)
        #expect(events.contains("unhealthy") && events.contains("health-stop") && events.contains("restart"), "\(events)")
        let unhealthy = try f.manager.state.events(jail: "web").first { $0.kind == "unhealthy" }
        #expect(unhealthy?.detail.contains("http status 500") == true, "\(String(describing: unhealthy))")

        let markedPid = try f.manager.status(of: "marked")?.pid
        #expect(try f.exec("marked", ["/bin/sh", "-c", ": > /tmp/bad"]).0 == 0)
        #expect(try sup.waitFor(5) { try f.manager.status(of: "marked")?.health == .unhealthy })
        usleep(500_000)
        #expect(try f.manager.status(of: "marked")?.pid == markedPid)
        #expect(try f.manager.status(of: "marked")?.summary == "running (unhealthy)")
        _ = try f.manager.down("web")
        _ = try f.manager.down("marked")
    }

    /// Runs one probe to its end: (exit status, report line).
    func probe(_ kind: jl_probe_kind, _ address: inout sockaddr_un, path: String, timeoutMs: Int32 = 2000) -> (Int32, String) {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let pid = withUnsafePointer(to: &address) {
            jl_probe_start(Int32(kind.rawValue), -1, -1, $0, UInt32(MemoryLayout<sockaddr_un>.size), path, timeoutMs, fds[1])
        }
        close(fds[1])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let out = readPipe(fds[0])
        close(fds[0])
        return ((status >> 8) & 0xff, out.trimmingSuffixNewlines())
    }

    /// A php-fpm of the test's own on a Unix socket in dir (ping page /ping); stop it
    /// with SIGTERM so its workers go too.
    func startFPM(_ dir: TempDir) throws -> (pid: pid_t, socket: String) {
        let sock = dir.path + "/fpm.sock"
        try FS.writeAtomically(dir.path + "/fpm.conf", """
            [global]
            error_log = \(dir.path)/fpm.log
            daemonize = no
            [probe]
            user = nobody
            group = nogroup
            listen = \(sock)
            pm = static
            pm.max_children = 1
            ping.path = /ping
            """)
        let fpm = try spawn(["/usr/sbin/php-fpm8.2", "-F", "-R", "-n", "-y", dir.path + "/fpm.conf"], env: [], appendTo: dir.path + "/out.log")
        let deadline = monotonic() + 10
        while !FS.exists(sock) && monotonic() < deadline { usleep(20_000) }
        return (fpm, sock)
    }

    func stopFPM(_ pid: pid_t) {
        // SIGTERM, not SIGKILL: the master takes its workers with it before it ends.
        kill(pid, SIGTERM)
        var st: Int32 = 0
        waitpid(pid, &st, 0)
    }

    @Test func fcgiProbeAgainstRealPHPFPM() throws {
        try requireRoot()
        let dir = try TempDir("fcgi")
        defer { dir.remove() }
        let (fpm, sock) = try startFPM(dir)
        defer { stopFPM(fpm) }
        var addr = try unixAddress(sock)
        let ok = probe(JL_PROBE_FCGI, &addr, path: "/ping")
        #expect(ok.0 == 0 && ok.1 == "fcgi ok", "\(ok)")
        // No such script: php-fpm answers Status: 404.
        let missing = probe(JL_PROBE_FCGI, &addr, path: "/nope.php")
        #expect(missing.0 == 1 && missing.1 == "fcgi status 404", "\(missing)")
        var nowhere = try unixAddress(dir.path + "/absent.sock")
        let refused = probe(JL_PROBE_TCP, &nowhere, path: "")
        #expect(refused.0 == 1 && refused.1.hasPrefix("connect: "), "\(refused)")
    }

    /// A socket path the jail turned into a symlink to a host socket: the daemon's probe
    /// resolves it inside the jail and reaches nothing of the host.
    @Test func aSocketSymlinkCannotLeadTheProbeToTheHost() throws {
        let f = try JailFixture("health-link")
        defer { f.cleanUp() }
        let (fpm, hostSocket) = try startFPM(f.dir)
        defer { stopFPM(fpm) }
        try f.image("linker", "binaries = [\"/bin/sh\", \"/bin/ln\"]\nfiles = [\"\(f.probe)\"]")
        try f.jail("trick", """
            image = "linker"
            command = ["/bin/sh", "-c", "ln -s \(hostSocket) /tmp/fpm.sock && exec \(f.probe) sleep 3600"]
            restart = "no"
            stop_timeout = 1
            [health]
            fcgi = "/ping"
            socket = "/tmp/fpm.sock"
            interval = 0.2
            retries = 1
            """)
        let daemon = try sup.startDaemon(f)
        defer { sup.stopDaemon(daemon) }
        _ = try f.manager.up("trick")
        #expect(try sup.waitFor(5) { try f.manager.status(of: "trick")?.health == .unhealthy })
        // The event follows the health file by a moment.
        #expect(try sup.waitFor(5) { try f.manager.state.events(jail: "trick").contains { $0.kind == "unhealthy" } })
        let detail = try f.manager.state.events(jail: "trick").first { $0.kind == "unhealthy" }?.detail ?? ""
        #expect(detail.contains("connect: "), "\(detail)")
        _ = try f.manager.down("trick")
    }
}
