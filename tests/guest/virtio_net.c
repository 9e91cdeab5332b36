/* virtio_net.c: the kit's CPL3 virtio-net driver and network cases, on the
 * virtio_drv library. The driver (modern or legacy) sets up rx/tx queue
 * pairs (several with MQ) and the control queue when offered, keeps the rx
 * rings full (12-byte header with MRG_RXBUF or VERSION_1, else 10), sends
 * and receives whole Ethernet frames, and takes rx interrupts over MSI-X.
 * Cases:
 *   net-peer role=a|b   two guests swap numbered frames of varied sizes
 *                       through a socket backend; order and content are
 *                       checked; the control queue turns promiscuous mode
 *                       off and loads a MAC table (frames to a foreign MAC
 *                       are dropped, frames to a listed one pass);
 *                       gap=US paces the data frames (datagram backends);
 *                       with CTRL_VLAN one VLAN is added and tagged frames
 *                       for it pass, for another are dropped
 *   net-user            DHCP, ARP and a hand-rolled TCP client against
 *                       slirp (QEMU/libslirp user networking)
 *   net-tap             ARP and ICMP echo both ways with a host address
 *                       (and the second queue pair with MQ)
 *   net-robust          odd tx chains, then DHCP: the device survives
 *   net-bench role=tx|rx   frames per second through a backend
 * The small IPv4 stack here (ARP, ICMP echo, UDP for DHCP, one TCP
 * connection) is just enough for those checks. */
#include "tests/guest/virtio_drv.h"

/* ---------------- virtio-net definitions ---------------- */
#define NET_F_MAC		(1ull << 5)
#define NET_F_MRG_RXBUF		(1ull << 15)
#define NET_F_STATUS		(1ull << 16)
#define NET_F_CTRL_VQ		(1ull << 17)
#define NET_F_CTRL_RX		(1ull << 18)
#define NET_F_CTRL_VLAN		(1ull << 19)
#define NET_F_MQ		(1ull << 22)
#define NET_F_ANY_LAYOUT	(1ull << 27)

#define CTRL_RX			0
#define CTRL_RX_PROMISC		0
#define CTRL_MAC		1
#define CTRL_MAC_TABLE_SET	0
#define CTRL_VLAN		2
#define CTRL_VLAN_ADD		0
#define CTRL_MQ			4
#define CTRL_MQ_VQ_PAIRS_SET	0

#define NET_MAX_PAIRS		2
#define NET_QSIZE		256
#define NET_BUF			2048	/* one rx or tx slot: header + frame */
#define RX_MAX_BUFS		8	/* buffers one merged frame may span */
#define ETH_MAX			1514
#define ETH_MIN			60

#define MSIX_CONFIG		0
#define MSIX_RX			1
#define VEC_NET_CONFIG		0x48
#define VEC_NET_RX		0x49

struct net_pair {
	struct virtq rx, tx;
	u8 **tx_free;		/* stack of free tx slots */
	u16 tx_nfree;
};

struct nic {
	struct vdev d;
	struct net_pair q[NET_MAX_PAIRS];
	struct virtq ctrl;
	u16 pairs;		/* queue pairs in use */
	u16 max_pairs;		/* device's max_virtqueue_pairs (1 without MQ) */
	u32 hdr_len;		/* 12 or 10 */
	bool split_hdr;		/* legacy without ANY_LAYOUT: header in its own descriptor */
	bool has_ctrl, msix;
	u8 mac[6];
	u8 *ctrl_buf;
	u64 rx_frames, rx_bad, rx_pair[NET_MAX_PAIRS];
	u64 tx_kicks, rx_kicks;		/* notifications actually written */
	u32 rxbuf;		/* rx buffer length (rxbuf=N with MRG_RXBUF, else NET_BUF) */
	u64 rx_merged;		/* frames that spanned several rx buffers */
	u8 *reasm;		/* where such a frame is put together */
};

static struct nic nic;

static bool arg_is(const char *key, const char *val)
{
	char buf[16];

	return cmdline_get(key, buf, sizeof(buf)) && !strncmp(buf, val, 16);
}

static u64 arg_num(const char *key, u64 def)
{
	char buf[24];

	return cmdline_get(key, buf, sizeof(buf)) ? parse_num(buf, NULL) : def;
}

/* ---------------- queues ---------------- */
static int rx_add(struct virtq *q, u8 *slot)
{
	struct vbuf b[2] = { { slot, nic.rxbuf, true } };

	if (nic.split_hdr) {
		b[0].len = nic.hdr_len;
		b[1] = (struct vbuf){ slot + nic.hdr_len, nic.rxbuf - nic.hdr_len, true };
		return vq_add(q, b, 2, slot);
	}
	return vq_add(q, b, 1, slot);
}

static int setup_pair(u16 p)
{
	struct net_pair *np = &nic.q[p];
	u16 rx_msix = nic.msix ? MSIX_RX : VQ_NO_MSIX;

	if (vq_setup(&nic.d, &np->rx, 2 * p, NET_QSIZE, rx_msix) < 0 ||
	    vq_setup(&nic.d, &np->tx, 2 * p + 1, NET_QSIZE, VQ_NO_MSIX) < 0)
		return -1;
	vq_disable_cb(&np->tx);
	np->tx_free = dma_alloc(sizeof(u8 *) * np->tx.size, 16);
	if (!np->tx_free)
		return fail("out of memory for tx slots");
	for (u16 i = 0; i < np->tx.size; i++) {
		np->tx_free[i] = dma_alloc(NET_BUF, 64);
		if (!np->tx_free[i])
			return fail("out of memory for tx buffers");
	}
	np->tx_nfree = np->tx.size;
	/* Fill the rx ring (two descriptors per buffer when split). */
	while (np->rx.num_free >= (nic.split_hdr ? 2 : 1)) {
		u8 *slot = dma_alloc(NET_BUF, 64);

		if (!slot)
			return fail("out of memory for rx buffers");
		rx_add(&np->rx, slot);
	}
	return 0;
}

/* One control command: class, command, data; 0 when the device acks. */
static int ctrl_cmd(u8 cls, u8 cmd, const void *data, u32 len)
{
	u8 *hdr = nic.ctrl_buf, *ack = nic.ctrl_buf + 512, *payload = nic.ctrl_buf + 2;
	struct vbuf b[3] = { { hdr, 2, false }, { payload, len, false }, { ack, 1, true } };
	u32 used;
	u64 end = now_ns() + 2000000000ull;

	hdr[0] = cls;
	hdr[1] = cmd;
	memcpy(payload, data, len);
	*ack = 0xff;
	if (vq_add(&nic.ctrl, b, 3, hdr) < 0)
		return fail("control queue full");
	vq_notify(&nic.ctrl);
	while (!vq_pop(&nic.ctrl, &used)) {
		if (now_ns() > end)
			return fail("control command %u.%u: no completion", cls, cmd);
		cpu_relax();
	}
	return *ack == 0 ? 0 : -1;
}

