/* PIIX3 ISA bridge (00:01.0) and PIIX4 PM function (00:01.3): config
 * space layouts and the reset control register model. */
#ifndef HW_PIIX3_H
#define HW_PIIX3_H

#include <stdint.h>
#include "hw/pci.h"

#define PIIX3_SLOT		1
#define PIIX3_PIRQRC		0x60	/* PIRQA..D route control */
#define PIIX3_TOM		0x69
#define PIIX4_PMBA		0x40
#define PIIX4_DEVACTB		0x58
#define PIIX4_PMREGMISC		0x80
#define PIIX4_SMBBA		0x90

struct piix3 {
	struct pci_device dev;
	uint8_t rcr;			/* reset control register 0xCF9 */
	uint8_t elcr[2];		/* edge/level control 0x4D0/0x4D1 */
	void (*request_reset)(void *opaque);
	void *reset_opaque;
};

void piix3_isa_init_config(struct pci_device *d);
void piix4_pm_init_config(struct pci_device *d);
void piix3_rcr_write(struct piix3 *s, uint8_t value);

#endif
