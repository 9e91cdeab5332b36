/* Unit tests for the virtio-net model (hw/virtio_net*.c) without a VM: a
 * fake guest memory, a fake backend plugged in through the backend ops,
 * rings and frames built by hand. Covers config and features, tx of single
 * and chained frames (zero copy, header stripped or passed on), a full
 * backend and send_ready, rx with and without MRG_RXBUF, running out of rx
 * buffers and resuming, the control queue (rx modes, MAC tables, MAC
 * address, queue pairs), multiqueue steering, the vnet header towards the
 * backend, legacy 10-byte headers, malformed chains, vectors=0, the
 * migration state and kick suppression with EVENT_IDX (none asked for
 * while a tx or rx pass is under way). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hw/pci.h"
#include "hw/virtio_net.h"
#include "vmm/vmstate.h"
#include "tests/unit/virtio_test_util.h"

#define RAM_SIZE	(4u << 20)
#define QSIZE		16
#define RING_GPA(q)	(0x10000 + (q) * 0x4000)
#define DESC_GPA(q)	RING_GPA(q)
#define AVAIL_GPA(q)	(RING_GPA(q) + 0x1000)
#define USED_GPA(q)	(RING_GPA(q) + 0x2000)
#define BUF_GPA		0x100000
#define MAX_FRAMES	16

static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* --- fake backend ---------------------------------------------------------- */

struct fake_be {
	const struct net_frontend *fe;
	bool vnet_hdr;
	bool full;
	unsigned hdr_len;
	struct net_offloads off;
	unsigned ready_calls;
	unsigned nframes;
	size_t len[MAX_FRAMES];
	uint8_t *frame[MAX_FRAMES];
	int last_iovcnt;
	const void *last_base;
	void (*on_send)(void *arg);	/* runs in each send: a driver acting mid-pass */
	void *on_send_arg;
};

static int fb_attach(void *be, const struct net_frontend *fe)
{
	struct fake_be *b = be;

	if (b->fe)
		return -EBUSY;
	b->fe = fe;
	return 0;
}

static ssize_t fb_send(void *be, const struct iovec *iov, int iovcnt)
{
	struct fake_be *b = be;
	size_t len = 0, off = 0;

	if (b->full)
		return 0;
	if (b->on_send)
		b->on_send(b->on_send_arg);
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (b->nframes == MAX_FRAMES)
		return -ENOBUFS;
	b->frame[b->nframes] = malloc(len ? len : 1);
	for (int i = 0; i < iovcnt; i++) {
		memcpy(b->frame[b->nframes] + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	b->len[b->nframes++] = len;
	b->last_iovcnt = iovcnt;
	b->last_base = iovcnt ? iov[0].iov_base : NULL;
	return len;
}

static void fb_receive_ready(void *be)
{
	((struct fake_be *)be)->ready_calls++;
}

static bool fb_has_vnet_hdr(void *be)
{
	return ((struct fake_be *)be)->vnet_hdr;
}

static int fb_set_vnet_hdr_len(void *be, unsigned len)
{
	((struct fake_be *)be)->hdr_len = len;
	return 0;
}

static int fb_set_offloads(void *be, const struct net_offloads *o)
{
	((struct fake_be *)be)->off = *o;
	return 0;
}

static const struct virtio_net_backend_ops fake_ops = {
	.attach = fb_attach,
	.send = fb_send,
	.receive_ready = fb_receive_ready,
	.has_vnet_hdr = fb_has_vnet_hdr,
	.set_vnet_hdr_len = fb_set_vnet_hdr_len,
	.set_offloads = fb_set_offloads,
};

/* --- fixture and driver side ----------------------------------------------- */

struct fixture {
	struct guest_memory mem;
	struct virtio_net n;
	struct fake_be be;
	uint16_t avail_idx[VIRTIO_MAX_QUEUES];
	uint16_t used_seen[VIRTIO_MAX_QUEUES];
	uint16_t next_desc[VIRTIO_MAX_QUEUES];
	uint64_t next_buf;
	bool created;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	vt_mem_init(&f->mem, RAM_SIZE);
	f->next_buf = BUF_GPA;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < f->be.nframes; i++)
		free(f->be.frame[i]);
	if (f->created)
		free(f->n.vp.elem);
	free(f->mem.host);
	free(f);
	return 0;
}

static void mwrite(struct fixture *f, uint64_t off, uint64_t v, unsigned size)
{
	virtio_pci_modern_write(&f->n.vp, off, v, size);
}

static uint64_t mread(struct fixture *f, uint64_t off, unsigned size)
{
	return virtio_pci_modern_read(&f->n.vp, off, size);
}

static void create_opts(struct fixture *f, bool vnet_hdr, struct virtio_net_opts *o)
{
	f->be.vnet_hdr = vnet_hdr;
	memcpy(o->mac, dev_mac, 6);
	assert_int_equal(virtio_net_init(&f->n, o, &fake_ops, &f->be, &f->mem, NULL), 0);
	f->n.vp.pci.config[PCI_COMMAND] |= PCI_COMMAND_MASTER;	/* no bus here */
	f->created = true;
}

static void create(struct fixture *f, bool vnet_hdr, unsigned pairs)
{
	struct virtio_net_opts o;

	virtio_net_default_opts(&o);
	o.pairs = pairs;
	o.mq = pairs > 1;
	create_opts(f, vnet_hdr, &o);
}

/* A modern driver: negotiate feat, set up every queue with QSIZE entries. */
static void start(struct fixture *f, uint64_t feat)
{
	unsigned nq;

	feat |= 1ull << VIRTIO_F_VERSION_1;
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	memset(f->avail_idx, 0, sizeof(f->avail_idx));
	memset(f->used_seen, 0, sizeof(f->used_seen));
	memset(f->next_desc, 0, sizeof(f->next_desc));
	memset(f->mem.host + RING_GPA(0), 0, RING_GPA(VIRTIO_MAX_QUEUES) - RING_GPA(0));
	assert_int_equal(vt_negotiate(&f->n.vp, feat), 0x0b);
	nq = mread(f, VP_COMMON_NUMQ, 2);
	for (unsigned q = 0; q < nq; q++)
		vt_queue_enable(&f->n.vp, q, QSIZE, DESC_GPA(q), AVAIL_GPA(q), USED_GPA(q));
	mwrite(f, VP_COMMON_STATUS, 0x0f, 1);
	assert_int_equal(mread(f, VP_COMMON_STATUS, 1), 0x0f);
}

static uint64_t alloc_buf(struct fixture *f, size_t len)
{
	uint64_t gpa = f->next_buf;

	f->next_buf += (len + 63) & ~63ull;
	assert_true(f->next_buf < RAM_SIZE);
	return gpa;
}

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* Write a chain of descriptors and publish it (no kick). */
static uint16_t post(struct fixture *f, unsigned q, const struct seg *s, unsigned n)
{
	uint16_t head = f->next_desc[q] % QSIZE, idx = f->avail_idx[q];

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (head + i) % QSIZE;

		vt_put_desc(&f->mem, DESC_GPA(q), d, s[i].gpa, s[i].len,
			    (s[i].write ? VIRTQ_DESC_F_WRITE : 0) |
			    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0), (d + 1) % QSIZE);
	}
	f->next_desc[q] += n;
	vt_wr16(&f->mem, AVAIL_GPA(q) + 4 + 2 * (idx % QSIZE), head);
	f->avail_idx[q]++;
	vt_wr16(&f->mem, AVAIL_GPA(q) + 2, f->avail_idx[q]);
	return head;
}

