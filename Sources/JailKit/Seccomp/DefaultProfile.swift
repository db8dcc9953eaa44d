#if canImport(Glibc)
import Glibc
#endif

// Why an allowlist (default EPERM), as Docker/containerd do, and not a denylist:
// - New system calls are new kernel attack surface reachable without any capability
//   (io_uring arrived in 5.1 and brought a stream of CVEs). A denylist lets every call
//   added after it was written through; an allowlist does not.
// - libseccomp decides the fallback of a call with conditional rules by the filter's
//   default: "clone without namespace flags", "personality only with these values" can
//   only be expressed as conditional allows over a denying default. Under a default of
//   ALLOW a conditional denial cannot say "unless".
// - The cost of an allowlist is breaking programs that use a call missing from it. This
//   list is not hand-picked from memory: it is libseccomp 2.5.4's whole x86_64 table
//   (0...456, up to futex_requeue) minus the denials below, each reviewed. And calls
//   newer than that table get ENOSYS, not EPERM (as runc does): glibc treats ENOSYS as
//   "old kernel" and falls back (the faccessat2 breakage of 2021 was EPERM).
// Denials are EPERM, not a kill: a program probing a feature sees an ordinary failure.
extension SeccompProfile {
    /// CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET, Docker's mask. CLONE_NEWTIME
    /// (0x80) is absent: in clone's flags that bit is part of the exit signal byte.
    public static let cloneNamespaceFlags: UInt64 = 0x7E02_0000
    /// unshare also takes CLONE_NEWTIME.
    public static let unshareNamespaceFlags: UInt64 = 0x7E02_0080
    /// Docker's safe personality values: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32,
    /// and 0xffffffff (query only). READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE and the rest undo
    /// hardening and are refused.
    public static let safePersonalities: [UInt64] = [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff]

    /// The highest number of libseccomp 2.5.4's x86_64 table (futex_requeue), which is
    /// what `allowedSyscalls` was reviewed against.
    public static let reviewedThrough: Int32 = 456

    /// The denials, each with the reason shown by `jailctl inspect --seccomp`. They are
    /// EPERM like the default, so the compiler leaves them out of the program; they are
    /// here so that the profile says what it refuses and why, and so `allow` can lift them.
    public static let deniedSyscalls: [(name: String, reason: String)] = [
        ("add_key", "kernel keyrings are not namespaced"),
        ("request_key", "kernel keyrings are not namespaced"),
        ("keyctl", "kernel keyrings are not namespaced"),
        ("bpf", "eBPF verifier and maps: kernel attack surface"),
        ("perf_event_open", "perf: kernel attack surface, leaks addresses"),
        ("userfaultfd", "used to win kernel races in exploits"),
        ("io_uring_setup", "io_uring: large kernel attack surface"),
        ("io_uring_enter", "io_uring: large kernel attack surface"),
        ("io_uring_register", "io_uring: large kernel attack surface"),
        ("kexec_load", "replaces the running kernel"),
        ("kexec_file_load", "replaces the running kernel"),
        ("init_module", "loads kernel modules"),
        ("finit_module", "loads kernel modules"),
        ("delete_module", "unloads kernel modules"),
        ("create_module", "obsolete module interface"),
        ("get_kernel_syms", "obsolete module interface"),
        ("query_module", "obsolete module interface"),
        ("reboot", "reboots the host"),
        ("swapon", "host swap"),
        ("swapoff", "host swap"),
        ("acct", "host process accounting"),
        ("quotactl", "host disk quotas"),
        ("quotactl_fd", "host disk quotas"),
        ("iopl", "raw I/O port access"),
        ("ioperm", "raw I/O port access"),
        ("modify_ldt", "16-bit segments: exploit aid, no server needs it"),
        ("mount", "the jail's mounts are fixed at launch"),
        ("umount2", "the jail's mounts are fixed at launch"),
        ("pivot_root", "the jail's root is fixed at launch"),
        ("fsopen", "new mount API"),
        ("fsconfig", "new mount API"),
        ("fsmount", "new mount API"),
        ("fspick", "new mount API"),
        ("move_mount", "new mount API"),
        ("open_tree", "new mount API"),
        ("mount_setattr", "new mount API"),
        ("setns", "joining namespaces"),
        ("open_by_handle_at", "opens files by handle, bypassing the jail's root (shocker)"),
        ("name_to_handle_at", "file handles: pair of open_by_handle_at"),
        ("ptrace", "inspects and changes other processes (allow for debuggers)"),
        ("process_vm_readv", "reads another process's memory, like ptrace"),
        ("process_vm_writev", "writes another process's memory, like ptrace"),
        ("kcmp", "compares kernel objects of other processes, like ptrace"),
        ("pidfd_getfd", "takes descriptors from another process, like ptrace"),
        ("process_madvise", "acts on another process's memory"),
        ("process_mrelease", "reaps another process's memory (for OOM killers)"),
        ("syslog", "kernel log: leaks addresses"),
        ("vhangup", "hangs up the controlling terminal"),
        ("settimeofday", "host clock"),
        ("clock_settime", "host clock"),
        ("clock_adjtime", "host clock; struct timex is in memory, so read-only use cannot be told apart"),
        ("adjtimex", "host clock; struct timex is in memory, so read-only use cannot be told apart"),
        ("stime", "host clock (not on x86_64)"),
        ("lookup_dcookie", "profiling interface, needs CAP_SYS_ADMIN"),
        ("nfsservctl", "removed from the kernel"),
        ("uselib", "obsolete a.out loader"),
        ("ustat", "obsolete, leaks device numbers"),
        ("sysfs", "obsolete filesystem-type query"),
        ("_sysctl", "removed from the kernel"),
        ("vm86", "virtual 8086 mode (not on x86_64)"),
        ("vm86old", "virtual 8086 mode (not on x86_64)"),
        ("mbind", "NUMA policy needs CAP_SYS_NICE in Docker; libnuma falls back"),
        ("set_mempolicy", "NUMA policy needs CAP_SYS_NICE in Docker; libnuma falls back"),
        ("get_mempolicy", "denied with set_mempolicy so libnuma reports no NUMA"),
        ("set_mempolicy_home_node", "NUMA policy"),
        ("migrate_pages", "moves another process's pages"),
        ("move_pages", "moves another process's pages"),
        ("fanotify_init", "filesystem-wide event monitoring; inotify is what programs use"),
        ("fanotify_mark", "pair of fanotify_init"),
    ]

