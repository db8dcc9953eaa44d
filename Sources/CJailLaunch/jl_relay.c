// The [::1] relay; see jl_relay.h. After fork the relay runs in a child of a possibly
// multi-threaded process, so it uses system calls only: no malloc, no stdio. Buffers are
// static (copy-on-write pages, touched only as connections use them).
#define _GNU_SOURCE
#include "jl_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RELAY_MAX_LISTENERS 32
#define RELAY_MAX_PAIRS 256
#define RELAY_BUF 16384

int jl_relay_listen(int netns_fd, uint16_t port) {
    int self = -1;
    if (netns_fd >= 0) {
        self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0) return -errno;
        if (setns(netns_fd, CLONE_NEWNET) < 0) {
            int e = errno;
            close(self);
            return -e;
        }
    }
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int e = errno;
    if (self >= 0) {
        // Back to our own namespace whatever happened, as in jl_nl_open.
        if (setns(self, CLONE_NEWNET) < 0) {
            e = errno;
            if (fd >= 0) close(fd);
            fd = -1;
        }
        close(self);
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
    int eof;  // the reading side saw end of file
};

struct pair {
    int c, u;  // client (accepted on ::1) and upstream (to the jail)
    int connecting;
    struct half c2u, u2c;
};

static struct pair pairs[RELAY_MAX_PAIRS];

static void pair_close(struct pair *p) {
    if (p->c >= 0) close(p->c);
    if (p->u >= 0) close(p->u);
    p->c = p->u = -1;
}

// Moves bytes from `from` into h, then from h to `to`; returns -1 when the pair is done.
static int pump(int from, int to, struct half *h, short rev_from, short rev_to) {
    if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && h->len == 0 && !h->eof) {
        ssize_t n = recv(from, h->buf, sizeof h->buf, 0);
        if (n > 0) {
            h->len = (size_t)n;
            h->off = 0;
        } else if (n == 0) {
            h->eof = 1;
        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (h->len > 0 && (rev_to & POLLOUT || h->off == 0)) {
        ssize_t n = send(to, h->buf + h->off, h->len, MSG_NOSIGNAL);
        if (n > 0) {
            h->off += (size_t)n;
            h->len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (h->eof == 1 && h->len == 0) {
        // End of file goes on as a half close, so request/response protocols finish.
        shutdown(to, SHUT_WR);
        h->eof = 2;
    }
    return 0;
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

__attribute__((noreturn)) static void relay_loop(int nl, const struct jl_relay_target *targets, int pidfd) {
    // fds: 3 .. 3+nl-1 listeners, 3+nl the jail's pidfd.
    for (int i = 0; i < RELAY_MAX_PAIRS; i++) pairs[i].c = pairs[i].u = -1;
    static struct pollfd fds[RELAY_MAX_LISTENERS + 1 + 2 * RELAY_MAX_PAIRS];
    static int owner[2 * RELAY_MAX_PAIRS];
    for (;;) {
        int n = 0;
        for (int i = 0; i < nl; i++) fds[n++] = (struct pollfd){.fd = 3 + i, .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        int first = n;
        for (int i = 0; i < RELAY_MAX_PAIRS; i++) {
            struct pair *p = &pairs[i];
            if (p->c < 0) continue;
            short ce = 0, ue = 0;
            if (p->connecting) {
                ue = POLLOUT;
            } else {
                if (p->c2u.len == 0 && !p->c2u.eof) ce |= POLLIN;
                if (p->u2c.len > 0) ce |= POLLOUT;
                if (p->u2c.len == 0 && !p->u2c.eof) ue |= POLLIN;
                if (p->c2u.len > 0) ue |= POLLOUT;
            }
            owner[n - first] = i;
            fds[n++] = (struct pollfd){.fd = p->c, .events = ce};
            owner[n - first] = i;
            fds[n++] = (struct pollfd){.fd = p->u, .events = ue};
        }
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        if (fds[nl].revents) _exit(0);  // the jail is gone
        for (int k = first; k + 1 < n; k += 2) {
            struct pair *p = &pairs[owner[k - first]];
            if (p->c < 0) continue;
            short cr = fds[k].revents, ur = fds[k + 1].revents;
            if (p->connecting) {
                if (!ur) continue;
                int err = 0;
                socklen_t len = sizeof err;
                if (getsockopt(p->u, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
                    pair_close(p);
                    continue;
                }
                p->connecting = 0;
                continue;
            }
            if (pump(p->c, p->u, &p->c2u, cr, ur) < 0 || pump(p->u, p->c, &p->u2c, ur, cr) < 0 ||
                (p->c2u.eof == 2 && p->u2c.eof == 2) || ((cr | ur) & POLLERR)) {
                pair_close(p);
            }
        }
        for (int i = 0; i < nl; i++) {
            if (!(fds[i].revents & POLLIN)) continue;
            int c = accept4(3 + i, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) continue;
            struct pair *p = NULL;
            for (int j = 0; j < RELAY_MAX_PAIRS && !p; j++) {
                if (pairs[j].c < 0) p = &pairs[j];
            }
            if (!p) {
                close(c);  // full: the client sees a reset rather than a hang
                continue;
            }
            p->c = c;
            p->u = -1;
            p->c2u.len = p->c2u.off = 0;
            p->c2u.eof = 0;
            p->u2c.len = p->u2c.off = 0;
            p->u2c.eof = 0;
            start_upstream(p, &targets[i]);
        }
    }
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
        // outlives the `up` that made it, like the jail's monitor.
        setsid();
        pid_t relay = fork();
        if (relay != 0) {
            _exit(write(info[1], &relay, sizeof relay) == sizeof relay ? 0 : 1);
        }
        // A name `ps` and the leak check know it by (it is a fork of jailctl otherwise).
        prctl(PR_SET_NAME, "jailctl-relay6", 0, 0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) _exit(1);
        if (chdir("/") < 0) _exit(1);
        // Ours out of the way, then to 3.. in order, then nothing else open.
        int moved[RELAY_MAX_LISTENERS + 1];
        for (int i = 0; i < count; i++) moved[i] = fcntl(listeners[i], F_DUPFD_CLOEXEC, 1000);
        moved[count] = fcntl(pidfd, F_DUPFD_CLOEXEC, 1000);
        for (int i = 0; i <= count; i++) {
            if (moved[i] < 0 || dup2(moved[i], 3 + i) < 0) _exit(1);
        }
        syscall(SYS_close_range, 4 + count, ~0U, 0);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
            if (null > 3 + count) close(null);
        }
        relay_loop(count, targets, jail_pid > 0 ? 3 + count : -1);
    }
    close(info[1]);
    close(pidfd);
    pid_t relay = -1;
    ssize_t got;
    do {
        got = read(info[0], &relay, sizeof relay);
    } while (got < 0 && errno == EINTR);
    close(info[0]);
    int status;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {}
    return got == sizeof relay && relay > 0 ? relay : -ECHILD;
}
