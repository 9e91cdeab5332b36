/* virtio-net-pci (virtio network device, type 1): receive and transmit
 * queue pairs and a control queue on the virtio-pci transport, connected
 * to one network backend. Owns the data path (tx gathered straight from
 * guest memory and batched to the backend, rx copied into guest buffers,
 * merged with MRG_RXBUF, timer polling instead of kicks while traffic
 * streams), the receive filter (rx modes, MAC tables), multiqueue
 * steering, the vnet header handling for backends without one,
 * statistics, the guest offloads control command, the host_mtu
 * property (F_MTU), migration state and the
 * "-device virtio-net-pci,netdev=ID,..." and "-nic" creation (with
 * QEMU's iPXE option ROM, romfile=).
 * Everything that touches the backend runs on the event loop thread. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hw/bootorder.h"
#include "hw/pci_rom.h"
#include "hw/virtio_net.h"
#include "hw/virtio_rng.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/opts.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define PCI_CLASS_NETWORK_ETHERNET	0x020000
#define ETH_ALEN			6
#define ETH_HLEN			14
#define MAX_NET_DEVICES			(MAX_DEVICE_SPECS + MAX_NETDEV_SPECS)
#define VIRTIO_F_ANY_LAYOUT		27

/* Notification tuning. Each kick is a guest exit (tens of microseconds
 * on some hosts), so while traffic streams the device looks at its queues
 * from a timer instead of asking for kicks: after a tx pass of at least
 * TX_POLL_BATCH frames, the tx queue again TX_POLL_NS later, and again
 * while looks find frames, and for TX_POLL_EMPTY empty looks in a row
 * (the driver may still be in the exit of its last kick, or preempted);
 * with frames waiting and no rx buffers, the rx queues RX_POLLS times.
 * Intervals double after each empty look (hw/virtq_poll.c), up to 4x
 * (like a NIC's interrupt moderation: a frame waits at most 100 us
 * longer). Then notifications are enabled as usual. Single frames
 * (request/response) never wait for a timer. */
#define TX_POLL_BATCH			8
#define TX_POLL_NS			25000ull
#define TX_POLL_EMPTY			3
#define RX_POLLS			10
#define RX_POLL_NS			25000ull
#define TX_USED_BATCH			16	/* tx used entries published at once */

static struct virtio_net *devices[MAX_NET_DEVICES];
static unsigned n_devices;

/* --- small helpers ------------------------------------------------------- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static bool has(const struct virtio_net *n, unsigned bit)
{
	return n->vp.guest_features & (1ull << bit);
}

/* Copy up to len bytes at offset off of iov[0..cnt) into dst; returns
 * the bytes copied. */
static size_t iov_read_at(const struct iovec *iov, unsigned cnt, uint64_t off, void *dst,
			  size_t len)
{
	size_t done = 0;

	for (unsigned i = 0; i < cnt && done < len; i++) {
		size_t l = iov[i].iov_len, take;

		if (off >= l) {
			off -= l;
			continue;
		}
		take = l - off < len - done ? l - off : len - done;
		memcpy((uint8_t *)dst + done, (const uint8_t *)iov[i].iov_base + off, take);
		done += take;
		off = 0;
	}
	return done;
}

/* Host address of byte off of iov[0..cnt), NULL when beyond it. */
static uint8_t *iov_byte(const struct iovec *iov, unsigned cnt, uint64_t off)
{
	for (unsigned i = 0; i < cnt; i++) {
		if (off < iov[i].iov_len)
			return (uint8_t *)iov[i].iov_base + off;
		off -= iov[i].iov_len;
	}
	return NULL;
}

