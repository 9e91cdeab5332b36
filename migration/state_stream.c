/* Reading and writing the self-describing device-state stream (see
 * state_stream.h). Input is hostile: every length is bounded before use. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "migration/state_stream.h"
#include "vmm/vmstate.h"

#define MAGIC "MKVMSTAT"
#define MAX_STR 255
#define MAX_FIELDS 4096
#define MAX_SECTION (16u << 20)

static const char *const type_names[] = {
	[VMS_U8] = "u8", [VMS_U16] = "u16", [VMS_U32] = "u32",
	[VMS_U64] = "u64", [VMS_I64] = "i64", [VMS_BOOL] = "bool",
};
static const unsigned type_width[] = {
	[VMS_U8] = 1, [VMS_U16] = 2, [VMS_U32] = 4, [VMS_U64] = 8, [VMS_I64] = 8, [VMS_BOOL] = 1,
};

static void put_u(FILE *f, uint64_t v, unsigned width)
{
	for (unsigned i = 0; i < width; i++)
		fputc((v >> (8 * i)) & 0xff, f);
}

static void put_str(FILE *f, const char *s)
{
	size_t n = strlen(s);

	if (n > MAX_STR)
		n = MAX_STR;
	put_u(f, n, 2);
	fwrite(s, 1, n, f);
}

int state_stream_save(FILE *out)
{
	fwrite(MAGIC, 1, 8, out);
	put_u(out, STATE_STREAM_VERSION, 4);
	for (struct vmstate_entry *e = vmstate_entries(); e; e = e->next) {
		const struct vmstate_desc *d = e->desc;
		size_t len = vmstate_size(d);
		uint8_t *buf = malloc(len ? len : 1);
		if (!buf)
			return -ENOMEM;
		vmstate_save(d, e->opaque, buf);
		put_u(out, 1, 1);
		put_str(out, d->name);
		put_u(out, e->instance, 4);
		put_u(out, d->version, 4);
		put_u(out, d->nfields, 4);
		for (size_t i = 0; i < d->nfields; i++) {
			put_str(out, d->fields[i].name);
			put_u(out, d->fields[i].type, 1);
			put_u(out, d->fields[i].count, 4);
		}
		put_u(out, len, 4);
		fwrite(buf, 1, len, out);
		free(buf);
	}
	put_u(out, 0, 1);
	return ferror(out) ? -EIO : 0;
}

/* A bounds-checked reader over the stream. */
struct reader {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint64_t get_u(struct reader *r, unsigned width)
{
	uint64_t v = 0;

