// rtnetlink requests for the network attach; see jl_netlink.h. Kept apart from the
// launcher: this runs in the parent, after clone, never between clone and execve.
#define _GNU_SOURCE
#include "jl_netlink.h"
#include "jl_netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/ip.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct req {
    struct nlmsghdr h;
    char buf[1024];
};

static atomic_uint seq_counter = 1;

static void *tail(struct nlmsghdr *h) { return (char *)h + NLMSG_ALIGN(h->nlmsg_len); }

static int put(struct nlmsghdr *h, size_t max, unsigned short type, const void *data, size_t len) {
    size_t total = RTA_LENGTH(len);
    if (NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(total) > max) return -ENOSPC;
    struct rtattr *a = tail(h);
    a->rta_type = type;
    a->rta_len = (unsigned short)total;
    if (len) memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(total);
    return 0;
}

static int put_str(struct nlmsghdr *h, size_t max, unsigned short type, const char *s) {
    return put(h, max, type, s, strlen(s) + 1);
}

static int put_u32(struct nlmsghdr *h, size_t max, unsigned short type, uint32_t v) {
    return put(h, max, type, &v, sizeof v);
}

static struct rtattr *nest(struct nlmsghdr *h, size_t max, unsigned short type) {
    struct rtattr *a = tail(h);
    if (put(h, max, type, NULL, 0) < 0) return NULL;
    return a;
}

static void nest_end(struct nlmsghdr *h, struct rtattr *a) {
    a->rta_len = (unsigned short)((char *)tail(h) - (char *)a);
}

static void start(struct req *r, unsigned short type, unsigned short flags, size_t body) {
    memset(r, 0, sizeof *r);
    r->h.nlmsg_len = (uint32_t)NLMSG_LENGTH(body);
    r->h.nlmsg_type = type;
    r->h.nlmsg_flags = (unsigned short)(NLM_F_REQUEST | flags);
    r->h.nlmsg_seq = atomic_fetch_add(&seq_counter, 1);
}

// Sends one request and returns the kernel's verdict (0 or -errno); with `reply`, the
// first non-error message is copied there instead (for GET requests).
static int talk(int fd, struct nlmsghdr *h, void *reply, size_t reply_len) {
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n;
    do {
        n = sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        do {
            n = recv(fd, buf, sizeof buf, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0) return -errno;
        size_t left = (size_t)n;
        for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
            if (m->nlmsg_seq != h->nlmsg_seq) continue;  // a stale answer to an earlier request
            if (m->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(m);
                return e->error;
            }
            if (reply) {
                size_t len = m->nlmsg_len < reply_len ? m->nlmsg_len : reply_len;
                memcpy(reply, m, len);
                return 0;
            }
        }
    }
}

