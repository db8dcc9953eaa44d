import Glibc
import Testing

@testable import JailKit
import CJailLaunch

/// The jailctl executable itself, as a sysadmin runs it.
@Suite("CLI (root)", .serialized)
struct CLITests {
    static let binary = Probe.tests + "/../.build/debug/jailctl"

    /// Runs jailctl with the fixture's root and specs; returns (exit code, stdout+stderr).
    func jailctl(_ f: JailFixture, _ args: [String]) -> (Int32, String) {
        runJailctl(root: f.manager.root.path, specs: f.specs, args)
    }

    @Test func validateReportsPositionsAndExitStatus() throws {
        let f = try JailFixture("cli-validate")
        defer { f.cleanUp() }
        try f.sleeper("good")
        var (code, out) = jailctl(f, ["validate"])
        #expect(code == 0)
        #expect(out == "ok: 1 images, 1 jails\n")
        try f.jail("bad", "image = \"probe\"\ncomand = [\"/bin/sh\"]\n")
        (code, out) = jailctl(f, ["validate"])
        #expect(code == 1)
        #expect(out.contains("Jails/bad.toml:2:1: error: comand: unknown key in a jail file; did you mean \"command\"?\n"))
        #expect(out.contains("Jails/bad.toml:1:1: error: command: missing required key;"))
        // up refuses with the same messages and changes nothing.
        (code, out) = jailctl(f, ["up", "good"])
        #expect(code == 1)
        #expect(out.contains("Jails/bad.toml:2:1: error: comand: unknown key in a jail file"))
        #expect(try f.manager.state.jail("good") == nil)
    }

