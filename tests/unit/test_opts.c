/* Unit tests for vmm/opts.c, the QEMU-style option string parser: ",,"
 * escaping, bare keys, the implied first key, repeated keys (the last
 * wins), empty items, limits, key checks, booleans, numbers and sizes. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "vmm/opts.h"

static struct opts o;
static char err[128];

static int parse(const char *spec, const char *implied_key)
{
	const struct opts_syntax syn = { .implied_key = implied_key };

	opts_free(&o);
	err[0] = 0;
	return opts_parse(&o, spec, &syn, err, sizeof(err));
}

static int teardown(void **state)
{
	opts_free(&o);
	return 0;
}

/* The item as written in the source string. */
static const char *raw(const struct opt *it)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%.*s", (int)it->len, o.spec + it->offset);
	return buf;
}

static void test_items(void **state)
{
	assert_int_equal(parse("a=1,b,c=", NULL), 0);
	assert_int_equal(o.n, 3);
	assert_string_equal(o.items[0].key, "a");
	assert_string_equal(o.items[0].val, "1");
	assert_string_equal(o.items[1].key, "b");
	assert_null(o.items[1].val);
	assert_string_equal(o.items[2].key, "c");
	assert_string_equal(o.items[2].val, "");
	assert_int_equal(o.items[2].index, 2);
	assert_int_equal(o.items[2].offset, 6);
	assert_string_equal(raw(&o.items[2]), "c=");
	assert_false(o.trailing_comma);
	/* The first '=' splits: the rest belongs to the value. */
	assert_int_equal(parse("k=a=b", NULL), 0);
	assert_string_equal(o.items[0].key, "k");
	assert_string_equal(o.items[0].val, "a=b");
	assert_int_equal(parse("", NULL), 0);
	assert_int_equal(o.n, 0);
}

