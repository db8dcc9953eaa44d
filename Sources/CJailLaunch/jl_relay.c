// The [::1] relay; see jl_relay.h. After fork the relay runs in a child of a possibly
// multi-threaded process, so it uses system calls only: no malloc, no stdio. Buffers are
// static (copy-on-write pages, touched only as connections use them).
#define _GNU_SOURCE
#include "jl_relay.h"
#include "jl_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RELAY_MAX_LISTENERS 32
#define RELAY_MAX_PAIRS 256
#define RELAY_BUF 16384
// A pair that moves no byte for this long is closed, so a jail cannot hold every pair.
#define RELAY_IDLE_MS (10LL * 60 * 1000)
#define RELAY_NOBODY 65534

int jl_relay_listen(int netns_fd, uint16_t port) {
    int self, rc = jl_netns_enter(netns_fd, &self);
    if (rc < 0) return rc;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int e = errno;
    int back = jl_netns_leave(self);
    if (back < 0) {
        if (fd >= 0) close(fd);
        fd = -1;
        e = -back;
    }
    if (fd < 0) return -e;
    int one = 1;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(fd, 128) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

struct half {
    char buf[RELAY_BUF];
    size_t len, off;
    int eof;  // the reading side saw end of file (1), passed on as a half close (2)
};

struct pair {
    int c, u;  // client (accepted on ::1) and upstream (to the jail)
    int connecting;
    long long last;  // monotonic ms of the last progress, for the idle timeout
    struct half c2u, u2c;
};

static struct pair pairs[RELAY_MAX_PAIRS];
static int open_pairs;

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void pair_close(struct pair *p) {
    if (p->c < 0) return;
    close(p->c);
    if (p->u >= 0) close(p->u);
    p->c = p->u = -1;
    open_pairs--;
}

// Moves bytes from `from` into h, then from h to `to`; returns -1 when the pair is done,
// 1 when something moved (for the idle timeout), else 0.
static int pump(int from, int to, struct half *h, short rev_from, short rev_to) {
    int moved = 0;
    if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && h->len == 0 && !h->eof) {
        ssize_t n = recv(from, h->buf, sizeof h->buf, 0);
        if (n > 0) {
            h->len = (size_t)n;
            h->off = 0;
            moved = 1;
        } else if (n == 0) {
            h->eof = 1;
            moved = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (h->len > 0 && (rev_to & POLLOUT || h->off == 0)) {
        ssize_t n = send(to, h->buf + h->off, h->len, MSG_NOSIGNAL);
        if (n > 0) {
            h->off += (size_t)n;
            h->len -= (size_t)n;
            moved = 1;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (h->eof == 1 && h->len == 0) {
        // End of file goes on as a half close, so request/response protocols finish.
        shutdown(to, SHUT_WR);
        h->eof = 2;
    }
    return moved;
}

static void start_upstream(struct pair *p, const struct jl_relay_target *t) {
    int u = socket(t->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (u < 0) {
        pair_close(p);
        return;
    }
    int rc;
    if (t->family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(t->port)};
        memcpy(&a.sin6_addr, t->address, 16);
        rc = connect(u, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(t->port)};
        memcpy(&a.sin_addr, t->address, 4);
        rc = connect(u, (struct sockaddr *)&a, sizeof a);
    }
    p->u = u;
    p->connecting = rc < 0;
    if (rc < 0 && errno != EINPROGRESS) pair_close(p);
}

// A socket with nothing to wait for is left out of poll (fd -1): the kernel reports
// POLLHUP and POLLERR whatever the events, and a side that hung up while its pair's data
// waits on the other side would otherwise be reported on every round, at 100% CPU.
static struct pollfd watch(int fd, short events) {
    return (struct pollfd){.fd = events ? fd : -1, .events = events};
}

// One pair's sockets after a poll round.
static void pair_step(struct pair *p, short cr, short ur, long long now) {
    if (p->connecting) {
        // The client may give up (reset) while the jail's side still connects.
        if (cr & (POLLHUP | POLLERR)) {
            pair_close(p);
            return;
        }
        if (!ur) return;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(p->u, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            pair_close(p);
            return;
        }
        p->connecting = 0;
        p->last = now;
        return;
    }
    // POLLERR is a reset or an unreachable peer: whatever waits in either direction
    // can no longer be delivered.
    if ((cr | ur) & POLLERR) {
        pair_close(p);
        return;
    }
    int a = pump(p->c, p->u, &p->c2u, cr, ur);
    int b = a < 0 ? -1 : pump(p->u, p->c, &p->u2c, ur, cr);
    if (a < 0 || b < 0 || (p->c2u.eof == 2 && p->u2c.eof == 2)) {
        pair_close(p);
        return;
    }
    if (a > 0 || b > 0) p->last = now;
}

static void accept_one(int listener, const struct jl_relay_target *t, long long now, long long *paused_until) {
    int c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) {
        // Out of descriptors or memory: the connection stays queued and the listener
        // readable; stop polling listeners until a pair frees up (or a second passes)
        // rather than spin on it.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) *paused_until = now + 1000;
        return;
    }
    struct pair *p = NULL;
    for (int j = 0; j < RELAY_MAX_PAIRS && !p; j++) {
        if (pairs[j].c < 0) p = &pairs[j];
    }
    if (!p) {
        close(c);  // not reached: listeners are not polled while every pair is in use
        return;
    }
    open_pairs++;
    p->c = c;
    p->u = -1;
    p->last = now;
    p->c2u.len = p->c2u.off = 0;
    p->c2u.eof = 0;
    p->u2c.len = p->u2c.off = 0;
    p->u2c.eof = 0;
    start_upstream(p, t);
}

__attribute__((noreturn)) static void relay_loop(int nl, const struct jl_relay_target *targets, int pidfd) {
    // fds: 3 .. 3+nl-1 listeners, 3+nl the jail's pidfd.
    for (int i = 0; i < RELAY_MAX_PAIRS; i++) pairs[i].c = pairs[i].u = -1;
    static struct pollfd fds[RELAY_MAX_LISTENERS + 1 + 2 * RELAY_MAX_PAIRS];
    static int owner[2 * RELAY_MAX_PAIRS];
    long long paused_until = 0;  // listeners not polled before (after EMFILE)
    for (;;) {
        long long now = now_ms();
        // A full relay leaves new connections in the listeners' backlogs.
        int listen = open_pairs < RELAY_MAX_PAIRS && now >= paused_until;
        int n = 0;
        for (int i = 0; i < nl; i++) fds[n++] = (struct pollfd){.fd = listen ? 3 + i : -1, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int first = n;
        long long wake = -1;  // poll's deadline: the next idle timeout or the end of a pause
        for (int i = 0; i < RELAY_MAX_PAIRS; i++) {
            struct pair *p = &pairs[i];
            if (p->c < 0) continue;
            if (now - p->last >= RELAY_IDLE_MS) {
                pair_close(p);
                continue;
            }
            if (wake < 0 || p->last + RELAY_IDLE_MS < wake) wake = p->last + RELAY_IDLE_MS;
            owner[n - first] = i;
            if (p->connecting) {
                // Events 0 on purpose: only its POLLHUP/POLLERR matter meanwhile.
                fds[n++] = (struct pollfd){.fd = p->c, .events = 0};
                owner[n - first] = i;
                fds[n++] = (struct pollfd){.fd = p->u, .events = POLLOUT};
                continue;
            }
            short ce = 0, ue = 0;
            if (p->c2u.len == 0 && !p->c2u.eof) ce |= POLLIN;
            if (p->u2c.len > 0) ce |= POLLOUT;
            if (p->u2c.len == 0 && !p->u2c.eof) ue |= POLLIN;
            if (p->c2u.len > 0) ue |= POLLOUT;
            fds[n++] = watch(p->c, ce);
            owner[n - first] = i;
            fds[n++] = watch(p->u, ue);
        }
        if (!listen && open_pairs < RELAY_MAX_PAIRS && (wake < 0 || paused_until < wake)) wake = paused_until;
        int timeout = wake < 0 ? -1 : wake <= now ? 0 : (int)(wake - now < 86400000 ? wake - now : 86400000);
        if (poll(fds, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        if (fds[nl].revents) _exit(0);  // the jail is gone
        now = now_ms();
        for (int k = first; k + 1 < n; k += 2) {
            struct pair *p = &pairs[owner[k - first]];
            if (p->c >= 0) pair_step(p, fds[k].revents, fds[k + 1].revents, now);
        }
        for (int i = 0; i < nl && open_pairs < RELAY_MAX_PAIRS; i++) {
            if (fds[i].revents & POLLIN) accept_one(3 + i, &targets[i], now, &paused_until);
        }
    }
}

// Nothing the relay does after its set-up needs privilege: listeners and the jail's
// pidfd are open, the namespace is joined; it connects to the jail and copies bytes. It
// runs as nobody, without capabilities, and can gain none. Raw system calls: glibc's
// setresuid and friends would wait for every thread of the (multi-threaded) parent.
static int drop_privileges(void) {
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -errno;
    }
    if (syscall(SYS_setgroups, 0, NULL) < 0) return -errno;
    if (syscall(SYS_setresgid, RELAY_NOBODY, RELAY_NOBODY, RELAY_NOBODY) < 0) return -errno;
    if (syscall(SYS_setresuid, RELAY_NOBODY, RELAY_NOBODY, RELAY_NOBODY) < 0) return -errno;
    // The uid change cleared permitted and effective; inheritable and ambient go too.
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) < 0) return -errno;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -errno;
    return 0;
}

// Reports the set-up's outcome to jl_relay_start: the relay's pid, or -errno; then ends
// on failure.
static void report(int fd, pid_t value) {
    ssize_t w;
    do {
        w = write(fd, &value, sizeof value);
    } while (w < 0 && errno == EINTR);
    if (value < 0) _exit(1);
}

pid_t jl_relay_start(const int *listeners, const struct jl_relay_target *targets, int count, int netns_fd, pid_t jail_pid) {
    if (count <= 0 || count > RELAY_MAX_LISTENERS) return -EINVAL;
    // jail_pid 0: no jail to watch (tests with a bare namespace); SIGTERM only.
    int pidfd = jail_pid > 0 ? (int)syscall(SYS_pidfd_open, jail_pid, 0) : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (pidfd < 0) return -errno;
    int info[2];
    if (pipe2(info, O_CLOEXEC) < 0) {
        int e = errno;
        close(pidfd);
        return -e;
    }
    pid_t mid = fork();
    if (mid < 0) {
        int e = errno;
        close(pidfd);
        close(info[0]);
        close(info[1]);
        return -e;
    }
    if (mid == 0) {
        // Double fork: the relay is re-parented to init (or the nearest subreaper) and
        // outlives the `up` that made it, like the jail's monitor. The relay itself
        // reports on `info` once its set-up is done, so a failure there is `up`'s error.
        setsid();
        pid_t relay = fork();
        if (relay < 0) report(info[1], -errno);
        if (relay != 0) _exit(0);
        // A name `ps` and the leak check know it by (it is a fork of jailctl otherwise).
        prctl(PR_SET_NAME, "jailctl-relay6", 0, 0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) report(info[1], -errno);
        if (chdir("/") < 0) report(info[1], -errno);
        // Two descriptors a pair plus the listeners: a soft limit as low as `ulimit -n 256`
        // would cap the pairs well below RELAY_MAX_PAIRS.
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
            nofile.rlim_cur = nofile.rlim_max;
            setrlimit(RLIMIT_NOFILE, &nofile);  // best effort: the relay copes with EMFILE
        }
        // Ours out of the way (above the slots they go to), then to 3.. in order, then
        // nothing else open.
        int above = 3 + count + 1;
        int out = fcntl(info[1], F_DUPFD_CLOEXEC, above);
        if (out < 0) _exit(1);  // nothing to report on: `up` sees the pipe end without a pid
        int moved[RELAY_MAX_LISTENERS + 1];
        for (int i = 0; i <= count; i++) {
            moved[i] = fcntl(i < count ? listeners[i] : pidfd, F_DUPFD_CLOEXEC, above);
            if (moved[i] < 0) report(out, -errno);
        }
        for (int i = 0; i <= count; i++) {
            if (dup2(moved[i], 3 + i) < 0) report(out, -errno);
        }
        int e = drop_privileges();
        if (e < 0) report(out, e);
        // Nothing else open but the report pipe, so that the relay the caller is told of
        // is the finished one.
        if (out > 4 + count) syscall(SYS_close_range, 4 + count, out - 1, 0);
        syscall(SYS_close_range, out + 1, ~0U, 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 3 + count) close(null);
        }
        report(out, getpid());
        close(out);
        relay_loop(count, targets, jail_pid > 0 ? 3 + count : -1);
    }
    close(info[1]);
    close(pidfd);
    pid_t relay = 0;
    ssize_t got;
    do {
        got = read(info[0], &relay, sizeof relay);
    } while (got < 0 && errno == EINTR);
    close(info[0]);
    int status;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {}
    if (got != sizeof relay) return -ECHILD;  // ended without a word
    return relay;
}
