/* Internal interface between net/net.c (registry, -netdev spec parsing,
 * frontend plumbing, receive queue, statistics) and the backend types
 * (net/tap.c, net/socket.c, net/slirp.c). Not for device models. */
#ifndef NET_NET_PRIV_H
#define NET_NET_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "net/net.h"
#include "vmm/opts.h"

#define NET_MAX_OPTS	32		/* parameters after the type */
#define NET_SPEC_MAX	65535		/* bytes of a -netdev / -nic spec */
#define NET_ID_MAX	64
#define NET_RXQ_FRAMES	1024		/* frames queued for a busy frontend */
#define NET_RXQ_BYTES	(4u << 20)	/* and their total size */

/* A parsed spec (vmm/opts.h): item 0 is the type, then key=value pairs
 * (",," unescaped, a bare key reads as "on"). */
struct net_opts {
	struct opts opts;
	const char *type;		/* the value of item 0 */
};

/* Option lookups for backend open functions. Each returns 0 (value or
 * default in *out), or -1 with the reason in err (no prefix: net.c adds
 * "-netdev SPEC: "). net_opt_get returns NULL when the key is absent. */
const char *net_opt_get(const struct net_opts *o, const char *key);
int net_opt_bool(const struct net_opts *o, const char *key, bool def, bool *out, char *err,
		 size_t errlen);
int net_opt_uint(const struct net_opts *o, const char *key, unsigned min, unsigned max,
		 unsigned def, unsigned *out, char *err, size_t errlen);
/* Walk the values of a repeatable key: start with *pos = 0. */
const char *net_opt_next(const struct net_opts *o, const char *key, unsigned *pos);

struct net_backend_ops {
	const char *type;
	const char *const *keys;	/* accepted keys besides id (NULL-ended) */
	const char *const *repeatable;	/* keys that may appear more than once */
	size_t priv_size;		/* zeroed per-backend state, nb->priv */
	int (*open)(struct net_backend *nb, const struct net_opts *o, char *err, size_t errlen);
	/* Any thread. len is the iovecs' total (vnet header included); the
	 * frame fits NET_MAX_FRAME. Same returns as net_send(). */
	ssize_t (*send)(struct net_backend *nb, const struct iovec *iov, int iovcnt, size_t len);
	/* Optional (NULL: send): the frame may be copied aside until flush,
	 * which sends what is held (net_send_more, net_flush). */
	ssize_t (*send_more)(struct net_backend *nb, const struct iovec *iov, int iovcnt,
			     size_t len);
	void (*flush)(struct net_backend *nb);
	/* Loop thread: the receive queue drained after the backend was told
	 * to pause (net_rx_deliver returned false); start reading again. */
	void (*rx_resume)(struct net_backend *nb);
	int (*set_vnet_hdr_len)(struct net_backend *nb, unsigned len);
	int (*set_offloads)(struct net_backend *nb, const struct net_offloads *o);
	/* Loop quiet (loop thread or loop not dispatching): unwatch, run
	 * downscripts, close. nb->priv is freed by net.c afterwards. */
	void (*close)(struct net_backend *nb);
};

struct net_rx_frame {
	struct net_rx_frame *next;
	size_t len;
	uint8_t data[];
};

struct net_backend {
	char id[NET_ID_MAX];
	const struct net_backend_ops *ops;
	struct event_loop *loop;
	void *priv;

	struct net_frontend fe;
	bool attached;			/* atomic: fe is valid once set */

	bool vnet_hdr;			/* frames carry a virtio-net header */
	unsigned vnet_hdr_len;

	struct net_stats stats;		/* updated atomically */

	/* Receive queue for a busy frontend: loop thread only. */
	struct net_rx_frame *rxq_head, **rxq_tail;
	unsigned rxq_frames;
	size_t rxq_bytes;
	bool rx_paused;			/* backend was told to stop reading */
	bool flush_scheduled;		/* atomic */
	bool loop_alive;		/* atomic: the loop ran a call of ours */
	bool closed;
};

/* Loop thread: hand one received frame (vnet header in front when
 * nb->vnet_hdr) to the frontend, queueing it when the frontend is busy.
 * Returns false when the backend should stop reading until rx_resume. */
bool net_rx_deliver(struct net_backend *nb, const void *buf, size_t len);
/* Loop thread: the backend can take frames again (after a send returned 0). */
void net_tx_ready(struct net_backend *nb);
/* Count a frame the backend dropped on receive (too long, malformed). */
void net_count_rx_error(struct net_backend *nb);

/* Run a network script as "script ifname" and wait for it: 0 when it
 * exited with status 0, else -1 with the reason in err. */
int net_run_script(const char *script, const char *ifname, char *err, size_t errlen);

/* "HOST:PORT" (empty host: INADDR_ANY, names resolved, IPv4 only). */
struct sockaddr_in;
int net_parse_host_port(const char *s, struct sockaddr_in *out, char *err, size_t errlen);
/* fd=N of a -netdev: an inherited descriptor that must be open. Returns
 * it, or -1 with the reason in err. */
int net_parse_fd(const char *s, char *err, size_t errlen);

/* The tap interface name of a tap backend, else NULL (tests, monitor). */
const char *net_tap_ifname(const struct net_backend *nb);

extern const struct net_backend_ops net_tap_ops;
extern const struct net_backend_ops net_socket_ops;
extern const struct net_backend_ops net_user_ops;

#endif
