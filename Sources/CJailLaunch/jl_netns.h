// Making a socket in another network namespace from the calling thread: a socket stays
// in the namespace it was made in, so the thread enters that namespace only for the
// call that makes it, and must come back whatever happened there.
#ifndef JL_NETNS_H
#define JL_NETNS_H
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

// Enters netns_fd (-1: stays). *self gets the fd of the thread's own namespace to come
// back to (-1 when it stayed). Returns 0, or -errno having changed nothing.
static inline int jl_netns_enter(int netns_fd, int *self) {
    *self = -1;
    if (netns_fd < 0) return 0;
    int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0) return -errno;
    if (setns(netns_fd, CLONE_NEWNET) < 0) {
        int e = errno;
        close(own);
        return -e;
    }
    *self = own;
    return 0;
}

// Back from jl_netns_enter (self as it returned; -1: nothing to do). Returns 0 or -errno;
// on failure the caller must not keep what it made there, its later work would land in
// the other namespace's objects.
static inline int jl_netns_leave(int self) {
    if (self < 0) return 0;
    int rc = setns(self, CLONE_NEWNET) < 0 ? -errno : 0;
    close(self);
    return rc;
}

#endif