/* One writable rx buffer of len bytes; returns its address. */
static uint64_t post_rx(struct fixture *f, unsigned q, uint32_t len)
{
	struct seg s = { alloc_buf(f, len), len, true };

	memset(f->mem.host + s.gpa, 0xee, len);
	post(f, q, &s, 1);
	return s.gpa;
}

static uint16_t used_idx(struct fixture *f, unsigned q)
{
	return vt_rd16(&f->mem, USED_GPA(q) + 2);
}

static uint32_t used_len(struct fixture *f, unsigned q, uint16_t i)
{
	return vt_rd32(&f->mem, USED_GPA(q) + 4 + 8 * (i % QSIZE) + 4);
}

static uint8_t *host(struct fixture *f, uint64_t gpa)
{
	return f->mem.host + gpa;
}

static size_t make_frame(uint8_t *buf, const uint8_t *dst, size_t len, uint8_t fill)
{
	static const uint8_t src[6] = { 0x02, 0, 0, 0, 0, 0x99 };

	memcpy(buf, dst, 6);
	memcpy(buf + 6, src, 6);
	buf[12] = 0x08;
	buf[13] = 0x00;
	for (size_t i = 14; i < len; i++)
		buf[i] = fill + i;
	return len;
}

/* What the backend delivers: optional vnet header, then the frame. */
static ssize_t deliver(struct fixture *f, const uint8_t *hdr, unsigned hlen, const uint8_t *frame,
		       size_t len)
{
	struct iovec iov[2] = { { (void *)hdr, hlen }, { (void *)frame, len } };

	return hlen ? f->be.fe->receive(f->be.fe->opaque, iov, 2)
		    : f->be.fe->receive(f->be.fe->opaque, iov + 1, 1);
}

static bool needs_reset(struct fixture *f)
{
	return mread(f, VP_COMMON_STATUS, 1) & VIRTIO_STATUS_NEEDS_RESET;
}

/* --- control queue helper -------------------------------------------------- */

static uint8_t ctrl(struct fixture *f, unsigned q, uint8_t cls, uint8_t cmd, const void *data,
		    uint32_t len)
{
	uint64_t h = alloc_buf(f, 2), d = alloc_buf(f, len ? len : 1), a = alloc_buf(f, 1);
	struct seg s[3] = { { h, 2, false }, { d, len, false }, { a, 1, true } };
	uint16_t before = used_idx(f, q);

	host(f, h)[0] = cls;
	host(f, h)[1] = cmd;
	if (len)
		memcpy(host(f, d), data, len);
	host(f, a)[0] = 0xaa;
	if (len)
		post(f, q, s, 3);
	else
		post(f, q, (struct seg[2]){ s[0], s[2] }, 2);
	vt_kick(&f->n.vp, q);
	assert_int_equal(used_idx(f, q), (uint16_t)(before + 1));
	return host(f, a)[0];
}

static uint8_t rx_mode(struct fixture *f, uint8_t cmd, uint8_t on)
{
	return ctrl(f, 2, VIRTIO_NET_CTRL_RX, cmd, &on, 1);
}

#define F(b) (1ull << (b))
#define CTRL_FEATURES (F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | \
		       F(VIRTIO_NET_F_CTRL_RX_EXTRA) | F(VIRTIO_NET_F_CTRL_MAC_ADDR))

/* --- tests ------------------------------------------------------------------ */

static void test_config_features(void **state)
{
	struct fixture *f = *state;
	uint64_t feat;

	create(f, false, 1);
	for (int i = 0; i < 6; i++)
		assert_int_equal(mread(f, VP_DEVICE_OFF + i, 1), dev_mac[i]);
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP);
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_NET_CFG_MAX_PAIRS, 2), 1);
	assert_int_equal(mread(f, VP_COMMON_NUMQ, 2), 3);
	assert_int_equal(pci_get_word(f->n.vp.pci.config, PCI_DEVICE_ID), 0x1000);
	assert_int_equal(pci_get_word(f->n.vp.pci.config, PCI_SUBSYSTEM_ID), VIRTIO_ID_NET);
	feat = vt_offered(&f->n.vp);
	assert_true(feat & F(VIRTIO_NET_F_MAC));
	assert_true(feat & F(VIRTIO_NET_F_STATUS));
	assert_true(feat & F(VIRTIO_NET_F_MRG_RXBUF));
	assert_true(feat & F(VIRTIO_NET_F_CTRL_VQ));
	assert_true(feat & F(VIRTIO_NET_F_CTRL_MAC_ADDR));
	assert_true(feat & F(VIRTIO_F_VERSION_1));
	assert_true(feat & F(VIRTIO_F_RING_EVENT_IDX));
	assert_true(feat & F(27));	/* ANY_LAYOUT, as QEMU offers it */
	assert_false(feat & F(VIRTIO_NET_F_MQ));
	/* no vnet header in the backend: no offloads */
	assert_false(feat & F(VIRTIO_NET_F_CSUM));
	assert_false(feat & F(VIRTIO_NET_F_GUEST_CSUM));
	assert_false(feat & F(VIRTIO_NET_F_HOST_TSO4));
	assert_false(feat & F(VIRTIO_NET_F_GUEST_TSO6));
	/* config is read-only for a modern driver */
	start(f, 0);
	mwrite(f, VP_DEVICE_OFF, 0x11, 1);
	assert_int_equal(mread(f, VP_DEVICE_OFF, 1), dev_mac[0]);
	/* only one frontend per backend */
	assert_int_equal(fb_attach(&f->be, f->be.fe), -EBUSY);
}

