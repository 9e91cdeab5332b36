/* PCI bus 0 behind configuration mechanism #1 (ports 0xCF8/0xCFC): the
 * registration API for PCI functions (config space with write masks, BARs
 * and the expansion ROM BAR mapped on the I/O bus when decode is enabled,
 * capabilities) and INTx delivery through the PIIX3 PIRQ router to ISA
 * interrupt lines. */
#ifndef HW_PCI_H
#define HW_PCI_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include "vmm/io.h"
#include "vmm/irq.h"
#include "vmm/vmstate.h"

struct vm;

#define PCI_CONFIG_SIZE		256
#define PCI_SLOTS		32
#define PCI_FUNCS		8
#define PCI_NUM_BARS		6
#define PCI_ISA_IRQS		16
#define PCI_NUM_PIRQS		4

/* Standard header registers */
#define PCI_VENDOR_ID		0x00
#define PCI_DEVICE_ID		0x02
#define PCI_COMMAND		0x04
#define PCI_STATUS		0x06
#define PCI_REVISION_ID		0x08
#define PCI_CLASS_PROG		0x09
#define PCI_CLASS_DEVICE	0x0a	/* 16 bits: base class << 8 | subclass */
#define PCI_CACHE_LINE_SIZE	0x0c
#define PCI_LATENCY_TIMER	0x0d
#define PCI_HEADER_TYPE		0x0e
#define PCI_BASE_ADDRESS_0	0x10
#define PCI_SUBSYSTEM_VENDOR_ID	0x2c
#define PCI_SUBSYSTEM_ID	0x2e
#define PCI_ROM_ADDRESS		0x30
#define PCI_CAPABILITY_LIST	0x34
#define PCI_INTERRUPT_LINE	0x3c
#define PCI_INTERRUPT_PIN	0x3d
#define PCI_CONFIG_HEADER_END	0x40

#define PCI_COMMAND_IO		0x0001
#define PCI_COMMAND_MEMORY	0x0002
#define PCI_COMMAND_MASTER	0x0004
#define PCI_COMMAND_SERR	0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400

#define PCI_STATUS_INTERRUPT	0x0008
#define PCI_STATUS_CAP_LIST	0x0010
#define PCI_STATUS_W1C_ERRORS	0xf900	/* parity, aborts, SERR: write 1 to clear */

#define PCI_HEADER_TYPE_MULTI	0x80

#define PCI_BAR_SPACE_IO	0x01
#define PCI_BAR_MEM_TYPE_64	0x04
#define PCI_BAR_MEM_PREFETCH	0x08

#define PCI_ROM_ADDRESS_ENABLE	0x01
#define PCI_ROM_MIN_SIZE	2048		/* bits 10:1 of the ROM BAR are reserved */
#define PCI_ROM_MAX_SIZE	(16u << 20)	/* minikvm's limit for a ROM image */

#define PCI_SUBVENDOR_QEMU	0x1af4	/* Red Hat / Qumranet */
#define PCI_SUBDEVICE_QEMU	0x1100

#define PCI_PIN_NONE		0
#define PCI_PIN_INTA		1

enum pci_bar_type {
	PCI_BAR_UNUSED = 0,
	PCI_BAR_IO,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64,		/* occupies this BAR and the next one */
};

struct pci_device;

/* The expansion ROM (config 0x30): its image is shown read-only at the
 * programmed address while the enable bit and memory decoding are on. */
struct pci_rom {
	const uint8_t *data;		/* the image, owned by the device */
	size_t len;			/* its length; bytes past it read as zero */
	uint64_t size;			/* BAR size: power of two >= len */
	bool mapped;			/* currently registered on the I/O bus */
	uint64_t addr;			/* where, when mapped */
};

struct pci_bar {
	enum pci_bar_type type;
	uint64_t size;			/* power of two */
	bool prefetchable;
	const struct io_ops *ops;	/* NULL: the device maps it itself */
	void *opaque;
	bool mapped;			/* currently registered on the I/O bus */
	uint64_t addr;			/* where, when mapped */
};

struct pci_device {
	const char *name;
	/* Config space as the guest sees it, and per-byte masks: bits set in
	 * wmask are writable, bits set in w1cmask are cleared by writing 1. */
	uint8_t config[PCI_CONFIG_SIZE];
	uint8_t wmask[PCI_CONFIG_SIZE];
	uint8_t w1cmask[PCI_CONFIG_SIZE];
	struct pci_bar bars[PCI_NUM_BARS];
	struct pci_rom rom;		/* size 0: no ROM, 0x30 reads as 0 */

	/* Optional hooks. config_read may override the value read (it gets
	 * the default value); config_write runs after the masks applied. */
	uint32_t (*config_read)(struct pci_device *d, unsigned off, unsigned size,
				uint32_t value);
	void (*config_write)(struct pci_device *d, unsigned off, unsigned size,
			     uint32_t value);
	/* A BAR was mapped at addr or unmapped (after the I/O bus update). */
	void (*bar_changed)(struct pci_device *d, int bar, bool mapped, uint64_t addr);
	/* Device reset, after the core restored the reset config image. */
	void (*reset)(struct pci_device *d);
	/* After a state load, once BARs are re-registered (pci_bus_post_load). */
	void (*post_load)(struct pci_device *d);
	void *opaque;

	/* Owned by the PCI core. */
	uint8_t irq_level;		/* INTx level driven by the device */
	bool irq_counted;		/* level counted in bus->pirq_count */
	struct pci_bus *bus;
	uint8_t devfn;
	uint8_t cap_next;		/* next free capability offset */
	uint8_t reset_config[PCI_CONFIG_SIZE];
};

