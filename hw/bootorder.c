/* The boot order list behind fw_cfg's "bootorder" file: bootindex
 * parsing, OpenFirmware PCI paths, the sorted list with QEMU's duplicate
 * check, and the file layout QEMU 7.2 produces. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hw/bootorder.h"
#include "vmm/log.h"

#define HALT_ENTRY "HALT"

void bootorder_init(struct bootorder *b)
{
	memset(b, 0, sizeof(*b));
}

int bootorder_add(struct bootorder *b, int32_t index, const char *path)
{
	size_t len = strlen(path);
	unsigned pos = 0;

	if (index < 0)
		return 0;
	if (!len || len >= BOOTORDER_PATH_MAX)
		return -EINVAL;
	while (pos < b->n && b->entries[pos].index < index)
		pos++;
	if (pos < b->n && b->entries[pos].index == index)
		return -EEXIST;
	if (b->n == BOOTORDER_MAX)
		return -ENOSPC;
	memmove(&b->entries[pos + 1], &b->entries[pos], (b->n - pos) * sizeof(b->entries[0]));
	b->entries[pos].index = index;
	memcpy(b->entries[pos].path, path, len + 1);
	b->n++;
	return 0;
}

int bootorder_build(const struct bootorder *b, char **data, size_t *len)
{
	size_t total = 0, off = 0;
	char *buf;

	*data = NULL;
	*len = 0;
	if (!b->n)
		return 0;
	for (unsigned i = 0; i < b->n; i++)
		total += strlen(b->entries[i].path) + 1;	/* '\n' or the final NUL */
	if (b->strict)
		total += sizeof(HALT_ENTRY);
	buf = malloc(total);
	if (!buf)
		return -ENOMEM;
	for (unsigned i = 0; i < b->n; i++) {
		size_t l = strlen(b->entries[i].path);

		memcpy(buf + off, b->entries[i].path, l);
		off += l;
		buf[off++] = '\n';
	}
	if (b->strict) {
		memcpy(buf + off, HALT_ENTRY, sizeof(HALT_ENTRY));
		off += sizeof(HALT_ENTRY);
	} else {
		buf[off - 1] = 0;	/* the last path ends with the NUL */
	}
	*data = buf;
	*len = off;
	return 0;
}

int bootorder_pci_path(char *buf, size_t size, const char *name, uint8_t devfn,
		       const char *suffix)
{
	unsigned slot = devfn >> 3, fn = devfn & 7;
	int n;

	if (fn)
		n = snprintf(buf, size, BOOTORDER_PCI_ROOT "/%s@%x,%x%s", name, slot, fn,
			     suffix ? suffix : "");
	else
		n = snprintf(buf, size, BOOTORDER_PCI_ROOT "/%s@%x%s", name, slot,
			     suffix ? suffix : "");
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int bootorder_parse_index(const char *v, int32_t *out)
{
	long long n;
	char *end;

	if (!v || !*v)
		return -EINVAL;
	errno = 0;
	n = strtoll(v, &end, 0);
	if (errno || *end || end == v || n < INT32_MIN || n > INT32_MAX)
		return -EINVAL;
	*out = (int32_t)n;
	return 0;
}

/* --- the VM's list ---------------------------------------------------------- */

static struct bootorder global;

struct bootorder *bootorder_global(void)
{
	return &global;
}

int bootorder_register_pci(const char *what, int32_t index, const char *name, uint8_t devfn,
			   const char *suffix)
{
	char path[BOOTORDER_PATH_MAX];
	int r = bootorder_pci_path(path, sizeof(path), name, devfn, suffix);

	if (!r)
		r = bootorder_add(&global, index, path);
	if (r == -EEXIST)
		log_error("%s: The bootindex %d has already been used", what, index);
	else if (r == -ENOSPC)
		log_error("%s: more than %d devices have a bootindex", what, BOOTORDER_MAX);
	else if (r < 0)
		log_error("%s: cannot name the device for the boot order", what);
	return r;
}
