import Glibc
import Testing

@testable import JailKit

/// `jailctl daemon` as a real process: restarts, backoff, crash loops, live restore.
@Suite("Supervisor (root)", .serialized)
struct SupervisorTests {
    /// Starts the daemon for the fixture and waits until it answers on its socket.
    func startDaemon(_ f: JailFixture) throws -> pid_t {
        let log = f.dir.path + "/daemon.log"
        let env = ["JAILCTL_ROOT=\(f.manager.root.path)", "JAILCTL_SPECS=\(f.specs)"]
        let pid = try spawn([CLITests.binary, "daemon"], env: env, appendTo: log)
        let deadline = monotonic() + 10
        while Supervisor.ask(f.manager.root, "ping") == nil {
            if monotonic() > deadline { throw JailError(.system, "daemon did not come up: \((try? FS.readText(log)) ?? "")") }
            usleep(10_000)
        }
        return pid
    }

    func stopDaemon(_ pid: pid_t, signal: Int32 = SIGTERM) {
        kill(pid, signal)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    func waitFor(_ seconds: Double, _ what: () throws -> Bool) rethrows -> Bool {
        let deadline = monotonic() + seconds
        while monotonic() < deadline {
            if try what() { return true }
            usleep(20_000)
        }
        return try what()
    }

    @Test func failingJailBacksOffAndCrashLoops() throws {
        let f = try JailFixture("sup-crash")
        defer { f.cleanUp() }
        try f.jail("crash", """
            image = "probe"
            command = ["\(f.probe)", "exit", "1"]
            restart = "always"
            restart_delay = 0.1
            restart_max_delay = 0.4
            restart_limit = 4
            restart_window = 60
            """)
        let alerts = f.dir.path + "/alerts"
        try FS.writeAtomically(f.specs + "/jailctl.toml", """
            [supervisor]
            notify = ["/bin/sh", "-c", "echo \\"$JAILCTL_EVENT $JAILCTL_JAIL\\" >> \(alerts)"]

            """)
        let daemon = try startDaemon(f)
        defer { stopDaemon(daemon) }
        _ = try f.manager.up("crash")
        #expect(try waitFor(15) { try f.manager.status(of: "crash")?.crashLoop == true })
        // The notify command ran once, with the alert in its environment.
        #expect(waitFor(5) { ((try? FS.readText(alerts)) ?? "").hasSuffix("\n") })
        #expect(((try? FS.readText(alerts)) ?? "").split(separator: "\n").map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["crashloop crash"])
        let events = try f.manager.state.events(jail: "crash")
        let restarts = events.filter { $0.kind == "restart" }.map(\.time)
        #expect(restarts.count == 4)
        #expect(events.contains { $0.kind == "crashloop" })
        // Growing delays: each gap at least the last one's backoff (0.1, 0.2, 0.4, 0.4 ±10%).
        let exits = events.filter { $0.kind == "exit" }.map(\.time)
        #expect(exits.count >= 4)
        if restarts.count == 4 && exits.count >= 4 {
            let gaps = (0..<4).map { restarts[$0] - exits[$0] }
            #expect(gaps[0] >= 0.08 && gaps[1] >= 0.17 && gaps[2] >= 0.35, "\(gaps)")
        }
        #expect(try f.manager.status(of: "crash")?.summary == "crash-loop")
        // reset (an explicit up) starts it again.
        _ = try f.manager.up("crash")
        #expect(try f.manager.state.jail("crash")?.crashLoop == false)
        _ = try f.manager.down("crash")
    }

    @Test func onFailureLeavesACleanExitAlone() throws {
        let f = try JailFixture("sup-clean")
        defer { f.cleanUp() }
        try f.jail("once", """
            image = "probe"
            command = ["\(f.probe)", "exit", "0"]
            restart = "on-failure"
            restart_delay = 0.05
            """)
        let daemon = try startDaemon(f)
        defer { stopDaemon(daemon) }
        _ = try f.manager.up("once")
        #expect(try waitFor(5) { try f.manager.status(of: "once")?.state == .exited })
        usleep(500_000)
        #expect(try f.manager.state.events(jail: "once").filter { $0.kind == "restart" }.isEmpty)
        _ = try f.manager.down("once")
    }

    @Test func jailsSurviveADaemonKilledWithSIGKILL() throws {
        let f = try JailFixture("sup-restore")
        defer { f.cleanUp() }
        for i in 0..<3 { try f.sleeper("s\(i)", extra: "restart = \"always\"\nrestart_delay = 0.05") }
        try f.jail("flaky", """
            image = "probe"
            command = ["/bin/sh", "-c", "sleep 1; exit 3"]
            restart = "always"
            restart_delay = 0.05
            restart_limit = 100
            """)
        var daemon = try startDaemon(f)
        for i in 0..<3 { _ = try f.manager.up("s\(i)") }
        _ = try f.manager.up("flaky")
        let pids = try (0..<3).map { try f.manager.status(of: "s\($0)")?.pid }
        for round in 0..<5 {
            stopDaemon(daemon, signal: SIGKILL)
            usleep(300_000)
            daemon = try startDaemon(f)
            for i in 0..<3 {
                // The same processes, untouched by the daemon's death.
                #expect(try f.manager.status(of: "s\(i)")?.pid == pids[i], "round \(round)")
            }
        }
        // flaky ends every second (sometimes while no daemon runs) and is restarted.
        #expect(try waitFor(10) { try f.manager.state.events(jail: "flaky").filter { $0.kind == "restart" }.count >= 2 })
        #expect(try waitFor(5) { try f.manager.status(of: "flaky")?.state == .running })
        stopDaemon(daemon)
        for i in 0..<3 { _ = try f.manager.down("s\(i)") }
        _ = try f.manager.down("flaky")
    }
}
