// libnftables through dlopen; see jl_nft.h.
#define _GNU_SOURCE
#include "jl_nft.h"
#include "jl_netns.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

// The part of libnftables.h (soname libnftables.so.1, a stable ABI) that jailctl uses.
struct nft_ctx;
static struct {
    struct nft_ctx *(*ctx_new)(uint32_t flags);
    void (*ctx_free)(struct nft_ctx *);
    int (*buffer_output)(struct nft_ctx *);
    int (*buffer_error)(struct nft_ctx *);
    const char *(*error_buffer)(struct nft_ctx *);
    int (*run)(struct nft_ctx *, const char *);
} lib;
static int lib_state;  // 0: not tried, 1: loaded, -errno: unusable

// One context per namespace, found by the namespace file's identity.
#define SLOTS 8
static struct slot {
    dev_t dev;
    ino_t ino;
    struct nft_ctx *ctx;
} slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int load(void) {
    if (lib_state != 0) return lib_state;
    void *h = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) return lib_state = -ELIBACC;
    lib.ctx_new = (struct nft_ctx * (*)(uint32_t)) dlsym(h, "nft_ctx_new");
    lib.ctx_free = (void (*)(struct nft_ctx *))dlsym(h, "nft_ctx_free");
    lib.buffer_output = (int (*)(struct nft_ctx *))dlsym(h, "nft_ctx_buffer_output");
    lib.buffer_error = (int (*)(struct nft_ctx *))dlsym(h, "nft_ctx_buffer_error");
    lib.error_buffer = (const char *(*)(struct nft_ctx *))dlsym(h, "nft_ctx_get_error_buffer");
    lib.run = (int (*)(struct nft_ctx *, const char *))dlsym(h, "nft_run_cmd_from_buffer");
    if (!lib.ctx_new || !lib.ctx_free || !lib.buffer_output || !lib.buffer_error || !lib.error_buffer || !lib.run) {
        // A library without these symbols is not one we know; the program still works.
        dlclose(h);
        return lib_state = -ELIBBAD;
    }
    return lib_state = 1;
}

static int identify(int netns_fd, struct stat *st) {
    int rc = netns_fd >= 0 ? fstat(netns_fd, st) : stat("/proc/thread-self/ns/net", st);
    return rc < 0 ? -errno : 0;
}

// libnftables opens its socket without SOCK_CLOEXEC and does not hand out the fd: every
// netfilter netlink socket of the process that lacks the flag is its (ours all have it),
// and gets it, so no program started later inherits a socket into the firewall.
static void cloexec_netfilter_sockets(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == dirfd(d)) continue;
        int domain = 0, proto = 0;
        socklen_t n = sizeof domain;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &n) < 0 || domain != AF_NETLINK) continue;
        n = sizeof proto;
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &n) < 0 || proto != NETLINK_NETFILTER) continue;
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !(flags & FD_CLOEXEC)) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    }
    closedir(d);
}

// A new context whose socket lives in `netns_fd`: libnftables opens its netlink socket
// in nft_ctx_new, and a socket stays in the namespace it was made in, so the thread
// enters the namespace only for that call.
static struct nft_ctx *open_ctx(int netns_fd, int *err) {
    int self;
    *err = jl_netns_enter(netns_fd, &self);
    if (*err < 0) return NULL;
    struct nft_ctx *ctx = lib.ctx_new(0);
    *err = ctx ? 0 : -ENOMEM;
    // libnftables opens its socket without close-on-exec. Until the next line a process
    // spawned by another thread would inherit it; jailctl spawns only from the thread
    // that runs its commands and the daemon's loop, which is this one.
    if (ctx) cloexec_netfilter_sockets();
    int back = jl_netns_leave(self);
    if (back < 0) {
        *err = back;
        if (ctx) lib.ctx_free(ctx);
        ctx = NULL;
    }
    if (ctx && (lib.buffer_output(ctx) != 0 || lib.buffer_error(ctx) != 0)) {
        lib.ctx_free(ctx);
        *err = -ENOMEM;
        ctx = NULL;
    }
    return ctx;
}

static struct slot *find(const struct stat *st) {
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].ctx && slots[i].dev == st->st_dev && slots[i].ino == st->st_ino) return &slots[i];
    }
    return NULL;
}

int jl_nft_apply(int netns_fd, const char *script, char *err, size_t err_len) {
    if (err_len) err[0] = 0;
    struct stat st;
    int rc = identify(netns_fd, &st);
    if (rc < 0) return rc;
    pthread_mutex_lock(&lock);
    rc = load();
    if (rc < 0) goto out;
    struct slot *s = find(&st);
    if (!s) {
        for (int i = 0; i < SLOTS && !s; i++)
            if (!slots[i].ctx) s = &slots[i];
        if (!s) {
            // More namespaces than slots (only tests make that many): the oldest goes.
            lib.ctx_free(slots[0].ctx);
            memmove(&slots[0], &slots[1], sizeof slots[0] * (SLOTS - 1));
            s = &slots[SLOTS - 1];
            s->ctx = NULL;
        }
        s->ctx = open_ctx(netns_fd, &rc);
        if (!s->ctx) goto out;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    if (lib.run(s->ctx, script) != 0) {
        // The error buffer is rewound by reading it, so the next run starts clean.
        const char *msg = lib.error_buffer(s->ctx);
        if (err_len) snprintf(err, err_len, "%s", msg ? msg : "");
        rc = -1;
    } else {
        // Warnings of a run that succeeded are dropped with the buffer.
        (void)lib.error_buffer(s->ctx);
        rc = 0;
    }
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

void jl_nft_release(int netns_fd) {
    struct stat st;
    if (identify(netns_fd, &st) < 0) return;
    pthread_mutex_lock(&lock);
    struct slot *s = lib_state == 1 ? find(&st) : NULL;
    if (s) {
        lib.ctx_free(s->ctx);
        s->ctx = NULL;
    }
    pthread_mutex_unlock(&lock);
}
