/* Unit tests for the ACPI PM model (hw/acpi_pm.c): PM timer with an
 * injected clock, write-1-to-clear status, SCI level, power button, sleep
 * requests, SMI enable/disable, migration state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "hw/acpi_pm.h"
#include "vmm/platform.h"

#define NS 1000000000ULL
#define STS (ACPI_PM1_EVT - ACPI_PM_BASE)
#define EN  (ACPI_PM1_EVT - ACPI_PM_BASE + 2)
#define CNT (ACPI_PM1_CNT - ACPI_PM_BASE)
#define TMR (ACPI_PM_TMR - ACPI_PM_BASE)

static uint64_t fake_now;
static int sci_level, sci_raises, poweroffs, timer_changes;
static struct acpi_pm pm;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void fake_sci(void *opaque, unsigned gsi, int level)
{
	(void)opaque;
	assert_int_equal(gsi, ACPI_SCI_IRQ);
	if (level && !sci_level)
		sci_raises++;
	sci_level = level;
}

static void fake_poweroff(void *opaque)
{
	assert_ptr_equal(opaque, &pm);
	poweroffs++;
}

static void fake_timers_changed(void *opaque)
{
	(void)opaque;
	timer_changes++;
}

static int setup(void **state)
{
	struct irq_line sci = { fake_sci, NULL, ACPI_SCI_IRQ };
	struct acpi_pm_hooks hooks = { fake_poweroff, fake_timers_changed, &pm };

	(void)state;
	sci_level = sci_raises = poweroffs = timer_changes = 0;
	fake_now = 1000 * NS;
	acpi_pm_init(&pm, &sci, fake_clock, &hooks);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	acpi_pm_destroy(&pm);
	return 0;
}

static uint64_t rd(unsigned off, unsigned size)
{
	return acpi_pm_io_read(&pm, ACPI_PM_BLK_PM, off, size);
}

static void wr(unsigned off, uint64_t v, unsigned size)
{
	acpi_pm_io_write(&pm, ACPI_PM_BLK_PM, off, v, size);
}

static void test_pm_timer_frequency(void **state)
{
	uint32_t t0, t1;

	(void)state;
	fake_now = 0;
	assert_int_equal(rd(TMR, 4), 0);
	fake_now = NS;				/* one second: 3579545 ticks */
	assert_int_equal(rd(TMR, 4), 3579545);
	fake_now = NS / 1000;			/* 1 ms: 3579.545 */
	assert_int_equal(rd(TMR, 4), 3579);
	/* 24 bits: wraps after 2^24 ticks (4.687 s) */
	fake_now = 5 * NS;
	assert_int_equal(rd(TMR, 4), (5 * 3579545) & 0xffffff);
	assert_int_equal(rd(TMR, 4) >> 24, 0);
	/* Elapsed ticks over a long run match the frequency. */
	fake_now = 123456789;
	t0 = acpi_pm_timer_value(&pm);
	fake_now += 3 * NS;
	t1 = acpi_pm_timer_value(&pm);
	assert_int_equal((t1 - t0) & 0xffffff, (3 * 3579545) & 0xffffff);
	/* byte reads see the same register */
	assert_int_equal(rd(TMR + 1, 1), (t1 >> 8) & 0xff);
}

static void test_status_write_one_to_clear(void **state)
{
	(void)state;
	wr(EN, ACPI_PM1_PWRBTN_EN, 2);
	assert_true(acpi_pm_power_button(&pm));
	fake_now += 5 * NS;	/* timer top bit toggled: TMR_STS */
	assert_int_equal(rd(STS, 2), ACPI_PM1_PWRBTN_STS | ACPI_PM1_TMR_STS);
	wr(STS, 0, 2);		/* writing 0 clears nothing */
	assert_int_equal(rd(STS, 2), ACPI_PM1_PWRBTN_STS | ACPI_PM1_TMR_STS);
	wr(STS, ACPI_PM1_TMR_STS, 2);
	assert_int_equal(rd(STS, 2), ACPI_PM1_PWRBTN_STS);
	wr(STS + 1, ACPI_PM1_PWRBTN_STS >> 8, 1);	/* byte access to the high half */
	assert_int_equal(rd(STS, 2), 0);
	/* a 32-bit write covers status and enable at once */
	wr(STS, (uint32_t)ACPI_PM1_PWRBTN_EN << 16, 4);
	assert_int_equal(rd(EN, 2), ACPI_PM1_PWRBTN_EN);
}

