/* Network backends: the host side of a guest NIC (-netdev). A backend is
 * created from its -netdev spec at startup, found by id, and attached to
 * exactly one frontend (a NIC model such as virtio-net). Packets are whole
 * Ethernet frames in iovecs; the optional virtio-net header travels in
 * front of the frame only when the backend says it carries one (tap with
 * IFF_VNET_HDR). All backend I/O happens on the event loop thread: receive
 * callbacks run there, and net_send() may be called from any thread. */
#ifndef NET_NET_H
#define NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct event_loop;

#define NET_MAX_BACKENDS	8
#define NET_MAX_FRAME		65536	/* largest frame a backend hands over */
#define NET_VNET_HDR_LEN	12	/* struct virtio_net_hdr_mrg_rxbuf */

/* Per-direction counters, as the monitor reports them. */
struct net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors;	/* backend -> guest */
	uint64_t tx_packets, tx_bytes, tx_dropped, tx_errors;	/* guest -> backend */
};

/* What the frontend gives its backend. Callbacks run on the loop thread. */
struct net_frontend {
	void *opaque;
	/* May the backend deliver a frame now? (rx buffers available) */
	bool (*can_receive)(void *opaque);
	/* One received frame (with the vnet header in front when
	 * net_has_vnet_hdr()); returns the bytes taken, 0 to have the backend
	 * keep it and retry after net_receive_ready(), or -1 to drop it. */
	ssize_t (*receive)(void *opaque, const struct iovec *iov, int iovcnt);
	/* The backend can take frames again after net_send() returned 0. */
	void (*send_ready)(void *opaque);
};

struct net_backend;

/* Offloads a tap device can be told to accept (TUNSETOFFLOAD). */
struct net_offloads {
	bool csum, tso4, tso6, ecn, ufo;
};

/* Create every -netdev backend of the configuration (called once at
 * startup; errors are one line in err and a negative return). */
int net_init_backends(const char *const *specs, unsigned n, struct event_loop *loop, char *err,
		      size_t errlen);
/* Create the backends of -nic specs: model= and mac= are skipped (they are
 * the NIC's), spec i becomes backend "__nic<i>"; "-nic none" creates none.
 * Both are called by net/'s own DEVICE_LEVEL_PLATFORM hook. */
int net_init_nics(const char *const *specs, unsigned n, struct event_loop *loop, char *err,
		  size_t errlen);
/* Find a backend by id; NULL when there is none. */
struct net_backend *net_find(const char *id);
/* Attach the frontend (once per backend; -EBUSY when taken). Frames that
 * arrive while no frontend is attached are dropped (rx_dropped). */
int net_attach(struct net_backend *nb, const struct net_frontend *fe);

/* Send one frame (vnet header in front when the backend carries one).
 * Returns the bytes sent, 0 when the backend is full (fe->send_ready
 * follows), or a negative errno for a frame that was dropped. */
ssize_t net_send(struct net_backend *nb, const struct iovec *iov, int iovcnt);
/* Batched sending: like net_send, but more frames follow, so the backend
 * may copy this one aside and send it with the next ones in one system
 * call (a stream socket does; the others send at once). It never keeps a
 * reference to iov. The frontend calls net_flush() after the last frame
 * of its batch; a held frame counts as sent (the bytes are returned). */
ssize_t net_send_more(struct net_backend *nb, const struct iovec *iov, int iovcnt);
void net_flush(struct net_backend *nb);
/* The frontend has rx buffers again: resume delivering frames (any
 * thread; cheap to call often). While can_receive() says no or receive()
 * returns 0, the backend holds the frame (and a few more, bounded), stops
 * reading its fd, and waits for this call. */
void net_receive_ready(struct net_backend *nb);

/* vnet header support: whether frames carry it, and its length (10 or 12). */
bool net_has_vnet_hdr(const struct net_backend *nb);
/* Current vnet header length (tap starts at NET_VNET_HDR_LEN); 0 if none. */
unsigned net_vnet_hdr_len(const struct net_backend *nb);
int net_set_vnet_hdr_len(struct net_backend *nb, unsigned len);
int net_set_offloads(struct net_backend *nb, const struct net_offloads *o);

const char *net_id(const struct net_backend *nb);
const char *net_type(const struct net_backend *nb);	/* "tap", "user", "socket" */
void net_get_stats(const struct net_backend *nb, struct net_stats *out);

/* MAC addresses: parse "52:54:00:12:34:56" (or '-' separators; -EINVAL
 * when malformed or multicast); generate a unique one with QEMU's
 * 52:54:00 prefix (unique within the process, varied by pid). */
int net_parse_mac(const char *s, uint8_t mac[6]);
void net_generate_mac(uint8_t mac[6]);

/* Close every backend (downscripts run here). Registered with atexit()
 * by net_init_backends; call it too before an _exit(). Runs the teardown
 * on the loop thread when the loop runs. Frontends' backend pointers stay
 * valid (net_send then returns -ENODEV). */
void net_cleanup(void);

#endif
