/* Device state declared once as a table of typed fields. The same table
 * drives save, load (with validation: the stream is hostile input) and the
 * human-readable dump. Field types are checked at compile time.
 *
 * Wire format of one section: for each field in table order, its value in
 * little-endian, arrays element by element. Sections are framed by the
 * caller (name, version, length) so a reader can skip or reject them. */
#ifndef VMM_VMSTATE_H
#define VMM_VMSTATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>

enum vmstate_type { VMS_U8, VMS_U16, VMS_U32, VMS_U64, VMS_I64, VMS_BOOL };

struct vmstate_field {
	const char *name;
	size_t offset;
	enum vmstate_type type;
	size_t count;		/* 1 for scalars, N for arrays */
	uint64_t max;		/* load rejects values above this (0: no limit) */
};

struct vmstate_desc {
	const char *name;
	uint32_t version;
	const struct vmstate_field *fields;
	size_t nfields;
	/* Called after a load; returns 0 or a negative errno when the loaded
	 * values are inconsistent (then the load fails, device untouched). */
	int (*post_load)(void *opaque);
};

/* Compile-time type check: evaluates to 0, fails to build on mismatch. */
#define VMS_CHECK_(st, f, ctype) \
	(0 * sizeof(struct { _Static_assert(__builtin_types_compatible_p( \
		__typeof__(((st *)0)->f), ctype), #f " has the wrong type"); int x_; }))
#define VMS_CHECK_ARR_(st, f, ctype) \
	(0 * sizeof(struct { _Static_assert(__builtin_types_compatible_p( \
		__typeof__(((st *)0)->f[0]), ctype), #f " has the wrong type"); int x_; }))

#define VMS_FIELD_(st, f, ctype, t, mx) \
	{ #f, offsetof(st, f) + VMS_CHECK_(st, f, ctype), t, 1, mx }
#define VMS_ARRAY_(st, f, ctype, t) \
	{ #f, offsetof(st, f) + VMS_CHECK_ARR_(st, f, ctype), t, \
	  sizeof(((st *)0)->f) / sizeof(((st *)0)->f[0]), 0 }

#define VMSTATE_U8(st, f)        VMS_FIELD_(st, f, uint8_t, VMS_U8, 0)
#define VMSTATE_U16(st, f)       VMS_FIELD_(st, f, uint16_t, VMS_U16, 0)
#define VMSTATE_U32(st, f)       VMS_FIELD_(st, f, uint32_t, VMS_U32, 0)
#define VMSTATE_U64(st, f)       VMS_FIELD_(st, f, uint64_t, VMS_U64, 0)
#define VMSTATE_I64(st, f)       VMS_FIELD_(st, f, int64_t, VMS_I64, 0)
#define VMSTATE_BOOL(st, f)      VMS_FIELD_(st, f, bool, VMS_BOOL, 1)
/* Scalars with an upper bound enforced on load (indexes, counts). */
#define VMSTATE_U8_MAX(st, f, m)  VMS_FIELD_(st, f, uint8_t, VMS_U8, m)
#define VMSTATE_U16_MAX(st, f, m) VMS_FIELD_(st, f, uint16_t, VMS_U16, m)
#define VMSTATE_U32_MAX(st, f, m) VMS_FIELD_(st, f, uint32_t, VMS_U32, m)
#define VMSTATE_U8_ARRAY(st, f)  VMS_ARRAY_(st, f, uint8_t, VMS_U8)
#define VMSTATE_U16_ARRAY(st, f) VMS_ARRAY_(st, f, uint16_t, VMS_U16)
#define VMSTATE_U32_ARRAY(st, f) VMS_ARRAY_(st, f, uint32_t, VMS_U32)
#define VMSTATE_U64_ARRAY(st, f) VMS_ARRAY_(st, f, uint64_t, VMS_U64)

#define VMSTATE_DESC(nm, ver, st_fields, post) {			\
		.name = (nm), .version = (ver), .fields = (st_fields),	\
		.nfields = sizeof(st_fields) / sizeof((st_fields)[0]),	\
		.post_load = (post) }

/* Size in bytes of the serialized section. */
size_t vmstate_size(const struct vmstate_desc *d);
/* Serialize into buf (at least vmstate_size bytes); returns bytes written. */
size_t vmstate_save(const struct vmstate_desc *d, const void *opaque, uint8_t *buf);
/* Deserialize; checks length, bounds and post_load on a copy first, so a
 * rejected stream leaves the device untouched. obj_size is sizeof(*opaque).
 * Returns 0 or -EINVAL (with a message naming the field in err). */
int vmstate_load(const struct vmstate_desc *d, void *opaque, size_t obj_size,
		 const uint8_t *buf, size_t len, char *err, size_t errlen);
/* The same checks as vmstate_load without applying anything. */
int vmstate_validate(const struct vmstate_desc *d, const void *opaque, size_t obj_size,
		     const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Print "name.field = value" lines for a serialized section. */
int vmstate_dump(const struct vmstate_desc *d, const uint8_t *buf, size_t len, FILE *out);

/* Registry of live device state, for migration and the dump tool. */
struct vmstate_entry {
	const struct vmstate_desc *desc;
	void *opaque;
	size_t obj_size;
	unsigned instance;
	struct vmstate_entry *next;
};
void vmstate_register(const struct vmstate_desc *d, void *opaque,
		      size_t obj_size, unsigned instance);
struct vmstate_entry *vmstate_entries(void);
/* Every descriptor ever linked into the binary (for the dump tool). */
const struct vmstate_desc *vmstate_find_desc(const char *name);

#endif
