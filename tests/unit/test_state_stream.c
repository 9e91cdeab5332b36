/* Unit tests for the self-describing device-state stream: round trip,
 * schema checks, all-or-nothing load, and hostile input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "migration/state_stream.h"
#include "vmm/vmstate.h"

struct dev_a { uint8_t idx; uint32_t regs[4]; bool on; };
struct dev_b { uint64_t clock; uint16_t words[3]; };

static const struct vmstate_field a_fields[] = {
	VMSTATE_U8_MAX(struct dev_a, idx, 3),
	VMSTATE_U32_ARRAY(struct dev_a, regs),
	VMSTATE_BOOL(struct dev_a, on),
};
static const struct vmstate_field b_fields[] = {
	VMSTATE_U64(struct dev_b, clock),
	VMSTATE_U16_ARRAY(struct dev_b, words),
};
static const struct vmstate_desc a_desc = VMSTATE_DESC("dev_a", 2, a_fields, NULL);
static const struct vmstate_desc b_desc = VMSTATE_DESC("dev_b", 1, b_fields, NULL);

static struct dev_a a0, a1;
static struct dev_b b0;

static int setup(void **state)
{
	static bool registered;

	if (!registered) {
		vmstate_register(&a_desc, &a0, sizeof(a0), 0);
		vmstate_register(&a_desc, &a1, sizeof(a1), 1);
		vmstate_register(&b_desc, &b0, sizeof(b0), 0);
		registered = true;
	}
	a0 = (struct dev_a){ 1, { 10, 11, 12, 13 }, true };
	a1 = (struct dev_a){ 3, { 20, 21, 22, 23 }, false };
	b0 = (struct dev_b){ 0x123456789aULL, { 7, 8, 9 } };
	return 0;
}

static uint8_t *save(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	assert_int_equal(state_stream_save(f), 0);
	fclose(f);
	return (uint8_t *)buf;
}

static void test_round_trip(void **state)
{
	size_t len, len2;
	uint8_t *s1 = save(&len), *s2;
	char err[256];

	memset(&a0, 0, sizeof(a0));
	memset(&a1, 0, sizeof(a1));
	memset(&b0, 0, sizeof(b0));
	assert_int_equal(state_stream_load(s1, len, err, sizeof(err)), 0);
	assert_int_equal(a1.regs[3], 23);
	assert_int_equal(b0.clock, 0x123456789aULL);
	assert_true(a0.on);
	s2 = save(&len2);
	assert_int_equal(len, len2);
	assert_memory_equal(s1, s2, len);
	free(s1);
	free(s2);
}

static void test_dump_uses_embedded_schema(void **state)
{
	size_t len;
	uint8_t *s = save(&len);
	char *out = NULL, err[256];
	size_t outlen;
	FILE *f = open_memstream(&out, &outlen);

	assert_int_equal(state_stream_dump(s, len, f, err, sizeof(err)), 0);
	fclose(f);
	assert_non_null(strstr(out, "[dev_a instance 1 version 2]"));
	assert_non_null(strstr(out, "  regs (u32[4]) = 0x14 0x15 0x16 0x17\n"));
	assert_non_null(strstr(out, "  clock (u64) = 0x123456789a\n"));
	free(out);
	free(s);
}

static void test_bad_value_loads_nothing(void **state)
{
	size_t len;
	uint8_t *s = save(&len);
	char err[256];
	uint8_t *p;

	/* dev_a instance 1 comes second: corrupt its idx (bound 3) */
	p = memmem(s, len, "dev_a", 5);
	p = memmem(p + 5, len - (p + 5 - s), "dev_a", 5);
	assert_non_null(p);
	p = memmem(p, len - (p - s), "on", 2) + 2 + 1 + 4 + 4;	/* type, count, len */
	assert_int_equal(*p, 3);
	*p = 9;
	a0.regs[0] = 99;
	assert_int_not_equal(state_stream_load(s, len, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "dev_a.idx"));
	/* the first section validated but must not have been applied either */
	assert_int_equal(a0.regs[0], 99);
	free(s);
}

static void test_schema_mismatch_and_garbage(void **state)
{
	size_t len;
	uint8_t *s = save(&len), *p;
	char err[256];

	assert_int_not_equal(state_stream_load(s, 5, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "not a minikvm state stream"));
	assert_int_not_equal(state_stream_load(s, len - 1, err, sizeof(err)), 0);
	p = memmem(s, len, "regs", 4);
	p[0] = 'R';
	assert_int_not_equal(state_stream_load(s, len, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "Regs"));
	p[0] = 'r';
	p = memmem(s, len, "dev_b", 5);
	p[4] = 'x';
	assert_int_not_equal(state_stream_load(s, len, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "no such device"));
	free(s);
}

static void test_random_mutations_never_crash(void **state)
{
	size_t len;
	uint8_t *s = save(&len), *m = malloc(len);
	char err[256];
	FILE *null = fopen("/dev/null", "w");

	srand(1);
	for (int i = 0; i < 20000; i++) {
		memcpy(m, s, len);
		for (int k = rand() % 4; k >= 0; k--)
			m[rand() % len] = rand();
		size_t cut = (rand() % 8) ? len : (size_t)rand() % len;
		state_stream_load(m, cut, err, sizeof(err));
		state_stream_dump(m, cut, null, err, sizeof(err));
		assert_true(a0.idx <= 3 && a1.idx <= 3);
	}
	fclose(null);
	free(m);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_round_trip, setup),
		cmocka_unit_test_setup(test_dump_uses_embedded_schema, setup),
		cmocka_unit_test_setup(test_bad_value_loads_nothing, setup),
		cmocka_unit_test_setup(test_schema_mismatch_and_garbage, setup),
		cmocka_unit_test_setup(test_random_mutations_never_crash, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