static void test_offload_features(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_opts o;
	uint64_t feat;

	virtio_net_default_opts(&o);
	o.host_tso6 = false;
	o.mrg_rxbuf = false;
	create_opts(f, true, &o);
	feat = vt_offered(&f->n.vp);
	assert_true(feat & F(VIRTIO_NET_F_CSUM));
	assert_true(feat & F(VIRTIO_NET_F_GUEST_CSUM));
	assert_true(feat & F(VIRTIO_NET_F_HOST_TSO4));
	assert_false(feat & F(VIRTIO_NET_F_HOST_TSO6));
	assert_true(feat & F(VIRTIO_NET_F_GUEST_TSO4));
	assert_true(feat & F(VIRTIO_NET_F_GUEST_TSO6));
	assert_false(feat & F(VIRTIO_NET_F_MRG_RXBUF));
	/* the backend learns the header length and offloads once the driver is up */
	start(f, F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4));
	assert_int_equal(f->be.hdr_len, 12);
	assert_true(f->be.off.csum);
	assert_true(f->be.off.tso4);
	assert_false(f->be.off.tso6);
	assert_false(f->be.off.ufo);
}

/* Drop the device so the test can create another over the same backend. */
static void destroy(struct fixture *f)
{
	free(f->n.vp.elem);
	f->created = false;
	f->be.fe = NULL;
}

#define GUEST_OFFLOADS (F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) | \
			F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN))

/* host_mtu=N: F_MTU offered and N in the config space; not offered by default. */
static void test_host_mtu(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_opts o;

	create(f, true, 1);
	assert_false(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_MTU));
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_NET_CFG_MTU, 2), 0);
	destroy(f);
	virtio_net_default_opts(&o);
	o.host_mtu = 9000;
	create_opts(f, true, &o);
	assert_true(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_MTU));
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_NET_CFG_MTU, 2), 9000);
	start(f, F(VIRTIO_NET_F_MTU));
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_NET_CFG_MTU, 2), 9000);
	/* out of QEMU's 68..65535 */
	destroy(f);
	o.host_mtu = 67;
	assert_int_equal(virtio_net_init(&f->n, &o, &fake_ops, &f->be, &f->mem, NULL), -EINVAL);
	o.host_mtu = 65536;
	assert_int_equal(virtio_net_init(&f->n, &o, &fake_ops, &f->be, &f->mem, NULL), -EINVAL);
}

/* CTRL_GUEST_OFFLOADS: offered with the control queue and receive offloads. */
static void test_guest_offloads_offered(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_opts o;

	create(f, true, 1);
	assert_true(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
	destroy(f);
	create(f, false, 1);		/* no vnet header: no receive offloads */
	assert_false(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
	destroy(f);
	virtio_net_default_opts(&o);
	o.ctrl_vq = false;
	create_opts(f, true, &o);
	assert_false(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
	destroy(f);
	virtio_net_default_opts(&o);
	o.guest_csum = false;
	create_opts(f, true, &o);
	assert_false(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS));
}

static uint8_t set_offloads(struct fixture *f, uint64_t bits)
{
	uint8_t le[8];

	for (int i = 0; i < 8; i++)
		le[i] = bits >> (8 * i);
	return ctrl(f, 2, VIRTIO_NET_CTRL_GUEST_OFFLOADS, VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, le,
		    8);
}

static void test_guest_offloads_set(void **state)
{
	struct fixture *f = *state;
	uint64_t neg = F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
		       F(VIRTIO_NET_F_GUEST_TSO6);

	create(f, true, 1);
	start(f, CTRL_FEATURES | F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | neg);
	assert_int_equal(f->n.st.guest_offloads, neg);
	assert_true(f->be.off.csum && f->be.off.tso4 && f->be.off.tso6);
	/* a subset: the backend follows */
	assert_int_equal(set_offloads(f, F(VIRTIO_NET_F_GUEST_CSUM)), VIRTIO_NET_OK);
	assert_int_equal(f->n.st.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM));
	assert_true(f->be.off.csum);
	assert_false(f->be.off.tso4);
	assert_false(f->be.off.tso6);
	assert_int_equal(set_offloads(f, 0), VIRTIO_NET_OK);
	assert_false(f->be.off.csum);
	/* not negotiated (ECN), not an offload (HOST_TSO4), short data, bad command */
	assert_int_equal(set_offloads(f, F(VIRTIO_NET_F_GUEST_ECN)), VIRTIO_NET_ERR);
	assert_int_equal(set_offloads(f, F(VIRTIO_NET_F_HOST_TSO4)), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
			      VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, "\2\0\0\0", 4), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_GUEST_OFFLOADS, 1, "\2\0\0\0\0\0\0\0", 8),
			 VIRTIO_NET_ERR);
	assert_int_equal(f->n.st.guest_offloads, 0);
	assert_false(f->be.off.csum);
	assert_int_equal(set_offloads(f, neg), VIRTIO_NET_OK);
	assert_true(f->be.off.csum && f->be.off.tso4 && f->be.off.tso6);
	/* reset, then a new negotiation: the negotiated set again */
	assert_int_equal(set_offloads(f, F(VIRTIO_NET_F_GUEST_TSO4)), VIRTIO_NET_OK);
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	assert_false(f->n.st.guest_offloads_set);
	start(f, CTRL_FEATURES | F(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | F(VIRTIO_NET_F_GUEST_CSUM));
	assert_int_equal(f->n.st.guest_offloads, F(VIRTIO_NET_F_GUEST_CSUM));
	assert_true(f->be.off.csum);
	assert_false(f->be.off.tso4);
}

/* Without the feature negotiated the command is refused. */
static void test_guest_offloads_not_negotiated(void **state)
{
	struct fixture *f = *state;

	create(f, true, 1);
	start(f, CTRL_FEATURES | GUEST_OFFLOADS);
	assert_int_equal(set_offloads(f, F(VIRTIO_NET_F_GUEST_CSUM)), VIRTIO_NET_ERR);
	assert_int_equal(f->n.st.guest_offloads, GUEST_OFFLOADS);
	assert_true(f->be.off.tso4);
}

static void test_tx_single_and_chained(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[200];
	uint64_t a = alloc_buf(f, 12 + 200), h = alloc_buf(f, 12), d1 = alloc_buf(f, 50),
		 d2 = alloc_buf(f, 150);
	struct net_stats st;

	create(f, false, 1);
	start(f, F(VIRTIO_NET_F_MRG_RXBUF));
	make_frame(frame, dev_mac, sizeof(frame), 1);
	/* header and frame in one descriptor */
	memset(host(f, a), 0, 12);
	memcpy(host(f, a) + 12, frame, 200);
	post(f, 1, &(struct seg){ a, 212, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 1);
	assert_int_equal(f->be.len[0], 200);
	assert_memory_equal(f->be.frame[0], frame, 200);
	assert_ptr_equal(f->be.last_base, host(f, a) + 12);	/* straight from guest RAM */
	assert_int_equal(used_idx(f, 1), 1);
	/* header, then the frame over two descriptors */
	memset(host(f, h), 0, 12);
	memcpy(host(f, d1), frame, 50);
	memcpy(host(f, d2), frame + 50, 150);
	post(f, 1, (struct seg[3]){ { h, 12, false }, { d1, 50, false }, { d2, 150, false } },
	     3);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 2);
	assert_int_equal(f->be.len[1], 200);
	assert_int_equal(f->be.last_iovcnt, 2);
	assert_memory_equal(f->be.frame[1], frame, 200);
	assert_int_equal(used_idx(f, 1), 2);
	assert_true(f->n.vp.isr & VIRTIO_ISR_QUEUE);
	virtio_net_get_stats(&f->n, &st);
	assert_int_equal(st.tx_packets, 2);
	assert_int_equal(st.tx_bytes, 400);
}

