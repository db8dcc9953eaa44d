// Loads a compiled seccomp filter (struct sock_filter[] in a file) the way the launcher
// does (no_new_privs, then PR_SET_SECCOMP), then tries system calls with harmless or
// invalid arguments and prints "name=errno" (0: the call succeeded) for each, so the
// Swift test asserts on what the filter really does in the kernel.
// Usage: seccomp_check FILTER|- [probe | x32 | i386]   ("-": no filter, the baseline)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *name, long rc) {
    printf("%s=%d\n", name, rc < 0 ? errno : 0);
    fflush(stdout);
}

static void load(const char *path) {
    static unsigned char buf[4096 * 8];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); exit(2); }
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0 || n % 8 != 0) { fprintf(stderr, "%s: not a filter\n", path); exit(2); }
    struct sock_fprog prog = {.len = (unsigned short)(n / 8), .filter = (struct sock_filter *)buf};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) { perror("no_new_privs"); exit(2); }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) { perror("PR_SET_SECCOMP"); exit(2); }
}

static void *thread_main(void *arg) { return arg; }

// A call that created a process reaps it; the child leaves at once.
static long reaped(long pid) {
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: seccomp_check FILTER|- [probe|x32|i386]\n"); return 2; }
    if (strcmp(argv[1], "-") != 0) load(argv[1]);
    const char *mode = argc > 2 ? argv[2] : "probe";
    if (strcmp(mode, "x32") == 0) {
        // getpid through the x32 ABI (bit 30): a foreign ABI, the filter kills us.
        report("x32_getpid", syscall(0x40000000 | SYS_getpid));
        return 0;
    }
    if (strcmp(mode, "i386") == 0) {
        long rc;
        // getpid (20) through the i386 entry point: a foreign ABI, the filter kills us.
        __asm__ volatile("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
        printf("i386_getpid=%ld\n", rc);
        return 0;
    }
    // Denied: EPERM expected.
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    report("bpf", syscall(SYS_bpf, -1, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("io_uring_setup", syscall(SYS_io_uring_setup, 0, NULL));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("mount", mount("none", "/nonexistent-seccomp-check", "tmpfs", 0, NULL));
    report("personality_read_implies_exec", syscall(SYS_personality, 0x0400000));
    report("clone_newns", reaped(syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0)));
    report("clone_newuser", reaped(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
    report("unshare_newuser", unshare(CLONE_NEWUSER));
    // In a child: a traced process stops at every signal (our own SIGCHLD included).
    pid_t child = fork();
    if (child == 0) _exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? errno : 0);
    int status = 0;
    if (child > 0) waitpid(child, &status, 0);
    printf("ptrace_traceme=%d\n", child > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    // ENOSYS expected: clone3 entirely, and a call newer than the reviewed table (mseal).
    report("clone3", syscall(435, NULL, 0));
    report("mseal", syscall(462, 0, 0, 0));
    // Allowed: 0 expected.
    report("ioctl_tiocsti", syscall(SYS_ioctl, -1, 0x5412UL, NULL));
    report("ioctl_tiocsti_high_bits", syscall(SYS_ioctl, -1, 0x100005412UL, NULL));
    report("ioctl_tiocgwinsz", syscall(SYS_ioctl, -1, 0x5413UL, NULL));
    report("getpid", syscall(SYS_getpid));
    int fd = open("/dev/null", O_RDONLY);
    report("open_dev_null", fd);
    if (fd >= 0) close(fd);
    report("fork", reaped(fork()));
    report("clone_plain", reaped(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)));
    report("unshare_files", unshare(CLONE_FILES));
    report("personality_query", syscall(SYS_personality, 0xffffffffUL));
    pthread_t t;
    int e = pthread_create(&t, NULL, thread_main, NULL);  // glibc tries clone3, falls back to clone
    if (e == 0) pthread_join(t, NULL);
    printf("pthread_create=%d\n", e);
    return 0;
}
