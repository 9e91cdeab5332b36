/* virtio.c: the virtio-rng case, on the kit's driver library (virtio_drv.h).
 * `case=virtio-rng` drives the modern interface (capabilities in BAR 4):
 * polled requests (single, chained, indirect), 70,000 batched requests so
 * the 16-bit ring indexes wrap, MSI-X delivery through the LAPIC with
 * masking and the pending bit, EVENT_IDX suppression, INTx + ISR, and a
 * descriptor loop that must set DEVICE_NEEDS_RESET with a config
 * interrupt, after which a reset and re-initialisation work again.
 * `mode=legacy` drives the legacy I/O BAR 0 instead (polled + INTx).
 * The virtio-blk cases are in virtio_blk.c. */
#include "tests/guest/virtio_drv.h"

#define VEC_VIRTIO_CONFIG	0x40
#define VEC_VIRTIO_QUEUE	0x41
#define VEC_VIRTIO_INTX		0x42
#define INTX_IRQ		11
#define MODERN_QSIZE		64
#define RING_MAX		256

static struct vdev vd;
static struct virtq vq;
static struct vring_desc indirect_table[8] __attribute__((aligned(16)));
static u8 bufs[RING_MAX][64] __attribute__((aligned(64)));

/* ---------------- requests ---------------- */
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
	u16 at = vq.avail_idx, d = b & (vq.size - 1);

	memset(bufs[b], 0, 64);
	if (!hold_used_event)	/* EVENT_IDX: interrupt for this buffer */
		*vq_used_event(&vq) = at;
	vq_set_desc(&vq, d, bufs[b], 64, VRING_DESC_F_WRITE, 0);
	vq_publish(&vq, d);
	vq_notify(&vq);
	if (vq_wait_all(&vq, 2000) < 0)
		return fail("%s: no used buffer after 2 s (used idx %u, avail %u, status %#x)",
			    what, vq_used_idx(&vq), vq.avail_idx, vdev_status(&vd));
	if (vq_used_id_at(&vq, at) != d || vq_used_len_at(&vq, at) != 64)
		return fail("%s: used id %u len %u, expected %u 64", what, vq_used_id_at(&vq, at),
			    vq_used_len_at(&vq, at), d);
	if (all_zero(bufs[b], 64))
		return fail("%s: 64 bytes of zeros", what);
	return 0;
}

