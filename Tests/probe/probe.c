// A static probe that runs inside test jails and reports what it sees, one
// "key=value" line each, so the tests assert on the jail from the inside.
// Usage: probe [report | exit N | sleep S | signal-self N]
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

static void pids(void) {
    DIR *d = opendir("/proc");
    printf("pids=");
    if (d) {
        struct dirent *e;
        int first = 1;
        while ((e = readdir(d))) {
            if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
            printf(first ? "%s" : ",%s", e->d_name);
            first = 0;
        }
        closedir(d);
    }
    printf("\n");
}

static void rootdir(void) {
    DIR *d = opendir("/");
    printf("root=");
    if (d) {
        struct dirent *e;
        int first = 1;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            printf(first ? "%s" : ",%s", e->d_name);
            first = 0;
        }
        closedir(d);
    }
    printf("\n");
}

static void fds(void) {
    DIR *d = opendir("/proc/self/fd");
    printf("fds=");
    if (d) {
        int me = dirfd(d), first = 1;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.' || atoi(e->d_name) == me) continue;
            printf(first ? "%s" : ",%s", e->d_name);
            first = 0;
        }
        closedir(d);
    }
    printf("\n");
}

static void status_line(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    if (!f) return;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            char *v = line + n + 1;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            printf("%s=%s\n", key, v);
        }
    fclose(f);
}

