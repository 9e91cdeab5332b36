/* VMDK text descriptor: a defensive line parser (keys version, CID,
 * parentCID, createType, parentFileNameHint and the extent lines) and the
 * renderer used by create. The descriptor is hostile input: every line and
 * name is bounded, numbers are parsed strictly, unknown lines are ignored. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/vmdk.h"

#define DESC_MAX_LINE 4096

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static bool parse_u64_dec(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return false;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool parse_u32_hex(const char *p, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if (n == 0 || n > 8)
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = tolower((unsigned char)p[i]);
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*out = v;
	return true;
}

/* Next whitespace-delimited token in [*p, end). */
static bool next_token(const char **p, const char *end, const char **tok, size_t *n)
{
	const char *s = skip_space(*p, end), *e = s;

	while (e < end && *e != ' ' && *e != '\t')
		e++;
	if (e == s)
		return false;
	*tok = s;
	*n = (size_t)(e - s);
	*p = e;
	return true;
}

static int access_from(const char *t, size_t n)
{
	if (n == 2 && !memcmp(t, "RW", 2))
		return 0;
	if (n == 6 && !memcmp(t, "RDONLY", 6))
		return 1;
	if (n == 8 && !memcmp(t, "NOACCESS", 8))
		return 2;
	return -1;
}

static int parse_extent(const char *p, const char *end, struct vmdk_desc_extent *x,
			const char *fn, unsigned lineno, char *err, size_t errlen)
{
	const char *t;
	size_t n;

	memset(x, 0, sizeof(*x));
	next_token(&p, end, &t, &n);
	x->access = access_from(t, n);
	if (!next_token(&p, end, &t, &n) || !parse_u64_dec(t, n, &x->sectors)) {
		snprintf(err, errlen, "%s: descriptor line %u: invalid extent size", fn, lineno);
		return -EINVAL;
	}
	if (!next_token(&p, end, &t, &n) || n >= sizeof(x->type)) {
		snprintf(err, errlen, "%s: descriptor line %u: invalid extent type", fn, lineno);
		return -EINVAL;
	}
	memcpy(x->type, t, n);
	x->type[n] = 0;
	p = skip_space(p, end);
	if (p < end && *p == '"') {
		const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));

		if (!q || q == p + 1 || (size_t)(q - p - 1) > VMDK_MAX_NAME) {
			snprintf(err, errlen, "%s: descriptor line %u: invalid extent file name",
				 fn, lineno);
			return -EINVAL;
		}
		x->file = strndup(p + 1, (size_t)(q - p - 1));
		if (!x->file)
			return -ENOMEM;
		p = q + 1;
		if (next_token(&p, end, &t, &n) && !parse_u64_dec(t, n, &x->offset)) {
			snprintf(err, errlen, "%s: descriptor line %u: invalid extent offset",
				 fn, lineno);
			return -EINVAL;
		}
	}
	if (next_token(&p, end, &t, &n)) {
		snprintf(err, errlen, "%s: descriptor line %u: trailing text after extent", fn,
			 lineno);
		return -EINVAL;
	}
	if (!x->file && strcmp(x->type, "ZERO")) {
		snprintf(err, errlen, "%s: descriptor line %u: extent without a file name", fn,
			 lineno);
		return -EINVAL;
	}
	return 0;
}

static int parse_key(const char *k, size_t kn, const char *v, size_t vn, struct vmdk_desc *d,
		     const char *fn, unsigned lineno, char *err, size_t errlen)
{
	uint64_t num;

#define KEY_IS(s) (kn == strlen(s) && !strncmp(k, s, kn))
	if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
		v++;
		vn -= 2;
	}
	if (KEY_IS("version")) {
		if (!parse_u64_dec(v, vn, &num) || num < 1 || num > 3) {
			snprintf(err, errlen, "%s: descriptor line %u: unsupported version", fn,
				 lineno);
			return -EINVAL;
		}
		d->version = (uint32_t)num;
	} else if (KEY_IS("CID") || KEY_IS("parentCID")) {
		uint32_t *dst = KEY_IS("CID") ? &d->cid : &d->parent_cid;

		if (!parse_u32_hex(v, vn, dst)) {
			snprintf(err, errlen, "%s: descriptor line %u: invalid %.*s", fn, lineno,
				 (int)kn, k);
			return -EINVAL;
		}
	} else if (KEY_IS("createType") || KEY_IS("parentFileNameHint")) {
		char **dst = KEY_IS("createType") ? &d->create_type : &d->parent_hint;

		if (vn == 0 || vn > VMDK_MAX_NAME || memchr(v, '"', vn)) {
			snprintf(err, errlen, "%s: descriptor line %u: invalid %.*s", fn, lineno,
				 (int)kn, k);
			return -EINVAL;
		}
		free(*dst);
		*dst = strndup(v, vn);
		if (!*dst)
			return -ENOMEM;
	}
