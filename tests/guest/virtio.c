/* virtio.c: the virtio-rng case, on the kit's driver library (virtio_drv.h).
 * `case=virtio-rng` drives the modern interface (capabilities in BAR 4):
 * polled requests (single, chained, indirect), 70,000 batched requests so
 * the 16-bit ring indexes wrap, MSI-X delivery through the LAPIC with
 * masking and the pending bit, EVENT_IDX suppression, INTx + ISR, and a
 * descriptor loop that must set DEVICE_NEEDS_RESET with a config
 * interrupt, after which a reset and re-initialisation work again.
 * `mode=legacy` drives the legacy I/O BAR 0 instead (polled + INTx).
 * `packed=1` negotiates VIRTIO_F_RING_PACKED (the device needs packed=on)
 * and runs the same ground on a packed ring: polled single, chained and
 * indirect requests, 70,000 requests in chains of 1 to 3 descriptors so
 * the wrap counters flip hundreds of times, MSI-X with the driver's event
 * suppression (enable, disable, a descriptor event), the device's event
 * for kicks, a 24-byte indirect table -> DEVICE_NEEDS_RESET -> reset -> a
 * queue whose size is not a power of two.
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

/* ---------------- packed rings ---------------- */
#define PACKED_WANT (VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT | VIRTIO_F_EVENT_IDX | \
		     VIRTIO_F_RING_PACKED)

/* Wait for the next used entry (polled); its token and length. */
static int p_wait_used(const char *what, void **token, u32 *len)
{
	u64 end = now_ns() + 2000000000ull;

	while (!vq_has_used(&vq)) {
		if (now_ns() > end)
			return fail("%s: no used buffer after 2 s (status %#x, used %u wrap %u)",
				    what, vdev_status(&vd), vq.next_used, vq.used_wrap);
		cpu_relax();
	}
	*token = vq_pop(&vq, len);
	return 0;
}

/* One request of n writable segments of seg bytes each (n = 0: through
 * an indirect table of 3 x 32 bytes); checks length, token and data. */
static int p_request(u8 first, u32 n, u32 seg, const char *what)
{
	struct vbuf b[3];
	u32 count = n ? n : 3, size = n ? seg : 32, len = 0;
	void *tok = NULL, *want = &bufs[first];
	int id;

	for (u32 k = 0; k < count; k++) {
		memset(bufs[first + k], 0, 64);
		b[k] = (struct vbuf){ bufs[first + k], size, true };
	}
	id = n ? vq_add(&vq, b, n, want) : vq_add_indirect(&vq, indirect_table, b, 3, want);
	if (id < 0)
		return fail("%s: no room in the ring (%u free)", what, vq.num_free);
	vq_kick(&vq);
	if (p_wait_used(what, &tok, &len) < 0)
		return -1;
	if (tok != want || len != count * size)
		return fail("%s: used token %p len %u, expected %p %u", what, tok, len, want,
			    count * size);
	for (u32 k = 0; k < count; k++)
		if (all_zero(bufs[first + k], size))
			return fail("%s: segment %u stayed zero", what, k);
	return 0;
}

/* 70,000 requests in chains of 1 to 3 descriptors, a batch per kick. */
static int p_wrap_requests(u32 total)
{
	u32 batch = vq.size < 32 ? vq.size : 32, done = 0, slots = 0;
	u64 t0 = now_ns();

	while (done < total) {
		u32 added = 0, got = 0;

		while (added < batch && done + added < total) {
			u32 n = 1 + (done + added) % 3;
			struct vbuf b[3];

			if (n > vq.num_free)
				break;
			for (u32 k = 0; k < n; k++)
				b[k] = (struct vbuf){ bufs[16 + k], 16, true };
			if (vq_add(&vq, b, n, (void *)(u64)(n + 1)) < 0)
				return fail("wrap: add failed after %u", done + added);
			slots += n;
			added++;
		}
		vq_kick(&vq);
		if (vq_wait_all(&vq, 2000) < 0)
			return fail("wrap: stuck after %u requests (status %#x)", done,
				    vdev_status(&vd));
		for (void *tok; got < added; got++) {
			u32 len;

			tok = vq_pop(&vq, &len);
			if (!tok || len != 16 * ((u64)tok - 1))
				return fail("wrap: request %u: token %p len %u", done + got, tok,
					    len);
		}
		if (vq_has_used(&vq))
			return fail("wrap: more used entries than requests");
		done += added;
	}
	info("%u packed requests (%u descriptors, %u laps of %u): %lu ms", total, slots,
	     slots / vq.size, vq.size, (now_ns() - t0) / 1000000);
	if (vq.num_free != vq.size || vq.num_free_ids != vq.size)
		return fail("wrap: %u slots and %u ids free of %u", vq.num_free, vq.num_free_ids,
			    vq.size);
	return 0;
}

