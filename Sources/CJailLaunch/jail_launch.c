// Carries out a jail launch plan. Everything that runs in a child here runs after a fork
// of a multi-threaded Swift process, so it is restricted to raw system calls: no malloc,
// no stdio, no locks. Sync points are numbered as in jail_launch.h's comments:
//   1. the child waits on go_fd until the parent finished the outside set-up
//   2. the child reports a failure (step, index, errno) on error_fd and exits 127
//   3. execve closes error_fd (close-on-exec): the parent reads EOF, the launch succeeded
#define _GNU_SOURCE
#include "jail_launch.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <linux/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

// --- raw system calls of the jail's child -------------------------------------------
//
// The jail's child shares the parent's memory until execve (CLONE_VM, see clone_jail):
// copying the page tables of a large Swift process for a child that execs at once was
// a third of a launch, and tearing the copy down at execve as much again. So the child
// may write nothing but its own stack. In particular not errno, which is the calling
// thread's (the child runs on that thread's TLS): it calls the kernel directly and gets
// -errno back, and glibc's id wrappers, which signal the caller's threads to change
// their ids too, are never used.

static inline long rsys(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    return x0;
#else
#error "jail_launch.c: raw system calls for this architecture are missing"
#endif
}

#define R0(n) rsys((n), 0, 0, 0, 0, 0, 0)
#define R1(n, a) rsys((n), (long)(a), 0, 0, 0, 0, 0)
#define R2(n, a, b) rsys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define R3(n, a, b, c) rsys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define R4(n, a, b, c, d) rsys((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define R5(n, a, b, c, d, e) rsys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

// A raw call's result: negative errno values come back in (-4096, 0).
static inline int failed(long r) { return r < 0 && r > -4096; }

__attribute__((noreturn)) static void raw_exit(int code) {
    for (;;) R1(SYS_exit_group, code);
}

static void raw_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        long n = R3(SYS_write, fd, p, len);
        if (n == -EINTR) continue;
        if (n <= 0) return;
        p += n;
        len -= (size_t)n;
    }
}

// Reports (step, index, err) to the parent and exits; err is a positive errno.
__attribute__((noreturn)) static void fail_with(int error_fd, int step, int index, int err) {
    struct jl_error e = {.step = step, .index = index, .err = err};
    raw_write_all(error_fd, &e, sizeof e);
    raw_exit(127);
}

// Calls `call` (a raw system call expression) and fails the launch at (step, index) if
// it returned an error.
#define CHECK(call, error_fd, step, index)                                 \
    do {                                                                   \
        long r_ = (call);                                                  \
        if (failed(r_)) fail_with((error_fd), (step), (index), (int)-r_); \
    } while (0)

// --- helpers safe after fork -------------------------------------------------------

static void write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        p += n;
        len -= (size_t)n;
    }
}

