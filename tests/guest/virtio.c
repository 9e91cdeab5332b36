/* virtio.c: a CPL3 virtio-pci driver and the virtio-rng and virtio-blk cases.
 * `case=virtio-rng` drives the modern interface (capabilities in BAR 4):
 * polled requests (single, chained, indirect), 70,000 batched requests so
 * the 16-bit ring indexes wrap, MSI-X delivery through the LAPIC with
 * masking and the pending bit, EVENT_IDX suppression, INTx + ISR, and a
 * descriptor loop that must set DEVICE_NEEDS_RESET with a config
 * interrupt, after which a reset and re-initialisation work again.
 * `mode=legacy` drives the legacy I/O BAR 0 instead (polled + INTx).
 * `case=virtio-blk` writes, flushes and reads back sector patterns, checks
 * GET_ID and the IOERR/UNSUPP statuses (polled; modern or legacy). */
#include "tests/guest/kit.h"

#define VIRTIO_VENDOR		0x1af4
#define VIRTIO_RNG_TRANS	0x1005

#define ST_ACK			0x01
#define ST_DRIVER		0x02
#define ST_DRIVER_OK		0x04
#define ST_FEATURES_OK		0x08
#define ST_NEEDS_RESET		0x40

#define F_INDIRECT		(1ull << 28)
#define F_EVENT_IDX		(1ull << 29)
#define F_VERSION_1		(1ull << 32)

#define DESC_F_NEXT		1
#define DESC_F_WRITE		2
#define DESC_F_INDIRECT		4

#define VEC_VIRTIO_CONFIG	0x40
#define VEC_VIRTIO_QUEUE	0x41
#define VEC_VIRTIO_INTX		0x42
#define INTX_IRQ		11
#define MODERN_QSIZE		64
#define RING_MAX		256

struct vdesc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

/* Rings laid out as the legacy interface requires (and the modern one
 * accepts): descriptors, the available ring right after them, the used
 * ring on the next 4 KiB boundary. Up to 256 entries fit. */
static u8 ring_area[3 * 4096] __attribute__((aligned(4096)));
static struct vdesc *desc;
static volatile u16 *avail;	/* flags, idx, ring[qsize], used_event */
static volatile u8 *used;	/* flags, idx, {id, len}[qsize], avail_event */

static struct vdesc indirect_table[8] __attribute__((aligned(16)));
static u8 bufs[RING_MAX][64] __attribute__((aligned(64)));

struct vdev {
	u32 dev;			/* PCI slot on bus 0 */
	bool legacy;
	u16 iobase;
	u64 bar4;
	u64 common, isr, devcfg, notify;
	u32 notify_mult;
	u8 msix_cap;
	u64 msix_table, msix_pba;
	u16 qsize;
	u16 avail_idx;
	u64 features;
	u16 trans_id;			/* transitional PCI device ID */
	u16 type;			/* virtio device type (subsystem ID) */
};

static struct vdev vd;

/* ---------------- PCI configuration access ---------------- */
static void cfg_addr(u32 dev, u32 off)
{
	outl(0xcf8, 0x80000000u | dev << 11 | (off & 0xfc));
}

static u32 cfg_read32(u32 dev, u32 off)
{
	cfg_addr(dev, off);
	return inl(0xcfc);
}

static u16 cfg_read16(u32 dev, u32 off)
{
	cfg_addr(dev, off);
	return inw(0xcfc + (off & 2));
}

static u8 cfg_read8(u32 dev, u32 off)
{
	cfg_addr(dev, off);
	return inb(0xcfc + (off & 3));
}

static void cfg_write32(u32 dev, u32 off, u32 v)
{
	cfg_addr(dev, off);
	outl(0xcfc, v);
}

static void cfg_write16(u32 dev, u32 off, u16 v)
{
	cfg_addr(dev, off);
	outw(0xcfc + (off & 2), v);
}

static void cfg_write8(u32 dev, u32 off, u8 v)
{
	cfg_addr(dev, off);
	outb(0xcfc + (off & 3), v);
}

/* ---------------- register access ---------------- */
static inline void mb(void) { asm volatile("mfence" ::: "memory"); }
static inline void barrier(void) { asm volatile("" ::: "memory"); }

