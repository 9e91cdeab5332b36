/* The virtual machine: KVM file descriptors, guest memory, vCPUs, I/O
 * buses and lifecycle. Everything device models may use from the core. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include "vmm/config.h"
#include "vmm/io.h"
#include "vmm/irq.h"
#include "vmm/memory.h"
#include "vmm/device.h"

struct vcpu;
struct event_loop;
struct vm_routes;

enum vm_exit_reason {
	VM_RUNNING = 0,
	VM_POWEROFF,		/* ACPI S5, exit port: status 0 / exit code */
	VM_RESET,		/* guest reset request */
	VM_QUIT,		/* user quit (Ctrl-a x, signal) */
	VM_FATAL,		/* internal error / failed entry */
};

/* Exit codes of the minikvm process. */
#define EXIT_CONFIG_ERROR 1
#define EXIT_GUEST_FATAL  3	/* KVM internal error, failed entry */

struct vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	const struct vm_config *cfg;
	struct guest_memory mem;
	struct io_bus *io;
	struct event_loop *loop;

	unsigned ncpus;
	struct vcpu **vcpus;

	/* Entry state of the BSP, chosen by the boot loader (boot_*.c). The
	 * loader writes any GDT/page tables it needs into guest memory; the
	 * vCPU code only loads these registers. */
	struct boot_state {
		enum boot_mode {
			BOOT_FIRMWARE = 0,	/* reset vector f000:fff0 */
			BOOT_PROTECTED_32,	/* flat 32-bit, paging off */
			BOOT_LONG_64,		/* 64-bit, paging on, cr3 set */
		} mode;
		uint64_t rip, rsp, rax, rbx, rsi;
		uint64_t cr3;			/* BOOT_LONG_64 only */
		uint64_t gdt_base;		/* GDT written by the loader: */
		uint16_t gdt_limit;		/* code 0x10, data 0x18 */
	} boot;
	/* Lifecycle. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_exit_reason exit_reason;
	int exit_code;
	bool reset_requested;

	/* The GSI routing table: the ISA/IOAPIC wiring plus MSI routes. */
	struct vm_routes *routes;

	struct reset_hook *reset_hooks;
	/* Rewrites the boot payload (kernel, tables) on a guest reset. */
	int (*reload_boot)(struct vm *vm, char *err, size_t errlen);
};

/* Create the KVM VM, RAM and irqchip (no vCPUs, no devices yet). */
int vm_create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen);
int vm_create_vcpus(struct vm *vm, char *err, size_t errlen);
/* Start vCPUs and the event loop; returns the process exit status when the
 * guest powers off, quits or fails. */
int vm_run(struct vm *vm);

/* Map host memory into guest-physical space (a KVM memory slot).
 * Returns a slot handle >= 0 or a negative errno. readonly slots turn
 * guest writes into MMIO exits (ROM). */
int vm_map_memory(struct vm *vm, uint64_t gpa, uint64_t size, void *hva, bool readonly);
int vm_unmap_memory(struct vm *vm, int slot);

/* ISA/IOAPIC interrupt line for a GSI. */
struct irq_line vm_irq_line(struct vm *vm, unsigned gsi);
/* MSI delivery through KVM_SIGNAL_MSI: one ioctl per interrupt. */
int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data);

/* MSI routes: a GSI (from VM_MSI_GSI_BASE up) whose routing entry is an
 * MSI message. With an irqfd on it, writing 1 to the eventfd delivers the
 * message from any thread without an ioctl or a userspace exit. KVM
 * replaces the whole routing table on every change, so vm.c keeps the list
 * and rebuilds the table (ISA/IOAPIC routes included) each time; a change
 * costs an ioctl that waits for KVM's readers (50-200 us measured here):
 * update routes when the guest reprograms a vector, not per interrupt.
 * All functions are thread-safe and return 0 (or the GSI) or -errno;
 * on failure the previous routes stay in force. */
#define VM_MSI_GSI_BASE		24	/* after the IOAPIC pins */
#define VM_MSI_ROUTES_MAX	1024
int vm_msi_route_alloc(struct vm *vm, uint64_t addr, uint32_t data);
int vm_msi_route_update(struct vm *vm, unsigned gsi, uint64_t addr, uint32_t data);
/* Detach the GSI's irqfds first: signals on a released GSI are lost. */
int vm_msi_route_release(struct vm *vm, unsigned gsi);
/* Edge irqfd (KVM_IRQFD): each write to the eventfd fd raises the GSI. */
int vm_irqfd_attach(struct vm *vm, int fd, unsigned gsi);
/* Level-triggered irqfd for an IOAPIC pin (INTx): a write asserts the
 * line; KVM deasserts it at the guest's EOI and then signals resample_fd,
 * where the device re-raises it if its condition still holds. */
int vm_irqfd_attach_level(struct vm *vm, int fd, int resample_fd, unsigned gsi);
int vm_irqfd_detach(struct vm *vm, int fd, unsigned gsi);

/* Lifecycle requests, callable from any thread (device callbacks). */
void vm_request_poweroff(struct vm *vm, int exit_code);
void vm_request_reset(struct vm *vm);
void vm_request_quit(struct vm *vm);
void vm_request_fatal(struct vm *vm);

/* Guest-visible PIO/MMIO registration on this VM. */
static inline int vm_register_pio(struct vm *vm, uint16_t base, uint16_t len,
				  const struct io_ops *ops, void *opaque)
{
	return io_register(vm->io, IO_SPACE_PIO, base, len, ops, opaque);
}
static inline int vm_register_mmio(struct vm *vm, uint64_t base, uint64_t len,
				   const struct io_ops *ops, void *opaque)
{
	return io_register(vm->io, IO_SPACE_MMIO, base, len, ops, opaque);
}

#endif
