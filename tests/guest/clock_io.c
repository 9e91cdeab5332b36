/* clock_io.c: kvmclock while virtio-blk is busy (case kvmclock-io). The
 * first virtio-blk-pci reads 64 KiB blocks at random, IO_DEPTH in flight,
 * each completion raising an MSI-X interrupt (the VMM's irqfd path), for
 * busy_ms= (default 600) ms of kvmclock. Meanwhile every kvmclock read
 * must be monotonic, back-to-back PIT channel 2 one-shots of 50 ms must
 * measure 50 ms of kvmclock, and kvmclock must advance at the rate it has
 * against the TSC when the device is idle. */
#include "tests/guest/virtio_drv.h"

#define VEC_CLK_BLK	0x5e		/* queue 0's completions */
#define IO_DEPTH	16
#define IO_BYTES	(64 * 1024)
#define PIT_TICKS_50MS	59659
#define BLK_T_IN	0
#define BLK_CFG_CAPACITY 0x00

struct clk_req {
	struct { u32 type, reserved; u64 sector; } hdr;
	u8 status;
	struct vbuf segs[3];
};

static struct vdev cd;
static struct virtq cq;
static struct clk_req *creqs;
static u8 *cbuf;
static u64 clk_cap, clk_rng = 0x2545f4914f6cdd1dull;
static bool clk_opened;		/* the device was found and mapped */

/* kvmclock ns per 2^24 TSC ticks over a span (of less than 2^40 ns). */
static u64 ns_per_tick24(u64 ns, u64 ticks)
{
	return ticks ? (ns << 24) / ticks : 0;
}

static void pit_start(void)
{
	u8 p61 = inb(0x61);

	outb(0x61, (p61 & ~0x02) | 0x01);	/* gate on, speaker off */
	outb(0x43, 0xb0);			/* ch2, lobyte/hibyte, mode 0 */
	outb(0x42, PIT_TICKS_50MS & 0xff);
	outb(0x42, PIT_TICKS_50MS >> 8);
}

static bool pit_done(void)
{
	return inb(0x61) & 0x20;
}

static int clk_submit(struct clk_req *r)
{
	u64 blocks = clk_cap / (IO_BYTES / 512);
	u8 *data = cbuf + (r - creqs) * (u64)IO_BYTES;

	clk_rng ^= clk_rng << 13;
	clk_rng ^= clk_rng >> 7;
	clk_rng ^= clk_rng << 17;
	r->hdr.type = BLK_T_IN;
	r->hdr.reserved = 0;
	r->hdr.sector = blocks ? clk_rng % blocks * (IO_BYTES / 512) : 0;
	r->status = 0xff;
	r->segs[0] = (struct vbuf){ &r->hdr, sizeof(r->hdr), false };
	r->segs[1] = (struct vbuf){ data, IO_BYTES, true };
	r->segs[2] = (struct vbuf){ &r->status, 1, true };
	return vq_add(&cq, r->segs, 3, r);
}

static int clk_open(void)
{
	if (vdev_find(&cd, VIRTIO_ID_BLOCK, 0) < 0)
		return fail("no virtio-blk-pci device on bus 0");
	if (vdev_map(&cd, false) < 0)
		return -1;
	clk_opened = true;
	if (vdev_init(&cd, VIRTIO_F_VERSION_1) < 0)
		return -1;
	if (!cd.msix_cap || cd.msix_size < 2)
		return fail("no MSI-X (%u entries)", cd.msix_size);
	vdev_msix_set(&cd, 1, VEC_CLK_BLK, false);
	vdev_msix_enable(&cd, true);
	if (vq_setup(&cd, &cq, 0, 64, 1) < 0)
		return -1;
	vq_enable_cb(&cq);
	if (vdev_driver_ok(&cd) < 0)
		return -1;
	clk_cap = vdev_cfg64(&cd, BLK_CFG_CAPACITY);
	if (clk_cap < IO_BYTES / 512)
		return fail("disk of %lu sectors: need at least %u", clk_cap, IO_BYTES / 512);
	creqs = dma_alloc(IO_DEPTH * sizeof(*creqs), 64);
	cbuf = dma_alloc(IO_DEPTH * (u64)IO_BYTES, 4096);
	if (!creqs || !cbuf)
		return fail("out of DMA memory (run with -m 128)");
	return 0;
}

/* The idle rate: kvmclock against the TSC over one 50 ms PIT one-shot. */
static u64 idle_rate(void)
{
	u64 t0 = now_ns(), c0 = rdtsc();

	pit_start();
	while (!pit_done())
		cpu_relax();
	return ns_per_tick24(now_ns() - t0, rdtsc() - c0);
}

struct busy_stats {
	u64 reads, max_gap, completions, errors, pit_runs, pit_best, pit_worst;
	u64 ns, ticks;
};