static void test_tx_vnet_hdr_passed(void **state)
{
	struct fixture *f = *state;
	uint64_t a = alloc_buf(f, 12 + 60);

	create(f, true, 1);
	start(f, F(VIRTIO_NET_F_CSUM));
	make_frame(host(f, a) + 12, dev_mac, 60, 3);
	memset(host(f, a), 0, 12);
	host(f, a)[0] = 1;	/* NEEDS_CSUM: the backend's business */
	post(f, 1, &(struct seg){ a, 72, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 1);
	assert_int_equal(f->be.len[0], 72);
	assert_int_equal(f->be.frame[0][0], 1);
	assert_memory_equal(f->be.frame[0] + 12, host(f, a) + 12, 60);
}

static void test_tx_backend_full(void **state)
{
	struct fixture *f = *state;
	uint64_t a = alloc_buf(f, 12 + 60), b = alloc_buf(f, 12 + 70);

	create(f, false, 1);
	start(f, 0);
	memset(host(f, a), 0, 12);
	make_frame(host(f, a) + 12, dev_mac, 60, 5);
	memset(host(f, b), 0, 12);
	make_frame(host(f, b) + 12, dev_mac, 70, 6);
	f->be.full = true;
	post(f, 1, &(struct seg){ a, 72, false }, 1);
	post(f, 1, &(struct seg){ b, 82, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 0);
	assert_int_equal(used_idx(f, 1), 0);
	/* a kick while full retries, still nothing consumed */
	vt_kick(&f->n.vp, 1);
	assert_int_equal(used_idx(f, 1), 0);
	f->be.full = false;
	f->be.fe->send_ready(f->be.fe->opaque);
	assert_int_equal(f->be.nframes, 2);
	assert_int_equal(f->be.len[0], 60);
	assert_int_equal(f->be.len[1], 70);
	assert_int_equal(used_idx(f, 1), 2);
}

static void test_rx_without_mrg(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[100], big[2000];
	uint64_t buf;
	struct net_stats st;

	create(f, false, 1);
	start(f, 0);
	buf = post_rx(f, 0, 1600);
	vt_kick(&f->n.vp, 0);
	make_frame(frame, dev_mac, sizeof(frame), 9);
	assert_int_equal(deliver(f, NULL, 0, frame, sizeof(frame)), sizeof(frame));
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(used_len(f, 0, 0), 12 + 100);
	/* a zero header with num_buffers = 1 in front of the frame */
	for (int i = 0; i < 10; i++)
		assert_int_equal(host(f, buf)[i], 0);
	assert_int_equal(host(f, buf)[10], 1);
	assert_int_equal(host(f, buf)[11], 0);
	assert_memory_equal(host(f, buf) + 12, frame, 100);
	assert_true(f->n.vp.isr & VIRTIO_ISR_QUEUE);
	/* a frame bigger than the buffer is dropped and the buffer kept */
	post_rx(f, 0, 1600);
	make_frame(big, dev_mac, sizeof(big), 1);
	assert_int_equal(deliver(f, NULL, 0, big, sizeof(big)), -1);
	assert_int_equal(used_idx(f, 0), 1);
	assert_int_equal(deliver(f, NULL, 0, frame, sizeof(frame)), sizeof(frame));
	assert_int_equal(used_idx(f, 0), 2);
	virtio_net_get_stats(&f->n, &st);
	assert_int_equal(st.rx_packets, 2);
	assert_int_equal(st.rx_bytes, 200);
	assert_int_equal(st.rx_dropped, 1);
	assert_false(needs_reset(f));
}

static void test_rx_mergeable(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[150];
	uint64_t b[3];

	create(f, false, 1);
	start(f, F(VIRTIO_NET_F_MRG_RXBUF));
	for (int i = 0; i < 3; i++)
		b[i] = post_rx(f, 0, 64);
	make_frame(frame, dev_mac, sizeof(frame), 7);
	assert_int_equal(deliver(f, NULL, 0, frame, sizeof(frame)), sizeof(frame));
	assert_int_equal(used_idx(f, 0), 3);
	assert_int_equal(used_len(f, 0, 0), 64);
	assert_int_equal(used_len(f, 0, 1), 64);
	assert_int_equal(used_len(f, 0, 2), 162 - 128);
	assert_int_equal(host(f, b[0])[10], 3);	/* num_buffers */
	assert_memory_equal(host(f, b[0]) + 12, frame, 52);
	assert_memory_equal(host(f, b[1]), frame + 52, 64);
	assert_memory_equal(host(f, b[2]), frame + 116, 34);
}

static void test_rx_no_buffers_then_resume(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[150];
	uint64_t b;

	create(f, false, 1);
	start(f, F(VIRTIO_NET_F_MRG_RXBUF));
	make_frame(frame, dev_mac, sizeof(frame), 2);
	assert_false(f->be.fe->can_receive(f->be.fe->opaque));
	assert_int_equal(deliver(f, NULL, 0, frame, sizeof(frame)), 0);
	assert_int_equal(f->be.ready_calls, 0);
	/* one 64-byte buffer is not enough: it is given back */
	b = post_rx(f, 0, 64);
	vt_kick(&f->n.vp, 0);
	assert_int_equal(f->be.ready_calls, 1);
	assert_true(f->be.fe->can_receive(f->be.fe->opaque));
	assert_int_equal(deliver(f, NULL, 0, frame, sizeof(frame)), 0);
	assert_int_equal(used_idx(f, 0), 0);
	assert_int_equal(f->n.vp.vqs[0].inflight, 0);
	/* more buffers and a kick: the backend is told, delivery works */
	post_rx(f, 0, 64);
	post_rx(f, 0, 64);
	vt_kick(&f->n.vp, 0);
	assert_int_equal(f->be.ready_calls, 2);
	assert_int_equal(deliver(f, NULL, 0, frame, sizeof(frame)), sizeof(frame));
	assert_int_equal(used_idx(f, 0), 3);
	assert_int_equal(host(f, b)[10], 3);
	/* no spurious wake-ups while not blocked */
	post_rx(f, 0, 64);
	vt_kick(&f->n.vp, 0);
	assert_int_equal(f->be.ready_calls, 2);
}

static void test_rx_vnet_hdr_from_backend(void **state)
{
	struct fixture *f = *state;
	uint8_t hdr[12] = { 1, 0, 0, 0, 0, 0, 34, 0, 16, 0, 0x77, 0x77 }, frame[80];
	uint64_t b;

	create(f, true, 1);
	start(f, F(VIRTIO_NET_F_GUEST_CSUM));
	b = post_rx(f, 0, 2048);
	make_frame(frame, dev_mac, sizeof(frame), 4);
	assert_int_equal(deliver(f, hdr, 12, frame, sizeof(frame)), 12 + sizeof(frame));
	assert_int_equal(used_len(f, 0, 0), 12 + 80);
	assert_memory_equal(host(f, b), hdr, 10);	/* the backend's header as is */
	assert_int_equal(host(f, b)[10], 1);		/* num_buffers is ours */
	assert_int_equal(host(f, b)[11], 0);
	assert_memory_equal(host(f, b) + 12, frame, 80);
}

static void test_ctrl_rx_mode_and_filter(void **state)
{
	struct fixture *f = *state;
	static const uint8_t other[6] = { 0x02, 1, 2, 3, 4, 5 }, bcast[6] = { 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff }, mcast[6] = { 0x01, 0, 0x5e, 0, 0, 1 }, mcast2[6] = { 0x01, 0,
		0x5e, 0, 0, 2 }, newmac[6] = { 0x52, 0x54, 0, 0xab, 0xcd, 0xef };
	uint8_t frame[64], table[4 + 6 + 4 + 6];
	uint16_t used;

	create(f, false, 1);
	start(f, CTRL_FEATURES);
	for (int i = 0; i < 12; i++)
		post_rx(f, 0, 1600);
#define RX_OK(dst) do { used = used_idx(f, 0); make_frame(frame, dst, 64, 0); \
		assert_int_equal(deliver(f, NULL, 0, frame, 64), 64); \
		assert_int_equal(used_idx(f, 0), (uint16_t)(used + 1)); } while (0)
#define RX_FILTERED(dst) do { used = used_idx(f, 0); make_frame(frame, dst, 64, 0); \
		assert_int_equal(deliver(f, NULL, 0, frame, 64), 64); \
		assert_int_equal(used_idx(f, 0), used); } while (0)
	RX_OK(other);		/* promiscuous after reset, like QEMU */
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	RX_FILTERED(other);
	RX_OK(dev_mac);
	RX_OK(bcast);
	RX_FILTERED(mcast);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_NOBCAST, 1), VIRTIO_NET_OK);
	RX_FILTERED(bcast);
	/* MAC tables: one unicast, one multicast */
	memcpy(table, &(uint32_t){ 1 }, 4);
	memcpy(table + 4, other, 6);
	memcpy(table + 10, &(uint32_t){ 1 }, 4);
	memcpy(table + 14, mcast, 6);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
			      sizeof(table)), VIRTIO_NET_OK);
	RX_OK(other);
	RX_OK(mcast);
	RX_FILTERED(mcast2);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_ALLMULTI, 1), VIRTIO_NET_OK);
	RX_OK(mcast2);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_NOMULTI, 1), VIRTIO_NET_OK);
	RX_FILTERED(mcast);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_NOUNI, 1), VIRTIO_NET_OK);
	RX_FILTERED(dev_mac);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_NOUNI, 0), VIRTIO_NET_OK);
	/* a new MAC address: config and filter follow */
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 6),
			 VIRTIO_NET_OK);
	assert_int_equal(mread(f, VP_DEVICE_OFF + 3, 1), 0xab);
	RX_OK(newmac);
	RX_FILTERED(dev_mac);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_ALLUNI, 1), VIRTIO_NET_OK);
	RX_OK(dev_mac);
	/* bad lengths and unknown commands: VIRTIO_NET_ERR, state unchanged */
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, "\1\1", 2),
			 VIRTIO_NET_ERR);
	assert_false(f->n.st.promisc);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_RX, 9, "\1", 1), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 5),
			 VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
			      sizeof(table) - 1), VIRTIO_NET_ERR);
	memcpy(table, &(uint32_t){ 0xffffffff }, 4);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
			      sizeof(table)), VIRTIO_NET_ERR);
	assert_int_equal(f->n.st.uni_count, 1);
	assert_int_equal(ctrl(f, 2, 77, 0, NULL, 0), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\1\0",
			      2), VIRTIO_NET_ERR);	/* MQ not negotiated */
	assert_false(needs_reset(f));
