/* PCI bus 0: configuration mechanism #1 decoding, config space accesses
 * with write masks, BAR and expansion ROM (re)mapping on the I/O bus,
 * capability lists and INTx routing through the PIRQ router to ISA
 * interrupt lines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/pci.h"
#include "vmm/vm.h"
#include "vmm/platform.h"
#include "vmm/log.h"
#include "vmm/vmstate.h"

#define CONFIG_ADDR_ENABLE	0x80000000u
#define PIIX_PIRQ_DISABLE	0x80
/* ISA IRQs a PIIX PIRQ route register may select. */
#define PIIX_PIRQ_VALID_IRQS	0xdef8u

/* --- byte helpers ------------------------------------------------------- */

void pci_set_byte(uint8_t *cfg, unsigned off, uint8_t v)
{
	cfg[off] = v;
}

void pci_set_word(uint8_t *cfg, unsigned off, uint16_t v)
{
	cfg[off] = v & 0xff;
	cfg[off + 1] = v >> 8;
}

void pci_set_long(uint8_t *cfg, unsigned off, uint32_t v)
{
	pci_set_word(cfg, off, v & 0xffff);
	pci_set_word(cfg, off + 2, v >> 16);
}

uint16_t pci_get_word(const uint8_t *cfg, unsigned off)
{
	return cfg[off] | (uint16_t)cfg[off + 1] << 8;
}

uint32_t pci_get_long(const uint8_t *cfg, unsigned off)
{
	return pci_get_word(cfg, off) | (uint32_t)pci_get_word(cfg, off + 2) << 16;
}

static uint32_t size_mask(unsigned size)
{
	return size == 4 ? 0xffffffffu : (1u << (size * 8)) - 1;
}

static bool ranges_overlap(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
	return a < b + blen && b < a + alen;
}

/* --- device setup ------------------------------------------------------- */

void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor,
		     uint16_t device, uint8_t revision, uint32_t class_code)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	pci_set_word(d->config, PCI_VENDOR_ID, vendor);
	pci_set_word(d->config, PCI_DEVICE_ID, device);
	d->config[PCI_REVISION_ID] = revision;
	d->config[PCI_CLASS_PROG] = class_code & 0xff;
	pci_set_word(d->config, PCI_CLASS_DEVICE, (class_code >> 8) & 0xffff);
	/* QEMU's default subsystem IDs: SeaBIOS detects QEMU by them. */
	pci_set_word(d->config, PCI_SUBSYSTEM_VENDOR_ID, PCI_SUBVENDOR_QEMU);
	pci_set_word(d->config, PCI_SUBSYSTEM_ID, PCI_SUBDEVICE_QEMU);
	pci_set_word(d->wmask, PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY |
		     PCI_COMMAND_MASTER | 0x0040 | PCI_COMMAND_SERR |
		     PCI_COMMAND_INTX_DISABLE);
	pci_set_word(d->w1cmask, PCI_STATUS, PCI_STATUS_W1C_ERRORS);
	d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	d->wmask[PCI_LATENCY_TIMER] = 0xff;
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->cap_next = PCI_CONFIG_HEADER_END;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