/* The [skip, end) part of iov[0..cnt) as segments in dst; returns the count. */
static int iov_tail(const struct iovec *iov, unsigned cnt, uint64_t skip, struct iovec *dst)
{
	int out = 0;

	for (unsigned i = 0; i < cnt; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		dst[out].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[out].iov_len = l - skip;
		out++;
		skip = 0;
	}
	return out;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0;

	for (int i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

/* --- features, queues, backend ------------------------------------------- */

unsigned virtio_net_hdr_len(const struct virtio_net *n)
{
	return has(n, VIRTIO_F_VERSION_1) || has(n, VIRTIO_NET_F_MRG_RXBUF) ?
	       VIRTIO_NET_HDR_MRG_LEN : VIRTIO_NET_HDR_LEN;
}

static unsigned active_pairs(const struct virtio_net *n)
{
	return has(n, VIRTIO_NET_F_MQ) ? n->st.curr_pairs : 1;
}

/* The control queue follows the pairs the driver may use (5.1.2). */
static unsigned ctrl_queue(const struct virtio_net *n)
{
	return has(n, VIRTIO_NET_F_MQ) ? 2 * n->st.max_pairs : 2;
}

enum queue_role { QUEUE_UNUSED, QUEUE_RX, QUEUE_TX, QUEUE_CTRL };

static enum queue_role queue_role(const struct virtio_net *n, unsigned q)
{
	unsigned pairs = has(n, VIRTIO_NET_F_MQ) ? n->st.max_pairs : 1;

	if (has(n, VIRTIO_NET_F_CTRL_VQ) && q == ctrl_queue(n))
		return QUEUE_CTRL;
	if (q / 2 >= pairs)
		return QUEUE_UNUSED;
	return q & 1 ? QUEUE_TX : QUEUE_RX;
}

static uint16_t queue_max_size(const struct virtio_net *n, unsigned q)
{
	if (q >= 2 * n->st.max_pairs)
		return VIRTIO_NET_CTRL_QUEUE_SIZE;
	return q & 1 ? n->opts.tx_queue_size : n->opts.rx_queue_size;
}

/* Queues are served only while the driver is up and the function may
 * touch memory. */
static bool device_live(const struct virtio_net *n)
{
	const struct virtio_pci *vp = &n->vp;

	return !vp->broken && (vp->status & VIRTIO_STATUS_DRIVER_OK) &&
	       (pci_get_word(vp->pci.config, PCI_COMMAND) & PCI_COMMAND_MASTER);
}

/* The receive offloads the driver negotiated (GUEST_* feature bits). */
static uint64_t negotiated_guest_offloads(const struct virtio_net *n)
{
	return n->vp.guest_features & VIRTIO_NET_GUEST_OFFLOADS_MASK;
}

/* Tell a vnet-header backend which receive offloads (GUEST_* feature
 * bits) the guest takes; < 0 when it refuses. */
static int apply_guest_offloads(struct virtio_net *n, uint64_t offloads)
{
	struct net_offloads o = {
		.csum = (offloads >> VIRTIO_NET_F_GUEST_CSUM) & 1,
		.tso4 = (offloads >> VIRTIO_NET_F_GUEST_TSO4) & 1,
		.tso6 = (offloads >> VIRTIO_NET_F_GUEST_TSO6) & 1,
		.ecn = (offloads >> VIRTIO_NET_F_GUEST_ECN) & 1,
		.ufo = (offloads >> VIRTIO_NET_F_GUEST_UFO) & 1,
	};

	return n->be_ops->set_offloads(n->be, &o);
}

/* Tell the backend the header length and the offloads the guest accepts,
 * once per negotiation (features are frozen from DRIVER_OK on). The
 * offloads start as the negotiated set; CTRL_GUEST_OFFLOADS_SET changes
 * them until the next reset (a migrated set is kept). */
static void sync_backend(struct virtio_net *n)
{
	uint64_t f = n->vp.guest_features;

	if (!(n->vp.status & VIRTIO_STATUS_DRIVER_OK) || (n->applied && n->applied_features == f))
		return;
	n->applied = true;
	n->applied_features = f;
	if (!n->st.guest_offloads_set)
		n->st.guest_offloads = negotiated_guest_offloads(n);
	n->st.guest_offloads &= negotiated_guest_offloads(n);
	n->st.guest_offloads_set = true;
	if (!n->be_vnet_hdr)
		return;
	if (n->be_ops->set_vnet_hdr_len(n->be, virtio_net_hdr_len(n)) < 0 ||
	    apply_guest_offloads(n, n->st.guest_offloads) < 0)
		log_warn("%s: backend %s refused the header length or offloads", n->ops.name,
			 n->netdev_id ? n->netdev_id : "");
}

/* Only the loop thread talks to the backend; other threads hand over. */
static bool on_loop_thread(const struct virtio_net *n)
{
	return !n->loop || (n->loop_thread_known && pthread_equal(n->loop_thread, pthread_self()));
}

static void note_loop_thread(void *opaque)
{
	struct virtio_net *n = opaque;

	virtio_pci_lock(&n->vp);
	n->loop_thread = pthread_self();
	n->loop_thread_known = true;
	virtio_pci_unlock(&n->vp);
}

/* --- receive filter ------------------------------------------------------ */

static bool mac_in(const uint8_t *table, unsigned count, const uint8_t *mac)
{
	for (unsigned i = 0; i < count; i++)
		if (!memcmp(table + i * ETH_ALEN, mac, ETH_ALEN))
			return true;
	return false;
}

/* Does the guest want a frame for dst? (QEMU's order of checks) */
static bool rx_filter(const struct virtio_net *n, const uint8_t *dst)
{
	static const uint8_t bcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	const struct virtio_net_state *s = &n->st;

	if (s->promisc)
		return true;
	if (!memcmp(dst, bcast, ETH_ALEN))
		return !s->nobcast;
	if (dst[0] & 1) {
		if (s->nomulti)
			return false;
		if (s->allmulti || s->multi_overflow)
			return true;
		return mac_in(s->mac_table + s->uni_count * ETH_ALEN, s->multi_count, dst);
	}
	if (s->nouni)
		return false;
	if (s->alluni || s->uni_overflow || !memcmp(dst, s->mac, ETH_ALEN))
		return true;
	return mac_in(s->mac_table, s->uni_count, dst);
}

/* --- receive path -------------------------------------------------------- */

/* FNV-1a over the IPv4/IPv6 addresses and the TCP/UDP ports, so one
 * flow stays on one queue pair. */
static uint32_t hash_bytes(uint32_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static uint32_t flow_hash(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETH_HLEN;
	uint32_t h = 2166136261u;
	size_t l4 = 0;
	uint16_t type;
	uint8_t proto;

	if (len < ETH_HLEN)
		return 0;
	type = f[12] << 8 | f[13];
	if (type == 0x0800 && len >= ETH_HLEN + 20) {
		h = hash_bytes(h, ip + 12, 8);
		proto = ip[9];
		if (!(ip[6] & 0x3f) && !ip[7])		/* not a fragment */
			l4 = ETH_HLEN + (ip[0] & 0xf) * 4;
	} else if (type == 0x86dd && len >= ETH_HLEN + 40) {
		h = hash_bytes(h, ip + 8, 32);
		proto = ip[6];
		l4 = ETH_HLEN + 40;
	} else {
		return 0;
	}
	if (l4 && (proto == 6 || proto == 17) && len >= l4 + 4)
		h = hash_bytes(h, f + l4, 4);
	return h;
}

/* The rx queue for a frame: its flow's pair, or any active pair with
 * buffers; -1 when none has any. */
static int pick_rx_queue(const struct virtio_net *n, const uint8_t *head, size_t len)
{
	unsigned pairs = active_pairs(n);
	unsigned first = pairs > 1 ? flow_hash(head, len) % pairs : 0;

	for (unsigned i = 0; i < pairs; i++) {
		unsigned q = 2 * ((first + i) % pairs);

		if (virtq_has_work(&n->vp.vqs[q]))
			return q;
	}
	return -1;
}

static bool rx_buffers_available(const struct virtio_net *n)
{
	for (unsigned p = 0; p < active_pairs(n); p++)
		if (virtq_has_work(&n->vp.vqs[2 * p]))
			return true;
	return false;
}

/* Out of rx buffers: ask the driver for a kick on every active rx queue,
 * then look again (it may have added some in between). */
static bool rx_arm(struct virtio_net *n)
{
	for (unsigned p = 0; p < active_pairs(n); p++)
		virtq_enable_notify(&n->vp.vqs[2 * p]);
	return rx_buffers_available(n);
}

static void wake_rx(struct virtio_net *n);

/* Out of rx buffers with a frame waiting: look again from the rx timer
 * (the driver refills while it consumes, no kick needed), or once the
 * looks are used up, ask for a kick (rx_arm). True when buffers are there. */
static bool rx_dry(struct virtio_net *n)
{
	if (!n->rx_timer || n->rx_polls >= RX_POLLS)
		return rx_arm(n);
	if (!n->rx_poll_armed) {
		n->rx_poll_armed = true;
		event_timer_arm(n->rx_timer, clock_ns() + virtq_poll_interval(RX_POLL_NS, n->rx_polls));
	}
	return false;
}

static void rx_poll_timer(void *opaque)
{
	struct virtio_net *n = opaque;

	virtio_pci_lock(&n->vp);
	n->rx_poll_armed = false;
	if (!device_live(n) || !n->rx_blocked) {
		n->rx_polls = 0;
	} else if (rx_buffers_available(n)) {
		wake_rx(n);
	} else {
		n->rx_polls++;
		if (rx_dry(n))
			wake_rx(n);
	}
	virtio_pci_unlock(&n->vp);
}

/* The bytes the guest receives: its header, then the frame. */
struct rx_source {
	const uint8_t *hdr;
	unsigned hdr_len;
	const struct iovec *iov;
	int iovcnt;
	uint64_t skip;			/* backend header in front of the frame */
	uint64_t pos;			/* bytes handed out so far */
};

static size_t rx_source_copy(struct rx_source *s, uint8_t *dst, size_t len)
{
	size_t done = 0;

	if (s->pos < s->hdr_len) {
		done = s->hdr_len - s->pos < len ? s->hdr_len - s->pos : len;
		memcpy(dst, s->hdr + s->pos, done);
	}
	if (done < len) {
		uint64_t off = s->skip + (s->pos + done - s->hdr_len);

		done += iov_read_at(s->iov, s->iovcnt, off, dst + done, len - done);
	}
	s->pos += done;
	return done;
}

/* Fill the writable part of one chain; returns the bytes written. */
static size_t rx_fill_elem(struct rx_source *s, const struct virtq_elem *e, uint64_t left)
{
	size_t written = 0;

	for (unsigned i = e->n_out; i < e->n_out + e->n_in && left; i++) {
		size_t want = e->iov[i].iov_len < left ? e->iov[i].iov_len : left;
		size_t got = rx_source_copy(s, e->iov[i].iov_base, want);

		written += got;
		left -= got;
		if (got < want)
			break;
	}
	return written;
}

static void rx_irq_flush(void *opaque)
{
	struct virtio_net *n = opaque;

	virtio_pci_lock(&n->vp);
	n->rx_irq_scheduled = false;
	for (unsigned q = 0; q < n->ops.num_queues; q++)
		if (n->rx_irq_pending & (1u << q))
			virtio_pci_queue_interrupt(&n->vp, q);
	n->rx_irq_pending = 0;
	virtio_pci_unlock(&n->vp);
}

/* One interrupt per batch: frames delivered in one loop iteration share it. */
static void rx_signal(struct virtio_net *n, unsigned q)
{
	n->rx_irq_pending |= 1u << q;
	if (n->rx_irq_scheduled)
		return;
	if (n->loop && event_loop_call(n->loop, rx_irq_flush, n) == 0) {
		n->rx_irq_scheduled = true;
		return;
	}
	n->rx_irq_pending &= ~(1u << q);
	virtio_pci_queue_interrupt(&n->vp, q);
}

static void rx_violation(struct virtio_net *n, unsigned q, const char *why)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "virtio-net: rx queue %u: %s", q, why);
	virtio_pci_set_needs_reset(&n->vp, msg);
}

/* Copy header + frame into queue q's buffers. Returns 1 delivered, 0 no
 * room (buffers given back), -1 dropped. */
static int rx_into_queue(struct virtio_net *n, unsigned q, struct rx_source *src,
			 uint64_t total)
{
	struct virtq *vq = &n->vp.vqs[q];
	struct virtq_elem *e = n->vp.elem;
	bool merge = has(n, VIRTIO_NET_F_MRG_RXBUF);
	uint8_t *num_buffers[2] = { NULL, NULL };
	uint64_t done = 0;
	uint16_t used = 0, seen;
	size_t got;
	int r;

	virtq_disable_notify(vq);	/* no refill kicks while buffers last */
	while (done < total) {
		r = used < vq->size ? virtq_pop(vq, e) : 0;
		if (r < 0) {
			virtio_pci_set_needs_reset(&n->vp, vq->error);
			return -1;
		}
		if (r == 0) {
			seen = vq->last_avail_idx;
			virtq_unpop(vq, used);
			/* Kick me when more come; if some came meanwhile, retry soon. */
			if (virtq_enable_notify(vq) != seen)
				virtio_pci_kick_later(&n->vp, q);
			return 0;
		}
		if (e->n_out || !e->in_len) {
			rx_violation(n, q, "buffer with readable or no writable descriptors");
			return -1;
		}
		if (used == 0 && e->in_len < src->hdr_len) {
			rx_violation(n, q, "buffer smaller than the virtio-net header");
			return -1;
		}
		if (used == 0 && src->hdr_len == VIRTIO_NET_HDR_MRG_LEN) {
			num_buffers[0] = iov_byte(e->iov, e->n_in, VIRTIO_NET_HDR_NUM_BUFFERS);
			num_buffers[1] = iov_byte(e->iov, e->n_in, VIRTIO_NET_HDR_NUM_BUFFERS + 1);
		}
		got = rx_fill_elem(src, e, total - done);
		virtq_fill(vq, e, got, used);
		used++;
		done += got;
		if (done < total && !merge) {
			virtq_unpop(vq, used);
			log_guest(LOG_GUEST_ERRORS, "virtio-net: %llu-byte frame does not fit a "
				  "%llu-byte rx buffer (no MRG_RXBUF): dropped",
				  (unsigned long long)total, (unsigned long long)e->in_len);
			return -1;
		}
	}
	if (num_buffers[0] && num_buffers[1]) {
		*num_buffers[0] = used;
		*num_buffers[1] = used >> 8;
	}
	virtq_flush(vq, used);
	rx_signal(n, q);
	return 1;
}

static ssize_t receive_locked(struct virtio_net *n, const struct iovec *iov, int iovcnt)
{
	size_t size = iov_total(iov, iovcnt);
	unsigned hdr_len = virtio_net_hdr_len(n);
	unsigned be_hdr = n->be_vnet_hdr ? hdr_len : 0;
	uint8_t hdr[VIRTIO_NET_HDR_MRG_LEN] = { 0 }, head[128];
	struct rx_source src;
	size_t frame, hlen;
	int q, r;

	if (!device_live(n)) {
		n->rx_blocked = true;
		return 0;
	}
	sync_backend(n);
	if (size < be_hdr + ETH_HLEN || size - be_hdr > VIRTIO_NET_MAX_PAYLOAD) {
		n->stats.rx_errors++;
		return -1;
	}
	frame = size - be_hdr;
	hlen = iov_read_at(iov, iovcnt, be_hdr, head, sizeof(head));
	if (!rx_filter(n, head))
		return size;	/* not for this guest: consumed */
	q = pick_rx_queue(n, head, hlen);
	if (q < 0 && rx_dry(n))
		q = pick_rx_queue(n, head, hlen);
	if (q < 0) {
		n->rx_blocked = true;
		return 0;
	}
	if (be_hdr)
		iov_read_at(iov, iovcnt, 0, hdr, be_hdr);
	if (hdr_len == VIRTIO_NET_HDR_MRG_LEN)
		put_le16(hdr + VIRTIO_NET_HDR_NUM_BUFFERS, 1);
	src = (struct rx_source){ .hdr = hdr, .hdr_len = hdr_len, .iov = iov, .iovcnt = iovcnt,
				  .skip = be_hdr };
	r = rx_into_queue(n, q, &src, hdr_len + frame);
	if (r == 0) {
		n->rx_blocked = true;
		return 0;
	}
	if (r < 0) {
		n->stats.rx_dropped++;
		return -1;
	}
	n->stats.rx_packets++;
	n->stats.rx_bytes += frame;
	return size;
}

static bool fe_can_receive(void *opaque)
{
	struct virtio_net *n = opaque;
	bool ok;

	virtio_pci_lock(&n->vp);
	ok = device_live(n) && (rx_buffers_available(n) || rx_dry(n));
	if (ok)
		sync_backend(n);
	else
		n->rx_blocked = true;
	virtio_pci_unlock(&n->vp);
	return ok;
}

static ssize_t fe_receive(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct virtio_net *n = opaque;
	ssize_t r;

	virtio_pci_lock(&n->vp);
	r = receive_locked(n, iov, iovcnt);
	virtio_pci_unlock(&n->vp);
	return r;
}

/* After queue work: a backend told "no room" may deliver again. Called
 * with no scratch element in use (the backend may call receive inside). */
static void wake_rx(struct virtio_net *n)
{
	if (!n->rx_blocked || !device_live(n) || !rx_buffers_available(n))
		return;
	n->rx_blocked = false;
	n->rx_polls = 0;
	n->be_ops->receive_ready(n->be);
}

/* --- transmit path ------------------------------------------------------- */

/* Frames of one pass go out batched when the backend can (it copies what
 * it holds, so the chains may be returned before the flush). */
static ssize_t be_send(struct virtio_net *n, const struct iovec *iov, int cnt)
{
	if (n->be_ops->send_more)
		return n->be_ops->send_more(n->be, iov, cnt);
	return n->be_ops->send(n->be, iov, cnt);
}

static void be_flush(struct virtio_net *n)
{
	if (n->be_ops->flush)
		n->be_ops->flush(n->be);
}

/* Send one chain. Returns 1 done (sent or dropped), 0 backend full,
 * -1 device broken. */
static int tx_one(struct virtio_net *n, unsigned q, const struct virtq_elem *e)
{
	unsigned hdr_len = virtio_net_hdr_len(n);
	uint64_t frame;
	ssize_t r;
	int cnt;

	if (e->n_in || e->out_len < hdr_len) {
		char msg[128];

		snprintf(msg, sizeof(msg), "virtio-net: tx queue %u: chain of %llu bytes with %u "
			 "writable descriptors", q, (unsigned long long)e->out_len, e->n_in);
		virtio_pci_set_needs_reset(&n->vp, msg);
		return -1;
	}
	frame = e->out_len - hdr_len;
	if (!frame || frame > VIRTIO_NET_MAX_PAYLOAD) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: tx frame of %llu bytes dropped",
			  (unsigned long long)frame);
		n->stats.tx_errors++;
		return 1;
	}
	if (n->be_vnet_hdr)
		r = be_send(n, e->iov, e->n_out);	/* header and all, as is */
	else {
		cnt = iov_tail(e->iov, e->n_out, hdr_len, n->tx_iov);
		r = be_send(n, n->tx_iov, cnt);
	}
	if (r == 0)
		return 0;
	if (r < 0) {
		n->stats.tx_dropped++;
		return 1;
	}
	n->stats.tx_packets++;
	n->stats.tx_bytes += frame;
	return 1;
}

