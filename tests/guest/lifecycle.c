/* lifecycle.c: the kit's VM lifecycle cases, run at CPL3. reset (i8042
 * pulse, the 0xCF9 reset control register or a triple fault, with a CMOS
 * NVRAM marker that the second boot finds and clears; both boots print the
 * interrupt controller, PIT and kvmclock state they found), fatal (execute code
 * in an MMIO hole: KVM cannot emulate the fetch and reports an internal
 * error), badio (unassigned ports and MMIO read as all-ones and leave the
 * VMM running) and sleep (a long-running case for the harness). */
#include "tests/guest/kit.h"

/* CMOS NVRAM byte for the reset marker: not filled by minikvm's RTC
 * (0x0f-0x3d, 0x5b-0x5f) nor by QEMU/SeaBIOS. */
#define CMOS_RESET_MARKER	0x7e
#define MARKER_BASE		0xb0	/* 0xb0 | method index (1..3) */
#define MMIO_HOLE		0xfebf0000UL	/* nothing is mapped there */

static const char *const reset_methods[] = { "", "kbd", "cf9", "triple" };
#define NR_RESET_METHODS	(sizeof(reset_methods) / sizeof(reset_methods[0]))

static unsigned reset_method_index(const char *name)
{
	for (unsigned i = 1; i < NR_RESET_METHODS; i++)
		if (!strncmp(name, reset_methods[i], strlen(reset_methods[i]) + 1))
			return i;
	return 0;
}

static void reset_via(unsigned method)
{
	switch (method) {
	case 1:			/* i8042 "pulse output port bit 0" */
		for (int i = 0; i < 100000 && (inb(0x64) & 0x02); i++)
			cpu_relax();
		outb(0x64, 0xfe);
		break;
	case 2:			/* PIIX reset control: SRST, then SRST | RCPU */
		outb(0xcf9, 0x02);
		outb(0xcf9, 0x06);
		break;
	case 3:			/* no IDT: #UD -> #GP -> #DF -> shutdown */
		svc_lidt_empty();
		asm volatile("ud2");
		break;
	}
}

#define IOAPIC_PINS		24
#define PROBE_PIN		23	/* left unmasked by the first boot */
#define PROBE_VECTOR		0x40

/* What a reset must restore, printed on both boots so that the harness can
 * compare: the 8259 masks and the kvmclock MSR as the CPL0 setup found
 * them, the unmasked IOAPIC pins and the PIT channel 0 mode (read-back
 * status without the OUT and null-count bits). */
static void print_boot_state(void)
{
	u32 unmasked = 0;

	for (u32 pin = 0; pin < IOAPIC_PINS; pin++)
		if (!(ioapic_read_entry(pin) & (1u << 16)))
			unmasked |= 1u << pin;
	outb(0x43, 0xe2);		/* read-back: status of channel 0 */
	u8 pit = inb(0x40) & 0x3f;

	info("boot state: PIC IMR %02x/%02x, IOAPIC unmasked pins %#x, PIT ch0 status %#x, "
	     "kvmclock MSR %#lx", boot_pic_imr[0], boot_pic_imr[1], unmasked, pit,
	     boot_kvmclock_msr);
	/* -boot order=/once= as the firmware sees it (CMOS 0x3d, 0x38 high
	 * nibble): once= must give way to order= after the first reset. */
	info("CMOS boot devices %02x %x", cmos_read(0x3d), cmos_read(0x38) >> 4);
}

/* Leave state behind that a reset must clear: an unmasked IOAPIC pin
 * (nothing drives it) and PIT channel 0 in mode 4 (its one IRQ0 edge
 * meets masked PICs and a masked IOAPIC pin 2). */
static void disturb_state(void)
{
	ioapic_route(PROBE_PIN, PROBE_VECTOR, false, false, lapic_id());
	outb(0x43, 0x38);		/* ch0, lobyte/hibyte, mode 4 */
	outb(0x40, 0xff);
	outb(0x40, 0xff);
}

/* Second boot: the marker says which method got us here. */
static int reset_second_boot(u8 marker, unsigned want)
{
	unsigned got = marker & 0x0f;

	cmos_write(CMOS_RESET_MARKER, 0);
	if (cmos_read(CMOS_RESET_MARKER) != 0)
		return fail("CMOS byte %#x does not clear", CMOS_RESET_MARKER);
	info("second boot: CMOS marker %#x survived the reset via %s", marker,
	     got < NR_RESET_METHODS ? reset_methods[got] : "?");
	if (got != want)
		return fail("marker names method %u, the command line %u", got, want);
	case_pass_note = " (second boot)";
	return 0;
}

