/* PCI bus model: configuration mechanism #1 decoding, config space masks,
 * BAR sizing and mapping on a real I/O bus, the expansion ROM BAR (sizing,
 * enable, read-only mapping, moves) and ROM files (search, load, QEMU's ID
 * patch), PIRQ routing with sharing, vmstate round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "hw/pci.h"
#include "hw/pci_rom.h"
#include "hw/piix3.h"
#include "vmm/io.h"
#include "vmm/platform.h"
#include "vmm/vmstate.h"

#define CFG_ADDR(dev, fn, reg) (0x80000000u | (dev) << 11 | (fn) << 8 | (reg))

struct fake_irqs {
	int level[PCI_ISA_IRQS];
	int changes[PCI_ISA_IRQS];
};

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake_irqs *f = opaque;

	f->level[gsi] = level;
	f->changes[gsi]++;
}

struct fixture {
	struct pci_bus bus;
	struct io_bus *io;
	struct fake_irqs irqs;
	struct pci_device dev;
	int bar_events;
	int last_bar;
	bool last_mapped;
	uint64_t last_addr;
};

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	return 0xab000000u | off;
}

static const struct io_ops bar_ops = { .read = bar_read };

static void bar_changed(struct pci_device *d, int bar, bool mapped, uint64_t addr)
{
	struct fixture *f = d->opaque;

	f->bar_events++;
	f->last_bar = bar;
	f->last_mapped = mapped;
	f->last_addr = addr;
}

static void make_test_device(struct pci_device *d, void *opaque)
{
	pci_device_init(d, "test", 0x1af4, 0x1000, 0x01, 0x020000);
	d->config[PCI_INTERRUPT_PIN] = PCI_PIN_INTA;
	assert_int_equal(pci_register_bar(d, 0, PCI_BAR_IO, 32, false, &bar_ops, NULL), 0);
	assert_int_equal(pci_register_bar(d, 1, PCI_BAR_MEM32, 4096, false, &bar_ops, NULL), 0);
	assert_int_equal(pci_register_bar(d, 2, PCI_BAR_MEM64, 1 << 20, true, &bar_ops, NULL), 0);
	d->bar_changed = bar_changed;
	d->opaque = opaque;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct irq_line lines[PCI_ISA_IRQS];

	for (unsigned i = 0; i < PCI_ISA_IRQS; i++)
		lines[i] = (struct irq_line){ fake_set_level, &f->irqs, i };
	f->io = io_bus_new();
	pci_bus_init(&f->bus, f->io, lines);
	make_test_device(&f->dev, f);
	assert_int_equal(pci_bus_add_device(&f->bus, &f->dev, 3, 0), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	io_bus_free(f->io);
	free(f);
	return 0;
}

static uint32_t cfg_read(struct fixture *f, uint32_t addr, unsigned size)
{
	pci_bus_addr_write(&f->bus, addr & ~3u);
	return pci_bus_data_read(&f->bus, addr & 3, size);
}

static void cfg_write(struct fixture *f, uint32_t addr, unsigned size, uint32_t v)
{
	pci_bus_addr_write(&f->bus, addr & ~3u);
	pci_bus_data_write(&f->bus, addr & 3, size, v);
}

static void test_address_decoding(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0), 4), 0x10001af4);
	assert_int_equal(pci_bus_addr_read(&f->bus), CFG_ADDR(3, 0, 0));
	/* Enable bit clear, other bus, empty slot, other function. */
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0) & ~0x80000000u, 4), 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0) | 1 << 16, 4), 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(4, 0, 0), 4), 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 1, 0), 2), 0xffff);
	/* Class code dword at 0x08: class 02, subclass 00, prog-if 00, rev 01. */
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 8), 4), 0x02000001);
}