int pci_register_bar(struct pci_device *d, int bar, enum pci_bar_type type,
		     uint64_t size, bool prefetchable, const struct io_ops *ops,
		     void *opaque)
{
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * bar;
	uint64_t mask = ~(size - 1);
	uint32_t flags = 0;

	if (bar < 0 || bar >= PCI_NUM_BARS || !is_pow2(size))
		return -EINVAL;
	if (type == PCI_BAR_MEM64 && bar == PCI_NUM_BARS - 1)
		return -EINVAL;
	if (type == PCI_BAR_IO && (size < 4 || size > 256))
		return -EINVAL;
	if ((type == PCI_BAR_MEM32 && (size < 16 || size > (1ull << 31))) ||
	    (type == PCI_BAR_MEM64 && size < 16))
		return -EINVAL;
	if (type == PCI_BAR_IO)
		flags = PCI_BAR_SPACE_IO;
	else if (type == PCI_BAR_MEM64)
		flags = PCI_BAR_MEM_TYPE_64;
	else if (type != PCI_BAR_MEM32)
		return -EINVAL;
	if (prefetchable && type != PCI_BAR_IO)
		flags |= PCI_BAR_MEM_PREFETCH;

	d->bars[bar] = (struct pci_bar){
		.type = type, .size = size, .prefetchable = prefetchable,
		.ops = ops, .opaque = opaque,
	};
	pci_set_long(d->config, off, flags);
	pci_set_long(d->wmask, off, (uint32_t)mask & (type == PCI_BAR_IO ? ~3u : ~0xfu));
	if (type == PCI_BAR_MEM64) {
		d->bars[bar + 1] = (struct pci_bar){ .type = PCI_BAR_UNUSED };
		pci_set_long(d->config, off + 4, 0);
		pci_set_long(d->wmask, off + 4, mask >> 32);
	}
	return 0;
}

