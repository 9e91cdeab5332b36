/* -netdev tap: a Linux tap interface, with QEMU's options and semantics.
 *   tap,id=ID[,ifname=NAME][,script=PATH|no][,downscript=PATH|no]
 *            [,vnet_hdr=on|off][,queues=N] | tap,id=ID,fd=N
 * TUNSETIFF with IFF_TAP|IFF_NO_PI, plus IFF_VNET_HDR when the kernel has
 * it (vnet_hdr=on insists, off refuses) and IFF_MULTI_QUEUE for queues>1.
 * The up script (default /etc/qemu-ifup) runs once with the interface name
 * after the first queue is open and must exit 0; the down script (default
 * /etc/qemu-ifdown) runs at cleanup, before the fds close. fd= takes an
 * inherited, already configured tap fd (no scripts; the vnet header is
 * probed with TUNGETIFF). Every fd is non-blocking on the event loop; all
 * queues are read, frames are sent on queue 0. With a vnet header the
 * length starts at 12 (NET_VNET_HDR_LEN) and offloads start off. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include "net/net_priv.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define TAP_MAX_QUEUES		16
#define TAP_DEFAULT_SCRIPT	"/etc/qemu-ifup"
#define TAP_DEFAULT_DOWNSCRIPT	"/etc/qemu-ifdown"
#define TAP_READ_BUDGET		64	/* frames per wakeup, for fairness */

struct tap;

struct tap_queue {
	struct tap *t;
	int fd;
	bool watched;
};

struct tap {
	struct net_backend *nb;
	struct tap_queue q[TAP_MAX_QUEUES];
	unsigned nqueues;
	char ifname[IFNAMSIZ];
	char *downscript;		/* NULL: none */
	pthread_mutex_t lock;		/* tx_blocked, rx_paused and the epoll masks */
	bool tx_blocked, rx_paused, broken;
	uint8_t buf[NET_MAX_FRAME + NET_VNET_HDR_LEN];
};

static const char *const tap_keys[] = {
	"ifname", "script", "downscript", "fd", "vnet_hdr", "queues", NULL
};

static bool script_enabled(const char *s)
{
	return s && *s && strcmp(s, "no");
}

/* Lock held. */
static void tap_update_masks(struct tap *t)
{
	for (unsigned i = 0; i < t->nqueues; i++) {
		uint32_t ev = t->rx_paused ? 0 : EPOLLIN;

		if (i == 0 && t->tx_blocked)
			ev |= EPOLLOUT;
		if (t->q[i].watched)
			event_loop_mod_fd(t->nb->loop, t->q[i].fd, ev);
	}
}

static void tap_unwatch(struct tap *t)
{
	for (unsigned i = 0; i < t->nqueues; i++) {
		if (t->q[i].watched)
			event_loop_del_fd(t->nb->loop, t->q[i].fd);
		t->q[i].watched = false;
	}
}

static void tap_set_rx_paused(struct tap *t, bool paused)
{
	pthread_mutex_lock(&t->lock);
	t->rx_paused = paused;
	tap_update_masks(t);
	pthread_mutex_unlock(&t->lock);
}

/* A read error other than "nothing there": the interface is gone. */
static void tap_break(struct tap *t, int err)
{
	log_error("netdev %s: tap %s: %s; the backend stops", t->nb->id, t->ifname,
		  strerror(err));
	pthread_mutex_lock(&t->lock);
	t->broken = true;
	tap_unwatch(t);
	pthread_mutex_unlock(&t->lock);
}