static int chained_request(void)
{
	u16 at = vq.avail_idx;

	memset(bufs[1], 0, 64);
	memset(bufs[2], 0, 64);
	vq_set_desc(&vq, 1, bufs[1], 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	vq_set_desc(&vq, 2, bufs[2], 48, VRING_DESC_F_WRITE, 0);
	vq_publish(&vq, 1);
	vq_notify(&vq);
	if (vq_wait_all(&vq, 2000) < 0)
		return fail("chain: no used buffer");
	if (vq_used_id_at(&vq, at) != 1 || vq_used_len_at(&vq, at) != 64)
		return fail("chain: used id %u len %u", vq_used_id_at(&vq, at),
			    vq_used_len_at(&vq, at));
	if (all_zero(bufs[1], 16) || all_zero(bufs[2], 48))
		return fail("chain: a segment stayed zero");
	return 0;
}

static int indirect_request(void)
{
	u16 at = vq.avail_idx;

	for (int i = 0; i < 3; i++) {
		memset(bufs[8 + i], 0, 64);
		u16 flags = VRING_DESC_F_WRITE | (i < 2 ? VRING_DESC_F_NEXT : 0);

		indirect_table[i] = (struct vring_desc){ (u64)bufs[8 + i], 32, flags, i + 1 };
	}
	vq_set_desc(&vq, 3, indirect_table, 3 * sizeof(struct vring_desc),
		    VRING_DESC_F_INDIRECT, 0);
	vq_publish(&vq, 3);
	vq_notify(&vq);
	if (vq_wait_all(&vq, 2000) < 0)
		return fail("indirect: no used buffer");
	if (vq_used_id_at(&vq, at) != 3 || vq_used_len_at(&vq, at) != 96)
		return fail("indirect: used id %u len %u", vq_used_id_at(&vq, at),
			    vq_used_len_at(&vq, at));
	for (int i = 0; i < 3; i++)
		if (all_zero(bufs[8 + i], 32))
			return fail("indirect: segment %d stayed zero", i);
	return 0;
}

/* 70,000 requests in batches of 32: avail and used indexes wrap. */
static int wrap_requests(void)
{
	const u32 total = 70000;
	u32 batch = vq.size < 32 ? vq.size : 32;
	u64 t0 = now_ns();
	char arg[16];

	if (cmdline_get("batch", arg, sizeof(arg))) {	/* for same-size comparisons */
		u32 b = parse_num(arg, NULL);

		if (b >= 1 && b < batch)
			batch = b;
	}

	for (u32 done = 0; done < total; done += batch) {
		for (u16 i = 0; i < batch; i++) {
			vq_set_desc(&vq, i, bufs[i], 16, VRING_DESC_F_WRITE, 0);
			vq_publish(&vq, i);
		}
		vq_notify(&vq);
		if (vq_wait_all(&vq, 2000) < 0)
			return fail("wrap: stuck after %u requests (used %u avail %u status %#x)",
				    done, vq_used_idx(&vq), vq.avail_idx, vdev_status(&vd));
	}
	info("%u requests in batches of %u: %lu ms, used idx %u", total, batch,
	     (now_ns() - t0) / 1000000, vq_used_idx(&vq));
	if (vd.features & VIRTIO_F_EVENT_IDX && *vq_avail_event(&vq) != vq.avail_idx)
		return fail("avail_event %u, expected %u", *vq_avail_event(&vq), vq.avail_idx);
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

	vdev_msix_set(&vd, 0, VEC_VIRTIO_CONFIG, false);
	vdev_msix_set(&vd, 1, VEC_VIRTIO_QUEUE, false);
	vdev_msix_enable(&vd, true);
	n = irq_counts[VEC_VIRTIO_QUEUE];
	if (simple_request(4, "msix") < 0)
		return -1;
	if (wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("MSI-X: no interrupt on vector %#x", VEC_VIRTIO_QUEUE);

	/* Masked: the interrupt waits in the PBA until unmasked. */
	vdev_msix_mask(&vd, 1, true);
	n = irq_counts[VEC_VIRTIO_QUEUE];
	if (simple_request(5, "msix masked") < 0)
		return -1;
	delay_ns(20000000);
	if (irq_counts[VEC_VIRTIO_QUEUE] != n)
		return fail("MSI-X: interrupt delivered while masked");
	if (!vdev_msix_pending(&vd, 1))
		return fail("MSI-X: pending bit not set while masked (PBA %#x)",
			    mmio_read32(vd.msix_pba));
	vdev_msix_mask(&vd, 1, false);
	if (wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("MSI-X: pending interrupt not delivered on unmask");
	if (vdev_msix_pending(&vd, 1))
		return fail("MSI-X: pending bit still set after delivery");
	info("MSI-X delivery, masking and pending bit work");
	return 0;
}

static int event_idx_test(void)
{
	u64 n;

	if (!(vd.features & VIRTIO_F_EVENT_IDX))
		return fail("EVENT_IDX not negotiated");
	/* used_event far ahead: no interrupt for this buffer. */
	hold_used_event = true;
	*vq_used_event(&vq) = vq.avail_idx + 100;
	virtio_mb();
	n = irq_counts[VEC_VIRTIO_QUEUE];
	if (simple_request(6, "event_idx suppressed") < 0)
		return -1;
	delay_ns(20000000);
	if (irq_counts[VEC_VIRTIO_QUEUE] != n)
		return fail("EVENT_IDX: interrupt despite used_event");
	/* used_event = the index this buffer gets: interrupt. */
	*vq_used_event(&vq) = vq.avail_idx;
	virtio_mb();
	if (simple_request(7, "event_idx wanted") < 0)
		return -1;
	hold_used_event = false;
	if (wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("EVENT_IDX: no interrupt when used_event was reached");
	if (*vq_avail_event(&vq) != vq.avail_idx)
		return fail("avail_event %u, expected %u", *vq_avail_event(&vq), vq.avail_idx);
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

	vdev_isr(&vd);	/* earlier buffers may have left the line high */
	for (u32 p = 0; p < 4; p++)
		pci_cfg_write8(1, 0x60 + p, INTX_IRQ);
	pci_cfg_write16(vd.slot, 0x04, pci_cfg_read16(vd.slot, 0x04) & ~0x400);
	ioapic_route(gsi, VEC_VIRTIO_INTX, false, false, lapic_id());
	if (simple_request(12, what) < 0)
		return -1;
	if (wait_count(VEC_VIRTIO_INTX, n, 1000) < 0)
		return fail("%s: no INTx interrupt (GSI %u, PCI status %#x)", what, gsi,
			    pci_cfg_read16(vd.slot, 0x06));
	if (!(pci_cfg_read16(vd.slot, 0x06) & 0x08))
		return fail("%s: PCI status interrupt bit clear while pending", what);
	isr = vdev_isr(&vd);
	if (!(isr & 1))
		return fail("%s: ISR %#x without the queue bit", what, isr);
	if (vdev_isr(&vd) != 0)
		return fail("%s: ISR not cleared by the read", what);
	if (pci_cfg_read16(vd.slot, 0x06) & 0x08)
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
	u16 d = 13 & (vq.size - 1);

	vq_set_desc(&vq, d, bufs[13], 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, d);
	vq_publish(&vq, d);
	vq_notify(&vq);
	for (u64 end = now_ns() + 2000000000ull; !(vdev_status(&vd) & VIRTIO_ST_NEEDS_RESET);) {
		if (now_ns() > end)
			return fail("descriptor loop: no DEVICE_NEEDS_RESET (status %#x)",
				    vdev_status(&vd));
		cpu_relax();
	}
	if (wait_count(VEC_VIRTIO_CONFIG, n, 1000) < 0)
		return fail("descriptor loop: no config interrupt");
	info("descriptor loop: DEVICE_NEEDS_RESET and config interrupt");
	return 0;
}

/* Reset, negotiate, queue 0 with up to qsize entries (QEMU's virtio-rng
 * offers 8); MSI-X entries 0 (config) and 1 (queue) when vectors. */
static int modern_init(u64 want, u16 qsize, bool vectors)
{
	if (vdev_init(&vd, want) < 0)
		return -1;
	if (vdev_num_queues(&vd) < 1)
		return fail("no queues");
	if (vdev_config_msix(&vd, vectors ? 0 : VQ_NO_MSIX) < 0)
		return fail("MSI-X config vector not accepted");
	if (vq_setup(&vd, &vq, 0, qsize, vectors ? 1 : VQ_NO_MSIX) < 0)
		return -1;
	if (vq.notify_addr != vd.notify)
		return fail("queue 0 notify offset %#lx", vq.notify_addr - vd.notify);
	return vdev_driver_ok(&vd);
}

static int legacy_init(void)
{
	if (vdev_init(&vd, VIRTIO_F_INDIRECT) < 0)
		return -1;
	if (vq_setup(&vd, &vq, 0, RING_MAX, VQ_NO_MSIX) < 0)
		return -1;
	if (vq.size > RING_MAX)
		return fail("legacy queue size %u unusable", vq.size);
	return vdev_driver_ok(&vd);
}

static int run_modern(void)
{
	if (modern_init(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT | VIRTIO_F_EVENT_IDX, MODERN_QSIZE,
			true) < 0)
		return -1;
	info("negotiated features %#lx, queue size %u", vd.features, vq.size);
	if (simple_request(0, "polled") < 0 || chained_request() < 0 ||
	    indirect_request() < 0 || wrap_requests() < 0)
		return -1;
	if (msix_tests() < 0 || event_idx_test() < 0 || violation_test() < 0)
		return -1;
	/* Re-initialise after the violation: the device works again. */
	if (modern_init(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT, 16, true) < 0)
		return -1;
	if (vdev_status(&vd) & VIRTIO_ST_NEEDS_RESET)
		return fail("NEEDS_RESET survived the reset");
	if (simple_request(0, "after reset") < 0)
		return -1;
	vdev_msix_enable(&vd, false);
	if (modern_init(VIRTIO_F_VERSION_1, 16, false) < 0 || intx_test("modern") < 0)
		return -1;
	vdev_set_status(&vd, 0);
	return 0;
}

static int run_legacy(void)
{
	if (legacy_init() < 0)
		return -1;
	info("legacy: queue size %u, features %#lx", vq.size, vd.features);
	if (simple_request(0, "legacy polled") < 0 || chained_request() < 0)
		return -1;
	if ((vd.features & VIRTIO_F_INDIRECT) && indirect_request() < 0)
		return -1;
	if (wrap_requests() < 0 || intx_test("legacy") < 0)
		return -1;
	vdev_set_status(&vd, 0);
	return 0;
}

int case_virtio_rng(void)
{
	char mode[16];
	bool legacy = cmdline_get("mode", mode, sizeof(mode)) && !strncmp(mode, "legacy", 7);

	if (vdev_find(&vd, VIRTIO_ID_RNG, 0) < 0)
		return fail("no virtio-rng-pci device (1af4:1005 or 1af4:1044) on bus 0");
	if (vdev_map(&vd, legacy) < 0)
		return -1;
	return vd.legacy ? run_legacy() : run_modern();
}