static uint64_t pow2_ceil(uint64_t v)
{
	uint64_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

int pci_register_rom(struct pci_device *d, const uint8_t *data, size_t len)
{
	uint64_t size;

	if (!data || !len || len > PCI_ROM_MAX_SIZE)
		return -EINVAL;
	size = pow2_ceil(len);
	if (size < PCI_ROM_MIN_SIZE)
		size = PCI_ROM_MIN_SIZE;
	d->rom = (struct pci_rom){ .data = data, .len = len, .size = size };
	/* Address bits above the size and the enable bit are writable;
	 * sizing (all ones) reads back ~(size - 1) | enable. */
	pci_set_long(d->config, PCI_ROM_ADDRESS, 0);
	pci_set_long(d->wmask, PCI_ROM_ADDRESS, (uint32_t)~(size - 1) | PCI_ROM_ADDRESS_ENABLE);
	return 0;
}

int pci_add_capability(struct pci_device *d, uint8_t cap_id, uint8_t size)
{
	unsigned off = (d->cap_next + 3u) & ~3u;
	unsigned link = PCI_CAPABILITY_LIST, hops = 0;

	if (size < 2 || off < PCI_CONFIG_HEADER_END || off + size > PCI_CONFIG_SIZE)
		return -ENOSPC;
	/* Append at the tail (bounded: the list lives in 192 bytes). */
	while (d->config[link] >= PCI_CONFIG_HEADER_END && hops++ < 48)
		link = d->config[link] + 1;
	d->config[off] = cap_id;
	d->config[off + 1] = 0;
	d->config[link] = off;
	d->config[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->cap_next = off + size;
	return off;
}

unsigned pci_find_capability(const struct pci_device *d, uint8_t cap_id)
{
	unsigned off = d->config[PCI_CAPABILITY_LIST];
	unsigned hops = 0;

	/* Bounded walk: a list is at most 48 entries of 4 bytes. */
	while (off >= PCI_CONFIG_HEADER_END && hops++ < 48) {
		if (d->config[off] == cap_id)
			return off;
		off = d->config[off + 1];
	}
	return 0;
}

/* --- BAR mapping -------------------------------------------------------- */

/* Address the BAR decodes at, or false when it decodes nothing. */
static bool bar_decode_addr(const struct pci_device *d, int i, uint64_t *addr)
{
	const struct pci_bar *b = &d->bars[i];
	uint16_t cmd = pci_get_word(d->config, PCI_COMMAND);
	unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
	uint64_t a;

	switch (b->type) {
	case PCI_BAR_IO:
		if (!(cmd & PCI_COMMAND_IO))
			return false;
		a = pci_get_long(d->config, off) & ~3u;
		if (!a || a + b->size > 0x10000)
			return false;
		break;
	case PCI_BAR_MEM32:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		a = pci_get_long(d->config, off) & ~0xfu;
		/* A BAR ending at 4 GiB is the sizing pattern, not a mapping. */
		if (!a || a + b->size - 1 >= 0xffffffffull)
			return false;
		break;
	case PCI_BAR_MEM64:
		if (!(cmd & PCI_COMMAND_MEMORY))
			return false;
		a = (pci_get_long(d->config, off) & ~0xfu) |
		    (uint64_t)pci_get_long(d->config, off + 4) << 32;
		/* Reject wrapping, sizing patterns and absurd addresses. */
		if (!a || a + b->size - 1 < a || a + b->size - 1 == 0xffffffffull ||
		    a + b->size - 1 == ~0ull || (a >> 52))
			return false;
		break;
	default:
		return false;
	}
	*addr = a;
	return true;
}

static enum io_space bar_space(const struct pci_bar *b)
{
	return b->type == PCI_BAR_IO ? IO_SPACE_PIO : IO_SPACE_MMIO;
}

static void bar_unmap(struct pci_device *d, int i)
{
	struct pci_bar *b = &d->bars[i];

	if (!b->mapped)
		return;
	if (b->ops && d->bus && d->bus->io)
		io_unregister(d->bus->io, bar_space(b), b->addr);
	b->mapped = false;
	if (d->bar_changed)
		d->bar_changed(d, i, false, b->addr);
}

static void bar_map(struct pci_device *d, int i, uint64_t addr)
{
	struct pci_bar *b = &d->bars[i];
	int r;

	if (b->ops && d->bus && d->bus->io) {
		r = io_register(d->bus->io, bar_space(b), addr, b->size, b->ops, b->opaque);
		if (r < 0) {
			log_guest(LOG_GUEST_ERRORS, "pci %s: BAR%d at 0x%llx overlaps: not mapped",
				  d->name, i, (unsigned long long)addr);
			return;
		}
	}
	b->mapped = true;
	b->addr = addr;
	if (d->bar_changed)
		d->bar_changed(d, i, true, addr);
}

/* --- expansion ROM -------------------------------------------------------- */

/* Reads of the ROM window: the image, little-endian, zeros past its end.
 * Writes are ignored (no write callback), as on a real ROM. */
static uint64_t rom_read(void *opaque, uint64_t off, unsigned size)
{
	const struct pci_rom *rom = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size && i < 8; i++)
		if (off + i < rom->len)
			v |= (uint64_t)rom->data[off + i] << (8 * i);
	return v;
}

static const struct io_ops rom_ops = { .read = rom_read };

/* Address the ROM decodes at, or false: no ROM, memory decoding or the
 * enable bit off, address 0, or a window reaching 4 GiB (sizing). */
static bool rom_decode_addr(const struct pci_device *d, uint64_t *addr)
{
	uint32_t reg = pci_get_long(d->config, PCI_ROM_ADDRESS);
	uint64_t a;

	if (!d->rom.size || !(pci_get_word(d->config, PCI_COMMAND) & PCI_COMMAND_MEMORY) ||
	    !(reg & PCI_ROM_ADDRESS_ENABLE))
		return false;
	a = reg & ~(uint32_t)(d->rom.size - 1);
	if (!a || a + d->rom.size - 1 >= 0xffffffffull)
		return false;
	*addr = a;
	return true;
}

static void rom_unmap(struct pci_device *d)
{
	if (!d->rom.mapped)
		return;
	if (d->bus && d->bus->io)
		io_unregister(d->bus->io, IO_SPACE_MMIO, d->rom.addr);
	d->rom.mapped = false;
}

static void rom_map(struct pci_device *d, uint64_t addr)
{
	if (d->bus && d->bus->io &&
	    io_register(d->bus->io, IO_SPACE_MMIO, addr, d->rom.size, &rom_ops, &d->rom) < 0) {
		log_guest(LOG_GUEST_ERRORS, "pci %s: ROM at 0x%llx overlaps: not mapped",
			  d->name, (unsigned long long)addr);
		return;
	}
	d->rom.mapped = true;
	d->rom.addr = addr;
}

static void rom_update_mapping(struct pci_device *d)
{
	uint64_t addr;
	bool on = rom_decode_addr(d, &addr);

	if (d->rom.mapped && (!on || addr != d->rom.addr))
		rom_unmap(d);
	if (on && !d->rom.mapped)
		rom_map(d, addr);
}

static void pci_update_mappings(struct pci_device *d)
{
	uint64_t addr;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		bool on = bar_decode_addr(d, i, &addr);
		struct pci_bar *b = &d->bars[i];

		if (b->mapped && (!on || addr != b->addr))
			bar_unmap(d, i);
		if (on && !b->mapped)
			bar_map(d, i, addr);
	}
	rom_update_mapping(d);
}