static void tap_read_frames(struct tap *t, int fd)
{
	size_t hdr = t->nb->vnet_hdr ? t->nb->vnet_hdr_len : 0;

	for (int i = 0; i < TAP_READ_BUDGET && !t->rx_paused; i++) {
		ssize_t n = read(fd, t->buf, sizeof(t->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			tap_break(t, errno);
			return;
		}
		if ((size_t)n <= hdr) {
			net_count_rx_error(t->nb);
			continue;
		}
		if (!net_rx_deliver(t->nb, t->buf, n))
			tap_set_rx_paused(t, true);
	}
}

static void tap_event(void *opaque, uint32_t events)
{
	struct tap_queue *q = opaque;
	struct tap *t = q->t;

	if (events & EPOLLOUT) {
		bool notify;

		pthread_mutex_lock(&t->lock);
		notify = t->tx_blocked;
		t->tx_blocked = false;
		tap_update_masks(t);
		pthread_mutex_unlock(&t->lock);
		if (notify)
			net_tx_ready(t->nb);
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		tap_read_frames(t, q->fd);
}

static ssize_t tap_send(struct net_backend *nb, const struct iovec *iov, int iovcnt, size_t len)
{
	struct tap *t = nb->priv;
	ssize_t r;

	if (t->broken)
		return -EIO;
	do {
		r = writev(t->q[0].fd, iov, iovcnt);
	} while (r < 0 && errno == EINTR);
	if (r >= 0)
		return r ? r : (ssize_t)len;
	if (errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&t->lock);
	t->tx_blocked = true;
	tap_update_masks(t);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void tap_rx_resume(struct net_backend *nb)
{
	tap_set_rx_paused(nb->priv, false);
}

static int tap_set_vnet_hdr_len(struct net_backend *nb, unsigned len)
{
	struct tap *t = nb->priv;
	int l = len;

	for (unsigned i = 0; i < t->nqueues; i++)
		if (ioctl(t->q[i].fd, TUNSETVNETHDRSZ, &l) < 0)
			return -errno;
	nb->vnet_hdr_len = len;
	return 0;
}

/* No fallback: a refused offload (e.g. UFO on a new kernel) is an error
 * and the frontend must not offer it to the guest. */
static int tap_set_offloads(struct net_backend *nb, const struct net_offloads *o)
{
	struct tap *t = nb->priv;
	unsigned long f = 0;

	if (o->csum) {
		f |= TUN_F_CSUM;
		f |= o->tso4 ? TUN_F_TSO4 : 0;
		f |= o->tso6 ? TUN_F_TSO6 : 0;
		f |= o->ecn ? TUN_F_TSO_ECN : 0;
		f |= o->ufo ? TUN_F_UFO : 0;
	}
	for (unsigned i = 0; i < t->nqueues; i++)
		if (ioctl(t->q[i].fd, TUNSETOFFLOAD, f) < 0)
			return -errno;
	return 0;
}

/* Common setup of an open tap fd: non-blocking, header size, offloads. */
static int tap_setup_fd(struct tap *t, int fd, char *err, size_t errlen)
{
	int flags = fcntl(fd, F_GETFL), sndbuf = INT_MAX, hdr = NET_VNET_HDR_LEN;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "cannot make the tap fd non-blocking: %s", strerror(errno));
		return -1;
	}
	ioctl(fd, TUNSETSNDBUF, &sndbuf);	/* as QEMU: no send limit */
	if (!t->nb->vnet_hdr)
		return 0;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		snprintf(err, errlen, "cannot set the vnet header size: %s", strerror(errno));
		return -1;
	}
	ioctl(fd, TUNSETOFFLOAD, 0ul);
	return 0;
}

static int tap_open_inherited(struct tap *t, const struct net_opts *o, char *err, size_t errlen)
{
	const char *v = net_opt_get(o, "fd");
	struct ifreq ifr = { 0 };
	int fd;

	if (net_opt_get(o, "ifname") || net_opt_get(o, "script") ||
	    net_opt_get(o, "downscript") || net_opt_get(o, "vnet_hdr") ||
	    net_opt_get(o, "queues")) {
		snprintf(err, errlen, "ifname=, script=, downscript=, vnet_hdr= and queues= are "
			 "invalid with fd=");
		return -1;
	}
	fd = net_parse_fd(v, err, errlen);
	if (fd < 0)
		return -1;
	if (ioctl(fd, TUNGETIFF, &ifr) < 0 || !(ifr.ifr_flags & IFF_TAP)) {
		snprintf(err, errlen, "fd=%s is not a tap device", v);
		return -1;
	}
	t->q[0].fd = fd;
	t->nqueues = 1;
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifr.ifr_name);
	t->nb->vnet_hdr = ifr.ifr_flags & IFF_VNET_HDR;
	t->nb->vnet_hdr_len = t->nb->vnet_hdr ? NET_VNET_HDR_LEN : 0;
	return tap_setup_fd(t, fd, err, errlen);
}

static int tap_open_queue(struct tap *t, unsigned i, short flags, char *err, size_t errlen)
{
	struct ifreq ifr = { .ifr_flags = flags };
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "could not open /dev/net/tun: %s", strerror(errno));
		return -1;
	}
	t->q[i].fd = fd;
	t->nqueues = i + 1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		snprintf(err, errlen, "could not configure /dev/net/tun (%s): %s",
			 t->ifname[0] ? t->ifname : "tap%d", strerror(errno));
		return -1;
	}
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifr.ifr_name);
	return tap_setup_fd(t, fd, err, errlen);
}

