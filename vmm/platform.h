/* The PC platform's fixed addresses, ports and interrupt numbers, shared
 * by the device models and the firmware-table builders (ACPI, MP, e820)
 * so the tables always describe what the devices really implement. */
#ifndef VMM_PLATFORM_H
#define VMM_PLATFORM_H

/* Legacy ISA ports and their IRQs */
#define COM1_PORT 0x3f8
#define COM2_PORT 0x2f8
#define COM3_PORT 0x3e8
#define COM4_PORT 0x2e8
#define COM1_IRQ  4
#define COM2_IRQ  3
#define RTC_PORT  0x70		/* 0x70 index, 0x71 data */
#define RTC_IRQ   8
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64
#define I8042_KBD_IRQ   1
#define I8042_AUX_IRQ   12
#define PIT_IRQ   0		/* in-kernel PIT, IOAPIC pin 2 via override */
#define POST_PORT 0x80
#define PORT92_PORT 0x92	/* system control port A: fast A20 and fast reset */
#define DEBUGCON_PORT 0x402
#define EXIT_PORT_DEFAULT 0x501	/* QEMU isa-debug-exit default */
#define RESET_CONTROL_PORT 0xcf9
#define PCI_CONFIG_ADDR 0xcf8
#define PCI_CONFIG_DATA 0xcfc
#define FW_CFG_PORT_SEL  0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_PORT_DMA  0x514

/* PIIX4-compatible ACPI power management block (QEMU's addresses) */
#define ACPI_PM_BASE     0x600
#define ACPI_PM1_EVT     (ACPI_PM_BASE + 0x00)	/* status 2 bytes, enable 2 */
#define ACPI_PM1_CNT     (ACPI_PM_BASE + 0x04)
#define ACPI_PM_TMR      (ACPI_PM_BASE + 0x08)
#define ACPI_PM_LEN      0x40
#define ACPI_GPE0_BASE   0xafe0
#define ACPI_GPE0_LEN    4
#define ACPI_SCI_IRQ     9
#define ACPI_SMI_CMD     0xb2
#define ACPI_S5_SLP_TYP  0	/* value written to SLP_TYP for S5 (DSDT _S5) */
#define ACPI_ENABLE_CMD  0xf1	/* FADT ACPI_ENABLE: written to SMI_CMD, sets SCI_EN */
#define ACPI_DISABLE_CMD 0xf0	/* FADT ACPI_DISABLE: clears SCI_EN */
#define ACPI_PM_TMR_BITS 24	/* PM timer width: FADT TMR_VAL_EXT must be 0 */

/* Interrupt controllers */
#define IOAPIC_BASE      0xfec00000ULL
#define LAPIC_BASE       0xfee00000ULL
#define IOAPIC_PINS      24
#define XAPIC_ID_LIMIT   255	/* APIC IDs from 255 on need x2APIC (0xff: broadcast) */

/* PCI: host bridge i440FX 00:00.0, PIIX3 ISA 00:01.0, PIIX4 PM 00:01.3 */
#define PCI_MMIO_START   0xc0000000ULL
#define PCI_MMIO_END     0xfec00000ULL
#define PCI_IO_START     0xc000
#define PCI_IO_END       0x10000
/* PIRQA..D default routing (as SeaBIOS programs it) */
#define PIRQ_DEFAULT_IRQS { 10, 10, 11, 11 }

/* Firmware and boot areas in guest-physical memory */
#define BIOS_AREA_START  0xe0000ULL	/* legacy BIOS window, 128 KiB */
#define BIOS_AREA_SIZE   0x20000ULL
#define ACPI_TABLES_ADDR 0xe0000ULL	/* direct boot: RSDP lives here */
#define MPTABLE_ADDR     0x9fc00ULL	/* direct boot: MP floating pointer, EBDA */
#define ACPI_TABLES_END  0xf0000ULL	/* direct boot: ACPI tables end below */
#define MPTABLE_CONFIG_ADDR 0xf0000ULL	/* direct boot: MP configuration table */
#define EBDA_START       0x9fc00ULL
#define VGA_HOLE_START   0xa0000ULL

#endif