/* --- INTx routing ------------------------------------------------------- */

unsigned pci_slot_pin_to_pirq(unsigned slot, unsigned pin)
{
	/* PIIX swizzle: slot 1 INTA -> PIRQA, slot 2 INTA -> PIRQB, ... */
	return (slot + pin + 2) & 3;
}

int pci_bus_pirq_to_irq(const struct pci_bus *bus, unsigned pirq)
{
	uint8_t rc;

	if (!bus->router || pirq >= PCI_NUM_PIRQS)
		return -1;
	rc = bus->router->config[bus->router_off + pirq];
	if (rc & PIIX_PIRQ_DISABLE)
		return -1;
	rc &= 0x0f;
	if (!(PIIX_PIRQ_VALID_IRQS & (1u << rc)))
		return -1;
	return rc;
}

static void pci_bus_update_isa_irqs(struct pci_bus *bus)
{
	uint8_t want[PCI_ISA_IRQS] = { 0 };

	for (unsigned p = 0; p < PCI_NUM_PIRQS; p++) {
		int irq = pci_bus_pirq_to_irq(bus, p);

		if (irq >= 0 && bus->pirq_count[p])
			want[irq] = 1;
	}
	for (unsigned i = 0; i < PCI_ISA_IRQS; i++) {
		if (want[i] == bus->isa_level[i])
			continue;
		bus->isa_level[i] = want[i];
		irq_line_set(&bus->isa_irq[i], want[i]);
	}
}