/* Find, negotiate and start the first virtio-net device. */
static int nic_open(bool want_mq)
{
	u64 want = VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | NET_F_MAC | NET_F_STATUS |
		   NET_F_MRG_RXBUF | NET_F_CTRL_VQ | NET_F_CTRL_RX | NET_F_CTRL_VLAN;
	bool legacy = arg_is("mode", "legacy");

	if (legacy && !arg_is("anylayout", "0"))	/* implied by VERSION_1 */
		want |= NET_F_ANY_LAYOUT;
	memset(&nic, 0, sizeof(nic));
	if (arg_is("mrg", "0"))
		want &= ~NET_F_MRG_RXBUF;
	if (arg_is("evidx", "0"))
		want &= ~VIRTIO_F_EVENT_IDX;
	if (arg_is("ctrl", "0"))
		want &= ~(NET_F_CTRL_VQ | NET_F_CTRL_RX | NET_F_CTRL_VLAN);
	if (arg_is("vlan", "0"))
		want &= ~NET_F_CTRL_VLAN;
	if (want_mq && !legacy)
		want |= NET_F_MQ;
	if (vdev_find(&nic.d, VIRTIO_ID_NET, 0) < 0)
		return fail("no virtio-net-pci device (1af4:1000 or 1af4:1041) on bus 0");
	if (vdev_map(&nic.d, legacy) < 0 || vdev_init(&nic.d, want) < 0)
		return -1;
	u64 f = nic.d.features;

	nic.hdr_len = (f & (NET_F_MRG_RXBUF | VIRTIO_F_VERSION_1)) ? 12 : 10;
	nic.split_hdr = !(f & (NET_F_ANY_LAYOUT | VIRTIO_F_VERSION_1));
	nic.has_ctrl = (f & NET_F_CTRL_VQ) != 0;
	nic.rxbuf = NET_BUF;
	if (f & NET_F_MRG_RXBUF) {	/* small buffers: frames span several */
		u32 want_buf = arg_num("rxbuf", NET_BUF);

		nic.rxbuf = want_buf < 256 ? 256 : want_buf > NET_BUF ? NET_BUF : want_buf;
	}
	nic.reasm = dma_alloc(RX_MAX_BUFS * NET_BUF, 64);
	if (!nic.reasm)
		return fail("out of memory");
	nic.msix = nic.d.msix_cap && nic.d.msix_size >= 2 && !arg_is("msix", "0");
	if (nic.msix) {
		vdev_msix_set(&nic.d, MSIX_CONFIG, VEC_NET_CONFIG, false);
		vdev_msix_set(&nic.d, MSIX_RX, VEC_NET_RX, false);
		vdev_msix_enable(&nic.d, true);
		if (vdev_config_msix(&nic.d, MSIX_CONFIG) < 0)
			return fail("config MSI-X entry not accepted");
	}
	/* The device config is read after MSI-X is on (legacy moves it). */
	nic.max_pairs = (f & NET_F_MQ) ? vdev_cfg16(&nic.d, 8) : 1;
	if (!nic.max_pairs || nic.max_pairs > 0x8000)
		return fail("max_virtqueue_pairs %u", nic.max_pairs);
	nic.pairs = nic.max_pairs < NET_MAX_PAIRS ? nic.max_pairs : NET_MAX_PAIRS;
	if (f & NET_F_MAC)
		for (int i = 0; i < 6; i++)
			nic.mac[i] = vdev_cfg8(&nic.d, i);
	else
		memcpy(nic.mac, "\x52\x54\x00\x00\x00\x01", 6);
	for (u16 p = 0; p < nic.pairs; p++)
		if (setup_pair(p) < 0)
			return -1;
	if (nic.has_ctrl) {
		if (vq_setup(&nic.d, &nic.ctrl, 2 * nic.max_pairs, 16, VQ_NO_MSIX) < 0)
			return -1;
		vq_disable_cb(&nic.ctrl);
		nic.ctrl_buf = dma_alloc(1024, 64);
	}
	if (vdev_driver_ok(&nic.d) < 0)
		return -1;
	for (u16 p = 0; p < nic.pairs; p++)
		vq_notify(&nic.q[p].rx);
	if ((f & NET_F_STATUS) && !(vdev_cfg16(&nic.d, 6) & 1))
		return fail("link down (status %#x)", vdev_cfg16(&nic.d, 6));
	if (nic.pairs > 1) {
		u16 n = nic.pairs;

		if (ctrl_cmd(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, &n, 2) < 0)
			return fail("VQ_PAIRS_SET %u refused", n);
	}
	info("mac %02x:%02x:%02x:%02x:%02x:%02x, features %#lx, header %u, rx/tx %u/%u, "
	     "rx buffers %u, pairs %u of %u, ctrl %s, %s", nic.mac[0], nic.mac[1], nic.mac[2],
	     nic.mac[3], nic.mac[4], nic.mac[5], f, nic.hdr_len, nic.q[0].rx.size,
	     nic.q[0].tx.size, nic.rxbuf,
	     nic.pairs, nic.max_pairs, nic.has_ctrl ? "yes" : "no", nic.msix ? "MSI-X" : "polled");
	return 0;
}

/* ---------------- frames ---------------- */
static void tx_reclaim(struct net_pair *np)
{
	u8 *slot;

	while ((slot = vq_pop(&np->tx, NULL)))
		np->tx_free[np->tx_nfree++] = slot;
}

/* A free tx slot's frame area (header zeroed), or NULL when the ring is full. */
static u8 *tx_slot(u16 p)
{
	struct net_pair *np = &nic.q[p];

	tx_reclaim(np);
	if (!np->tx_nfree || np->tx.num_free < (nic.split_hdr ? 2 : 1))
		return NULL;
	return np->tx_free[np->tx_nfree - 1] + nic.hdr_len;
}

/* Queue the frame written into tx_slot(p); kick unless batching. */
static void tx_commit(u16 p, u32 len, bool kick)
{
	struct net_pair *np = &nic.q[p];
	u8 *slot = np->tx_free[--np->tx_nfree];
	struct vbuf b[2] = { { slot, nic.hdr_len + len, false } };

	memset(slot, 0, nic.hdr_len);
	if (nic.split_hdr) {
		b[0].len = nic.hdr_len;
		b[1] = (struct vbuf){ slot + nic.hdr_len, len, false };
	}
	if (vq_add(&np->tx, b, nic.split_hdr ? 2 : 1, slot) < 0) {
		np->tx_free[np->tx_nfree++] = slot;	/* tx_slot checked the room: not reached */
		return;
	}
	if (kick)
		nic.tx_kicks += vq_kick(&np->tx);
}

/* Send one frame (padded to 60 bytes); waits up to 1 s for a free slot. */
static int nic_send_on(u16 p, const void *frame, u32 len)
{
	u64 end = now_ns() + 1000000000ull;
	u8 *dst;

	while (!(dst = tx_slot(p))) {
		if (now_ns() > end)
			return fail("tx queue %u stuck (used idx %u)", 2 * p + 1,
				    vq_used_idx(&nic.q[p].tx));
		cpu_relax();
	}
	memcpy(dst, frame, len);
	if (len < ETH_MIN) {
		memset(dst + len, 0, ETH_MIN - len);
		len = ETH_MIN;
	}
	tx_commit(p, len, true);
	return 0;
}

static u16 nic_tx_pair;	/* the pair nic_send uses */

static int nic_send(const void *frame, u32 len)
{
	return nic_send_on(nic_tx_pair, frame, len);
}

/* Next received frame from any pair, or NULL; the caller hands the
 * buffers back with rx_done(). With MRG_RXBUF a frame may span
 * num_buffers buffers (the device publishes them together): they are
 * copied into one. */
struct rx_frame {
	u8 *data;
	u32 len;
	u8 *slot[RX_MAX_BUFS];
	u32 nslots;
	u16 pair;
};

/* The rest of a merged frame: nbufs - 1 more buffers after the first. */
static bool rx_merge(struct rx_frame *f, u32 first_len, u32 nbufs)
{
	u32 off = first_len;

	memcpy(nic.reasm, f->data, first_len);
	while (f->nslots < nbufs) {
		u32 len;
		u8 *slot = vq_pop(&nic.q[f->pair].rx, &len);

		if (!slot)
			return false;		/* the device published a partial frame */
		f->slot[f->nslots++] = slot;
		if (len > nic.rxbuf || off + len > RX_MAX_BUFS * NET_BUF)
			return false;
		memcpy(nic.reasm + off, slot, len);
		off += len;
	}
	f->data = nic.reasm;
	f->len = off;
	nic.rx_merged++;
	return true;
}