/* Send what the driver queued, without kicks while we are at it; at most
 * one ring's worth per pass. Used entries are published in groups, the
 * backend flushed once at the end. polled: called from the poll timer. */
static void process_tx(struct virtio_net *n, unsigned q, bool polled)
{
	struct virtio_pci *vp = &n->vp;
	struct virtq *vq = &vp->vqs[q];
	unsigned done = 0;
	uint16_t filled = 0;
	int r = 0, st = 1;

	n->tx_blocked &= ~(1u << q / 2);
	virtq_disable_notify(vq);
	for (;;) {
		while (done < vq->size && (r = virtq_pop(vq, vp->elem)) == 1) {
			st = tx_one(n, q, vp->elem);
			if (st <= 0)
				break;
			virtq_fill(vq, vp->elem, 0, filled++);
			done++;
			if (filled == TX_USED_BATCH) {
				virtq_flush(vq, filled);
				filled = 0;
			}
		}
		if (filled) {
			virtq_flush(vq, filled);
			filled = 0;
		}
		if (r < 0 || st < 0 || done == vq->size)
			break;
		if (st == 0) {
			virtq_unpop(vq, 1);
			n->tx_blocked |= 1u << q / 2;	/* send_ready resumes */
			break;
		}
		if (virtq_poll_again(&n->tx_poll[q / 2], polled, done))
			break;			/* kicks stay off: the timer looks again */
		virtq_enable_notify(vq);	/* empty: kick me for the next one */
		if (!virtq_has_work(vq))
			break;
		virtq_disable_notify(vq);
	}
	be_flush(n);
	if (r < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
	if (done)
		virtio_pci_queue_interrupt(vp, q);
	if (r == 1 && st > 0 && done == vq->size)
		virtio_pci_kick_later(vp, q);
}

static void tx_poll_timer(void *opaque)
{
	struct virtq_poll *tp = opaque;
	struct virtio_net *n = tp->owner;

	virtio_pci_lock(&n->vp);
	if (device_live(n) && queue_role(n, tp->q) == QUEUE_TX &&
	    virtq_ready(&n->vp.vqs[tp->q]) && !(n->tx_blocked & (1u << tp->q / 2))) {
		sync_backend(n);
		process_tx(n, tp->q, true);
		wake_rx(n);
	}
	virtio_pci_unlock(&n->vp);
}

static void fe_send_ready(void *opaque)
{
	struct virtio_net *n = opaque;
	uint32_t blocked;

	virtio_pci_lock(&n->vp);
	blocked = n->tx_blocked;
	n->tx_blocked = 0;
	for (unsigned p = 0; p < n->st.max_pairs && device_live(n); p++)
		if (blocked & (1u << p) && virtq_ready(&n->vp.vqs[2 * p + 1]))
			process_tx(n, 2 * p + 1, false);
	wake_rx(n);
	virtio_pci_unlock(&n->vp);
}

/* --- control queue ------------------------------------------------------- */

static uint8_t ctrl_rx(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
		       uint64_t dlen)
{
	struct virtio_net_state *s = &n->st;
	bool *modes[] = { &s->promisc, &s->allmulti, &s->alluni, &s->nomulti, &s->nouni,
			  &s->nobcast };
	uint8_t on;

	if (!has(n, VIRTIO_NET_F_CTRL_RX) || cmd > VIRTIO_NET_CTRL_RX_NOBCAST ||
	    (cmd > VIRTIO_NET_CTRL_RX_ALLMULTI && !has(n, VIRTIO_NET_F_CTRL_RX_EXTRA))) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: rx mode command %u not negotiated", cmd);
		return VIRTIO_NET_ERR;
	}
	if (dlen != 1) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: rx mode command with %llu data bytes",
			  (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	iov_read_at(e->iov, e->n_out, 2, &on, 1);
	*modes[cmd] = on != 0;
	return VIRTIO_NET_OK;
}

static uint32_t read_le32_at(const struct virtq_elem *e, uint64_t off)
{
	uint8_t b[4] = { 0 };

	iov_read_at(e->iov, e->n_out, off, b, 4);
	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Two tables, unicast then multicast: le32 entries, entries * 6 bytes. */
static uint8_t ctrl_mac_table(struct virtio_net *n, const struct virtq_elem *e, uint64_t dlen)
{
	struct virtio_net_state *s = &n->st;
	uint8_t table[sizeof(s->mac_table)];
	uint64_t uni, multi, off = 2, uni_bytes;
	unsigned in_use = 0;
	bool uni_over = false, multi_over = false;

	if (dlen < 8)
		goto bad;
	uni = read_le32_at(e, off);
	uni_bytes = 4 + ETH_ALEN * uni;
	if (uni_bytes > dlen - 4)
		goto bad;
	multi = read_le32_at(e, off + uni_bytes);
	if (uni_bytes + 4 + ETH_ALEN * multi != dlen)
		goto bad;
	if (uni <= VIRTIO_NET_MAC_TABLE_ENTRIES) {
		iov_read_at(e->iov, e->n_out, off + 4, table, ETH_ALEN * uni);
		in_use = uni;
	} else {
		uni_over = true;
	}
	if (multi <= VIRTIO_NET_MAC_TABLE_ENTRIES - in_use)
		iov_read_at(e->iov, e->n_out, off + uni_bytes + 4, table + in_use * ETH_ALEN,
			    ETH_ALEN * multi);
	else
		multi_over = true;
	memset(s->mac_table, 0, sizeof(s->mac_table));
	s->uni_count = in_use;
	s->multi_count = multi_over ? 0 : multi;
	memcpy(s->mac_table, table, (s->uni_count + s->multi_count) * ETH_ALEN);
	s->uni_overflow = uni_over;
	s->multi_overflow = multi_over;
	return VIRTIO_NET_OK;
bad:
	log_guest(LOG_GUEST_ERRORS, "virtio-net: MAC table command of %llu bytes is malformed",
		  (unsigned long long)dlen);
	return VIRTIO_NET_ERR;
}

static void write_config(struct virtio_net *n)
{
	uint8_t *c = n->vp.config;

	memcpy(c + VIRTIO_NET_CFG_MAC, n->st.mac, ETH_ALEN);
	put_le16(c + VIRTIO_NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP);
	put_le16(c + VIRTIO_NET_CFG_MAX_PAIRS, n->st.max_pairs);
	put_le16(c + VIRTIO_NET_CFG_MTU, n->opts.host_mtu);
}

static uint8_t ctrl_mac(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
			uint64_t dlen)
{
	if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && has(n, VIRTIO_NET_F_CTRL_RX))
		return ctrl_mac_table(n, e, dlen);
	if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET && has(n, VIRTIO_NET_F_CTRL_MAC_ADDR)) {
		if (dlen != ETH_ALEN) {
			log_guest(LOG_GUEST_ERRORS, "virtio-net: MAC address command of %llu bytes",
				  (unsigned long long)dlen);
			return VIRTIO_NET_ERR;
		}
		iov_read_at(e->iov, e->n_out, 2, n->st.mac, ETH_ALEN);
		write_config(n);
		return VIRTIO_NET_OK;
	}
	log_guest(LOG_GUEST_ERRORS, "virtio-net: MAC command %u not negotiated", cmd);
	return VIRTIO_NET_ERR;
}

