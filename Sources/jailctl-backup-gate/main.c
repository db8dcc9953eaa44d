/* jailctl's backup gate: the login shell of the backup user inside the backup jail.
 *
 * sshd runs it as `gate -c "host NAME"` for every key (the key's forced command names
 * the host; the key line also says `restrict`). It checks SSH_ORIGINAL_COMMAND with
 * bg_plan_command, refuses anything but an rsync push into /backups/NAME/current or a
 * pull from NAME's own current/ or snapshots, runs rsync with the destination forced,
 * and appends a completion record to /backups/NAME/log/pushes for the trusted side
 * (jailctl, outside the jail), which takes snapshots and writes the summary to events
 * and the jail's log. The record is a hint, not proof: the trusted side checks what it
 * can itself (the tree on disk), because the backup user can write that file.
 *
 * Static (no library in the image needed). Refusals go to stderr, which sshd sends to
 * the client, so the user sees why. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup_gate.h"

static int refuse(const char *why) {
    dprintf(2, "backup: refused: %s\n", why);
    return 1;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The trusted side puts this file into the host's directory (not writable by the backup
 * user) while the host is over its quota; its text is the message for the client. */
static int over_quota(const char *host, char *msg, size_t len) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/QUOTA-EXCEEDED", BG_DATA_ROOT, host);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, msg, len - 1);
    close(fd);
    msg[n > 0 ? n : 0] = 0;
    char *nl = strchr(msg, '\n');
    if (nl) *nl = 0;
    return 1;
}

static void record(const char *host, int sender, long long start, long long end, int status) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/log/pushes", BG_DATA_ROOT, host);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        dprintf(2, "backup: warning: cannot record the transfer (%s): %s\n", path, strerror(errno));
        return;
    }
    dprintf(fd, "%s %lld %lld %d\n", sender ? "pull" : "push", start, end, status);
    close(fd);
}

int main(int argc, char **argv) {
    /* As a login shell: argv = {"gate", "-c", "host NAME"}. */
    if (argc != 3 || strcmp(argv[1], "-c") != 0 || strncmp(argv[2], "host ", 5) != 0)
        return refuse("this account has no shell; use rsync with the key you were given");
    const char *host = argv[2] + 5;
    if (!bg_valid_host(host)) return refuse("this key is bound to no valid host name");
    const char *command = getenv("SSH_ORIGINAL_COMMAND");
    if (!command || !*command)
        return refuse("no interactive login: this key only runs rsync into this host's backup");

    struct bg_plan plan;
    char err[512];
    if (bg_plan_command(host, command, &plan, err, sizeof err) < 0) return refuse(err);
    char msg[512];
    if (!plan.sender && over_quota(host, msg, sizeof msg)) {
        bg_plan_free(&plan);
        return refuse(msg[0] ? msg : "this host is over its backup quota; no push is accepted until it is under it");
    }

    long long start = now_ms();
    pid_t pid = fork();
    if (pid < 0) return refuse("fork failed");
    if (pid == 0) {
        char *env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};
        execve(plan.argv[0], plan.argv, env);
        dprintf(2, "backup: cannot run rsync: %s\n", strerror(errno));
        _exit(127);
    }
    /* Ignored only in the parent, so a client that hangs up cannot cut the record. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    record(host, plan.sender, start, now_ms(), code);
    bg_plan_free(&plan);
    return code;
}
