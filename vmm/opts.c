/* QEMU-style option strings: one parse into items (",," unescaped, bare
 * words, an implied first key), lookups where the last occurrence wins,
 * key checks, and the value parsers (booleans, numbers, sizes) that the
 * command line, the network backends and the device models share. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/opts.h"

/* Count the items of spec (a lone trailing comma ends the last one). */
static unsigned count_items(const char *spec, bool *trailing_comma)
{
	unsigned n = *spec ? 1 : 0;

	*trailing_comma = false;
	for (const char *p = spec; *p; p++) {
		if (*p != ',')
			continue;
		if (p[1] == ',') {
			p++;	/* ",," is a comma, not a separator */
		} else if (!p[1]) {
			*trailing_comma = true;
		} else {
			n++;
		}
	}
	return n;
}

/* Copy the item at *p into out, unescaping ",,", and move *p to where
 * it ends (its lone ',' or the end of the string). Returns the bytes
 * written, the terminating zero included. */
static size_t unescape_item(const char **p, char *out)
{
	const char *s = *p;
	size_t n = 0;

	while (*s && !(*s == ',' && s[1] != ',')) {
		out[n++] = *s;
		s += *s == ',' ? 2 : 1;
	}
	out[n++] = 0;
	*p = s;
	return n;
}

static void split_item(struct opt *it, char *text, unsigned index, const char *implied_key)
{
	char *eq = strchr(text, '=');

	it->key = text;
	it->val = NULL;
	if (eq) {
		*eq = 0;
		it->val = eq + 1;
	} else if (index == 0 && implied_key && *text) {
		it->key = implied_key;
		it->val = text;
	}
}

int opts_parse(struct opts *o, const char *spec, const struct opts_syntax *syn, char *err,
	       size_t errlen)
{
	size_t max_len = syn && syn->max_len ? syn->max_len : OPTS_MAX_LEN;
	unsigned max_items = syn && syn->max_items ? syn->max_items : OPTS_MAX_ITEMS;
	size_t len = strlen(spec);
	const char *p = spec;
	bool trailing;
	unsigned n;
	char *text;

	memset(o, 0, sizeof(*o));
	if (len > max_len) {
		snprintf(err, errlen, "argument too long (at most %zu characters)", max_len);
		return -EMSGSIZE;
	}
	n = count_items(spec, &trailing);
	if (n > max_items) {
		snprintf(err, errlen, "too many items (at most %u)", max_items);
		return -E2BIG;
	}
	o->mem = malloc(n * sizeof(struct opt) + len + 1);
	if (!o->mem) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	o->spec = spec;
	o->items = o->mem;
	o->n = n;
	o->trailing_comma = trailing;
	text = (char *)(o->items + n);
	for (unsigned i = 0; i < n; i++) {
		struct opt *it = &o->items[i];
		const char *start = p;
		size_t used = unescape_item(&p, text);

		it->index = i;
		it->offset = start - spec;
		it->len = p - start;
		split_item(it, text, i, syn ? syn->implied_key : NULL);
		text += used;
		if (*p)
			p++;	/* the separator */
	}
	return 0;
}

void opts_free(struct opts *o)
{
	free(o->mem);
	memset(o, 0, sizeof(*o));
}

const struct opt *opts_find(const struct opts *o, const char *key)
{
	for (unsigned i = o->n; i-- > 0;)
		if (!strcmp(o->items[i].key, key))
			return &o->items[i];
	return NULL;
}

/* QEMU's flag shorthand: a bare "key" is key=on. */
static const char *value_of(const struct opt *it)
{
	return it->val ? it->val : "on";
}

const char *opts_get(const struct opts *o, const char *key)
{
	const struct opt *it = opts_find(o, key);

	return it ? value_of(it) : NULL;
}

const char *opts_next(const struct opts *o, const char *key, unsigned *pos)
{
	for (; *pos < o->n; (*pos)++)
		if (!strcmp(o->items[*pos].key, key))
			return value_of(&o->items[(*pos)++]);
	return NULL;
}

