/* The generic ACPI encoding layer of vmm/acpi_aml.h: the growable byte
 * buffer and table checksum, the AML emitter and the resource-template
 * encoders. Machine-specific content lives in vmm/acpi.c. */
#include <stdlib.h>
#include <string.h>

#include "vmm/acpi_aml.h"

/* ---- growable byte buffer, checksum ---- */

static bool acpi_buf_grow(struct acpi_buf *b, size_t more)
{
	size_t cap;
	uint8_t *d;

	if (b->oom)
		return false;
	if (b->len + more <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more)
		cap *= 2;
	d = realloc(b->d, cap);
	if (!d) {
		b->oom = true;
		return false;
	}
	memset(d + b->cap, 0, cap - b->cap);
	b->d = d;
	b->cap = cap;
	return true;
}

void acpi_buf_put(struct acpi_buf *b, const void *p, size_t n)
{
	if (!acpi_buf_grow(b, n))
		return;
	memcpy(b->d + b->len, p, n);
	b->len += n;
}

void acpi_buf_zero(struct acpi_buf *b, size_t n)
{
	if (!acpi_buf_grow(b, n))
		return;
	memset(b->d + b->len, 0, n);
	b->len += n;
}

void acpi_buf_align(struct acpi_buf *b, size_t align)
{
	acpi_buf_zero(b, (align - b->len % align) % align);
}

