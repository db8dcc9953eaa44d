// Typed rtnetlink requests for jailctl's network attach: a veth pair with its peer
// created directly inside the jail's net namespace, addresses, a route, link removal and
// a listing by name prefix. One socket per namespace; every request waits for its ack.
// Addresses are IPv4 in host byte order. Functions return >= 0 on success, -errno else.
#ifndef JL_NETLINK_H
#define JL_NETLINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// A NETLINK_ROUTE socket in the net namespace `netns_fd` (-1: the caller's). A socket
// stays bound to the namespace it was created in, so the calling thread enters the
// namespace only for the socket() call and returns at once.
int jl_nl_open(int netns_fd);

// veth pair: `host` here (up), `peer` created inside `peer_netns_fd` (down).
int jl_nl_veth_add(int fd, const char *host, const char *peer, int peer_netns_fd);

// Sets the link up.
int jl_nl_link_up(int fd, int ifindex);

// The index of the link `name`.
int jl_nl_ifindex(int fd, const char *name);

// addr/prefix on the link (the kernel adds the connected route).
int jl_nl_addr_add(int fd, int ifindex, uint32_t addr, int prefix);

// Default route (dst 0/0) via `gateway` on the link, onlink.
int jl_nl_default_route(int fd, uint32_t gateway, int ifindex);

// IPv6 addr/prefix (16 bytes, network order) on the link, usable at once (IFA_F_NODAD).
int jl_nl_addr6_add(int fd, int ifindex, const uint8_t addr[16], int prefix);

// IPv6 default route (::/0) via `gateway` (16 bytes, network order) on the link, onlink.
int jl_nl_default_route6(int fd, const uint8_t gateway[16], int ifindex);

// net.ipv4.conf.<link>.route_localnet, set through netlink (no /proc/sys write).
int jl_nl_route_localnet(int fd, int ifindex, int on);

// Removes the link `name` (and so its veth peer). -ENODEV when it does not exist.
int jl_nl_link_del(int fd, const char *name);

// Names of the links starting with `prefix`, each followed by '\n', into buf (NUL
// terminated). Returns their number; -ENOSPC when buf is too small.
int jl_nl_list_links(int fd, const char *prefix, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