/* Keep IO_DEPTH requests in flight for busy_ms while checking the clock. */
static int busy_loop(u64 busy_ms, struct busy_stats *s)
{
	u64 start = now_ns(), c0 = rdtsc(), prev = start, pit_t0, end = start + busy_ms * 1000000;
	u32 len;

	for (u32 i = 0; i < IO_DEPTH; i++)
		if (clk_submit(&creqs[i]) < 0)
			return fail("queue full at request %u", i);
	vq_kick(&cq);
	pit_start();
	pit_t0 = now_ns();
	s->pit_best = ~0ull;
	for (;;) {
		u64 t = now_ns();
		struct clk_req *r;

		s->reads++;
		if (t < prev)
			return fail("kvmclock went backwards under I/O: %lu then %lu (read %lu)",
				    prev, t, s->reads);
		if (t - prev > s->max_gap)
			s->max_gap = t - prev;
		prev = t;
		if (t >= end)
			break;
		while ((r = vq_pop(&cq, &len))) {
			s->completions++;
			s->errors += r->status != 0;
			if (clk_submit(r) < 0)
				return fail("queue full on resubmit");
			vq_kick(&cq);
		}
		if (pit_done()) {
			u64 ns = now_ns() - pit_t0;

			s->pit_runs++;
			if (ns < s->pit_best)
				s->pit_best = ns;
			if (ns > s->pit_worst)
				s->pit_worst = ns;
			pit_start();
			pit_t0 = now_ns();
		}
	}
	s->ns = now_ns() - start;
	s->ticks = rdtsc() - c0;
	if (vq_wait_all(&cq, 5000) < 0)
		return fail("requests still in flight 5 s after the busy period");
	while (vq_pop(&cq, &len))
		;
	return 0;
}

static u64 median3(u64 a, u64 b, u64 c)
{
	if (a > b) {
		u64 t = a;

		a = b;
		b = t;
	}
	return c < a ? a : c > b ? b : c;
}

int case_kvmclock_io(void)
{
	const char *arg;
	char v[24];
	u64 busy_ms = 600, idle, io, irqs;
	struct busy_stats s = { 0 };
	u64 mark = dma_mark();
	s64 ppm;
	int rc = -1;

	if (!kvmclock_on)
		return fail("no kvmclock (CPUID lacks KVM_FEATURE_CLOCKSOURCE2)");
	arg = cmdline_get("busy_ms", v, sizeof(v));
	if (arg)
		busy_ms = parse_num(arg, NULL);
	if (busy_ms < 200 || busy_ms > 60000)
		busy_ms = busy_ms < 200 ? 200 : 60000;
	/* Idle reference; the median of three shrugs off one descheduling. */
	idle = median3(idle_rate(), idle_rate(), idle_rate());
	if (clk_open() < 0)
		goto out;
	irqs = irq_counts[VEC_CLK_BLK];
	if (busy_loop(busy_ms, &s) < 0)
		goto out;
	irqs = irq_counts[VEC_CLK_BLK] - irqs;
	io = ns_per_tick24(s.ns, s.ticks);
	ppm = idle ? ((s64)io - (s64)idle) * 1000000 / (s64)idle : 0;
	info("%lu ms busy: %lu reads of 64 KiB (%lu MiB/s), %lu errors, %lu MSI-X interrupts",
	     s.ns / 1000000, s.completions, s.completions * 64 * 1000 / (s.ns / 1000000 + 1) / 1024,
	     s.errors, irqs);
	info("%lu kvmclock reads monotonic, largest step %lu us", s.reads, s.max_gap / 1000);
	info("PIT 50 ms one-shots under I/O: %lu, best %lu us, worst %lu us", s.pit_runs,
	     s.pit_best / 1000, s.pit_worst / 1000);
	info("kvmclock vs TSC: %lu ns/2^24 ticks idle, %lu under I/O (%ld ppm)", idle, io, ppm);
	if (s.errors)
		fail("%lu reads failed", s.errors);
	else if (s.completions < 2 * IO_DEPTH)
		fail("the device was not busy: %lu completions", s.completions);
	else if (!irqs)
		fail("no MSI-X interrupt on vector %#x", VEC_CLK_BLK);
	else if (!s.pit_runs)
		fail("no PIT one-shot completed in %lu ms", s.ns / 1000000);
	else if (s.pit_best < 45000000 || s.pit_best > 58000000)
		fail("kvmclock disagrees with the PIT under I/O: %lu us for 50000 us",
		     s.pit_best / 1000);
	else if (ppm < -5000 || ppm > 5000)
		fail("kvmclock rate against the TSC moved by %ld ppm under I/O", ppm);
	else
		rc = 0;
out:
	if (clk_opened) {
		if (cd.msix_on)
			vdev_msix_enable(&cd, false);
		vdev_reset(&cd);
	}
	dma_release(mark);
	return rc;
}