static ssize_t read_full(int fd, void *buf, size_t len) {
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

// For the joining process of jl_exec_in, a forked copy whose errno is its own.
__attribute__((noreturn)) static void fail(int error_fd, int step, int index) {
    fail_with(error_fd, step, index, errno);
}

static pid_t raw_fork(void) {
    // A raw clone skips glibc's atfork handlers, which may take locks held by other
    // Swift threads at the time of the fork.
    return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

// The kernel's struct sigaction starts with the handler on every architecture; the rest
// (flags, restorer where there is one, mask) fits in 32 bytes. All zero is SIG_DFL.
struct raw_sigaction {
    unsigned long handler;
    unsigned long rest[3];
};

// Every signal to its default disposition: handlers (the parent's, which must never run
// on its shared memory) and SIG_IGN (which survives execve and would leak into the jail).
static void reset_dispositions(void) {
    struct raw_sigaction dfl = {0, {0, 0, 0}};
    for (int sig = 1; sig < 65; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct raw_sigaction old = {0, {0, 0, 0}};
        if (!failed(R4(SYS_rt_sigaction, sig, 0, &old, 8)) && old.handler != 0) R4(SYS_rt_sigaction, sig, &dfl, 0, 8);
    }
}

static void unblock_signals(void) {
    uint64_t none = 0;
    R4(SYS_rt_sigprocmask, SIG_SETMASK, &none, 0, 8);
}

// 0 or -errno.
static long loopback_up(void) {
    long s = R3(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (failed(s)) return s;
    struct ifreq ifr;
    __builtin_memset(&ifr, 0, sizeof ifr);
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    long rc = R3(SYS_ioctl, s, SIOCGIFFLAGS, &ifr);
    if (!failed(rc)) {
        ifr.ifr_flags |= IFF_UP;
        rc = R3(SYS_ioctl, s, SIOCSIFFLAGS, &ifr);
    }
    R1(SYS_close, s);
    return rc;
}

// The mount fds the parent sent for the plan's JL_OP_MOVE_MOUNT ops, in op order; 0 or
// -errno (raw: the child shares the parent's memory, errno included).
static long receive_mount_fds(int sock, int *fds, size_t n) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * JL_MAX_MOUNT_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    long r;
    do r = R3(SYS_recvmsg, sock, &msg, MSG_CMSG_CLOEXEC);
    while (r == -EINTR);
    if (failed(r)) return r;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (r != 1 || !c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(sizeof(int) * n) || (msg.msg_flags & MSG_CTRUNC)) {
        return -EPROTO;
    }
    __builtin_memcpy(fds, CMSG_DATA(c), sizeof(int) * n);
    return 0;
}

// 0 or -errno.
static long run_op(const struct jl_op *op, const int *mount_fds, size_t *next_mount_fd) {
    switch (op->kind) {
    case JL_OP_MOVE_MOUNT: {
        int fd = mount_fds[(*next_mount_fd)++];
        long rc = R5(SYS_move_mount, fd, "", AT_FDCWD, op->target, MOVE_MOUNT_F_EMPTY_PATH);
        R1(SYS_close, fd);
        return rc;
    }
    case JL_OP_MOUNT:
        return R5(SYS_mount, op->source, op->target, op->fstype, op->flags, op->data);
    case JL_OP_MKDIR: {
        long r = R3(SYS_mkdirat, AT_FDCWD, op->target, op->mode);
        return r == -EEXIST ? 0 : r;
    }
    case JL_OP_TOUCH: {
        long fd = R4(SYS_openat, AT_FDCWD, op->target, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, op->mode);
        if (failed(fd)) return fd;
        R1(SYS_close, fd);
        return 0;
    }
    case JL_OP_SYMLINK:
        return R3(SYS_symlinkat, op->source, AT_FDCWD, op->target);
    case JL_OP_REMOUNT:
        return R5(SYS_mount, 0, op->target, 0, MS_REMOUNT | MS_BIND | op->flags, 0);
    default:
        return -EINVAL;
    }
}

// The part of the set-up shared by a new jail and by exec into a running one: the
// process is already in the jail's namespaces and root; what is left is its identity,
// its privileges and the program. Raw system calls only (see above): a new jail's child
// shares the parent's memory.
__attribute__((noreturn)) static void become(const struct jl_plan *p, int error_fd, int dispositions_done) {
    if (p->new_session) CHECK(R0(SYS_setsid), error_fd, JL_STEP_SETSID, 0);
    int fds[3] = {p->stdin_fd, p->stdout_fd, p->stderr_fd};
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0) continue;
        if (fds[i] == i) {
            CHECK(R3(SYS_fcntl, i, F_SETFD, 0), error_fd, JL_STEP_STDIO, i);
        } else {
            CHECK(R3(SYS_dup3, fds[i], i, 0), error_fd, JL_STEP_STDIO, i);
        }
    }
    // exec -t: the jail's own terminal becomes the controlling one of the new session.
    if (p->controlling_tty) CHECK(R3(SYS_ioctl, 0, TIOCSCTTY, 0), error_fd, JL_STEP_STDIO, 3);
    for (size_t i = 0; i < p->n_rlimits; i++) {
        struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
        CHECK(R4(SYS_prlimit64, 0, p->rlimits[i].resource, &rl, 0), error_fd, JL_STEP_RLIMIT, (int)i);
    }
    if (p->drop_caps) {
        for (int cap = 0; cap <= 63; cap++) {
            if (p->keep_caps & (1ULL << cap)) continue;
            long r = R2(SYS_prctl, PR_CAPBSET_DROP, cap);
            // EINVAL: the kernel knows no capability of this number, nor any above it.
            if (r == -EINVAL) break;
            if (failed(r)) fail_with(error_fd, JL_STEP_CAPS, cap, (int)-r);
        }
        // uid 0 inside gains nothing from exec (NOROOT, locked): capabilities come only
        // from the explicit sets below. The setuid fixup stays on, and locked on, so that a
        // service that drops privileges (sshd to its session user) loses every capability
        // with its uid, as it expects; KEEP_CAPS carries the kept set across our own
        // setresuid below and is cleared by the kernel at execve.
        int bits = SECBIT_KEEP_CAPS | SECBIT_NOROOT | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_NOROOT_LOCKED;
        CHECK(R2(SYS_prctl, PR_SET_SECUREBITS, bits), error_fd, JL_STEP_CAPS, 100);
    }
    CHECK(R2(SYS_setgroups, p->n_groups, p->groups), error_fd, JL_STEP_SETGROUPS, 0);
    CHECK(R3(SYS_setresgid, p->gid, p->gid, p->gid), error_fd, JL_STEP_SETGID, 0);
    CHECK(R3(SYS_setresuid, p->uid, p->uid, p->uid), error_fd, JL_STEP_SETUID, 0);
    // After the id change, which clears a parent-death signal set before it.
    if (p->die_with_parent) CHECK(R2(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL), error_fd, JL_STEP_SETUID, 1);
    if (p->drop_caps) {
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct data[2];
        __builtin_memset(data, 0, sizeof data);
        data[0].effective = data[0].permitted = data[0].inheritable = (uint32_t)(p->keep_caps & 0xffffffffu);
        data[1].effective = data[1].permitted = data[1].inheritable = (uint32_t)(p->keep_caps >> 32);
        CHECK(R2(SYS_capset, &hdr, data), error_fd, JL_STEP_CAPS, 101);
        CHECK(R2(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL), error_fd, JL_STEP_CAPS, 102);
        for (int cap = 0; cap <= 63; cap++) {
            if (!(p->keep_caps & (1ULL << cap))) continue;
            CHECK(R3(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap), error_fd, JL_STEP_CAPS, cap);
        }
    }
    if (p->no_new_privs) CHECK(R2(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1), error_fd, JL_STEP_NO_NEW_PRIVS, 0);
    if (p->workdir) CHECK(R1(SYS_chdir, p->workdir), error_fd, JL_STEP_WORKDIR, 0);
    // Every descriptor above 2 is closed at exec; error_fd stays usable until then.
    CHECK(R3(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC), error_fd, JL_STEP_CLOSE_FDS, 0);
    // Dispositions set to SIG_IGN and the blocked mask survive execve: give the jail a
    // clean slate (a new jail's child did the dispositions first thing).
    if (!dispositions_done) reset_dispositions();
    unblock_signals();
    if (p->seccomp_len > 0) {
        struct sock_fprog prog = {.len = (unsigned short)p->seccomp_len, .filter = (struct sock_filter *)p->seccomp_filter};
        CHECK(R3(SYS_prctl, PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), error_fd, JL_STEP_SECCOMP, 0);
    }
    long r = R3(SYS_execve, p->path, p->argv, p->envp);
    fail_with(error_fd, JL_STEP_EXEC, 0, (int)-r);
}