#undef RX_OK
#undef RX_FILTERED
}

/* A 64-byte frame for dev_mac tagged with VLAN id vid. */
static void make_tagged(uint8_t *frame, unsigned vid)
{
	make_frame(frame, dev_mac, 64, 0);
	frame[12] = 0x81;
	frame[13] = 0x00;
	frame[14] = 0x20 | vid >> 8;	/* priority 1 is not part of the id */
	frame[15] = vid & 0xff;
}

/* Deliver its first len bytes (15: the tag cut short); did it reach the
 * rx queue? */
static bool vlan_frame_passes(struct fixture *f, unsigned vid, size_t len)
{
	uint8_t frame[64];
	uint16_t used = used_idx(f, 0);

	make_tagged(frame, vid);
	assert_int_equal(deliver(f, NULL, 0, frame, len), len);
	return used_idx(f, 0) != used;
}

static uint8_t vlan_cmd(struct fixture *f, uint8_t cmd, unsigned vid)
{
	uint8_t b[2] = { vid & 0xff, vid >> 8 };

	return ctrl(f, 2, VIRTIO_NET_CTRL_VLAN, cmd, b, 2);
}

/* CTRL_VLAN (offered by default with the control queue, as by QEMU): a
 * tagged frame passes only for an added id, unless promiscuous; untagged
 * frames are not affected; without the feature there is no VLAN filter. */
