/* lib.c: the kit's CPL3 runtime. Strings, COM1 console and printf, test
 * reporting, the command line, time keeping (kvmclock or a PIT-calibrated
 * TSC), LAPIC/IOAPIC/CMOS helpers and the exit path (isa-debug-exit port,
 * then ACPI S5, then a parked CPU). */
#include "tests/guest/kit.h"

const char *cmdline = "";
const char *current_case = "boot";
const char *case_pass_note = "";
u16 exit_port = 0xf4;
static u64 tsc_hz, tsc_ns_mul;	/* ns = tsc * tsc_ns_mul >> 32 */

/* ---------------- strings ---------------- */
void *memset(void *d, int c, size_t n)
{
	u8 *p = d;

	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	u8 *p = d;
	const u8 *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *p = a, *q = b;

	for (; n; n--, p++, q++)
		if (*p != *q)
			return *p - *q;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (u8)*a - (u8)*b;
		if (!*a)
			return 0;
	}
	return 0;
}

/* Decimal or 0x-prefixed hexadecimal */
u64 parse_num(const char *s, const char **end)
{
	u64 v = 0;
	int base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	for (;; s++) {
		int d;

		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			break;
		v = v * base + d;
	}
	if (end)
		*end = s;
	return v;
}

/* ---------------- console ---------------- */
void serial_init(void)
{
	outb(COM1 + 1, 0x00);	/* no UART interrupts */
	outb(COM1 + 3, 0x80);	/* DLAB */
	outb(COM1 + 0, 0x01);	/* 115200 */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);	/* 8N1 */
	outb(COM1 + 4, 0x03);	/* DTR | RTS */
}

void serial_putc(char c)
{
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		cpu_relax();
	outb(COM1, c);
}

int serial_getc_nowait(void)
{
	if (!(inb(COM1 + 5) & 0x01))
		return -1;
	return inb(COM1);
}

struct outbuf {
	char *p;
	size_t len, pos;
};

static void out_char(struct outbuf *o, char c)
{
	if (o->pos + 1 < o->len)
		o->p[o->pos] = c;
	o->pos++;
}

static void out_num(struct outbuf *o, u64 v, unsigned base, bool neg, int width, char pad,
		    const char *prefix)
{
	char tmp[24];
	int n = 0, plen = (int)strlen(prefix) + neg;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (pad == ' ')
		for (; width > n + plen; width--)
			out_char(o, ' ');
	if (neg)
		out_char(o, '-');
	while (*prefix)
		out_char(o, *prefix++);
	for (; width > n + plen; width--)
		out_char(o, '0');
	while (n)
		out_char(o, tmp[--n]);
}

/* printf subset: flags 0 and #, width, l/ll/z, conversions d i u x s c p % */
int kvsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct outbuf o = { buf, len, 0 };

	for (; *fmt; fmt++) {
		char pad = ' ';
		bool alt = false, is_long = false;
		int width = 0;

		if (*fmt != '%') {
			out_char(&o, *fmt);
			continue;
		}
		fmt++;
		for (;; fmt++) {
			if (*fmt == '0')
				pad = '0';
			else if (*fmt == '#')
				alt = true;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			is_long = true;
			fmt++;
		}
		switch (*fmt) {
		case 'd':
		case 'i': {
			s64 v = is_long ? va_arg(ap, s64) : va_arg(ap, int);

			out_num(&o, v < 0 ? -(u64)v : (u64)v, 10, v < 0, width, pad, "");
			break;
		}
		case 'u':
			out_num(&o, is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, false,
				width, pad, "");
			break;
		case 'x':
			out_num(&o, is_long ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, false,
				width, pad, alt ? "0x" : "");
			break;
		case 'p':
			out_num(&o, (u64)va_arg(ap, void *), 16, false, width, pad, "0x");
			break;
		case 'c':
			out_char(&o, (char)va_arg(ap, int));
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			int n = (int)strlen(s ? s : "(null)");

			for (; width > n; width--)
				out_char(&o, ' ');
			for (s = s ? s : "(null)"; *s; s++)
				out_char(&o, *s);
			break;
		}
		case '%':
			out_char(&o, '%');
			break;
		default:
			out_char(&o, '?');
			if (!*fmt)
				fmt--;
		}
	}
	if (len)
		buf[o.pos < len ? o.pos : len - 1] = 0;
	return (int)o.pos;
}

