/* QEMU-style option strings, "[first,]key=value,key2=value2,...", parsed
 * once into items. ",," is a literal comma; an item without '=' is a bare
 * word (QEMU reads a bare "key" as key=on); a bare first word can be given
 * an implied key ("-m 64" is size=64); repeated keys are all kept, in
 * order, and lookups take the last one, as QEMU does. A single trailing
 * comma is ignored, as QEMU does (o->trailing_comma tells stricter
 * callers). This module knows no option: callers name the keys they take. */
#ifndef VMM_OPTS_H
#define VMM_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTS_MAX_ITEMS	64	/* default bound on the items of a string */
#define OPTS_MAX_LEN	4095	/* default bound on its length (bytes) */

struct opt {
	const char *key;	/* unescaped; "" for an empty item or "=value" */
	const char *val;	/* unescaped; NULL for a bare word */
	unsigned index;		/* position in the string, from 0 */
	size_t offset, len;	/* the item as written: spec + offset, len bytes */
};

struct opts {
	const char *spec;	/* the string parsed (not copied: keep it alive) */
	struct opt *items;
	unsigned n;
	bool trailing_comma;	/* the string ended in a lone ',' */
	void *mem;		/* owns items, keys and values */
};

struct opts_syntax {
	const char *implied_key;	/* key of a bare first word (NULL: it stays bare) */
	unsigned max_items;		/* 0: OPTS_MAX_ITEMS */
	size_t max_len;			/* 0: OPTS_MAX_LEN */
};

/* Parse spec (syn NULL: defaults, no implied key). Returns 0, or -E2BIG
 * (too many items), -EMSGSIZE (too long), -ENOMEM, with a one-line reason
 * in err ("too many items (at most 64)") and o empty. "" has no items. */
int opts_parse(struct opts *o, const char *spec, const struct opts_syntax *syn, char *err,
	       size_t errlen);
/* Release what opts_parse allocated (a zeroed o is fine). */
void opts_free(struct opts *o);

/* The last item named key, or NULL. */
const struct opt *opts_find(const struct opts *o, const char *key);
/* The value of the last item named key; "on" for a bare key; NULL if absent. */
const char *opts_get(const struct opts *o, const char *key);
/* Walk every value of key in order: start with *pos = 0; NULL at the end. */
const char *opts_next(const struct opts *o, const char *key, unsigned *pos);
/* opts_get into buf: 1 found, 0 absent (buf untouched), -1 too long for buf. */
int opts_copy(const struct opts *o, const char *key, char *buf, size_t len);
/* Drop every item named key. */
void opts_remove(struct opts *o, const char *key);

/* Is key in the NULL-terminated list? */
bool opts_key_in(const char *key, const char *const *keys);
/* The first item whose key is not in keys, or that is a bare word unless
 * OPTS_BARE_OK; NULL when every item is fine. Empty items are bad. */
#define OPTS_BARE_OK	1u
const struct opt *opts_check_keys(const struct opts *o, const char *const *keys, unsigned flags);

/* Values. Each returns 0 or -1 and leaves *out alone on -1.
 * Booleans as QEMU takes them: on/yes/true/y and off/no/false/n. */
int opts_parse_bool(const char *v, bool *out);
/* A whole number in C syntax (decimal, 0x hex, 0 octal), a digit first,
 * from min to max. */
int opts_parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out);
/* A size: a decimal number (fractions allowed: 1.5G) or 0x hex, then an
 * optional suffix B K M G T (powers of 1024; "KB", "KiB" too);
 * default_suffix applies without one (0 or 'B': bytes). */
int opts_parse_size(const char *v, char default_suffix, uint64_t *out);

/* Typed lookups. Every occurrence of key must parse (QEMU applies each
 * -device property in turn); the last counts. 0 with *out set, or left
 * alone when key is absent; -1 with *bad the first value that does not
 * parse. */
int opts_get_bool(const struct opts *o, const char *key, bool *out, const char **bad);
int opts_get_uint(const struct opts *o, const char *key, uint64_t min, uint64_t max,
		  uint64_t *out, const char **bad);

#endif
