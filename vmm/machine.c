/* The PC machine assembly order: KVM VM and RAM, then for a direct kernel
 * boot the ACPI and MP tables and the kernel itself, then every device
 * (which may look at the boot mode), then the vCPUs. */
#include <stdio.h>
#include "vmm/machine.h"
#include "vmm/vm.h"
#include "vmm/acpi.h"
#include "vmm/mptable.h"
#include "vmm/boot.h"

/* Tables and kernel are written into guest RAM; on a guest reset they are
 * written again, as firmware would reload them. */
static int machine_load_direct_boot(struct vm *vm, char *err, size_t errlen)
{
	struct acpi_config acpi;

	acpi_config_default(&acpi, vm->ncpus);
	if (acpi_install(&vm->mem, &acpi) < 0) {
		snprintf(err, errlen, "cannot build the ACPI tables");
		return -1;
	}
	if (mptable_install(&vm->mem, vm->ncpus) < 0) {
		snprintf(err, errlen, "cannot build the MP table");
		return -1;
	}
	return boot_load_kernel(vm, err, errlen);
}

int machine_create(struct vm *vm, const struct vm_config *cfg, char *err, size_t errlen)
{
	if (vm_create(vm, cfg, err, errlen) < 0)
		return -1;
	if (cfg->kernel) {
		if (machine_load_direct_boot(vm, err, errlen) < 0)
			return -1;
		vm->reload_boot = machine_load_direct_boot;
	}
	if (devices_init(vm) < 0) {
		err[0] = 0;	/* the device already printed one line */
		return -1;
	}
	return vm_create_vcpus(vm, err, errlen);
}