int jl_nl_open(int netns_fd) {
    int self, rc = jl_netns_enter(netns_fd, &self);
    if (rc < 0) return rc;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    int e = errno;
    int back = jl_netns_leave(self);
    if (back < 0) {
        if (fd >= 0) close(fd);
        fd = -1;
        e = -back;
    }
    if (fd < 0) return -e;
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
        e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int jl_nl_veth_add(int fd, const char *host, const char *peer, int peer_netns_fd) {
    struct req r;
    size_t max = sizeof r;
    start(&r, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    if (put_str(&r.h, max, IFLA_IFNAME, host) < 0) return -ENOSPC;
    struct rtattr *info = nest(&r.h, max, IFLA_LINKINFO);
    if (!info || put_str(&r.h, max, IFLA_INFO_KIND, "veth") < 0) return -ENOSPC;
    struct rtattr *data = nest(&r.h, max, IFLA_INFO_DATA);
    struct rtattr *p = data ? nest(&r.h, max, VETH_INFO_PEER) : NULL;
    if (!p) return -ENOSPC;
    // The peer's own ifinfomsg comes first in VETH_INFO_PEER, then its attributes. No
    // IFF_UP for the peer: it is configured before the pair is joined, and opening a veth
    // without its peer fails with ENOTCONN; jl_nl_link_up brings it up afterwards.
    struct ifinfomsg pifi = {.ifi_family = AF_UNSPEC};
    if (NLMSG_ALIGN(r.h.nlmsg_len) + NLMSG_ALIGN(sizeof pifi) > max) return -ENOSPC;
    memcpy(tail(&r.h), &pifi, sizeof pifi);
    r.h.nlmsg_len = NLMSG_ALIGN(r.h.nlmsg_len) + (uint32_t)NLMSG_ALIGN(sizeof pifi);
    if (put_str(&r.h, max, IFLA_IFNAME, peer) < 0) return -ENOSPC;
    if (peer_netns_fd >= 0 && put_u32(&r.h, max, IFLA_NET_NS_FD, (uint32_t)peer_netns_fd) < 0) return -ENOSPC;
    nest_end(&r.h, p);
    nest_end(&r.h, data);
    nest_end(&r.h, info);
    return talk(fd, &r.h, NULL, 0);
}

int jl_nl_ifindex(int fd, const char *name) {
    struct req r;
    start(&r, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_family = AF_UNSPEC;
    if (put_str(&r.h, sizeof r, IFLA_IFNAME, name) < 0) return -ENOSPC;
    char reply[sizeof(struct nlmsghdr) + sizeof(struct ifinfomsg) + 64] __attribute__((aligned(NLMSG_ALIGNTO)));
    memset(reply, 0, sizeof reply);
    int rc = talk(fd, &r.h, reply, sizeof reply);
    if (rc < 0) return rc;
    struct nlmsghdr *m = (struct nlmsghdr *)reply;
    if (m->nlmsg_type != RTM_NEWLINK) return -EPROTO;
    struct ifinfomsg *got = NLMSG_DATA(m);
    return got->ifi_index > 0 ? got->ifi_index : -ENODEV;
}

int jl_nl_link_up(int fd, int ifindex) {
    struct req r;
    start(&r, RTM_NEWLINK, NLM_F_ACK, sizeof(struct ifinfomsg));
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    return talk(fd, &r.h, NULL, 0);
}

int jl_nl_addr_add(int fd, int ifindex, uint32_t addr, int prefix) {
    struct req r;
    start(&r, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
    struct ifaddrmsg *ifa = NLMSG_DATA(&r.h);
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (uint32_t)ifindex;
    uint32_t be = htonl(addr);
    if (put(&r.h, sizeof r, IFA_LOCAL, &be, 4) < 0 || put(&r.h, sizeof r, IFA_ADDRESS, &be, 4) < 0) return -ENOSPC;
    return talk(fd, &r.h, NULL, 0);
}

// A default route via gateway (len bytes of family's address) out of ifindex.
static int default_route(int fd, unsigned char family, const void *gateway, size_t len, int ifindex) {
    struct req r;
    start(&r, RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sizeof(struct rtmsg));
    struct rtmsg *rt = NLMSG_DATA(&r.h);
    rt->rtm_family = family;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    // The gateway is the other end of a /31 (/127): onlink spares the kernel a lookup
    // that can only say yes.
    rt->rtm_flags = RTNH_F_ONLINK;
    if (put(&r.h, sizeof r, RTA_GATEWAY, gateway, len) < 0 || put_u32(&r.h, sizeof r, RTA_OIF, (uint32_t)ifindex) < 0)
        return -ENOSPC;
    return talk(fd, &r.h, NULL, 0);
}

int jl_nl_default_route(int fd, uint32_t gateway, int ifindex) {
    uint32_t be = htonl(gateway);
    return default_route(fd, AF_INET, &be, 4, ifindex);
}

int jl_nl_addr6_add(int fd, int ifindex, const uint8_t addr[16], int prefix) {
    struct req r;
    start(&r, RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
    struct ifaddrmsg *ifa = NLMSG_DATA(&r.h);
    ifa->ifa_family = AF_INET6;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    // No duplicate address detection: both ends of the /127 are ours, and DAD would keep
    // the address tentative (unusable) for a second after `up` returns.
    ifa->ifa_flags = IFA_F_NODAD;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (uint32_t)ifindex;
    if (put(&r.h, sizeof r, IFA_LOCAL, addr, 16) < 0 || put(&r.h, sizeof r, IFA_ADDRESS, addr, 16) < 0 ||
        put_u32(&r.h, sizeof r, IFA_FLAGS, IFA_F_NODAD) < 0)
        return -ENOSPC;
    return talk(fd, &r.h, NULL, 0);
}

int jl_nl_default_route6(int fd, const uint8_t gateway[16], int ifindex) {
    return default_route(fd, AF_INET6, gateway, 16, ifindex);
}

int jl_nl_route_localnet(int fd, int ifindex, int on) {
    struct req r;
    start(&r, RTM_NEWLINK, NLM_F_ACK, sizeof(struct ifinfomsg));
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    struct rtattr *af = nest(&r.h, sizeof r, IFLA_AF_SPEC);
    struct rtattr *inet = af ? nest(&r.h, sizeof r, AF_INET) : NULL;
    struct rtattr *conf = inet ? nest(&r.h, sizeof r, IFLA_INET_CONF) : NULL;
    if (!conf || put_u32(&r.h, sizeof r, IPV4_DEVCONF_ROUTE_LOCALNET, on ? 1 : 0) < 0) return -ENOSPC;
    nest_end(&r.h, conf);
    nest_end(&r.h, inet);
    nest_end(&r.h, af);
    return talk(fd, &r.h, NULL, 0);
}

int jl_nl_link_del(int fd, const char *name) {
    struct req r;
    start(&r, RTM_DELLINK, NLM_F_ACK, sizeof(struct ifinfomsg));
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_family = AF_UNSPEC;
    if (put_str(&r.h, sizeof r, IFLA_IFNAME, name) < 0) return -ENOSPC;
    return talk(fd, &r.h, NULL, 0);
}

int jl_nl_list_links(int fd, const char *prefix, char *out, size_t len) {
    if (len == 0) return -ENOSPC;
    out[0] = 0;
    struct req r;
    start(&r, RTM_GETLINK, NLM_F_DUMP, sizeof(struct ifinfomsg));
    struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
    ifi->ifi_family = AF_UNSPEC;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, &r.h, r.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -errno;
    size_t used = 0, plen = strlen(prefix);
    int count = 0, overflow = 0;
    char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        size_t left = (size_t)n;
        for (struct nlmsghdr *m = (struct nlmsghdr *)buf; NLMSG_OK(m, left); m = NLMSG_NEXT(m, left)) {
            if (m->nlmsg_seq != r.h.nlmsg_seq) continue;
            if (m->nlmsg_type == NLMSG_DONE) return overflow ? -ENOSPC : count;
            if (m->nlmsg_type == NLMSG_ERROR) return ((struct nlmsgerr *)NLMSG_DATA(m))->error;
            if (m->nlmsg_type != RTM_NEWLINK) continue;
            struct ifinfomsg *got = NLMSG_DATA(m);
            int alen = (int)IFLA_PAYLOAD(m);
            for (struct rtattr *a = IFLA_RTA(got); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
                if (a->rta_type != IFLA_IFNAME) continue;
                const char *name = RTA_DATA(a);
                size_t nlen = strnlen(name, RTA_PAYLOAD(a));
                if (nlen < plen || memcmp(name, prefix, plen) != 0) break;
                if (used + nlen + 2 > len) {
                    overflow = 1;
                    break;
                }
                memcpy(out + used, name, nlen);
                used += nlen;
                out[used++] = '\n';
                out[used] = 0;
                count++;
                break;
            }
        }
    }
}
