/* The list of self-registered device constructors and their ordered
 * initialisation, plus the reset hook list of a VM. */
#include <stdlib.h>
#include "vmm/device.h"
#include "vmm/log.h"
#include "vmm/vm.h"

static struct device_init *device_inits;

void device_register_init(struct device_init *d)
{
	d->next = device_inits;
	device_inits = d;
}

int devices_init(struct vm *vm)
{
	for (int level = 0; level < DEVICE_LEVEL_COUNT; level++) {
		for (struct device_init *d = device_inits; d; d = d->next) {
			if ((int)d->level != level)
				continue;
			int ret = d->init(vm);
			if (ret < 0)
				return ret;	/* the device printed why */
		}
	}
	return 0;
}

void vm_register_reset(struct vm *vm, void (*fn)(void *), void *opaque)
{
	struct reset_hook *h = calloc(1, sizeof(*h));

	if (!h)
		die("out of memory");
	h->reset = fn;
	h->opaque = opaque;
	h->next = vm->reset_hooks;
	vm->reset_hooks = h;
}
