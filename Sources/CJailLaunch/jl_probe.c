// Health probes (TCP connect, HTTP GET, FastCGI GET) in a forked process. The parent is a
// multi-threaded Swift program, so the child uses only async-signal-safe calls: no
// malloc, no stdio, fixed buffers.
#define _GNU_SOURCE
#include "jail_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int report_fd = -1;
static struct timespec deadline;

static void say(const char *a, const char *b) {
    char line[256];
    size_t n = 0;
    for (const char *s = a; s && *s && n < sizeof line - 2; s++) line[n++] = *s;
    for (const char *s = b; s && *s && n < sizeof line - 2; s++) line[n++] = *s;
    line[n++] = '\n';
    ssize_t w;
    do w = write(report_fd, line, n);
    while (w < 0 && errno == EINTR);
}

__attribute__((noreturn)) static void verdict(int healthy, const char *a, const char *b) {
    say(a, b);
    _exit(healthy ? 0 : 1);
}

// Milliseconds left before the deadline, at least 0.
static int left_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (deadline.tv_sec - now.tv_sec) * 1000LL + (deadline.tv_nsec - now.tv_nsec) / 1000000LL;
    return ms < 0 ? 0 : (int)ms;
}

static void wait_for(int fd, short events, const char *what) {
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&p, 1, left_ms());
        if (rc > 0) return;
        if (rc == 0) verdict(0, what, ": timed out");
        if (errno != EINTR) verdict(0, what, ": poll failed");
    }
}

static void send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        wait_for(fd, POLLOUT, "send");
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) verdict(0, "send: ", strerrordesc_np(errno));
        buf += n;
        len -= (size_t)n;
    }
}

// Reads until EOF or the buffer is full; returns the byte count.
static size_t recv_some(int fd, char *buf, size_t cap) {
    size_t got = 0;
    while (got < cap) {
        wait_for(fd, POLLIN, "receive");
        ssize_t n = recv(fd, buf + got, cap - got, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) verdict(0, "receive: ", strerrordesc_np(errno));
        if (n == 0) break;
        got += (size_t)n;
    }
    return got;
}

// "HTTP/1.x NNN" or a CGI "Status: NNN" header: healthy for 200-399.
static int status_ok(const char *code) {
    return code[0] >= '2' && code[0] <= '3' && code[1] >= '0' && code[1] <= '9' && code[2] >= '0' && code[2] <= '9';
}

static void http(int fd, const char *path) {
    char req[512];
    size_t n = 0;
    const char *parts[] = {"GET ", path, " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: jailctl-health\r\n\r\n"};
    for (int i = 0; i < 3; i++)
        for (const char *s = parts[i]; *s && n < sizeof req; s++) req[n++] = *s;
    send_all(fd, req, n);
    char buf[64];
    size_t got = recv_some(fd, buf, sizeof buf - 1);
    buf[got] = 0;
    if (got < 12 || memcmp(buf, "HTTP/1.", 7) != 0) verdict(0, "http: not an HTTP response", "");
    char code[4] = {buf[9], buf[10], buf[11], 0};
    verdict(status_ok(code), "http status ", code);
}

// FastCGI (fastcgi-spec 1.0): BEGIN_REQUEST (responder), PARAMS, empty PARAMS, empty STDIN.
static size_t fcgi_header(char *out, int type, size_t len) {
    out[0] = 1;
    out[1] = (char)type;
    out[2] = 0;
    out[3] = 1;  // request id 1
    out[4] = (char)(len >> 8);
    out[5] = (char)(len & 0xff);
    out[6] = 0;
    out[7] = 0;
    return 8;
}

static size_t fcgi_pair(char *out, size_t cap, const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value);
    if (nl > 127 || vl > 127 || nl + vl + 2 > cap) return 0;
    out[0] = (char)nl;
    out[1] = (char)vl;
    memcpy(out + 2, name, nl);
    memcpy(out + 2 + nl, value, vl);
    return nl + vl + 2;
}