static u8 common_read8(u32 off) { return mmio_read8(vd.common + off); }
static u16 common_read16(u32 off) { return mmio_read16(vd.common + off); }
static u32 common_read32(u32 off) { return mmio_read32(vd.common + off); }
static void common_write8(u32 off, u8 v) { mmio_write8(vd.common + off, v); }
static void common_write16(u32 off, u16 v) { mmio_write16(vd.common + off, v); }
static void common_write32(u32 off, u32 v) { mmio_write32(vd.common + off, v); }
static void common_write64(u32 off, u64 v)
{
	common_write32(off, (u32)v);
	common_write32(off + 4, v >> 32);
}

static u8 get_status(void)
{
	return vd.legacy ? inb(vd.iobase + 0x12) : common_read8(0x14);
}

static void set_status(u8 v)
{
	if (vd.legacy)
		outb(vd.iobase + 0x12, v);
	else
		common_write8(0x14, v);
}

static u8 read_isr(void)
{
	return vd.legacy ? inb(vd.iobase + 0x13) : mmio_read8(vd.isr);
}

static void kick(void)
{
	mb();
	if (vd.legacy)
		outw(vd.iobase + 0x10, 0);
	else
		mmio_write16(vd.notify, 0);
}

/* ---------------- discovery ---------------- */
static int find_device(void)
{
	for (u32 dev = 0; dev < 32; dev++) {
		u32 id = cfg_read32(dev, 0);

		if ((id & 0xffff) == VIRTIO_VENDOR &&
		    ((id >> 16) == vd.trans_id || (id >> 16) == 0x1040u + vd.type)) {
			vd.dev = dev;
			return 0;
		}
	}
	return -1;
}

/* Where a BAR sits; assigns one (direct boot has no firmware) when it is
 * unassigned or outside the identity-mapped 4 GiB. */
static u64 bar_address(u32 bar, u32 fallback)
{
	u32 off = 0x10 + 4 * bar, lo = cfg_read32(vd.dev, off);
	u64 addr;

	if (lo & 1) {
		addr = lo & ~3u;
		if (!addr) {
			cfg_write32(vd.dev, off, fallback);
			addr = cfg_read32(vd.dev, off) & ~3u;
		}
		return addr;
	}
	addr = lo & ~0xfu;
	if ((lo & 6) == 4)
		addr |= (u64)cfg_read32(vd.dev, off + 4) << 32;
	if (!addr || addr >> 32) {
		cfg_write32(vd.dev, off, fallback);
		if ((lo & 6) == 4)
			cfg_write32(vd.dev, off + 4, 0);
		addr = cfg_read32(vd.dev, off) & ~0xfu;
	}
	return addr;
}

static u64 msix_bar(u32 bir)
{
	return bir == 4 ? vd.bar4 : bar_address(bir, 0xe0010000u);
}

static int parse_caps(void)
{
	u8 c = cfg_read8(vd.dev, 0x34);
	int hops = 0;

	vd.common = vd.isr = vd.notify = 0;
	while (c >= 0x40 && hops++ < 48) {
		u8 id = cfg_read8(vd.dev, c), type = cfg_read8(vd.dev, c + 3);
		u32 bar = cfg_read8(vd.dev, c + 4), off = cfg_read32(vd.dev, c + 8);

		if (id == 0x11) {
			vd.msix_cap = c;
			vd.msix_table = cfg_read32(vd.dev, c + 4);
			vd.msix_pba = cfg_read32(vd.dev, c + 8);
		} else if (id == 0x09 && bar == 4) {
			if (type == 1)
				vd.common = vd.bar4 + off;
			else if (type == 2) {
				vd.notify = vd.bar4 + off;
				vd.notify_mult = cfg_read32(vd.dev, c + 16);
			} else if (type == 3)
				vd.isr = vd.bar4 + off;
			else if (type == 4)
				vd.devcfg = vd.bar4 + off;
		}
		c = cfg_read8(vd.dev, c + 1);
	}
	if (!vd.common || !vd.isr || !vd.notify)
		return fail("modern capabilities missing (common %#lx isr %#lx notify %#lx)",
			    vd.common, vd.isr, vd.notify);
	if (!vd.msix_cap)
		return fail("no MSI-X capability");
	/* minikvm keeps table and PBA in BAR 4, QEMU in BAR 1. */
	vd.msix_table = msix_bar(vd.msix_table & 7) + (vd.msix_table & ~7ull);
	vd.msix_pba = msix_bar(vd.msix_pba & 7) + (vd.msix_pba & ~7ull);
	return 0;
}