// What clone_jail hands its child, at the top of the child's own stack.
struct jail_args {
    // The plan itself, not a pointer to the caller's: jl_spawn passes a copy on its own
    // stack frame, which is gone when it returns while the child may still read it.
    struct jl_plan plan_copy;
    const struct jl_plan *plan;
    int go_fd;
    int error_fd;
    int go_write;
};

// The new jail: namespaces are fresh (clone flags); build the root and become the service.
__attribute__((noreturn)) static int jail_child(void *arg) {
    struct jail_args *a = arg;
    const struct jl_plan *p = a->plan;
    int error_fd = a->error_fd;
    // All signals are blocked since clone (see clone_jail); no handler of the parent may
    // ever run here.
    reset_dispositions();
    if (a->go_write >= 0) R1(SYS_close, a->go_write);
    char go;
    long n;
    do n = R3(SYS_read, a->go_fd, &go, 1);
    while (n == -EINTR);
    if (n != 1) fail_with(error_fd, JL_STEP_WAIT_PARENT, 0, failed(n) ? (int)-n : EPIPE);
    R1(SYS_close, a->go_fd);
    // In a new user namespace the parent has written our id maps by now; become root of
    // it, so files we create (tmpfs /dev, mount points) belong to a mapped id.
    if (p->clone_flags & CLONE_NEWUSER) {
        CHECK(R3(SYS_setresgid, 0, 0, 0), error_fd, JL_STEP_SETUID, 1);
        CHECK(R3(SYS_setresuid, 0, 0, 0), error_fd, JL_STEP_SETUID, 1);
    }
    // After the parent moved us into the jail's cgroup, so that it becomes our root.
    if (p->unshare_cgroup) CHECK(R1(SYS_unshare, CLONE_NEWCGROUP), error_fd, JL_STEP_UNSHARE_CGROUP, 0);
    CHECK(R5(SYS_mount, 0, "/", 0, MS_REC | MS_PRIVATE, 0), error_fd, JL_STEP_PROPAGATION, 0);
    // Sent before the go byte, so they are queued already.
    int mount_fds[JL_MAX_MOUNT_FDS];
    size_t next_mount_fd = 0;
    if (p->n_mount_fds > 0) {
        if (p->n_mount_fds > JL_MAX_MOUNT_FDS) fail_with(error_fd, JL_STEP_MOUNT_FDS, 0, EINVAL);
        CHECK(receive_mount_fds(p->mount_sock, mount_fds, p->n_mount_fds), error_fd, JL_STEP_MOUNT_FDS, 0);
        R1(SYS_close, p->mount_sock);
    }
    for (size_t i = 0; i < p->n_ops; i++) {
        if (p->ops[i].kind == JL_OP_MOVE_MOUNT && next_mount_fd >= p->n_mount_fds)
            fail_with(error_fd, JL_STEP_OP, (int)i, EBADF);
        long r = run_op(&p->ops[i], mount_fds, &next_mount_fd);
        if (failed(r) && !(p->ops[i].optional && r == -ENOENT)) fail_with(error_fd, JL_STEP_OP, (int)i, (int)-r);
    }
    // pivot_root(".", ".") stacks the old root under the new one, so no put_old
    // directory is needed in a read-only image; the old root is then detached.
    CHECK(R1(SYS_chdir, p->root), error_fd, JL_STEP_CHDIR_ROOT, 0);
    CHECK(R2(SYS_pivot_root, ".", "."), error_fd, JL_STEP_PIVOT_ROOT, 0);
    CHECK(R2(SYS_umount2, ".", MNT_DETACH), error_fd, JL_STEP_UMOUNT_OLD, 0);
    CHECK(R1(SYS_chdir, "/"), error_fd, JL_STEP_CHDIR_ROOT, 1);
    if (p->hostname) {
        size_t len = 0;
        while (p->hostname[len]) len++;
        CHECK(R2(SYS_sethostname, p->hostname, len), error_fd, JL_STEP_HOSTNAME, 0);
    }
    if (p->loopback_up) CHECK(loopback_up(), error_fd, JL_STEP_LOOPBACK, 0);
    become(p, error_fd, 1);
}