static void test_byte_word_offsets(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0), 1), 0xf4);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 1), 1), 0x1a);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 2), 2), 0x1000);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 3), 1), 0x10);
	/* Word crossing the dword: rejected. */
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 3), 2), 0xffff);
	/* Interrupt line at 0x3c, pin at 0x3d (read-only). */
	cfg_write(f, CFG_ADDR(3, 0, 0x3c), 1, 11);
	cfg_write(f, CFG_ADDR(3, 0, 0x3d), 1, 4);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x3c), 2), 0x010b);
	/* Word write at offset 2 of the dword hits the device ID: read-only. */
	cfg_write(f, CFG_ADDR(3, 0, 2), 2, 0xbeef);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0), 4), 0x10001af4);
	/* Latency timer via byte write at 0xCFD. */
	cfg_write(f, CFG_ADDR(3, 0, 0x0d), 1, 0x40);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x0c), 4) >> 8 & 0xff, 0x40);
}

static void test_read_only_and_w1c(void **state)
{
	struct fixture *f = *state;

	f->dev.config[PCI_STATUS + 1] |= 0x20;	/* received master abort */
	cfg_write(f, CFG_ADDR(3, 0, PCI_STATUS), 2, 0x0000);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, PCI_STATUS), 2) & 0x2000, 0x2000);
	cfg_write(f, CFG_ADDR(3, 0, PCI_STATUS), 2, 0x2000);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, PCI_STATUS), 2) & 0x2000, 0);
	/* Header type, class, vendor: read-only. */
	cfg_write(f, CFG_ADDR(3, 0, 0x08), 4, 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 8), 4), 0x02000001);
	/* Unused BAR 4 and ROM BAR read as 0 after all-ones. */
	cfg_write(f, CFG_ADDR(3, 0, 0x20), 4, 0xffffffff);
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x20), 4), 0);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0);
	/* COMMAND: only defined bits stick. */
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, 0xffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, PCI_COMMAND), 2), 0x0547);
}

static void test_bar_sizing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x10), 4), 0x1);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x14), 4), 0x0);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x18), 4), 0xc);
	for (unsigned bar = 0; bar < 4; bar++)
		cfg_write(f, CFG_ADDR(3, 0, 0x10 + 4 * bar), 4, 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x10), 4), 0xffffffe1);	/* I/O 32 */
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x14), 4), 0xfffff000);	/* mem 4K */
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x18), 4), 0xfff0000c);	/* 64 pf 1M */
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x1c), 4), 0xffffffff);
	/* Bad declarations. */
	assert_int_equal(pci_register_bar(&f->dev, 5, PCI_BAR_MEM64, 4096, false, NULL, NULL),
			 -EINVAL);
	assert_int_equal(pci_register_bar(&f->dev, 4, PCI_BAR_IO, 24, false, NULL, NULL),
			 -EINVAL);
}

static bool pio_read(struct fixture *f, uint64_t port, uint32_t *v)
{
	return io_dispatch(f->io, IO_SPACE_PIO, port, v, 4, false);
}

