// A TCP relay from the host's [::1] to a jail, for `[::1]:PORT:PORT/tcp` forwards. The
// kernel cannot NAT those: a packet with source ::1 must not leave lo, and a reply
// turned back into ::1 on a jail's veth is dropped (IPv6 has no route_localnet), so a
// small process outside the jail accepts on [::1] and connects to the jail's address.
#ifndef JL_RELAY_H
#define JL_RELAY_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct jl_relay_target {
    int family;            // AF_INET6 or AF_INET (a jail without an IPv6 address)
    uint8_t address[16];   // network order; the first 4 bytes for AF_INET
    uint16_t port;         // host order
};

// A listening TCP socket on [::1]:port (IPv6 only, close-on-exec), made in the net
// namespace `netns_fd` (-1: the caller's). Returns the fd or -errno (-EADDRINUSE when a
// host process or another jail holds the port).
int jl_relay_listen(int netns_fd, uint16_t port);

// Starts the relay as a detached process (double fork, its own session) serving
// listeners[i] -> targets[i]; its outgoing sockets are made in `netns_fd` (-1: the
// caller's). It ends when the process `jail_pid` exits (0: never) or on SIGTERM. Returns its pid or
// -errno. The listeners stay open in the caller too: close them after.
pid_t jl_relay_start(const int *listeners, const struct jl_relay_target *targets, int count, int netns_fd, pid_t jail_pid);

#ifdef __cplusplus
}
#endif

#endif
