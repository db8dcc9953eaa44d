// The C side of a jail launch. Swift computes a complete plan (jl_plan); this code only
// carries it out between clone and execve, where nothing but async-signal-safe calls may
// run. Failures travel back over a close-on-exec pipe as (step, index, errno).
#ifndef JAIL_LAUNCH_H
#define JAIL_LAUNCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// One filesystem operation of the mount plan, run in the child's new mount namespace
// before pivot_root. Paths are absolute host paths below the new root.
enum jl_op_kind {
    JL_OP_MOUNT = 1,     // mount(source, target, fstype, flags, data)
    JL_OP_MKDIR = 2,     // mkdir(target, mode); EEXIST is fine
    JL_OP_TOUCH = 3,     // create an empty file (bind target for a device node)
    JL_OP_SYMLINK = 4,   // symlink(source, target)
    JL_OP_REMOUNT = 5,   // mount(NULL, target, NULL, MS_REMOUNT|MS_BIND|flags, NULL)
    JL_OP_MOVE_MOUNT = 6, // move_mount of the next mount fd the parent sent (a detached
                          // bind of source, made by jl_detached_tree) onto target
};

struct jl_op {
    int kind;
    const char *source;
    const char *target;
    const char *fstype;
    const char *data;
    unsigned long flags;
    unsigned int mode;
    int optional;        // a missing target (ENOENT) skips the op instead of failing
};

// The steps a child can fail in; the parent turns (step, index, errno) into a message.
enum jl_step {
    JL_STEP_NONE = 0,
    JL_STEP_WAIT_PARENT,
    JL_STEP_PROPAGATION,
    JL_STEP_OP,
    JL_STEP_PIVOT_ROOT,
    JL_STEP_UMOUNT_OLD,
    JL_STEP_CHDIR_ROOT,
    JL_STEP_UNSHARE_CGROUP,
    JL_STEP_HOSTNAME,
    JL_STEP_LOOPBACK,
    JL_STEP_SETSID,
    JL_STEP_STDIO,
    JL_STEP_RLIMIT,
    JL_STEP_SETGROUPS,
    JL_STEP_SETGID,
    JL_STEP_SETUID,
    JL_STEP_CAPS,
    JL_STEP_NO_NEW_PRIVS,
    JL_STEP_WORKDIR,
    JL_STEP_CLOSE_FDS,
    JL_STEP_SECCOMP,
    JL_STEP_EXEC,
    JL_STEP_SETNS,
    JL_STEP_FORK,
    JL_STEP_MOUNT_FDS,
    JL_STEP_COUNT
};

struct jl_error {
    int32_t step;
    int32_t index;   // which op or namespace, when the step has several
    int32_t err;     // errno
};

struct jl_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

struct jl_plan {
    int clone_flags;            // CLONE_NEW* flags for the jail
    const char *root;           // host path of the new root (a mount point after ops)
    const struct jl_op *ops;
    size_t n_ops;
    const char *hostname;       // NULL: keep
    int loopback_up;            // bring "lo" up in a new net namespace
    int unshare_cgroup;         // CLONE_NEWCGROUP after the parent placed us in our cgroup

    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t n_groups;

    const struct jl_rlimit *rlimits;
    size_t n_rlimits;

    // Capabilities to keep, as a 64-bit mask by capability number; all others are
    // dropped from every set (bounding, effective, permitted, inheritable, ambient).
    uint64_t keep_caps;
    int drop_caps;              // 0: leave capabilities alone (the C floor benchmark)
    int no_new_privs;

    const void *seccomp_filter; // struct sock_filter[], compiled by libseccomp in the parent
    size_t seccomp_len;         // number of instructions; 0: none

    const char *workdir;        // inside the jail, after pivot_root
    const char *path;           // executable, inside the jail
    char *const *argv;
    char *const *envp;

    int stdin_fd;               // dup2'ed to 0, 1, 2; -1 keeps the caller's
    int stdout_fd;
    int stderr_fd;
    int new_session;            // setsid(): no controlling terminal of the caller
    int controlling_tty;        // with new_session: stdin (a terminal) becomes the controlling one

