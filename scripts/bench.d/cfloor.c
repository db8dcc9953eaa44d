// The C floor of a jail launch: clone into new mount, pid, uts, ipc (and net)
// namespaces, bind the root, pivot_root, mount /proc, exec /bin/true; nothing else.
// Usage: cfloor ROOT RUNS [net]; prints the median milliseconds per launch.
//        cfloor ROOT serve [net]; one launch per byte read on stdin, its milliseconds
//        written to stdout as a double (jailctl-bench takes turns with it, launch by
//        launch, so that both sides see the same load on a shared machine).
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// One launch; its milliseconds, or -1 when the child failed.
static double launch(const char *root, const char *proc, int flags) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) _exit(10);
        if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0) _exit(11);
        if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) _exit(12);
        if (chdir(root) < 0) _exit(13);
        if (syscall(SYS_pivot_root, ".", ".") < 0) _exit(14);
        if (umount2(".", MNT_DETACH) < 0) _exit(15);
        char *args[] = {"/bin/true", NULL};
        execv("/bin/true", args);
        _exit(16);
    }
    int st;
    waitpid(pid, &st, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (st != 0) {
        fprintf(stderr, "cfloor: child failed with status %d\n", st);
        return -1;
    }
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *root = argv[1];
    int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | (argc > 3 ? CLONE_NEWNET : 0);
    char proc[4096];
    snprintf(proc, sizeof proc, "%s/proc", root);
    if (strcmp(argv[2], "serve") == 0) {
        char c;
        while (read(0, &c, 1) == 1) {
            double ms = launch(root, proc, flags);
            if (write(1, &ms, sizeof ms) != sizeof ms || ms < 0) return 1;
        }
        return 0;
    }
    int runs = atoi(argv[2]);
    double *t = calloc((size_t)runs, sizeof *t);
    for (int i = 0; i < runs; i++) {
        t[i] = launch(root, proc, flags);
        if (t[i] < 0) return 1;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp);
    printf("%.3f\n", t[runs / 2]);
    return 0;
}