static void test_ctrl_vlan(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_opts o;
	uint8_t frame[64];
	uint16_t used;

	create(f, false, 1);
	assert_true(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_CTRL_VLAN));
	start(f, CTRL_FEATURES | F(VIRTIO_NET_F_CTRL_VLAN));
	for (int i = 0; i < 12; i++)
		post_rx(f, 0, 1600);
	assert_true(vlan_frame_passes(f, 5, 64));	/* promiscuous after reset */
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	assert_false(vlan_frame_passes(f, 5, 64));
	assert_int_equal(vlan_cmd(f, VIRTIO_NET_CTRL_VLAN_ADD, 5), VIRTIO_NET_OK);
	assert_int_equal(vlan_cmd(f, VIRTIO_NET_CTRL_VLAN_ADD, 4095), VIRTIO_NET_OK);
	assert_true(vlan_frame_passes(f, 5, 64));
	assert_true(vlan_frame_passes(f, 4095, 64));
	assert_false(vlan_frame_passes(f, 6, 64));
	assert_false(vlan_frame_passes(f, 5, 15));	/* the tag cut short */
	used = used_idx(f, 0);
	make_frame(frame, dev_mac, 64, 0);		/* untagged */
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	assert_int_equal(used_idx(f, 0), (uint16_t)(used + 1));
	assert_int_equal(vlan_cmd(f, VIRTIO_NET_CTRL_VLAN_DEL, 5), VIRTIO_NET_OK);
	assert_false(vlan_frame_passes(f, 5, 64));
	assert_true(vlan_frame_passes(f, 4095, 64));
	/* bad ids, lengths and commands: VIRTIO_NET_ERR, nothing changes */
	assert_int_equal(vlan_cmd(f, VIRTIO_NET_CTRL_VLAN_ADD, 4096), VIRTIO_NET_ERR);
	assert_int_equal(vlan_cmd(f, 2, 5), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_VLAN, VIRTIO_NET_CTRL_VLAN_ADD, "", 1),
			 VIRTIO_NET_ERR);
	assert_false(vlan_frame_passes(f, 5, 64));
	assert_false(needs_reset(f));
	/* a device reset forgets the ids */
	start(f, CTRL_FEATURES | F(VIRTIO_NET_F_CTRL_VLAN));
	for (int i = 0; i < 4; i++)
		post_rx(f, 0, 1600);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	assert_false(vlan_frame_passes(f, 4095, 64));
	/* not negotiated: every VLAN passes, the command is refused */
	start(f, CTRL_FEATURES);
	for (int i = 0; i < 4; i++)
		post_rx(f, 0, 1600);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	assert_true(vlan_frame_passes(f, 77, 64));
	assert_int_equal(vlan_cmd(f, VIRTIO_NET_CTRL_VLAN_ADD, 77), VIRTIO_NET_ERR);
	destroy(f);
	virtio_net_default_opts(&o);
	o.ctrl_vlan = false;				/* ctrl_vlan=off */
	create_opts(f, false, &o);
	assert_false(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_CTRL_VLAN));
}

static void test_mac_table_overflow(void **state)
{
	struct fixture *f = *state;
	uint8_t table[4 + 70 * 6 + 4], frame[64];
	static const uint8_t any[6] = { 0x02, 9, 9, 9, 9, 9 };

	create(f, false, 1);
	start(f, CTRL_FEATURES);
	post_rx(f, 0, 1600);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	memset(table, 0x02, sizeof(table));
	memcpy(table, &(uint32_t){ 70 }, 4);
	memcpy(table + 4 + 70 * 6, &(uint32_t){ 0 }, 4);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table,
			      sizeof(table)), VIRTIO_NET_OK);
	assert_true(f->n.st.uni_overflow);
	assert_int_equal(f->n.st.uni_count, 0);
	make_frame(frame, any, 64, 0);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	assert_int_equal(used_idx(f, 0), 1);	/* overflow: every unicast accepted */
}

static void test_mq_pairs(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[64];
	uint64_t a = alloc_buf(f, 12 + 64);

	create(f, false, 2);
	assert_true(vt_offered(&f->n.vp) & F(VIRTIO_NET_F_MQ));
	assert_int_equal(mread(f, VP_COMMON_NUMQ, 2), 5);
	assert_int_equal(mread(f, VP_DEVICE_OFF + VIRTIO_NET_CFG_MAX_PAIRS, 2), 2);
	start(f, CTRL_FEATURES | F(VIRTIO_NET_F_MQ));
	/* the control queue is 2 * max_pairs = 4 */
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\3\0",
			      2), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\0\0",
			      2), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\2\0",
			      3), VIRTIO_NET_ERR);
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\2\0",
			      2), VIRTIO_NET_OK);
	assert_int_equal(f->n.st.curr_pairs, 2);
	/* buffers only on rx1: frames land there */
	post_rx(f, 2, 1600);
	make_frame(frame, dev_mac, 64, 0);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	assert_int_equal(used_idx(f, 2), 1);
	assert_int_equal(used_idx(f, 0), 0);
	/* tx on the second pair */
	memset(host(f, a), 0, 12);
	make_frame(host(f, a) + 12, dev_mac, 64, 1);
	post(f, 3, &(struct seg){ a, 76, false }, 1);
	vt_kick(&f->n.vp, 3);
	assert_int_equal(f->be.nframes, 1);
	assert_int_equal(used_idx(f, 3), 1);
	/* back to one pair: rx1 is no longer used */
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\1\0",
			      2), VIRTIO_NET_OK);
	post_rx(f, 2, 1600);
	assert_false(f->be.fe->can_receive(f->be.fe->opaque));
	/* without MQ negotiated the control queue is queue 2 */
	start(f, CTRL_FEATURES);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	assert_int_equal(f->n.st.curr_pairs, 1);
}

static void test_legacy_header(void **state)
{
	struct fixture *f = *state;
	uint64_t a = alloc_buf(f, 10 + 60), rx;
	const uint64_t ring = 0x200000;	/* queue q at ring + q * 0x10000 */
	uint8_t frame[60];
	uint16_t idx = 1, head = 0;
	struct virtq_desc d = { 0 };

	create(f, false, 1);
	virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_STATUS, 0, 1);
	virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_STATUS, 3, 1);
	virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_GUEST_FEATURES, F(VIRTIO_NET_F_MAC), 4);
	for (unsigned q = 0; q < 2; q++) {
		virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_QUEUE_SEL, q, 2);
		assert_int_equal(virtio_pci_legacy_read(&f->n.vp, VIRTIO_LEGACY_QUEUE_NUM, 2), 256);
		virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_QUEUE_PFN,
					(ring + q * 0x10000) >> 12, 4);
	}
	virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_STATUS, 7, 1);
	assert_int_equal(virtio_net_hdr_len(&f->n), 10);
	/* legacy config MAC write (no CTRL_MAC_ADDR) */
	virtio_pci_legacy_write(&f->n.vp, VIRTIO_LEGACY_CONFIG_NOMSIX + 5, 0x57, 1);
	assert_int_equal(f->n.st.mac[5], 0x57);
	/* tx: the 10-byte header is stripped */
	memset(host(f, a), 0, 10);
	make_frame(host(f, a) + 10, dev_mac, 60, 8);
	d = (struct virtq_desc){ a, 70, 0, 0 };
	memcpy(host(f, ring + 0x10000), &d, 16);
	memcpy(host(f, ring + 0x10000 + 4096 + 4), &head, 2);
	memcpy(host(f, ring + 0x10000 + 4096 + 2), &idx, 2);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 1);
	assert_int_equal(f->be.len[0], 60);
	/* rx: a 10-byte zero header in front */
	rx = alloc_buf(f, 1600);
	memset(host(f, rx), 0xee, 1600);
	d = (struct virtq_desc){ rx, 1600, VIRTQ_DESC_F_WRITE, 0 };
	memcpy(host(f, ring), &d, 16);
	memcpy(host(f, ring + 4096 + 4), &head, 2);
	memcpy(host(f, ring + 4096 + 2), &idx, 2);
	make_frame(frame, f->n.st.mac, 60, 1);
	assert_int_equal(deliver(f, NULL, 0, frame, 60), 60);
	for (int i = 0; i < 10; i++)
		assert_int_equal(host(f, rx)[i], 0);
	assert_memory_equal(host(f, rx) + 10, frame, 60);
	assert_int_equal(host(f, rx)[70], 0xee);
}