/* The device's event suppression after it consumed everything: with
 * EVENT_IDX a descriptor event at our next slot (minikvm), or ENABLE
 * (QEMU leaves it); never DISABLE while idle. */
static int p_device_event(void)
{
	u16 flags = vq.device_ev->flags, off_wrap = vq.device_ev->off_wrap;
	u16 want = vq.next_avail | (vq.avail_wrap ? VRING_PACKED_EVENT_WRAP : 0);

	if (flags == VRING_PACKED_EVENT_DESC && off_wrap != want)
		return fail("device event at %#x, expected %#x", off_wrap, want);
	if (flags == VRING_PACKED_EVENT_DISABLE)
		return fail("device event DISABLE while idle");
	vq.num_added = 1;	/* as if one descriptor was just added */
	vq.next_avail = (vq.next_avail + 1) % vq.size;
	vq.avail_wrap ^= vq.next_avail == 0;
	if (!vq_kick_needed(&vq))
		return fail("no kick wanted for the next descriptor (event %#x flags %u)",
			    off_wrap, flags);
	vq.avail_wrap ^= vq.next_avail == 0;
	vq.next_avail = (vq.next_avail + vq.size - 1) % vq.size;
	vq.num_added = 0;
	info("device event suppression: flags %u off_wrap %#x", flags, off_wrap);
	return 0;
}

/* One 64-byte request with interrupts on: the interrupt must come (or
 * must not, within 20 ms) before we consume the used entry, since
 * consuming moves our event on (a device that checks it late would then
 * rightly stay quiet). */
static int p_request_irq(u8 b, bool want_irq, const char *what)
{
	struct vbuf buf = { bufs[b], 64, true };
	u64 n = irq_counts[VEC_VIRTIO_QUEUE], end = now_ns() + 2000000000ull;
	void *tok;
	u32 len;

	memset(bufs[b], 0, 64);
	if (vq_add(&vq, &buf, 1, bufs[b]) < 0)
		return fail("%s: no room in the ring", what);
	vq_kick(&vq);
	if (want_irq && wait_count(VEC_VIRTIO_QUEUE, n, 1000) < 0)
		return fail("%s: no interrupt on vector %#x (used entry %s)", what,
			    VEC_VIRTIO_QUEUE, vq_has_used(&vq) ? "there" : "missing");
	while (!vq_has_used(&vq)) {
		if (now_ns() > end)
			return fail("%s: no used buffer after 2 s", what);
		cpu_relax();
	}
	if (!want_irq) {
		delay_ns(20000000);
		if (irq_counts[VEC_VIRTIO_QUEUE] != n)
			return fail("%s: unwanted interrupt", what);
	}
	if (p_wait_used(what, &tok, &len) < 0)
		return -1;
	if (tok != bufs[b] || len != 64 || all_zero(bufs[b], 64))
		return fail("%s: used token %p len %u", what, tok, len);
	return 0;
}

