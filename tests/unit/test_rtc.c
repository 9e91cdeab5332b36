/* Unit tests for the MC146818 RTC/CMOS model (hw/rtc.c) with an injected
 * wall clock and a fake IRQ line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "hw/rtc.h"
#include "vmm/memory.h"

#define NS 1000000000ULL
/* 2024-02-29 13:45:56 UTC, a Thursday */
#define T_LEAP_DAY 1709214356ULL

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

struct fake_irq {
	int level;
	int raises;
};

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake_irq *f = opaque;

	assert_int_equal(gsi, 8);
	if (level && !f->level)
		f->raises++;
	f->level = level;
}

static struct fake_irq irq;
static struct rtc rtc;
static unsigned timers_changed_calls;

static void count_timers_changed(void *opaque)
{
	(void)opaque;
	timers_changed_calls++;
}

static int setup(void **state)
{
	struct irq_line line = { fake_set_level, &irq, 8 };

	(void)state;
	memset(&irq, 0, sizeof(irq));
	timers_changed_calls = 0;
	fake_now = T_LEAP_DAY * NS;
	rtc_init(&rtc, &line, fake_clock, false);
	rtc_set_timers_hook(&rtc, count_timers_changed, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rtc_destroy(&rtc);
	return 0;
}

static uint8_t rd(uint8_t idx)
{
	rtc_port_write(&rtc, 0, idx);
	return rtc_port_read(&rtc, 1);
}

static void wr(uint8_t idx, uint8_t val)
{
	rtc_port_write(&rtc, 0, idx);
	rtc_port_write(&rtc, 1, val);
}

static void test_power_on_registers(void **state)
{
	(void)state;
	assert_int_equal(rd(RTC_REG_A), 0x26);
	assert_int_equal(rd(RTC_REG_B), 0x02);
	assert_int_equal(rd(RTC_REG_C), 0x00);
	assert_int_equal(rd(RTC_REG_D), 0x80);
	assert_int_equal(rtc_port_read(&rtc, 0), 0xff);
}

static void test_time_bcd(void **state)
{
	(void)state;
	assert_int_equal(rd(RTC_SECONDS), 0x56);
	assert_int_equal(rd(RTC_MINUTES), 0x45);
	assert_int_equal(rd(RTC_HOURS), 0x13);
	assert_int_equal(rd(RTC_DAY_OF_WEEK), 5);	/* Thursday */
	assert_int_equal(rd(RTC_DAY_OF_MONTH), 0x29);
	assert_int_equal(rd(RTC_MONTH), 0x02);
	assert_int_equal(rd(RTC_YEAR), 0x24);
	assert_int_equal(rd(RTC_CENTURY), 0x20);
}

static void test_nmi_bit_ignored_in_index(void **state)
{
	(void)state;
	rtc_port_write(&rtc, 0, 0x80 | RTC_MINUTES);
	assert_int_equal(rtc_port_read(&rtc, 1), 0x45);
}

static void test_time_binary(void **state)
{
	(void)state;
	wr(RTC_REG_B, RTC_B_24H | RTC_B_DM_BINARY);
	assert_int_equal(rd(RTC_SECONDS), 56);
	assert_int_equal(rd(RTC_MINUTES), 45);
	assert_int_equal(rd(RTC_HOURS), 13);
	assert_int_equal(rd(RTC_DAY_OF_MONTH), 29);
	assert_int_equal(rd(RTC_MONTH), 2);
	assert_int_equal(rd(RTC_YEAR), 24);
	assert_int_equal(rd(RTC_CENTURY), 20);
}

static void test_12_hour_mode(void **state)
{
	(void)state;
	wr(RTC_REG_B, 0);				/* BCD, 12 h */
	assert_int_equal(rd(RTC_HOURS), 0x81);		/* 1 PM */
	wr(RTC_REG_B, RTC_B_DM_BINARY);			/* binary, 12 h */
	assert_int_equal(rd(RTC_HOURS), 0x81);
	fake_now = (T_LEAP_DAY - 13 * 3600) * NS;	/* 00:45:56 */
	assert_int_equal(rd(RTC_HOURS), 12);		/* 12 AM */
	fake_now = (T_LEAP_DAY - 3600) * NS;		/* 12:45:56 */
	assert_int_equal(rd(RTC_HOURS), 0x80 | 12);	/* 12 PM */
	wr(RTC_REG_B, 0);
	fake_now = (T_LEAP_DAY + 10 * 3600) * NS;	/* 23:45:56 */
	assert_int_equal(rd(RTC_HOURS), 0x80 | 0x11);
}

static void set_time_bcd(uint8_t cent, uint8_t year, uint8_t mon, uint8_t day,
			 uint8_t h, uint8_t m, uint8_t s)
{
	wr(RTC_REG_B, rd(RTC_REG_B) | RTC_B_SET);
	wr(RTC_SECONDS, s);
	wr(RTC_MINUTES, m);
	wr(RTC_HOURS, h);
	wr(RTC_DAY_OF_MONTH, day);
	wr(RTC_MONTH, mon);
	wr(RTC_YEAR, year);
	wr(RTC_CENTURY, cent);
	wr(RTC_REG_B, rd(RTC_REG_B) & ~RTC_B_SET);
}

static void test_set_time_then_advance(void **state)
{
	(void)state;
	fake_now += NS / 3;	/* arbitrary phase of the host clock */
	set_time_bcd(0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58);
	assert_int_equal(rd(RTC_SECONDS), 0x58);
	assert_int_equal(rd(RTC_YEAR), 0x99);
	fake_now += 999999999ULL;
	assert_int_equal(rd(RTC_SECONDS), 0x58);	/* one update per second */
	fake_now += 1;
	assert_int_equal(rd(RTC_SECONDS), 0x59);
	fake_now += 2 * NS;
	assert_int_equal(rd(RTC_SECONDS), 0x01);
	assert_int_equal(rd(RTC_MINUTES), 0x00);
	assert_int_equal(rd(RTC_HOURS), 0x00);
	assert_int_equal(rd(RTC_DAY_OF_MONTH), 0x01);
	assert_int_equal(rd(RTC_MONTH), 0x01);
	assert_int_equal(rd(RTC_YEAR), 0x00);
	assert_int_equal(rd(RTC_CENTURY), 0x20);
	assert_int_equal(rd(RTC_DAY_OF_WEEK), 7);	/* 2000-01-01: Saturday */
	/* The offset is kept relative to the host clock, across a day. */
	fake_now += 86400 * NS;
	assert_int_equal(rd(RTC_DAY_OF_MONTH), 0x02);
	assert_int_equal(rd(RTC_SECONDS), 0x01);
}

static void test_time_frozen_while_set(void **state)
{
	(void)state;
	wr(RTC_REG_B, RTC_B_24H | RTC_B_SET);
	fake_now += 5 * NS;
	assert_int_equal(rd(RTC_SECONDS), 0x56);
	wr(RTC_MINUTES, 0x10);
	assert_int_equal(rd(RTC_MINUTES), 0x10);
	wr(RTC_REG_B, RTC_B_24H);
	assert_int_equal(rd(RTC_MINUTES), 0x10);
	assert_int_equal(rd(RTC_SECONDS), 0x56);
	fake_now += NS;
	assert_int_equal(rd(RTC_SECONDS), 0x57);
}

static void test_write_time_while_running(void **state)
{
	(void)state;
	fake_now += NS / 2;
	wr(RTC_HOURS, 0x08);		/* no SET: takes effect immediately */
	assert_int_equal(rd(RTC_HOURS), 0x08);
	assert_int_equal(rd(RTC_MINUTES), 0x45);
	fake_now += NS / 2;		/* sub-second phase kept */
	assert_int_equal(rd(RTC_SECONDS), 0x57);
	assert_int_equal(rd(RTC_HOURS), 0x08);
}

static void test_uip_window(void **state)
{
	(void)state;
	fake_now = T_LEAP_DAY * NS + NS / 2;
	assert_int_equal(rd(RTC_REG_A) & RTC_A_UIP, 0);
	fake_now = T_LEAP_DAY * NS + NS - 200000;	/* 200 us before the update */
	assert_int_equal(rd(RTC_REG_A) & RTC_A_UIP, RTC_A_UIP);
	assert_int_equal(rd(RTC_REG_A) & ~RTC_A_UIP, 0x26);
	fake_now = T_LEAP_DAY * NS + NS - 300000;	/* 300 us before */
	assert_int_equal(rd(RTC_REG_A) & RTC_A_UIP, 0);
	fake_now = T_LEAP_DAY * NS + NS - 1;
	assert_int_equal(rd(RTC_REG_A) & RTC_A_UIP, RTC_A_UIP);
	wr(RTC_REG_B, RTC_B_24H | RTC_B_SET);		/* SET clears UIP */
	assert_int_equal(rd(RTC_REG_A) & RTC_A_UIP, 0);
}

static void test_update_interrupt_and_reg_c_clear(void **state)
{
	(void)state;
	fake_now = T_LEAP_DAY * NS + NS / 4;
	wr(RTC_REG_A, 0x20);	/* no periodic rate: PF stays clear */
	rd(RTC_REG_C);
	assert_int_equal(rtc_update_delay_ns(&rtc), RTC_NO_TIMER);
	wr(RTC_REG_B, RTC_B_24H | RTC_B_UIE);
	assert_true(timers_changed_calls > 0);
	assert_int_equal(rtc_update_delay_ns(&rtc), 3 * NS / 4);
	assert_int_equal(irq.level, 0);
	fake_now += 3 * NS / 4;
	rtc_update_tick(&rtc);
	assert_int_equal(irq.level, 1);
	assert_int_equal(irq.raises, 1);
	assert_int_equal(rd(RTC_REG_C), RTC_C_IRQF | RTC_C_UF);
	assert_int_equal(irq.level, 0);
	assert_int_equal(rd(RTC_REG_C), 0);
	/* Without UIE the flag is still set (lazily), with no interrupt. */
	wr(RTC_REG_B, RTC_B_24H);
	fake_now += 3 * NS;
	assert_int_equal(rd(RTC_REG_C), RTC_C_UF);
	assert_int_equal(irq.raises, 1);
}

static void test_periodic_rate_math(void **state)
{
	(void)state;
	assert_int_equal(rtc_rate_period_ns(0), 0);
	assert_int_equal(rtc_rate_period_ns(1), 3906250);	/* 256 Hz */
	assert_int_equal(rtc_rate_period_ns(2), 7812500);	/* 128 Hz */
	assert_int_equal(rtc_rate_period_ns(3), 122071);	/* 8192 Hz */
	assert_int_equal(rtc_rate_period_ns(6), 976563);	/* 1024 Hz */
	assert_int_equal(rtc_rate_period_ns(15), 500000000);	/* 2 Hz */

	fake_now = T_LEAP_DAY * NS;
	assert_int_equal(rtc_periodic_delay_ns(&rtc), RTC_NO_TIMER);	/* PIE off */
	wr(RTC_REG_B, RTC_B_24H | RTC_B_PIE);
	assert_int_equal(rtc_periodic_delay_ns(&rtc), 976563);
	fake_now += 1000000;	/* 1 ms: next edge is the second, at 1953125 ns */
	assert_int_equal(rtc_periodic_delay_ns(&rtc), 953125);
	wr(RTC_REG_A, 0x2f);	/* 2 Hz */
	assert_int_equal(rtc_periodic_delay_ns(&rtc), NS / 2 - 1000000);
	wr(RTC_REG_A, 0x20);	/* rate 0: off */
	assert_int_equal(rtc_periodic_delay_ns(&rtc), RTC_NO_TIMER);
	wr(RTC_REG_A, 0x76);	/* divider in reset: off */
	assert_int_equal(rtc_periodic_delay_ns(&rtc), RTC_NO_TIMER);
}

static void test_periodic_interrupt(void **state)
{
	(void)state;
	fake_now = T_LEAP_DAY * NS + 100;
	rd(RTC_REG_C);
	wr(RTC_REG_B, RTC_B_24H | RTC_B_PIE);
	rtc_periodic_tick(&rtc);		/* early: no edge yet */
	assert_int_equal(irq.level, 0);
	fake_now += rtc_periodic_delay_ns(&rtc);
	rtc_periodic_tick(&rtc);
	assert_int_equal(irq.level, 1);
	assert_int_equal(rd(RTC_REG_C), RTC_C_IRQF | RTC_C_PF);
	assert_int_equal(irq.level, 0);
}

static void test_pf_set_without_pie(void **state)
{
	(void)state;
	fake_now = T_LEAP_DAY * NS;
	rd(RTC_REG_C);
	assert_int_equal(rd(RTC_REG_C), 0);
	fake_now += 1000000;	/* a 1024 Hz edge passed; PIE is off */
	assert_int_equal(rd(RTC_REG_C), RTC_C_PF);
	assert_int_equal(irq.raises, 0);
	assert_int_equal(rd(RTC_REG_C), 0);
}

static void test_alarm_match(void **state)
{
	(void)state;
	wr(RTC_REG_A, 0x20);
	rd(RTC_REG_C);
	wr(RTC_HOURS_ALARM, 0x13);
	wr(RTC_MINUTES_ALARM, 0x46);
	wr(RTC_SECONDS_ALARM, 0x00);
	wr(RTC_REG_B, RTC_B_24H | RTC_B_AIE);
	fake_now = (T_LEAP_DAY + 3) * NS;	/* 13:45:59 */
	rtc_update_tick(&rtc);
	assert_int_equal(irq.level, 0);
	assert_int_equal(rd(RTC_REG_C), RTC_C_UF);
	fake_now += NS;				/* 13:46:00 */
	assert_int_equal(rtc_update_delay_ns(&rtc), NS);
	rtc_update_tick(&rtc);
	assert_int_equal(irq.level, 1);
	assert_int_equal(rd(RTC_REG_C), RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
	fake_now += NS;
	rtc_update_tick(&rtc);
	assert_int_equal(irq.level, 0);
	assert_int_equal(rd(RTC_REG_C), RTC_C_UF);
}

static void test_alarm_dont_care(void **state)
{
	(void)state;
	/* Every minute at second 30: hour and minute are don't-care. */
	wr(RTC_REG_A, 0x20);
	wr(RTC_HOURS_ALARM, 0xff);
	wr(RTC_MINUTES_ALARM, 0xc0);
	wr(RTC_SECONDS_ALARM, 0x30);
	wr(RTC_REG_B, RTC_B_24H | RTC_B_AIE);
	rd(RTC_REG_C);
	fake_now = (T_LEAP_DAY + 33) * NS;	/* 13:46:29 */
	rtc_update_tick(&rtc);
	assert_int_equal(rd(RTC_REG_C) & RTC_C_AF, 0);
	fake_now += NS;				/* 13:46:30 */
	rtc_update_tick(&rtc);
	assert_int_equal(rd(RTC_REG_C), RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
	fake_now += 60 * NS;			/* 13:47:30 */
	rtc_update_tick(&rtc);
	assert_int_equal(rd(RTC_REG_C) & RTC_C_AF, RTC_C_AF);
	/* A match inside a gap between two reads is not lost. */
	fake_now += 45 * NS;			/* 13:48:15, passed nothing */
	assert_int_equal(rd(RTC_REG_C) & RTC_C_AF, 0);
	fake_now += 20 * NS;			/* 13:48:35, passed :30 */
	assert_int_equal(rd(RTC_REG_C) & RTC_C_AF, RTC_C_AF);
}

static void test_reset_clears_enables(void **state)
{
	(void)state;
	wr(RTC_REG_B, RTC_B_24H | RTC_B_UIE | RTC_B_PIE);
	fake_now += NS;
	rtc_update_tick(&rtc);
	assert_int_equal(irq.level, 1);
	rtc_reset(&rtc);
	assert_int_equal(irq.level, 0);
	assert_int_equal(rd(RTC_REG_B), RTC_B_24H);
	assert_int_equal(rd(RTC_SECONDS), 0x57);	/* time kept */
}

static void fill(uint64_t below, uint64_t above, unsigned ncpus, const char *order)
{
	struct rtc_nvram_config c = { below, above, ncpus, order };

	assert_int_equal(rtc_nvram_fill(&rtc, &c), 0);
}

static unsigned nv16(uint8_t lo)
{
	return rd(lo) | rd(lo + 1) << 8;
}

static void test_nvram_64m(void **state)
{
	(void)state;
	fill(64 * MiB, 0, 1, NULL);
	assert_int_equal(nv16(CMOS_BASE_MEM_LO), 640);
	assert_int_equal(nv16(CMOS_EXT_MEM_LO), 63 * 1024);
	assert_int_equal(nv16(CMOS_EXT_MEM2_LO), 63 * 1024);
	assert_int_equal(nv16(CMOS_MEM_16M_LO), 48 * 16);
	assert_int_equal(rd(CMOS_MEM_4G_LO), 0);
	assert_int_equal(rd(CMOS_MEM_4G_MID), 0);
	assert_int_equal(rd(CMOS_MEM_4G_HI), 0);
	assert_int_equal(rd(CMOS_NR_CPUS_M1), 0);
	assert_int_equal(rd(CMOS_EQUIPMENT), 0x06);
	assert_int_equal(rd(CMOS_FLOPPY_TYPE), 0);
	assert_int_equal(rd(CMOS_DISK_TYPE), 0);
	assert_int_equal(rd(CMOS_SHUTDOWN_STATUS), 0);
	/* default "cad": hdd, floppy, cd */
	assert_int_equal(rd(CMOS_BOOTFLAG2), 0x12);
	assert_int_equal(rd(CMOS_BOOTFLAG1), 0x30);
	assert_int_equal(rd(RTC_CENTURY), 0x20);
}

static void test_nvram_3_5g(void **state)
{
	(void)state;
	/* The PC layout keeps 3 GiB low: 3.5 GiB is 3 GiB + 512 MiB high. */
	fill(3 * GiB, 512 * MiB, 4, "dc");
	assert_int_equal(nv16(CMOS_EXT_MEM_LO), 0xffff);
	assert_int_equal(nv16(CMOS_EXT_MEM2_LO), 0xffff);
	assert_int_equal(nv16(CMOS_MEM_16M_LO), (3 * 1024 - 16) * 16);
	assert_int_equal(rd(CMOS_MEM_4G_LO), 0x00);
	assert_int_equal(rd(CMOS_MEM_4G_MID), 0x20);
	assert_int_equal(rd(CMOS_MEM_4G_HI), 0x00);
	assert_int_equal(rd(CMOS_NR_CPUS_M1), 3);
	assert_int_equal(rd(CMOS_BOOTFLAG2), 0x23);	/* cd, then hdd */
	assert_int_equal(rd(CMOS_BOOTFLAG1), 0x00);
}

static void test_nvram_8g(void **state)
{
	(void)state;
	fill(3 * GiB, 5 * GiB, 2, "n");
	assert_int_equal(nv16(CMOS_MEM_16M_LO), (3 * 1024 - 16) * 16);
	/* 5 GiB / 64 KiB = 81920 = 0x014000 */
	assert_int_equal(rd(CMOS_MEM_4G_LO), 0x00);
	assert_int_equal(rd(CMOS_MEM_4G_MID), 0x40);
	assert_int_equal(rd(CMOS_MEM_4G_HI), 0x01);
	assert_int_equal(rd(CMOS_BOOTFLAG2), 0x04);
}

static void test_nvram_bad_boot_order(void **state)
{
	struct rtc_nvram_config c = { 64 * MiB, 0, 1, "cx" };

	(void)state;
	assert_int_equal(rtc_nvram_fill(&rtc, &c), -EINVAL);
	c.boot_order = "cdan";		/* QEMU: "Too many boot devices for PC" */
	assert_int_equal(rtc_nvram_fill(&rtc, &c), -EINVAL);
}

/* The encodings SeaBIOS decodes in boot_init() (0x3d: first two devices,
 * 0x38 bits 7-4: third; 1 floppy, 2 disk, 3 CD, 4 network), read the way
 * SeaBIOS reads CMOS: index with bit 7 (NMI disable) set. */
static void test_nvram_boot_orders(void **state)
{
	static const struct { const char *order; uint8_t b2, b1; } cases[] = {
		{ "a", 0x01, 0x00 }, { "c", 0x02, 0x00 }, { "d", 0x03, 0x00 },
		{ "n", 0x04, 0x00 }, { "ac", 0x21, 0x00 }, { "dca", 0x23, 0x10 },
		{ "cad", 0x12, 0x30 }, { "b", 0x01, 0x00 },
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fill(64 * MiB, 0, 1, cases[i].order);
		assert_int_equal(rd(0x80 | CMOS_BOOTFLAG2), cases[i].b2);
		assert_int_equal(rd(0x80 | CMOS_BOOTFLAG1), cases[i].b1);
	}
}

static void test_invalid_time_write_is_clamped(void **state)
{
	(void)state;
	set_time_bcd(0x99, 0x99, 0x13, 0x45, 0x77, 0x99, 0x99);
	/* Nothing crashed; the clock runs at a clamped date. */
	assert_int_equal(rd(RTC_CENTURY), 0x21);
	assert_int_equal(rd(RTC_YEAR), 0x99);
	assert_int_equal(rd(RTC_MONTH), 0x12);
	wr(RTC_REG_C, 0xff);	/* read-only: ignored */
	assert_int_equal(rd(RTC_REG_C) & 0x0f, 0);
}

static void test_vmstate_round_trip(void **state)
{
	struct rtc other;
	size_t n = vmstate_size(&rtc_vmstate);
	uint8_t a[512], b[512];
	char err[128];

	(void)state;
	assert_true(n <= sizeof(a));
	set_time_bcd(0x20, 0x30, 0x06, 0x15, 0x10, 0x20, 0x30);
	wr(RTC_REG_B, RTC_B_24H | RTC_B_UIE);
	fake_now += 2 * NS;
	rtc_update_tick(&rtc);
	wr(0x40, 0x5a);
	rtc_port_write(&rtc, 0, 0x41);
	assert_int_equal(vmstate_save(&rtc_vmstate, &rtc.s, a), n);

	rtc_init(&other, NULL, fake_clock, false);
	assert_int_equal(vmstate_load(&rtc_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), 0);
	assert_int_equal(vmstate_save(&rtc_vmstate, &other.s, b), n);
	assert_memory_equal(a, b, n);
	/* The loaded clock reads the same time. */
	rtc_port_write(&other, 0, RTC_MINUTES);
	assert_int_equal(rtc_port_read(&other, 1), 0x20);
	rtc_port_write(&other, 0, 0x40);
	assert_int_equal(rtc_port_read(&other, 1), 0x5a);
	rtc_destroy(&other);
}

static void test_vmstate_bad_index_rejected(void **state)
{
	struct rtc other;
	size_t n = vmstate_size(&rtc_vmstate);
	uint8_t a[512];
	char err[128];

	(void)state;
	vmstate_save(&rtc_vmstate, &rtc.s, a);
	rtc_init(&other, NULL, fake_clock, false);
	rtc_port_write(&other, 0, 0x33);
	a[RTC_CMOS_SIZE] = 0x80;		/* index follows the 128 CMOS bytes */
	assert_int_equal(vmstate_load(&rtc_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), -EINVAL);
	assert_int_equal(other.s.index, 0x33);	/* untouched */
	a[RTC_CMOS_SIZE] = 0x7f;
	assert_int_equal(vmstate_load(&rtc_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), 0);
	/* An IRQ level that contradicts register C is rejected too. */
	a[n - 1] = !a[n - 1];
	assert_int_equal(vmstate_load(&rtc_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), -EINVAL);
	a[n - 1] = !a[n - 1];
	/* So is update bookkeeping far outside any clock (int64 overflow bait). */
	memset(a + RTC_CMOS_SIZE + 1 + 8, 0xff, 7);
	a[RTC_CMOS_SIZE + 1 + 8 + 7] = 0x80;		/* last_update_sec = INT64_MIN + .. */
	assert_int_equal(vmstate_load(&rtc_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), -EINVAL);
	/* An extreme offset is accepted and only saturates the clock. */
	vmstate_save(&rtc_vmstate, &rtc.s, a);
	memset(a + RTC_CMOS_SIZE + 1, 0xff, 7);
	a[RTC_CMOS_SIZE + 1 + 7] = 0x7f;		/* offset_ns = INT64_MAX */
	assert_int_equal(vmstate_load(&rtc_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), 0);
	rtc_port_write(&other, 0, RTC_YEAR);
	rtc_port_read(&other, 1);
	rtc_port_write(&other, 0, RTC_REG_C);
	rtc_port_read(&other, 1);
	assert_true(rtc_update_delay_ns(&other) == RTC_NO_TIMER);
	rtc_destroy(&other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_power_on_registers),
		T(test_time_bcd),
		T(test_nmi_bit_ignored_in_index),
		T(test_time_binary),
		T(test_12_hour_mode),
		T(test_set_time_then_advance),
		T(test_time_frozen_while_set),
		T(test_write_time_while_running),
		T(test_uip_window),
		T(test_update_interrupt_and_reg_c_clear),
		T(test_periodic_rate_math),
		T(test_periodic_interrupt),
		T(test_pf_set_without_pie),
		T(test_alarm_match),
		T(test_alarm_dont_care),
		T(test_reset_clears_enables),
		T(test_nvram_64m),
		T(test_nvram_3_5g),
		T(test_nvram_8g),
		T(test_nvram_bad_boot_order),
		T(test_nvram_boot_orders),
		T(test_invalid_time_write_is_clamped),
		T(test_vmstate_round_trip),
		T(test_vmstate_bad_index_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
