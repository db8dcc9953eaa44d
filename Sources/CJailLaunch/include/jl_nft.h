// nftables transactions in-process through libnftables, for the firewall's element
// updates on `up`/`down`: the same parser and kernel messages as the nft program, without
// its process start-up. The library is loaded with dlopen on first use, so commands that
// never touch the firewall do not pay for loading it and the five libraries it needs.
#ifndef JL_NFT_H
#define JL_NFT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Runs an `nft -f` script as one transaction in the net namespace `netns_fd` (-1: the
// caller's). Returns 0; -1 when nft refused the script (its message in `err`); -errno
// when libnftables could not be used (-ELIBACC: the library is missing), and then the
// caller runs the nft program instead.
//
// One context (and so one netlink socket) is kept per namespace for the rest of the
// process: closing a netfilter socket after a deletion waits 10-13 ms for the kernel's
// deferred nf_tables cleanup, and an open one lets `down` return before that wait (it
// is paid at process exit, or never by the daemon). Thread-safe.
int jl_nft_apply(int netns_fd, const char *script, char *err, size_t err_len);

// Closes the context of the namespace `netns_fd`, if any, so that the process no longer
// holds the namespace alive (tests delete theirs). Waits for the kernel's cleanup.
void jl_nft_release(int netns_fd);

#ifdef __cplusplus
}
#endif

#endif