static int p_interrupt_tests(void)
{
	u16 pos;
	bool wrap;

	vdev_msix_set(&vd, 0, VEC_VIRTIO_CONFIG, false);
	vdev_msix_set(&vd, 1, VEC_VIRTIO_QUEUE, false);
	vdev_msix_enable(&vd, true);
	vq_enable_cb(&vq);		/* DESC at our next used slot */
	if (p_request_irq(0, true, "packed msix") < 0)
		return -1;
	vq_disable_cb(&vq);		/* DISABLE */
	if (p_request_irq(1, false, "packed cb disabled") < 0)
		return -1;
	/* A descriptor event one used entry ahead: none for the first. */
	pos = vq.next_used + 1;
	wrap = vq.used_wrap;
	if (pos >= vq.size) {
		pos -= vq.size;
		wrap = !wrap;
	}
	vq.driver_ev->off_wrap = pos | (wrap ? VRING_PACKED_EVENT_WRAP : 0);
	virtio_mb();
	vq.driver_ev->flags = VRING_PACKED_EVENT_DESC;
	virtio_mb();
	/* vq.cb_off stays set: vq_pop leaves the event alone. */
	if (p_request_irq(2, false, "packed event ahead") < 0 ||
	    p_request_irq(3, true, "packed event reached") < 0)
		return -1;
	vq_enable_cb(&vq);
	if (p_request_irq(4, true, "packed enabled again") < 0)
		return -1;
	info("packed: MSI-X with ENABLE, DISABLE and descriptor events works");
	return 0;
}

/* An indirect table of 24 bytes (not a multiple of 16): DEVICE_NEEDS_RESET
 * and a config interrupt (QEMU refuses it too). */
static int p_violation_test(void)
{
	u64 n = irq_counts[VEC_VIRTIO_CONFIG];
	u16 id = vq.free_ids[vq.num_free_ids - 1];

	vq_packed_put(&vq, indirect_table, 24, id, VRING_DESC_F_INDIRECT, true);
	vq_notify(&vq);
	for (u64 end = now_ns() + 2000000000ull; !(vdev_status(&vd) & VIRTIO_ST_NEEDS_RESET);) {
		if (now_ns() > end)
			return fail("packed bad indirect table: no DEVICE_NEEDS_RESET (status %#x)",
				    vdev_status(&vd));
		cpu_relax();
	}
	if (wait_count(VEC_VIRTIO_CONFIG, n, 1000) < 0)
		return fail("packed bad indirect table: no config interrupt");
	info("packed: 24-byte indirect table -> DEVICE_NEEDS_RESET and config interrupt");
	return 0;
}

static int run_packed(void)
{
	if (modern_init(PACKED_WANT, MODERN_QSIZE, true) < 0)
		return -1;
	if (!(vd.offered & VIRTIO_F_RING_PACKED))
		return fail("RING_PACKED not offered (features %#lx): run with packed=on",
			    vd.offered);
	if (!vq.packed)
		return fail("queue not packed (features %#lx)", vd.features);
	info("packed: negotiated features %#lx, queue size %u", vd.features, vq.size);
	if (p_request(0, 1, 64, "packed polled") < 0 || p_request(1, 3, 16, "packed chain") < 0 ||
	    p_request(8, 0, 32, "packed indirect") < 0 || p_wrap_requests(70000) < 0 ||
	    p_device_event() < 0)
		return -1;
	if (p_interrupt_tests() < 0 || p_violation_test() < 0)
		return -1;
	/* Re-initialised, with a queue size that is no power of two. */
	if (modern_init(PACKED_WANT, 6, true) < 0)
		return -1;
	if (vdev_status(&vd) & VIRTIO_ST_NEEDS_RESET)
		return fail("NEEDS_RESET survived the reset");
	if (vq.size != 6)
		return fail("packed queue size %u, expected 6", vq.size);
	if (p_request(0, 2, 32, "packed after reset") < 0 || p_wrap_requests(3000) < 0)
		return -1;
	vdev_msix_enable(&vd, false);
	vdev_set_status(&vd, 0);
	return 0;
}

int case_virtio_rng(void)
{
	char mode[16], packed[8];
	bool legacy = cmdline_get("mode", mode, sizeof(mode)) && !strncmp(mode, "legacy", 7);

	if (vdev_find(&vd, VIRTIO_ID_RNG, 0) < 0)
		return fail("no virtio-rng-pci device (1af4:1005 or 1af4:1044) on bus 0");
	if (vdev_map(&vd, legacy) < 0)
		return -1;
	if (!vd.legacy && cmdline_get("packed", packed, sizeof(packed)) && packed[0] == '1')
		return run_packed();
	return vd.legacy ? run_legacy() : run_modern();
}

