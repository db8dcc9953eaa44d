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
            notify = ["/bin/sh", "-c", "echo \\"$JAILCTL_EVENT $JAILCTL_JAIL $(cat)\\" >> \(alerts)"]

            """)
        let daemon = try startDaemon(f)
        defer { stopDaemon(daemon) }
        _ = try f.manager.up("crash")
        #expect(try waitFor(15) { try f.manager.status(of: "crash")?.crashLoop == true })
        // The notify command ran once, with the alert in its environment.
        #expect(waitFor(5) { ((try? FS.readText(alerts)) ?? "").hasSuffix("\n") })
        let lines = ((try? FS.readText(alerts)) ?? "").split(separator: "\n")
        #expect(lines.map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["crashloop crash"])
        #expect(lines.first?.contains("{\"kind\":\"crashloop\",\"jail\":\"crash\",\"detail\":\"4 restarts within 60s;") == true, "\(lines)")
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

    /// A broken spec file of another jail does not stop the daemon's restarts.
    @Test func aBrokenSpecElsewhereDoesNotStopRestarts() throws {
        let f = try JailFixture("sup-broken")
        defer { f.cleanUp() }
        try f.jail("flaky", """
            image = "probe"
            command = ["\(f.probe)", "exit", "1"]
            restart = "always"
            restart_delay = 0.1
            restart_max_delay = 0.1
            restart_limit = 100
            """)
        let daemon = try startDaemon(f)
        defer { stopDaemon(daemon) }
        _ = try f.manager.up("flaky")
        try f.jail("broken", "image = ")
        #expect(try waitFor(10) { try f.manager.state.events(jail: "flaky").filter { $0.kind == "restart" }.count >= 3 })
        _ = try f.manager.down("flaky")
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

    /// The live-restore check: 20 times in a row, SIGKILL the daemon while 10 jails
    /// run (8 writing numbered lines, one crashing meanwhile), and start it again.
    @Test func twentyDaemonKillsLoseNoJailAndNoLogLine() throws {
        let f = try JailFixture("sup-20")
        defer { f.cleanUp() }
        let writers = (0..<8).map { "w\($0)" }
        for w in writers {
            try f.jail(w, """
                image = "probe"
                command = ["/bin/sh", "-c", "i=0; while true; do i=$((i + 1)); echo \\"line $i\\"; sleep 0.05; done"]
                restart = "always"
                stop_timeout = 1
                """)
        }
        try f.sleeper("idle", extra: "restart = \"always\"")
        try f.jail("crasher", """
            image = "probe"
            command = ["/bin/sh", "-c", "sleep 0.7; exit 3"]
            restart = "always"
            restart_delay = 0.05
            restart_max_delay = 0.5
            restart_limit = 1000
            """)
        var daemon = try startDaemon(f)
        for name in writers + ["idle", "crasher"] { _ = try f.manager.up(name) }
        let pids = try (writers + ["idle"]).map { try f.manager.status(of: $0)?.pid }
        for _ in 0..<20 {
            stopDaemon(daemon, signal: SIGKILL)
            usleep(100_000)
            daemon = try startDaemon(f)
            usleep(100_000)
        }
        // Every jail is running: the same processes, or (the crasher) restarted.
        #expect(try (writers + ["idle"]).map { try f.manager.status(of: $0)?.pid } == pids)
        #expect(try waitFor(5) { try f.manager.status(of: "crasher")?.state == .running })
        let events = try f.manager.state.events(jail: "crasher", limit: 1000)
        #expect(events.filter { $0.kind == "exit" }.count >= 3 && events.filter { $0.kind == "restart" }.count >= 3)
        stopDaemon(daemon)
        for name in writers + ["idle", "crasher"] { _ = try f.manager.down(name) }
        // No numbered line is missing: 1, 2, 3, ... in each writer's log.
        for w in writers {
            let numbers = try FS.readText(f.manager.root.jailLog(w)).split(separator: "\n")
                .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }
            #expect(numbers.count > 20 && numbers == Array(1...numbers.count), "\(w): \(numbers.count) lines")
        }
    }

    @Test func aTableRemovedByAnotherToolComesBack() throws {
        let f = try JailFixture("sup-nft", host: "[network]\npool = \"10.86.0.0/24\"")
        defer { f.cleanUp() }
        try f.sleeper("web", extra: "[network]\nmode = \"private\"\nports = [\"18980:80/tcp\"]")
        let daemon = try startDaemon(f)
        defer { stopDaemon(daemon) }
        _ = try f.manager.up("web")
        let table = "jailctl_\(f.manager.root.instance)"
        let before = try f.manager.network.nft.query(["list", "table", "inet", table])
        #expect(run(["/usr/sbin/nft", "delete", "table", "inet", table]) == 0)
        #expect(waitFor(5) { (try? f.manager.network.nft.query(["list", "table", "inet", table])) == before })
        // The event follows the table by a moment.
        #expect(try waitFor(5) { try f.manager.state.events(jail: "-").contains { $0.kind == "network-reapply" } })
        _ = try f.manager.down("web")
        // Our own removal (the last private jail went) is not undone.
        usleep(500_000)
        #expect(run(["/usr/sbin/nft", "list", "table", "inet", table]) != 0)
    }
}