// Stack of a jail's child until execve: its frames are small (no recursion, a few
// structs), and the lowest page stays unmapped as a guard.
#define JL_STACK_SIZE (256 * 1024)

// Starts the jail's child sharing this process's memory (CLONE_VM, no page tables
// copied; see the raw system calls above) on a stack of its own, which *stack receives:
// it may be unmapped only once the child has reached execve or is gone. All signals
// stay blocked in the child from its first instruction until just before execve.
// go_write: the parent's end of the go pipe, which the child must not hold (-1: none): a
// parent that gives up closes its end, and the child must then see EOF, not wait for itself.
static pid_t clone_jail(const struct jl_plan *p, int go_fd, int error_fd, int go_write, void **stack) {
    *stack = NULL;
    char *s = mmap(NULL, JL_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (s == MAP_FAILED) return -1;
    if (mprotect(s, 4096, PROT_NONE) < 0) {
        int e = errno;
        munmap(s, JL_STACK_SIZE);
        errno = e;
        return -1;
    }
    // The arguments live on the child's stack, not in this frame, which is gone once
    // clone_jail returns while the child may still be reading them.
    struct jail_args *a = (struct jail_args *)(s + JL_STACK_SIZE - ((sizeof *a + 63) & ~(size_t)63));
    a->plan_copy = *p;
    a->plan = &a->plan_copy;
    a->go_fd = go_fd;
    a->error_fd = error_fd;
    a->go_write = go_write;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(jail_child, a, p->clone_flags | CLONE_VM | SIGCHLD, a);
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        munmap(s, JL_STACK_SIZE);
        errno = e;
        return -1;
    }
    *stack = s;
    return pid;
}

void jl_child_free_stack(struct jl_child *c) {
    if (c->stack) munmap(c->stack, JL_STACK_SIZE);
    c->stack = NULL;
}

// --- the monitor: waits for the jail and leaves its wait status in a file -------------

static size_t format_u64(char *buf, unsigned long long v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    return n;
}

// "2026-11-30T04:20:00.123Z " into buf (25 bytes), from the realtime clock, without
// gmtime (not async-signal-safe): days to civil date after Howard Hinnant's algorithm.
static size_t format_timestamp(char *buf) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long secs = now.tv_sec, days = secs / 86400, rem = secs % 86400;
    long long z = days + 719468, era = z / 146097, doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    long long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) y++;
    long long f[7] = {y, m, d, rem / 3600, rem / 60 % 60, rem % 60, now.tv_nsec / 1000000};
    const char *seps = "--T::.Z";
    int widths[7] = {4, 2, 2, 2, 2, 2, 3};
    size_t n = 0;
    for (int i = 0; i < 7; i++) {
        long long v = f[i];
        for (int w = widths[i] - 1; w >= 0; w--) {
            buf[n + (size_t)w] = (char)('0' + v % 10);
            v /= 10;
        }
        n += (size_t)widths[i];
        buf[n++] = seps[i];
    }
    buf[n++] = ' ';
    return n;
}

// The log file's name with ".k" appended (k > 0), into buf.
static void rotated_name(char *buf, size_t cap, const char *name, int k) {
    size_t n = strlen(name);
    if (n + 12 > cap) n = cap - 12;
    memcpy(buf, name, n);
    if (k > 0) {
        buf[n++] = '.';
        n += format_u64(buf + n, (unsigned long long)k);
    }
    buf[n] = 0;
}

