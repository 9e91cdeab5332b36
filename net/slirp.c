/* -netdev user: user-mode networking on libslirp (4.7), QEMU's options:
 *   user,id=ID[,net=ADDR[/MASK]][,host=][,dhcpstart=][,dns=][,hostname=]
 *        [,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 *        [,guestfwd=[tcp]:[ADDR]:PORT-cmd:COMMAND|tcp:HOST:PORT|unix:PATH]...
 *        [,tftp=DIR][,bootfile=FILE][,restrict=on|off][,ipv4=][,ipv6=]
 * Defaults as QEMU: 10.0.2.0/24, host 10.0.2.2, DNS 10.0.2.3, first DHCP
 * lease 10.0.2.15, IPv6 on (fec0::/64). An empty HOSTADDR binds every
 * address (INADDR_ANY), as QEMU does. The forwarding rules live in
 * net/slirp_fwd.c.
 *
 * Threading and polling. libslirp is not thread-safe, so every slirp call
 * happens on the event loop thread: net_send() copies the guest's frame
 * into a bounded queue and kicks an eventfd, and the loop feeds the queue
 * to slirp_input(). Frames slirp emits (send_packet) therefore reach the
 * frontend on the loop thread, as net.h promises.
 * Slirp wants a poll(2)-style cycle (fill, sleep, poll); the loop is epoll.
 * The bridge: after anything slirp did (an fd event, a timer, guest input),
 * run one cycle with a zero timeout - slirp_pollfds_fill, poll(2) with
 * timeout 0 for the real revents, slirp_pollfds_poll - then fill once more
 * and make the epoll watch set equal to what slirp asked for (add, modify,
 * remove; unregister_poll_fd removes a watch before slirp closes the fd).
 * epoll only wakes us up; the revents slirp sees come from poll(2), so its
 * semantics are exactly those of QEMU's main loop. The timeout slirp
 * returns from fill (at most 1 s, 2 ms while TCP fast timers run) arms a
 * loop timer that runs the cycle again. Slirp's own timers (IPv6 router
 * advertisements) map onto event timers. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <slirp/libslirp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include "net/net_priv.h"
#include "net/slirp_fwd.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define USER_MAX_TIMERS		16
#define USER_TXQ_MAX		256	/* guest frames waiting for slirp */
#define USER_HOSTNAME_MAX	32	/* what libslirp keeps */

struct user;

struct user_timer {
	struct user *u;
	struct event_timer *t;		/* created once, reused */
	bool in_use;
	SlirpTimerId id;
	SlirpTimerCb cb;		/* timer_new() style, else slirp_handle_timer */
	void *cb_opaque;
};

struct user_watch {
	int fd;
	uint32_t events;
	bool seen;
};

struct user {
	struct net_backend *nb;
	Slirp *slirp;
	int kick_fd;

	pthread_mutex_t txlock;		/* the guest->slirp queue */
	struct net_rx_frame *txq_head, **txq_tail;
	unsigned txq_len;
	bool tx_notify;

	struct pollfd *pfds;		/* loop thread only from here on */
	unsigned npfds, pfds_cap;
	struct user_watch *watch;
	unsigned nwatch, watch_cap;
	struct event_timer *poll_timer;
	struct user_timer timers[USER_MAX_TIMERS];
	struct slirp_fwds *fwds;	/* hostfwd= and guestfwd= */
};

static const char *const user_keys[] = {
	"net", "host", "dhcpstart", "dns", "hostname", "hostfwd", "tftp", "bootfile",
	"restrict", "ipv4", "ipv6", "guestfwd", NULL
};
static const char *const user_repeatable[] = { "hostfwd", "guestfwd", NULL };

/* ---- poll bridge ---- */

static int grow(void **arr, unsigned *cap, unsigned need, size_t elem)
{
	unsigned n = *cap ? *cap : 16;
	void *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*arr, (size_t)n * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = n;
	return 0;
}

static int add_poll_cb(int fd, int events, void *opaque)
{
	struct user *u = opaque;
	short ev = 0;

	if (grow((void **)&u->pfds, &u->pfds_cap, u->npfds + 1, sizeof(*u->pfds)) < 0)
		return -1;	/* slirp then skips this fd for one cycle */
	ev |= (events & SLIRP_POLL_IN) ? POLLIN : 0;
	ev |= (events & SLIRP_POLL_OUT) ? POLLOUT : 0;
	ev |= (events & SLIRP_POLL_PRI) ? POLLPRI : 0;
	u->pfds[u->npfds] = (struct pollfd){ .fd = fd, .events = ev };
	return u->npfds++;
}

