/* Unit tests for the vmstate field tables: save/load/dump round trips and
 * rejection of hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "vmm/vmstate.h"

struct sample {
	uint8_t index;
	uint8_t fifo[16];
	uint16_t word;
	uint32_t regs[3];
	uint64_t big;
	int64_t offset;
	bool flag;
	void *not_saved;
};

static int sample_post_load(void *opaque)
{
	struct sample *s = opaque;

	return s->word == 0xdead ? -1 : 0;	/* an "inconsistent" state */
}

static const struct vmstate_field sample_fields[] = {
	VMSTATE_U8_MAX(struct sample, index, 15),
	VMSTATE_U8_ARRAY(struct sample, fifo),
	VMSTATE_U16(struct sample, word),
	VMSTATE_U32_ARRAY(struct sample, regs),
	VMSTATE_U64(struct sample, big),
	VMSTATE_I64(struct sample, offset),
	VMSTATE_BOOL(struct sample, flag),
};
static const struct vmstate_desc sample_desc =
	VMSTATE_DESC("sample", 1, sample_fields, sample_post_load);

static struct sample make_sample(void)
{
	struct sample s = { .index = 7, .word = 0x1234, .regs = { 1, 2, 0xffffffff },
			    .big = 0x0102030405060708ULL, .offset = -42, .flag = true };
	for (int i = 0; i < 16; i++)
		s.fifo[i] = i * 3;
	return s;
}

static void test_size(void **state)
{
	assert_int_equal(vmstate_size(&sample_desc), 1 + 16 + 2 + 12 + 8 + 8 + 1);
}

static void test_round_trip_identical(void **state)
{
	struct sample a = make_sample(), b = { 0 };
	uint8_t buf1[64], buf2[64];
	char err[128];
	size_t n = vmstate_save(&sample_desc, &a, buf1);

	assert_int_equal(vmstate_load(&sample_desc, &b, sizeof(b), buf1, n, err, sizeof(err)), 0);
	assert_int_equal(b.offset, -42);
	assert_int_equal(b.regs[2], 0xffffffff);
	assert_true(b.flag);
	assert_int_equal(vmstate_save(&sample_desc, &b, buf2), n);
	assert_memory_equal(buf1, buf2, n);
	/* little-endian on the wire */
	assert_int_equal(buf1[17], 0x34);
	assert_int_equal(buf1[18], 0x12);
}

static void test_rejects_bad_input(void **state)
{
	struct sample a = make_sample(), live = make_sample();
	uint8_t buf[64];
	char err[128];
	size_t n = vmstate_save(&sample_desc, &a, buf);

	live.index = 3;
	/* wrong length */
	assert_int_not_equal(vmstate_load(&sample_desc, &live, sizeof(live), buf, n - 1, err, sizeof(err)), 0);
	/* index beyond its bound */
	buf[0] = 16;
	assert_int_not_equal(vmstate_load(&sample_desc, &live, sizeof(live), buf, n, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "sample.index"));
	assert_int_equal(live.index, 3);	/* untouched */
	buf[0] = 1;
	/* bool must be 0 or 1 */
	buf[n - 1] = 2;
	assert_int_not_equal(vmstate_load(&sample_desc, &live, sizeof(live), buf, n, err, sizeof(err)), 0);
	buf[n - 1] = 1;
	/* post_load veto leaves the device untouched */
	buf[17] = 0xad;
	buf[18] = 0xde;
	assert_int_not_equal(vmstate_load(&sample_desc, &live, sizeof(live), buf, n, err, sizeof(err)), 0);
	assert_int_equal(live.word, 0x1234);
	assert_int_equal(live.index, 3);
}

static void test_dump(void **state)
{
	struct sample a = make_sample();
	uint8_t buf[64];
	char out[2048] = "";
	size_t n = vmstate_save(&sample_desc, &a, buf);
	FILE *f = fmemopen(out, sizeof(out), "w");

	assert_int_equal(vmstate_dump(&sample_desc, buf, n, f), 0);
	fclose(f);
	assert_non_null(strstr(out, "sample.index = 0x7\n"));
	assert_non_null(strstr(out, "sample.regs = 0x1 0x2 0xffffffff\n"));
	assert_non_null(strstr(out, "sample.offset = 0xffffffffffffffd6\n"));
	assert_int_not_equal(vmstate_dump(&sample_desc, buf, n + 1, stdout), 0);
}

static void test_registry(void **state)
{
	static struct sample s;

	vmstate_register(&sample_desc, &s, sizeof(s), 0);
	assert_ptr_equal(vmstate_find_desc("sample"), &sample_desc);
	assert_null(vmstate_find_desc("nothing"));
	assert_ptr_equal(vmstate_entries()->opaque, &s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_round_trip_identical),
		cmocka_unit_test(test_rejects_bad_input),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_registry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