static bool rx_poll(struct rx_frame *f)
{
	for (u16 p = 0; p < nic.pairs; p++) {
		u32 len, nbufs = 1;
		u8 *slot = vq_pop(&nic.q[p].rx, &len);
		bool ok;

		if (!slot)
			continue;
		f->slot[0] = slot;
		f->nslots = 1;
		f->pair = p;
		f->data = slot + nic.hdr_len;
		f->len = len >= nic.hdr_len ? len - nic.hdr_len : 0;
		/* num_buffers only with MRG_RXBUF: QEMU 7.2 leaves it 0
		 * otherwise (the spec says 1). */
		if (nic.d.features & NET_F_MRG_RXBUF)
			nbufs = *(u16 *)(slot + 10);
		ok = len <= nic.rxbuf && len >= nic.hdr_len && nbufs >= 1 && nbufs <= RX_MAX_BUFS;
		if (ok && nbufs > 1)
			ok = rx_merge(f, f->len, nbufs);
		if (!ok || f->len < 14) {
			nic.rx_bad++;
			f->len = 0;
		}
		nic.rx_frames++;
		nic.rx_pair[p]++;
		return true;
	}
	return false;
}

static void rx_done(struct rx_frame *f, bool kick)
{
	for (u32 i = 0; i < f->nslots; i++)
		rx_add(&nic.q[f->pair].rx, f->slot[i]);
	if (kick)
		nic.rx_kicks += vq_kick(&nic.q[f->pair].rx);
}

/* ---------------- byte order, checksums ---------------- */
static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 be32(const u8 *p) { return (u32)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v) { p[0] = v >> 8; p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { put16(p, v >> 16); put16(p + 2, (u16)v); }

static u32 csum_add(u32 sum, const u8 *p, u32 len)
{
	for (u32 i = 0; i + 1 < len; i += 2)
		sum += be16(p + i);
	if (len & 1)
		sum += p[len - 1] << 8;
	return sum;
}

static u16 csum_fold(u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (u16)~sum;
}

static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void eth_header(u8 *f, const u8 *dst, u16 type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, nic.mac, 6);
	put16(f + 12, type);
}

static void fmt_mac(char *s, const u8 *m)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 6; i++) {
		s[3 * i] = hex[m[i] >> 4];
		s[3 * i + 1] = hex[m[i] & 15];
		s[3 * i + 2] = i < 5 ? ':' : 0;
	}
}

/* ---------------- net-peer ---------------- */
#define ETH_P_KIT	0x88b5
#define KIT_HDR		(14 + 12)	/* eth + kind, role, flag, pad, seq, len */
enum { PK_HELLO = 1, PK_DATA, PK_DONE, PK_GOTALL, PK_STRAY, PK_READY, PK_END };

static const u8 stray_drop[6] = { 0x02, 0, 0, 0, 0, 0x99 };	/* never listed */
static const u8 stray_pass[6] = { 0x02, 0, 0, 0, 0, 0x98 };	/* in the MAC table */
#define VLAN_LISTED	100	/* added with CTRL_VLAN */
#define VLAN_OTHER	200	/* never added: tagged strays for it must be dropped */

struct peer {
	char role;
	u8 mac[6];
	bool seen, seen_us, started, peer_done, gotall_sent, peer_gotall;
	u32 count, strays, sent, recv, peer_count, peer_strays;
	u32 stray_drop_seen, stray_pass_seen;
	u32 vlan_drop_seen, vlan_pass_seen;	/* tagged strays to our MAC */
	u32 stall_ms;		/* stall=MS: stop taking frames once, half way */
	u32 gap_us;		/* gap=US between data frames (datagram backends,
				 * which drop what a full socket cannot hold) */
	u64 next_send, next_done;
	bool filtering, vlan_filtering;
	u8 frame[ETH_MAX];
};

static struct peer pr;

static u32 peer_size(u32 seq, char role)
{
	return ETH_MIN + (seq * 97 + (u32)role * 13) % (ETH_MAX - ETH_MIN + 1);
}

static u8 peer_byte(u32 seq, u32 i, char role)
{
	return (u8)(seq * 31 + i * 7 + (u32)role);
}

static u32 kit_frame(u8 *f, const u8 *dst, u8 kind, u8 flag, u32 seq, u32 len)
{
	eth_header(f, dst, ETH_P_KIT);
	f[14] = kind;
	f[15] = (u8)pr.role;
	f[16] = flag;
	f[17] = 0;
	put32(f + 18, seq);
	put32(f + 22, len);
	return KIT_HDR;
}

static int peer_send_ctl(const u8 *dst, u8 kind, u8 flag, u32 seq, u32 len)
{
	u8 f[ETH_MIN];

	kit_frame(f, dst, kind, flag, seq, len);
	return nic_send(f, KIT_HDR);
}

/* A control frame to dst behind an 802.1Q tag with VLAN id vid. */
static int peer_send_tagged(const u8 *dst, u16 vid, u8 kind, u32 seq)
{
	u8 f[ETH_MIN + 4], k[ETH_MIN];

	kit_frame(k, dst, kind, 0, seq, 0);
	memcpy(f, k, 12);
	f[12] = 0x81;
	f[13] = 0x00;
	f[14] = vid >> 8;
	f[15] = vid & 0xff;
	memcpy(f + 16, k + 12, KIT_HDR - 12);
	return nic_send(f, KIT_HDR + 4);
}

static int peer_send_data(u32 seq)
{
	u32 len = peer_size(seq, pr.role);

	kit_frame(pr.frame, pr.mac, PK_DATA, 0, seq, len);
	for (u32 i = KIT_HDR; i < len; i++)
		pr.frame[i] = peer_byte(seq, i, pr.role);
	return nic_send(pr.frame, len);
}

static int peer_check_data(const u8 *f, u32 len, char role)
{
	u32 seq = be32(f + 18);

	if (seq != pr.recv)
		return fail("frame %u from %c arrived when %u was expected", seq, role, pr.recv);
	if (len != peer_size(seq, role) || be32(f + 22) != len)
		return fail("frame %u: %u bytes, expected %u", seq, len, peer_size(seq, role));
	if (memcmp(f, nic.mac, 6))
		return fail("frame %u not addressed to us", seq);
	for (u32 i = KIT_HDR; i < len; i++)
		if (f[i] != peer_byte(seq, i, role))
			return fail("frame %u byte %u is %#x, expected %#x", seq, i, f[i],
				    peer_byte(seq, i, role));
	pr.recv++;
	return 0;
}

static int peer_receive(const u8 *f, u32 len)
{
	if (len >= KIT_HDR + 4 && be16(f + 12) == 0x8100 && be16(f + 16) == ETH_P_KIT &&
	    f[19] != (u8)pr.role) {
		if ((be16(f + 14) & 0xfff) == VLAN_LISTED)
			pr.vlan_pass_seen++;
		else
			pr.vlan_drop_seen++;
		return 0;
	}
	if (len < KIT_HDR || be16(f + 12) != ETH_P_KIT || f[15] == (u8)pr.role)
		return 0;	/* not ours (or our own frame looped back) */
	switch (f[14]) {
	case PK_HELLO:
		if (!pr.seen) {
			memcpy(pr.mac, f + 6, 6);
			pr.seen = true;
		}
		if (f[16])
			pr.seen_us = true;
		return 0;
	case PK_DATA:
		pr.seen_us = true;
		return peer_check_data(f, len, (char)f[15]);
	case PK_STRAY:
		if (!memcmp(f, stray_drop, 6))
			pr.stray_drop_seen++;
		else
			pr.stray_pass_seen++;
		return 0;
	case PK_DONE:
		pr.peer_done = true;
		pr.peer_count = be32(f + 18);
		pr.peer_strays = be32(f + 22);
		if (pr.recv != pr.peer_count)
			return fail("peer sent %u frames, %u arrived", pr.peer_count, pr.recv);
		return 0;
	case PK_GOTALL:
		pr.peer_gotall = true;
		return 0;
	}
	return 0;
}

