/* -netdev user's forwarding rules (net/slirp_fwd.c), for net/slirp.c only:
 * hostfwd= and guestfwd= parsing, checking and setting up, and the host
 * connections behind guestfwd=...-tcp:HOST:PORT and -unix:PATH. */
#ifndef NET_SLIRP_FWD_H
#define NET_SLIRP_FWD_H

#include <stddef.h>
#include <slirp/libslirp.h>
#include "net/net_priv.h"

struct slirp_fwds;

/* Parse every rule (no side effects), so errors come before slirp exists. */
int slirp_fwd_check(const struct net_opts *o, char *err, size_t errlen);

/* Add the rules to slirp; tcp: and unix: guestfwd targets connect now.
 * run(opaque) is called on the loop thread after host data was handed
 * to slirp (a poll cycle sends it on). Returns NULL with err set. */
struct slirp_fwds *slirp_fwd_add(Slirp *slirp, struct event_loop *loop, const char *netdev_id,
				 void (*run)(void *), void *opaque, const struct net_opts *o,
				 char *err, size_t errlen);

/* Loop thread, after slirp ran: read host data again where the guest
 * side has room once more. */
void slirp_fwd_resume(struct slirp_fwds *f);

/* Loop quiet, after slirp_cleanup: unwatch and close. NULL is fine. */
void slirp_fwd_free(struct slirp_fwds *f);

#endif