static void test_malformed_tx(void **state)
{
	struct fixture *f = *state;
	uint64_t a = alloc_buf(f, 12 + 60), big = alloc_buf(f, 70000);
	struct net_stats st;

	create(f, false, 1);
	start(f, 0);
	/* oversized frame: dropped and counted, device fine */
	memset(host(f, big), 0, 12);
	post(f, 1, &(struct seg){ big, 12 + 65536, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 0);
	assert_int_equal(used_idx(f, 1), 1);
	virtio_net_get_stats(&f->n, &st);
	assert_int_equal(st.tx_errors, 1);
	assert_false(needs_reset(f));
	/* a header-only chain: an empty frame, dropped */
	post(f, 1, &(struct seg){ a, 12, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(used_idx(f, 1), 2);
	assert_false(needs_reset(f));
	/* a writable descriptor in a tx chain */
	post(f, 1, (struct seg[2]){ { a, 72, false }, { a, 10, true } }, 2);
	vt_kick(&f->n.vp, 1);
	assert_true(needs_reset(f));
	assert_int_equal(f->be.nframes, 0);
	/* a tx chain shorter than the header */
	start(f, 0);
	assert_false(needs_reset(f));
	post(f, 1, &(struct seg){ a, 8, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_true(needs_reset(f));
}

static void test_malformed_rx_ctrl(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[64];
	uint64_t a = alloc_buf(f, 64);

	create(f, false, 1);
	start(f, CTRL_FEATURES);
	make_frame(frame, dev_mac, 64, 0);
	/* a device-readable rx buffer */
	post(f, 0, &(struct seg){ a, 64, false }, 1);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), -1);
	assert_true(needs_reset(f));
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 0);	/* broken: nothing moves */
	/* an rx buffer smaller than the header */
	start(f, CTRL_FEATURES);
	post(f, 0, &(struct seg){ a, 8, true }, 1);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), -1);
	assert_true(needs_reset(f));
	/* a control command without an ack byte */
	start(f, CTRL_FEATURES);
	post(f, 2, &(struct seg){ a, 3, false }, 1);
	vt_kick(&f->n.vp, 2);
	assert_true(needs_reset(f));
	/* a runt frame from the backend is an error, not a crash */
	start(f, CTRL_FEATURES);
	post_rx(f, 0, 1600);
	assert_int_equal(deliver(f, NULL, 0, frame, 10), -1);
	assert_false(needs_reset(f));
}

static void test_vectors_zero(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_opts o;

	virtio_net_default_opts(&o);
	o.vectors = 0;
	create_opts(f, false, &o);
	assert_int_equal(pci_find_capability(&f->n.vp.pci, PCI_CAP_ID_MSIX), 0);
	assert_int_equal(f->n.vp.msix_vectors, 0);
	assert_int_not_equal(pci_find_capability(&f->n.vp.pci, PCI_CAP_ID_VNDR), 0);
}

static void test_vmstate(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[1024];
	size_t len;
	char err[128];
	struct virtio_net_state copy;

	create(f, false, 2);
	start(f, CTRL_FEATURES | F(VIRTIO_NET_F_MQ));
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, "\2\0",
			      2), VIRTIO_NET_OK);
	assert_int_equal(ctrl(f, 4, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_ALLMULTI, "\1", 1),
			 VIRTIO_NET_OK);
	assert_true(vmstate_size(&virtio_net_vmstate) <= sizeof(buf));
	len = vmstate_save(&virtio_net_vmstate, &f->n.st, buf);
	copy = f->n.st;
	copy.curr_pairs = 1;
	copy.allmulti = false;
	assert_int_equal(vmstate_load(&virtio_net_vmstate, &copy, sizeof(copy), buf, len, err,
				      sizeof(err)), 0);
	assert_int_equal(copy.curr_pairs, 2);
	assert_true(copy.allmulti);
	/* hostile streams: too many pairs, table counts over the bound */
	copy.curr_pairs = 3;
	len = vmstate_save(&virtio_net_vmstate, &copy, buf);
	assert_int_not_equal(vmstate_load(&virtio_net_vmstate, &f->n.st, sizeof(f->n.st), buf,
					  len, err, sizeof(err)), 0);
	copy.curr_pairs = 1;
	copy.uni_count = 40;
	copy.multi_count = 40;
	len = vmstate_save(&virtio_net_vmstate, &copy, buf);
	assert_int_not_equal(vmstate_load(&virtio_net_vmstate, &f->n.st, sizeof(f->n.st), buf,
					  len, err, sizeof(err)), 0);
	copy.uni_count = 65;
	copy.multi_count = 0;
	len = vmstate_save(&virtio_net_vmstate, &copy, buf);
	assert_int_not_equal(vmstate_load(&virtio_net_vmstate, &f->n.st, sizeof(f->n.st), buf,
					  len, err, sizeof(err)), 0);
	assert_int_equal(f->n.st.curr_pairs, 2);	/* untouched by the rejected loads */
	/* the guest offloads travel; bits that are no receive offload are refused */
	copy = f->n.st;
	copy.guest_offloads = F(VIRTIO_NET_F_GUEST_TSO4);
	copy.guest_offloads_set = true;
	len = vmstate_save(&virtio_net_vmstate, &copy, buf);
	copy.guest_offloads = 0;
	copy.guest_offloads_set = false;
	assert_int_equal(vmstate_load(&virtio_net_vmstate, &copy, sizeof(copy), buf, len, err,
				      sizeof(err)), 0);
	assert_int_equal(copy.guest_offloads, F(VIRTIO_NET_F_GUEST_TSO4));
	assert_true(copy.guest_offloads_set);
	copy.guest_offloads = F(VIRTIO_NET_F_HOST_TSO4);
	len = vmstate_save(&virtio_net_vmstate, &copy, buf);
	assert_int_not_equal(vmstate_load(&virtio_net_vmstate, &copy, sizeof(copy), buf, len, err,
					  sizeof(err)), 0);
}