static void test_bar_mapping(void **state)
{
	struct fixture *f = *state;
	uint32_t v = 0;
	uint64_t v64 = 0;

	cfg_write(f, CFG_ADDR(3, 0, 0x10), 4, 0xc040);
	assert_int_equal(f->bar_events, 0);
	assert_false(pio_read(f, 0xc044, &v));
	/* I/O decode on: BAR 0 appears. */
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_IO);
	assert_int_equal(f->bar_events, 1);
	assert_true(f->last_mapped);
	assert_int_equal(f->last_addr, 0xc040);
	assert_true(pio_read(f, 0xc044, &v));
	assert_int_equal(v, 0xab000004);
	/* Move it while enabled. */
	cfg_write(f, CFG_ADDR(3, 0, 0x10), 4, 0xc080);
	assert_false(pio_read(f, 0xc044, &v));
	assert_true(pio_read(f, 0xc080, &v));
	assert_int_equal(f->bar_events, 3);
	/* Sizing pattern with decode on must not map over the top. */
	cfg_write(f, CFG_ADDR(3, 0, 0x14), 4, 0xfebf0000);
	cfg_write(f, CFG_ADDR(3, 0, 0x18), 4, 0x0);
	cfg_write(f, CFG_ADDR(3, 0, 0x1c), 4, 0x1);
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	assert_true(io_dispatch(f->io, IO_SPACE_MMIO, 0xfebf0010, &v, 4, false));
	assert_int_equal(v, 0xab000010);
	assert_true(io_dispatch(f->io, IO_SPACE_MMIO, 0x100000008ull, &v64, 8, false));
	assert_int_equal(v64, 0xab000008);
	cfg_write(f, CFG_ADDR(3, 0, 0x14), 4, 0xffffffff);
	assert_false(f->dev.bars[1].mapped);
	/* Memory decode off: both memory BARs go, I/O stays. */
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_IO);
	assert_false(io_dispatch(f->io, IO_SPACE_MMIO, 0x100000008ull, &v64, 8, false));
	assert_true(pio_read(f, 0xc080, &v));
	/* Bus reset: everything unmapped, config back to reset values. */
	pci_bus_reset(&f->bus);
	assert_false(pio_read(f, 0xc080, &v));
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x10), 4), 0x1);
}

static struct pci_device *add_intx_device(struct fixture *f, struct pci_device *d,
					  unsigned slot, unsigned pin)
{
	pci_device_init(d, "intx", 0x1234, 0x5678, 0, 0xff0000);
	d->config[PCI_INTERRUPT_PIN] = pin;
	assert_int_equal(pci_bus_add_device(&f->bus, d, slot, 0), 0);
	return d;
}

