// `jailctl exec -t`: a terminal for a command inside a running jail. The pair comes from
// the jail's own devpts instance, so the command holds no terminal of the host (nothing
// to push input into with TIOCSTI, nothing of the sysadmin's session to read) and `tty`
// inside names a device of the jail. The caller relays its own terminal to the master.
#define _GNU_SOURCE
#include "jail_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

int jl_pty_open(int root_fd, int *master, int *slave) {
    // Resolved inside the jail's root without symlinks: the jail cannot point this
    // open at a device of the host.
    // Non-blocking: a FIFO or a FUSE file planted there cannot hold the open.
    int m = jl_open_in_root(root_fd, "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK, 1);
    if (m < 0) return m;
    struct stat st;
    struct statfs fs;
    // The multiplexer (5:2) of a devpts instance; anything else is not ours to use.
    if (fstat(m, &st) < 0 || !S_ISCHR(st.st_mode) || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2 ||
        fstatfs(m, &fs) < 0 || fs.f_type != DEVPTS_SUPER_MAGIC) {
        close(m);
        return -ENOTTY;
    }
    int unlock = 0;
    // TIOCGPTPEER opens the peer of this very master, with no path lookup in the jail.
    int s = ioctl(m, TIOCSPTLCK, &unlock) < 0 ? -1 : ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int e = errno;
        close(m);
        return -e;
    }
    *master = m;
    *slave = s;
    return 0;
}

static void copy_window_size(int from, int to) {
    struct winsize ws;
    if (ioctl(from, TIOCGWINSZ, &ws) == 0) ioctl(to, TIOCSWINSZ, &ws);
}

struct stream {
    int src, dst;
    char buf[16384];
    size_t len, off;
    int open;
    int discard; // the caller's side is gone: keep draining the command, drop the bytes
};

// Moves what src has into the buffer (when it is empty) and the buffer into dst as far as
// dst takes it; both non-blocking, so no stream waits on another. Returns 0, or -errno
// when writing to dst failed (from then on the stream drains src and drops the bytes, so
// the command never blocks on a reader that is gone).
static int pump(struct stream *s, short src_events, short dst_events) {
    if (s->len == 0 && (src_events & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = read(s->src, s->buf, sizeof s->buf);
        if (n > 0) {
            s->len = s->discard ? 0 : (size_t)n;
            s->off = 0;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            s->open = 0; // EOF, or EIO: the last holder of a terminal's slave closed it
        }
    }
    if (s->len > 0 && (dst_events & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = write(s->dst, s->buf + s->off, s->len);
        if (n > 0) {
            s->off += (size_t)n;
            s->len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            int e = errno;
            s->len = 0;
            s->discard = 1;
            return -e;
        }
    }
    return 0;
}

static void set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int jl_stdio_relay(const int *src, const int *dst, size_t n, int terminal, pid_t mid, int mid_pidfd) {
    if (n > 3) return -EINVAL;
    struct stream st[3];
    for (size_t i = 0; i < n; i++) {
        st[i] = (struct stream){.src = src[i], .dst = dst[i], .open = src[i] >= 0 && dst[i] >= 0};
        // Only descriptors of our own (pipe ends, the master) turn non-blocking; the
        // caller's may be shared with its shell.
        if (i == 0 && st[i].open) set_nonblocking(dst[i]);
        if (i > 0 && st[i].open) set_nonblocking(src[i]);
    }
    // The input pipe's write end is ours to close: at the caller's EOF (the command sees
    // its own), or at the end.
    int input_pipe = !terminal && n > 0 && dst[0] >= 0 ? dst[0] : -1;
    int tty_in = terminal && n > 0 && src[0] >= 0 && isatty(src[0]);
    struct termios saved;
    if (tty_in && tcgetattr(src[0], &saved) == 0) {
        struct termios raw = saved;
        cfmakeraw(&raw);
        tcsetattr(src[0], TCSAFLUSH, &raw);
        copy_window_size(src[0], dst[0]);
    } else {
        tty_in = 0;
    }
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGQUIT);
    // A reader of our output that went away (`exec -t ... | head`) is an EPIPE to handle,
    // not a death that leaves the caller's terminal raw.
    sigaddset(&mask, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

    int rc = 0, ended = 0;
    while (!ended) {
        struct pollfd p[2 * 3 + 2];
        for (size_t i = 0; i < n; i++) {
            p[2 * i] = (struct pollfd){.fd = st[i].open && st[i].len == 0 ? st[i].src : -1, .events = POLLIN};
            p[2 * i + 1] = (struct pollfd){.fd = st[i].len > 0 ? st[i].dst : -1, .events = POLLOUT};
        }
        p[2 * n] = (struct pollfd){.fd = mid_pidfd, .events = POLLIN};
        p[2 * n + 1] = (struct pollfd){.fd = sfd, .events = POLLIN};
        if (poll(p, (nfds_t)(2 * n + 2), -1) < 0) {
            if (errno == EINTR) continue;
            rc = -errno;
            break;
        }
        if (p[2 * n + 1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGWINCH) {
                    if (tty_in) copy_window_size(src[0], dst[0]);
                } else if (si.ssi_signo != SIGPIPE) {
                    // The process that waits for the command passes it on.
                    kill(mid, (int)si.ssi_signo);
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            int w = pump(&st[i], p[2 * i].revents, p[2 * i + 1].revents);
            if (w < 0 && i > 0 && rc == 0) rc = w;
        }
        if (input_pipe >= 0 && !st[0].open && st[0].len == 0) {
            close(input_pipe);
            input_pipe = -1;
        }
        if (p[2 * n].revents & POLLIN) {
            // The command has ended: what it wrote is buffered already; take it (a
            // background process that kept the descriptor open is not waited for).
            for (size_t i = 1; i < n; i++) {
                while (st[i].open) {
                    struct pollfd q = {.fd = st[i].src, .events = POLLIN};
                    if (st[i].len == 0 && poll(&q, 1, 0) <= 0) break;
                    if (pump(&st[i], POLLIN, POLLOUT) < 0) break;
                }
            }
            ended = 1;
        }
    }
    if (input_pipe >= 0) close(input_pipe);
    if (sfd >= 0) {
        // Signals that came after the last read (a SIGPIPE of the drain above) are taken
        // here, before the mask that held them back is lifted.
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {}
        close(sfd);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (tty_in) tcsetattr(src[0], TCSAFLUSH, &saved);
    return rc;
}
