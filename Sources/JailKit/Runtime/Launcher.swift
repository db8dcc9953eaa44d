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
                // Only now: an idmapped mount takes the user namespace's maps as they are.
                try sendVolumeMounts(plan, pid: child.pid, socket: child.mount_sock)
                try outside(child.pid)
            } catch {
                // The child is parked at sync point 1; closing go_fd makes it fail there.
                close(child.go_fd)
                close(child.error_fd)
                if child.mount_sock >= 0 { close(child.mount_sock) }
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
    /// `plan`) in a session of its own, and returns the wait status. The caller's
    /// terminal never reaches the command: with `tty`, the command gets a terminal of the
    /// jail's own devpts instance as stdin, stdout, stderr and controlling terminal;
    /// without, any of the caller's stdin, stdout and stderr that is a terminal is
    /// replaced by a pipe. This process relays either, and passes ^C and the like on.
    public static func exec(_ plan: LaunchPlan, jailPid: Int32, namespaces: Namespaces, stdio: Stdio,
                            cgroupDirectories: [String] = [], tty: Bool = false) throws -> Int32
    {
        try joining(jailPid: jailPid, namespaces: namespaces, cgroupDirectories: cgroupDirectories) { fds, types, rootFd, cgroupFds in
            var streams = try ExecStreams(tty: tty, stdio: stdio, jailRoot: rootFd)
            defer { streams.closeAll() }
            return try withCPlan(plan, stdio: streams.commandStdio) { cplan in
                cplan.new_session = 1
                cplan.controlling_tty = tty ? 1 : 0
                var errorFd: Int32 = -1
                let mid = cgroupFds.withUnsafeBufferPointer { cg in
                    cplan.cgroup_fds = cg.baseAddress
                    cplan.n_cgroup_fds = cg.count
                    return jl_exec_in_fork(&cplan, fds, types, fds.count, rootFd, &errorFd)
                }
                if mid < 0 { throw JailError(.launchFailed, "exec in jail \(plan.jail): \(strerrorString(-mid))") }
                streams.run(mid: mid)
                var err = jl_error()
                let rc = jl_exec_in_wait(mid, errorFd, &err)
                if rc == -1000 { throw JailError(.launchFailed, "exec in jail \(plan.jail): \(describe(err, plan: plan))") }
                if rc < 0 { throw JailError(.launchFailed, "exec in jail \(plan.jail): \(strerrorString(-rc))") }
                return rc
            }
        }
    }

    /// What stands between the caller's stdio and an exec'd command: nothing (files,
    /// pipes), pipes in place of the caller's terminals, or a terminal of the jail's.
    struct ExecStreams {
        var commandStdio: Stdio
        /// Our ends, in stream order (input, output, error): (source, destination).
        var streams: [(Int32, Int32)] = []
        /// The command's ends, closed once it holds them.
        var theirs: [Int32] = []
        var ours: [Int32] = []
        /// The input pipe's write end: jl_relay closes it (the command's EOF).
        var input: Int32 = -1
        var terminal = false

        init(tty: Bool, stdio: Stdio, jailRoot: Int32) throws {
            commandStdio = stdio
            if tty {
                var master: Int32 = -1, slave: Int32 = -1
                let r = jl_pty_open(jailRoot, &master, &slave)
                if r < 0 { throw JailError(.launchFailed, "a terminal from the jail's /dev/pts: \(strerrorString(-r))") }
                commandStdio = Stdio(stdin: slave, stdout: slave, stderr: slave)
                streams = [(0, master), (master, 1)]
                theirs = [slave]
                ours = [master]
                terminal = true
                return
            }
            let given = [stdio.stdin, stdio.stdout, stdio.stderr]
            var replaced = given
            var any = false
            for i in 0..<3 {
                let fd = given[i] >= 0 ? given[i] : Int32(i)
                guard isatty(fd) == 1 else { streams.append((-1, -1)); continue }
                if i == 0, case let fg = tcgetpgrp(fd), fg >= 0 && fg != getpgrp() {
                    // In the background of our controlling terminal (`jailctl exec j tail -f
                    // x &`): reading it would stop us (SIGTTIN); the command reads nothing.
                    let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    if null < 0 { closeAll(); throw SystemError("open /dev/null") }
                    replaced[0] = null
                    theirs.append(null)
                    streams.append((-1, -1))
                    continue
                }
                let p: (read: Int32, write: Int32)
                do { p = try FS.pipeCloexec() } catch {
                    closeAll()
                    throw error
                }
                // Input: the caller's terminal -> pipe -> command; output the other way.
                streams.append(i == 0 ? (fd, p.write) : (p.read, fd))
                replaced[i] = i == 0 ? p.read : p.write
                theirs.append(i == 0 ? p.read : p.write)
                if i == 0 { input = p.write } else { ours.append(p.read) }
                any = true
            }
            if !any { streams = [] }
            commandStdio = Stdio(stdin: replaced[0], stdout: replaced[1], stderr: replaced[2])
        }

        /// Relays until the command's waiter `mid` exits (nothing to do without streams).
        mutating func run(mid: pid_t) {
            // Only the command (and the process that waits for it) may hold its ends, so
            // that their end shows here as EOF.
            for fd in theirs { close(fd) }
            theirs = []
            guard !streams.isEmpty else { return }
            let pidfd = jl_pidfd_open(mid)
            if pidfd < 0 {
                // No relay: our ends close below, so the command sees EOF and EPIPE
                // instead of blocking on a pipe nobody reads.
                let note = "jailctl: exec: cannot watch the command (pidfd: \(strerrorString(-pidfd))); its input and output are cut\n"
                _ = note.withCString { write(2, $0, strlen($0)) }
                closeAll()
                return
            }
            defer { close(pidfd) }
            let src = streams.map(\.0), dst = streams.map(\.1)
            let r = jl_stdio_relay(src, dst, streams.count, terminal ? 1 : 0, mid, pidfd)
            input = -1 // closed by jl_relay
            if r < 0 {
                // The command goes on to its end; only its output is lost.
                let note = "jailctl: exec: relaying the command's output: \(strerrorString(-r))\n"
                _ = note.withCString { write(2, $0, strlen($0)) }
            }
            // Closing our ends now: a command left behind in the background sees EOF or
            // a hang-up, not a reader that never comes.
            for fd in ours { close(fd) }
            ours = []
        }

        mutating func closeAll() {
            for fd in theirs + ours + (input >= 0 ? [input] : []) { close(fd) }
            theirs = []
            ours = []
            input = -1
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

    /// Volumes: detached copies of each source (opened through `VolumeSources`, so a
    /// jail cannot redirect it), made by the parent and sent to the child, which moves them
    /// onto their targets. Idmapped ones are mapped through the child's user namespace
    /// (only a process privileged over the source's filesystem, host root, may).
    static func sendVolumeMounts(_ plan: LaunchPlan, pid: Int32, socket: Int32) throws {
        let ops = plan.mounts.filter { $0.kind.isDetachedBind }
        guard !ops.isEmpty else { return }
        if ops.count > Int(JL_MAX_MOUNT_FDS) {
            throw JailError(.launchFailed, "jail \(plan.jail): \(ops.count) volumes; at most \(JL_MAX_MOUNT_FDS) (generated files such as /etc/hosts count too)")
        }
        var userns: Int32 = -1
        defer { if userns >= 0 { close(userns) } }
        if ops.contains(where: { $0.kind == .idmappedBind }) {
            guard plan.idMap != nil else {
                throw JailError(.launchFailed, "jail \(plan.jail): idmapped volumes need a user namespace (userns = true)")
            }
            let nsPath = "/proc/\(pid)/ns/user"
            userns = open(nsPath, O_RDONLY | O_CLOEXEC)
            if userns < 0 { throw SystemError("open \(nsPath)") }
        }
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for op in ops {
            let path = op.source ?? ""
            let source: Int32
            do { source = try VolumeSources.open(path, writableRoots: plan.writableVolumeRoots, rootOwned: op.kind == .idmappedBind) } catch {
                throw JailError(.launchFailed, "jail \(plan.jail): \(error)")
            }
            var stage: Int32 = 0
            let fd = jl_detached_tree(source, op.kind == .idmappedBind ? userns : -1, op.flags, &stage)
            close(source)
            if fd < 0 {
                let why = op.kind == .idmappedBind ? idmapFailure(errno: -fd, stage: stage, source: path)
                                                   : "\(stage == 0 ? "open_tree" : "mount_setattr"): \(strerrorString(-fd))"
                throw JailError(.launchFailed, "jail \(plan.jail): volume \(path): \(why)")
            }
            fds.append(fd)
        }
        let rc = jl_send_fds(socket, fds, fds.count)
        if rc < 0 { throw JailError(.launchFailed, "jail \(plan.jail): sending the volume mounts: \(strerrorString(-rc))") }
    }

    /// Filesystems by statfs magic, for the one error a sysadmin can act on: a source
    /// whose filesystem cannot be idmapped.
    static let filesystemNames: [Int: String] = [
        0xEF53: "ext2/3/4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs", 0x0102_1994: "tmpfs", 0x794C_7630: "overlay",
        0x6969: "nfs", 0x6573_5546: "fuse", 0x4D44: "vfat", 0x8584_58F6: "ramfs", 0x2FC1_2FC1: "zfs", 0xFF53_4D42: "cifs",
        0x7346_7366: "squashfs",
    ]

    static func idmapFailure(errno e: Int32, stage: Int32, source: String) -> String {
        guard stage == 1, e == EINVAL else {
            return "\(stage == 0 ? "open_tree" : "mount_setattr (idmap)"): \(strerrorString(e))"
        }
        let type = jl_fs_type(source)
        let name = type < 0 ? "unknown" : filesystemNames[Int(type)] ?? "type 0x" + String(type, radix: 16)
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return "its filesystem (\(name)), or one mounted below it, does not support idmapped mounts on this kernel (\(release)); "
            + "idmap works on ext4, xfs, btrfs and tmpfs (6.3 and later); move the data to one of those, or remove idmap = true "
            + "(and give the jail its own copy owned through its id range)"
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
        Int32(JL_STEP_MOUNT_FDS.rawValue): "receiving the volume mounts",
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
            jl_op(kind: op.kind.cKind, source: arena.dup(op.source), target: arena.dup(op.target),
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
                                c.n_mount_fds = plan.mounts.filter { $0.kind.isDetachedBind }.count
                                c.mount_sock = -1
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
