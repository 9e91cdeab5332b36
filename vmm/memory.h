/* Guest RAM (one anonymous mapping) and the PC memory map: low RAM up to
 * 640 KiB, the legacy hole, RAM from 1 MiB to the PCI hole, RAM above
 * 4 GiB; plus the e820 table built from it. */
#ifndef VMM_MEMORY_H
#define VMM_MEMORY_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* Start of the 32-bit PCI hole (QEMU's i440FX uses 0xe0000000 when RAM
 * is large; we keep 3 GiB of low RAM at most, like QEMU's "pc" machine). */
#define PCI_HOLE_START   0xc0000000ULL
#define HIGH_RAM_START   0x100000000ULL
#define LOW_RAM_MAX      PCI_HOLE_START
#define BIOS_MAX_SIZE    (16 * MiB)

enum e820_type { E820_RAM = 1, E820_RESERVED = 2, E820_ACPI = 3, E820_NVS = 4 };

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define E820_MAX 16

struct guest_memory {
	uint8_t *host;		/* whole RAM, contiguous, 2 MiB aligned */
	uint64_t ram_size;	/* total bytes of RAM */
	uint64_t below_4g;	/* RAM bytes mapped at GPA 0 */
	uint64_t above_4g;	/* RAM bytes mapped at 4 GiB */
	struct e820_entry e820[E820_MAX];
	unsigned n_e820;
};

/* Split ram_size into the PC layout and build e820 (no mapping). */
void memory_layout(struct guest_memory *m, uint64_t ram_size);
/* Map guest RAM (pages are not touched). */
int memory_alloc(struct guest_memory *m, uint64_t ram_size, char *err, size_t errlen);
void memory_free(struct guest_memory *m);
/* Add an e820 entry (keeps the table sorted; used for ACPI/reserved). */
int e820_add(struct guest_memory *m, uint64_t addr, uint64_t size, uint32_t type);

/* Host pointer for [gpa, gpa+len) when it is entirely RAM, else NULL.
 * This is the only way device models reach guest memory. */
void *gpa_to_hva(const struct guest_memory *m, uint64_t gpa, uint64_t len);
/* Offset in the RAM block for a GPA (for KVM slots and migration). */
bool gpa_to_offset(const struct guest_memory *m, uint64_t gpa, uint64_t *off);
int guest_write(const struct guest_memory *m, uint64_t gpa, const void *src, size_t len);
int guest_read(const struct guest_memory *m, uint64_t gpa, void *dst, size_t len);

#endif