static void test_sci_level_logic(void **state)
{
	(void)state;
	acpi_pm_power_button(&pm);		/* not enabled: nothing */
	assert_int_equal(rd(STS, 2), 0);
	assert_int_equal(sci_level, 0);
	wr(EN, ACPI_PM1_PWRBTN_EN, 2);
	assert_true(acpi_pm_power_button(&pm));
	assert_int_equal(sci_level, 1);
	wr(EN, 0, 2);				/* disable: line drops */
	assert_int_equal(sci_level, 0);
	wr(EN, ACPI_PM1_PWRBTN_EN, 2);		/* status still set: rises again */
	assert_int_equal(sci_level, 1);
	wr(STS, ACPI_PM1_PWRBTN_STS, 2);
	assert_int_equal(sci_level, 0);

	/* Timer overflow with TMR_EN */
	wr(EN, ACPI_PM1_TMR_EN, 2);
	assert_true(timer_changes > 0);
	fake_now = 1000 * NS;
	fake_now += acpi_pm_timer_delay_ns(&pm);
	acpi_pm_timer_tick(&pm);
	assert_int_equal(sci_level, 1);
	wr(STS, ACPI_PM1_TMR_STS, 2);
	assert_int_equal(sci_level, 0);
	assert_true(acpi_pm_timer_delay_ns(&pm) <= (NS << 23) / 3579545 + 1);
	wr(EN, 0, 2);
	assert_int_equal(acpi_pm_timer_delay_ns(&pm), ACPI_PM_NO_TIMER);

	/* GPE: status & enable */
	acpi_pm_gpe_raise(&pm, 9);
	assert_int_equal(sci_level, 0);
	assert_int_equal(acpi_pm_io_read(&pm, ACPI_PM_BLK_GPE, 1, 1), 0x02);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_GPE, 3, 0x02, 1);	/* enable bit 9 */
	assert_int_equal(sci_level, 1);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_GPE, 0, 0x0200, 2);	/* W1C */
	assert_int_equal(sci_level, 0);
	assert_int_equal(acpi_pm_io_read(&pm, ACPI_PM_BLK_GPE, 0, 4), 0x02000000);
	acpi_pm_gpe_raise(&pm, 99);				/* out of range: ignored */
}

static void test_power_button(void **state)
{
	(void)state;
	assert_false(acpi_pm_power_button(&pm));
	assert_int_equal(sci_raises, 0);
	wr(EN, ACPI_PM1_PWRBTN_EN, 2);
	assert_true(acpi_pm_power_button(&pm));
	assert_int_equal(sci_raises, 1);
	assert_int_equal(rd(STS, 2) & ACPI_PM1_PWRBTN_STS, ACPI_PM1_PWRBTN_STS);
}

static void test_s5_powers_off(void **state)
{
	uint16_t v = (uint16_t)(ACPI_PM1_SCI_EN | ACPI_S5_SLP_TYP << ACPI_PM1_SLP_TYP_SHIFT);

	(void)state;
	wr(CNT, v, 2);				/* SLP_TYP without SLP_EN */
	assert_int_equal(poweroffs, 0);
	wr(CNT, v | ACPI_PM1_SLP_EN, 2);
	assert_int_equal(poweroffs, 1);
	assert_int_equal(rd(CNT, 2) & ACPI_PM1_SLP_EN, 0);	/* write-only bit */
	/* Linux writes SLP_TYP first, then SLP_EN in the high byte. */
	wr(CNT + 1, (v | ACPI_PM1_SLP_EN) >> 8, 1);
	assert_int_equal(poweroffs, 2);
}

