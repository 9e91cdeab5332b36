/* Intel MultiProcessor Specification 1.4 tables for direct boot: the
 * floating pointer in the EBDA (MPTABLE_ADDR) and the configuration table
 * (processors, ISA and PCI buses, the IOAPIC, interrupt assignments) at
 * MPTABLE_CONFIG_ADDR in the BIOS area. Describes vmm/platform.h. */
#ifndef VMM_MPTABLE_H
#define VMM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

struct guest_memory;

/* The MP spec has 8-bit APIC IDs only: CPUs 0..253 with the IOAPIC at ID
 * ncpus (at most 254, never the 0xff broadcast ID). With more CPUs there is
 * no MP table at all: the guest uses the ACPI MADT (Linux prefers it). */
#define MPTABLE_MAX_CPUS	254
#define MPTABLE_PCI_BUS_ID	0
#define MPTABLE_ISA_BUS_ID	1

/* Size in bytes of the configuration table for ncpus (0 if ncpus is out
 * of range). */
size_t mptable_config_size(unsigned ncpus);

/* Writes both structures; returns 0, -EINVAL (ncpus 0) or -EFAULT (the
 * areas are not guest RAM). For more than MPTABLE_MAX_CPUS CPUs it writes
 * no table, only clears the floating pointer slot (so a stale "_MP_" from
 * before a reset cannot be found), and returns 0. The EBDA and BIOS area
 * are already E820_RESERVED in the layout of memory.c. */
int mptable_install(struct guest_memory *mem, unsigned ncpus);

#endif