static void vprint(const char *prefix, const char *fmt, va_list ap)
{
	char buf[256];

	for (const char *p = prefix; *p; p++)
		serial_putc(*p);
	kvsnprintf(buf, sizeof(buf), fmt, ap);
	for (const char *p = buf; *p; p++)
		serial_putc(*p);
}

void kprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprint("", fmt, ap);
	va_end(ap);
}

static void case_prefix(char *buf, size_t len)
{
	char *p = buf;
	const char *parts[] = { "testkit: ", current_case, ": " };

	for (int i = 0; i < 3; i++)
		for (const char *s = parts[i]; *s && p < buf + len - 1; s++)
			*p++ = *s;
	*p = 0;
}

void info(const char *fmt, ...)
{
	char prefix[64];
	va_list ap;

	case_prefix(prefix, sizeof(prefix));
	va_start(ap, fmt);
	vprint(prefix, fmt, ap);
	va_end(ap);
	serial_putc('\n');
}

int fail(const char *fmt, ...)
{
	char prefix[80];
	va_list ap;

	case_prefix(prefix, sizeof(prefix) - 8);
	memcpy(prefix + strlen(prefix), "FAIL: ", 7);
	va_start(ap, fmt);
	vprint(prefix, fmt, ap);
	va_end(ap);
	serial_putc('\n');
	return -1;
}

/* ---------------- command line ---------------- */
const char *cmdline_get(const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	const char *p = cmdline;

	while (*p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			size_t n = 0;

			for (p += klen + 1; *p && *p != ' ' && n + 1 < len; p++)
				buf[n++] = *p;
			buf[n] = 0;
			return buf;
		}
		while (*p && *p != ' ')
			p++;
	}
	return NULL;
}

/* ---------------- time ---------------- */
u64 pvclock_read(const struct pvclock *pv)
{
	const volatile struct pvclock *v = pv;
	u32 ver;
	u64 t;

	do {
		ver = v->version;
		asm volatile("" ::: "memory");
		u64 delta = rdtsc() - v->tsc_timestamp;
		int shift = v->tsc_shift;

		if (shift < 0)
			delta >>= -shift;
		else
			delta <<= shift;
		t = v->system_time + (u64)(((unsigned __int128)delta * v->tsc_to_system_mul) >> 32);
		asm volatile("" ::: "memory");
	} while ((ver & 1) || ver != v->version);
	return t;
}

/* Start PIT channel 2 in mode 0 for ticks (1.193182 MHz) and wait for OUT2
 * in port 0x61. Returns false on a timeout. */
static bool pit_oneshot_wait(u32 ticks)
{
	u8 p61 = inb(0x61);

	outb(0x61, (p61 & ~0x02) | 0x01);	/* gate on, speaker off */
	outb(0x43, 0xb0);			/* ch2, lobyte/hibyte, mode 0 */
	outb(0x42, ticks & 0xff);
	outb(0x42, (ticks >> 8) & 0xff);
	for (u64 start = rdtsc(), i = 0; i < 2000000; i++) {
		if (inb(0x61) & 0x20)
			return true;
		if (tsc_hz && rdtsc() - start > 4 * tsc_hz)
			break;
	}
	return false;
}

u64 pit_measure_ns(u32 ticks)
{
	u64 t0 = now_ns();

	if (!pit_oneshot_wait(ticks))
		return 0;
	return now_ns() - t0;
}

void time_init(void)
{
	if (kvmclock_on)
		return;
	/* 50 ms of PIT against the TSC */
	u64 t0 = rdtsc();

	pit_oneshot_wait(59659);
	tsc_hz = (rdtsc() - t0) * 1193182ull / 59659;
	if (!tsc_hz)
		tsc_hz = 1000000000ull;
	tsc_ns_mul = (1000000000ull << 32) / tsc_hz;
}

