/* i440FX host bridge: PAM (shadow RAM) decoding of 0xC0000-0xFFFFF.
 * The segment map is a pure function so it can be tested without KVM. */
#ifndef HW_I440FX_H
#define HW_I440FX_H

#include <stdint.h>

#define I440FX_PAM0		0x59
#define I440FX_PAM_REGS		7	/* PAM0..PAM6 */
#define I440FX_SMRAM		0x72
#define PAM_AREA_START		0xc0000u
#define PAM_AREA_END		0x100000u
#define PAM_SEGMENTS		13	/* 12 x 16 KiB at 0xC0000, 64 KiB at 0xF0000 */
#define PAM_ROM_WINDOW		0x20000u	/* BIOS bytes visible below 1 MiB */

/* PAM attribute of one segment (2 bits: RE = 1, WE = 2). */
enum pam_mode { PAM_DISABLED = 0, PAM_READ_ONLY = 1, PAM_WRITE_ONLY = 2, PAM_READ_WRITE = 3 };

/* What backs a guest range. */
enum pam_map { PAM_MAP_NONE, PAM_MAP_ROM, PAM_MAP_RAM_RO, PAM_MAP_RAM_RW };

struct pam_range {
	uint32_t start;
	uint32_t size;
	enum pam_map kind;
};

/* Segment i (in address order): its range and where its 2 bits live. */
void pam_segment(unsigned i, uint32_t *start, uint32_t *size, unsigned *reg, unsigned *shift);
enum pam_mode pam_segment_mode(const uint8_t pam[I440FX_PAM_REGS], unsigned i);
/* Build the map of 0xC0000-0xFFFFF: disabled segments show the ROM when
 * they lie in the last rom_size bytes below 1 MiB, else nothing. Adjacent
 * segments of the same kind are merged. Returns the number of ranges
 * (at most PAM_SEGMENTS), covering the whole area in address order. */
unsigned pam_compute_map(const uint8_t pam[I440FX_PAM_REGS], uint32_t rom_size,
			 struct pam_range *out);

#endif
