/* devices.c: the kit's device cases. serial (16550 output, scratch, FIFO,
 * line input), cmos (RTC time, periodic and update-ended interrupts via
 * the IOAPIC), timers (PIT channel 0 and LAPIC timer interrupts) and pci
 * (bus 0 enumeration with configuration mechanism #1). All at CPL3. */
#include "tests/guest/kit.h"

/* ---------------- serial ---------------- */
int case_serial(void)
{
	char line[80];
	int n = 0, c = -1;

	/* drop bytes that arrived before we were listening: the harness sends
	 * its line only after seeing "ready" */
	for (int i = 0; i < 64 && serial_getc_nowait() >= 0; i++)
		;
	info("ready");
	for (u64 end = now_ns() + 30000000000ull; now_ns() < end;) {
		c = serial_getc_nowait();
		if (c < 0) {
			cpu_relax();
			continue;
		}
		if (c == '\n' || c == '\r')
			break;
		if (n + 1 < (int)sizeof(line))
			line[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '.';
	}
	line[n] = 0;
	if (c != '\n' && c != '\r')
		return fail("no input line within 30 s (got %d bytes)", n);
	info("got %s", line);

	outb(COM1 + 7, 0x5a);
	u8 scr = inb(COM1 + 7);

	outb(COM1 + 7, 0xa5);
	u8 scr2 = inb(COM1 + 7);

	if (scr != 0x5a || scr2 != 0xa5)
		return fail("scratch register reads %#x/%#x, wrote 0x5a/0xa5", scr, scr2);
	outb(COM1 + 2, 0x07);		/* FIFO enable, clear RX and TX */
	u8 iir = inb(COM1 + 2);

	if ((iir & 0xc0) != 0xc0)
		return fail("IIR %#x does not report FIFOs enabled after FCR=0x07", iir);
	u8 lsr = inb(COM1 + 5);

	if (!(lsr & 0x60))
		return fail("LSR %#x: transmitter not empty after idle", lsr);
	info("scratch ok, IIR %#x (FIFO enabled), LSR %#x", iir, lsr);
	outb(COM1 + 2, 0x00);
	return 0;
}

/* ---------------- cmos ---------------- */
static int rtc_sane(const struct rtc_time *t)
{
	if (t->sec > 59 || t->min > 59 || t->hour > 23 || t->day < 1 || t->day > 31 ||
	    t->mon < 1 || t->mon > 12 || t->year < 2000 || t->year > 2099)
		return fail("RTC time out of range: %u-%u-%u %u:%u:%u", t->year, t->mon, t->day,
			    t->hour, t->min, t->sec);
	return 0;
}

int case_cmos(void)
{
	struct rtc_time t;

	if (rtc_read_time(&t))
		return fail("RTC time never stable");
	u8 rega = cmos_read(0x0a), regb = cmos_read(0x0b);

	info("time %04u-%02u-%02u %02u:%02u:%02u (reg A %#x, B %#x: %s, %s)", t.year, t.mon,
	     t.day, t.hour, t.min, t.sec, rega, regb, regb & 4 ? "binary" : "BCD",
	     regb & 2 ? "24h" : "12h");
	if (rtc_sane(&t))
		return -1;

	/* 256 Hz periodic + update-ended interrupts on ISA IRQ 8; one or two
	 * update-ended ones in 1.1 s (rtc_uf_max= raises the bound for a
	 * reference VMM whose RTC catches up after the vCPU was held off) */
	u32 gsi = isa_irq_gsi(8);
	u64 uf_max = 2;
	char arg[16];
	const char *end;

	if (cmdline_get("rtc_uf_max", arg, sizeof(arg)))
		uf_max = parse_num(arg, &end);

	rtc_pf_count = rtc_uf_count = 0;
	irq_counts[VEC_RTC] = 0;
	ioapic_route(gsi, VEC_RTC, false, false, lapic_id());
	cmos_write(0x0a, (rega & 0xf0) | 0x08);
	cmos_write(0x0b, regb | 0x50);
	cmos_read(0x0c);
	u64 t0 = now_ns();

	delay_ns(1100000000ull);
	u64 dt = now_ns() - t0;
	u64 irqs = irq_counts[VEC_RTC], pf = rtc_pf_count, uf = rtc_uf_count;

	cmos_write(0x0b, regb & ~0x70);
	cmos_write(0x0a, rega);
	cmos_read(0x0c);
	ioapic_mask(gsi);
	u64 expect = dt * 256 / 1000000000ull;

	info("IRQ8 (GSI %u): %lu interrupts, %lu periodic (expected ~%lu), %lu update-ended "
	     "in %lu ms", gsi, irqs, pf, expect, uf, dt / 1000000);
	if (pf < expect / 4 || pf > expect * 14 / 10)
		return fail("periodic interrupts: %lu in %lu ms, expected ~%lu", pf,
			    dt / 1000000, expect);
	if (uf < 1 || uf > uf_max)
		return fail("update-ended interrupts: %lu in %lu ms, expected 1", uf,
			    dt / 1000000);
	if (rtc_read_time(&t) || rtc_sane(&t))
		return fail("RTC time bad after the interrupt test");
	return 0;
}

/* ---------------- timers ---------------- */
/* Periodic timers lose ticks while the host does not run the vCPU (KVM
 * does not reinject them), so a loaded host may see far fewer: accept a
 * quarter of the expected count, never more than 40% extra. */
static int count_check(const char *what, u64 got, u64 expect)
{
	if (got < expect / 4 || got > expect * 14 / 10)
		return fail("%s: %lu interrupts, expected ~%lu", what, got, expect);
	return 0;
}

static int pit_irq_test(void)
{
	u32 gsi = isa_irq_gsi(0);
	u16 fl = acpi.irq_flags[0];

	irq_counts[VEC_PIT] = 0;
	outb(0x43, 0x34);			/* ch0, lobyte/hibyte, mode 2 */
	outb(0x40, 1193 & 0xff);		/* 1000 Hz */
	outb(0x40, 1193 >> 8);
	ioapic_route(gsi, VEC_PIT, (fl & 0xc) == 0xc, (fl & 3) == 3, lapic_id());
	u64 t0 = now_ns();

	delay_ns(300000000);
	u64 dt = now_ns() - t0, got = irq_counts[VEC_PIT];

	ioapic_mask(gsi);
	outb(0x43, 0x30);			/* ch0 mode 0, stops after one count */
	outb(0x40, 0);
	outb(0x40, 0);
	u64 expect = dt * 1000 / 1000000000ull;

	info("PIT ch0 on GSI %u: %lu interrupts in %lu ms (expected ~%lu)", gsi, got,
	     dt / 1000000, expect);
	return count_check("PIT", got, expect);
}

static int lapic_timer_test(void)
{
	/* measure the timer's rate with a masked one-shot */
	lapic_write(0x3e0, 0x3);			/* divide by 16 */
	lapic_write(0x320, 0x10000 | VEC_LAPIC_TIMER);	/* masked, one-shot */
	lapic_write(0x380, 0xffffffff);
	u64 t0 = now_ns();

	delay_ns(20000000);
	u32 cur = lapic_read(0x390);
	u64 dt = now_ns() - t0;
	u64 hz = (u64)(0xffffffffu - cur) * 1000000000ull / dt;

	lapic_write(0x380, 0);
	info("LAPIC timer runs at %lu kHz (divide by 16)", hz / 1000);
	if (hz < 100000)
		return fail("LAPIC timer rate %lu Hz is implausible", hz);

	irq_counts[VEC_LAPIC_TIMER] = 0;
	lapic_write(0x320, 0x20000 | VEC_LAPIC_TIMER);	/* periodic */
	lapic_write(0x380, (u32)(hz / 1000));		/* 1 kHz */
	t0 = now_ns();
	delay_ns(300000000);
	dt = now_ns() - t0;
	u64 got = irq_counts[VEC_LAPIC_TIMER];

	lapic_write(0x320, 0x10000 | VEC_LAPIC_TIMER);
	lapic_write(0x380, 0);
	u64 expect = dt * 1000 / 1000000000ull;

	info("LAPIC timer periodic: %lu interrupts in %lu ms (expected ~%lu)", got,
	     dt / 1000000, expect);
	return count_check("LAPIC timer", got, expect);
}

int case_timers(void)
{
	if (pit_irq_test())
		return -1;
	return lapic_timer_test();
}

/* ---------------- pci ---------------- */
static u32 pci_read32(u32 bus, u32 dev, u32 fn, u32 off)
{
	outl(0xcf8, 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (off & 0xfc));
	return inl(0xcfc);
}

static u32 pci_found[2];	/* vendor:device of 00:00.0 and 00:01.0 */

void pci_list(bool print)
{
	pci_found[0] = pci_found[1] = 0;
	for (u32 dev = 0; dev < 32; dev++) {
		for (u32 fn = 0; fn < 8; fn++) {
			u32 id = pci_read32(0, dev, fn, 0);

			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			u32 class = pci_read32(0, dev, fn, 8) >> 8;
			u32 hdr = (pci_read32(0, dev, fn, 0xc) >> 16) & 0xff;

			if (fn == 0 && dev < 2)
				pci_found[dev] = id;
			if (print)
				kprintf("testkit: %s: 00:%02x.%u %04x:%04x class %06x\n",
					current_case, dev, fn, id & 0xffff, id >> 16, class);
			if (fn == 0 && !(hdr & 0x80))
				break;
		}
	}
}

int case_pci(void)
{
	pci_list(true);
	if (pci_found[0] != 0x12378086)
		return fail("00:00.0 is %04x:%04x, expected 8086:1237 (i440FX)",
			    pci_found[0] & 0xffff, pci_found[0] >> 16);
	if (pci_found[1] != 0x70008086)
		return fail("00:01.0 is %04x:%04x, expected 8086:7000 (PIIX3)",
			    pci_found[1] & 0xffff, pci_found[1] >> 16);
	/* the host bridge's class must say host bridge (06 00 00) */
	if ((pci_read32(0, 0, 0, 8) >> 8) != 0x060000)
		return fail("00:00.0 class is not a host bridge");
	return 0;
}