/* Which IFF_* flags to ask for, given vnet_hdr= and queues=. */
static int tap_flags(struct tap *t, const struct net_opts *o, unsigned queues, short *flags,
		     char *err, size_t errlen)
{
	const char *vh = net_opt_get(o, "vnet_hdr");
	unsigned int features = 0;
	bool want_vh = true;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "could not open /dev/net/tun: %s", strerror(errno));
		return -1;
	}
	if (ioctl(fd, TUNGETFEATURES, &features) < 0)
		features = 0;
	close(fd);
	if (net_opt_bool(o, "vnet_hdr", true, &want_vh, err, errlen) < 0)
		return -1;
	*flags = IFF_TAP | IFF_NO_PI;
	if (want_vh && (features & IFF_VNET_HDR))
		*flags |= IFF_VNET_HDR;
	else if (want_vh && vh) {
		snprintf(err, errlen, "vnet_hdr=on requested, but the kernel lacks IFF_VNET_HDR");
		return -1;
	}
	if (queues > 1) {
		if (!(features & IFF_MULTI_QUEUE)) {
			snprintf(err, errlen, "queues=%u needs a kernel with multiqueue tap",
				 queues);
			return -1;
		}
		*flags |= IFF_MULTI_QUEUE;
	}
	t->nb->vnet_hdr = *flags & IFF_VNET_HDR;
	t->nb->vnet_hdr_len = t->nb->vnet_hdr ? NET_VNET_HDR_LEN : 0;
	return 0;
}

static int tap_open_new(struct tap *t, const struct net_opts *o, char *err, size_t errlen)
{
	const char *ifname = net_opt_get(o, "ifname");
	const char *script = net_opt_get(o, "script");
	const char *down = net_opt_get(o, "downscript");
	unsigned queues;
	short flags;

	if (net_opt_uint(o, "queues", 1, TAP_MAX_QUEUES, 1, &queues, err, errlen) < 0)
		return -1;
	if (ifname && (!*ifname || strlen(ifname) >= IFNAMSIZ)) {
		snprintf(err, errlen, "ifname= must have 1 to %d characters", IFNAMSIZ - 1);
		return -1;
	}
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname ? ifname : "");
	if (tap_flags(t, o, queues, &flags, err, errlen) < 0)
		return -1;
	if (!script)
		script = TAP_DEFAULT_SCRIPT;
	if (!down)
		down = TAP_DEFAULT_DOWNSCRIPT;
	for (unsigned i = 0; i < queues; i++) {
		if (tap_open_queue(t, i, flags, err, errlen) < 0)
			return -1;
		if (i == 0 && script_enabled(script) &&
		    net_run_script(script, t->ifname, err, errlen) < 0)
			return -1;
	}
	if (script_enabled(down) && !(t->downscript = strdup(down))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void tap_close_fds(struct tap *t)
{
	for (unsigned i = 0; i < t->nqueues; i++)
		if (t->q[i].fd >= 0)
			close(t->q[i].fd);
	t->nqueues = 0;
}

static int tap_open(struct net_backend *nb, const struct net_opts *o, char *err, size_t errlen)
{
	struct tap *t = nb->priv;
	int r;

	t->nb = nb;
	pthread_mutex_init(&t->lock, NULL);
	for (unsigned i = 0; i < TAP_MAX_QUEUES; i++) {
		t->q[i].t = t;
		t->q[i].fd = -1;
	}
	if (net_opt_get(o, "fd"))
		r = tap_open_inherited(t, o, err, errlen);
	else
		r = tap_open_new(t, o, err, errlen);
	for (unsigned i = 0; r == 0 && i < t->nqueues; i++) {
		r = event_loop_add_fd(nb->loop, t->q[i].fd, EPOLLIN, tap_event, &t->q[i]);
		if (r < 0)
			snprintf(err, errlen, "cannot watch the tap fd: %s", strerror(-r));
		else
			t->q[i].watched = true;
	}
	if (r < 0) {
		tap_unwatch(t);
		tap_close_fds(t);
		free(t->downscript);
		return -1;
	}
	return 0;
}

static void tap_close(struct net_backend *nb)
{
	struct tap *t = nb->priv;
	char err[256];

	pthread_mutex_lock(&t->lock);
	tap_unwatch(t);
	pthread_mutex_unlock(&t->lock);
	if (t->downscript && net_run_script(t->downscript, t->ifname, err, sizeof(err)) < 0)
		log_warn("netdev %s: %s", nb->id, err);
	free(t->downscript);
	t->downscript = NULL;
	tap_close_fds(t);
	t->broken = true;
}

const char *net_tap_ifname(const struct net_backend *nb)
{
	return nb->ops == &net_tap_ops ? ((const struct tap *)nb->priv)->ifname : NULL;
}

const struct net_backend_ops net_tap_ops = {
	.type = "tap",
	.keys = tap_keys,
	.priv_size = sizeof(struct tap),
	.open = tap_open,
	.send = tap_send,
	.rx_resume = tap_rx_resume,
	.set_vnet_hdr_len = tap_set_vnet_hdr_len,
	.set_offloads = tap_set_offloads,
	.close = tap_close,
};