void acpi_buf_le(struct acpi_buf *b, uint64_t v, unsigned bytes)
{
	uint8_t tmp[8];

	for (unsigned i = 0; i < bytes; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	acpi_buf_put(b, tmp, bytes);
}

void acpi_put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

/* ---- AML emitter (ACPI 6.x chapter 20) ---- */

/* Opens a PkgLength-prefixed object: 4 bytes are reserved for the length
 * and shrunk to the minimal encoding by aml_close. */
size_t aml_open(struct acpi_buf *b, uint8_t op)
{
	size_t pos;

	if (op == AML_DEVICE)
		acpi_buf_u8(b, AML_EXT);
	acpi_buf_u8(b, op);
	pos = b->len;
	acpi_buf_zero(b, 4);
	return pos;
}

void aml_close(struct acpi_buf *b, size_t pos)
{
	size_t body, total;
	unsigned n;

	if (b->oom)
		return;
	body = b->len - (pos + 4);
	for (n = 1; n <= 4; n++) {
		total = body + n;
		if ((n == 1 && total < 0x40) || (n > 1 && total < (1ul << (4 + 8 * (n - 1)))))
			break;
	}
	if (n > 4) {		/* > 256 MiB of AML: cannot happen, refuse */
		b->oom = true;
		return;
	}
	if (n == 1) {
		b->d[pos] = (uint8_t)total;
	} else {
		b->d[pos] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
		for (unsigned i = 1; i < n; i++)
			b->d[pos + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(b->d + pos + n, b->d + pos + 4, body);
	b->len -= 4 - n;
}

static void aml_nameseg(struct acpi_buf *b, const char *seg, size_t len)
{
	char s[4] = { '_', '_', '_', '_' };

	memcpy(s, seg, len < 4 ? len : 4);
	acpi_buf_put(b, s, 4);
}

/* "\\_SB.PCI0", "^LNKA", "_HID": root/parent prefixes, then segments. */
void aml_namestring(struct acpi_buf *b, const char *path)
{
	const char *segs[16];
	size_t lens[16];
	unsigned n = 0;

	while (*path == '\\' || *path == '^')
		acpi_buf_u8(b, *path++);
	while (*path && n < 16) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		segs[n] = path;
		lens[n++] = len;
		path += len + (dot ? 1 : 0);
	}
	if (n == 0) {
		acpi_buf_u8(b, 0);		/* NullName */
		return;
	}
	if (n == 2)
		acpi_buf_u8(b, AML_DUAL_NAME);
	else if (n > 2) {
		acpi_buf_u8(b, AML_MULTI_NAME);
		acpi_buf_u8(b, n);
	}
	for (unsigned i = 0; i < n; i++)
		aml_nameseg(b, segs[i], lens[i]);
}

void aml_int(struct acpi_buf *b, uint64_t v)
{
	if (v == 0) {
		acpi_buf_u8(b, AML_ZERO);
	} else if (v == 1) {
		acpi_buf_u8(b, AML_ONE);
	} else if (v <= 0xff) {
		acpi_buf_u8(b, AML_BYTE);
		acpi_buf_u8(b, v);
	} else if (v <= 0xffff) {
		acpi_buf_u8(b, AML_WORD);
		acpi_buf_u16(b, v);
	} else if (v <= 0xffffffffu) {
		acpi_buf_u8(b, AML_DWORD);
		acpi_buf_u32(b, v);
	} else {
		acpi_buf_u8(b, AML_QWORD);
		acpi_buf_u64(b, v);
	}
}

void aml_string(struct acpi_buf *b, const char *s)
{
	acpi_buf_u8(b, AML_STRING);
	acpi_buf_put(b, s, strlen(s) + 1);
}

void aml_buffer(struct acpi_buf *b, const uint8_t *data, size_t len)
{
	size_t pos = aml_open(b, AML_BUFFER);

	aml_int(b, len);
	acpi_buf_put(b, data, len);
	aml_close(b, pos);
}

/* EISAID("PNP0A03"): three 5-bit letters and four hex digits, big-endian. */
uint32_t aml_eisaid(const char *id)
{
	uint32_t v = ((uint32_t)(id[0] - 0x40) << 26) | ((uint32_t)(id[1] - 0x40) << 21) |
		     ((uint32_t)(id[2] - 0x40) << 16) |
		     (uint32_t)strtoul(id + 3, NULL, 16);

	return __builtin_bswap32(v);
}

void aml_name_int(struct acpi_buf *b, const char *name, uint64_t v)
{
	acpi_buf_u8(b, AML_NAME);
	aml_namestring(b, name);
	aml_int(b, v);
}

void aml_name_string(struct acpi_buf *b, const char *name, const char *s)
{
	acpi_buf_u8(b, AML_NAME);
	aml_namestring(b, name);
	aml_string(b, s);
}

void aml_name_eisaid(struct acpi_buf *b, const char *name, const char *id)
{
	aml_name_int(b, name, aml_eisaid(id));
}

void aml_name_resources(struct acpi_buf *b, const char *name, struct acpi_buf *res)
{
	acpi_buf_u8(res, 0x79);		/* End Tag, checksum 0 = not checked */
	acpi_buf_u8(res, 0);
	acpi_buf_u8(b, AML_NAME);
	aml_namestring(b, name);
	if (res->oom)
		b->oom = true;
	else
		aml_buffer(b, res->d, res->len);
	free(res->d);
	*res = (struct acpi_buf){ 0 };
}

size_t aml_device_begin(struct acpi_buf *b, const char *name)
{
	size_t pos = aml_open(b, AML_DEVICE);

	aml_namestring(b, name);
	return pos;
}

void aml_empty_method(struct acpi_buf *b, const char *name, unsigned nargs)
{
	size_t pos = aml_open(b, AML_METHOD);

	aml_namestring(b, name);
	acpi_buf_u8(b, nargs & 7);		/* NotSerialized, SyncLevel 0 */
	aml_close(b, pos);
}

/* ---- resource descriptors (ACPI 6.x 6.4) ---- */

void res_io(struct acpi_buf *r, uint16_t base, uint8_t len)
{
	acpi_buf_u8(r, 0x47);		/* I/O port, 16-bit decode */
	acpi_buf_u8(r, 0x01);
	acpi_buf_u16(r, base);
	acpi_buf_u16(r, base);
	acpi_buf_u8(r, 1);
	acpi_buf_u8(r, len);
}

void res_irq(struct acpi_buf *r, unsigned irq)
{
	acpi_buf_u8(r, 0x22);		/* IRQNoFlags: edge, active-high */
	acpi_buf_u16(r, 1u << irq);
}

/* Extended interrupt, consumer, level, active-high, shared. */
void res_irq_level_shared(struct acpi_buf *r, unsigned gsi)
{
	acpi_buf_u8(r, 0x89);
	acpi_buf_u16(r, 6);
	acpi_buf_u8(r, 0x01 | 0x08);
	acpi_buf_u8(r, 1);
	acpi_buf_u32(r, gsi);
}

#define RES_PRODUCER_FIXED 0x0c		/* producer, _MIF, _MAF, positive decode */

/* Word (0x88), DWord (0x87) and QWord (0x8a) address space descriptors
 * (ACPI 6.x 6.4.3.5): one layout, fields of width bytes; the length
 * counts the 3 flag bytes and the 5 fields. */
static void res_address(struct acpi_buf *r, uint8_t tag, unsigned width, uint8_t type,
			uint8_t tflags, uint64_t min, uint64_t max)
{
	acpi_buf_u8(r, tag);
	acpi_buf_u16(r, 3 + 5 * width);
	acpi_buf_u8(r, type);
	acpi_buf_u8(r, RES_PRODUCER_FIXED);
	acpi_buf_u8(r, tflags);
	acpi_buf_le(r, 0, width);		/* granularity */
	acpi_buf_le(r, min, width);
	acpi_buf_le(r, max, width);
	acpi_buf_le(r, 0, width);		/* translation */
	acpi_buf_le(r, max - min + 1, width);
}

void res_word(struct acpi_buf *r, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
	res_address(r, 0x88, 2, type, tflags, min, max);
}

void res_dword_mem(struct acpi_buf *r, uint8_t tflags, uint32_t min, uint32_t max)
{
	res_address(r, 0x87, 4, RES_TYPE_MEM, tflags, min, max);
}

void res_qword_mem(struct acpi_buf *r, uint8_t tflags, uint64_t min, uint64_t max)
{
	res_address(r, 0x8a, 8, RES_TYPE_MEM, tflags, min, max);
}