u64 now_ns(void)
{
	if (kvmclock_on)
		return pvclock_read(&pvclock_pages[0]);
	return (u64)(((unsigned __int128)rdtsc() * tsc_ns_mul) >> 32);
}

void delay_ns(u64 ns)
{
	u64 end = now_ns() + ns;

	while (now_ns() < end)
		cpu_relax();
}

/* ---------------- interrupt controllers ---------------- */
u32 lapic_read(u32 reg)
{
	return mmio_read32(LAPIC_BASE + reg);
}

void lapic_write(u32 reg, u32 v)
{
	mmio_write32(LAPIC_BASE + reg, v);
}

u32 lapic_id(void)
{
	return lapic_read(0x20) >> 24;
}

static void ioapic_write(u32 reg, u32 v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void ioapic_route(u32 gsi, u8 vector, bool level, bool low, u32 dest)
{
	ioapic_write(0x11 + 2 * gsi, dest << 24);
	ioapic_write(0x10 + 2 * gsi, vector | (low ? 1u << 13 : 0) | (level ? 1u << 15 : 0));
}

u32 ioapic_read_entry(u32 gsi)
{
	mmio_write32(IOAPIC_BASE, 0x10 + 2 * gsi);
	return mmio_read32(IOAPIC_BASE + 0x10);
}

void ioapic_mask(u32 gsi)
{
	ioapic_write(0x10 + 2 * gsi, 1u << 16);
}

/* ---------------- CMOS / RTC ---------------- */
u8 cmos_read(u8 reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

void cmos_write(u8 reg, u8 v)
{
	outb(0x70, reg);
	outb(0x71, v);
}

static u32 bcd(u32 v, bool binary)
{
	return binary ? v : (v >> 4) * 10 + (v & 15);
}

static void rtc_snapshot(u8 r[7])
{
	static const u8 regs[7] = { 0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32 };

	for (int i = 0; i < 100000 && (cmos_read(0x0a) & 0x80); i++)
		cpu_relax();
	for (int i = 0; i < 7; i++)
		r[i] = cmos_read(regs[i]);
}

/* Read a consistent time (two equal snapshots) honouring register B's
 * binary and 24-hour bits. */
int rtc_read_time(struct rtc_time *t)
{
	u8 a[7], b[7];
	int tries = 0;

	rtc_snapshot(a);
	do {
		memcpy(b, a, sizeof(a));
		rtc_snapshot(a);
	} while (memcmp(a, b, sizeof(a)) && ++tries < 10);

	u8 regb = cmos_read(0x0b);
	bool bin = regb & 0x04, h24 = regb & 0x02;
	u32 hour = bcd(a[2] & 0x7f, bin);
	u32 century = bcd(a[6], bin);

	if (!h24) {
		hour %= 12;
		if (a[2] & 0x80)
			hour += 12;
	}
	t->sec = bcd(a[0], bin);
	t->min = bcd(a[1], bin);
	t->hour = hour;
	t->day = bcd(a[3], bin);
	t->mon = bcd(a[4], bin);
	t->year = bcd(a[5], bin) + (century >= 19 && century <= 30 ? century * 100 : 2000);
	return tries < 10 ? 0 : -1;
}

/* Days from the civil date (proleptic Gregorian), then seconds */
u64 rtc_to_epoch(const struct rtc_time *t)
{
	s64 y = t->year - (t->mon <= 2);
	s64 era = y / 400;
	s64 yoe = y - era * 400;
	s64 doy = (153 * (t->mon + (t->mon > 2 ? -3 : 9)) + 2) / 5 + t->day - 1;
	s64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	s64 days = era * 146097 + doe - 719468;

	return (u64)(days * 86400 + t->hour * 3600 + t->min * 60 + t->sec);
}

/* ---------------- exit ---------------- */
void kit_exit(bool pass)
{
	outb(exit_port, pass ? 0 : 1);
	/* still running: no exit device there */
	delay_ns(10000000);
	kprintf("testkit: no exit device at %#x, trying ACPI S5\n", exit_port);
	if (acpi.found || !acpi_init())
		acpi_poweroff();
	kprintf("testkit: halted\n");
	svc_halt();
}