static int open_log(const struct jl_plan *p, uint64_t *size) {
    int log = openat(4, p->log_name, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    struct stat st;
    *size = (log >= 0 && fstat(log, &st) == 0) ? (uint64_t)st.st_size : 0;
    return log;
}

// name.(k-1) -> name.k, ..., name -> name.1; the oldest beyond log_keep is replaced.
static void rotate_log(const struct jl_plan *p) {
    char from[512], to[512];
    for (int k = p->log_keep; k >= 1; k--) {
        rotated_name(from, sizeof from, p->log_name, k - 1);
        rotated_name(to, sizeof to, p->log_name, k);
        renameat(4, from, 4, to);
    }
    if (p->log_keep < 1) unlinkat(4, p->log_name, 0);
}

// The log being written: stamps each line, rotates by size between lines.
struct log_writer {
    const struct jl_plan *p;
    int fd;
    uint64_t size;
    int at_line_start;
    size_t o;
    char out[8192 + 64];
};

static void log_flush(struct log_writer *w) {
    write_all(w->fd, w->out, w->o);
    w->size += w->o;
    w->o = 0;
}

static void log_bytes(struct log_writer *w, const char *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (w->at_line_start) {
            w->o += format_timestamp(w->out + w->o);
            w->at_line_start = 0;
        }
        w->out[w->o++] = in[i];
        int eol = in[i] == '\n';
        if (eol) w->at_line_start = 1;
        if (w->o > sizeof w->out - 32 || (eol && w->p->log_max_bytes > 0 && w->size + w->o >= w->p->log_max_bytes)) log_flush(w);
        if (eol && w->p->log_max_bytes > 0 && w->size >= w->p->log_max_bytes) {
            rotate_log(w->p);
            if (w->fd >= 0) close(w->fd);
            w->fd = open_log(w->p, &w->size);
        }
    }
    // What one read brought is written before the next read may block.
    log_flush(w);
}

// One syslog datagram as one line: "<PRI>" dropped (the stamp says when; the message
// keeps its program name), a newline added when missing.
static void log_datagram(struct log_writer *w, char *msg, size_t n) {
    size_t skip = 0;
    if (n > 2 && msg[0] == '<') {
        size_t k = 1;
        while (k < n && k < 5 && msg[k] >= '0' && msg[k] <= '9') k++;
        if (k < n && msg[k] == '>') skip = k + 1;
    }
    while (n > skip && (msg[n - 1] == '\n' || msg[n - 1] == 0)) n--;
    if (!w->at_line_start) log_bytes(w, "\n", 1);
    log_bytes(w, "syslog: ", 8);
    log_bytes(w, msg + skip, n - skip);
    log_bytes(w, "\n", 1);
}

static void drain_syslog(struct log_writer *w, int fd) {
    char msg[8192];
    for (;;) {
        ssize_t r = recv(fd, msg, sizeof msg, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        log_datagram(w, msg, (size_t)r);
    }
}

// Copies the jail's output from fd 5 (and syslog datagrams from fd 6, when present) to
// the log in directory fd 4 until every writer of the output pipe is gone.
static void relay_log(const struct jl_plan *p, int syslog_fd) {
    static struct log_writer w;
    w.p = p;
    w.fd = open_log(p, &w.size);
    w.at_line_start = 1;
    w.o = 0;
    char in[8192];
    for (;;) {
        struct pollfd fds[2] = {{.fd = 5, .events = POLLIN}, {.fd = syslog_fd, .events = POLLIN}};
        int rc = poll(fds, syslog_fd >= 0 ? 2 : 1, -1);
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) break;
        if (syslog_fd >= 0 && fds[1].revents) drain_syslog(&w, syslog_fd);
        if (fds[0].revents) {
            ssize_t r = read(5, in, sizeof in);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            log_bytes(&w, in, (size_t)r);
        }
    }
    // The jail is gone: what it sent last is still queued.
    if (syslog_fd >= 0) drain_syslog(&w, syslog_fd);
    if (w.fd >= 0) close(w.fd);
}

