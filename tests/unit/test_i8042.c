/* Unit tests for the i8042 PS/2 controller model (hw/i8042.c) with fake
 * IRQ lines and a fake reset hook. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "hw/i8042.h"

struct fake_irq {
	int level;
	int raises;
};

static struct fake_irq kbd_irq, aux_irq;
static int resets;
static struct i8042 kbc;

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake_irq *f = opaque;

	assert_true(gsi == 1 || gsi == 12);
	if (level && !f->level)
		f->raises++;
	f->level = level;
}

static void fake_reset(void *opaque)
{
	assert_ptr_equal(opaque, &kbc);
	resets++;
}

static int setup(void **state)
{
	struct irq_line k = { fake_set_level, &kbd_irq, 1 };
	struct irq_line a = { fake_set_level, &aux_irq, 12 };
	struct i8042_hooks hooks = { fake_reset, &kbc };

	(void)state;
	memset(&kbd_irq, 0, sizeof(kbd_irq));
	memset(&aux_irq, 0, sizeof(aux_irq));
	resets = 0;
	i8042_init(&kbc, &k, &a, &hooks);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	i8042_destroy(&kbc);
	return 0;
}

static bool obf(void)
{
	return i8042_read_status(&kbc) & I8042_STR_OBF;
}

/* Read one byte, checking the buffer had one. */
static uint8_t pop(void)
{
	assert_true(obf());
	return i8042_read_data(&kbc);
}

static void set_ctr(uint8_t v)
{
	i8042_write_command(&kbc, 0x60);
	i8042_write_data(&kbc, v);
}

static void test_self_test(void **state)
{
	(void)state;
	assert_false(obf());
	assert_int_equal(i8042_read_status(&kbc) & I8042_STR_SYS, 0);
	i8042_write_command(&kbc, 0xaa);
	assert_int_equal(pop(), 0x55);
	assert_false(obf());
	assert_int_equal(i8042_read_status(&kbc) & I8042_STR_SYS, I8042_STR_SYS);
	assert_int_equal(i8042_read_status(&kbc) & I8042_STR_CMD, I8042_STR_CMD);
	i8042_write_command(&kbc, 0xab);
	assert_int_equal(pop(), 0x00);
	i8042_write_command(&kbc, 0xa9);
	assert_int_equal(pop(), 0x00);
}

static void test_command_byte(void **state)
{
	(void)state;
	i8042_write_command(&kbc, 0x20);
	assert_int_equal(pop(), I8042_CTR_KBDINT | I8042_CTR_AUXINT);
	set_ctr(0x65);
	assert_int_equal(i8042_read_status(&kbc) & I8042_STR_CMD, 0);
	i8042_write_command(&kbc, 0x20);
	assert_int_equal(pop(), 0x65);
	/* SYS bit of the command byte shows in the status register. */
	assert_int_equal(i8042_read_status(&kbc) & I8042_STR_SYS, I8042_STR_SYS);
	i8042_write_command(&kbc, 0xad);
	i8042_write_command(&kbc, 0xa7);
	i8042_write_command(&kbc, 0x20);
	assert_int_equal(pop(), 0x65 | I8042_CTR_KBDDIS | I8042_CTR_AUXDIS);
	i8042_write_command(&kbc, 0xae);
	i8042_write_command(&kbc, 0xa8);
	i8042_write_command(&kbc, 0x20);
	assert_int_equal(pop(), 0x45);
}

static void test_keyboard_reset_and_identify(void **state)
{
	(void)state;
	set_ctr(0x00);			/* no translation, no IRQs */
	i8042_write_data(&kbc, 0xff);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(pop(), 0xaa);
	assert_false(obf());
	i8042_write_data(&kbc, 0xf2);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(pop(), 0xab);
	assert_int_equal(pop(), 0x83);
	set_ctr(I8042_CTR_XLATE);	/* through translation: AB 41 */
	i8042_write_data(&kbc, 0xf2);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(pop(), 0xab);
	assert_int_equal(pop(), 0x41);
}