static void test_pirq_routing_and_sharing(void **state)
{
	struct fixture *f = *state;
	struct pci_device router, a, b, c;

	piix3_isa_init_config(&router);
	assert_int_equal(pci_bus_add_device(&f->bus, &router, 1, 0), 0);
	pci_bus_set_router(&f->bus, &router, PIIX3_PIRQRC);
	/* PIIX swizzle. */
	assert_int_equal(pci_slot_pin_to_pirq(1, 1), 0);
	assert_int_equal(pci_slot_pin_to_pirq(2, 1), 1);
	assert_int_equal(pci_slot_pin_to_pirq(3, 1), 2);
	assert_int_equal(pci_slot_pin_to_pirq(2, 2), 2);
	assert_int_equal(pci_slot_pin_to_pirq(4, 4), 2);
	add_intx_device(f, &a, 5, 1);	/* PIRQ (5+1+2)&3 = 0: A */
	add_intx_device(f, &b, 4, 2);	/* (4+2+2)&3 = 0: A, shares */
	add_intx_device(f, &c, 6, 1);	/* B */

	/* Routing disabled at reset: nothing reaches the ISA lines. */
	pci_set_irq(&a, 1);
	for (unsigned i = 0; i < PCI_ISA_IRQS; i++)
		assert_int_equal(f->irqs.changes[i], 0);
	assert_int_equal(pci_bus_pirq_to_irq(&f->bus, 0), -1);
	/* Program PIRQA -> 11 through config space: the pending level shows. */
	cfg_write(f, CFG_ADDR(1, 0, 0x60), 1, 11);
	assert_int_equal(pci_bus_pirq_to_irq(&f->bus, 0), 11);
	assert_int_equal(f->irqs.level[11], 1);
	/* Sharing: B raises then A lowers: line stays up until B lowers. */
	pci_set_irq(&b, 1);
	pci_set_irq(&a, 0);
	assert_int_equal(f->irqs.level[11], 1);
	assert_int_equal(f->irqs.changes[11], 1);
	pci_set_irq(&b, 0);
	assert_int_equal(f->irqs.level[11], 0);
	/* Repeated levels are idempotent. */
	pci_set_irq(&a, 1);
	pci_set_irq(&a, 1);
	pci_set_irq(&a, 0);
	assert_int_equal(f->irqs.level[11], 0);
	assert_int_equal(f->irqs.changes[11], 4);
	/* Two PIRQs on one IRQ (SeaBIOS: A,B -> 10). */
	cfg_write(f, CFG_ADDR(1, 0, 0x60), 2, 0x0a0a);
	pci_set_irq(&a, 1);
	pci_set_irq(&c, 1);
	pci_set_irq(&a, 0);
	assert_int_equal(f->irqs.level[10], 1);
	/* Re-route B while asserted: moves from 10 to 5. */
	cfg_write(f, CFG_ADDR(1, 0, 0x61), 1, 5);
	assert_int_equal(f->irqs.level[10], 0);
	assert_int_equal(f->irqs.level[5], 1);
	/* Disable bit, INTx disable in COMMAND, invalid IRQ 2. */
	cfg_write(f, CFG_ADDR(1, 0, 0x61), 1, 0x85);
	assert_int_equal(f->irqs.level[5], 0);
	cfg_write(f, CFG_ADDR(1, 0, 0x61), 1, 0x05);
	assert_int_equal(f->irqs.level[5], 1);
	cfg_write(f, CFG_ADDR(6, 0, PCI_COMMAND), 2, PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(f->irqs.level[5], 0);
	assert_true(c.config[PCI_STATUS] & PCI_STATUS_INTERRUPT);
	cfg_write(f, CFG_ADDR(6, 0, PCI_COMMAND), 2, 0);
	assert_int_equal(f->irqs.level[5], 1);
	cfg_write(f, CFG_ADDR(1, 0, 0x61), 1, 0x02);
	assert_int_equal(pci_bus_pirq_to_irq(&f->bus, 1), -1);
	assert_int_equal(f->irqs.level[2], 0);
	assert_int_equal(f->irqs.changes[2], 0);
}

static void test_capabilities(void **state)
{
	struct fixture *f = *state;
	int a = pci_add_capability(&f->dev, 0x11, 12);
	int b = pci_add_capability(&f->dev, 0x09, 5);

	assert_int_equal(a, 0x40);
	assert_int_equal(b, 0x4c);
	assert_int_equal(f->dev.config[PCI_CAPABILITY_LIST], 0x40);
	assert_int_equal(f->dev.config[0x41], 0x4c);
	assert_int_equal(f->dev.config[0x4d], 0);
	assert_true(f->dev.config[PCI_STATUS] & PCI_STATUS_CAP_LIST);
	assert_int_equal(pci_find_capability(&f->dev, 0x09), 0x4c);
	assert_int_equal(pci_find_capability(&f->dev, 0x05), 0);
	assert_int_equal(pci_add_capability(&f->dev, 0x09, 200), -ENOSPC);
}

static void test_vmstate_round_trip(void **state)
{
	struct fixture *f = *state;
	struct pci_device copy;
	size_t len = vmstate_size(&pci_device_vmstate);
	uint8_t *buf = malloc(len);
	char err[128];
	uint32_t v;

	cfg_write(f, CFG_ADDR(3, 0, 0x10), 4, 0xc100);
	cfg_write(f, CFG_ADDR(3, 0, 0x3c), 1, 10);
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_IO);
	assert_int_equal(vmstate_save(&pci_device_vmstate, &f->dev, buf), len);

	/* Load into a fresh instance of the same device on another bus. */
	{
		struct fixture g = { 0 };

		g.io = io_bus_new();
		pci_bus_init(&g.bus, g.io, NULL);
		make_test_device(&copy, &g);
		assert_int_equal(pci_bus_add_device(&g.bus, &copy, 3, 0), 0);
		assert_int_equal(vmstate_load(&pci_device_vmstate, &copy, sizeof(copy), buf, len,
					      err, sizeof(err)), 0);
		assert_memory_equal(copy.config, f->dev.config, PCI_CONFIG_SIZE);
		pci_bus_post_load(&g.bus);
		assert_true(io_dispatch(g.io, IO_SPACE_PIO, 0xc108, &v, 4, false));
		assert_int_equal(v, 0xab000008);
		/* A stream that changes the vendor ID is rejected untouched. */
		buf[0] ^= 0xff;
		assert_int_not_equal(vmstate_load(&pci_device_vmstate, &copy, sizeof(copy), buf,
						  len, err, sizeof(err)), 0);
		assert_int_equal(pci_get_word(copy.config, 0), 0x1af4);
		buf[0] ^= 0xff;
		/* BAR type bits are read-only too. */
		buf[0x10] = 0x00;
		assert_int_not_equal(vmstate_load(&pci_device_vmstate, &copy, sizeof(copy), buf,
						  len, err, sizeof(err)), 0);
		io_bus_free(g.io);
	}
	free(buf);
}

