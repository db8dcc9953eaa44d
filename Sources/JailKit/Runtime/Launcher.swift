#if canImport(Glibc)
import Glibc
#endif
import CJailLaunch

/// A jail process that reached execve.
public struct LaunchedProcess: Sendable, Equatable {
    public var pid: Int32
    /// The detached monitor that waits for the jail and records its exit; 0 in the
    /// foreground.
    public var monitor: Int32
    /// Start time of pid in clock ticks since boot: pid plus start time names a process
    /// even after the pid is reused.
    public var startTime: UInt64
}

/// Carries a LaunchPlan out through the C launcher. Swift owns every byte the child
/// reads: C strings are allocated here and freed after the fork.
public enum Launcher {
    public struct Stdio: Sendable {
        public var stdin: Int32
        public var stdout: Int32
        public var stderr: Int32
        public init(stdin: Int32, stdout: Int32, stderr: Int32) {
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
        }
        /// The caller's own descriptors.
        public static let inherit = Stdio(stdin: -1, stdout: -1, stderr: -1)
    }

    /// Starts the jail. `statusDir`, when given, is a directory fd where a detached
    /// monitor records the exit status; `outside` runs while the child waits at sync
    /// point 1 (cgroup membership, network), and a throw from it kills the child.
    public static func spawn(_ plan: LaunchPlan, stdio: Stdio, statusDir: Int32?,
                             outside: (Int32) throws -> Void = { _ in }) throws -> LaunchedProcess
    {
        var logDir: Int32 = -1
        if let log = plan.log {
            logDir = open(log.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if logDir < 0 { throw SystemError("open \(log.directory)") }
        }
        defer { if logDir >= 0 { close(logDir) } }
        return try withCPlan(plan, stdio: stdio) { cplan in
            cplan.log_dir_fd = logDir
            var child = jl_child()
            let rc = jl_spawn(&cplan, statusDir ?? -1, &child)
            if rc < 0 { throw JailError(.launchFailed, "jail \(plan.jail): clone: \(strerrorString(-rc))") }
            let startTime = jl_proc_start_time(child.pid)
            do {
                if let m = plan.idMap { try writeIDMaps(pid: child.pid, base: m.base, size: m.size) }
                try outside(child.pid)
            } catch {
                // The child is parked at sync point 1; closing go_fd makes it fail there.
                close(child.go_fd)
                close(child.error_fd)
                if statusDir == nil {
                    reap(child.pid)
                    // It ran on a stack of ours (it shares our memory until execve).
                    jl_child_free_stack(&child)
                }
                throw error
            }
            var err = jl_error()
            let r = jl_release(&child, &err)
            if r < 0 { throw JailError(.launchFailed, "jail \(plan.jail): reading the launch report: \(strerrorString(-r))") }
            if r == 1 {
                if statusDir == nil { reap(child.pid) }
                throw JailError(.launchFailed, "jail \(plan.jail): \(describe(err, plan: plan))")
            }
            return LaunchedProcess(pid: child.pid, monitor: child.monitor, startTime: startTime)
        }
    }

    /// Runs argv inside a running jail (its namespaces, root, ids and limits from
    /// `plan`) and returns the wait status.
    public static func exec(_ plan: LaunchPlan, jailPid: Int32, namespaces: Namespaces, stdio: Stdio,
                            cgroupDirectories: [String] = []) throws -> Int32
    {
        try joining(jailPid: jailPid, namespaces: namespaces, cgroupDirectories: cgroupDirectories) { fds, types, rootFd, cgroupFds in
            try withCPlan(plan, stdio: stdio) { cplan in
                var err = jl_error()
                let rc = cgroupFds.withUnsafeBufferPointer { cg in
                    cplan.cgroup_fds = cg.baseAddress
                    cplan.n_cgroup_fds = cg.count
                    return jl_exec_in(&cplan, fds, types, fds.count, rootFd, &err)
                }
                if rc == -1000 { throw JailError(.launchFailed, "exec in jail \(plan.jail): \(describe(err, plan: plan))") }
                if rc < 0 { throw JailError(.launchFailed, "exec in jail \(plan.jail): \(strerrorString(-rc))") }
                return rc
            }
        }
    }

    /// `exec` without waiting (health checks): returns the pid of the process that waits
    /// for the command; its exit status is the command's (127: it could not start). The
    /// command dies with that process, so killing it at a timeout ends the check.
    public static func startExec(_ plan: LaunchPlan, jailPid: Int32, namespaces: Namespaces, stdio: Stdio,
                                 cgroupDirectories: [String] = []) throws -> pid_t
    {
        try joining(jailPid: jailPid, namespaces: namespaces, cgroupDirectories: cgroupDirectories) { fds, types, rootFd, cgroupFds in
            try withCPlan(plan, stdio: stdio) { cplan in
                cplan.die_with_parent = 1
                let pid = cgroupFds.withUnsafeBufferPointer { cg in
                    cplan.cgroup_fds = cg.baseAddress
                    cplan.n_cgroup_fds = cg.count
                    return jl_exec_in_start(&cplan, fds, types, fds.count, rootFd)
                }
                if pid < 0 { throw JailError(.launchFailed, "exec in jail \(plan.jail): \(strerrorString(-pid))") }
                return pid
            }
        }
    }

    /// Opens what joining a running jail takes: its namespaces (in joining order), its
    /// root, and its cgroups' cgroup.procs files.
    static func joining<T>(jailPid: Int32, namespaces: Namespaces, cgroupDirectories: [String],
                           _ body: ([Int32], [Int32], Int32, [Int32]) throws -> T) throws -> T
    {
        // The user namespace would come first, then the rest; mnt last so that the
        // /proc paths above stay reachable while joining.
        let order: [(Namespaces, String)] = [(.user, "user"), (.ipc, "ipc"), (.uts, "uts"), (.net, "net"), (.pid, "pid"), (.cgroup, "cgroup"), (.mount, "mnt")]
        var fds: [Int32] = []
        var types: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for (ns, name) in order where namespaces.contains(ns) {
            let path = "/proc/\(jailPid)/ns/\(name)"
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 { throw SystemError("open \(path)") }
            fds.append(fd)
            types.append(ns.rawValue)
        }
        let rootPath = "/proc/\(jailPid)/root"
        let rootFd = open(rootPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if rootFd < 0 { throw SystemError("open \(rootPath)") }
        defer { close(rootFd) }
        var cgroupFds: [Int32] = []
        defer { for fd in cgroupFds { close(fd) } }
        for dir in cgroupDirectories {
            let fd = open(dir + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
            if fd < 0 { throw SystemError("open \(dir)/cgroup.procs") }
            cgroupFds.append(fd)
        }
        return try body(fds, types, rootFd, cgroupFds)
    }

    /// Root inside is `base` outside; the parent writes the maps while the child waits,
    /// as root of the parent namespace, so setgroups stays allowed inside.
    static func writeIDMaps(pid: Int32, base: UInt32, size: UInt32) throws {
        for file in ["uid_map", "gid_map"] {
            let path = "/proc/\(pid)/\(file)"
            let fd = open(path, O_WRONLY | O_CLOEXEC)
            if fd < 0 { throw SystemError("open \(path)") }
            let line = Array("0 \(base) \(size)\n".utf8)
            let ok = line.withUnsafeBytes { FS.writeAll(fd, $0.baseAddress, $0.count) }
            let e = errno
            close(fd)
            if !ok { throw SystemError("write \(path)", errno: e) }
        }
    }

    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    static let stepNames: [Int32: String] = [
        Int32(JL_STEP_WAIT_PARENT.rawValue): "waiting for the parent",
        Int32(JL_STEP_PROPAGATION.rawValue): "making mounts private",
        Int32(JL_STEP_PIVOT_ROOT.rawValue): "pivot_root",
        Int32(JL_STEP_UMOUNT_OLD.rawValue): "unmounting the old root",
        Int32(JL_STEP_CHDIR_ROOT.rawValue): "chdir to the new root",
        Int32(JL_STEP_UNSHARE_CGROUP.rawValue): "unshare cgroup namespace",
        Int32(JL_STEP_HOSTNAME.rawValue): "sethostname",
        Int32(JL_STEP_LOOPBACK.rawValue): "bringing loopback up",
        Int32(JL_STEP_SETSID.rawValue): "setsid",
        Int32(JL_STEP_STDIO.rawValue): "setting up stdio",
        Int32(JL_STEP_RLIMIT.rawValue): "setrlimit",
        Int32(JL_STEP_SETGROUPS.rawValue): "setgroups",
        Int32(JL_STEP_SETGID.rawValue): "setgid",
        Int32(JL_STEP_SETUID.rawValue): "setuid",
        Int32(JL_STEP_CAPS.rawValue): "dropping capabilities",
        Int32(JL_STEP_NO_NEW_PRIVS.rawValue): "setting no_new_privs",
        Int32(JL_STEP_WORKDIR.rawValue): "chdir to the workdir",
        Int32(JL_STEP_CLOSE_FDS.rawValue): "closing descriptors",
        Int32(JL_STEP_SECCOMP.rawValue): "loading the seccomp filter",
        Int32(JL_STEP_EXEC.rawValue): "execve",
        Int32(JL_STEP_SETNS.rawValue): "setns",
        Int32(JL_STEP_FORK.rawValue): "fork",
    ]

    /// (step, index, errno) → "mount proc on /proc: Operation not permitted".
    static func describe(_ e: jl_error, plan: LaunchPlan) -> String {
        let what: String
        switch e.step {
        case Int32(JL_STEP_OP.rawValue) where e.index >= 0 && Int(e.index) < plan.mounts.count:
            what = plan.mounts[Int(e.index)].describe(root: plan.root)
        case Int32(JL_STEP_EXEC.rawValue):
            what = "execve \(plan.path)"
        case Int32(JL_STEP_WORKDIR.rawValue):
            what = "chdir \(plan.workdir)"
        case Int32(JL_STEP_SETUID.rawValue):
            what = "setuid \(plan.uid)"
        case Int32(JL_STEP_SETGID.rawValue):
            what = "setgid \(plan.gid)"
        default:
            what = stepNames[e.step] ?? "step \(e.step)"
        }
        return "\(what): \(strerrorString(e.err))"
    }

    /// Lays the plan out as C data valid for the duration of `body`.
    static func withCPlan<T>(_ plan: LaunchPlan, stdio: Stdio, _ body: (inout jl_plan) throws -> T) throws -> T {
        let arena = CStringArena()
        defer { arena.free() }
        var ops = plan.mounts.map { op in
            jl_op(kind: op.kind.rawValue, source: arena.dup(op.source), target: arena.dup(op.target),
                  fstype: arena.dup(op.fstype), data: arena.dup(op.data), flags: op.flags, mode: op.mode,
                  optional: op.optional ? 1 : 0)
        }
        var rlimits = plan.rlimits.map { jl_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }
        var groups = plan.groups.map { gid_t($0) }
        var argv = plan.argv.map { arena.dup($0) } + [nil]
        var envp = plan.environment.map { arena.dup($0) } + [nil]
        var keep: UInt64 = 0
        for c in plan.keepCapabilities where c >= 0 && c < 64 { keep |= 1 << UInt64(c) }
        var filter = plan.seccompFilter
        return try ops.withUnsafeMutableBufferPointer { opsBuf in
            try rlimits.withUnsafeMutableBufferPointer { rlBuf in
                try groups.withUnsafeMutableBufferPointer { gBuf in
                    try argv.withUnsafeMutableBufferPointer { argvBuf in
                        try envp.withUnsafeMutableBufferPointer { envBuf in
                            try filter.withUnsafeMutableBytes { fBuf in
                                var c = jl_plan()
                                c.clone_flags = plan.namespaces.subtracting(.cgroup).rawValue
                                c.unshare_cgroup = plan.namespaces.contains(.cgroup) ? 1 : 0
                                c.root = UnsafePointer(arena.dup(plan.root))
                                c.ops = UnsafePointer(opsBuf.baseAddress)
                                c.n_ops = opsBuf.count
                                c.hostname = UnsafePointer(arena.dup(plan.hostname))
                                c.loopback_up = plan.namespaces.contains(.net) ? 1 : 0
                                c.uid = plan.uid
                                c.gid = plan.gid
                                c.groups = UnsafePointer(gBuf.baseAddress)
                                c.n_groups = gBuf.count
                                c.rlimits = UnsafePointer(rlBuf.baseAddress)
                                c.n_rlimits = rlBuf.count
                                c.keep_caps = keep
                                c.drop_caps = plan.dropCapabilities ? 1 : 0
                                c.no_new_privs = plan.noNewPrivileges ? 1 : 0
                                c.seccomp_filter = UnsafeRawPointer(fBuf.baseAddress)
                                c.seccomp_len = fBuf.count / 8
                                c.workdir = UnsafePointer(arena.dup(plan.workdir))
                                c.path = UnsafePointer(arena.dup(plan.path))
                                c.argv = UnsafePointer(argvBuf.baseAddress)
                                c.envp = UnsafePointer(envBuf.baseAddress)
                                c.stdin_fd = stdio.stdin
                                c.stdout_fd = stdio.stdout
                                c.stderr_fd = stdio.stderr
                                c.new_session = plan.newSession ? 1 : 0
                                c.log_dir_fd = -1
                                c.log_name = UnsafePointer(arena.dup(plan.log?.name))
                                c.log_max_bytes = plan.log?.maxBytes ?? 0
                                c.log_keep = Int32(plan.log?.keep ?? 0)
                                c.syslog_path = UnsafePointer(arena.dup(plan.log?.syslogSocket))
                                c.log_pipe_uid = (plan.idMap?.base ?? 0) &+ plan.uid
                                c.log_pipe_gid = (plan.idMap?.base ?? 0) &+ plan.gid
                                return try body(&c)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// strdup'ed strings that live until `free()`.
final class CStringArena {
    private var pointers: [UnsafeMutablePointer<CChar>] = []

    func dup(_ s: String?) -> UnsafeMutablePointer<CChar>? {
        guard let s, let p = strdup(s) else { return nil }
        pointers.append(p)
        return p
    }

    func free() {
        for p in pointers { Glibc.free(p) }
        pointers.removeAll()
    }
}
