/* Generic ACPI encoding layer used by the table builder (vmm/acpi.c): a
 * growable little-endian byte buffer, the table checksum, an AML emitter
 * (ACPI 6.x chapter 20: PkgLength objects, NameStrings, integers, strings,
 * buffers, Name/Device/Method objects) and resource-template encoders
 * (ACPI 6.x 6.4). It knows nothing about the machine being described.
 *
 * Errors are sticky: a failed allocation sets buf.oom, every later call on
 * that buffer does nothing, and the caller checks oom once at the end. */
#ifndef VMM_ACPI_AML_H
#define VMM_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable byte buffer ---- */

/* Zero-initialise ({ 0 }) to start empty; d is malloc'd, the owner frees
 * it. Bytes past len up to cap are kept zeroed. */
struct acpi_buf {
	uint8_t *d;
	size_t len, cap;
	bool oom;
};

void acpi_buf_put(struct acpi_buf *b, const void *p, size_t n);
void acpi_buf_zero(struct acpi_buf *b, size_t n);
/* Pad with zeros up to a multiple of align. */
void acpi_buf_align(struct acpi_buf *b, size_t align);
/* Append the low bytes of v, little-endian. */
void acpi_buf_le(struct acpi_buf *b, uint64_t v, unsigned bytes);

#define acpi_buf_u8(b, v)  acpi_buf_le(b, v, 1)
#define acpi_buf_u16(b, v) acpi_buf_le(b, v, 2)
#define acpi_buf_u32(b, v) acpi_buf_le(b, v, 4)
#define acpi_buf_u64(b, v) acpi_buf_le(b, v, 8)

/* Store the low bytes of v at p, little-endian (patching written data). */
void acpi_put_le(uint8_t *p, uint64_t v, unsigned bytes);
/* The byte that makes the 8-bit sum of p[0..len) plus itself zero. */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

/* ---- AML ---- */

enum aml_opcode {
	AML_ZERO = 0x00, AML_ONE = 0x01, AML_NAME = 0x08, AML_BYTE = 0x0a,
	AML_WORD = 0x0b, AML_DWORD = 0x0c, AML_STRING = 0x0d, AML_QWORD = 0x0e,
	AML_SCOPE = 0x10, AML_BUFFER = 0x11, AML_PACKAGE = 0x12, AML_METHOD = 0x14,
	AML_DUAL_NAME = 0x2e, AML_MULTI_NAME = 0x2f, AML_EXT = 0x5b,
	AML_DEVICE = 0x82,	/* after AML_EXT */
};

/* Opens a PkgLength-prefixed object (Scope, Buffer, Package, Method,
 * Device); returns the position aml_close takes once the body is written.
 * Objects nest: close the inner one first. */
size_t aml_open(struct acpi_buf *b, uint8_t op);
void aml_close(struct acpi_buf *b, size_t pos);

/* "\\_SB.PCI0", "^LNKA", "_HID": root/parent prefixes, then dot-separated
 * segments padded with '_' to 4 characters; "" is the NullName. */
void aml_namestring(struct acpi_buf *b, const char *path);
/* The shortest integer encoding: Zero, One, Byte/Word/DWord/QWord const. */
void aml_int(struct acpi_buf *b, uint64_t v);
void aml_string(struct acpi_buf *b, const char *s);
void aml_buffer(struct acpi_buf *b, const uint8_t *data, size_t len);
/* EISAID("PNP0A03") as the 32-bit integer AML compares _HID against. */
uint32_t aml_eisaid(const char *id);

/* Name(name, value) objects. */
void aml_name_int(struct acpi_buf *b, const char *name, uint64_t v);
void aml_name_string(struct acpi_buf *b, const char *name, const char *s);
void aml_name_eisaid(struct acpi_buf *b, const char *name, const char *id);
/* Name(name, ResourceTemplate() { res }): appends the End Tag to res,
 * emits it as a Buffer, then frees res and leaves it empty for reuse. */
void aml_name_resources(struct acpi_buf *b, const char *name, struct acpi_buf *res);

/* Device(name) { ... }: close with aml_close. */
size_t aml_device_begin(struct acpi_buf *b, const char *name);
/* Method(name, nargs, NotSerialized) {} */
void aml_empty_method(struct acpi_buf *b, const char *name, unsigned nargs);

/* ---- resource descriptors, appended to a resource template buffer ---- */

/* Address space descriptor resource types. */
enum res_type { RES_TYPE_MEM = 0, RES_TYPE_IO = 1, RES_TYPE_BUS = 2 };

/* Type-specific flags of address space descriptors. */
#define RES_MEM_RW		0x01
#define RES_MEM_CACHEABLE	0x02
#define RES_IO_ENTIRE_RANGE	0x03

/* IO(Decode16, base, base, 1, len) */
void res_io(struct acpi_buf *r, uint16_t base, uint8_t len);
/* IRQNoFlags() { irq }: edge, active-high, exclusive. */
void res_irq(struct acpi_buf *r, unsigned irq);
/* Interrupt(ResourceConsumer, Level, ActiveHigh, Shared) { gsi } */
void res_irq_level_shared(struct acpi_buf *r, unsigned gsi);
/* WordBusNumber / WordIO / WordSpace producer of the fixed range
 * [min, max]; type is an enum res_type. */
void res_word(struct acpi_buf *r, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max);
/* DWordMemory / QWordMemory producer of the fixed range [min, max]. */
void res_dword_mem(struct acpi_buf *r, uint8_t tflags, uint32_t min, uint32_t max);
void res_qword_mem(struct acpi_buf *r, uint8_t tflags, uint64_t min, uint64_t max);

#endif