static uint8_t ctrl_mq(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
		       uint64_t dlen)
{
	uint8_t b[2];
	unsigned pairs;

	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || !has(n, VIRTIO_NET_F_MQ) || dlen != 2) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: MQ command %u (%llu bytes) refused", cmd,
			  (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	iov_read_at(e->iov, e->n_out, 2, b, 2);
	pairs = b[0] | b[1] << 8;
	if (pairs < 1 || pairs > n->st.max_pairs) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: %u queue pairs requested, %u offered",
			  pairs, n->st.max_pairs);
		return VIRTIO_NET_ERR;
	}
	n->st.curr_pairs = pairs;
	return VIRTIO_NET_OK;
}

/* A le64 of GUEST_* feature bits: the receive offloads from now on, a
 * subset of the negotiated ones (QEMU accepts longer data, as here). */
static uint8_t ctrl_guest_offloads(struct virtio_net *n, uint8_t cmd, const struct virtq_elem *e,
				   uint64_t dlen)
{
	uint8_t b[8];
	uint64_t want = 0;

	if (cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET ||
	    !has(n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || dlen < 8) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: guest offloads command %u (%llu bytes) "
			  "refused", cmd, (unsigned long long)dlen);
		return VIRTIO_NET_ERR;
	}
	iov_read_at(e->iov, e->n_out, 2, b, 8);
	for (int i = 7; i >= 0; i--)
		want = want << 8 | b[i];
	if (want & ~negotiated_guest_offloads(n)) {
		log_guest(LOG_GUEST_ERRORS, "virtio-net: guest offloads 0x%llx not negotiated",
			  (unsigned long long)want);
		return VIRTIO_NET_ERR;
	}
	if (n->be_vnet_hdr && apply_guest_offloads(n, want) < 0) {
		log_warn("%s: backend %s refused the offloads", n->ops.name,
			 n->netdev_id ? n->netdev_id : "");
		return VIRTIO_NET_ERR;
	}
	n->st.guest_offloads = want;
	n->st.guest_offloads_set = true;
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_command(struct virtio_net *n, const struct virtq_elem *e)
{
	uint8_t cmd[2];
	uint64_t dlen = e->out_len - 2;

	iov_read_at(e->iov, e->n_out, 0, cmd, 2);
	switch (cmd[0]) {
	case VIRTIO_NET_CTRL_RX:
		return ctrl_rx(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_MAC:
		return ctrl_mac(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_MQ:
		return ctrl_mq(n, cmd[1], e, dlen);
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS:
		return ctrl_guest_offloads(n, cmd[1], e, dlen);
	}
	log_guest(LOG_GUEST_ERRORS, "virtio-net: unsupported control class %u", cmd[0]);
	return VIRTIO_NET_ERR;
}

static void process_ctrl(struct virtio_net *n, unsigned q)
{
	struct virtio_pci *vp = &n->vp;
	struct virtq *vq = &vp->vqs[q];
	struct virtq_elem *e = vp->elem;
	unsigned done = 0;
	int r = 0;

	while (done < vq->size && (r = virtq_pop(vq, e)) == 1) {
		uint8_t ack;

		if (e->out_len < 2 || !e->in_len) {
			virtio_pci_set_needs_reset(vp, "virtio-net: control command without class, "
						   "command or ack byte");
			return;
		}
		ack = ctrl_command(n, e);
		*(uint8_t *)iov_byte(e->iov + e->n_out, e->n_in, 0) = ack;
		virtq_push(vq, e, 1);
		done++;
	}
	if (r < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
	if (done)
		virtio_pci_queue_interrupt(vp, q);
	if (r == 1 && done == vq->size)
		virtio_pci_kick_later(vp, q);
}

/* --- transport hooks ----------------------------------------------------- */

void virtio_net_process(struct virtio_pci *vp, unsigned q)
{
	struct virtio_net *n = vp->opaque;

	if (!on_loop_thread(n)) {
		virtio_pci_kick_later(vp, q);	/* e.g. the kicks of DRIVER_OK */
		return;
	}
	sync_backend(n);
	switch (queue_role(n, q)) {
	case QUEUE_TX:
		process_tx(n, q, false);
		break;
	case QUEUE_CTRL:
		process_ctrl(n, q);
		break;
	case QUEUE_RX:		/* new buffers: wake_rx below */
	case QUEUE_UNUSED:
		break;
	}
	wake_rx(n);
}

static void virtio_net_reset(struct virtio_pci *vp)
{
	struct virtio_net *n = vp->opaque;
	struct virtio_net_state *s = &n->st;

	for (unsigned q = 0; q < n->ops.num_queues; q++) {
		virtq_reset(&vp->vqs[q], queue_max_size(n, q));
		vp->vqs[q].mem = vp->mem;
	}
	memcpy(s->mac, n->opts.mac, ETH_ALEN);
	s->promisc = true;	/* QEMU's reset state: a driver without CTRL_RX sees all */
	s->allmulti = s->alluni = s->nomulti = s->nouni = s->nobcast = false;
	s->uni_count = s->multi_count = 0;
	s->uni_overflow = s->multi_overflow = false;
	memset(s->mac_table, 0, sizeof(s->mac_table));
	s->curr_pairs = 1;
	s->guest_offloads = 0;		/* the negotiated set once features are known */
	s->guest_offloads_set = false;
	n->applied = false;
	n->tx_blocked = 0;
	n->rx_irq_pending = 0;
	n->rx_polls = 0;
	write_config(n);
}

/* Legacy drivers without CTRL_MAC_ADDR set the MAC through the config
 * space; everything else there is read-only. */
static void virtio_net_config_write(struct virtio_pci *vp, unsigned off, unsigned size)
{
	struct virtio_net *n = vp->opaque;

	if (off < ETH_ALEN && !has(n, VIRTIO_F_VERSION_1) && !has(n, VIRTIO_NET_F_CTRL_MAC_ADDR))
		memcpy(n->st.mac, vp->config + VIRTIO_NET_CFG_MAC, ETH_ALEN);
	write_config(n);
}

/* --- setup --------------------------------------------------------------- */

void virtio_net_default_opts(struct virtio_net_opts *o)
{
	*o = (struct virtio_net_opts){
		.pairs = 1,
		.vectors = -1,
		.rx_queue_size = VIRTIO_NET_QUEUE_SIZE,
		.tx_queue_size = VIRTIO_NET_QUEUE_SIZE,
		.mq = false,
		.ctrl_vq = true,
		.mrg_rxbuf = true,
		.csum = true,
		.guest_csum = true,
		.gso = true,
		.host_tso4 = true,
		.host_tso6 = true,
		.guest_tso4 = true,
		.guest_tso6 = true,
	};
}

static uint64_t bit(unsigned b)
{
	return 1ull << b;
}

/* Offloads exist only when the backend carries the vnet header. UFO is
 * not offered: Linux taps no longer take it (QEMU probes; we cannot). */
static uint64_t offload_features(const struct virtio_net_opts *o)
{
	uint64_t f = 0;

	if (o->csum) {
		f |= bit(VIRTIO_NET_F_CSUM);
		if (o->gso)
			f |= bit(VIRTIO_NET_F_GSO) | bit(VIRTIO_NET_F_HOST_ECN);
		if (o->host_tso4)
			f |= bit(VIRTIO_NET_F_HOST_TSO4);
		if (o->host_tso6)
			f |= bit(VIRTIO_NET_F_HOST_TSO6);
	}
	if (o->guest_csum) {
		f |= bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_ECN);
		if (o->guest_tso4)
			f |= bit(VIRTIO_NET_F_GUEST_TSO4);
		if (o->guest_tso6)
			f |= bit(VIRTIO_NET_F_GUEST_TSO6);
	}
	return f;
}

static uint64_t device_features(const struct virtio_net_opts *o, bool vnet_hdr, unsigned pairs)
{
	/* Frames may be laid out over descriptors in any way (legacy drivers
	 * need the bit to put the header in front of the frame). */
	uint64_t f = bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_F_ANY_LAYOUT);

	if (o->mrg_rxbuf)
		f |= bit(VIRTIO_NET_F_MRG_RXBUF);
	if (o->ctrl_vq) {
		f |= bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX) |
		     bit(VIRTIO_NET_F_CTRL_RX_EXTRA) | bit(VIRTIO_NET_F_CTRL_MAC_ADDR);
		if (pairs > 1)
			f |= bit(VIRTIO_NET_F_MQ);
	}
	if (vnet_hdr)
		f |= offload_features(o);
	/* QEMU's default: on, needs the control queue and a receive offload */
	if ((f & bit(VIRTIO_NET_F_CTRL_VQ)) && (f & VIRTIO_NET_GUEST_OFFLOADS_MASK))
		f |= bit(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
	if (o->host_mtu)
		f |= bit(VIRTIO_NET_F_MTU);
	return f;
}

static bool queue_size_ok(unsigned s)
{
	return s >= VIRTIO_NET_QUEUE_SIZE && s <= VIRTQ_MAX_SIZE && !(s & (s - 1));
}

/* vectors=0: no MSI-X at all (INTx + ISR), as in QEMU. The MSI-X
 * capability is the transport's last: unlink it and keep it disabled. */
static int set_vectors(struct virtio_net *n, unsigned vectors)
{
	struct virtio_pci *vp = &n->vp;
	uint8_t *cfg = vp->pci.config;

	if (vectors) {
		vp->msix_vectors = vectors;
		pci_set_word(cfg, vp->msix_cap + 2, vectors - 1);
		return 0;
	}
	if (cfg[vp->pci_cfg_cap + 1] != vp->msix_cap || cfg[vp->msix_cap + 1])
		return -EINVAL;
	cfg[vp->pci_cfg_cap + 1] = 0;
	pci_set_word(vp->pci.wmask, vp->msix_cap + 2, 0);
	pci_set_word(cfg, vp->msix_cap + 2, 0);
	vp->msix_vectors = 0;
	return 0;
}

/* Timers of the notification polling (see TX_POLL_NS); they live as long
 * as the device. */
static int create_poll_timers(struct virtio_net *n, unsigned pairs)
{
	for (unsigned p = 0; p < pairs; p++)
		if (virtq_poll_init(&n->tx_poll[p], n->loop, tx_poll_timer, n, 2 * p + 1,
				    TX_POLL_NS, TX_POLL_BATCH, TX_POLL_EMPTY) < 0)
			return -ENOMEM;
	n->rx_timer = event_timer_new(n->loop, rx_poll_timer, n);
	return n->rx_timer ? 0 : -ENOMEM;
}

int virtio_net_init(struct virtio_net *n, const struct virtio_net_opts *o,
		    const struct virtio_net_backend_ops *be_ops, void *be,
		    const struct guest_memory *mem, struct event_loop *loop)
{
	unsigned pairs = o->mq && o->ctrl_vq ? o->pairs : 1;
	int r;

	if (!o->pairs || o->pairs > VIRTIO_NET_MAX_PAIRS || !queue_size_ok(o->rx_queue_size) ||
	    !queue_size_ok(o->tx_queue_size) ||
	    (o->host_mtu && (o->host_mtu < VIRTIO_NET_MIN_MTU || o->host_mtu > VIRTIO_NET_MAX_MTU)))
		return -EINVAL;
	memset(n, 0, offsetof(struct virtio_net, tx_iov));
	n->opts = *o;
	n->be_ops = be_ops;
	n->be = be;
	n->loop = loop;
	n->be_vnet_hdr = be_ops->has_vnet_hdr(be);
	n->st.max_pairs = pairs;
	n->ops = (struct virtio_dev_ops){
		.name = "virtio-net-pci",
		.device_type = VIRTIO_ID_NET,
		.transitional_id = VIRTIO_NET_PCI_ID,
		.class_code = PCI_CLASS_NETWORK_ETHERNET,
		.features = device_features(o, n->be_vnet_hdr, pairs),
		.num_queues = 2 * pairs + (o->ctrl_vq ? 1 : 0),
		.queue_size = o->rx_queue_size > o->tx_queue_size ? o->rx_queue_size :
								    o->tx_queue_size,
		.config_size = VIRTIO_NET_CFG_SIZE,
		.queue_notify = virtio_net_process,
		.config_write = virtio_net_config_write,
		.reset = virtio_net_reset,
	};
	if (o->vectors > VIRTIO_MSIX_MAX)
		return -EINVAL;
	r = virtio_pci_init(&n->vp, &n->ops, n, mem);
	if (r < 0)
		return r;
	if (o->vectors >= 0 && set_vectors(n, o->vectors) < 0)
		return -EINVAL;
	n->fe = (struct net_frontend){
		.opaque = n,
		.can_receive = fe_can_receive,
		.receive = fe_receive,
		.send_ready = fe_send_ready,
	};
	r = be_ops->attach(be, &n->fe);
	if (r < 0)
		return r;
	if (loop && event_loop_call(loop, note_loop_thread, n) < 0)
		return -ENOMEM;
	return loop ? create_poll_timers(n, pairs) : 0;
}

/* --- statistics ---------------------------------------------------------- */

void virtio_net_get_stats(struct virtio_net *n, struct net_stats *out)
{
	virtio_pci_lock(&n->vp);
	*out = n->stats;
	virtio_pci_unlock(&n->vp);
}

unsigned virtio_net_count(void)
{
	return n_devices;
}

const char *virtio_net_stats(unsigned i, struct net_stats *out)
{
	if (i >= n_devices)
		return NULL;
	virtio_net_get_stats(devices[i], out);
	return devices[i]->netdev_id ? devices[i]->netdev_id : "";
}

/* --- migration state ----------------------------------------------------- */

static int virtio_net_post_load(void *opaque)
{
	struct virtio_net_state *s = opaque;

	if (s->uni_count + s->multi_count > VIRTIO_NET_MAC_TABLE_ENTRIES)
		return -EINVAL;
	if (s->curr_pairs < 1 || s->curr_pairs > s->max_pairs)
		return -EINVAL;
	if (s->guest_offloads & ~VIRTIO_NET_GUEST_OFFLOADS_MASK)
		return -EINVAL;
	return 0;
}

static const struct vmstate_field virtio_net_fields[] = {
	VMSTATE_U8_ARRAY(struct virtio_net_state, mac),
	VMSTATE_BOOL(struct virtio_net_state, promisc),
	VMSTATE_BOOL(struct virtio_net_state, allmulti),
	VMSTATE_BOOL(struct virtio_net_state, alluni),
	VMSTATE_BOOL(struct virtio_net_state, nomulti),
	VMSTATE_BOOL(struct virtio_net_state, nouni),
	VMSTATE_BOOL(struct virtio_net_state, nobcast),
	VMSTATE_U32_MAX(struct virtio_net_state, uni_count, VIRTIO_NET_MAC_TABLE_ENTRIES),
	VMSTATE_U32_MAX(struct virtio_net_state, multi_count, VIRTIO_NET_MAC_TABLE_ENTRIES),
	VMSTATE_BOOL(struct virtio_net_state, uni_overflow),
	VMSTATE_BOOL(struct virtio_net_state, multi_overflow),
	VMSTATE_U8_ARRAY(struct virtio_net_state, mac_table),
	VMSTATE_U16_MAX(struct virtio_net_state, curr_pairs, VIRTIO_NET_MAX_PAIRS),
	VMSTATE_U64(struct virtio_net_state, guest_offloads),
	VMSTATE_BOOL(struct virtio_net_state, guest_offloads_set),
};
const struct vmstate_desc virtio_net_vmstate =
	VMSTATE_DESC("virtio-net", 2, virtio_net_fields, virtio_net_post_load);

/* --- the net/ layer as the backend ---------------------------------------- */

static int nd_attach(void *be, const struct net_frontend *fe)
{
	return net_attach(be, fe);
}

static ssize_t nd_send(void *be, const struct iovec *iov, int iovcnt)
{
	return net_send(be, iov, iovcnt);
}

static ssize_t nd_send_more(void *be, const struct iovec *iov, int iovcnt)
{
	return net_send_more(be, iov, iovcnt);
}

static void nd_flush(void *be)
{
	net_flush(be);
}

static void nd_receive_ready(void *be)
{
	net_receive_ready(be);
}

static bool nd_has_vnet_hdr(void *be)
{
	return net_has_vnet_hdr(be);
}

static int nd_set_vnet_hdr_len(void *be, unsigned len)
{
	return net_set_vnet_hdr_len(be, len);
}

static int nd_set_offloads(void *be, const struct net_offloads *o)
{
	return net_set_offloads(be, o);
}

const struct virtio_net_backend_ops virtio_net_netdev_ops = {
	.attach = nd_attach,
	.send = nd_send,
	.send_more = nd_send_more,
	.flush = nd_flush,
	.receive_ready = nd_receive_ready,
	.has_vnet_hdr = nd_has_vnet_hdr,
	.set_vnet_hdr_len = nd_set_vnet_hdr_len,
	.set_offloads = nd_set_offloads,
};

/* --- command line -------------------------------------------------------- */

#define DEV_NAME "virtio-net-pci"
/* QEMU 7.2's romfile default for virtio-net-pci (Debian: ipxe-qemu). */
#define DEFAULT_ROMFILE "efi-virtio.rom"
#define ROMFILE_MAX 1024

static int opt_bool(const char *what, const struct opts *p, const char *key, bool *out)
{
	const char *bad;

	if (opts_get_bool(p, key, out, &bad) == 0)
		return 0;
	log_error("%s: %s must be on or off", what, key);
	return -EINVAL;
}

static int opt_uint(const char *what, const struct opts *p, const char *key, unsigned min,
		    unsigned max, unsigned *out)
{
	uint64_t x = *out;
	const char *bad;

	if (opts_get_uint(p, key, min, max, &x, &bad) < 0) {
		log_error("%s: %s must be a number from %u to %u", what, key, min, max);
		return -EINVAL;
	}
	*out = x;
	return 0;
}

/* A -netdev or -nic spec ("TYPE,key=value,..."). */
static int parse_netdev_spec(struct opts *p, const char *spec, const char *what)
{
	const struct opts_syntax syn = { .implied_key = "type", .max_len = 65535 };
	char err[128];

	if (opts_parse(p, spec, &syn, err, sizeof(err)) < 0) {
		log_error("%s: %s", what, err);
		return -EINVAL;
	}
	return 0;
}

/* The queues= of the backend's spec (-netdev id=ID, or -nic i). */
static int backend_pairs(const struct vm_config *cfg, const char *id, const char *nic_spec,
			 unsigned *pairs)
{
	struct opts p = { 0 };
	const char *v;
	int r = 0;

	*pairs = 1;
	if (nic_spec)
		r = parse_netdev_spec(&p, nic_spec, "-nic");
	for (unsigned i = 0; !nic_spec && r == 0 && i < cfg->n_netdevs; i++) {
		r = parse_netdev_spec(&p, cfg->netdevs[i], "-netdev");
		if (r == 0 && (v = opts_get(&p, "id")) && !strcmp(v, id))
			break;
		opts_free(&p);
	}
	if (r == 0 && opt_uint("-netdev", &p, "queues", 1, 1024, pairs) < 0)
		r = -EINVAL;
	opts_free(&p);
	if (r == 0 && *pairs > VIRTIO_NET_MAX_PAIRS) {
		log_error("-device %s: netdev %s has queues=%u; at most %d queue pairs are "
			  "supported", DEV_NAME, id, *pairs, VIRTIO_NET_MAX_PAIRS);
		r = -EINVAL;
	}
	return r;
}

static const char *const bool_keys[] = {
	"mq", "ctrl_vq", "mrg_rxbuf", "csum", "guest_csum", "gso", "host_tso4", "host_tso6",
	"guest_tso4", "guest_tso6", "packed",
};

static const char *const device_keys[] = {
	"netdev", "mac", "mq", "vectors", "csum", "guest_csum", "gso", "host_tso4", "host_tso6",
	"guest_tso4", "guest_tso6", "mrg_rxbuf", "ctrl_vq", "rx_queue_size", "tx_queue_size",
	"packed", "bootindex", "romfile", "bus", "host_mtu", NULL,
};
DEVICE_MODEL(virtio_net_model, .name = DEV_NAME, .keys = device_keys,
	     .usage = DEV_NAME ",netdev=ID[,addr=SLOT,mac=MAC,mq=on,vectors=N,bootindex=N,"
		      "romfile=FILE,host_mtu=N,csum=,guest_csum=,host_tso4=,guest_tso4=,mrg_rxbuf=,"
		      "ctrl_vq=,rx_queue_size=N,tx_queue_size=N,packed=on]")

static bool *bool_opt(struct virtio_net_opts *o, unsigned i)
{
	bool *fields[] = { &o->mq, &o->ctrl_vq, &o->mrg_rxbuf, &o->csum, &o->guest_csum, &o->gso,
			   &o->host_tso4, &o->host_tso6, &o->guest_tso4, &o->guest_tso6,
			   &o->packed };

	return fields[i];
}

static int parse_mac(const char *what, const struct opts *p, uint8_t mac[6])
{
	const char *v = opts_get(p, "mac");

	if (!v) {
		net_generate_mac(mac);
		return 0;
	}
	if (net_parse_mac(v, mac) < 0 || (mac[0] & 1)) {
		log_error("%s: invalid mac '%s' (a unicast address like 52:54:00:12:34:56)", what,
			  v);
		return -EINVAL;
	}
	return 0;
}

static int parse_opts(const char *what, const struct opts *p, struct virtio_net_opts *o)
{
	unsigned rxs = VIRTIO_NET_QUEUE_SIZE, txs = VIRTIO_NET_QUEUE_SIZE, vectors = 0;

	virtio_net_default_opts(o);
	for (unsigned i = 0; i < sizeof(bool_keys) / sizeof(bool_keys[0]); i++)
		if (opt_bool(what, p, bool_keys[i], bool_opt(o, i)) < 0)
			return -EINVAL;
	if (parse_mac(what, p, o->mac) < 0 ||
	    opt_uint(what, p, "vectors", 0, VIRTIO_MSIX_MAX, &vectors) < 0 ||
	    opt_uint(what, p, "rx_queue_size", 0, 1u << 16, &rxs) < 0 ||
	    opt_uint(what, p, "tx_queue_size", 0, 1u << 16, &txs) < 0 ||
	    opt_uint(what, p, "host_mtu", VIRTIO_NET_MIN_MTU, VIRTIO_NET_MAX_MTU,
		     &o->host_mtu) < 0)
		return -EINVAL;
	if (!queue_size_ok(rxs) || !queue_size_ok(txs)) {
		log_error("%s: rx_queue_size and tx_queue_size must be powers of 2 from %d to %d",
			  what, VIRTIO_NET_QUEUE_SIZE, VIRTQ_MAX_SIZE);
		return -EINVAL;
	}
	o->rx_queue_size = rxs;
	o->tx_queue_size = txs;
	o->vectors = opts_find(p, "vectors") ? (int)vectors : -1;
	return 0;
}

/* The option ROM romfile names (NULL or empty: none), read once: *data
 * stays allocated for the device's lifetime. QEMU refuses a device whose
 * ROM cannot be found, its default one included. */
static int load_romfile(const char *what, const char *romfile, uint8_t **data, size_t *len)
{
	char err[512];

	*data = NULL;
	*len = 0;
	if (!romfile || !romfile[0])
		return 0;
	if (pci_rom_load(romfile, data, len, err, sizeof(err)) < 0) {
		log_error("%s: %s", what, err);
		return -EINVAL;
	}
	return 0;
}

/* Put a virtio-net-pci for backend id on the VM, with option ROM romfile:
 * NULL for QEMU's default (patched to the device's IDs as QEMU does for
 * default ROMs only), "" for none. */
static int create_net(struct vm *vm, const char *what, const char *id, const char *nic_spec,
		      struct virtio_net_opts *o, int slot, const char *romfile)
{
	bool default_rom = !romfile;
	struct net_backend *nb = net_find(id);
	struct virtio_net *n;
	uint8_t *rom;
	size_t rom_len;
	int r;

	if (!nb) {
		log_error("%s: no -netdev with id=%s", what, id);
		return -EINVAL;
	}
	if (backend_pairs(vm->cfg, id, nic_spec, &o->pairs) < 0)
		return -EINVAL;
	if (n_devices == MAX_NET_DEVICES) {
		log_error("%s: too many network devices", what);
		return -ENOSPC;
	}
	if (default_rom)
		romfile = DEFAULT_ROMFILE;
	if (load_romfile(what, romfile, &rom, &rom_len) < 0)
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n) {
		free(rom);
		return -ENOMEM;
	}
	r = virtio_net_init(n, o, &virtio_net_netdev_ops, nb, &vm->mem, vm->loop);
	if (r < 0)
		free(rom);
	if (r == -EBUSY) {
		log_error("%s: netdev %s is already in use", what, id);
		return r;
	}
	if (r < 0) {
		log_error("%s: cannot create the device: %s", what, strerror(-r));
		return r;
	}
	n->netdev_id = strdup(id);
	if (rom && default_rom)
		pci_rom_patch_ids(rom, rom_len, pci_get_word(n->vp.pci.config, PCI_VENDOR_ID),
				  pci_get_word(n->vp.pci.config, PCI_DEVICE_ID));
	if (rom && pci_register_rom(&n->vp.pci, rom, rom_len) < 0) {
		log_error("%s: romfile \"%s\" cannot be used", what, romfile);
		free(rom);
		return -EINVAL;
	}
	virtio_pci_offer_packed(&n->vp, o->packed);
	r = virtio_pci_realize(&n->vp, vm, slot);	/* logs its errors */
	if (r < 0)
		return r;
	vmstate_register(&virtio_net_vmstate, &n->st, sizeof(n->st), n->vp.pci.devfn);
	devices[n_devices++] = n;
	return 0;
}