// A datagram socket at path, writable by every uid (a jail's users are strangers to the
// monitor); -1 when it cannot be made (the jail then runs without /dev/log).
static int open_syslog(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t n = strlen(path);
    if (n >= sizeof a.sun_path) return -1;
    memcpy(a.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || chmod(path, 0666) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

__attribute__((noreturn)) static void monitor(const struct jl_plan *plan, int status_dir_fd, int go_fd, int error_fd,
                                              int go_w, int error_r, int info_w) {
    close(go_w);
    close(error_r);
    setsid();
    struct jl_plan copy = *plan;
    const struct jl_plan *p = &copy;
    int logpipe[2] = {-1, -1};
    if (plan->log_name && pipe2(logpipe, O_CLOEXEC) == 0) {
        copy.stdout_fd = logpipe[1];
        copy.stderr_fd = logpipe[1];
        // Failure only means the jail cannot reopen the pipe by path; it still writes to it.
        if (plan->log_pipe_uid != (uid_t)-1 && fchown(logpipe[1], plan->log_pipe_uid, plan->log_pipe_gid) < 0) {
            /* nothing to report to: the jail's stderr is this very pipe */
        }
    }
    // Bound before the jail starts: its mounts bind the socket on /dev/log.
    int slog = logpipe[0] >= 0 && plan->syslog_path ? open_syslog(plan->syslog_path) : -1;
    // The stack stays mapped for the monitor's lifetime: the monitor only waits.
    void *stack;
    pid_t pid = clone_jail(p, go_fd, error_fd, -1, &stack);
    if (logpipe[1] >= 0) close(logpipe[1]);
    if (p->mount_sock >= 0) close(p->mount_sock);
    int e = pid < 0 ? errno : 0;
    pid_t self = getpid();
    write_all(info_w, &self, sizeof self);
    write_all(info_w, &pid, sizeof pid);
    write_all(info_w, &e, sizeof e);
    if (pid < 0) _exit(1);
    // Keep nothing of the caller: not its terminal, not its descriptors.
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
    }
    // Out of the way first, so no dup2 below overwrites a descriptor still needed.
    int sdir = fcntl(status_dir_fd, F_DUPFD_CLOEXEC, 100);
    int ldir = logpipe[0] >= 0 ? fcntl(p->log_dir_fd, F_DUPFD_CLOEXEC, 100) : -1;
    int lread = logpipe[0] >= 0 ? fcntl(logpipe[0], F_DUPFD_CLOEXEC, 100) : -1;
    int sread = slog >= 0 ? fcntl(slog, F_DUPFD_CLOEXEC, 100) : -1;
    if (sdir < 0 || dup2(sdir, 3) < 0) _exit(1);
    if (logpipe[0] >= 0) {
        if (ldir < 0 || lread < 0 || dup2(ldir, 4) < 0 || dup2(lread, 5) < 0) _exit(1);
        if (sread >= 0 && dup2(sread, 6) < 0) _exit(1);
        syscall(SYS_close_range, sread >= 0 ? 7 : 6, ~0U, 0);
        relay_log(p, sread >= 0 ? 6 : -1);
    } else {
        syscall(SYS_close_range, 4, ~0U, 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) _exit(1);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char buf[96];
    size_t n = 0;
    memcpy(buf, "status ", 7);
    n += 7;
    n += format_u64(buf + n, (unsigned long long)(unsigned)status);
    memcpy(buf + n, "\nended_ms ", 10);
    n += 10;
    n += format_u64(buf + n, (unsigned long long)now.tv_sec * 1000ULL + (unsigned long long)now.tv_nsec / 1000000ULL);
    buf[n++] = '\n';
    int fd = openat(3, "exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0) {
        write_all(fd, buf, n);
        fsync(fd);
        close(fd);
        renameat(3, "exit.tmp", 3, "exit");
    }
    _exit(0);
}

// --- parent side --------------------------------------------------------------------

int jl_spawn(const struct jl_plan *plan, int status_dir_fd, struct jl_child *out) {
    int go[2] = {-1, -1}, err[2] = {-1, -1};
    // Idmapped volumes: their mount fds come over this socket (the parent can make them
    // only once the child's user namespace has its maps; see Launcher.spawn).
    int msock[2] = {-1, -1};
    if (plan->n_mount_fds > 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, msock) < 0) return -errno;
    struct jl_plan local = *plan;
    local.mount_sock = msock[1];
    const struct jl_plan *p = &local;
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        int e = errno;
        if (go[0] >= 0) {
            close(go[0]);
            close(go[1]);
        }
        if (msock[0] >= 0) {
            close(msock[0]);
            close(msock[1]);
        }
        return -e;
    }
    out->monitor = 0;
    out->pid = -1;
    out->stack = NULL;
    out->mount_sock = -1;
    int rc = 0;
    if (status_dir_fd < 0) {
        pid_t pid = clone_jail(p, go[0], err[1], go[1], &out->stack);
        if (pid < 0) rc = -errno;
        out->pid = pid;
    } else {
        int info[2];
        if (pipe2(info, O_CLOEXEC) < 0) {
            rc = -errno;
        } else {
            // Double fork: the monitor is re-parented to init (or the nearest subreaper),
            // so no caller, not even a long-running one, collects it as a zombie.
            pid_t mid = raw_fork();
            if (mid == 0) {
                pid_t m = raw_fork();
                if (m == 0) {
                    if (msock[0] >= 0) close(msock[0]);
                    monitor(p, status_dir_fd, go[0], err[1], go[1], err[0], info[1]);
                }
                _exit(m < 0 ? 1 : 0);
            }
            int e = errno;
            close(info[1]);
            if (mid < 0) {
                rc = -e;
            } else {
                int st = 0;
                while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {}
                pid_t pid = -1, m = 0;
                int cerr = 0;
                if (read_full(info[0], &m, sizeof m) != sizeof m || read_full(info[0], &pid, sizeof pid) != sizeof pid ||
                    read_full(info[0], &cerr, sizeof cerr) != sizeof cerr)
                    rc = -EPIPE;
                else if (pid < 0)
                    rc = -cerr;
                out->pid = pid;
                out->monitor = m;
            }
            close(info[0]);
        }
    }
    close(go[0]);
    close(err[1]);
    if (msock[1] >= 0) close(msock[1]);
    if (rc < 0) {
        close(go[1]);
        close(err[0]);
        if (msock[0] >= 0) close(msock[0]);
        out->go_fd = out->error_fd = -1;
        return rc;
    }
    out->go_fd = go[1];
    out->error_fd = err[0];
    out->mount_sock = msock[0];
    return 0;
}