static int get_revents_cb(int idx, void *opaque)
{
	struct user *u = opaque;
	short re;
	int out = 0;

	if (idx < 0 || (unsigned)idx >= u->npfds)
		return 0;
	re = u->pfds[idx].revents;
	out |= (re & POLLIN) ? SLIRP_POLL_IN : 0;
	out |= (re & POLLOUT) ? SLIRP_POLL_OUT : 0;
	out |= (re & POLLPRI) ? SLIRP_POLL_PRI : 0;
	out |= (re & POLLERR) ? SLIRP_POLL_ERR : 0;
	out |= (re & POLLHUP) ? SLIRP_POLL_HUP : 0;
	return out;
}

static uint32_t user_fill(struct user *u)
{
	uint32_t timeout = UINT32_MAX;

	u->npfds = 0;
	slirp_pollfds_fill(u->slirp, &timeout, add_poll_cb, u);
	return timeout;
}

static void user_fd_event(void *opaque, uint32_t events);

static void watch_remove(struct user *u, unsigned i)
{
	event_loop_del_fd(u->nb->loop, u->watch[i].fd);
	u->watch[i] = u->watch[--u->nwatch];
}

/* Make the epoll watch set what slirp asks for now; re-arm the timer. */
static void user_sync(struct user *u)
{
	uint32_t timeout = user_fill(u);

	for (unsigned i = 0; i < u->nwatch; i++)
		u->watch[i].seen = false;
	for (unsigned p = 0; p < u->npfds; p++) {
		uint32_t ev = 0;
		unsigned i;

		ev |= (u->pfds[p].events & POLLIN) ? EPOLLIN : 0;
		ev |= (u->pfds[p].events & POLLOUT) ? EPOLLOUT : 0;
		ev |= (u->pfds[p].events & POLLPRI) ? EPOLLPRI : 0;
		for (i = 0; i < u->nwatch && u->watch[i].fd != u->pfds[p].fd; i++)
			;
		if (i < u->nwatch) {
			if (u->watch[i].events != ev)
				event_loop_mod_fd(u->nb->loop, u->watch[i].fd, ev);
		} else {
			if (grow((void **)&u->watch, &u->watch_cap, u->nwatch + 1,
				 sizeof(*u->watch)) < 0 ||
			    event_loop_add_fd(u->nb->loop, u->pfds[p].fd, ev, user_fd_event, u) < 0)
				continue;	/* retried at the next cycle */
			u->nwatch++;
		}
		u->watch[i] = (struct user_watch){ .fd = u->pfds[p].fd, .events = ev,
						    .seen = true };
	}
	for (unsigned i = u->nwatch; i-- > 0;)
		if (!u->watch[i].seen)
			watch_remove(u, i);
	if (timeout == UINT32_MAX)
		event_timer_disarm(u->poll_timer);
	else
		event_timer_arm(u->poll_timer, clock_ns() + (uint64_t)timeout * 1000000);
}

/* One poll cycle with real revents, then resynchronise. */
static void user_run(struct user *u)
{
	int r;

	if (u->nb->closed)
		return;
	user_fill(u);
	do {
		r = poll(u->pfds, u->npfds, 0);
	} while (r < 0 && errno == EINTR);
	slirp_pollfds_poll(u->slirp, r < 0, get_revents_cb, u);
	slirp_fwd_resume(u->fwds);
	user_sync(u);
}

static void user_fd_event(void *opaque, uint32_t events)
{
	user_run(opaque);
}

/* The poll timer, and guestfwd after handing host data to slirp. */
static void user_run_cb(void *opaque)
{
	user_run(opaque);
}

/* The first watch set is made on the loop thread, so that no slirp call
 * races with open() when the loop already runs. */
static void user_first_sync(void *opaque)
{
	struct user *u = opaque;

	if (!u->nb->closed)
		user_sync(u);
}

/* ---- guest -> slirp ---- */