    @Test func upStatusExecLogsDown() throws {
        let f = try JailFixture("cli-life")
        defer { f.cleanUp() }
        try f.jail("talk", """
            image = "probe"
            command = ["/bin/sh", "-c", "echo started; exec \(f.probe) sleep 3600"]
            """)
        var (code, out) = jailctl(f, ["up", "talk"])
        #expect(code == 0)
        #expect(out.hasPrefix("talk: running (pid "))
        // No daemon runs here: up says so, and how to start one.
        #expect(out.contains("no jailctl daemon runs") && out.contains("jailctl daemon &"), "\(out)")
        (code, out) = jailctl(f, ["status", "--json"])
        #expect(code == 0)
        #expect(out.contains("\"state\" : \"running\""))
        (code, out) = jailctl(f, ["exec", "talk", "--", "/bin/sh", "-c", "echo inside; exit 5"])
        #expect(code == 5)
        #expect(out == "inside\n")
        (code, out) = jailctl(f, ["exec", "talk", "--", "ls", "/nonexistent"])
        #expect(code == 2)
        (code, out) = jailctl(f, ["logs", "talk"])
        // Each line as the jail wrote it, after the UTC time the monitor read it.
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.map { String($0.dropFirst(25)) } == ["started", "sleeping"])
        #expect(lines.allSatisfy { $0.count > 25 && $0.dropFirst(10).hasPrefix("T") && $0.dropFirst(23).hasPrefix("Z ") })
        (code, out) = jailctl(f, ["down", "talk"])
        #expect(code == 0)
        #expect(out == "talk: stopped\n")
        (code, out) = jailctl(f, ["down", "talk"])
        #expect(code == 0)
        #expect(out == "talk: not running\n")
        (code, out) = jailctl(f, ["exec", "talk", "--", "/bin/true"])
        #expect(code == 1)
        #expect(out == "jailctl: jail talk is not running\n")
    }

    /// jailctl with its stdin, stdout and stderr on `stdin` (if given) and the slave of a
    /// new host terminal (as a sysadmin's shell runs it); returns (exit code, what
    /// reached the terminal).
    func jailctlOnTerminal(_ f: JailFixture, _ args: [String], stdin: Int32? = nil, typed: String? = nil) throws -> (Int32, String) {
        // A terminal of the host's devpts (root "/"), through the same call exec -t uses.
        let hostRoot = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(hostRoot) }
        var master: Int32 = -1, slave: Int32 = -1
        let r = jl_pty_open(hostRoot, &master, &slave)
        guard r == 0 else { throw SystemError("a host terminal for the test", errno: Int32(-r)) }
        defer { close(master) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin ?? slave, 0)
        posix_spawn_file_actions_adddup2(&actions, slave, 1)
        posix_spawn_file_actions_adddup2(&actions, slave, 2)
        _ = jl_spawn_actions_closefrom(&actions, 3)
        let argv = [CLITests.binary] + args
        let env = ["JAILCTL_ROOT=\(f.manager.root.path)", "JAILCTL_SPECS=\(f.specs)", "PATH=/usr/bin:/bin"]
        let cargs = argv.map { strdup($0) } + [nil], cenv = env.map { strdup($0) } + [nil]
        defer { for p in cargs + cenv { free(p) } }
        var attr = cleanSpawnAttributes()
        defer { posix_spawnattr_destroy(&attr) }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attr, cargs, cenv)
        close(slave)
        guard rc == 0 else { throw SystemError("posix_spawn", errno: rc) }
        // Until EIO: every holder of the host terminal closed it. A jail process that
        // kept it would hold this test here, which is the failure it looks for.
        if let typed {
            _ = typed.withCString { write(master, $0, strlen($0)) }
        }
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
        while true {
            var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 30_000) == 0 {
                Issue.record("jailctl \(args) still running after 30 s of silence; killed")
                kill(pid, SIGKILL)
                break
            }
            let n = read(master, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buf[0..<n]
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return ((status >> 8) & 0xff, String(decoding: out, as: UTF8.self))
    }

    /// The caller's terminal never reaches a command run with exec: without -t it gets
    /// pipes and no controlling terminal; with -t, a terminal of the jail's own devpts
    /// instance, in a session of its own. Input, output and exit status go through both.
    @Test func execNeverHandsTheCallersTerminalIn() throws {
        let f = try JailFixture("cli-tty")
        defer { f.cleanUp() }
        try f.sleeper("shell")
        var (code, out) = jailctl(f, ["up", "shell"])
        #expect(code == 0, "\(out)")
        let look = "ls -l /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2; read -r l < /proc/self/stat; set -- $l; echo tty_nr=$7 sid=$6; (echo x > /dev/tty) 2>/dev/null || echo no-ctty; exit 4"
        (code, out) = try jailctlOnTerminal(f, ["exec", "shell", "--", "/bin/sh", "-c", look])
        #expect(code == 4, "\(out)")
        #expect(out.components(separatedBy: "pipe:[").count == 4, "\(out)")
        #expect(out.contains("tty_nr=0 ") && out.contains("no-ctty") && !out.contains("/dev/pts"), "\(out)")

        (code, out) = try jailctlOnTerminal(f, ["exec", "-t", "shell", "--", "/bin/sh", "-c", look])
        #expect(code == 4, "\(out)")
        #expect(out.components(separatedBy: "-> /dev/pts/0").count == 4, "\(out)")
        #expect(!out.contains("tty_nr=0 ") && out.contains("tty_nr=") && !out.contains("no-ctty"), "\(out)")

        // Input through the jail's terminal (stdin a pipe here): the shell reads it.
        let input = try FS.pipeCloexec()
        let line = "echo in-$((2+3)); exit 9\n"
        _ = line.withCString { write(input.write, $0, strlen($0)) }
        close(input.write)
        defer { close(input.read) }
        (code, out) = try jailctlOnTerminal(f, ["exec", "-t", "shell", "--", "/bin/sh"], stdin: input.read)
        #expect(code == 9, "\(out)")
        #expect(out.contains("in-5"), "\(out)")

        // Without -t, typed input through the pipe, and ^D at the terminal is the
        // command's EOF.
        (code, out) = try jailctlOnTerminal(f, ["exec", "shell", "--", "/bin/sh", "-c", "while read -r l; do echo got-$l; done; echo eof"],
                                            typed: "one\ntwo\n\u{04}")
        #expect(code == 0, "\(out)")
        #expect(out.contains("got-one") && out.contains("got-two") && out.contains("eof"), "\(out)")
        (code, out) = jailctl(f, ["down", "shell"])
        #expect(code == 0, "\(out)")
    }

    @Test func upAllFollowsAfterAndDownAllReversesIt() throws {
        let f = try JailFixture("cli-all")
        defer { f.cleanUp() }
        try f.sleeper("web", extra: "after = [\"db\", \"cache\"]")
        try f.sleeper("cache", extra: "after = [\"db\"]")
        try f.sleeper("db")
        var (code, out) = jailctl(f, ["up", "--all"])
        #expect(code == 0, "\(out)")
        // (The last line is the note that no daemon runs.)
        let started = out.split(separator: "\n").filter { !$0.hasPrefix("jailctl: note:") }.map { String($0.split(separator: ":").first ?? "") }
        #expect(started == ["db", "cache", "web"])
        (code, out) = jailctl(f, ["down", "--all"])
        #expect(code == 0)
        #expect(out == "web: stopped\ncache: stopped\ndb: stopped\n")
    }

    /// A package upgrade as the image sees it: a source changes under running jails.
    @Test func staleImagesWarnRebuildAndRestartExactlyTheAffectedJails() throws {
        let f = try JailFixture("cli-stale")
        defer { f.cleanUp() }
        let source = f.dir.path + "/bin/tool"
        #expect(run(["/bin/cp", "/bin/true", source]) == 0)
        try f.image("tooled", "binaries = [\"/bin/sh\"]\nfiles = [\"\(source)\", \"\(f.probe)\"]")
        try f.jail("t", "image = \"tooled\"\ncommand = [\"\(f.probe)\", \"sleep\", \"3600\"]")
        try f.sleeper("other")
        #expect(jailctl(f, ["up", "t", "other"]).0 == 0)
        let pidT = try f.manager.status(of: "t")?.pid, pidOther = try f.manager.status(of: "other")?.pid
        let fd = open(source, O_WRONLY | O_APPEND)
        #expect(write(fd, "x", 1) == 1)
        close(fd)
        var (code, out) = jailctl(f, ["build", "--check", "--record", "tooled"])
        #expect(code == 1 && out.contains("tooled: stale") && out.contains(source), "\(out)")
        #expect(try f.manager.state.events(jail: "image:tooled").contains { $0.kind == "image-stale" })
        // up of a jail on a stale image warns (here: already running).
        (code, out) = jailctl(f, ["up", "t"])
        #expect(code == 0 && out.contains("warning: t: image tooled is stale"), "\(out)")
        (code, out) = jailctl(f, ["restart", "--stale"])
        #expect(code == 0 && out.contains("tooled: rebuilt") && out.contains("t: restarted"), "\(out)")
        #expect(!out.contains("other:"))
        #expect(try f.manager.status(of: "t")?.pid != pidT)
        #expect(try f.manager.status(of: "other")?.pid == pidOther)
        #expect(try f.manager.status(of: "t")?.staleImage == false)
        (code, out) = jailctl(f, ["restart", "--stale"])
        #expect(code == 0 && out.contains("no running jail has a stale image"), "\(out)")
        _ = try f.manager.down("t")
        _ = try f.manager.down("other")
    }

    /// The shipped apt hook parses as apt configuration and runs the check.
    @Test func aptHookIsValidAptConfiguration() throws {
        try requireRoot()
        let hook = Probe.tests + "/../scripts/apt/99jailctl"
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let status = run(["/usr/bin/apt-config", "-c", hook, "dump", "DPkg::Post-Invoke"], stdout: fds[1])
        close(fds[1])
        let out = readPipe(fds[0])
        close(fds[0])
        #expect(status == 0)
        #expect(out.contains("jailctl build --check --record"), "\(out)")
    }

    /// `logs -f` goes on in the new file when the monitor rotates: no line is lost or
    /// doubled across rotations.
    @Test func logsFollowAcrossRotation() throws {
        let f = try JailFixture("cli-follow")
        defer { f.cleanUp() }
        try f.jail("chatty", """
            image = "probe"
            command = ["/bin/sh", "-c", "sleep 1; i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo line-$i; [ $((i % 300)) = 0 ] && sleep 0.05; done; exec \(f.probe) sleep 3600"]
            log_max_size = 4096
            log_keep = 8
            stop_timeout = 1
            """)
        let out = f.dir.path + "/follow.out"
        let env = ["JAILCTL_ROOT=\(f.manager.root.path)", "JAILCTL_SPECS=\(f.specs)", "PATH=/usr/bin:/bin"]
        _ = try f.manager.up("chatty")
        // Started right away: it reads what is there, then follows the rotations.
        let follower = try spawn([Self.binary, "logs", "-f", "chatty"], env: env, appendTo: out)
        defer {
            kill(follower, SIGTERM)
            var st: Int32 = 0
            waitpid(follower, &st, 0)
        }
        let deadline = monotonic() + 20
        while monotonic() < deadline, !((try? FS.readText(out)) ?? "").contains("line-3000\n") { usleep(50_000) }
        let numbers = ((try? FS.readText(out)) ?? "").split(separator: "\n").compactMap { Int($0.split(separator: "-").last ?? "") }
        // All of them, from the first: the follower was there before the jail spoke, and
        // the log went through about 20 rotations meanwhile.
        #expect(numbers == Array(1...3000), "\(numbers.count) lines from \(numbers.first ?? 0)")
        #expect(FS.exists(f.manager.root.jailLog("chatty") + ".1"))
        _ = try f.manager.down("chatty")
    }
}