/* bootindex=N (QEMU's default -1: not in the boot order), romfile=
 * (*romfile NULL: absent, QEMU's default iPXE ROM; empty: no option ROM),
 * and bus=, only the root bus "pci.0" (libvirt always writes it). */
static int parse_boot_props(const char *what, const struct opts *p, int32_t *bootindex,
			    const char **romfile)
{
	const char *v = opts_get(p, "bus");

	if (v && strcmp(v, "pci.0")) {
		log_error("%s: Bus '%s' not found (only pci.0)", what, v);
		return -EINVAL;
	}
	v = opts_get(p, "bootindex");
	*bootindex = -1;
	if (v && bootorder_parse_index(v, bootindex) < 0) {
		log_error("%s: Parameter 'bootindex' expects integer", what);
		return -EINVAL;
	}
	*romfile = opts_get(p, "romfile");
	if (*romfile && strlen(*romfile) >= ROMFILE_MAX) {
		log_error("%s: romfile name too long", what);
		return -EINVAL;
	}
	return 0;
}

/* QEMU's firmware path of a virtio-net-pci (PCI class 0x0200):
 * /pci@i0cf8/ethernet@SLOT/ethernet-phy@0. */
static int register_bootindex(const struct virtio_net *n, const char *spec, int32_t bootindex)
{
	char what[256];

	if (bootindex < 0)
		return 0;
	snprintf(what, sizeof(what), "-device %s", spec);
	return bootorder_register_pci(what, bootindex, "ethernet", n->vp.pci.devfn,
				      BOOTORDER_SUFFIX_NET);
}

