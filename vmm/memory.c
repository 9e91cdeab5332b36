/* Guest RAM: one private anonymous mapping, 2 MiB aligned, with
 * transparent huge pages asked for (as QEMU's default RAM backend: a
 * 1 MiB guest request is then a few huge pages, not 256 small ones); the
 * PC layout split around the PCI hole; the e820 table; and bounds-checked
 * guest-physical access for device models. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <stdio.h>
#include "vmm/memory.h"
#include "vmm/platform.h"

int e820_add(struct guest_memory *m, uint64_t addr, uint64_t size, uint32_t type)
{
	unsigned i;

	if (!size)
		return -EINVAL;
	/* Already covered by an entry of the same type: nothing to add. */
	for (i = 0; i < m->n_e820; i++)
		if (m->e820[i].type == type && addr >= m->e820[i].addr &&
		    addr + size <= m->e820[i].addr + m->e820[i].size)
			return 0;
	if (m->n_e820 >= E820_MAX)
		return -ENOSPC;
	for (i = m->n_e820; i > 0 && m->e820[i - 1].addr > addr; i--)
		m->e820[i] = m->e820[i - 1];
	m->e820[i] = (struct e820_entry){ addr, size, type };
	m->n_e820++;
	return 0;
}

void memory_layout(struct guest_memory *m, uint64_t ram_size)
{
	m->ram_size = ram_size;
	m->below_4g = ram_size < LOW_RAM_MAX ? ram_size : LOW_RAM_MAX;
	m->above_4g = ram_size - m->below_4g;
	m->n_e820 = 0;
	e820_add(m, 0, EBDA_START, E820_RAM);
	e820_add(m, EBDA_START, VGA_HOLE_START - EBDA_START, E820_RESERVED);
	e820_add(m, BIOS_AREA_START, BIOS_AREA_SIZE, E820_RESERVED);
	if (m->below_4g > MiB)
		e820_add(m, MiB, m->below_4g - MiB, E820_RAM);
	if (m->above_4g)
		e820_add(m, HIGH_RAM_START, m->above_4g, E820_RAM);
}

int memory_alloc(struct guest_memory *m, uint64_t ram_size, char *err, size_t errlen)
{
	const size_t align = 2 * MiB;
	uint8_t *raw, *host;
	size_t head;

	memory_layout(m, ram_size);
	/* Over-allocate by the alignment, then trim both ends. */
	raw = mmap(NULL, ram_size + align, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		snprintf(err, errlen, "cannot map %llu MiB of guest RAM: %s",
			 (unsigned long long)(ram_size / MiB), strerror(errno));
		m->host = NULL;
		return -1;
	}
	host = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	head = (size_t)(host - raw);
	if (head)
		munmap(raw, head);
	if (align - head)
		munmap(host + ram_size, align - head);
	m->host = host;
	madvise(m->host, ram_size, MADV_HUGEPAGE);
	madvise(m->host, ram_size, MADV_MERGEABLE);
	/* A forked helper (scripts) must not copy guest RAM. */
	madvise(m->host, ram_size, MADV_DONTFORK);
	return 0;
}

void memory_free(struct guest_memory *m)
{
	if (m->host)
		munmap(m->host, m->ram_size);
	m->host = NULL;
}

bool gpa_to_offset(const struct guest_memory *m, uint64_t gpa, uint64_t *off)
{
	if (gpa < m->below_4g) {
		*off = gpa;
		return true;
	}
	if (gpa >= HIGH_RAM_START && gpa - HIGH_RAM_START < m->above_4g) {
		*off = m->below_4g + (gpa - HIGH_RAM_START);
		return true;
	}
	return false;
}

void *gpa_to_hva(const struct guest_memory *m, uint64_t gpa, uint64_t len)
{
	uint64_t off;

	if (!m->host || !gpa_to_offset(m, gpa, &off))
		return NULL;
	if (len) {
		uint64_t last;
		if (gpa + len - 1 < gpa || !gpa_to_offset(m, gpa + len - 1, &last) ||
		    last - off != len - 1)
			return NULL;
	}
	return m->host + off;
}

int guest_write(const struct guest_memory *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = gpa_to_hva(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int guest_read(const struct guest_memory *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = gpa_to_hva(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}