static int peer_drain(void)
{
	struct rx_frame rf;

	while (rx_poll(&rf)) {
		int r = peer_receive(rf.data, rf.len);

		rx_done(&rf, true);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Promiscuous off and a MAC table with stray_pass: the device must drop
 * frames for stray_drop and pass those for stray_pass. */
static int peer_filter_setup(void)
{
	u8 off = 0, tables[4 + 6 + 4];

	if (!(nic.d.features & NET_F_CTRL_RX))
		return 0;
	if (ctrl_cmd(CTRL_RX, CTRL_RX_PROMISC, &off, 1) < 0)
		return fail("PROMISC off refused");
	*(u32 *)tables = 1;			/* unicast entries (guest endian) */
	memcpy(tables + 4, stray_pass, 6);
	*(u32 *)(tables + 10) = 0;		/* multicast entries */
	if (ctrl_cmd(CTRL_MAC, CTRL_MAC_TABLE_SET, tables, sizeof(tables)) < 0)
		return fail("MAC_TABLE_SET refused");
	pr.filtering = true;
	info("control queue: promiscuous off, MAC table {02:00:00:00:00:98}");
	if (nic.d.features & NET_F_CTRL_VLAN) {
		u16 vid = VLAN_LISTED;

		if (ctrl_cmd(CTRL_VLAN, CTRL_VLAN_ADD, &vid, 2) < 0)
			return fail("VLAN_ADD refused");
		pr.vlan_filtering = true;
		info("control queue: VLAN %u added", VLAN_LISTED);
	}
	return 0;
}

static int peer_step(u64 *next_hello)
{
	u64 now = now_ns();

	if (!pr.started) {
		if (pr.seen && pr.seen_us) {
			char m[18];

			fmt_mac(m, pr.mac);
			info("peer %s answered, sending %u frames", m, pr.count);
			pr.started = true;
		} else if (now >= *next_hello) {
			*next_hello = now + 50000000ull;
			return peer_send_ctl(bcast, PK_HELLO, pr.seen, 0, 0);
		}
		return 0;
	}
	if (pr.sent < pr.count) {
		if (now < pr.next_send)
			return 0;
		pr.next_send = now + pr.gap_us * 1000ull;
		if (pr.stall_ms && pr.sent == pr.count / 2) {
			info("not taking frames for %u ms (rx ring fills up)", pr.stall_ms);
			delay_ns(pr.stall_ms * 1000000ull);
			info("after the stall: %u rx buffers filled, %u still free",
			     (u16)(vq_used_idx(&nic.q[0].rx) - nic.q[0].rx.last_used),
			     (u16)(nic.q[0].rx.avail_idx - vq_used_idx(&nic.q[0].rx)));
			pr.stall_ms = 0;
		}
		if (pr.sent % 50 == 25) {	/* a pair of strays now and then */
			if (peer_send_ctl(stray_drop, PK_STRAY, 0, pr.strays, 0) < 0 ||
			    peer_send_ctl(stray_pass, PK_STRAY, 0, pr.strays + 1, 0) < 0 ||
			    peer_send_tagged(pr.mac, VLAN_LISTED, PK_STRAY, pr.strays) < 0 ||
			    peer_send_tagged(pr.mac, VLAN_OTHER, PK_STRAY, pr.strays + 1) < 0)
				return -1;
			pr.strays += 2;
		}
		return peer_send_data(pr.sent++);
	}
	/* DONE again every 50 ms until the peer has all: a datagram may be lost. */
	if (!pr.peer_gotall && now >= pr.next_done) {
		pr.next_done = now + 50000000ull;
		return peer_send_ctl(pr.mac, PK_DONE, 0, pr.count, pr.strays / 2);
	}
	if (pr.peer_done && pr.recv == pr.peer_count && !pr.gotall_sent) {
		pr.gotall_sent = true;
		return peer_send_ctl(pr.mac, PK_GOTALL, 0, pr.recv, 0);
	}
	return 0;
}

int case_net_peer(void)
{
	char role[4];
	u64 next_hello = 0, end;

	memset(&pr, 0, sizeof(pr));
	if (!cmdline_get("role", role, sizeof(role)) || (role[0] != 'a' && role[0] != 'b'))
		return fail("role=a or role=b needed");
	pr.role = role[0];
	pr.count = arg_num("count", 500);
	pr.stall_ms = arg_num("stall", 0);
	pr.gap_us = arg_num("gap", 0);
	if (nic_open(false) < 0 || (nic.has_ctrl && peer_filter_setup() < 0))
		return -1;
	u64 irqs = irq_counts[VEC_NET_RX];

	for (u16 p = 0; p < nic.pairs; p++)
		vq_enable_cb(&nic.q[p].rx);
	end = now_ns() + arg_num("timeout", 30) * 1000000000ull;
	while (!(pr.gotall_sent && pr.peer_gotall)) {
		if (peer_drain() < 0 || peer_step(&next_hello) < 0)
			return -1;
		if (now_ns() > end)
			return fail("timeout: sent %u/%u, received %u (peer done %d count %u), "
				    "handshake %d/%d, gotall %d/%d", pr.sent, pr.count, pr.recv,
				    pr.peer_done, pr.peer_count, pr.seen, pr.seen_us,
				    pr.gotall_sent, pr.peer_gotall);
	}
	/* Linger: repeat GOTALL so a peer still waiting for it gets it. */
	for (int i = 0; i < 6; i++) {
		u64 t = now_ns() + 50000000ull;

		while (now_ns() < t)
			if (peer_drain() < 0)
				return -1;
		peer_send_ctl(pr.mac, PK_GOTALL, 0, pr.recv, 0);
	}
	info("sent %u, received %u in order and intact; strays to a foreign MAC %u of %u, "
	     "to a listed MAC %u of %u", pr.sent, pr.recv, pr.stray_drop_seen, pr.peer_strays,
	     pr.stray_pass_seen, pr.peer_strays);
	if (pr.filtering && pr.stray_drop_seen)
		return fail("%u frames to a foreign MAC passed with promiscuous mode off",
			    pr.stray_drop_seen);
	if (pr.filtering && pr.stray_pass_seen != pr.peer_strays)
		return fail("%u of %u frames to a MAC-table address arrived",
			    pr.stray_pass_seen, pr.peer_strays);
	info("tagged strays: VLAN %u %u of %u, VLAN %u %u of %u (filter %s)", VLAN_LISTED,
	     pr.vlan_pass_seen, pr.peer_strays, VLAN_OTHER, pr.vlan_drop_seen, pr.peer_strays,
	     pr.vlan_filtering ? "on" : "off");
	if (pr.vlan_filtering && (pr.vlan_drop_seen || pr.vlan_pass_seen != pr.peer_strays))
		return fail("VLAN filter: %u of %u frames for an added VLAN and %u for another "
			    "arrived", pr.vlan_pass_seen, pr.peer_strays, pr.vlan_drop_seen);
	if (nic.rx_bad)
		return fail("%lu rx buffers with a bad length or num_buffers", nic.rx_bad);
	if (nic.msix && irq_counts[VEC_NET_RX] == irqs)
		return fail("no rx interrupt on MSI-X vector %#x", VEC_NET_RX);
	info("rx interrupts: %lu (MSI-X %s), bad rx buffers %lu, frames over several buffers %lu",
	     irq_counts[VEC_NET_RX] - irqs, nic.msix ? "on" : "off", nic.rx_bad, nic.rx_merged);
	if (nic.rxbuf < ETH_MAX && !nic.rx_merged)
		return fail("%u-byte rx buffers but no frame spanned several", nic.rxbuf);
	vdev_reset(&nic.d);
	return 0;
}

/* ---------------- IPv4: ARP, ICMP, UDP, TCP ---------------- */
#define ETH_P_IP	0x0800
#define ETH_P_ARP	0x0806
#define IP_ICMP		1
#define IP_TCP		6
#define IP_UDP		17

struct ipstate {
	u32 ip, gw, peer;	/* ours, the gateway/host, the TCP server */
	u8 gw_mac[6];
	bool gw_known;
	u16 ip_id;
	u32 pings_answered;
	/* the last UDP or TCP packet for us: what the cases wait for */
	u8 pkt[ETH_MAX];
	u32 pkt_len;
	u8 proto;
	bool icmp_reply;
	u16 icmp_reply_seq;
};

static struct ipstate ips;

static u32 parse_ip(const char *s)
{
	u32 ip = 0;

	for (int i = 0; i < 4; i++) {
		ip = ip << 8 | (u8)parse_num(s, &s);
		if (*s == '.')
			s++;
	}
	return ip;
}

static u32 arg_ip(const char *key, const char *def)
{
	char buf[20];

	return parse_ip(cmdline_get(key, buf, sizeof(buf)) ? buf : def);
}

/* IPv4 header at f + 14 for a payload of len bytes; returns the header length. */
static u32 ip_header(u8 *f, const u8 *dst_mac, u32 src, u32 dst, u8 proto, u32 len)
{
	u8 *h = f + 14;

	eth_header(f, dst_mac, ETH_P_IP);
	memset(h, 0, 20);
	h[0] = 0x45;
	put16(h + 2, (u16)(20 + len));
	put16(h + 4, ips.ip_id++);
	put16(h + 6, 0x4000);		/* DF */
	h[8] = 64;
	h[9] = proto;
	put32(h + 12, src);
	put32(h + 16, dst);
	put16(h + 10, csum_fold(csum_add(0, h, 20)));
	return 14 + 20;
}

/* TCP/UDP checksum with the IPv4 pseudo header (segment at f + 34). */
static u16 l4_csum(const u8 *f, u8 proto, u32 len)
{
	u8 ph[12];

	memcpy(ph, f + 26, 8);
	ph[8] = 0;
	ph[9] = proto;
	put16(ph + 10, (u16)len);
	return csum_fold(csum_add(csum_add(0, ph, 12), f + 34, len));
}

static int arp_send(u16 op, const u8 *dst_mac, const u8 *tha, u32 tpa)
{
	u8 f[ETH_MIN] = { 0 };
	u8 *a = f + 14;

	eth_header(f, dst_mac, ETH_P_ARP);
	put16(a, 1);
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, nic.mac, 6);
	put32(a + 14, ips.ip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	return nic_send(f, 42);
}

static int icmp_echo(const u8 *dst_mac, u32 dst, u8 type, u16 id, u16 seq, const u8 *data,
		     u32 dlen)
{
	u8 f[ETH_MAX];
	u32 off;

	if (dlen > ETH_MAX - 42)
		dlen = ETH_MAX - 42;
	off = ip_header(f, dst_mac, ips.ip, dst, IP_ICMP, 8 + dlen);
	f[off] = type;
	f[off + 1] = 0;
	put16(f + off + 2, 0);
	put16(f + off + 4, id);
	put16(f + off + 6, seq);
	memcpy(f + off + 8, data, dlen);
	put16(f + off + 2, csum_fold(csum_add(0, f + off, 8 + dlen)));
	return nic_send(f, off + 8 + dlen);
}

static int ip_receive_icmp(const u8 *f, u32 iplen, u32 hl)
{
	const u8 *ic = f + 14 + hl;
	u32 len = iplen - hl;

	if (len < 8 || csum_fold(csum_add(0, ic, len)) != 0)
		return 0;
	if (ic[0] == 8) {		/* echo request: answer */
		ips.pings_answered++;
		return icmp_echo(f + 6, be32(f + 26), 0, be16(ic + 4), be16(ic + 6), ic + 8,
				 len - 8);
	}
	if (ic[0] == 0) {
		ips.icmp_reply = true;
		ips.icmp_reply_seq = be16(ic + 6);
	}
	return 0;
}

/* Handle one frame: answer ARP and pings, learn the gateway's MAC, keep
 * the last UDP/TCP packet for the case. */
static int ip_receive(const u8 *f, u32 len)
{
	u16 type = be16(f + 12);

	if (type == ETH_P_ARP && len >= 42) {
		const u8 *a = f + 14;

		if (ips.gw && be32(a + 14) == ips.gw) {
			memcpy(ips.gw_mac, a + 8, 6);
			ips.gw_known = true;
		}
		if (be16(a + 6) == 1 && ips.ip && be32(a + 24) == ips.ip)
			return arp_send(2, a + 8, a + 8, be32(a + 14));
		return 0;
	}
	if (type != ETH_P_IP || len < 34 || (f[14] >> 4) != 4)
		return 0;
	u32 hl = (f[14] & 15) * 4, iplen = be16(f + 16);

	if (hl < 20 || iplen < hl || 14 + iplen > len || csum_fold(csum_add(0, f + 14, hl)))
		return 0;
	if (f[23] == IP_ICMP && be32(f + 30) == ips.ip)
		return ip_receive_icmp(f, iplen, hl);
	if ((f[23] == IP_UDP || f[23] == IP_TCP) && 14 + iplen <= sizeof(ips.pkt)) {
		/* normalise to a 20-byte IP header for the parsers below */
		memcpy(ips.pkt, f, 34);
		memcpy(ips.pkt + 34, f + 14 + hl, iplen - hl);
		ips.pkt[14] = 0x45;
		ips.pkt_len = 34 + iplen - hl;
		ips.proto = f[23];
	}
	return 0;
}

/* Receive and handle frames until pred() holds or timeout_ms passes. */
static int ip_wait(bool (*pred)(void), u64 timeout_ms)
{
	u64 end = now_ns() + timeout_ms * 1000000ull;
	struct rx_frame rf;

	ips.pkt_len = 0;
	while (!pred()) {
		if (now_ns() > end)
			return -1;
		if (!rx_poll(&rf)) {
			cpu_relax();
			continue;
		}
		ips.pkt_len = 0;
		int r = rf.len ? ip_receive(rf.data, rf.len) : 0;

		rx_done(&rf, true);
		if (r < 0)
			return -2;
	}
	return 0;
}

static bool gw_known(void) { return ips.gw_known; }
static bool got_icmp_reply(void) { return ips.icmp_reply; }

static int arp_resolve(const char *what)
{
	for (int tries = 0; tries < 5; tries++) {
		if (arp_send(1, bcast, (const u8 *)"\0\0\0\0\0\0", ips.gw) < 0)
			return -1;
		if (ip_wait(gw_known, 500) == 0) {
			char m[18];

			fmt_mac(m, ips.gw_mac);
			info("ARP: %s %u.%u.%u.%u is at %s", what, ips.gw >> 24, ips.gw >> 16 & 255,
			     ips.gw >> 8 & 255, ips.gw & 255, m);
			return 0;
		}
	}
	return fail("ARP: no reply for %s %u.%u.%u.%u", what, ips.gw >> 24, ips.gw >> 16 & 255,
		    ips.gw >> 8 & 255, ips.gw & 255);
}

/* An echo request, then wait for the rx interrupt of its reply before
 * looking at the used ring (so EVENT_IDX must let it through). */
static int rx_irq_check(void)
{
	static const u8 payload[56] = "minikvm kit irq payload";
	u64 before = irq_counts[VEC_NET_RX], end = now_ns() + 2000000000ull;

	for (u16 p = 0; p < nic.pairs; p++)
		vq_enable_cb(&nic.q[p].rx);
	ips.icmp_reply = false;
	if (icmp_echo(ips.gw_mac, ips.gw, 8, 0x6b69, 0x77, payload, sizeof(payload)) < 0)
		return -1;
	while (irq_counts[VEC_NET_RX] == before) {
		if (now_ns() > end)
			return fail("no rx interrupt on MSI-X vector %#x", VEC_NET_RX);
		cpu_relax();
	}
	if (ip_wait(got_icmp_reply, 1000) < 0)
		return fail("ICMP: no echo reply after the rx interrupt");
	return 0;
}

static int ping(u32 dst, u16 seq)
{
	static const u8 payload[56] = "minikvm kit ping payload";

	for (int tries = 0; tries < 3; tries++) {
		ips.icmp_reply = false;
		if (icmp_echo(ips.gw_mac, dst, 8, 0x6b69, seq, payload, sizeof(payload)) < 0)
			return -1;
		if (ip_wait(got_icmp_reply, 1000) == 0 && ips.icmp_reply_seq == seq)
			return 0;
	}
	return fail("ICMP: no echo reply from %u.%u.%u.%u", dst >> 24, dst >> 16 & 255,
		    dst >> 8 & 255, dst & 255);
}

/* ---------------- DHCP ---------------- */
#define DHCP_XID	0x6b697431

static u32 dhcp_offer_ip, dhcp_server, dhcp_router;
static u8 dhcp_type;

static int dhcp_send(u8 type)
{
	u8 f[ETH_MAX];
	u32 off = ip_header(f, bcast, 0, 0xffffffff, IP_UDP, 8 + 300);
	u8 *u = f + off, *b = u + 8, *o = b + 240;

	memset(u, 0, 8 + 300);
	put16(u, 68);
	put16(u + 2, 67);
	put16(u + 4, 8 + 300);
	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	put32(b + 4, DHCP_XID);
	put16(b + 10, 0x8000);		/* replies by broadcast */
	memcpy(b + 28, nic.mac, 6);
	put32(b + 236, 0x63825363);	/* magic cookie */
	*o++ = 53;			/* message type */
	*o++ = 1;
	*o++ = type;
	if (type == 3) {		/* REQUEST: the offered address from that server */
		*o++ = 50;
		*o++ = 4;
		put32(o, dhcp_offer_ip);
		o += 4;
		*o++ = 54;
		*o++ = 4;
		put32(o, dhcp_server);
		o += 4;
	}
	*o++ = 55;			/* parameters: netmask, router */
	*o++ = 2;
	*o++ = 1;
	*o++ = 3;
	*o = 255;
	put16(u + 6, l4_csum(f, IP_UDP, 8 + 300));
	return nic_send(f, off + 8 + 300);
}

/* A DHCP reply for our transaction (the case's predicate). */
static bool dhcp_reply(void)
{
	const u8 *f = ips.pkt, *b = f + 42;

	if (!ips.pkt_len || ips.proto != IP_UDP || ips.pkt_len < 42 + 240 ||
	    be16(f + 36) != 68 || b[0] != 2 || be32(b + 4) != DHCP_XID ||
	    be32(b + 236) != 0x63825363)
		return false;
	dhcp_type = 0;
	dhcp_offer_ip = be32(b + 16);
	for (u32 i = 42 + 240; i + 2 <= ips.pkt_len && f[i] != 255;) {
		u8 opt = f[i], olen = opt ? f[i + 1] : 0;

		if (!opt) {
			i++;
			continue;
		}
		if (i + 2 + olen > ips.pkt_len)
			break;
		if (opt == 53 && olen >= 1)
			dhcp_type = f[i + 2];
		if (opt == 54 && olen >= 4)
			dhcp_server = be32(f + i + 2);
		if (opt == 3 && olen >= 4)
			dhcp_router = be32(f + i + 2);
		i += 2 + olen;
	}
	return dhcp_type != 0;
}

static int dhcp_exchange(u8 send, u8 expect, const char *what)
{
	for (int tries = 0; tries < 4; tries++) {
		if (dhcp_send(send) < 0)
			return -1;
		if (ip_wait(dhcp_reply, 1000) == 0 && dhcp_type == expect)
			return 0;
	}
	return fail("DHCP: no %s", what);
}

static int dhcp(void)
{
	if (dhcp_exchange(1, 2, "OFFER") < 0)
		return -1;
	info("DHCP OFFER %u.%u.%u.%u from %u.%u.%u.%u", dhcp_offer_ip >> 24,
	     dhcp_offer_ip >> 16 & 255, dhcp_offer_ip >> 8 & 255, dhcp_offer_ip & 255,
	     dhcp_server >> 24, dhcp_server >> 16 & 255, dhcp_server >> 8 & 255, dhcp_server & 255);
	if (dhcp_exchange(3, 5, "ACK") < 0)
		return -1;
	ips.ip = dhcp_offer_ip;
	ips.gw = dhcp_router ? dhcp_router : dhcp_server;
	info("DHCP ACK: address %u.%u.%u.%u, router %u.%u.%u.%u", ips.ip >> 24,
	     ips.ip >> 16 & 255, ips.ip >> 8 & 255, ips.ip & 255, ips.gw >> 24,
	     ips.gw >> 16 & 255, ips.gw >> 8 & 255, ips.gw & 255);
	return 0;
}

/* ---------------- one TCP connection ---------------- */
#define TCP_FIN		0x01
#define TCP_SYN		0x02
#define TCP_PSH		0x08
#define TCP_ACK		0x10
#define TCP_RST		0x04

struct tcp {
	u16 lport, rport;
	u32 snd_una, snd_nxt, rcv_nxt;
	bool established, peer_fin;
	char rx[256];
	u32 rx_len;
};

static struct tcp tc;

static int tcp_send(u8 flags, u32 seq, const void *data, u32 dlen)
{
	u8 f[ETH_MAX];
	u32 hlen = (flags & TCP_SYN) ? 24 : 20;
	u32 off = ip_header(f, ips.gw_mac, ips.ip, ips.peer, IP_TCP, hlen + dlen);
	u8 *t = f + off;

	memset(t, 0, hlen);
	put16(t, tc.lport);
	put16(t + 2, tc.rport);
	put32(t + 4, seq);
	put32(t + 8, (flags & TCP_ACK) ? tc.rcv_nxt : 0);
	t[12] = (u8)(hlen / 4) << 4;
	t[13] = flags;
	put16(t + 14, 8192);		/* window */
	if (flags & TCP_SYN) {		/* MSS 1460 */
		t[20] = 2;
		t[21] = 4;
		put16(t + 22, 1460);
	}
	memcpy(t + hlen, data, dlen);
	put16(t + 16, l4_csum(f, IP_TCP, hlen + dlen));
	return nic_send(f, off + hlen + dlen);
}

/* Process the segment in ips.pkt (if it is ours); true when it was. */
static bool tcp_segment(void)
{
	const u8 *f = ips.pkt, *t = f + 34;
	u32 seglen, hlen, seq, ack, dlen;
	u8 flags;

	if (!ips.pkt_len || ips.proto != IP_TCP || ips.pkt_len < 54)
		return false;
	seglen = ips.pkt_len - 34;
	hlen = (t[12] >> 4) * 4;
	if (be16(t) != tc.rport || be16(t + 2) != tc.lport || hlen < 20 || hlen > seglen ||
	    l4_csum(f, IP_TCP, seglen))
		return false;
	ips.pkt_len = 0;
	flags = t[13];
	seq = be32(t + 4);
	ack = be32(t + 8);
	dlen = seglen - hlen;
	if (flags & TCP_RST) {
		tc.peer_fin = true;
		tc.established = false;
		return true;
	}
	if ((flags & TCP_ACK) && (int32_t)(ack - tc.snd_una) > 0 &&
	    (int32_t)(ack - tc.snd_nxt) <= 0)
		tc.snd_una = ack;
	if (!tc.established) {
		if ((flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK) && ack == tc.snd_nxt) {
			tc.rcv_nxt = seq + 1;
			tc.established = true;
		}
		return true;
	}
	if (seq == tc.rcv_nxt) {
		u32 take = dlen;

		if (take > sizeof(tc.rx) - 1 - tc.rx_len)
			take = sizeof(tc.rx) - 1 - tc.rx_len;
		memcpy(tc.rx + tc.rx_len, t + hlen, take);
		tc.rx_len += take;
		tc.rx[tc.rx_len] = 0;
		tc.rcv_nxt += dlen;
		if (flags & TCP_FIN) {
			tc.rcv_nxt++;
			tc.peer_fin = true;
		}
	}
	if (dlen || (flags & TCP_FIN))
		tcp_send(TCP_ACK, tc.snd_nxt, NULL, 0);	/* ack (or re-ack) */
	return true;
}

static bool tcp_any(void) { tcp_segment(); return false; }
static bool tcp_up(void) { tcp_segment(); return tc.established; }
static bool tcp_line(void)
{
	tcp_segment();
	for (u32 i = 0; i < tc.rx_len; i++)
		if (tc.rx[i] == '\n')
			return true;
	return tc.peer_fin;
}
static bool tcp_all_acked(void) { tcp_segment(); return tc.snd_una == tc.snd_nxt; }
static bool tcp_closed(void) { tcp_segment(); return tc.peer_fin && tc.snd_una == tc.snd_nxt; }

/* Connect to ips.peer:port, send a line, read the reply line, close.
 * With peer_closes false the peer is not expected to close its side (a
 * guestfwd= socket target is one host stream that outlives the guest's
 * connections): done once our FIN is acked. */
static int tcp_session(u16 port, const char *line, char *reply, u32 rlen, bool peer_closes)
{
	u32 iss = 0x1000000 + (u32)(now_ns() & 0xffffff), len = strlen(line);

	memset(&tc, 0, sizeof(tc));
	tc.lport = 40000 + (u16)(now_ns() % 20000);
	tc.rport = port;
	tc.snd_una = iss;
	tc.snd_nxt = iss + 1;
	for (int tries = 0; !tc.established; tries++) {
		if (tries == 5)
			return fail("TCP: no SYN-ACK from port %u", port);
		if (tcp_send(TCP_SYN, iss, NULL, 0) < 0)
			return -1;
		ip_wait(tcp_up, 1000);
	}
	tc.snd_una = tc.snd_nxt;
	info("TCP: connected %u -> %u", tc.lport, port);
	tc.snd_nxt += len;
	for (int tries = 0; tc.snd_una != tc.snd_nxt; tries++) {
		if (tries == 5)
			return fail("TCP: data not acknowledged");
		if (tcp_send(TCP_ACK | TCP_PSH, tc.snd_nxt - len, line, len) < 0)
			return -1;
		ip_wait(tcp_all_acked, 1000);
	}
	if (ip_wait(tcp_line, 5000) < 0)
		return fail("TCP: no reply line (got %u bytes)", tc.rx_len);
	memcpy(reply, tc.rx, tc.rx_len < rlen ? tc.rx_len + 1 : rlen);
	reply[rlen - 1] = 0;
	tc.snd_nxt++;			/* our FIN */
	if (!peer_closes)
		tc.peer_fin = true;
	for (int tries = 0; !(tc.peer_fin && tc.snd_una == tc.snd_nxt); tries++) {
		if (tries == 5)
			return fail("TCP: close not completed (peer FIN %d, una %u nxt %u)",
				    tc.peer_fin, tc.snd_una, tc.snd_nxt);
		if (tcp_send(TCP_FIN | TCP_ACK, tc.snd_nxt - 1, NULL, 0) < 0)
			return -1;
		ip_wait(tcp_closed, 1000);
	}
	ip_wait(tcp_any, 100);		/* let a last retransmission be acked */
	info(peer_closes ? "TCP: closed" : "TCP: our side closed (the peer stays open)");
	return 0;
}

/* ---------------- net-user (slirp) ---------------- */
int case_net_user(void)
{
	char reply[128], expect[64];
	u16 port = (u16)arg_num("port", 0);

	memset(&ips, 0, sizeof(ips));
	if (nic_open(false) < 0 || dhcp() < 0)
		return -1;
	if (ips.ip != arg_ip("expect", "10.0.2.15"))
		return fail("DHCP gave %u.%u.%u.%u", ips.ip >> 24, ips.ip >> 16 & 255,
			    ips.ip >> 8 & 255, ips.ip & 255);
	if (arp_resolve("gateway") < 0)
		return -1;
	if (arg_is("ping", "1")) {	/* slirp answers only where it may open ICMP sockets */
		if (ping(ips.gw, 1) < 0)
			return -1;
		info("ICMP echo to the gateway answered");
	}
	if (port) {
		u32 peer = arg_ip("peer", "0.0.0.0");	/* e.g. a guestfwd= address */

		ips.peer = peer ? peer : ips.gw;
		if (tcp_session(port, "hello from the minikvm kit\n", reply, sizeof(reply),
				!arg_is("fin", "0")) < 0)
			return -1;
		memcpy(expect, "echo: hello from the minikvm kit\n", 34);
		if (memcmp(reply, expect, 34))
			return fail("TCP reply '%s'", reply);
		reply[32] = 0;		/* drop the newline */
		info("TCP reply: '%s'", reply);
	}
	vdev_reset(&nic.d);
	return 0;
}

/* ---------------- net-robust ---------------- */
/* Odd tx chains: a header-only chain, a 10-byte runt, a 70,000-byte frame
 * in 35 descriptors (larger than any backend takes), a chain whose header
 * is split over two descriptors. The device must complete (or drop) each,
 * or set NEEDS_RESET (QEMU 7.2 does for the header-only chain: "nothing to
 * send"), after which a reset brings it back. Then DHCP must work. */
static int robust_chain(const char *what, const struct vbuf *b, u32 n)
{
	struct net_pair *np = &nic.q[0];
	u64 end = now_ns() + 2000000000ull;

	tx_reclaim(np);
	if (vq_add(&np->tx, b, n, np->tx_free[0]) < 0)
		return fail("%s: no room in the tx queue", what);
	vq_notify(&np->tx);
	while (!vq_has_used(&np->tx)) {
		if (vdev_status(&nic.d) & VIRTIO_ST_NEEDS_RESET) {
			info("%s: the device set NEEDS_RESET; resetting it", what);
			return nic_open(false);
		}
		if (now_ns() > end)
			return fail("%s: not completed (status %#x)", what, vdev_status(&nic.d));
		cpu_relax();
	}
	vq_get_used(&np->tx, &(u32){ 0 }, &(u32){ 0 });
	/* the chain is ours again: every descriptor is free (a packed ring's
	 * vq_get_used has freed the slots already) */
	if (!np->tx.packed) {
		for (u16 i = 0; i < np->tx.size; i++)
			np->tx.desc[i].next = (u16)(i + 1);
		np->tx.free_head = 0;
		np->tx.num_free = np->tx.size;
	}
	info("%s: completed (status %#x)", what, vdev_status(&nic.d));
	return 0;
}

int case_net_robust(void)
{
	u8 *big = dma_alloc(70000 + 64, 64), *hdr = dma_alloc(64, 64);
	struct vbuf b[36];

	memset(&ips, 0, sizeof(ips));
	if (nic_open(false) < 0)
		return -1;
	if (!big || !hdr)
		return fail("out of memory");
	b[0] = (struct vbuf){ hdr, nic.hdr_len, false };
	if (robust_chain("header-only frame", b, 1) < 0)
		return -1;
	b[1] = (struct vbuf){ big, 10, false };
	if (robust_chain("10-byte runt", b, 2) < 0)
		return -1;
	eth_header(big, bcast, ETH_P_KIT);
	for (u32 i = 0; i < 35; i++)
		b[1 + i] = (struct vbuf){ big + 2000 * i, 2000, false };
	if (robust_chain("70000-byte frame in 35 descriptors", b, 36) < 0)
		return -1;
	b[0] = (struct vbuf){ hdr, 4, false };
	b[1] = (struct vbuf){ hdr + 4, nic.hdr_len - 4, false };
	b[2] = (struct vbuf){ big, 60, false };
	if (robust_chain("header split over two descriptors", b, 3) < 0)
		return -1;
	if (dhcp() < 0)
		return -1;
	vdev_reset(&nic.d);
	return 0;
}

/* ---------------- net-tap ---------------- */
static u32 pings_wanted;
static bool pings_done(void) { return ips.pings_answered >= pings_wanted; }

int case_net_tap(void)
{
	u64 irqs;

	memset(&ips, 0, sizeof(ips));
	ips.ip = arg_ip("ip", "192.168.77.2");
	ips.gw = arg_ip("host", "192.168.77.1");
	pings_wanted = arg_num("pings", 3);
	if (nic_open(true) < 0)
		return -1;
	for (u16 p = 0; p < nic.pairs; p++)
		vq_enable_cb(&nic.q[p].rx);
	irqs = irq_counts[VEC_NET_RX];
	if (arp_resolve("host") < 0 || ping(ips.gw, 1) < 0)
		return -1;
	info("ICMP echo to the host answered");
	if (nic.pairs > 1) {		/* the second pair transmits too */
		int r;

		nic_tx_pair = 1;
		r = ping(ips.gw, 2);
		nic_tx_pair = 0;
		if (r < 0)
			return -1;
		info("ICMP echo sent on queue pair 1 answered");
	}
	if (pings_wanted) {
		info("serving: answering %u pings to %u.%u.%u.%u", pings_wanted, ips.ip >> 24,
		     ips.ip >> 16 & 255, ips.ip >> 8 & 255, ips.ip & 255);
		if (ip_wait(pings_done, arg_num("serve", 20) * 1000) < 0)
			return fail("answered %u of %u pings", ips.pings_answered, pings_wanted);
		info("answered %u pings from the host", ips.pings_answered);
	}
	/* While the driver polls, EVENT_IDX may rightly suppress every rx
	 * interrupt (it has seen the buffers first): check delivery with a
	 * reply the driver does not look at until the interrupt came. */
	if (nic.msix && rx_irq_check() < 0)
		return -1;
	info("rx frames per queue pair: %lu, %lu; rx interrupts %lu", nic.rx_pair[0],
	     nic.rx_pair[1], irq_counts[VEC_NET_RX] - irqs);
	vdev_reset(&nic.d);
	return 0;
}

/* ---------------- net-bench ---------------- */
/* One phase per frame size (size=64,1514): the receiver announces each
 * phase with READY frames until data of that phase arrives; the sender
 * marks its data and END frames with the phase number. Without a peer
 * (peer=none, tap: the host counts) the sender pauses 500 ms between
 * phases so that the host can read its counters at each "tx" line. */
#define BENCH_MAX_PHASES	4

struct bench {
	u64 frames, bytes, t_first, t_last;
};

static void bench_report(const char *dir, const struct bench *b, u32 size, u64 kicks)
{
	u64 us = (b->t_last - b->t_first) / 1000 ?: 1;
	u64 mib100 = b->bytes * 100000000 / us >> 20;

	info("%s %lu frames, %lu bytes of %u-byte frames in %lu us: %lu pps, %lu.%02lu MiB/s, "
	     "kicks %lu", dir, b->frames, b->bytes, size, us, b->frames * 1000000 / us,
	     mib100 / 100, mib100 % 100, kicks);
}

static int bench_wait_ready(u8 phase)
{
	u64 limit = now_ns() + 30000000000ull;
	struct rx_frame rf;
	bool ready = false;

	while (!ready) {
		if (now_ns() > limit)
			return fail("no READY for phase %u from the receiver", phase);
		if (!rx_poll(&rf)) {
			cpu_relax();
			continue;
		}
		ready = rf.len >= KIT_HDR && be16(rf.data + 12) == ETH_P_KIT &&
			rf.data[14] == PK_READY && rf.data[16] == phase;
		rx_done(&rf, true);
	}
	return 0;
}

static int bench_tx_phase(u8 phase, u32 size, u64 seconds)
{
	struct net_pair *np = &nic.q[0];
	struct bench b = { 0 };
	u32 batch = 0;
	u64 end;

	/* Every slot carries the same frame; only the sequence number changes. */
	tx_reclaim(np);
	for (u16 i = 0; i < np->tx_nfree; i++) {
		u8 *f = np->tx_free[i] + nic.hdr_len;

		kit_frame(f, bcast, PK_DATA, phase, 0, size);
		for (u32 k = KIT_HDR; k < size; k++)
			f[k] = (u8)k;
	}
	nic.tx_kicks = 0;
	b.t_first = now_ns();
	end = b.t_first + seconds * 1000000000ull;
	while (now_ns() < end) {
		u8 *f = tx_slot(0);

		if (!f) {
			if (batch)
				nic.tx_kicks += vq_kick(&np->tx);
			batch = 0;
			cpu_relax();
			continue;
		}
		if (f[14] != PK_DATA || f[16] != phase)	/* a slot a control frame used */
			kit_frame(f, bcast, PK_DATA, phase, 0, size);
		put32(f + 18, (u32)b.frames);
		tx_commit(0, size, false);
		b.frames++;
		if (++batch == 32) {
			nic.tx_kicks += vq_kick(&np->tx);
			batch = 0;
		}
	}
	nic.tx_kicks += vq_kick(&np->tx);
	b.t_last = now_ns();
	if (vq_wait_all(&np->tx, 2000) < 0)
		return fail("tx queue not drained after the run");
	b.bytes = b.frames * size;
	for (int i = 0; i < 5; i++)
		peer_send_ctl(bcast, PK_END, phase, (u32)b.frames, 0);
	bench_report("tx", &b, size, nic.tx_kicks);
	return 0;
}

static int bench_rx_phase(u8 phase, u32 size, u64 seconds)
{
	struct bench b = { 0 };
	struct rx_frame rf;
	u64 next_ready = 0, limit = now_ns() + 60000000000ull, end = 0;
	bool ended = false;
	u32 refilled = 0;	/* buffers given back since the last kick */

	while (!ended) {
		u64 now = now_ns();

		if (!b.frames && now >= next_ready) {
			peer_send_ctl(bcast, PK_READY, phase, 0, 0);
			next_ready = now + 100000000ull;
		}
		if (now > limit || (end && now > end))
			break;
		if (!rx_poll(&rf)) {	/* idle: hand the refilled buffers over */
			if (refilled)
				nic.rx_kicks += vq_kick(&nic.q[0].rx);
			refilled = 0;
			cpu_relax();
			continue;
		}
		const u8 *f = rf.data;

		if (rf.len >= KIT_HDR && be16(f + 12) == ETH_P_KIT && f[16] == phase) {
			if (f[14] == PK_DATA) {
				if (!b.frames) {
					end = now + (seconds + 2) * 1000000000ull;
					b.t_first = now;
					nic.rx_kicks = 0;
				}
				b.frames++;
				b.bytes += rf.len;
				b.t_last = now;
			} else if (f[14] == PK_END && b.frames) {
				ended = true;
			}
		}
		rx_done(&rf, ++refilled == 32);	/* refill in batches, like NAPI */
		if (refilled == 32)
			refilled = 0;
	}
	if (b.frames < 2)
		return fail("phase %u: received %lu frames", phase, b.frames);
	bench_report("rx", &b, size, nic.rx_kicks);
	return 0;
}

int case_net_bench(void)
{
	char role[8], list[40];
	const char *p = list;
	u32 sizes[BENCH_MAX_PHASES], n = 0;
	u64 seconds = arg_num("seconds", 3);
	bool rx, peer = !arg_is("peer", "none");

	memset(&pr, 0, sizeof(pr));
	if (!cmdline_get("size", list, sizeof(list)))
		memcpy(list, "64", 3);
	while (*p && n < BENCH_MAX_PHASES) {
		u32 size = parse_num(p, &p);

		sizes[n++] = size < ETH_MIN ? ETH_MIN : size > ETH_MAX ? ETH_MAX : size;
		if (*p == ',')
			p++;
		else
			break;
	}
	rx = cmdline_get("role", role, sizeof(role)) && !strncmp(role, "rx", 3);
	pr.role = rx ? 'r' : 't';
	if (nic_open(false) < 0)
		return -1;
	for (u16 q = 0; q < nic.pairs; q++)
		vq_disable_cb(&nic.q[q].rx);
	for (u32 i = 0; i < n; i++) {
		int r;

		if (rx)
			r = bench_rx_phase((u8)i, sizes[i], seconds);
		else if (peer)
			r = bench_wait_ready((u8)i) < 0 ? -1 : bench_tx_phase((u8)i, sizes[i], seconds);
		else
			r = bench_tx_phase((u8)i, sizes[i], seconds);
		if (r < 0)
			return -1;
		if (!peer)
			delay_ns(500000000ull);
	}
	return 0;
}