static void test_reset_restores(void **state)
{
	struct fixture *f = *state;
	static const uint8_t newmac[6] = { 0x52, 0x54, 0, 1, 1, 1 };

	create(f, false, 1);
	start(f, CTRL_FEATURES);
	assert_int_equal(rx_mode(f, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK);
	assert_int_equal(ctrl(f, 2, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, newmac, 6),
			 VIRTIO_NET_OK);
	mwrite(f, VP_COMMON_STATUS, 0, 1);
	assert_true(f->n.st.promisc);
	assert_memory_equal(f->n.st.mac, dev_mac, 6);
	assert_int_equal(mread(f, VP_DEVICE_OFF + 5, 1), dev_mac[5]);
	mwrite(f, VP_COMMON_Q_SELECT, 2, 2);
	assert_int_equal(mread(f, VP_COMMON_Q_SIZE, 2), VIRTIO_NET_CTRL_QUEUE_SIZE);
	mwrite(f, VP_COMMON_Q_SELECT, 0, 2);
	assert_int_equal(mread(f, VP_COMMON_Q_SIZE, 2), VIRTIO_NET_QUEUE_SIZE);
}

static uint16_t avail_event(struct fixture *f, unsigned q)
{
	return vt_rd16(&f->mem, USED_GPA(q) + 4 + 8 * QSIZE);
}

/* EVENT_IDX: no kicks wanted while the device has work in hand; a kick
 * for the next buffer once rx ran dry, for the next frame once tx did. */
static void test_kick_suppression(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[64];
	uint64_t a = alloc_buf(f, 12 + 64);

	create(f, false, 1);
	start(f, F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_F_RING_EVENT_IDX));
	for (int i = 0; i < 4; i++)
		post_rx(f, 0, 256);
	make_frame(frame, dev_mac, 64, 0);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	/* buffers in hand: avail_event was not moved along (no refill kicks) */
	assert_true(virtq_need_event(avail_event(f, 0), 5, 4) == false);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 0);	/* dry */
	/* the next buffer the driver adds must be kicked */
	assert_int_equal(avail_event(f, 0), 4);
	assert_true(virtq_need_event(avail_event(f, 0), 5, 4));
	post_rx(f, 0, 256);
	vt_kick(&f->n.vp, 0);
	assert_int_equal(f->be.ready_calls, 1);
	assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
	/* tx: after a pass that emptied the ring, the next frame is kicked */
	memset(host(f, a), 0, 12);
	make_frame(host(f, a) + 12, dev_mac, 64, 1);
	post(f, 1, &(struct seg){ a, 76, false }, 1);
	post(f, 1, &(struct seg){ a, 76, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 2);
	assert_int_equal(avail_event(f, 1), 2);
	/* a full backend: no kicks wanted, send_ready resumes */
	f->be.full = true;
	post(f, 1, &(struct seg){ a, 76, false }, 1);
	vt_kick(&f->n.vp, 1);
	assert_false(virtq_need_event(avail_event(f, 1), 4, 3));
	f->be.full = false;
	f->be.fe->send_ready(f->be.fe->opaque);
	assert_int_equal(f->be.nframes, 3);
	assert_int_equal(avail_event(f, 1), 3);
}

/* The driver adding tx frames while the device sends (from the backend's
 * send): would it be asked to kick? */
struct tx_adder {
	struct fixture *f;
	uint64_t frame_gpa;
	unsigned left;			/* frames still to add */
	unsigned kicks_wanted;
};

static void add_tx_mid_pass(void *arg)
{
	struct tx_adder *a = arg;
	uint16_t old = a->f->avail_idx[1];

	if (!a->left)
		return;
	a->left--;
	post(a->f, 1, &(struct seg){ a->frame_gpa, 76, false }, 1);
	if (virtq_need_event(avail_event(a->f, 1), a->f->avail_idx[1], old))
		a->kicks_wanted++;
}

/* EVENT_IDX: a pass that begins with kicks enabled at the driver's index
 * (as when the enable-and-recheck of the last pass found frames added
 * meanwhile) takes kicks off entirely: the driver adding while the device
 * works is never asked to kick, on tx nor on rx; once a queue runs empty
 * the next addition is kicked again. */
static void test_no_kicks_during_pass(void **state)
{
	struct fixture *f = *state;
	struct tx_adder adder = { .f = f, .left = 3 };
	uint8_t frame[64];

	create(f, false, 1);
	start(f, F(VIRTIO_F_RING_EVENT_IDX));
	adder.frame_gpa = alloc_buf(f, 12 + 64);
	memset(host(f, adder.frame_gpa), 0, 12);
	make_frame(host(f, adder.frame_gpa) + 12, dev_mac, 64, 1);
	post(f, 1, &(struct seg){ adder.frame_gpa, 76, false }, 1);
	post(f, 1, &(struct seg){ adder.frame_gpa, 76, false }, 1);
	/* the device's enable already saw both: the race, made by hand */
	virtq_enable_notify(&f->n.vp.vqs[1]);
	assert_int_equal(avail_event(f, 1), 2);
	f->be.on_send = add_tx_mid_pass;
	f->be.on_send_arg = &adder;
	vt_kick(&f->n.vp, 1);
	assert_int_equal(f->be.nframes, 5);
	assert_int_equal(adder.kicks_wanted, 0);
	assert_true(virtq_need_event(avail_event(f, 1), 6, 5));	/* empty: kick again */
	/* rx: buffers in hand after an enable that found them (rx_arm's race) */
	for (int i = 0; i < 4; i++)
		post_rx(f, 0, 256);
	virtq_enable_notify(&f->n.vp.vqs[0]);
	make_frame(frame, dev_mac, 64, 0);
	for (uint16_t i = 0; i < 3; i++) {
		assert_int_equal(deliver(f, NULL, 0, frame, 64), 64);
		assert_false(virtq_need_event(avail_event(f, 0), 5 + i, 4 + i));
		post_rx(f, 0, 256);
	}
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_features),
		T(test_offload_features),
		T(test_host_mtu),
		T(test_guest_offloads_offered),
		T(test_guest_offloads_set),
		T(test_guest_offloads_not_negotiated),
		T(test_tx_single_and_chained),
		T(test_tx_vnet_hdr_passed),
		T(test_tx_backend_full),
		T(test_rx_without_mrg),
		T(test_rx_mergeable),
		T(test_rx_no_buffers_then_resume),
		T(test_rx_vnet_hdr_from_backend),
		T(test_ctrl_rx_mode_and_filter),
		T(test_ctrl_vlan),
		T(test_mac_table_overflow),
		T(test_mq_pairs),
		T(test_legacy_header),
		T(test_malformed_tx),
		T(test_malformed_rx_ctrl),
		T(test_vectors_zero),
		T(test_vmstate),
		T(test_reset_restores),
		T(test_kick_suppression),
		T(test_no_kicks_during_pass),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