    // Detached jails: when log_name is set, the monitor reads the jail's stdout and
    // stderr through a pipe and appends them, each line prefixed with a UTC timestamp, to
    // log_name in log_dir_fd, rotating at log_max_bytes and keeping log_keep old files.
    int log_dir_fd;
    const char *log_name;
    uint64_t log_max_bytes;
    int log_keep;
    // With log_name: the monitor binds a datagram socket at this host path before the
    // jail starts (the plan's mounts bind it on /dev/log) and relays what programs send
    // to syslog into the same log; NULL: none.
    const char *syslog_path;
    // Host ids that own the log pipe, so the jail's user may reopen its own stdout and
    // stderr by path (/dev/stderr, /proc/self/fd/2: php-fpm's and nginx's error_log);
    // (uid_t)-1 leaves the pipe root's.
    uid_t log_pipe_uid;
    gid_t log_pipe_gid;

    // jl_exec_in only: cgroup.procs files of the jail's cgroups, opened by the caller;
    // the joining process writes "0" into each before it forks the command.
    const int *cgroup_fds;
    size_t n_cgroup_fds;
    // jl_exec_in_start only: the command gets SIGKILL when the process that waits for it
    // dies (a health check killed at its timeout takes its command with it).
    int die_with_parent;
    // jl_spawn only: how many mount fds (JL_OP_MOVE_MOUNT) the parent sends over
    // jl_child.mount_sock before it lets the child go; at most JL_MAX_MOUNT_FDS.
    size_t n_mount_fds;
    int mount_sock;             // set by jl_spawn: the child's end of that socket
};

#define JL_MAX_MOUNT_FDS 64

// Result of jl_spawn.
struct jl_child {
    pid_t pid;         // the jail's pid 1, as the host sees it
    pid_t monitor;     // the monitor process when detached, else 0
    int go_fd;         // write one byte to let the child go on; -1 once used
    int error_fd;      // read jl_error records; EOF means execve succeeded
    int mount_sock;    // send the plan's mount fds here (jl_send_fds); -1 when none
    void *stack;       // the child's stack (it shares our memory until execve); NULL
                       // when detached (the monitor's) or already unmapped
};

// Starts the child stopped at sync point 1 (waiting for the parent). When status_dir_fd
// is >= 0 the child is started through a detached monitor process that waits for it and
// writes its wait status as text into "exit" in that directory (renamed into place).
// Returns 0 or -errno.
int jl_spawn(const struct jl_plan *plan, int status_dir_fd, struct jl_child *out);

// Lets the child go on (sync point 1), then reads its report. Returns 0 when the child
// reached execve, 1 when it failed (err filled in), -errno on a local failure. Unmaps
// the child's stack once the child has left this process's memory.
int jl_release(struct jl_child *child, struct jl_error *err);

// Unmaps the stack of a child that never got released: call it only once the child is
// reaped (a live child may still run on it).
void jl_child_free_stack(struct jl_child *child);

// Joins the namespaces of a running jail (fds opened by the caller, in order) and runs
// argv there with the plan's ids, caps, rlimits, seccomp and workdir; root_fd is the
// jail's root directory. Waits for it and returns its wait status (>= 0), or -errno.
// On a failure inside the child, err is filled in and the return value is -1000.
int jl_exec_in(const struct jl_plan *plan, const int *ns_fds, const int *ns_types, size_t n_ns,
               int root_fd, struct jl_error *err);

// jl_exec_in in two halves, for a caller with work to do while the command runs
// (exec -t relays a terminal): the fork returns the pid of the process that waits for
// the command, or -errno, and the read end of its error pipe; the wait reads the error
// report (closing that fd), reaps, and returns as jl_exec_in does.
pid_t jl_exec_in_fork(const struct jl_plan *plan, const int *ns_fds, const int *ns_types, size_t n_ns,
                      int root_fd, int *error_read_fd);
int jl_exec_in_wait(pid_t mid, int error_read_fd, struct jl_error *err);

// exec -t. Opens a terminal pair from the running jail's own devpts instance (root_fd:
// its /proc/PID/root), so the command never holds a terminal of the host: returns 0 with
// *master and *slave (close-on-exec), or -errno (-ENOTTY when the jail's /dev/pts/ptmx
// is not a devpts multiplexer).
int jl_pty_open(int root_fd, int *master, int *slave);
// Relays up to three streams (src[i] to dst[i]; -1: none) for a command started with
// jl_exec_in_fork, until the process mid (mid_pidfd) exits, then drains what the command
// left. Stream 0 is the input (dst: a pipe or the master, made non-blocking), streams 1
// and 2 the output (src: pipes or the master). With terminal set and src[0] a terminal,
// it is in raw mode for the time (restored before returning) and its window size
// follows SIGWINCH to dst[0]. SIGHUP, SIGINT, SIGQUIT and SIGTERM to the caller are
// passed on to mid, which passes them on to the command. Without terminal, dst[0] (the
// input pipe) is closed by the relay, at the caller's EOF or at the end. Returns 0, or
// -errno when writing the output failed (the command still runs to its end).
int jl_stdio_relay(const int *src, const int *dst, size_t n, int terminal, pid_t mid, int mid_pidfd);