static int map_device(void)
{
	u32 sub = cfg_read32(vd.dev, 0x2c);

	if (sub >> 16 != vd.type)
		return fail("subsystem id %#x, expected %u", sub >> 16, vd.type);
	if (vd.legacy) {
		vd.iobase = bar_address(0, 0xc000);
		/* I/O decode, bus master */
		cfg_write16(vd.dev, 0x04, cfg_read16(vd.dev, 0x04) | 0x5);
	} else {
		vd.bar4 = bar_address(4, 0xe0000000u);
		/* memory decode, bus master */
		cfg_write16(vd.dev, 0x04, cfg_read16(vd.dev, 0x04) | 0x6);
	}
	info("device at 00:%02x.0, %s, %s %#lx", vd.dev,
	     cfg_read16(vd.dev, 2) == vd.trans_id ? "transitional" : "modern",
	     vd.legacy ? "I/O BAR 0" : "BAR 4", vd.legacy ? (u64)vd.iobase : vd.bar4);
	/* The capabilities are read in legacy mode too: MSI-X lives there. */
	if (!vd.legacy)
		return parse_caps();
	return 0;
}

/* ---------------- MSI-X ---------------- */
static void msix_enable(bool on)
{
	u16 ctl = cfg_read16(vd.dev, vd.msix_cap + 2);

	ctl = on ? (ctl | 0x8000) : (ctl & ~0x8000);
	cfg_write16(vd.dev, vd.msix_cap + 2, ctl & 0xc000);
}

static void msix_set(u32 entry, u8 vector, bool masked)
{
	u64 e = vd.msix_table + 16 * entry;

	mmio_write32(e, 0xfee00000u | lapic_id() << 12);
	mmio_write32(e + 4, 0);
	mmio_write32(e + 8, vector);
	mmio_write32(e + 12, masked);
}

static void msix_mask(u32 entry, bool masked)
{
	mmio_write32(vd.msix_table + 16 * entry + 12, masked);
}

/* ---------------- driver setup ---------------- */
static void ring_clear(void)
{
	u64 a = (u64)ring_area + 16 * vd.qsize;

	memset(ring_area, 0, sizeof(ring_area));
	desc = (struct vdesc *)ring_area;
	avail = (volatile u16 *)a;
	used = (volatile u8 *)((a + 6 + 2 * vd.qsize + 4095) & ~4095ull);
	vd.avail_idx = 0;
}

static volatile u16 *used_idx_ptr(void) { return (volatile u16 *)(used + 2); }
static volatile u16 *avail_event_ptr(void)
{
	return (volatile u16 *)(used + 4 + 8 * vd.qsize);
}
static volatile u16 *used_event_ptr(void) { return &avail[2 + vd.qsize]; }