static void fcgi(int fd, const char *path) {
    char req[1024];
    size_t n = fcgi_header(req, 1, 8);
    const char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};  // role RESPONDER, no keep-alive
    memcpy(req + n, begin, 8);
    n += 8;
    char params[700];
    size_t p = 0;
    const char *pairs[][2] = {
        {"SCRIPT_NAME", path}, {"SCRIPT_FILENAME", path}, {"REQUEST_URI", path}, {"DOCUMENT_URI", path},
        {"REQUEST_METHOD", "GET"}, {"QUERY_STRING", ""}, {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"GATEWAY_INTERFACE", "CGI/1.1"}, {"SERVER_SOFTWARE", "jailctl-health"}, {"REMOTE_ADDR", "127.0.0.1"},
        {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        size_t k = fcgi_pair(params + p, sizeof params - p, pairs[i][0], pairs[i][1]);
        if (k == 0) verdict(0, "fcgi: path too long", "");
        p += k;
    }
    n += fcgi_header(req + n, 4, p);
    memcpy(req + n, params, p);
    n += p;
    n += fcgi_header(req + n, 4, 0);
    n += fcgi_header(req + n, 5, 0);
    send_all(fd, req, n);

    // Records until END_REQUEST; the first bytes of STDOUT hold the CGI headers.
    char head[512];
    size_t head_len = 0;
    for (;;) {
        unsigned char h[8];
        if (recv_some(fd, (char *)h, 8) != 8) verdict(0, "fcgi: connection closed before the end of the request", "");
        size_t len = ((size_t)h[4] << 8) | h[5], pad = h[6];
        char body[8192];
        size_t total = len + pad;
        while (total > 0) {
            size_t chunk = total < sizeof body ? total : sizeof body;
            if (recv_some(fd, body, chunk) != chunk) verdict(0, "fcgi: short record", "");
            size_t useful = len < chunk ? len : chunk;
            if (h[1] == 6)
                for (size_t i = 0; i < useful && head_len < sizeof head - 1; i++) head[head_len++] = body[i];
            if (h[1] == 3 && chunk >= 5 && body[4] != 0) verdict(0, "fcgi: request not completed", "");
            len -= useful;
            total -= chunk;
        }
        if (h[1] == 3) break;
    }
    head[head_len] = 0;
    // Only the header block counts: a body may mention "Status:" freely.
    char *end = strstr(head, "\r\n\r\n");
    if (end) *end = 0;
    char *status = strstr(head, "Status: ");
    if (status && strlen(status) < 11) verdict(0, "fcgi: a cut Status header", "");
    if (status && !status_ok(status + 8)) {
        char code[4] = {status[8], status[9], status[10], 0};
        verdict(0, "fcgi status ", code);
    }
    verdict(1, "fcgi ok", "");
}

pid_t jl_probe_start(int kind, int netns_fd, int root_fd, const void *addr, unsigned int addr_len, const char *path,
                     int timeout_ms, int fd) {
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) return -errno;
    if (pid > 0) return pid;

    report_fd = fd;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) verdict(0, "setns: ", strerrordesc_np(errno));
    if (root_fd >= 0 && (fchdir(root_fd) < 0 || chroot(".") < 0)) verdict(0, "chroot into the jail: ", strerrordesc_np(errno));
    int family = ((const struct sockaddr *)addr)->sa_family;
    int s = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) verdict(0, "socket: ", strerrordesc_np(errno));
    if (connect(s, addr, addr_len) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) verdict(0, "connect: ", strerrordesc_np(errno));
        wait_for(s, POLLOUT, "connect");
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) verdict(0, "connect: ", strerrordesc_np(err));
    }
    switch (kind) {
    case JL_PROBE_HTTP: http(s, path); break;
    case JL_PROBE_FCGI: fcgi(s, path); break;
    default: verdict(1, "tcp connect ok", "");
    }
    _exit(1);
}

int jl_spawn_actions_closefrom(void *actions, int lowfd) {
    return posix_spawn_file_actions_addclosefrom_np((posix_spawn_file_actions_t *)actions, lowfd);
}

pid_t jl_spawn_tied(const char *path, char *const argv[], char *const envp[], int stdout_fd) {
    pid_t parent = getpid();
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid != 0) return pid < 0 ? -errno : pid;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent) _exit(127);
    // The calling thread's blocked signals would stay blocked across execve.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0 || dup2(null, 0) < 0 || dup2(stdout_fd, 1) < 0) _exit(127);
    syscall(SYS_close_range, 3, ~0U, 0);
    execve(path, argv, envp);
    _exit(127);
}