    /// Every other system call of the reviewed table: allowed without conditions.
    /// (Not here and not denied: clone, unshare, personality (conditional), clone3
    /// (ENOSYS), and the unimplemented afs_syscall, getpmsg, putpmsg, security, tuxcall,
    /// vserver, epoll_ctl_old, epoll_wait_old, which fall to the default.)
    public static let allowedSyscalls: [String] = [
        "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "cachestat",
        "capget", "capset", "chdir", "chmod", "chown", "chroot", "clock_getres", "clock_gettime",
        "clock_nanosleep", "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2",
        "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd",
        "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
        "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "fcntl",
        "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
        "fstatfs", "fsync", "ftruncate", "futex", "futex_requeue", "futex_wait", "futex_waitv", "futex_wake",
        "futimesat", "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
        "geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
        "getppid", "getpriority", "getrandom", "getresgid", "getresuid", "getrlimit", "getrusage", "getsid",
        "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init",
        "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_setup", "io_submit",
        "ioctl", "ioprio_get", "ioprio_set", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
        "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "lremovexattr", "lseek",
        "lsetxattr", "lstat", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
        "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
        "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap",
        "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
        "nanosleep", "newfstatat", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
        "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl",
        "pread64", "preadv", "preadv2", "prlimit64", "pselect6", "pwrite64", "pwritev", "pwritev2",
        "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg",
        "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
        "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity",
        "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
        "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto", "set_robust_list", "set_thread_area",
        "set_tid_address", "setdomainname", "setfsgid", "setfsuid", "setgid", "setgroups", "sethostname", "setitimer",
        "setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "setsid",
        "setsockopt", "setuid", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
        "sigaltstack", "signalfd", "signalfd4", "socket", "socketpair", "splice", "stat", "statfs",
        "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
        "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create",
        "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask", "uname", "unlink",
        "unlinkat", "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4", "waitid",
        "write", "writev",
    ]

    /// The profile every jail gets unless its spec says otherwise. Newer calls get ENOSYS
    /// up to #511 only: each number is one rule, and up to 1023 the program doubles and
    /// compiling it takes ~8x longer (libseccomp, measured). 512...547 are x32's numbers on
    /// x86_64, so 511 is where the 64-bit table has to stop for years (6.18 ends at 469);
    /// above it the default (EPERM) still refuses.
    public static let defaultProfile: SeccompProfile = {
        var rules = allowedSyscalls.map { SeccompRule($0, .allow) }
        rules.append(SeccompRule("clone", .allow, when: [SeccompCondition(argument: 0, .maskedEqual(mask: cloneNamespaceFlags, value: 0))],
                                 reason: "fork and threads, but no new namespaces (flags are argument 0 on x86_64)"))
        rules.append(SeccompRule("unshare", .allow, when: [SeccompCondition(argument: 0, .maskedEqual(mask: unshareNamespaceFlags, value: 0))],
                                 reason: "CLONE_FILES/FS/SYSVSEM, but no new namespaces"))
        for v in safePersonalities {
            rules.append(SeccompRule("personality", .allow, when: [SeccompCondition(argument: 0, .equal(v))], reason: "safe persona"))
        }
        rules.append(SeccompRule("clone3", .enosys,
                                 reason: "its flags are in memory, out of seccomp's reach; ENOSYS makes glibc fall back to clone"))
        rules += deniedSyscalls.map { SeccompRule($0.name, .eperm, reason: $0.reason) }
        var profile = SeccompProfile(name: "default", defaultAction: .eperm, badArchAction: .killProcess, architectures: [.native],
                                     rules: rules,
                                     newerSyscalls: NewerSyscalls(reviewedThrough: reviewedThrough, upTo: 511, action: .enosys))
        // A command run by `jailctl exec` shares the caller's terminal: TIOCSTI would type
        // into the sysadmin's shell, TIOCLINUX paste into it.
        profile.deniedIoctls = [0x5412, 0x541C]
        return profile
    }()
}