#undef KEY_IS
	return 0;
}

static int parse_line(const char *p, const char *end, struct vmdk_desc *d, const char *fn,
		      unsigned lineno, char *err, size_t errlen)
{
	const char *t, *eq;
	size_t n;

	while (end > p && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	p = skip_space(p, end);
	if (p == end || *p == '#')
		return 0;
	if ((size_t)(end - p) > DESC_MAX_LINE) {
		snprintf(err, errlen, "%s: descriptor line %u: too long", fn, lineno);
		return -EINVAL;
	}
	const char *q = p;
	if (next_token(&q, end, &t, &n) && access_from(t, n) >= 0) {
		struct vmdk_desc_extent *arr;

		if (d->nextents >= VMDK_MAX_EXTENTS) {
			snprintf(err, errlen, "%s: descriptor: more than %u extents", fn,
				 VMDK_MAX_EXTENTS);
			return -EINVAL;
		}
		arr = realloc(d->extents, (d->nextents + 1) * sizeof(*arr));
		if (!arr)
			return -ENOMEM;
		d->extents = arr;
		int ret = parse_extent(p, end, &arr[d->nextents], fn, lineno, err, errlen);
		d->nextents++;	/* freed by vmdk_desc_free even when half-parsed */
		return ret;
	}
	eq = memchr(p, '=', (size_t)(end - p));
	if (!eq)
		return 0;		/* not ours: ignore */
	const char *ke = eq;
	while (ke > p && (ke[-1] == ' ' || ke[-1] == '\t'))
		ke--;
	const char *v = skip_space(eq + 1, end);
	return parse_key(p, (size_t)(ke - p), v, (size_t)(end - v), d, fn, lineno, err, errlen);
}

int vmdk_desc_parse(const char *text, size_t len, const char *filename, struct vmdk_desc *d,
		    char *err, size_t errlen)
{
	const char *nul = memchr(text, 0, len);
	const char *p = text, *end = nul ? nul : text + len;
	unsigned lineno = 0;
	int ret;

	memset(d, 0, sizeof(*d));
	d->parent_cid = 0xffffffff;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		lineno++;
		ret = parse_line(p, le, d, filename, lineno, err, errlen);
		if (ret < 0) {
			vmdk_desc_free(d);
			return ret;
		}
		p = nl ? nl + 1 : end;
	}
	if (!d->version) {
		snprintf(err, errlen, "%s: descriptor: missing version", filename);
		vmdk_desc_free(d);
		return -EINVAL;
	}
	return 0;
}

void vmdk_desc_free(struct vmdk_desc *d)
{
	for (unsigned i = 0; i < d->nextents; i++)
		free(d->extents[i].file);
	free(d->extents);
	free(d->create_type);
	free(d->parent_hint);
	memset(d, 0, sizeof(*d));
}

bool vmdk_desc_probe(const uint8_t *buf, size_t len)
{
	const char *p = (const char *)buf, *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *s = skip_space(p, le);

		if (s < le && *s != '#' && *s != '\r') {
			if ((size_t)(le - s) < 7 || memcmp(s, "version", 7))
				return false;
			s = skip_space(s + 7, le);
			if (s == le || *s++ != '=')
				return false;
			s = skip_space(s, le);
			return s < le && *s >= '1' && *s <= '3';
		}
		p = nl ? nl + 1 : end;
	}
	return false;
}

static const char *access_name(int a)
{
	return a == 1 ? "RDONLY" : a == 2 ? "NOACCESS" : "RW";
}

char *vmdk_desc_render(uint32_t cid, uint32_t parent_cid, const char *parent_hint,
		       const char *create_type, uint64_t total_sectors,
		       const struct vmdk_desc_extent *ext, unsigned n)
{
	uint64_t cyl = total_sectors / (16 * 63);
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	if (!f)
		return NULL;
	if (cyl > 16383)
		cyl = 16383;
	fprintf(f, "# Disk DescriptorFile\nversion=1\nCID=%08" PRIx32 "\nparentCID=%08" PRIx32
		"\ncreateType=\"%s\"\n", cid, parent_cid, create_type);
	if (parent_hint)
		fprintf(f, "parentFileNameHint=\"%s\"\n", parent_hint);
	fputs("\n# Extent description\n", f);
	for (unsigned i = 0; i < n; i++) {
		fprintf(f, "%s %" PRIu64 " %s", access_name(ext[i].access), ext[i].sectors,
			ext[i].type);
		if (ext[i].file)
			fprintf(f, " \"%s\"", ext[i].file);
		if (!strcmp(ext[i].type, "FLAT"))
			fprintf(f, " %" PRIu64, ext[i].offset);
		fputc('\n', f);
	}
	fprintf(f, "\n# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n"
		"ddb.geometry.cylinders = \"%" PRIu64 "\"\nddb.geometry.heads = \"16\"\n"
		"ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n", cyl);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