int jl_detached_tree(int source_fd, int userns_fd, unsigned long ms_flags, int *stage) {
    *stage = 0;
    int fd = (int)syscall(SYS_open_tree, source_fd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) return -errno;
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = (userns_fd >= 0 ? MOUNT_ATTR_IDMAP : 0) | ((ms_flags & MS_RDONLY) ? MOUNT_ATTR_RDONLY : 0) |
                    ((ms_flags & MS_NOSUID) ? MOUNT_ATTR_NOSUID : 0) | ((ms_flags & MS_NODEV) ? MOUNT_ATTR_NODEV : 0) |
                    ((ms_flags & MS_NOEXEC) ? MOUNT_ATTR_NOEXEC : 0);
    if (userns_fd >= 0) attr.userns_fd = (unsigned long long)userns_fd;
    // The copy would otherwise stay a peer of a shared source mount (a systemd host's /):
    // mounts would propagate between the host and the jail through it.
    attr.propagation = MS_PRIVATE;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        int e = errno;
        close(fd);
        *stage = 1;
        return -e;
    }
    return fd;
}

long long jl_fs_type(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) < 0 ? -errno : (long long)fs.f_type;
}

int jl_send_fds(int sock, const int *fds, size_t n) {
    if (n == 0 || n > JL_MAX_MOUNT_FDS) return -EINVAL;
    char byte = 'm';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int) * JL_MAX_MOUNT_FDS)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    ssize_t r;
    do r = sendmsg(sock, &msg, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
}

int jl_release(struct jl_child *c, struct jl_error *err) {
    if (c->go_fd >= 0) {
        char go = 'g';
        ssize_t n;
        do n = write(c->go_fd, &go, 1);
        while (n < 0 && errno == EINTR);
        close(c->go_fd);
        c->go_fd = -1;
    }
    if (c->mount_sock >= 0) {
        close(c->mount_sock);
        c->mount_sock = -1;
    }
    ssize_t n = read_full(c->error_fd, err, sizeof *err);
    int e = errno;
    if (n == (ssize_t)sizeof *err) {
        // The child exits right after its report: its end closes once it is gone, and
        // only then is its stack free to go.
        char rest[64];
        ssize_t m;
        do m = read(c->error_fd, rest, sizeof rest);
        while (m > 0 || (m < 0 && errno == EINTR));
        if (m < 0) c->stack = NULL;  // state unknown: the stack stays mapped
    }
    close(c->error_fd);
    c->error_fd = -1;
    if (n < 0) return -e;
    // EOF: execve closed the child's end after leaving our memory (or the child is gone).
    jl_child_free_stack(c);
    return n == (ssize_t)sizeof *err ? 1 : 0;
}

// The process that joins a running jail and waits for the command it forks there;
// failures go to error_fd (-1: none, the exit status 127 says it).
__attribute__((noreturn)) static void exec_in_child(const struct jl_plan *p, const int *ns_fds, const int *ns_types,
                                                     size_t n_ns, int root_fd, int error_fd);

pid_t jl_exec_in_start(const struct jl_plan *p, const int *ns_fds, const int *ns_types, size_t n_ns, int root_fd) {
    pid_t mid = raw_fork();
    if (mid < 0) return -errno;
    if (mid == 0) exec_in_child(p, ns_fds, ns_types, n_ns, root_fd, -1);
    return mid;
}

pid_t jl_exec_in_fork(const struct jl_plan *p, const int *ns_fds, const int *ns_types, size_t n_ns, int root_fd,
                      int *error_read_fd) {
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) return -errno;
    pid_t mid = raw_fork();
    if (mid < 0) {
        int e = errno;
        close(ep[0]);
        close(ep[1]);
        return -e;
    }
    if (mid == 0) {
        close(ep[0]);
        exec_in_child(p, ns_fds, ns_types, n_ns, root_fd, ep[1]);
    }
    close(ep[1]);
    *error_read_fd = ep[0];
    return mid;
}