int opts_copy(const struct opts *o, const char *key, char *buf, size_t len)
{
	const char *v = opts_get(o, key);

	if (!v)
		return 0;
	if (strlen(v) >= len)
		return -1;
	memcpy(buf, v, strlen(v) + 1);
	return 1;
}

void opts_remove(struct opts *o, const char *key)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < o->n; i++)
		if (strcmp(o->items[i].key, key))
			o->items[kept++] = o->items[i];
	o->n = kept;
}

bool opts_key_in(const char *key, const char *const *keys)
{
	for (; keys && *keys; keys++)
		if (!strcmp(*keys, key))
			return true;
	return false;
}

const struct opt *opts_check_keys(const struct opts *o, const char *const *keys, unsigned flags)
{
	for (unsigned i = 0; i < o->n; i++) {
		const struct opt *it = &o->items[i];

		if (!opts_key_in(it->key, keys) || (!it->val && !(flags & OPTS_BARE_OK)))
			return it;
	}
	return NULL;
}

/* ---- values ---- */

int opts_parse_bool(const char *v, bool *out)
{
	static const char *const on[] = { "on", "yes", "true", "y" };
	static const char *const off[] = { "off", "no", "false", "n" };

	for (unsigned i = 0; v && i < sizeof(on) / sizeof(on[0]); i++) {
		if (!strcmp(v, on[i]) || !strcmp(v, off[i])) {
			*out = !strcmp(v, on[i]);
			return 0;
		}
	}
	return -1;
}

int opts_parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long n;
	char *end;

	if (!v || !isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || *end || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static int size_multiplier(char suffix, uint64_t *mult)
{
	static const char units[] = "BKMGT";
	const char *u = suffix ? strchr(units, toupper((unsigned char)suffix)) : units;

	if (!u)
		return -1;
	*mult = 1ULL << (10 * (u - units));
	return 0;
}

/* After the suffix letter: nothing, "B" or "iB" (case-insensitive). */
static bool suffix_tail_ok(const char *t)
{
	if (!*t)
		return true;
	if (toupper((unsigned char)*t) == 'I')
		t++;
	return toupper((unsigned char)t[0]) == 'B' && !t[1];
}

/* strtod reads more than sizes allow: exponents ("1e3"), hex fractions
 * and binary exponents ("0x1.8p1"). */
static bool plain_number(const char *s, const char *end)
{
	bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *bad = hex ? ".pP" : "eE";

	for (const char *p = s; p < end; p++)
		if (strchr(bad, *p))
			return false;
	return true;
}

int opts_parse_size(const char *v, char default_suffix, uint64_t *out)
{
	uint64_t mult;
	char *end;
	double x;

	if (!v || !isdigit((unsigned char)*v))
		return -1;
	errno = 0;
	x = strtod(v, &end);
	if (errno || !plain_number(v, end))
		return -1;
	if (*end && !suffix_tail_ok(end + 1))
		return -1;
	if (size_multiplier(*end ? *end : default_suffix, &mult) < 0)
		return -1;
	if (x * mult >= 18446744073709551615.0)
		return -1;
	*out = (uint64_t)(x * mult);
	return 0;
}

/* ---- typed lookups ---- */

int opts_get_bool(const struct opts *o, const char *key, bool *out, const char **bad)
{
	unsigned pos = 0;
	const char *v;
	bool b = false, found = false;

	while ((v = opts_next(o, key, &pos))) {
		if (opts_parse_bool(v, &b) < 0) {
			*bad = v;
			return -1;
		}
		found = true;
	}
	if (found)
		*out = b;
	return 0;
}

int opts_get_uint(const struct opts *o, const char *key, uint64_t min, uint64_t max,
		  uint64_t *out, const char **bad)
{
	unsigned pos = 0;
	const char *v;
	uint64_t n = 0;
	bool found = false;

	while ((v = opts_next(o, key, &pos))) {
		if (opts_parse_uint(v, min, max, &n) < 0) {
			*bad = v;
			return -1;
		}
		found = true;
	}
	if (found)
		*out = n;
	return 0;
}