static void test_piix_config_spaces(void **state)
{
	struct fixture *f = *state;
	struct pci_device isa, pm;

	piix3_isa_init_config(&isa);
	piix4_pm_init_config(&pm);
	assert_int_equal(pci_bus_add_device(&f->bus, &isa, 1, 0), 0);
	assert_int_equal(pci_bus_add_device(&f->bus, &pm, 1, 3), 0);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 0, 0), 4), 0x70008086);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 0, 0x0a), 2), 0x0601);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 0, 0x0e), 1), 0x80);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 0, 0x60), 4), 0x80808080);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 3, 0), 4), 0x71138086);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 3, 0x08), 4), 0x06800003);
	/* SeaBIOS's PM setup: PMBA stays where the PM block really is. */
	cfg_write(f, CFG_ADDR(1, 3, 0x40), 4, 0xb001);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 3, 0x40), 4), ACPI_PM_BASE | 1);
	cfg_write(f, CFG_ADDR(1, 3, 0x80), 1, 0xff);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 3, 0x80), 1), 0x01);
	cfg_write(f, CFG_ADDR(1, 3, 0x90), 4, 0xb100);
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 3, 0x90), 4), 0xb101);
	/* APMC_EN preset: SeaBIOS skips SMM setup. */
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 3, 0x58), 4) & (1u << 25), 1u << 25);
	/* QEMU subsystem IDs (SeaBIOS's "Running on QEMU" check). */
	assert_int_equal(cfg_read(f, CFG_ADDR(1, 0, 0x2c), 4), 0x11001af4);
}

static int reset_count;
static void count_reset(void *opaque)
{
	reset_count++;
}

static void test_reset_control(void **state)
{
	struct piix3 p = { 0 };

	piix3_isa_init_config(&p.dev);
	p.request_reset = count_reset;
	piix3_rcr_write(&p, 0x02);
	assert_int_equal(reset_count, 0);
	piix3_rcr_write(&p, 0x06);
	assert_int_equal(reset_count, 1);
	piix3_rcr_write(&p, 0x0e);
	assert_int_equal(reset_count, 2);
	assert_int_equal(p.rcr, 0x0a);
}


/* --- expansion ROM --------------------------------------------------------- */

#define ROM_LEN 3000	/* BAR: 4 KiB */

static uint8_t rom_image[ROM_LEN];

static void fill_rom_image(void)
{
	for (unsigned i = 0; i < ROM_LEN; i++)
		rom_image[i] = (uint8_t)(i * 7 + 1);
	rom_image[0] = 0x55;
	rom_image[1] = 0xaa;
}

static bool mmio_read32(struct fixture *f, uint64_t addr, uint32_t *v)
{
	*v = 0;
	return io_dispatch(f->io, IO_SPACE_MMIO, addr, v, 4, false);
}