	if (r->bad || r->left < width) {
		r->bad = true;
		return 0;
	}
	for (unsigned i = 0; i < width; i++)
		v |= (uint64_t)r->p[i] << (8 * i);
	r->p += width;
	r->left -= width;
	return v;
}

static void get_str(struct reader *r, char out[MAX_STR + 1])
{
	size_t n = get_u(r, 2);

	if (r->bad || n > MAX_STR || r->left < n) {
		r->bad = true;
		out[0] = 0;
		return;
	}
	memcpy(out, r->p, n);
	out[n] = 0;
	r->p += n;
	r->left -= n;
}

struct section {
	char name[MAX_STR + 1];
	uint32_t instance, version, nfields, len;
	const uint8_t *schema;	/* start of the field list */
	size_t schema_len;
	const uint8_t *data;
};

/* Parse one section header and schema; the schema bytes are kept for a
 * second pass. Returns 1 for a section, 0 at the end, -1 on error. */
static int next_section(struct reader *r, struct section *s, char *err, size_t errlen)
{
	uint8_t tag = get_u(r, 1);

	if (r->bad) {
		snprintf(err, errlen, "stream truncated (no end marker)");
		return -1;
	}
	if (tag == 0)
		return 0;
	if (tag != 1) {
		snprintf(err, errlen, "bad section tag %u", tag);
		return -1;
	}
	get_str(r, s->name);
	s->instance = get_u(r, 4);
	s->version = get_u(r, 4);
	s->nfields = get_u(r, 4);
	if (r->bad || s->nfields > MAX_FIELDS) {
		snprintf(err, errlen, "section '%s': bad header", s->name);
		return -1;
	}
	s->schema = r->p;
	uint64_t data_len = 0;
	for (uint32_t i = 0; i < s->nfields; i++) {
		char fname[MAX_STR + 1];
		get_str(r, fname);
		unsigned type = get_u(r, 1);
		uint64_t count = get_u(r, 4);
		if (r->bad || type > VMS_BOOL || count == 0 || count > MAX_SECTION) {
			snprintf(err, errlen, "section '%s': bad field %u", s->name, i);
			return -1;
		}
		data_len += type_width[type] * count;
	}
	s->schema_len = r->p - s->schema;
	s->len = get_u(r, 4);
	if (r->bad || s->len != data_len || s->len > MAX_SECTION || r->left < s->len) {
		snprintf(err, errlen, "section '%s': data length does not match its fields", s->name);
		return -1;
	}
	s->data = r->p;
	r->p += s->len;
	r->left -= s->len;
	return 1;
}

static int check_header(struct reader *r, char *err, size_t errlen)
{
	if (r->left < 12 || memcmp(r->p, MAGIC, 8)) {
		snprintf(err, errlen, "not a minikvm state stream");
		return -1;
	}
	r->p += 8;
	r->left -= 8;
	uint32_t v = get_u(r, 4);
	if (v != STATE_STREAM_VERSION) {
		snprintf(err, errlen, "state stream version %u, this minikvm reads %u", v,
			 STATE_STREAM_VERSION);
		return -1;
	}
	return 0;
}

static struct vmstate_entry *find_entry(const char *name, uint32_t instance)
{
	for (struct vmstate_entry *e = vmstate_entries(); e; e = e->next)
		if (!strcmp(e->desc->name, name) && e->instance == instance)
			return e;
	return NULL;
}

/* The stream's schema must be exactly this binary's table. */
static int schema_matches(const struct section *s, const struct vmstate_desc *d,
			  char *err, size_t errlen)
{
	struct reader r = { s->schema, s->schema_len, false };

	if (s->version != d->version || s->nfields != d->nfields) {
		snprintf(err, errlen, "section '%s': version %u with %u fields, expected "
			 "version %u with %zu", s->name, s->version, s->nfields, d->version,
			 d->nfields);
		return -1;
	}
	for (size_t i = 0; i < d->nfields; i++) {
		char fname[MAX_STR + 1];
		get_str(&r, fname);
		unsigned type = get_u(&r, 1);
		uint64_t count = get_u(&r, 4);
		if (strcmp(fname, d->fields[i].name) || type != d->fields[i].type ||
		    count != d->fields[i].count) {
			snprintf(err, errlen, "section '%s': field %zu is %s, expected %s",
				 s->name, i, fname, d->fields[i].name);
			return -1;
		}
	}
	return 0;
}

int state_stream_load(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	for (int apply = 0; apply < 2; apply++) {
		struct reader r = { buf, len, false };
		struct section s;
		int got;

		if (check_header(&r, err, errlen) < 0)
			return -EINVAL;
		while ((got = next_section(&r, &s, err, errlen)) > 0) {
			struct vmstate_entry *e = find_entry(s.name, s.instance);
			if (!e) {
				snprintf(err, errlen, "section '%s' instance %u: no such device",
					 s.name, s.instance);
				return -EINVAL;
			}
			if (schema_matches(&s, e->desc, err, errlen) < 0)
				return -EINVAL;
			if (!apply && vmstate_validate(e->desc, e->opaque, e->obj_size, s.data,
						       s.len, err, errlen) < 0)
				return -EINVAL;
			if (apply && vmstate_load(e->desc, e->opaque, e->obj_size, s.data,
						  s.len, err, errlen) < 0)
				return -EINVAL;
		}
		if (got < 0)
			return -EINVAL;
	}
	return 0;
}

int state_stream_dump(const uint8_t *buf, size_t len, FILE *out, char *err, size_t errlen)
{
	struct reader r = { buf, len, false };
	struct section s;
	int got;

	if (check_header(&r, err, errlen) < 0)
		return -EINVAL;
	while ((got = next_section(&r, &s, err, errlen)) > 0) {
		struct reader schema = { s.schema, s.schema_len, false };
		struct reader data = { s.data, s.len, false };
		fprintf(out, "[%s instance %u version %u]\n", s.name, s.instance, s.version);
		for (uint32_t i = 0; i < s.nfields; i++) {
			char fname[MAX_STR + 1];
			get_str(&schema, fname);
			unsigned type = get_u(&schema, 1);
			uint32_t count = get_u(&schema, 4);
			fprintf(out, "  %s (%s", fname, type_names[type]);
			if (count > 1)
				fprintf(out, "[%u]", count);
			fprintf(out, ") =");
			for (uint32_t k = 0; k < count; k++)
				fprintf(out, " 0x%" PRIx64, get_u(&data, type_width[type]));
			fputc('\n', out);
		}
	}
	return got < 0 ? -EINVAL : 0;
}