static void writable(const char *path) {
    char file[256];
    snprintf(file, sizeof file, "%s/.probe-write", path);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
    printf("writable:%s=%s\n", path, fd >= 0 ? "yes" : strerror(errno));
    if (fd >= 0) {
        close(fd);
        unlink(file);
    }
}

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    // As pid 1 of a jail a signal without a handler is ignored: install one first thing.
    signal(SIGTERM, on_term);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && !strcmp(argv[1], "exit")) return atoi(argv[2]);
    if (argc > 2 && !strcmp(argv[1], "sleep")) {
        printf("sleeping\n");
        sleep((unsigned)atoi(argv[2]));
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "forks")) {
        // Tries N children that sleep; prints how many forks succeeded.
        int n = atoi(argv[2]), ok = 0;
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) {
                // Not holding the caller's pipe open while it sleeps.
                close(0);
                close(1);
                close(2);
                sleep(30);
                _exit(0);
            }
            if (p > 0) ok++;
        }
        printf("forked=%d\n", ok);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "alloc")) {
        // Touches MiB after MiB until the kernel ends it (or N MiB are reached).
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            char *m = malloc(1 << 20);
            if (!m) break;
            memset(m, i, 1 << 20);
        }
        printf("allocated=%d\n", n);
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "spin")) {
        // Burns CPU for S seconds of wall time.
        time_t end = time(NULL) + atoi(argv[2]);
        volatile unsigned long x = 0;
        while (time(NULL) < end) x++;
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "serve")) {
        // Answers every TCP connection on PORT with "hello <peer address>".
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) return 2;
        printf("serving\n");
        for (;;) {
            struct sockaddr_in peer;
            socklen_t len = sizeof peer;
            int c = accept(s, (struct sockaddr *)&peer, &len);
            if (c < 0) continue;
            char msg[64];
            unsigned char *b = (unsigned char *)&peer.sin_addr;
            int n = snprintf(msg, sizeof msg, "hello %u.%u.%u.%u\n", b[0], b[1], b[2], b[3]);
            if (write(c, msg, (size_t)n) < 0) perror("write");
            close(c);
        }
    }
    if (argc > 2 && !strcmp(argv[1], "serve6")) {
        // As serve, on IPv6 (and IPv4-mapped): "hello <peer address>".
        int s = socket(AF_INET6, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((unsigned short)atoi(argv[2]))};
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) return 2;
        printf("serving\n");
        for (;;) {
            struct sockaddr_in6 peer;
            socklen_t len = sizeof peer;
            int c = accept(s, (struct sockaddr *)&peer, &len);
            if (c < 0) continue;
            char text[INET6_ADDRSTRLEN] = "?", msg[96];
            inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text);
            int n = snprintf(msg, sizeof msg, "hello %s\n", text);
            if (write(c, msg, (size_t)n) < 0) perror("write");
            close(c);
        }
    }
    if (argc > 2 && !strcmp(argv[1], "syslog")) {
        // One datagram to /dev/log, as syslog(3) sends it.
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strcpy(a.sun_path, "/dev/log");
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        char msg[512];
        int n = snprintf(msg, sizeof msg, "<30>Nov 30 12:00:00 probe[%d]: %s", (int)getpid(), argv[2]);
        if (sendto(s, msg, (size_t)n, 0, (struct sockaddr *)&a, sizeof a) < 0) { perror("sendto /dev/log"); return 1; }
        return 0;
    }
    if (argc > 2 && !strcmp(argv[1], "http")) {
        // A minimal HTTP server on PORT: 200, or 500 while /tmp/unhealthy exists.
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
        if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) return 2;
        for (;;) {
            int c = accept(s, NULL, NULL);
            if (c < 0) continue;
            char req[512];
            if (read(c, req, sizeof req) < 0) perror("read");
            const char *reply = access("/tmp/unhealthy", F_OK) == 0
                ? "HTTP/1.0 500 Internal Server Error\r\n\r\nbad\n" : "HTTP/1.0 200 OK\r\n\r\nok\n";
            if (write(c, reply, strlen(reply)) < 0) perror("write");
            close(c);
        }
    }
    if (argc > 2 && !strcmp(argv[1], "signal-self")) {
        kill(getpid(), atoi(argv[2]));
        return 99;
    }
    char host[256] = "";
    gethostname(host, sizeof host);
    printf("hostname=%s\n", host);
    printf("pid=%d\nppid=%d\n", getpid(), getppid());
    printf("uid=%d\ngid=%d\n", getuid(), getgid());
    gid_t groups[64];
    int ng = getgroups(64, groups);
    printf("groups=");
    for (int i = 0; i < ng; i++) printf(i ? ",%d" : "%d", groups[i]);
    printf("\n");
    char buf[4096];
    ssize_t n = readlink("/proc/1/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("exe1=%s\n", n > 0 ? buf : strerror(errno));
    if (getcwd(buf, sizeof buf)) printf("cwd=%s\n", buf);
    printf("sid_is_self=%d\n", getsid(0) == getpid());
    printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    status_line("CapEff");
    status_line("CapPrm");
    status_line("CapBnd");
    status_line("CapAmb");
    status_line("CapInh");
    status_line("Seccomp");
    // What the kernel answers to dangerous calls, with arguments that do no harm:
    // EPERM from seccomp or missing capabilities, EINVAL/EFAULT/EBADF when it got through.
    errno = 0;
    printf("try:keyctl=%s\n", syscall(SYS_keyctl, 0x7fffffff, 0, 0, 0, 0) < 0 ? strerror(errno) : "ok");
    printf("try:bpf=%s\n", syscall(SYS_bpf, 0x7fff, NULL, 0) < 0 ? strerror(errno) : "ok");
    printf("try:mount=%s\n", mount("none", "/nonexistent", "tmpfs", 0, NULL) < 0 ? strerror(errno) : "ok");
    printf("try:perf_event_open=%s\n", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0) < 0 ? strerror(errno) : "ok");
    printf("try:ptrace=%s\n", syscall(SYS_ptrace, 0x4206 /* SEIZE */, 1, 0, 0) < 0 ? strerror(errno) : "ok");
    printf("try:settime=%s\n", syscall(SYS_clock_settime, 0x7fff, NULL) < 0 ? strerror(errno) : "ok");
    printf("try:mknod=%s\n", mknod("/tmp/.probe-node", S_IFCHR | 0600, makedev(1, 3)) < 0 ? strerror(errno) : "ok");
    printf("try:raw_socket=%s\n", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) < 0 ? strerror(errno) : "ok");
    // Last: if it worked, the probe would be in a new user namespace from here on.
    printf("try:unshare_user=%s\n", unshare(CLONE_NEWUSER) < 0 ? strerror(errno) : "ok");
    pids();
    rootdir();
    fds();
    writable("/");
    writable("/tmp");
    writable("/etc");
    for (int i = 2; i < argc; i++) writable(argv[i]);
    extern char **environ;
    for (char **e = environ; *e; e++) printf("env:%s\n", *e);
    return 0;
}