static void test_keyboard_commands(void **state)
{
	(void)state;
	set_ctr(0x00);
	i8042_write_data(&kbc, 0xee);
	assert_int_equal(pop(), 0xee);
	i8042_write_data(&kbc, 0xed);
	assert_int_equal(pop(), 0xfa);
	i8042_write_data(&kbc, 0x07);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(kbc.s.kbd_leds, 7);
	i8042_write_data(&kbc, 0xf0);
	assert_int_equal(pop(), 0xfa);
	i8042_write_data(&kbc, 0x00);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(pop(), 2);
	i8042_write_data(&kbc, 0xf3);
	assert_int_equal(pop(), 0xfa);
	i8042_write_data(&kbc, 0x20);
	assert_int_equal(pop(), 0xfa);
	i8042_write_data(&kbc, 0xf5);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(i8042_inject_key(&kbc, 0x1c), -EAGAIN);	/* not scanning */
	i8042_write_data(&kbc, 0xf4);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(i8042_inject_key(&kbc, 0x1c), 0);
	assert_int_equal(pop(), 0x1c);
	i8042_write_data(&kbc, 0x42);	/* not a command */
	assert_int_equal(pop(), 0xfe);
}

static void test_mouse_probe(void **state)
{
	(void)state;
	set_ctr(0x00);
	i8042_write_command(&kbc, 0xd4);
	i8042_write_data(&kbc, 0xff);
	for (int i = 0; i < 3; i++) {
		uint8_t want[3] = { 0xfa, 0xaa, 0x00 };

		assert_int_equal(i8042_read_status(&kbc) & I8042_STR_AUXDATA, I8042_STR_AUXDATA);
		assert_int_equal(pop(), want[i]);
	}
	i8042_write_command(&kbc, 0xd4);
	i8042_write_data(&kbc, 0xf2);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(pop(), 0x00);
	i8042_write_command(&kbc, 0xd4);
	i8042_write_data(&kbc, 0xf3);
	assert_int_equal(pop(), 0xfa);
	i8042_write_command(&kbc, 0xd4);
	i8042_write_data(&kbc, 200);
	assert_int_equal(pop(), 0xfa);
	i8042_write_command(&kbc, 0xd4);
	i8042_write_data(&kbc, 0xe9);
	assert_int_equal(pop(), 0xfa);
	assert_int_equal(pop(), 0x00);
	assert_int_equal(pop(), 2);
	assert_int_equal(pop(), 200);
}

static void test_reset_via_fe(void **state)
{
	(void)state;
	i8042_write_command(&kbc, 0xff);	/* pulse nothing */
	assert_int_equal(resets, 0);
	i8042_write_command(&kbc, 0xfe);
	assert_int_equal(resets, 1);
}

static void test_reset_and_a20_via_output_port(void **state)
{
	(void)state;
	assert_true(i8042_a20_enabled(&kbc));
	i8042_write_command(&kbc, 0xd0);
	assert_int_equal(pop() & 0x03, 0x03);
	i8042_write_command(&kbc, 0xd1);
	i8042_write_data(&kbc, 0xdd);		/* A20 off, reset high */
	assert_false(i8042_a20_enabled(&kbc));
	assert_int_equal(resets, 0);
	i8042_write_command(&kbc, 0xd0);
	assert_int_equal(pop() & 0x03, 0x01);
	i8042_write_command(&kbc, 0xd1);
	i8042_write_data(&kbc, 0xdf);
	assert_true(i8042_a20_enabled(&kbc));
	i8042_write_command(&kbc, 0xdd);
	assert_false(i8042_a20_enabled(&kbc));
	i8042_write_command(&kbc, 0xdf);
	assert_true(i8042_a20_enabled(&kbc));
	i8042_write_command(&kbc, 0xd1);
	i8042_write_data(&kbc, 0xde);		/* bit 0 low: reset */
	assert_int_equal(resets, 1);
}

