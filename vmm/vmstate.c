/* Save, load and dump of device state described by vmstate tables. Load
 * treats its input as hostile: every length and bound is checked, and
 * values are applied to a scratch copy first so a rejected section leaves
 * the live device untouched. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "vmm/vmstate.h"

static const size_t vms_width[] = {
	[VMS_U8] = 1, [VMS_U16] = 2, [VMS_U32] = 4, [VMS_U64] = 8,
	[VMS_I64] = 8, [VMS_BOOL] = 1,
};

size_t vmstate_size(const struct vmstate_desc *d)
{
	size_t total = 0;

	for (size_t i = 0; i < d->nfields; i++)
		total += vms_width[d->fields[i].type] * d->fields[i].count;
	return total;
}

static uint64_t vms_get(const void *p, enum vmstate_type t)
{
	switch (t) {
	case VMS_U8: return *(const uint8_t *)p;
	case VMS_BOOL: return *(const bool *)p;
	case VMS_U16: return *(const uint16_t *)p;
	case VMS_U32: return *(const uint32_t *)p;
	case VMS_U64: return *(const uint64_t *)p;
	case VMS_I64: return (uint64_t)*(const int64_t *)p;
	}
	return 0;
}

static void vms_set(void *p, enum vmstate_type t, uint64_t v)
{
	switch (t) {
	case VMS_U8: *(uint8_t *)p = v; break;
	case VMS_BOOL: *(bool *)p = v; break;
	case VMS_U16: *(uint16_t *)p = v; break;
	case VMS_U32: *(uint32_t *)p = v; break;
	case VMS_U64: *(uint64_t *)p = v; break;
	case VMS_I64: *(int64_t *)p = (int64_t)v; break;
	}
}

static void put_le(uint8_t *buf, uint64_t v, size_t width)
{
	for (size_t i = 0; i < width; i++)
		buf[i] = v >> (8 * i);
}

static uint64_t get_le(const uint8_t *buf, size_t width)
{
	uint64_t v = 0;

	for (size_t i = 0; i < width; i++)
		v |= (uint64_t)buf[i] << (8 * i);
	return v;
}

size_t vmstate_save(const struct vmstate_desc *d, const void *opaque, uint8_t *buf)
{
	size_t pos = 0;

	for (size_t i = 0; i < d->nfields; i++) {
		const struct vmstate_field *f = &d->fields[i];
		size_t w = vms_width[f->type];
		for (size_t e = 0; e < f->count; e++) {
			const uint8_t *p = (const uint8_t *)opaque + f->offset + e * w;
			put_le(buf + pos, vms_get(p, f->type), w);
			pos += w;
		}
	}
	return pos;
}

static int vmstate_load_copy(const struct vmstate_desc *d, void *opaque, size_t obj_size,
			     const uint8_t *buf, size_t len, char *err, size_t errlen,
			     bool apply)
{
	size_t pos = 0;
	uint8_t *copy;
	int ret = 0;

	if (len != vmstate_size(d)) {
		snprintf(err, errlen, "%s: section is %zu bytes, expected %zu",
			 d->name, len, vmstate_size(d));
		return -EINVAL;
	}
	copy = malloc(obj_size);
	if (!copy) {
		snprintf(err, errlen, "%s: out of memory", d->name);
		return -ENOMEM;
	}
	memcpy(copy, opaque, obj_size);
	for (size_t i = 0; i < d->nfields && !ret; i++) {
		const struct vmstate_field *f = &d->fields[i];
		size_t w = vms_width[f->type];
		for (size_t e = 0; e < f->count; e++) {
			uint64_t v = get_le(buf + pos, w);
			pos += w;
			if (f->max && v > f->max) {
				snprintf(err, errlen, "%s.%s: value %" PRIu64 " exceeds %" PRIu64,
					 d->name, f->name, v, f->max);
				ret = -EINVAL;
				break;
			}
			vms_set(copy + f->offset + e * w, f->type, v);
		}
	}
	if (!ret && d->post_load && d->post_load(copy) < 0) {
		snprintf(err, errlen, "%s: inconsistent state rejected", d->name);
		ret = -EINVAL;
	}
	if (!ret && apply)
		memcpy(opaque, copy, obj_size);
	free(copy);
	return ret;
}

int vmstate_load(const struct vmstate_desc *d, void *opaque, size_t obj_size,
		 const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	return vmstate_load_copy(d, opaque, obj_size, buf, len, err, errlen, true);
}

int vmstate_validate(const struct vmstate_desc *d, const void *opaque, size_t obj_size,
		     const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	return vmstate_load_copy(d, (void *)opaque, obj_size, buf, len, err, errlen, false);
}

int vmstate_dump(const struct vmstate_desc *d, const uint8_t *buf, size_t len, FILE *out)
{
	size_t pos = 0;

	if (len != vmstate_size(d))
		return -EINVAL;
	for (size_t i = 0; i < d->nfields; i++) {
		const struct vmstate_field *f = &d->fields[i];
		size_t w = vms_width[f->type];
		fprintf(out, "%s.%s =", d->name, f->name);
		for (size_t e = 0; e < f->count; e++) {
			fprintf(out, " 0x%" PRIx64, get_le(buf + pos, w));
			pos += w;
		}
		fputc('\n', out);
	}
	return 0;
}

static struct vmstate_entry *entries;

void vmstate_register(const struct vmstate_desc *d, void *opaque,
		      size_t obj_size, unsigned instance)
{
	struct vmstate_entry *e = calloc(1, sizeof(*e));
	struct vmstate_entry **tail = &entries;

	if (!e)
		return;
	*e = (struct vmstate_entry){ d, opaque, obj_size, instance, NULL };
	while (*tail)
		tail = &(*tail)->next;
	*tail = e;
}

struct vmstate_entry *vmstate_entries(void)
{
	return entries;
}

const struct vmstate_desc *vmstate_find_desc(const char *name)
{
	for (struct vmstate_entry *e = entries; e; e = e->next)
		if (!strcmp(e->desc->name, name))
			return e->desc;
	return NULL;
}