static void user_kick(void *opaque, uint32_t events)
{
	struct user *u = opaque;
	struct net_rx_frame *f;
	uint64_t v;
	bool notify;

	if (read(u->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&u->txlock);
	f = u->txq_head;
	u->txq_head = NULL;
	u->txq_tail = &u->txq_head;
	u->txq_len = 0;
	notify = u->tx_notify;
	u->tx_notify = false;
	pthread_mutex_unlock(&u->txlock);
	while (f) {
		struct net_rx_frame *next = f->next;

		if (!u->nb->closed)
			slirp_input(u->slirp, f->data, (int)f->len);
		free(f);
		f = next;
	}
	if (u->nb->closed)
		return;
	if (notify)
		net_tx_ready(u->nb);
	user_run(u);
}

static ssize_t user_send(struct net_backend *nb, const struct iovec *iov, int iovcnt, size_t len)
{
	struct user *u = nb->priv;
	struct net_rx_frame *f;
	uint64_t one = 1;
	size_t off = 0;
	bool kick;

	pthread_mutex_lock(&u->txlock);
	if (u->txq_len >= USER_TXQ_MAX) {
		u->tx_notify = true;
		pthread_mutex_unlock(&u->txlock);
		return 0;
	}
	pthread_mutex_unlock(&u->txlock);
	f = malloc(sizeof(*f) + len);
	if (!f)
		return -ENOBUFS;
	f->next = NULL;
	f->len = len;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(f->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	pthread_mutex_lock(&u->txlock);
	kick = !u->txq_head;
	*u->txq_tail = f;
	u->txq_tail = &f->next;
	u->txq_len++;
	pthread_mutex_unlock(&u->txlock);
	if (kick && write(u->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("netdev %s: cannot wake the event loop: %s", nb->id, strerror(errno));
	return len;
}

/* ---- slirp callbacks ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct user *u = opaque;

	net_rx_deliver(u->nb, buf, len);
	return len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct user *u = opaque;

	log_guest(LOG_GUEST_ERRORS, "netdev %s: %s", u->nb->id, msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return clock_ns();
}

static void user_timer_fire(void *opaque)
{
	struct user_timer *ut = opaque;
	struct user *u = ut->u;

	if (!ut->in_use || u->nb->closed)
		return;
	if (ut->cb)
		ut->cb(ut->cb_opaque);
	else
		slirp_handle_timer(u->slirp, ut->id, ut->cb_opaque);
	user_sync(u);
}

static struct user_timer *user_timer_alloc(struct user *u)
{
	for (unsigned i = 0; i < USER_MAX_TIMERS; i++) {
		struct user_timer *ut = &u->timers[i];

		if (ut->in_use)
			continue;
		if (!ut->t && !(ut->t = event_timer_new(u->nb->loop, user_timer_fire, ut)))
			return NULL;
		ut->u = u;
		ut->in_use = true;
		return ut;
	}
	log_error("netdev %s: slirp wants more than %d timers", u->nb->id, USER_MAX_TIMERS);
	return NULL;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct user_timer *ut = user_timer_alloc(opaque);

	if (ut) {
		ut->cb = cb;
		ut->cb_opaque = cb_opaque;
	}
	return ut;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct user_timer *ut = user_timer_alloc(opaque);

	if (ut) {
		ut->cb = NULL;
		ut->id = id;
		ut->cb_opaque = cb_opaque;
	}
	return ut;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct user_timer *ut = timer;

	if (!ut)
		return;
	event_timer_disarm(ut->t);
	ut->in_use = false;
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct user_timer *ut = timer;

	if (ut)
		event_timer_arm(ut->t, expire_ms > 0 ? (uint64_t)expire_ms * 1000000 : 1);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	/* Watches follow slirp_pollfds_fill in user_sync. */
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	struct user *u = opaque;

	for (unsigned i = 0; i < u->nwatch; i++) {
		if (u->watch[i].fd == fd) {
			watch_remove(u, i);
			return;
		}
	}
}

/* A guestfwd connection can take host data again. */
static void cb_notify(void *opaque)
{
	struct user *u = opaque;

	slirp_fwd_resume(u->fwds);
}

static void cb_init_completed(Slirp *slirp, void *opaque)
{
	struct user *u = opaque;

	u->slirp = slirp;
}

static const SlirpCb user_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.init_completed = cb_init_completed,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- options ---- */

static int parse_addr(const struct net_opts *o, const char *key, struct in_addr *out, char *err,
		      size_t errlen)
{
	const char *v = net_opt_get(o, key);

	if (v && !inet_aton(v, out)) {
		snprintf(err, errlen, "%s= expects an IPv4 address, not '%s'", key, v);
		return -1;
	}
	return v ? 1 : 0;
}

/* net=ADDR[/BITS|/MASK]; without a mask, QEMU's classful guess. */
static int parse_net(const char *v, struct in_addr *net, struct in_addr *mask, char *err,
		     size_t errlen)
{
	char buf[64], *slash, *end;
	uint32_t n, m;

	snprintf(buf, sizeof(buf), "%s", v);
	slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (strlen(v) >= sizeof(buf) || !inet_aton(buf, net))
		goto bad;
	n = ntohl(net->s_addr);
	if (slash) {
		unsigned long bits = strtoul(slash + 1, &end, 10);

		if (slash[1] && !*end) {
			if (bits > 32)
				goto bad;
			m = bits ? 0xffffffffu << (32 - bits) : 0;
		} else if (inet_aton(slash + 1, mask)) {
			m = ntohl(mask->s_addr);
			if (m & (~m >> 1))	/* not contiguous ones */
				goto bad;
		} else {
			goto bad;
		}
	} else if (!(n & 0x80000000u)) {
		m = 0xff000000u;
	} else if ((n & 0xfff00000u) == 0xac100000u) {
		m = 0xfff00000u;
	} else if ((n & 0xffff0000u) == 0xc0a80000u) {
		m = 0xffff0000u;
	} else {
		m = 0xffffff00u;
	}
	if (m > 0xfffffff8u) {
		snprintf(err, errlen, "net=%s leaves no room for host, DNS and DHCP", v);
		return -1;
	}
	mask->s_addr = htonl(m);
	net->s_addr = htonl(n & m);
	return 0;
bad:
	snprintf(err, errlen, "net= expects ADDR[/BITS] or ADDR/MASK, not '%s'", v);
	return -1;
}

/* A usable host address inside the network. */
static int check_in_net(const char *what, struct in_addr a, struct in_addr net,
			struct in_addr mask, char *err, size_t errlen)
{
	uint32_t x = ntohl(a.s_addr), n = ntohl(net.s_addr), m = ntohl(mask.s_addr);

	if ((x & m) != n || x == n || x == (n | ~m)) {
		snprintf(err, errlen, "%s= %s is not a host address of the guest network", what,
			 inet_ntoa(a));
		return -1;
	}
	return 0;
}

/* Fill cfg from the options, QEMU's defaults and checks. */
static int user_config(const struct net_opts *o, SlirpConfig *cfg, char *err, size_t errlen)
{
	const char *v;
	bool restricted, v4, v6;
	int r;

	cfg->version = 4;
	if (net_opt_bool(o, "restrict", false, &restricted, err, errlen) < 0 ||
	    net_opt_bool(o, "ipv4", true, &v4, err, errlen) < 0 ||
	    net_opt_bool(o, "ipv6", true, &v6, err, errlen) < 0)
		return -1;
	if (!v4 && !v6) {
		snprintf(err, errlen, "ipv4=off and ipv6=off leave nothing to do");
		return -1;
	}
	cfg->restricted = restricted;
	cfg->in_enabled = v4;
	cfg->in6_enabled = v6;

	inet_aton("10.0.2.0", &cfg->vnetwork);
	inet_aton("255.255.255.0", &cfg->vnetmask);
	if ((v = net_opt_get(o, "net")) &&
	    parse_net(v, &cfg->vnetwork, &cfg->vnetmask, err, errlen) < 0)
		return -1;
	cfg->vhost.s_addr = cfg->vnetwork.s_addr | htonl(2);
	cfg->vnameserver.s_addr = cfg->vnetwork.s_addr | htonl(3);
	cfg->vdhcp_start.s_addr = cfg->vnetwork.s_addr | htonl(15);
	if ((r = parse_addr(o, "host", &cfg->vhost, err, errlen)) < 0 ||
	    check_in_net("host", cfg->vhost, cfg->vnetwork, cfg->vnetmask, err, errlen) < 0)
		return -1;
	if ((r = parse_addr(o, "dns", &cfg->vnameserver, err, errlen)) < 0 ||
	    check_in_net("dns", cfg->vnameserver, cfg->vnetwork, cfg->vnetmask, err, errlen) < 0)
		return -1;
	if ((r = parse_addr(o, "dhcpstart", &cfg->vdhcp_start, err, errlen)) < 0 ||
	    check_in_net("dhcpstart", cfg->vdhcp_start, cfg->vnetwork, cfg->vnetmask, err,
			 errlen) < 0)
		return -1;
	if (cfg->vdhcp_start.s_addr == cfg->vhost.s_addr ||
	    cfg->vdhcp_start.s_addr == cfg->vnameserver.s_addr) {
		snprintf(err, errlen, "dhcpstart= must differ from host= and dns=");
		return -1;
	}

	inet_pton(AF_INET6, "fec0::", &cfg->vprefix_addr6);
	cfg->vprefix_len = 64;
	inet_pton(AF_INET6, "fec0::2", &cfg->vhost6);
	inet_pton(AF_INET6, "fec0::3", &cfg->vnameserver6);

	cfg->vhostname = net_opt_get(o, "hostname");
	if (cfg->vhostname && strlen(cfg->vhostname) > USER_HOSTNAME_MAX) {
		snprintf(err, errlen, "hostname= is longer than %d characters", USER_HOSTNAME_MAX);
		return -1;
	}
	cfg->tftp_path = net_opt_get(o, "tftp");
	cfg->bootfile = net_opt_get(o, "bootfile");
	return slirp_fwd_check(o, err, errlen);
}

/* ---- open / close ---- */

static void user_free_txq(struct user *u)
{
	struct net_rx_frame *f = u->txq_head;

	while (f) {
		struct net_rx_frame *next = f->next;
		free(f);
		f = next;
	}
	u->txq_head = NULL;
	u->txq_tail = &u->txq_head;
	u->txq_len = 0;
}

static void user_teardown(struct user *u)
{
	while (u->nwatch)
		watch_remove(u, u->nwatch - 1);
	if (u->poll_timer)
		event_timer_disarm(u->poll_timer);
	if (u->slirp)
		slirp_cleanup(u->slirp);
	u->slirp = NULL;
	slirp_fwd_free(u->fwds);
	u->fwds = NULL;
	for (unsigned i = 0; i < USER_MAX_TIMERS; i++) {
		if (u->timers[i].t)
			event_timer_disarm(u->timers[i].t);
		u->timers[i].in_use = false;
	}
	while (u->nwatch)	/* slirp_cleanup may not unregister everything */
		watch_remove(u, u->nwatch - 1);
	if (u->kick_fd >= 0) {
		event_loop_del_fd(u->nb->loop, u->kick_fd);
		close(u->kick_fd);
	}
	u->kick_fd = -1;
	pthread_mutex_lock(&u->txlock);
	user_free_txq(u);
	pthread_mutex_unlock(&u->txlock);
	free(u->pfds);
	free(u->watch);
	u->pfds = NULL;
	u->watch = NULL;
	u->npfds = u->pfds_cap = u->watch_cap = 0;
}

static int user_open(struct net_backend *nb, const struct net_opts *o, char *err, size_t errlen)
{
	struct user *u = nb->priv;
	SlirpConfig cfg = { 0 };

	u->nb = nb;
	u->kick_fd = -1;
	u->txq_tail = &u->txq_head;
	pthread_mutex_init(&u->txlock, NULL);
	if (user_config(o, &cfg, err, errlen) < 0)
		return -1;
	u->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	u->poll_timer = event_timer_new(nb->loop, user_run_cb, u);
	if (u->kick_fd < 0 || !u->poll_timer ||
	    event_loop_add_fd(nb->loop, u->kick_fd, EPOLLIN, user_kick, u) < 0) {
		snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
		goto fail;
	}
	u->slirp = slirp_new(&cfg, &user_callbacks, u);
	if (!u->slirp) {
		snprintf(err, errlen, "cannot create the slirp stack");
		goto fail;
	}
	u->fwds = slirp_fwd_add(u->slirp, nb->loop, nb->id, user_run_cb, u, o, err, errlen);
	if (!u->fwds || event_loop_call(nb->loop, user_first_sync, u) < 0)
		goto fail;
	return 0;
fail:
	user_teardown(u);
	return -1;
}

static void user_close(struct net_backend *nb)
{
	user_teardown(nb->priv);
}

const struct net_backend_ops net_user_ops = {
	.type = "user",
	.keys = user_keys,
	.repeatable = user_repeatable,
	.priv_size = sizeof(struct user),
	.open = user_open,
	.send = user_send,
	.close = user_close,
};
