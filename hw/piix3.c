/* PIIX3 south bridge functions: the ISA bridge 00:01.0 (PIRQ routing,
 * ELCR ports, reset control register 0xCF9) and the PIIX4-compatible PM
 * function 00:01.3 (config space only; the PM I/O block is fixed at
 * ACPI_PM_BASE and implemented elsewhere). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/pci.h"
#include "hw/piix3.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define PIIX3_DEVICE	0x7000
#define PIIX4_PM_DEVICE	0x7113
#define ELCR_PORT	0x4d0

/* --- ISA bridge --------------------------------------------------------- */

void piix3_isa_init_config(struct pci_device *d)
{
	uint8_t *c = d->config;

	pci_device_init(d, "piix3-isa", 0x8086, PIIX3_DEVICE, 0x00, 0x060100);
	c[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_MULTI;
	pci_set_word(c, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	pci_set_word(c, PCI_STATUS, 0x0200);	/* DEVSEL medium */
	memset(d->wmask + PCI_CONFIG_HEADER_END, 0xff, PCI_CONFIG_SIZE - PCI_CONFIG_HEADER_END);
	/* Reset values of the chipset registers (PIIX3 datasheet). */
	c[0x4c] = 0x4d;		/* IORT */
	c[0x4e] = 0x03;		/* XBCS */
	for (unsigned i = 0; i < PCI_NUM_PIRQS; i++) {
		c[PIIX3_PIRQRC + i] = 0x80;	/* routing disabled */
		d->wmask[PIIX3_PIRQRC + i] = 0x8f;
	}
	c[PIIX3_TOM] = 0x02;
	c[0x6a] = 0x00;		/* MSTAT */
	c[0x70] = 0x80;		/* MBIRQ0 */
	c[0x76] = 0x0c;		/* MBDMA */
	c[0x77] = 0x0c;
	c[0x78] = 0x02;		/* PCSC */
	c[0xa0] = 0x08;		/* SMICNTL */
	c[0xa8] = 0x0f;		/* SMIREQ */
}

void piix3_rcr_write(struct piix3 *s, uint8_t value)
{
	/* SRST (bit 1) and full reset (bit 3) are remembered; setting RCPU
	 * (bit 2) resets the system, as 0x06 / 0x0E writes do. */
	s->rcr = value & 0x0a;
	if ((value & 0x04) && s->request_reset)
		s->request_reset(s->reset_opaque);
}

static uint64_t rcr_read(void *opaque, uint64_t off, unsigned size)
{
	struct piix3 *s = opaque;

	return s->rcr;
}

static void rcr_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	piix3_rcr_write(opaque, value);
}

static const struct io_ops rcr_ops = { .read = rcr_read, .write = rcr_write };

static uint64_t elcr_read(void *opaque, uint64_t off, unsigned size)
{
	struct piix3 *s = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size && off + i < 2; i++)
		v |= (uint64_t)s->elcr[off + i] << (8 * i);
	return v;
}

static void elcr_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	static const uint8_t mask[2] = { 0xf8, 0xde };	/* IRQ 0-2, 8, 13 are edge */
	struct piix3 *s = opaque;

	for (unsigned i = 0; i < size && off + i < 2; i++)
		s->elcr[off + i] = (value >> (8 * i)) & mask[off + i];
}

static const struct io_ops elcr_ops = { .read = elcr_read, .write = elcr_write };

/* --- PM function -------------------------------------------------------- */

void piix4_pm_init_config(struct pci_device *d)
{
	uint8_t *c = d->config;

	pci_device_init(d, "piix4-pm", 0x8086, PIIX4_PM_DEVICE, 0x03, 0x068000);
	c[PCI_INTERRUPT_PIN] = PCI_PIN_INTA;
	memset(d->wmask + PCI_CONFIG_HEADER_END, 0xff, PCI_CONFIG_SIZE - PCI_CONFIG_HEADER_END);
	/* PMBA: fixed where the PM block really is. */
	pci_set_long(c, PIIX4_PMBA, ACPI_PM_BASE | 1);
	pci_set_long(d->wmask, PIIX4_PMBA, 0);
	/* PMREGMISC: only the I/O enable bit exists. */
	c[PIIX4_PMREGMISC] = 0;
	d->wmask[PIIX4_PMREGMISC] = 0x01;
	/* SMBus base: I/O indicator bit is read-only. */
	pci_set_long(c, PIIX4_SMBBA, 1);
	pci_set_long(d->wmask, PIIX4_SMBBA, 0xfff0);
	/* DEVACTB APMC_EN set: tells SeaBIOS SMM is initialized, so it does
	 * not wait for an SMI handler we do not have (QEMU does the same). */
	c[PIIX4_DEVACTB + 3] = 0x02;
}

/* --- VM glue ------------------------------------------------------------ */

struct piix3_vm {
	struct piix3 isa;
	struct pci_device pm;
	struct vm *vm;
};

static void request_vm_reset(void *opaque)
{
	vm_request_reset(opaque);
}

static const struct vmstate_field piix3_fields[] = {
	VMSTATE_U8(struct piix3, rcr),
	VMSTATE_U8_ARRAY(struct piix3, elcr),
};
static const struct vmstate_desc piix3_vmstate =
	VMSTATE_DESC("piix3", 1, piix3_fields, NULL);

static void piix3_reset(void *opaque)
{
	struct piix3 *s = opaque;

	s->rcr = 0;
	s->elcr[0] = s->elcr[1] = 0;
}

static int piix3_vm_init(struct vm *vm)
{
	struct pci_bus *bus = pci_bus_of(vm);
	struct piix3_vm *p;
	int r;

	if (!bus) {
		log_error("piix3: no PCI bus");
		return -ENODEV;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->vm = vm;
	piix3_isa_init_config(&p->isa.dev);
	p->isa.request_reset = request_vm_reset;
	p->isa.reset_opaque = vm;
	piix4_pm_init_config(&p->pm);
	r = pci_register_device(vm, &p->isa.dev, PIIX3_SLOT, 0);
	if (!r)
		r = pci_register_device(vm, &p->pm, PIIX3_SLOT, 3);
	if (r < 0)
		return r;
	pci_bus_set_router(bus, &p->isa.dev, PIIX3_PIRQRC);
	pci_bus_set_cf9_ops(bus, &rcr_ops, &p->isa);
	if (vm_register_pio(vm, ELCR_PORT, 2, &elcr_ops, &p->isa) < 0)
		log_warn("piix3: ELCR ports already taken");
	vm_register_reset(vm, piix3_reset, &p->isa);
	vmstate_register(&piix3_vmstate, &p->isa, sizeof(p->isa), 0);
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_PLATFORM, piix3_vm_init);