struct pci_bus {
	pthread_mutex_t lock;		/* recursive: hooks may call back */
	struct io_bus *io;
	struct pci_device *devs[PCI_SLOTS * PCI_FUNCS];
	uint32_t config_addr;		/* latched 0xCF8 value */
	struct irq_line isa_irq[PCI_ISA_IRQS];
	uint8_t isa_level[PCI_ISA_IRQS];	/* what we drive on each ISA IRQ */
	unsigned pirq_count[PCI_NUM_PIRQS];	/* asserted devices per PIRQ */
	/* PIRQ route registers (PIIX3 0x60-0x63) live in this device. */
	struct pci_device *router;
	uint8_t router_off;
	/* Byte accesses to 0xCF9 share the 0xCF8 dword (PIIX3 RCR). */
	const struct io_ops *cf9_ops;
	void *cf9_opaque;
};

/* --- device side -------------------------------------------------------- */

/* Fill the identity part of the header (type 0, subsystem 1af4:1100 like
 * QEMU; override after this call) and the default masks:
 * COMMAND (I/O, memory, master, SERR, INTx disable), cache line, latency,
 * interrupt line and the device-specific area 0x40-0xFF read-only. */
void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor,
		     uint16_t device, uint8_t revision, uint32_t class_code);
void pci_set_byte(uint8_t *cfg, unsigned off, uint8_t v);
void pci_set_word(uint8_t *cfg, unsigned off, uint16_t v);
void pci_set_long(uint8_t *cfg, unsigned off, uint32_t v);
uint16_t pci_get_word(const uint8_t *cfg, unsigned off);
uint32_t pci_get_long(const uint8_t *cfg, unsigned off);

/* Declare a BAR (before pci_register_device). Returns 0 or -EINVAL. */
int pci_register_bar(struct pci_device *d, int bar, enum pci_bar_type type,
		     uint64_t size, bool prefetchable, const struct io_ops *ops,
		     void *opaque);
/* Give the device an expansion ROM (before pci_register_device): the BAR
 * is len rounded up to a power of two (QEMU's rule), at least
 * PCI_ROM_MIN_SIZE. data must outlive the device. Returns 0 or -EINVAL
 * (empty, or larger than PCI_ROM_MAX_SIZE). */
int pci_register_rom(struct pci_device *d, const uint8_t *data, size_t len);
/* Allocate a capability of `size` bytes in 0x40-0xFF, link it into the
 * list. Returns its offset or -ENOSPC. */
int pci_add_capability(struct pci_device *d, uint8_t cap_id, uint8_t size);
/* Find capability cap_id; returns its offset or 0. */
unsigned pci_find_capability(const struct pci_device *d, uint8_t cap_id);

/* INTx level of the device's interrupt pin (shared lines are ORed). */
void pci_set_irq(struct pci_device *d, int level);

/* --- bus side ----------------------------------------------------------- */

/* Bus model without a VM (unit tests): io may be NULL. */
void pci_bus_init(struct pci_bus *bus, struct io_bus *io, const struct irq_line *isa_irqs);
int pci_bus_add_device(struct pci_bus *bus, struct pci_device *d, unsigned slot,
		       unsigned func);
void pci_bus_set_router(struct pci_bus *bus, struct pci_device *router, uint8_t off);
void pci_bus_set_cf9_ops(struct pci_bus *bus, const struct io_ops *ops, void *opaque);
/* Register accesses, as the 0xCF8/0xCFC ports see them. */
uint32_t pci_bus_addr_read(struct pci_bus *bus);
void pci_bus_addr_write(struct pci_bus *bus, uint32_t value);
uint32_t pci_bus_data_read(struct pci_bus *bus, unsigned port_off, unsigned size);
void pci_bus_data_write(struct pci_bus *bus, unsigned port_off, unsigned size, uint32_t value);
/* Direct config access (bus 0), as a device or the firmware would do. */
uint32_t pci_config_read(struct pci_bus *bus, unsigned devfn, unsigned off, unsigned size);
void pci_config_write(struct pci_bus *bus, unsigned devfn, unsigned off, unsigned size,
		      uint32_t value);
/* Restore all functions to their reset config and re-evaluate mappings. */
void pci_bus_reset(struct pci_bus *bus);
/* After a vmstate load: re-register BARs and recompute INTx routing. */
void pci_bus_post_load(struct pci_bus *bus);
/* ISA IRQ routed from PIRQ n (0..3), or -1 when disabled. */
int pci_bus_pirq_to_irq(const struct pci_bus *bus, unsigned pirq);
/* PIRQ (0..3) used by INTx pin (1..4) of a slot (PIIX swizzle). */
unsigned pci_slot_pin_to_pirq(unsigned slot, unsigned pin);

/* --- VM glue ------------------------------------------------------------ */

/* Create bus 0 on vm (the host bridge does this) and its 0xCF8/0xCFC ports. */
struct pci_bus *pci_bus_create(struct vm *vm);
/* The VM's bus, or NULL before the host bridge is up. */
struct pci_bus *pci_bus_of(struct vm *vm);
/* Register function slot.func on the VM's bus 0; registers its vmstate.
 * Returns 0, -ENODEV (no bus), -EINVAL or -EEXIST. */
int pci_register_device(struct vm *vm, struct pci_device *d, unsigned slot, unsigned func);

extern const struct vmstate_desc pci_device_vmstate;
extern const struct vmstate_desc pci_bus_vmstate;

#endif