static void test_escaping(void **state)
{
	assert_int_equal(parse("file=a,,b.img,if=none", NULL), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(opts_get(&o, "file"), "a,b.img");
	assert_string_equal(raw(&o.items[0]), "file=a,,b.img");
	assert_string_equal(opts_get(&o, "if"), "none");
	/* ",,," is a comma, then the separator. */
	assert_int_equal(parse("file=x,,,id=d", NULL), 0);
	assert_string_equal(opts_get(&o, "file"), "x,");
	assert_string_equal(opts_get(&o, "id"), "d");
	/* An escaped comma never separates: "if=x" is part of the value. */
	assert_int_equal(parse("file=,,if=x,,", NULL), 0);
	assert_int_equal(o.n, 1);
	assert_string_equal(opts_get(&o, "file"), ",if=x,");
	assert_null(opts_get(&o, "if"));
	/* In a bare word and in a key too. */
	assert_int_equal(parse("a,,b,c,,d=e", NULL), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.items[0].key, "a,b");
	assert_string_equal(o.items[1].key, "c,d");
	assert_string_equal(o.items[1].val, "e");
	assert_int_equal(o.items[1].offset, 5);
}

static void test_bare_keys(void **state)
{
	assert_int_equal(parse("user,restrict,ipv6=off", NULL), 0);
	assert_null(o.items[1].val);
	assert_string_equal(opts_get(&o, "restrict"), "on");	/* QEMU: key=on */
	assert_string_equal(opts_find(&o, "restrict")->key, "restrict");
	assert_null(opts_get(&o, "ipv4"));
	assert_null(opts_find(&o, "ipv4"));
	/* Only a whole key matches. */
	assert_int_equal(parse("ifx=1,xif=2", NULL), 0);
	assert_null(opts_get(&o, "if"));
}

static void test_implied_key(void **state)
{
	assert_int_equal(parse("64M,slots=2", "size"), 0);
	assert_string_equal(o.items[0].key, "size");
	assert_string_equal(opts_get(&o, "size"), "64M");
	/* Only a bare first word gets it. */
	assert_int_equal(parse("size=2G", "size"), 0);
	assert_string_equal(opts_get(&o, "size"), "2G");
	assert_int_equal(parse("cd,menu", "order"), 0);
	assert_string_equal(opts_get(&o, "order"), "cd");
	assert_null(o.items[1].val);
	assert_string_equal(o.items[1].key, "menu");
	/* Its value is unescaped like any other. */
	assert_int_equal(parse("a,,b,c=d", "type"), 0);
	assert_string_equal(opts_get(&o, "type"), "a,b");
	/* Without one the first word stays bare. */
	assert_int_equal(parse("host,+x2apic", NULL), 0);
	assert_string_equal(o.items[0].key, "host");
	assert_null(o.items[0].val);
}

static void test_repeated_keys(void **state)
{
	unsigned pos = 0;

	assert_int_equal(parse("a=1,b=2,a=3,a", NULL), 0);
	assert_int_equal(o.n, 4);
	assert_string_equal(opts_get(&o, "a"), "on");	/* the last one wins */
	assert_int_equal(opts_find(&o, "a")->index, 3);
	assert_string_equal(opts_next(&o, "a", &pos), "1");
	assert_string_equal(opts_next(&o, "a", &pos), "3");
	assert_string_equal(opts_next(&o, "a", &pos), "on");
	assert_null(opts_next(&o, "a", &pos));
	assert_null(opts_next(&o, "a", &pos));
	opts_remove(&o, "a");
	assert_int_equal(o.n, 1);
	assert_string_equal(o.items[0].key, "b");
	assert_int_equal(o.items[0].index, 1);	/* keeps its position */
	assert_null(opts_get(&o, "a"));
}

static void test_empty_items(void **state)
{
	/* A leading comma makes an empty first item. */
	assert_int_equal(parse(",a=1", "size"), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.items[0].key, "");
	assert_null(o.items[0].val);
	assert_int_equal(o.items[0].len, 0);
	/* A lone trailing comma is dropped (QEMU) but noted. */
	assert_int_equal(parse("a=1,", NULL), 0);
	assert_int_equal(o.n, 1);
	assert_true(o.trailing_comma);
	assert_int_equal(parse("a=1,,", NULL), 0);	/* an escaped comma is not */
	assert_false(o.trailing_comma);
	assert_string_equal(opts_get(&o, "a"), "1,");
	assert_int_equal(parse(",", NULL), 0);
	assert_int_equal(o.n, 1);
	assert_true(o.trailing_comma);
	/* "=v": a value without a key. */
	assert_int_equal(parse("a=1,=3", NULL), 0);
	assert_string_equal(o.items[1].key, "");
	assert_string_equal(o.items[1].val, "3");
}

static void test_limits(void **state)
{
	char big[OPTS_MAX_LEN + 2];
	struct opts_syntax syn = { .max_items = 3, .max_len = 8 };

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(parse(big, NULL), -EMSGSIZE);
	assert_string_equal(err, "argument too long (at most 4095 characters)");
	assert_int_equal(o.n, 0);
	big[OPTS_MAX_LEN] = 0;
	assert_int_equal(parse(big, NULL), 0);
	assert_int_equal(o.n, 1);

	opts_free(&o);
	assert_int_equal(opts_parse(&o, "a,b,c", &syn, err, sizeof(err)), 0);
	opts_free(&o);
	assert_int_equal(opts_parse(&o, "a,b,c,d", &syn, err, sizeof(err)), -E2BIG);
	assert_string_equal(err, "too many items (at most 3)");
	assert_null(o.items);
	/* Escaped commas and a trailing comma are no items. */
	assert_int_equal(opts_parse(&o, "a,,b,c,d", &syn, err, sizeof(err)), 0);
	opts_free(&o);
	assert_int_equal(opts_parse(&o, "a,b,c,", &syn, err, sizeof(err)), 0);
	assert_int_equal(o.n, 3);
	opts_free(&o);
	assert_int_equal(opts_parse(&o, "a=bcdefgh", &syn, err, sizeof(err)), -EMSGSIZE);
	assert_string_equal(err, "argument too long (at most 8 characters)");

	char many[2 * OPTS_MAX_ITEMS + 2] = "";
	for (int i = 0; i <= OPTS_MAX_ITEMS; i++)
		strcat(many, i ? ",a" : "a");
	assert_int_equal(parse(many, NULL), -E2BIG);
	many[strlen(many) - 2] = 0;
	assert_int_equal(parse(many, NULL), 0);
	assert_int_equal(o.n, OPTS_MAX_ITEMS);
}

static void test_copy(void **state)
{
	char v[8];

	assert_int_equal(parse("file=0123456,id=01234567,if=", NULL), 0);
	assert_int_equal(opts_copy(&o, "file", v, sizeof(v)), 1);
	assert_string_equal(v, "0123456");
	assert_int_equal(opts_copy(&o, "id", v, sizeof(v)), -1);
	assert_int_equal(opts_copy(&o, "if", v, sizeof(v)), 1);
	assert_string_equal(v, "");
	strcpy(v, "keep");
	assert_int_equal(opts_copy(&o, "format", v, sizeof(v)), 0);
	assert_string_equal(v, "keep");
}

static void test_bad_keys(void **state)
{
	static const char *const keys[] = { "drive", "addr", "packed", NULL };
	const struct opt *bad;

	assert_int_equal(parse("drive=d0,addr=5", NULL), 0);
	assert_null(opts_check_keys(&o, keys, 0));
	assert_int_equal(parse("drive=d0,foo=1,bar=2", NULL), 0);
	bad = opts_check_keys(&o, keys, 0);
	assert_non_null(bad);
	assert_string_equal(bad->key, "foo");
	assert_string_equal(raw(bad), "foo=1");
	/* Bare words only with OPTS_BARE_OK. */
	assert_int_equal(parse("drive=d0,packed", NULL), 0);
	assert_string_equal(opts_check_keys(&o, keys, 0)->key, "packed");
	assert_null(opts_check_keys(&o, keys, OPTS_BARE_OK));
	/* Empty items never pass; the escaped text is shown as written. */
	assert_int_equal(parse(",drive=d0", NULL), 0);
	assert_string_equal(raw(opts_check_keys(&o, keys, OPTS_BARE_OK)), "");
	assert_int_equal(parse("drive=d0,bo,,gus=1", NULL), 0);
	assert_string_equal(raw(opts_check_keys(&o, keys, 0)), "bo,,gus=1");
	assert_true(opts_key_in("addr", keys));
	assert_false(opts_key_in("add", keys));
	assert_false(opts_key_in("addr", NULL));
}

static void test_booleans(void **state)
{
	static const char *const on[] = { "on", "yes", "true", "y" };
	static const char *const off[] = { "off", "no", "false", "n" };
	static const char *const bad[] = { "", "On", "1", "0", "onn", "maybe", " on" };
	bool b;

	for (unsigned i = 0; i < 4; i++) {
		b = false;
		assert_int_equal(opts_parse_bool(on[i], &b), 0);
		assert_true(b);
		assert_int_equal(opts_parse_bool(off[i], &b), 0);
		assert_false(b);
	}
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = true;
		if (opts_parse_bool(bad[i], &b) != -1 || !b)
			fail_msg("'%s' read as a boolean", bad[i]);
	}
	assert_int_equal(opts_parse_bool(NULL, &b), -1);
}