static bool intx_wanted(const struct pci_device *d)
{
	unsigned pin = d->config[PCI_INTERRUPT_PIN];

	return d->irq_level && pin >= 1 && pin <= 4 &&
	       !(pci_get_word(d->config, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
}

/* Bring the device's contribution to its PIRQ in line with its state. */
static void pci_update_intx(struct pci_device *d)
{
	struct pci_bus *bus = d->bus;
	bool want = intx_wanted(d);
	unsigned pirq;

	if (d->irq_level)
		d->config[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		d->config[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
	if (!bus || want == d->irq_counted)
		return;
	pirq = pci_slot_pin_to_pirq(d->devfn >> 3, d->config[PCI_INTERRUPT_PIN]);
	if (want)
		bus->pirq_count[pirq]++;
	else if (bus->pirq_count[pirq])
		bus->pirq_count[pirq]--;
	d->irq_counted = want;
	pci_bus_update_isa_irqs(bus);
}

void pci_set_irq(struct pci_device *d, int level)
{
	struct pci_bus *bus = d->bus;

	if (bus)
		pthread_mutex_lock(&bus->lock);
	d->irq_level = !!level;
	pci_update_intx(d);
	if (bus)
		pthread_mutex_unlock(&bus->lock);
}

/* --- config space access ------------------------------------------------ */

static bool access_ok(unsigned off, unsigned size)
{
	return (size == 1 || size == 2 || size == 4) && off + size <= PCI_CONFIG_SIZE;
}

static struct pci_device *bus_device(struct pci_bus *bus, unsigned devfn)
{
	return devfn < PCI_SLOTS * PCI_FUNCS ? bus->devs[devfn] : NULL;
}

uint32_t pci_config_read(struct pci_bus *bus, unsigned devfn, unsigned off, unsigned size)
{
	struct pci_device *d;
	uint32_t v = 0;

	if (!access_ok(off, size))
		return 0xffffffffu;
	pthread_mutex_lock(&bus->lock);
	d = bus_device(bus, devfn);
	if (!d) {
		v = size_mask(size);
	} else {
		for (unsigned i = 0; i < size; i++)
			v |= (uint32_t)d->config[off + i] << (8 * i);
		if (d->config_read)
			v = d->config_read(d, off, size, v) & size_mask(size);
	}
	pthread_mutex_unlock(&bus->lock);
	return v;
}

static void device_config_write(struct pci_device *d, unsigned off, unsigned size,
				uint32_t value)
{
	struct pci_bus *bus = d->bus;

	for (unsigned i = 0; i < size; i++) {
		unsigned o = off + i;
		uint8_t b = value >> (8 * i);
		uint8_t v = (d->config[o] & ~d->wmask[o]) | (b & d->wmask[o]);

		d->config[o] = v & ~(b & d->w1cmask[o]);
	}
	if (ranges_overlap(off, size, PCI_COMMAND, 2) ||
	    ranges_overlap(off, size, PCI_BASE_ADDRESS_0, 4 * PCI_NUM_BARS) ||
	    ranges_overlap(off, size, PCI_ROM_ADDRESS, 4))
		pci_update_mappings(d);
	if (ranges_overlap(off, size, PCI_COMMAND, 2))
		pci_update_intx(d);
	if (bus && bus->router == d &&
	    ranges_overlap(off, size, bus->router_off, PCI_NUM_PIRQS))
		pci_bus_update_isa_irqs(bus);
	if (d->config_write)
		d->config_write(d, off, size, value & size_mask(size));
}

void pci_config_write(struct pci_bus *bus, unsigned devfn, unsigned off, unsigned size,
		      uint32_t value)
{
	struct pci_device *d;

	if (!access_ok(off, size))
		return;
	pthread_mutex_lock(&bus->lock);
	d = bus_device(bus, devfn);
	if (d)
		device_config_write(d, off, size, value);
	pthread_mutex_unlock(&bus->lock);
}

/* --- configuration mechanism #1 ----------------------------------------- */

uint32_t pci_bus_addr_read(struct pci_bus *bus)
{
	return bus->config_addr;
}

void pci_bus_addr_write(struct pci_bus *bus, uint32_t value)
{
	bus->config_addr = value;
}

/* Decode the latched address for an access at 0xCFC + port_off. */
static bool decode_config_addr(const struct pci_bus *bus, unsigned port_off, unsigned size,
			       unsigned *devfn, unsigned *reg)
{
	uint32_t a = bus->config_addr;

	if (!(a & CONFIG_ADDR_ENABLE) || ((a >> 16) & 0xff) != 0)
		return false;
	if (port_off > 3 || port_off + size > 4)
		return false;
	*devfn = (a >> 8) & 0xff;
	*reg = (a & 0xfc) + port_off;
	return true;
}

uint32_t pci_bus_data_read(struct pci_bus *bus, unsigned port_off, unsigned size)
{
	unsigned devfn, reg;

	if (!decode_config_addr(bus, port_off, size, &devfn, &reg))
		return size_mask(size > 4 ? 4 : size);
	return pci_config_read(bus, devfn, reg, size);
}

void pci_bus_data_write(struct pci_bus *bus, unsigned port_off, unsigned size, uint32_t value)
{
	unsigned devfn, reg;

	if (!decode_config_addr(bus, port_off, size, &devfn, &reg))
		return;
	pci_config_write(bus, devfn, reg, size, value);
}

static uint64_t cf8_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_bus *bus = opaque;

	if (off == 0 && size == 4)
		return pci_bus_addr_read(bus);
	if (off == 1 && size == 1 && bus->cf9_ops && bus->cf9_ops->read)
		return bus->cf9_ops->read(bus->cf9_opaque, 0, 1);
	return ~0ull;
}

static void cf8_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	struct pci_bus *bus = opaque;

	if (off == 0 && size == 4)
		pci_bus_addr_write(bus, value);
	else if (off == 1 && size == 1 && bus->cf9_ops && bus->cf9_ops->write)
		bus->cf9_ops->write(bus->cf9_opaque, 0, value, 1);
	/* Other sizes at 0xCF8 (e.g. Linux's conf1 probe byte write) are ignored. */
}

static uint64_t cfc_read(void *opaque, uint64_t off, unsigned size)
{
	return pci_bus_data_read(opaque, off, size);
}

static void cfc_write(void *opaque, uint64_t off, uint64_t value, unsigned size)
{
	pci_bus_data_write(opaque, off, size, value);
}

static const struct io_ops cf8_ops = { .read = cf8_read, .write = cf8_write };
static const struct io_ops cfc_ops = { .read = cfc_read, .write = cfc_write };

/* --- bus management ----------------------------------------------------- */

void pci_bus_init(struct pci_bus *bus, struct io_bus *io, const struct irq_line *isa_irqs)
{
	pthread_mutexattr_t attr;

	memset(bus, 0, sizeof(*bus));
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&bus->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	bus->io = io;
	if (isa_irqs)
		memcpy(bus->isa_irq, isa_irqs, sizeof(bus->isa_irq));
}

int pci_bus_add_device(struct pci_bus *bus, struct pci_device *d, unsigned slot,
		       unsigned func)
{
	unsigned devfn = slot << 3 | func;
	int r = 0;

	if (slot >= PCI_SLOTS || func >= PCI_FUNCS)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	if (bus->devs[devfn]) {
		r = -EEXIST;
	} else {
		d->bus = bus;
		d->devfn = devfn;
		d->irq_level = 0;
		d->irq_counted = false;
		memcpy(d->reset_config, d->config, PCI_CONFIG_SIZE);
		bus->devs[devfn] = d;
	}
	pthread_mutex_unlock(&bus->lock);
	return r;
}

void pci_bus_set_router(struct pci_bus *bus, struct pci_device *router, uint8_t off)
{
	pthread_mutex_lock(&bus->lock);
	bus->router = router;
	bus->router_off = off;
	pci_bus_update_isa_irqs(bus);
	pthread_mutex_unlock(&bus->lock);
}

void pci_bus_set_cf9_ops(struct pci_bus *bus, const struct io_ops *ops, void *opaque)
{
	bus->cf9_ops = ops;
	bus->cf9_opaque = opaque;
}

void pci_bus_reset(struct pci_bus *bus)
{
	pthread_mutex_lock(&bus->lock);
	bus->config_addr = 0;
	for (unsigned i = 0; i < PCI_SLOTS * PCI_FUNCS; i++) {
		struct pci_device *d = bus->devs[i];

		if (!d)
			continue;
		memcpy(d->config, d->reset_config, PCI_CONFIG_SIZE);
		pci_update_mappings(d);
		pci_update_intx(d);
		if (d->reset)
			d->reset(d);
	}
	pci_bus_update_isa_irqs(bus);
	pthread_mutex_unlock(&bus->lock);
}

void pci_bus_post_load(struct pci_bus *bus)
{
	pthread_mutex_lock(&bus->lock);
	memset(bus->pirq_count, 0, sizeof(bus->pirq_count));
	for (unsigned i = 0; i < PCI_SLOTS * PCI_FUNCS; i++) {
		struct pci_device *d = bus->devs[i];

		if (!d)
			continue;
		d->irq_counted = false;
		pci_update_mappings(d);
		pci_update_intx(d);
		if (d->post_load)
			d->post_load(d);
	}
	pci_bus_update_isa_irqs(bus);
	pthread_mutex_unlock(&bus->lock);
}

/* --- migration state ---------------------------------------------------- */

/* Read-only header bytes (except STATUS, which the device updates) must
 * match the reset image: a stream cannot change what the device is. */
static int pci_device_post_load(void *opaque)
{
	const struct pci_device *d = opaque;

	for (unsigned o = 0; o < PCI_CONFIG_HEADER_END; o++) {
		uint8_t ro = ~d->wmask[o] & ~d->w1cmask[o];

		if (o == PCI_STATUS || o == PCI_STATUS + 1)
			continue;
		if ((d->config[o] & ro) != (d->reset_config[o] & ro))
			return -EINVAL;
	}
	return 0;
}

static const struct vmstate_field pci_device_fields[] = {
	VMSTATE_U8_ARRAY(struct pci_device, config),
	VMSTATE_U8_MAX(struct pci_device, irq_level, 1),
};
const struct vmstate_desc pci_device_vmstate =
	VMSTATE_DESC("pci-device", 1, pci_device_fields, pci_device_post_load);

static const struct vmstate_field pci_bus_fields[] = {
	VMSTATE_U32(struct pci_bus, config_addr),
};
const struct vmstate_desc pci_bus_vmstate =
	VMSTATE_DESC("pci-bus", 1, pci_bus_fields, NULL);

/* --- VM glue ------------------------------------------------------------ */

#define MAX_VMS 4
static struct { struct vm *vm; struct pci_bus *bus; } vm_buses[MAX_VMS];

struct pci_bus *pci_bus_of(struct vm *vm)
{
	for (unsigned i = 0; i < MAX_VMS; i++)
		if (vm_buses[i].vm == vm)
			return vm_buses[i].bus;
	return NULL;
}

static void pci_bus_reset_hook(void *opaque)
{
	pci_bus_reset(opaque);
}

struct pci_bus *pci_bus_create(struct vm *vm)
{
	struct irq_line irqs[PCI_ISA_IRQS];
	struct pci_bus *bus;
	unsigned i;

	if (pci_bus_of(vm))
		return NULL;
	for (i = 0; i < MAX_VMS && vm_buses[i].vm; i++)
		;
	if (i == MAX_VMS || !(bus = calloc(1, sizeof(*bus))))
		return NULL;
	for (unsigned g = 0; g < PCI_ISA_IRQS; g++)
		irqs[g] = vm_irq_line(vm, g);
	pci_bus_init(bus, vm->io, irqs);
	if (vm_register_pio(vm, PCI_CONFIG_ADDR, 4, &cf8_ops, bus) < 0 ||
	    vm_register_pio(vm, PCI_CONFIG_DATA, 4, &cfc_ops, bus) < 0) {
		log_error("pci: ports 0x%x/0x%x already taken", PCI_CONFIG_ADDR,
			  PCI_CONFIG_DATA);
		free(bus);
		return NULL;
	}
	vm_buses[i].vm = vm;
	vm_buses[i].bus = bus;
	vmstate_register(&pci_bus_vmstate, bus, sizeof(*bus), 0);
	vm_register_reset(vm, pci_bus_reset_hook, bus);
	return bus;
}

int pci_register_device(struct vm *vm, struct pci_device *d, unsigned slot, unsigned func)
{
	struct pci_bus *bus = pci_bus_of(vm);
	int r;

	if (!bus)
		return -ENODEV;
	r = pci_bus_add_device(bus, d, slot, func);
	if (r < 0) {
		log_error("pci: cannot add %s at 00:%02x.%x: %s", d->name, slot, func,
			  strerror(-r));
		return r;
	}
	vmstate_register(&pci_device_vmstate, d, sizeof(*d), d->devfn);
	return 0;
}