int case_reset(void)
{
	char buf[16];
	unsigned method;
	u8 marker = cmos_read(CMOS_RESET_MARKER);

	if (!cmdline_get("method", buf, sizeof(buf)))
		memcpy(buf, "kbd", 4);
	method = reset_method_index(buf);
	if (!method) {
		cmos_write(CMOS_RESET_MARKER, 0);
		return fail("unknown method '%s' (kbd, cf9, triple)", buf);
	}
	print_boot_state();
	if ((marker & 0xf0) == MARKER_BASE)
		return reset_second_boot(marker, method);

	cmos_write(CMOS_RESET_MARKER, (u8)(MARKER_BASE | method));
	if (cmos_read(CMOS_RESET_MARKER) != (MARKER_BASE | method))
		return fail("CMOS byte %#x does not keep %#x", CMOS_RESET_MARKER,
			    MARKER_BASE | method);
	disturb_state();
	info("resetting via %s", reset_methods[method]);
	reset_via(method);
	delay_ns(3000000000ull);
	cmos_write(CMOS_RESET_MARKER, 0);
	return fail("still running 3 s after the reset via %s", reset_methods[method]);
}

/* Execute code in the MMIO hole (user-mapped, nothing behind it). */
int case_fatal(void)
{
	void (*fn)(void) = (void (*)(void))MMIO_HOLE;

	info("jumping to MMIO at %#lx", MMIO_HOLE);
	fn();
	return fail("code in MMIO at %#lx returned", MMIO_HOLE);
}

static int check_ones(const char *what, u64 addr, u32 got, u32 ones, int i)
{
	if (got == ones)
		return 0;
	return fail("%s %#lx read %#x, expected %#x (access %d)", what, addr, got, ones, i);
}

/* Unassigned ports and MMIO: reads float high, writes vanish, the VMM
 * keeps running whatever the guest does. count=N accesses of each kind
 * (1000); mmio=any also accepts 0 from MMIO (QEMU 7.2 reads 0 from the
 * empty PCI hole, where a real PC's master abort gives all-ones). */
int case_badio(void)
{
	static const u16 ports[] = { 0x2345, 0xe0 };
	char buf[16];
	int n = 1000;
	u32 mmio_ones = 0xffffffff;

	if (cmdline_get("count", buf, sizeof(buf)))
		n = (int)parse_num(buf, NULL);
	for (unsigned p = 0; p < sizeof(ports) / sizeof(ports[0]); p++) {
		u16 port = ports[p];

		for (int i = 0; i < n; i++) {
			outb(port, (u8)i);
			if (check_ones("port", port, inb(port), 0xff, i))
				return -1;
		}
		outw(port, 0x1234);
		outl(port, 0x12345678);
		if (check_ones("port (16-bit)", port, inw(port), 0xffff, 0) ||
		    check_ones("port (32-bit)", port, inl(port), 0xffffffff, 0))
			return -1;
	}
	info("%d writes and reads at ports %#x and %#x: all-ones", n, ports[0], ports[1]);
	if (cmdline_get("mmio", buf, sizeof(buf)) && !strncmp(buf, "any", 4) &&
	    mmio_read32(MMIO_HOLE) == 0)
		mmio_ones = 0;
	for (int i = 0; i < n; i++) {
		u64 addr = MMIO_HOLE + 4 * (i & 15);

		mmio_write32(addr, 0xdead0000 | i);
		if (check_ones("MMIO", addr, mmio_read32(addr), mmio_ones, i))
			return -1;
	}
	info("%d writes and reads at MMIO %#lx: all %s", n, MMIO_HOLE,
	     mmio_ones ? "ones" : "zeros (mmio=any)");
	return 0;
}

/* Wait ms=N milliseconds (default 2000) so the harness can act. */
int case_sleep(void)
{
	char buf[16];
	u64 ms = 2000;

	if (cmdline_get("ms", buf, sizeof(buf)))
		ms = parse_num(buf, NULL);
	info("sleeping %lu ms", ms);
	delay_ns(ms * 1000000ull);
	info("woke up");
	return 0;
}