int jl_exec_in_wait(pid_t mid, int error_read_fd, struct jl_error *err) {
    ssize_t n = read_full(error_read_fd, err, sizeof *err);
    close(error_read_fd);
    int status = 0;
    while (waitpid(mid, &status, 0) < 0)
        if (errno != EINTR) return -errno;
    if (n == (ssize_t)sizeof *err) return -1000;
    return status;
}

int jl_exec_in(const struct jl_plan *p, const int *ns_fds, const int *ns_types, size_t n_ns, int root_fd,
               struct jl_error *err) {
    int error_read = -1;
    pid_t mid = jl_exec_in_fork(p, ns_fds, ns_types, n_ns, root_fd, &error_read);
    if (mid < 0) return mid;
    return jl_exec_in_wait(mid, error_read, err);
}

static volatile pid_t forwarded_child;
static void forward_signal(int sig) {
    if (forwarded_child > 0) kill(forwarded_child, sig);
}

static void exec_in_child(const struct jl_plan *p, const int *ns_fds, const int *ns_types, size_t n_ns, int root_fd,
                          int error_fd) {
    // ^C and friends that the caller passes on before the handlers below are in place
    // wait for them: one that killed this process would leave the command behind. (The
    // command unblocks them before execve, in become.)
    sigset_t passed_set;
    sigemptyset(&passed_set);
    int passed[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++) sigaddset(&passed_set, passed[i]);
    sigprocmask(SIG_BLOCK, &passed_set, NULL);
    // Nothing in the jail may ptrace or read the memory of this process while it
    // still holds host state.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // Into the jail's cgroups first, so the command runs with the jail's limits.
    for (size_t i = 0; i < p->n_cgroup_fds; i++) {
        ssize_t w;
        do w = write(p->cgroup_fds[i], "0", 1);
        while (w < 0 && errno == EINTR);
        if (w < 0) fail(error_fd, JL_STEP_SETNS, 100 + (int)i);
    }
    for (size_t i = 0; i < n_ns; i++)
        if (setns(ns_fds[i], ns_types[i]) < 0) fail(error_fd, JL_STEP_SETNS, (int)i);
    if (fchdir(root_fd) < 0 || chroot(".") < 0) fail(error_fd, JL_STEP_CHDIR_ROOT, 0);
    // setns into a pid namespace applies to children only.
    pid_t child = raw_fork();
    if (child < 0) fail(error_fd, JL_STEP_FORK, 0);
    if (child == 0) {
        if (chdir("/") < 0) fail(error_fd, JL_STEP_CHDIR_ROOT, 1);
        become(p, error_fd, 0);
    }
    // Nothing of the caller's stays open here (its pipe ends, a terminal's master): the
    // command's EOF and hang-up depend on them being closed; error_fd goes too.
    syscall(SYS_close_range, 3, ~0U, 0);
    // A process group of its own: a ^C at the caller's terminal reaches the caller only,
    // which passes it on once (jl_stdio_relay), not twice.
    setpgid(0, 0);
    // Signals for the command (jailctl exec passes on ^C and friends) reach it through
    // this process, which is all the caller knows of it.
    forwarded_child = child;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof passed / sizeof passed[0]; i++) sigaction(passed[i], &sa, NULL);
    sigprocmask(SIG_UNBLOCK, &passed_set, NULL);
    int status = 0;
    while (waitpid(child, &status, 0) < 0)
        if (errno != EINTR) _exit(127);
    if (WIFSIGNALED(status)) {
        // Die the same way, so the caller sees the jail command's signal.
        signal(WTERMSIG(status), SIG_DFL);
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        kill(getpid(), WTERMSIG(status));
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

unsigned long long jl_proc_start_time(pid_t pid) {
    char path[32] = "/proc/";
    size_t n = 6 + format_u64(path + 6, (unsigned long long)pid);
    memcpy(path + n, "/stat", 6);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[1024];
    ssize_t len = read_full(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) return 0;
    buf[len] = 0;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    char *s = strrchr(buf, ')');
    if (!s) return 0;
    int field = 2;
    for (char *c = s + 1; *c; c++) {
        if (*c == ' ') {
            field++;
            if (field == 22) {
                unsigned long long v = 0;
                for (c++; *c >= '0' && *c <= '9'; c++) v = v * 10 + (unsigned long long)(*c - '0');
                return v;
            }
        }
    }
    return 0;
}

int jl_pidfd_open(pid_t pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
}

int jl_pidfd_send_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int jl_open_in_root(int root_fd, const char *path, int flags, int no_symlinks) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
    int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
    return fd < 0 ? -errno : fd;
}

int jl_accept_peer(int listen_fd, uid_t *uid) {
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return -errno;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *uid = cred.uid;
    return fd;
}