static void test_rom_sizing(void **state)
{
	struct fixture *f = *state;
	struct pci_device d;

	fill_rom_image();
	assert_int_equal(pci_register_rom(&f->dev, rom_image, ROM_LEN), 0);
	assert_int_equal(f->dev.rom.size, 4096);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0);
	/* SeaBIOS's probe (all ones but enable), then all ones. */
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, ~1u);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0xfffff000);
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xffffffff);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0xfffff001);
	/* Reserved bits 10:1 never stick. */
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfeb807fe);
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0xfeb80000);
	/* QEMU's rule: the file size rounded up to a power of two (the
	 * iPXE virtio ROM's 249344 bytes: 256 KiB); at least 2 KiB. */
	pci_device_init(&d, "rom", 0x1af4, 0x1000, 0, 0x020000);
	assert_int_equal(pci_register_rom(&d, rom_image, 1), 0);
	assert_int_equal(d.rom.size, PCI_ROM_MIN_SIZE);
	assert_int_equal(pci_get_long(d.wmask, 0x30), 0xfffff801);
	assert_int_equal(pci_register_rom(&d, rom_image, 249344), 0);
	assert_int_equal(d.rom.size, 256 * 1024);
	assert_int_equal(pci_register_rom(&d, rom_image, 4096), 0);
	assert_int_equal(d.rom.size, 4096);
	assert_int_equal(pci_register_rom(&d, rom_image, 0), -EINVAL);
	assert_int_equal(pci_register_rom(&d, NULL, 10), -EINVAL);
	assert_int_equal(pci_register_rom(&d, rom_image, PCI_ROM_MAX_SIZE + 1), -EINVAL);
}

static void test_rom_mapping(void **state)
{
	struct fixture *f = *state;
	uint32_t v, junk = 0xdeadbeef;
	uint8_t b;

	fill_rom_image();
	assert_int_equal(pci_register_rom(&f->dev, rom_image, ROM_LEN), 0);
	/* Address without the enable bit: nothing, even with decoding on. */
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_MEMORY);
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfeb80000);
	assert_false(mmio_read32(f, 0xfeb80000, &v));
	/* Enabled but memory decoding off: nothing. */
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, 0);
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfeb80001);
	assert_false(mmio_read32(f, 0xfeb80000, &v));
	assert_false(f->dev.rom.mapped);
	/* Both on: the image, little-endian, any width; zeros past its end. */
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_MEMORY);
	assert_true(mmio_read32(f, 0xfeb80000, &v));
	assert_int_equal(v, rom_image[0] | rom_image[1] << 8 | rom_image[2] << 16 |
			 (uint32_t)rom_image[3] << 24);
	assert_true(io_dispatch(f->io, IO_SPACE_MMIO, 0xfeb80000 + 1234, &b, 1, false));
	assert_int_equal(b, rom_image[1234]);
	assert_true(mmio_read32(f, 0xfeb80000 + ROM_LEN - 2, &v));
	assert_int_equal(v, rom_image[ROM_LEN - 2] | rom_image[ROM_LEN - 1] << 8);
	assert_true(mmio_read32(f, 0xfeb80ffc, &v));
	assert_int_equal(v, 0);
	assert_false(mmio_read32(f, 0xfeb81000, &v));
	/* Read-only: writes are absorbed and change nothing. */
	assert_true(io_dispatch(f->io, IO_SPACE_MMIO, 0xfeb80000, &junk, 4, true));
	assert_true(mmio_read32(f, 0xfeb80000, &v));
	assert_int_equal(v & 0xffff, 0xaa55);
	assert_int_equal(rom_image[0], 0x55);
	/* Move while enabled: the old window goes. */
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfeb90001);
	assert_false(mmio_read32(f, 0xfeb80000, &v));
	assert_true(mmio_read32(f, 0xfeb90000, &v));
	assert_int_equal(f->dev.rom.addr, 0xfeb90000);
	/* Byte write clearing the enable bit unmaps it. */
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 1, 0x00);
	assert_false(mmio_read32(f, 0xfeb90000, &v));
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0xfeb90000);
	/* The sizing pattern with the enable bit is not a mapping. */
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xffffffff);
	assert_false(f->dev.rom.mapped);
	/* Over another region (BAR 1): refused, nothing breaks, BAR 1 wins. */
	cfg_write(f, CFG_ADDR(3, 0, 0x14), 4, 0xfebf0000);
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfebf0001);
	assert_false(f->dev.rom.mapped);
	assert_true(mmio_read32(f, 0xfebf0010, &v));
	assert_int_equal(v, 0xab000010);
	/* Elsewhere again, then a bus reset: unmapped, register back to 0. */
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfeb80001);
	assert_true(mmio_read32(f, 0xfeb80000, &v));
	pci_bus_reset(&f->bus);
	assert_false(mmio_read32(f, 0xfeb80000, &v));
	assert_int_equal(cfg_read(f, CFG_ADDR(3, 0, 0x30), 4), 0);
}