static int modern_init(u64 want, u16 qsize, bool vectors)
{
	u64 offered;

	set_status(0);
	if (get_status() != 0)
		return fail("status not 0 after reset");
	set_status(ST_ACK);
	set_status(ST_ACK | ST_DRIVER);
	common_write32(0x00, 0);
	offered = common_read32(0x04);
	common_write32(0x00, 1);
	offered |= (u64)common_read32(0x04) << 32;
	if (!(offered & F_VERSION_1))
		return fail("VERSION_1 not offered (features %#lx)", offered);
	vd.features = want & offered;
	common_write32(0x08, 0);
	common_write32(0x0c, (u32)vd.features);
	common_write32(0x08, 1);
	common_write32(0x0c, vd.features >> 32);
	set_status(ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	if (!(get_status() & ST_FEATURES_OK))
		return fail("FEATURES_OK not accepted");
	if (common_read16(0x12) < 1)
		return fail("no queues");
	common_write16(0x16, 0);
	if (common_read16(0x18) < qsize)	/* QEMU's virtio-rng offers 8 */
		qsize = common_read16(0x18);
	if (!qsize || (qsize & (qsize - 1)))
		return fail("queue 0 size %u", qsize);
	vd.qsize = qsize;
	common_write16(0x18, qsize);
	ring_clear();
	common_write64(0x20, (u64)desc);
	common_write64(0x28, (u64)avail);
	common_write64(0x30, (u64)used);
	common_write16(0x10, vectors ? 0 : 0xffff);
	common_write16(0x1a, vectors ? 1 : 0xffff);
	if (vectors && (common_read16(0x10) != 0 || common_read16(0x1a) != 1))
		return fail("MSI-X vectors not accepted");
	if (common_read16(0x1e) != 0)
		return fail("queue 0 notify offset %u", common_read16(0x1e));
	common_write16(0x1c, 1);
	set_status(ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
	if (get_status() & ST_NEEDS_RESET)
		return fail("device needs reset right after init");
	return 0;
}

static int legacy_init(void)
{
	set_status(0);
	set_status(ST_ACK);
	set_status(ST_ACK | ST_DRIVER);
	vd.features = inl(vd.iobase + 0x00) & F_INDIRECT;
	outl(vd.iobase + 0x04, (u32)vd.features);
	outw(vd.iobase + 0x0e, 0);
	vd.qsize = inw(vd.iobase + 0x0c);
	if (!vd.qsize || vd.qsize > RING_MAX || (vd.qsize & (vd.qsize - 1)))
		return fail("legacy queue size %u unusable", vd.qsize);
	ring_clear();
	outl(vd.iobase + 0x08, (u64)desc >> 12);
	set_status(ST_ACK | ST_DRIVER | ST_DRIVER_OK);
	return 0;
}

/* ---------------- requests ---------------- */
static void publish(u16 head)
{
	avail[2 + (vd.avail_idx & (vd.qsize - 1))] = head;
	barrier();
	vd.avail_idx++;
	avail[1] = vd.avail_idx;
}

static void add_buf(u16 i, void *buf, u32 len, u16 flags, u16 next)
{
	desc[i] = (struct vdesc){ (u64)buf, len, flags, next };
}

/* Wait until the device used everything published; returns -1 on timeout. */
static int wait_used(u64 timeout_ms)
{
	u64 end = now_ns() + timeout_ms * 1000000ull;

	while (*used_idx_ptr() != vd.avail_idx) {
		if (now_ns() > end)
			return -1;
		cpu_relax();
	}
	return 0;
}

static u32 used_len(u16 idx)
{
	return *(volatile u32 *)(used + 4 + 8 * (idx & (vd.qsize - 1)) + 4);
}

static u32 used_id(u16 idx)
{
	return *(volatile u32 *)(used + 4 + 8 * (idx & (vd.qsize - 1)));
}

static bool all_zero(const u8 *p, u32 len)
{
	for (u32 i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static bool hold_used_event;	/* event_idx_test sets used_event itself */

/* One writable 64-byte buffer bufs[b] in descriptor b mod queue size
 * (QEMU's virtio-rng queue has 8 entries); checks the result. */
static int simple_request(u16 b, const char *what)
{
	u16 at = vd.avail_idx, d = b & (vd.qsize - 1);

	memset(bufs[b], 0, 64);
	if (!hold_used_event)	/* EVENT_IDX: interrupt for this buffer */
		*used_event_ptr() = at;
	add_buf(d, bufs[b], 64, DESC_F_WRITE, 0);
	publish(d);
	kick();
	if (wait_used(2000) < 0)
		return fail("%s: no used buffer after 2 s (used idx %u, avail %u, status %#x)",
			    what, *used_idx_ptr(), vd.avail_idx, get_status());
	if (used_id(at) != d || used_len(at) != 64)
		return fail("%s: used id %u len %u, expected %u 64", what, used_id(at),
			    used_len(at), d);
	if (all_zero(bufs[b], 64))
		return fail("%s: 64 bytes of zeros", what);
	return 0;
}

static int chained_request(void)
{
	u16 at = vd.avail_idx;

	memset(bufs[1], 0, 64);
	memset(bufs[2], 0, 64);
	add_buf(1, bufs[1], 16, DESC_F_WRITE | DESC_F_NEXT, 2);
	add_buf(2, bufs[2], 48, DESC_F_WRITE, 0);
	publish(1);
	kick();
	if (wait_used(2000) < 0)
		return fail("chain: no used buffer");
	if (used_id(at) != 1 || used_len(at) != 64)
		return fail("chain: used id %u len %u", used_id(at), used_len(at));
	if (all_zero(bufs[1], 16) || all_zero(bufs[2], 48))
		return fail("chain: a segment stayed zero");
	return 0;
}

static int indirect_request(void)
{
	u16 at = vd.avail_idx;

	for (int i = 0; i < 3; i++) {
		memset(bufs[8 + i], 0, 64);
		indirect_table[i] = (struct vdesc){ (u64)bufs[8 + i], 32,
						    DESC_F_WRITE | (i < 2 ? DESC_F_NEXT : 0),
						    (u16)(i + 1) };
	}
	add_buf(3, indirect_table, 3 * sizeof(struct vdesc), DESC_F_INDIRECT, 0);
	publish(3);
	kick();
	if (wait_used(2000) < 0)
		return fail("indirect: no used buffer");
	if (used_id(at) != 3 || used_len(at) != 96)
		return fail("indirect: used id %u len %u", used_id(at), used_len(at));
	for (int i = 0; i < 3; i++)
		if (all_zero(bufs[8 + i], 32))
			return fail("indirect: segment %d stayed zero", i);
	return 0;
}

/* 70,000 requests in batches of 32: avail and used indexes wrap. */
static int wrap_requests(void)
{
	const u32 total = 70000;
	u32 batch = vd.qsize < 32 ? vd.qsize : 32;
	u64 t0 = now_ns();
	char arg[16];

	if (cmdline_get("batch", arg, sizeof(arg))) {	/* for same-size comparisons */
		u32 b = parse_num(arg, NULL);

		if (b >= 1 && b < batch)
			batch = b;
	}

	for (u32 done = 0; done < total; done += batch) {
		for (u16 i = 0; i < batch; i++) {
			add_buf(i, bufs[i], 16, DESC_F_WRITE, 0);
			publish(i);
		}
		kick();
		if (wait_used(2000) < 0)
			return fail("wrap: stuck after %u requests (used %u avail %u status %#x)",
				    done, *used_idx_ptr(), vd.avail_idx, get_status());
	}
	info("%u requests in batches of %u: %lu ms, used idx %u", total, batch,
	     (now_ns() - t0) / 1000000, *used_idx_ptr());
	if (vd.features & F_EVENT_IDX && *avail_event_ptr() != vd.avail_idx)
		return fail("avail_event %u, expected %u", *avail_event_ptr(), vd.avail_idx);
	return 0;
}

static int wait_count(u32 vec, u64 before, u64 ms)
{
	u64 end = now_ns() + ms * 1000000ull;

	while (irq_counts[vec] == before) {
		if (now_ns() > end)
			return -1;
		cpu_relax();
	}
	return 0;
}

/* ---------------- interrupt tests ---------------- */
static int msix_tests(void)
{
	u64 n;

	msix_set(0, VEC_VIRTIO_CONFIG, false);
	msix_set(1, VEC_VIRTIO_QUEUE, false);
	msix_enable(true);
	n = irq_counts[VEC_VIRTIO_QUEUE];
	if (simple_request(4, "msix") < 0)
		return -1;
	if (wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("MSI-X: no interrupt on vector %#x", VEC_VIRTIO_QUEUE);

	/* Masked: the interrupt waits in the PBA until unmasked. */
	msix_mask(1, true);
	n = irq_counts[VEC_VIRTIO_QUEUE];
	if (simple_request(5, "msix masked") < 0)
		return -1;
	delay_ns(20000000);
	if (irq_counts[VEC_VIRTIO_QUEUE] != n)
		return fail("MSI-X: interrupt delivered while masked");
	if (!(mmio_read32(vd.msix_pba) & 2))
		return fail("MSI-X: pending bit not set while masked (PBA %#x)",
			    mmio_read32(vd.msix_pba));
	msix_mask(1, false);
	if (wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("MSI-X: pending interrupt not delivered on unmask");
	if (mmio_read32(vd.msix_pba) & 2)
		return fail("MSI-X: pending bit still set after delivery");
	info("MSI-X delivery, masking and pending bit work");
	return 0;
}

static int event_idx_test(void)
{
	u64 n;

	if (!(vd.features & F_EVENT_IDX))
		return fail("EVENT_IDX not negotiated");
	/* used_event far ahead: no interrupt for this buffer. */
	hold_used_event = true;
	*used_event_ptr() = vd.avail_idx + 100;
	mb();
	n = irq_counts[VEC_VIRTIO_QUEUE];
	if (simple_request(6, "event_idx suppressed") < 0)
		return -1;
	delay_ns(20000000);
	if (irq_counts[VEC_VIRTIO_QUEUE] != n)
		return fail("EVENT_IDX: interrupt despite used_event");
	/* used_event = the index this buffer gets: interrupt. */
	*used_event_ptr() = vd.avail_idx;
	mb();
	if (simple_request(7, "event_idx wanted") < 0)
		return -1;
	hold_used_event = false;
	if (wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("EVENT_IDX: no interrupt when used_event was reached");
	if (*avail_event_ptr() != vd.avail_idx)
		return fail("avail_event %u, expected %u", *avail_event_ptr(), vd.avail_idx);
	info("EVENT_IDX suppression works");
	return 0;
}

/* INTx through PIIX3 PIRQ -> ISA IRQ 11 -> IOAPIC (edge, so the level
 * line cannot storm); the ISR read must lower the line. */
static int intx_test(const char *what)
{
	u32 gsi = isa_irq_gsi(INTX_IRQ);
	u64 n = irq_counts[VEC_VIRTIO_INTX];
	u8 isr;

	read_isr();	/* earlier buffers may have left the line high */
	for (u32 p = 0; p < 4; p++)
		cfg_write8(1, 0x60 + p, INTX_IRQ);
	cfg_write16(vd.dev, 0x04, cfg_read16(vd.dev, 0x04) & ~0x400);
	ioapic_route(gsi, VEC_VIRTIO_INTX, false, false, lapic_id());
	if (simple_request(12, what) < 0)
		return -1;
	if (wait_count(VEC_VIRTIO_INTX, n, 1000) < 0)
		return fail("%s: no INTx interrupt (GSI %u, PCI status %#x)", what, gsi,
			    cfg_read16(vd.dev, 0x06));
	if (!(cfg_read16(vd.dev, 0x06) & 0x08))
		return fail("%s: PCI status interrupt bit clear while pending", what);
	isr = read_isr();
	if (!(isr & 1))
		return fail("%s: ISR %#x without the queue bit", what, isr);
	if (read_isr() != 0)
		return fail("%s: ISR not cleared by the read", what);
	if (cfg_read16(vd.dev, 0x06) & 0x08)
		return fail("%s: INTx still asserted after the ISR read", what);
	ioapic_mask(gsi);
	info("%s: INTx and ISR work", what);
	return 0;
}

/* A descriptor that points at itself: DEVICE_NEEDS_RESET and a config
 * interrupt; then a reset and a fresh initialisation must work. */
static int violation_test(void)
{
	u64 n = irq_counts[VEC_VIRTIO_CONFIG];
	u16 d = 13 & (vd.qsize - 1);

	add_buf(d, bufs[13], 16, DESC_F_WRITE | DESC_F_NEXT, d);
	publish(d);
	kick();
	for (u64 end = now_ns() + 2000000000ull; !(get_status() & ST_NEEDS_RESET);) {
		if (now_ns() > end)
			return fail("descriptor loop: no DEVICE_NEEDS_RESET (status %#x)",
				    get_status());
		cpu_relax();
	}
	if (wait_count(VEC_VIRTIO_CONFIG, n, 1000) < 0)
		return fail("descriptor loop: no config interrupt");
	info("descriptor loop: DEVICE_NEEDS_RESET and config interrupt");
	return 0;
}

static int run_modern(void)
{
	if (modern_init(F_VERSION_1 | F_INDIRECT | F_EVENT_IDX, MODERN_QSIZE, true) < 0)
		return -1;
	info("negotiated features %#lx, queue size %u", vd.features, vd.qsize);
	if (simple_request(0, "polled") < 0 || chained_request() < 0 ||
	    indirect_request() < 0 || wrap_requests() < 0)
		return -1;
	if (msix_tests() < 0 || event_idx_test() < 0 || violation_test() < 0)
		return -1;
	/* Re-initialise after the violation: the device works again. */
	if (modern_init(F_VERSION_1 | F_INDIRECT, 16, true) < 0)
		return -1;
	if (get_status() & ST_NEEDS_RESET)
		return fail("NEEDS_RESET survived the reset");
	if (simple_request(0, "after reset") < 0)
		return -1;
	msix_enable(false);
	if (modern_init(F_VERSION_1, 16, false) < 0 || intx_test("modern") < 0)
		return -1;
	set_status(0);
	return 0;
}

static int run_legacy(void)
{
	if (legacy_init() < 0)
		return -1;
	info("legacy: queue size %u, features %#lx", vd.qsize, vd.features);
	if (simple_request(0, "legacy polled") < 0 || chained_request() < 0)
		return -1;
	if ((vd.features & F_INDIRECT) && indirect_request() < 0)
		return -1;
	if (wrap_requests() < 0 || intx_test("legacy") < 0)
		return -1;
	set_status(0);
	return 0;
}

int case_virtio_rng(void)
{
	char mode[16];

	memset(&vd, 0, sizeof(vd));
	vd.legacy = cmdline_get("mode", mode, sizeof(mode)) && !strncmp(mode, "legacy", 7);
	vd.trans_id = VIRTIO_RNG_TRANS;
	vd.type = 4;
	if (find_device() < 0)
		return fail("no virtio-rng-pci device (1af4:1005 or 1af4:1044) on bus 0");
	if (map_device() < 0)
		return -1;
	return vd.legacy ? run_legacy() : run_modern();
}

/* ---------------- virtio-blk ---------------- */
#define VIRTIO_BLK_TRANS	0x1001
#define BLK_F_RO		(1ull << 5)
#define BLK_F_BLK_SIZE		(1ull << 6)
#define BLK_F_FLUSH		(1ull << 9)
#define BLK_T_IN		0
#define BLK_T_OUT		1
#define BLK_T_FLUSH		4
#define BLK_T_GET_ID		8
#define BLK_S_OK		0
#define BLK_S_IOERR		1
#define BLK_S_UNSUPP		2
#define BLK_ID			"minikvm-kit"

struct blk_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

static struct blk_hdr blk_hdr;
static u8 blk_status;
static u8 blk_data[8192] __attribute__((aligned(512)));

/* One polled request: header, data (up to two descriptors when split),
 * status. Returns the status byte, or -1 on timeout; *written gets the
 * used length. */
static int blk_request(u32 type, u64 sector, u32 len, bool device_writes, bool split, u32 *written)
{
	u16 n = 0, flags = device_writes ? DESC_F_WRITE : 0;

	blk_hdr = (struct blk_hdr){ type, 0, sector };
	blk_status = 0xff;
	add_buf(n, &blk_hdr, sizeof(blk_hdr), DESC_F_NEXT, n + 1);
	n++;
	if (len && split) {
		add_buf(n, blk_data, len / 2, flags | DESC_F_NEXT, n + 1);
		n++;
		add_buf(n, blk_data + len / 2, len - len / 2, flags | DESC_F_NEXT, n + 1);
		n++;
	} else if (len) {
		add_buf(n, blk_data, len, flags | DESC_F_NEXT, n + 1);
		n++;
	}
	add_buf(n, &blk_status, 1, DESC_F_WRITE, 0);
	mb();
	publish(0);
	mb();
	kick();
	if (wait_used(5000) < 0)
		return fail("request type %u sector %lu: no completion", type, sector);
	mb();
	*written = used_len(vd.avail_idx - 1);
	return blk_status;
}

static u64 blk_capacity(void)
{
	if (vd.legacy)
		return inl(vd.iobase + 0x14) | (u64)inl(vd.iobase + 0x18) << 32;
	return mmio_read32(vd.devcfg) | (u64)mmio_read32(vd.devcfg + 4) << 32;
}

/* Patterns: sector 0 = 0xa1, sectors 8-15 = 0xb2 (split), last = 0xc3. */
static const struct { u64 sector; u32 len; u8 pattern; bool split; } blk_patterns[] = {
	{ 0, 512, 0xa1, false }, { 8, 4096, 0xb2, true }, { ~0ull, 512, 0xc3, false },
};

static int blk_rw_tests(u64 cap)
{
	u32 w;
	int st;

	for (unsigned i = 0; i < 3; i++) {
		u64 s = blk_patterns[i].sector == ~0ull ? cap - 1 : blk_patterns[i].sector;

		memset(blk_data, blk_patterns[i].pattern, blk_patterns[i].len);
		st = blk_request(BLK_T_OUT, s, blk_patterns[i].len, false, blk_patterns[i].split, &w);
		if (st != BLK_S_OK)
			return fail("write sector %lu: status %d", s, st);
	}
	st = blk_request(BLK_T_FLUSH, 0, 0, false, false, &w);
	if (st != BLK_S_OK)
		return fail("flush: status %d", st);
	for (unsigned i = 0; i < 3; i++) {
		u64 s = blk_patterns[i].sector == ~0ull ? cap - 1 : blk_patterns[i].sector;
		u32 len = blk_patterns[i].len;

		memset(blk_data, 0, len);
		st = blk_request(BLK_T_IN, s, len, true, !blk_patterns[i].split, &w);
		if (st != BLK_S_OK)
			return fail("read sector %lu: status %d", s, st);
		if (w != len + 1)
			return fail("read sector %lu: used length %u, expected %u", s, w, len + 1);
		for (u32 j = 0; j < len; j++)
			if (blk_data[j] != blk_patterns[i].pattern)
				return fail("read sector %lu: byte %u is %#x, expected %#x", s, j,
					    blk_data[j], blk_patterns[i].pattern);
	}
	info("wrote, flushed and read back sectors 0, 8-15 and %lu", cap - 1);
	return 0;
}

static int blk_other_tests(u64 cap)
{
	u32 w;
	int st;

	memset(blk_data, 0, 64);
	st = blk_request(BLK_T_GET_ID, 0, 20, true, false, &w);
	if (st != BLK_S_OK || memcmp(blk_data, BLK_ID, sizeof(BLK_ID)))
		return fail("GET_ID: status %d, id '%.20s'", st, blk_data);
	info("GET_ID: '%s'", (const char *)blk_data);
	st = blk_request(BLK_T_IN, cap, 512, true, false, &w);
	if (st != BLK_S_IOERR)
		return fail("read beyond capacity: status %d, expected IOERR", st);
	st = blk_request(BLK_T_IN, cap - 1, 1024, true, false, &w);
	if (st != BLK_S_IOERR)
		return fail("read across the end: status %d, expected IOERR", st);
	st = blk_request(BLK_T_IN, ~0ull, 512, true, false, &w);
	if (st != BLK_S_IOERR)
		return fail("read at sector 2^64-1: status %d, expected IOERR", st);
	st = blk_request(0x77, 0, 0, false, false, &w);
	if (st != BLK_S_UNSUPP)
		return fail("unknown request type: status %d, expected UNSUPP", st);
	info("out-of-range reads: IOERR; unknown type: UNSUPP");
	/* The device still works. */
	st = blk_request(BLK_T_IN, 0, 512, true, false, &w);
	if (st != BLK_S_OK || blk_data[0] != 0xa1)
		return fail("read after errors: status %d", st);
	return 0;
}

/* readonly=1: the image holds the patterns of an earlier run; writes fail. */
static int blk_ro_tests(void)
{
	u32 w;
	int st;

	if (!vd.legacy && !(vd.features & BLK_F_RO))
		return fail("RO not offered (features %#lx)", vd.features);
	memset(blk_data, 0x5a, 512);
	st = blk_request(BLK_T_OUT, 0, 512, false, false, &w);
	if (st != BLK_S_IOERR)
		return fail("write to a read-only device: status %d, expected IOERR", st);
	st = blk_request(BLK_T_IN, 0, 512, true, false, &w);
	if (st != BLK_S_OK || blk_data[0] != 0xa1 || blk_data[511] != 0xa1)
		return fail("read-only: read sector 0: status %d, byte %#x", st, blk_data[0]);
	info("read-only: write IOERR, read back the earlier pattern");
	return 0;
}

int case_virtio_blk(void)
{
	char mode[16], ro[8];
	bool readonly;
	u64 cap;

	memset(&vd, 0, sizeof(vd));
	vd.legacy = cmdline_get("mode", mode, sizeof(mode)) && !strncmp(mode, "legacy", 7);
	readonly = cmdline_get("readonly", ro, sizeof(ro)) && ro[0] == '1';
	vd.trans_id = VIRTIO_BLK_TRANS;
	vd.type = 2;
	if (find_device() < 0)
		return fail("no virtio-blk-pci device (1af4:1001 or 1af4:1042) on bus 0");
	if (map_device() < 0)
		return -1;
	if (vd.legacy ? legacy_init() < 0
		      : modern_init(F_VERSION_1 | BLK_F_FLUSH | BLK_F_BLK_SIZE | BLK_F_RO, 16,
				    false) < 0)
		return -1;
	if (!vd.legacy && !(vd.features & BLK_F_FLUSH))
		return fail("FLUSH not offered (features %#lx)", vd.features);
	cap = blk_capacity();
	info("capacity %lu sectors, features %#lx, queue size %u", cap, vd.features, vd.qsize);
	if (cap < 64)
		return fail("capacity %lu too small for the test", cap);
	if ((readonly ? blk_ro_tests() : blk_rw_tests(cap)) < 0 || blk_other_tests(cap) < 0)
		return -1;
	set_status(0);
	return 0;
}
