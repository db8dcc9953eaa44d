/*
 * jailctl-sendmail: the `sendmail` of a tenant's jail (mounted at /usr/sbin/sendmail).
 *
 * PHP's mail() pipes a whole message to `sendmail -t -i`. This program delivers nothing
 * and talks to no network: it copies the message from stdin into the tenant's spool
 * directory (a per-tenant host directory mounted at SPOOL), maildir style, so the host's
 * mail system can pick each message up knowing which tenant wrote it (the directory says
 * so; nothing in the message is trusted). Written to tmp/, renamed into new/ when
 * complete: a reader never sees half a message. Arguments are accepted and ignored
 * (-t: recipients come from the headers; -i, -f, -oi ...).
 *
 * Exit: 0 spooled; 75 (EX_TEMPFAIL) when it could not be; 73 (EX_CANTCREAT) too big.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPOOL "/var/spool/sendmail"
#define MAX_MESSAGE (16L << 20)

static int fail(const char *what, int code) {
    dprintf(2, "sendmail: %s: %s\n", what, strerror(errno));
    return code;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char tmpdir[] = SPOOL "/tmp", newdir[] = SPOOL "/new";
    if (mkdir(tmpdir, 0700) < 0 && errno != EEXIST) return fail(tmpdir, 75);
    if (mkdir(newdir, 0700) < 0 && errno != EEXIST) return fail(newdir, 75);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char name[96];
    snprintf(name, sizeof name, "%lld.%09ld.%d.eml", (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
    char tmp[160], dst[160];
    snprintf(tmp, sizeof tmp, "%s/%s", tmpdir, name);
    snprintf(dst, sizeof dst, "%s/%s", newdir, name);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail(tmp, 75);
    char buf[65536];
    long total = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { unlink(tmp); return fail("stdin", 75); }
        if (n == 0) break;
        total += n;
        if (total > MAX_MESSAGE) {
            unlink(tmp);
            dprintf(2, "sendmail: message larger than %ld bytes\n", MAX_MESSAGE);
            return 73;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) { unlink(tmp); return fail(tmp, 75); }
            off += w;
        }
    }
    if (fsync(fd) < 0 || close(fd) < 0) { unlink(tmp); return fail(tmp, 75); }
    if (rename(tmp, dst) < 0) { unlink(tmp); return fail(dst, 75); }
    return 0;
}