// What jl_exec_in runs, without waiting: returns the pid of the process that waits for
// the command (its exit status mirrors the command's; 127 when it could not start), or
// -errno. The caller reaps it.
pid_t jl_exec_in_start(const struct jl_plan *plan, const int *ns_fds, const int *ns_types, size_t n_ns,
                       int root_fd);

// A network health probe in a forked process, so the caller never blocks on a slow or
// hostile service. In netns_fd's namespace (-1: the caller's), it connects to addr
// (AF_INET or AF_UNIX) within timeout_ms and, by kind, stops there (TCP), sends
// "GET path" (HTTP; 2xx/3xx is healthy) or a FastCGI GET of path (healthy: a completed
// request whose Status, if any, is 2xx/3xx; php-fpm's ping page). It writes one line of
// reason to report_fd and exits 0 (healthy) or 1. Returns its pid or -errno.
enum jl_probe_kind { JL_PROBE_TCP = 1, JL_PROBE_HTTP = 2, JL_PROBE_FCGI = 3 };
// root_fd >= 0 (an fd of /proc/PID/root): the probe chroots there first, so a Unix
// socket path resolves inside the jail's own tree; a symlink planted there cannot lead
// the (root) probe to a socket of the host.
pid_t jl_probe_start(int kind, int netns_fd, int root_fd, const void *addr, unsigned int addr_len, const char *path,
                     int timeout_ms, int report_fd);

// Starts path with argv (environment: envp) as a child that dies with the calling
// thread (PR_SET_PDEATHSIG), stdin /dev/null, stdout stdout_fd, stderr inherited, no
// other descriptors. For helpers a daemon keeps running (nft monitor): a daemon killed
// with SIGKILL leaves none behind. Returns the pid or -errno.
pid_t jl_spawn_tied(const char *path, char *const argv[], char *const envp[], int stdout_fd);

// posix_spawn_file_actions_addclosefrom_np (glibc 2.34), which Swift's Glibc module
// does not show: the spawned program gets no descriptor above lowfd - 1. actions is a
// posix_spawn_file_actions_t *. Returns 0 or an errno value.
int jl_spawn_actions_closefrom(void *actions, int lowfd);

// A detached copy of the mount tree at source_fd (an O_PATH descriptor; open_tree
// OPEN_TREE_CLONE, recursive) with the mount flags ms_flags (MS_RDONLY, MS_NOSUID,
// MS_NODEV, MS_NOEXEC) set on every mount of it, private (no propagation to or from the
// host's mounts), and, when userns_fd >= 0, idmapped through that user namespace
// (uid_map/gid_map written; the filesystem must support it, EINVAL otherwise). The caller
// must be privileged over the source's filesystem (host root). Returns fd or -errno;
// *stage says which call failed (0 open_tree, 1 mount_setattr).
int jl_detached_tree(int source_fd, int userns_fd, unsigned long ms_flags, int *stage);

// statfs(path).f_type (the filesystem's magic number), or -errno.
long long jl_fs_type(const char *path);

// Sends n fds (n <= JL_MAX_MOUNT_FDS) in one message. Returns 0 or -errno.
int jl_send_fds(int sock, const int *fds, size_t n);

// pidfd wrappers (raw system calls Swift cannot reach: syscall() is variadic).
// Return an fd or 0 on success, -errno on failure.
int jl_pidfd_open(pid_t pid);
int jl_pidfd_send_signal(int pidfd, int sig);

// openat2 with RESOLVE_IN_ROOT: path resolves as if root_fd were "/", so neither ".."
// nor an absolute symlink inside an image can lead outside it. Returns fd or -errno.
int jl_open_in_root(int root_fd, const char *path, int flags, int no_symlinks);

// Accepts a connection (close-on-exec) and returns its fd, storing the peer's uid from
// SO_PEERCRED in *uid. Returns -errno on failure.
int jl_accept_peer(int listen_fd, uid_t *uid);

// Reads the start time (field 22 of /proc/PID/stat) in clock ticks; 0 when gone.
unsigned long long jl_proc_start_time(pid_t pid);

#ifdef __cplusplus
}
#endif
#endif