static void test_typed_lookups(void **state)
{
	const char *bad = NULL;
	uint64_t n = 7;
	bool b = false;

	assert_int_equal(parse("packed=on,packed=off,mq,q=4,q=0x10", NULL), 0);
	assert_int_equal(opts_get_bool(&o, "packed", &b, &bad), 0);
	assert_false(b);				/* the last counts */
	assert_int_equal(opts_get_bool(&o, "mq", &b, &bad), 0);
	assert_true(b);					/* bare: on */
	b = true;
	assert_int_equal(opts_get_bool(&o, "csum", &b, &bad), 0);
	assert_true(b);					/* absent: untouched */
	assert_int_equal(opts_get_uint(&o, "q", 1, 16, &n, &bad), 0);
	assert_int_equal(n, 16);
	assert_int_equal(opts_get_uint(&o, "vectors", 1, 16, &n, &bad), 0);
	assert_int_equal(n, 16);
	/* Every occurrence must parse, as QEMU applies each in turn. */
	assert_int_equal(parse("packed=maybe,packed=on,q=99,q=1", NULL), 0);
	b = false;
	assert_int_equal(opts_get_bool(&o, "packed", &b, &bad), -1);
	assert_string_equal(bad, "maybe");
	assert_false(b);
	assert_int_equal(opts_get_uint(&o, "q", 1, 16, &n, &bad), -1);
	assert_string_equal(bad, "99");
	assert_int_equal(n, 16);
}