static void test_other_sleep_types_ignored(void **state)
{
	(void)state;
	for (unsigned typ = 0; typ < 8; typ++) {
		if (typ == ACPI_S5_SLP_TYP)
			continue;
		wr(CNT, typ << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN, 2);
	}
	assert_int_equal(poweroffs, 0);
}

static void test_smi_enable_disable(void **state)
{
	(void)state;
	assert_int_equal(rd(CNT, 2) & ACPI_PM1_SCI_EN, 0);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_SMI, 0, ACPI_ENABLE_CMD, 1);
	assert_int_equal(rd(CNT, 2) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
	assert_int_equal(acpi_pm_io_read(&pm, ACPI_PM_BLK_SMI, 0, 1), ACPI_ENABLE_CMD);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_SMI, 0, 0x42, 1);	/* other value: no change */
	assert_int_equal(rd(CNT, 2) & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_SMI, 0, ACPI_DISABLE_CMD, 1);
	assert_int_equal(rd(CNT, 2) & ACPI_PM1_SCI_EN, 0);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_SMI, 1, 0x5a, 1);	/* APM status scratch */
	assert_int_equal(acpi_pm_io_read(&pm, ACPI_PM_BLK_SMI, 1, 1), 0x5a);
	assert_int_equal(ACPI_ENABLE_CMD, 0xf1);
	assert_int_equal(ACPI_DISABLE_CMD, 0xf0);
}

static void test_reset(void **state)
{
	(void)state;
	acpi_pm_io_write(&pm, ACPI_PM_BLK_SMI, 0, ACPI_ENABLE_CMD, 1);
	wr(EN, ACPI_PM1_PWRBTN_EN, 2);
	acpi_pm_power_button(&pm);
	acpi_pm_reset(&pm);
	assert_int_equal(sci_level, 0);
	assert_int_equal(rd(STS, 4), 0);
	assert_int_equal(rd(CNT, 2), 0);
}

static void test_vmstate_round_trip(void **state)
{
	struct acpi_pm other;
	size_t n = vmstate_size(&acpi_pm_vmstate);
	uint8_t a[64], b[64];
	char err[128];

	(void)state;
	assert_true(n <= sizeof(a));
	acpi_pm_io_write(&pm, ACPI_PM_BLK_SMI, 0, ACPI_ENABLE_CMD, 1);
	wr(EN, ACPI_PM1_PWRBTN_EN, 2);
	acpi_pm_power_button(&pm);
	acpi_pm_io_write(&pm, ACPI_PM_BLK_GPE, 2, 0x81, 1);
	vmstate_save(&acpi_pm_vmstate, &pm.s, a);

	acpi_pm_init(&other, NULL, fake_clock, NULL);
	assert_int_equal(vmstate_load(&acpi_pm_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), 0);
	vmstate_save(&acpi_pm_vmstate, &other.s, b);
	assert_memory_equal(a, b, n);
	assert_int_equal(other.s.pm1_cnt & ACPI_PM1_SCI_EN, ACPI_PM1_SCI_EN);
	assert_true(other.s.sci_level);

	/* Undefined PM1 bits in the stream are rejected. */
	a[0] = 0x02;		/* pm1_sts bit 1 does not exist */
	assert_int_equal(vmstate_load(&acpi_pm_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), -EINVAL);
	acpi_pm_destroy(&other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pm_timer_frequency),
		T(test_status_write_one_to_clear),
		T(test_sci_level_logic),
		T(test_power_button),
		T(test_s5_powers_off),
		T(test_other_sleep_types_ignored),
		T(test_smi_enable_disable),
		T(test_reset),
		T(test_vmstate_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