static int device_spec_net(struct vm *vm, const char *spec)
{
	const char *what = "-device " DEV_NAME, *id, *romfile;
	struct virtio_net_opts o;
	struct opts p;
	int32_t bootindex;
	int slot, r;

	if (virtio_spec_parse(&p, spec, DEV_NAME) < 0)
		return -EINVAL;
	r = virtio_opts_slot(&p, DEV_NAME, &slot) < 0 || parse_opts(what, &p, &o) < 0 ||
	    parse_boot_props(what, &p, &bootindex, &romfile) < 0 ? -EINVAL : 0;
	id = opts_get(&p, "netdev");
	if (r == 0 && (!id || !id[0])) {
		log_error("%s: netdev=ID is required", what);
		r = -EINVAL;
	}
	if (r == 0)
		r = create_net(vm, what, id, NULL, &o, slot, romfile);
	if (r == 0 && register_bootindex(devices[n_devices - 1], spec, bootindex) < 0)
		r = -EINVAL;
	opts_free(&p);
	return r;
}

/* -nic TYPE[,model=virtio-net-pci][,mac=...]: backend "__nic<i>"; the
 * device has QEMU's default option ROM, as QEMU's -nic gives it. */
static int nic_spec_net(struct vm *vm, const char *spec, unsigned i)
{
	struct virtio_net_opts o;
	const char *model, *type;
	struct opts p;
	char id[16];
	int r = 0;

	if (parse_netdev_spec(&p, spec, "-nic") < 0)
		return -EINVAL;
	type = opts_get(&p, "type");
	if (type && !strcmp(type, "none")) {	/* no backend, no NIC */
		opts_free(&p);
		return 0;
	}
	model = opts_get(&p, "model");
	if (model && strcmp(model, DEV_NAME) && strcmp(model, "virtio")) {
		log_error("-nic: model %s is not supported (only " DEV_NAME ")", model);
		r = -EINVAL;
	}
	virtio_net_default_opts(&o);
	if (r == 0 && parse_mac("-nic", &p, o.mac) < 0)
		r = -EINVAL;
	opts_free(&p);
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "__nic%u", i);
	return create_net(vm, "-nic", id, spec, &o, -1, NULL);
}

static int virtio_net_device_init(struct vm *vm)
{
	size_t nlen = strlen(DEV_NAME);
	int r;

	for (unsigned i = 0; i < vm->cfg->n_devices; i++) {
		const char *spec = vm->cfg->devices[i];

		if (strncmp(spec, DEV_NAME, nlen) || (spec[nlen] && spec[nlen] != ','))
			continue;
		r = device_spec_net(vm, spec);
		if (r < 0)
			return r;
	}
	for (unsigned i = 0; i < vm->cfg->n_nics; i++) {
		r = nic_spec_net(vm, vm->cfg->nics[i], i);
		if (r < 0)
			return r;
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, virtio_net_device_init);