static void test_irq_raising(void **state)
{
	(void)state;
	set_ctr(0x00);
	assert_int_equal(i8042_inject_key(&kbc, 0x1e), 0);
	assert_int_equal(kbd_irq.raises, 0);	/* interrupts off */
	assert_int_equal(pop(), 0x1e);
	set_ctr(I8042_CTR_KBDINT);
	i8042_inject_key(&kbc, 0x1e);
	i8042_inject_key(&kbc, 0x9e);
	assert_int_equal(kbd_irq.level, 1);
	assert_int_equal(kbd_irq.raises, 1);
	assert_int_equal(pop(), 0x1e);
	assert_int_equal(kbd_irq.level, 1);
	assert_int_equal(kbd_irq.raises, 2);	/* a new edge for the next byte */
	assert_int_equal(pop(), 0x9e);
	assert_int_equal(kbd_irq.level, 0);
	/* Keys wait while the keyboard port is disabled. */
	i8042_write_command(&kbc, 0xad);
	i8042_inject_key(&kbc, 0x10);
	assert_false(obf());
	i8042_write_command(&kbc, 0xae);
	assert_int_equal(kbd_irq.level, 1);
	assert_int_equal(pop(), 0x10);
	/* Aux bytes raise IRQ 12 only. */
	set_ctr(I8042_CTR_KBDINT | I8042_CTR_AUXINT);
	i8042_write_command(&kbc, 0xd3);
	i8042_write_data(&kbc, 0x5a);
	assert_int_equal(aux_irq.level, 1);
	assert_int_equal(kbd_irq.level, 0);
	assert_int_equal(pop(), 0x5a);
	assert_int_equal(aux_irq.level, 0);
	i8042_write_command(&kbc, 0xd2);
	i8042_write_data(&kbc, 0xa5);
	assert_int_equal(kbd_irq.level, 1);
	assert_int_equal(pop(), 0xa5);
}

static void test_queue_bounded(void **state)
{
	int ok = 0;

	(void)state;
	set_ctr(0x00);
	for (int i = 0; i < 100; i++)
		ok += i8042_inject_key(&kbc, (uint8_t)i) == 0;
	/* one in the output buffer plus a full queue */
	assert_int_equal(ok, I8042_QUEUE_SIZE + 1);
	for (int i = 0; i <= I8042_QUEUE_SIZE; i++)
		assert_int_equal(pop(), i);
	assert_false(obf());
	assert_int_equal(i8042_read_data(&kbc), I8042_QUEUE_SIZE);	/* repeats */
}

static void test_vmstate_round_trip(void **state)
{
	struct i8042 other;
	size_t n = vmstate_size(&i8042_vmstate);
	uint8_t a[256], b[256];
	char err[128];

	(void)state;
	assert_true(n <= sizeof(a));
	set_ctr(I8042_CTR_KBDINT | I8042_CTR_XLATE);
	i8042_write_data(&kbc, 0xf2);
	i8042_write_command(&kbc, 0xd4);
	i8042_write_data(&kbc, 0xf3);
	vmstate_save(&i8042_vmstate, &kbc.s, a);

	i8042_init(&other, NULL, NULL, NULL);
	assert_int_equal(vmstate_load(&i8042_vmstate, &other.s, sizeof(other.s), a, n,
				      err, sizeof(err)), 0);
	vmstate_save(&i8042_vmstate, &other.s, b);
	assert_memory_equal(a, b, n);
	assert_int_equal(i8042_read_data(&other), 0xfa);
	assert_int_equal(i8042_read_data(&other), 0xab);
	assert_int_equal(i8042_read_data(&other), 0x41);

	/* A queue head beyond the array is rejected, state untouched. */
	for (size_t off = 0; off < n; off++) {
		uint8_t c[256];

		memcpy(c, a, n);
		c[off] = 0xff;
		if (vmstate_load(&i8042_vmstate, &other.s, sizeof(other.s), c, n,
				 err, sizeof(err)) == 0) {
			assert_true(other.s.kbdq.head < I8042_QUEUE_SIZE);
			assert_true(other.s.kbdq.count <= I8042_QUEUE_SIZE);
			assert_true(other.s.auxq.head < I8042_QUEUE_SIZE);
			assert_true(other.s.auxq.count <= I8042_QUEUE_SIZE);
			assert_true(other.s.obuf_src <= I8042_SRC_AUX);
		}
	}
	i8042_destroy(&other);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_self_test),
		T(test_command_byte),
		T(test_keyboard_reset_and_identify),
		T(test_keyboard_commands),
		T(test_mouse_probe),
		T(test_reset_via_fe),
		T(test_reset_and_a20_via_output_port),
		T(test_irq_raising),
		T(test_queue_bounded),
		T(test_vmstate_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
