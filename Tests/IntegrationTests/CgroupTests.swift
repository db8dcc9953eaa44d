import Glibc
import Testing

@testable import JailKit

/// The cgroup driver of this host against the real kernel (root). Instance names start
/// with "jt" so that scripts/leak-check finds anything left: `find /sys/fs/cgroup -name
/// 'jailctl.jt*'` must be empty after these tests.
@Suite("Cgroups (root)", .serialized)
struct CgroupTests {
    /// Unique per test process and per test, so parallel runs never share a cgroup.
    static func instance(_ n: Int) -> String { "jt\(getpid())x\(n)" }

    /// posix_spawn with stdin from a pipe (returned, for the caller to release the child)
    /// and stdout/stderr to /dev/null.
    static func spawn(_ argv: [String]) throws -> (pid: pid_t, stdin: Int32) {
        var fds: [Int32] = [-1, -1]
        try check("pipe", pipe(&fds))
        // Close-on-exec: the spawned child gets its end through dup2 only.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let cargs = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cargs, environ)
        close(fds[0])
        if rc != 0 {
            close(fds[1])
            throw SystemError("posix_spawn \(argv[0])", errno: rc)
        }
        return (pid, fds[1])
    }

    /// Wait status of pid.
    static func reap(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Whatever happened, the cgroup goes: kill, remove, and an issue if that failed.
    static func cleanUp(_ cg: JailCgroup) {
        do {
            try cg.kill()
            try cg.remove()
        } catch {
            Issue.record("cleaning up cgroup \(cg.directories): \(error)")
        }
        for dir in cg.directories + cg.instanceDirectories where FS.exists(dir) {
            Issue.record("left behind: \(dir)")
        }
    }

    @Test func joinStatsKillRemove() throws {
        try requireRoot()
        let driver = try CgroupDriver.host()
        let inst = Self.instance(1)
        let cg = driver.cgroup(jail: "sleeper", instance: inst)
        defer { Self.cleanUp(cg) }
        _ = try driver.create(jail: "sleeper", instance: inst, limits: CgroupLimits(memory: 64 << 20, pids: 16))
        for dir in cg.directories { #expect(FS.isDirectory(dir)) }

        let child = try Self.spawn(["/bin/sleep", "30"])
        var reaped = false
        defer {
            close(child.stdin)
            if !reaped {
                Glibc.kill(child.pid, SIGKILL)
                _ = Self.reap(child.pid)
            }
        }
        try cg.join(child.pid)
        #expect(try cg.processes() == [child.pid])
        let stats = try cg.stats()
        #expect(stats.pidsCurrent == 1)
        #expect(stats.memoryCurrent != nil)
        #expect(stats.cpuUsageMicros != nil)
        #expect(stats.oomKills == 0)
        // The limits reached the kernel.
        switch driver {
        case .v1(let d):
            if let h = d.hierarchy("pids") {
                #expect(try FS.readText(d.jailDirectory(h, jail: "sleeper", instance: inst) + "/pids.max") == "16\n")
            }
            if let h = d.hierarchy("memory") {
                #expect(try FS.readText(d.jailDirectory(h, jail: "sleeper", instance: inst) + "/memory.limit_in_bytes") == "67108864\n")
            }
        case .v2:
            #expect(try FS.readText((cg.directories.first ?? "") + "/pids.max") == "16\n")
        }

        try cg.kill()
        let status = Self.reap(child.pid)
        reaped = true
        #expect(status & 0x7f == SIGKILL)
        #expect(try cg.processes().isEmpty)
        try cg.remove()
        for dir in cg.directories + cg.instanceDirectories { #expect(!FS.exists(dir)) }
        // Idempotent: removing what is gone is fine.
        try cg.remove()
    }

    @Test func forkBombIsCappedByPids() throws {
        try requireRoot()
        let driver = try CgroupDriver.host()
        let inst = Self.instance(2)
        let cg = driver.cgroup(jail: "bomb", instance: inst)
        defer { Self.cleanUp(cg) }
        _ = try driver.create(jail: "bomb", instance: inst, limits: CgroupLimits(pids: 10))

        // The shell waits on stdin until it is in the cgroup, so no fork escapes.
        let child = try Self.spawn(["/bin/sh", "-c", "read go; for i in $(seq 100); do sleep 5 & done; wait"])
        var reaped = false
        defer {
            if !reaped {
                Glibc.kill(child.pid, SIGKILL)
                _ = Self.reap(child.pid)
            }
        }
        try cg.join(child.pid)
        let go = Array("go\n".utf8)
        _ = go.withUnsafeBytes { write(child.stdin, $0.baseAddress, $0.count) }
        close(child.stdin)

        var most = 0
        let end = monotonic() + 1.5
        while monotonic() < end {
            let n = try cg.stats().pidsCurrent ?? -1
            most = max(most, n)
            #expect(n <= 10)
            usleep(5000)
        }
        // It did try: the count reached the cap (the shell plus its sleeps).
        #expect(most >= 5 && most <= 10)
        // Between samples too: the kernel's own high-water mark, and refused forks.
        let stats = try cg.stats()
        if let peak = stats.pidsPeak { #expect(peak == 10) }
        #expect((stats.pidsRefused ?? 0) > 0)

        try cg.kill()
        _ = Self.reap(child.pid)
        reaped = true
        try cg.remove()
        for dir in cg.directories + cg.instanceDirectories { #expect(!FS.exists(dir)) }
    }
}
