/* virtio-net-pci (virtio network device, type 1): receive and transmit
 * queue pairs and a control queue on the virtio-pci transport, connected
 * to one network backend. This file owns the data path (tx gathered
 * straight from guest memory and batched to the backend, rx copied into
 * guest buffers, merged with MRG_RXBUF, timer polling instead of kicks
 * while traffic streams), multiqueue steering, the vnet header handling
 * for backends without one, statistics, the config space, the transport
 * hooks and virtio_net_init. The control queue and the state it sets
 * (receive filter, pairs, guest offloads, migration) are in
 * virtio_net_ctrl.c; the options, the net/ backend glue and the
 * "-device virtio-net-pci"/"-nic" creation in virtio_net_conf.c.
 * Everything that touches the backend runs on the event loop thread. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "hw/virtio_net_int.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define PCI_CLASS_NETWORK_ETHERNET	0x020000

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

/* --- small helpers ------------------------------------------------------- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v;
	p[1] = v >> 8;
}

/* Copy up to len bytes at offset off of iov[0..cnt) into dst; returns
 * the bytes copied. */
size_t virtio_net_iov_read(const struct iovec *iov, unsigned cnt, uint64_t off, void *dst,
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
uint8_t *virtio_net_iov_byte(const struct iovec *iov, unsigned cnt, uint64_t off)
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

/* Tell a vnet-header backend which receive offloads (GUEST_* feature
 * bits) the guest takes; < 0 when it refuses. */
int virtio_net_apply_guest_offloads(struct virtio_net *n, uint64_t offloads)
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
	    virtio_net_apply_guest_offloads(n, n->st.guest_offloads) < 0)
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

		done += virtio_net_iov_read(s->iov, s->iovcnt, off, dst + done, len - done);
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

/* Out of buffers for a frame: give back the `used` buffers taken and ask
 * for a kick when the driver adds more. The recheck comes after the
 * enable's fenced store (the index virtq_enable_notify returns is read
 * before it), so buffers added while kicks were still off are not
 * missed: retry soon. */
static void rx_give_back(struct virtio_net *n, unsigned q, uint16_t used)
{
	struct virtq *vq = &n->vp.vqs[q];
	bool more;

	virtq_enable_notify(vq);
	more = virtq_has_work(vq);	/* beyond the buffers taken */
	virtq_unpop(vq, used);
	if (more)
		virtio_pci_kick_later(&n->vp, q);
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
	uint16_t used = 0;
	size_t got;
	int r;

	virtq_suppress_kicks(vq);	/* no refill kicks while buffers last */
	while (done < total) {
		r = used < vq->size ? virtq_pop(vq, e) : 0;
		if (r < 0) {
			virtio_pci_set_needs_reset(&n->vp, vq->error);
			return -1;
		}
		if (r == 0) {
			rx_give_back(n, q, used);
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
			num_buffers[0] = virtio_net_iov_byte(e->iov, e->n_in,
							     VIRTIO_NET_HDR_NUM_BUFFERS);
			num_buffers[1] = virtio_net_iov_byte(e->iov, e->n_in,
							     VIRTIO_NET_HDR_NUM_BUFFERS + 1);
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
	hlen = virtio_net_iov_read(iov, iovcnt, be_hdr, head, sizeof(head));
	if (!virtio_net_rx_filter(n, head, hlen))
		return size;	/* not for this guest: consumed */
	q = pick_rx_queue(n, head, hlen);
	if (q < 0 && rx_dry(n))
		q = pick_rx_queue(n, head, hlen);
	if (q < 0) {
		n->rx_blocked = true;
		return 0;
	}
	if (be_hdr)
		virtio_net_iov_read(iov, iovcnt, 0, hdr, be_hdr);
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
	virtq_suppress_kicks(vq);
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
		virtq_suppress_kicks(vq);
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
		virtio_net_process_ctrl(n, q);
		break;
	case QUEUE_RX:		/* new buffers: wake_rx below */
	case QUEUE_UNUSED:
		break;
	}
	wake_rx(n);
}

/* The config space: MAC, link up, queue pairs, MTU. */
void virtio_net_write_config(struct virtio_net *n)
{
	uint8_t *c = n->vp.config;

	memcpy(c + VIRTIO_NET_CFG_MAC, n->st.mac, ETH_ALEN);
	put_le16(c + VIRTIO_NET_CFG_STATUS, VIRTIO_NET_S_LINK_UP);
	put_le16(c + VIRTIO_NET_CFG_MAX_PAIRS, n->st.max_pairs);
	put_le16(c + VIRTIO_NET_CFG_MTU, n->opts.host_mtu);
}

static void virtio_net_reset(struct virtio_pci *vp)
{
	struct virtio_net *n = vp->opaque;

	for (unsigned q = 0; q < n->ops.num_queues; q++) {
		virtq_reset(&vp->vqs[q], queue_max_size(n, q));
		vp->vqs[q].mem = vp->mem;
	}
	virtio_net_state_reset(n);
	n->applied = false;
	n->tx_blocked = 0;
	n->rx_irq_pending = 0;
	n->rx_polls = 0;
	virtio_net_write_config(n);
}

/* Legacy drivers without CTRL_MAC_ADDR set the MAC through the config
 * space; everything else there is read-only. */
static void virtio_net_config_write(struct virtio_pci *vp, unsigned off, unsigned size)
{
	struct virtio_net *n = vp->opaque;

	if (off < ETH_ALEN && !has(n, VIRTIO_F_VERSION_1) && !has(n, VIRTIO_NET_F_CTRL_MAC_ADDR))
		memcpy(n->st.mac, vp->config + VIRTIO_NET_CFG_MAC, ETH_ALEN);
	virtio_net_write_config(n);
}

/* --- setup --------------------------------------------------------------- */

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

	if (!o->pairs || o->pairs > VIRTIO_NET_MAX_PAIRS ||
	    !virtio_net_queue_size_ok(o->rx_queue_size) ||
	    !virtio_net_queue_size_ok(o->tx_queue_size) ||
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
		.features = virtio_net_device_features(o, n->be_vnet_hdr, pairs),
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