static void test_uints(void **state)
{
	uint64_t n = 5;

	assert_int_equal(opts_parse_uint("0", 0, 10, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(opts_parse_uint("0x1f", 0, 100, &n), 0);
	assert_int_equal(n, 31);
	assert_int_equal(opts_parse_uint("010", 0, 100, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(opts_parse_uint("18446744073709551615", 0, UINT64_MAX, &n), 0);
	assert_int_equal(n, UINT64_MAX);
	n = 5;
	assert_int_equal(opts_parse_uint("18446744073709551616", 0, UINT64_MAX, &n), -1);
	assert_int_equal(opts_parse_uint("11", 0, 10, &n), -1);
	assert_int_equal(opts_parse_uint("1", 2, 10, &n), -1);
	assert_int_equal(opts_parse_uint("-1", 0, UINT64_MAX, &n), -1);
	assert_int_equal(opts_parse_uint("+1", 0, 10, &n), -1);
	assert_int_equal(opts_parse_uint(" 1", 0, 10, &n), -1);
	assert_int_equal(opts_parse_uint("1k", 0, 10000, &n), -1);
	assert_int_equal(opts_parse_uint("", 0, 10, &n), -1);
	assert_int_equal(opts_parse_uint(NULL, 0, 10, &n), -1);
	assert_int_equal(n, 5);
}

static void test_sizes(void **state)
{
	static const struct {
		const char *in;
		char def;
		uint64_t out;
	} good[] = {
		{ "512", 0, 512 }, { "512", 'B', 512 }, { "64", 'M', 64ULL << 20 },
		{ "4k", 'M', 4096 }, { "4K", 0, 4096 }, { "1.5G", 0, 3ULL << 29 },
		{ "32MiB", 0, 32ULL << 20 }, { "32mb", 0, 32ULL << 20 }, { "1T", 'M', 1ULL << 40 },
		{ "0x10", 'K', 16 << 10 }, { "7B", 'M', 7 }, { "0", 'M', 0 },
	};
	static const char *const bad[] = {
		"", "-5", " 1", "+1", ".5M", "1MX", "1Q", "1MM", "k", "nan", "inf", "1e3",
		"0x1p4", "0x1.8", "99999999999T", "16384P",
	};
	uint64_t v;

	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		if (opts_parse_size(good[i].in, good[i].def, &v) < 0 || v != good[i].out)
			fail_msg("'%s': %llu, expected %llu", good[i].in, (unsigned long long)v,
				 (unsigned long long)good[i].out);
	}
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 1;
		if (opts_parse_size(bad[i], 'M', &v) != -1 || v != 1)
			fail_msg("'%s' read as a size", bad[i]);
	}
	assert_int_equal(opts_parse_size("16E", 0, &v), -1);	/* no exabytes */
	assert_int_equal(opts_parse_size(NULL, 0, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_items, teardown),
		cmocka_unit_test_teardown(test_escaping, teardown),
		cmocka_unit_test_teardown(test_bare_keys, teardown),
		cmocka_unit_test_teardown(test_implied_key, teardown),
		cmocka_unit_test_teardown(test_repeated_keys, teardown),
		cmocka_unit_test_teardown(test_empty_items, teardown),
		cmocka_unit_test_teardown(test_limits, teardown),
		cmocka_unit_test_teardown(test_copy, teardown),
		cmocka_unit_test_teardown(test_bad_keys, teardown),
		cmocka_unit_test_teardown(test_booleans, teardown),
		cmocka_unit_test_teardown(test_typed_lookups, teardown),
		cmocka_unit_test(test_uints),
		cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