static void test_rom_vmstate(void **state)
{
	struct fixture *f = *state;
	size_t len = vmstate_size(&pci_device_vmstate);
	uint8_t *buf = malloc(len);
	struct fixture g = { 0 };
	struct pci_device copy;
	char err[128];
	uint32_t v;

	fill_rom_image();
	assert_int_equal(pci_register_rom(&f->dev, rom_image, ROM_LEN), 0);
	cfg_write(f, CFG_ADDR(3, 0, 0x30), 4, 0xfeb80001);
	cfg_write(f, CFG_ADDR(3, 0, PCI_COMMAND), 2, PCI_COMMAND_MEMORY);
	assert_int_equal(vmstate_save(&pci_device_vmstate, &f->dev, buf), len);
	g.io = io_bus_new();
	pci_bus_init(&g.bus, g.io, NULL);
	make_test_device(&copy, &g);
	assert_int_equal(pci_register_rom(&copy, rom_image, ROM_LEN), 0);
	assert_int_equal(pci_bus_add_device(&g.bus, &copy, 3, 0), 0);
	assert_int_equal(vmstate_load(&pci_device_vmstate, &copy, sizeof(copy), buf, len, err,
				      sizeof(err)), 0);
	pci_bus_post_load(&g.bus);
	assert_true(io_dispatch(g.io, IO_SPACE_MMIO, 0xfeb80000, &v, 4, false));
	assert_int_equal(v & 0xffff, 0xaa55);
	io_bus_free(g.io);
	free(buf);
}

/* An option ROM image: header, PCIR for vendor:device, checksum byte 6
 * making the first 512 bytes sum to zero. */
static void make_pcir_image(uint8_t *img, size_t len, uint16_t vendor, uint16_t device)
{
	uint8_t sum = 0;

	memset(img, 0, len);
	img[0] = 0x55;
	img[1] = 0xaa;
	img[2] = len / 512;
	img[0x18] = 0x1c;
	memcpy(img + 0x1c, "PCIR", 4);
	img[0x20] = vendor & 0xff;
	img[0x21] = vendor >> 8;
	img[0x22] = device & 0xff;
	img[0x23] = device >> 8;
	img[0x30] = 0x00;	/* x86 code */
	img[0x31] = 0x80;	/* last image */
	for (size_t i = 0; i < len; i++)
		sum += img[i];
	img[6] = (uint8_t)-sum;
}

static uint8_t byte_sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	for (size_t i = 0; i < len; i++)
		s += p[i];
	return s;
}

static void test_rom_patch_ids(void **state)
{
	uint8_t img[512], orig[512];

	/* iPXE's virtio ROM names 1af4:1041; a transitional device is 1000. */
	make_pcir_image(img, sizeof(img), 0x1af4, 0x1041);
	assert_int_equal(byte_sum(img, sizeof(img)), 0);
	pci_rom_patch_ids(img, sizeof(img), 0x1af4, 0x1000);
	assert_int_equal(img[0x22] | img[0x23] << 8, 0x1000);
	assert_int_equal(byte_sum(img, sizeof(img)), 0);
	/* Same device, other vendor, no signature, PCIR out of bounds: as is. */
	make_pcir_image(img, sizeof(img), 0x1af4, 0x1000);
	memcpy(orig, img, sizeof(img));
	pci_rom_patch_ids(img, sizeof(img), 0x1af4, 0x1000);
	pci_rom_patch_ids(img, sizeof(img), 0x8086, 0x100e);
	assert_memory_equal(img, orig, sizeof(img));
	img[0] = 0;
	memcpy(orig, img, sizeof(img));
	pci_rom_patch_ids(img, sizeof(img), 0x1af4, 0x1041);
	assert_memory_equal(img, orig, sizeof(img));
	make_pcir_image(img, sizeof(img), 0x1af4, 0x1041);
	img[0x18] = 0xfe;
	img[0x19] = 0x01;
	memcpy(orig, img, sizeof(img));
	pci_rom_patch_ids(img, sizeof(img), 0x1af4, 0x1000);
	assert_memory_equal(img, orig, sizeof(img));
	pci_rom_patch_ids(img, 20, 0x1af4, 0x1000);	/* shorter than the header */
	assert_memory_equal(img, orig, sizeof(img));
}

static void test_rom_files(void **state)
{
	char dir[] = "/tmp/test_pci_rom.XXXXXX", path[256], err[256], found[256];
	uint8_t *data;
	size_t len;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	/* Missing: QEMU's message. */
	assert_int_equal(pci_rom_load("nonexistent-rom.bin", &data, &len, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, "failed to find romfile \"nonexistent-rom.bin\"");
	assert_null(data);
	assert_int_equal(pci_rom_find("", found, sizeof(found)), -ENOENT);
	/* Empty. */
	snprintf(path, sizeof(path), "%s/empty.rom", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(pci_rom_load(path, &data, &len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	/* A directory is not a ROM. */
	assert_int_equal(pci_rom_load(dir, &data, &len, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	/* A path: read whole. */
	snprintf(path, sizeof(path), "%s/small.rom", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fill_rom_image();
	assert_int_equal(fwrite(rom_image, 1, ROM_LEN, fp), ROM_LEN);
	fclose(fp);
	assert_int_equal(pci_rom_load(path, &data, &len, err, sizeof(err)), 0);
	assert_int_equal(len, ROM_LEN);
	assert_memory_equal(data, rom_image, ROM_LEN);
	free(data);
	assert_int_equal(pci_rom_find(path, found, sizeof(found)), 0);
	assert_string_equal(found, path);
	/* Too large (sparse file). */
	assert_int_equal(truncate(path, PCI_ROM_MAX_SIZE + 1ll), 0);
	assert_int_equal(pci_rom_load(path, &data, &len, err, sizeof(err)), -EFBIG);
	assert_non_null(strstr(err, "too large"));
	unlink(path);
	snprintf(path, sizeof(path), "%s/empty.rom", dir);
	unlink(path);
	rmdir(dir);
	/* A bare name is looked up in QEMU's firmware directories
	 * (ipxe-qemu puts efi-virtio.rom in /usr/lib/ipxe/qemu). */
	if (access("/usr/lib/ipxe/qemu/efi-virtio.rom", R_OK) == 0 &&
	    access("efi-virtio.rom", F_OK) != 0) {
		assert_int_equal(pci_rom_find("efi-virtio.rom", found, sizeof(found)), 0);
		assert_string_equal(found, "/usr/lib/ipxe/qemu/efi-virtio.rom");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_address_decoding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_word_offsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_only_and_w1c, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rom_sizing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rom_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rom_vmstate, setup, teardown),
		cmocka_unit_test(test_rom_patch_ids),
		cmocka_unit_test(test_rom_files),
		cmocka_unit_test_setup_teardown(test_pirq_routing_and_sharing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capabilities, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vmstate_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_piix_config_spaces, setup, teardown),
		cmocka_unit_test(test_reset_control),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
