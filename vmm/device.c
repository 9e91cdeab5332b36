/* The list of self-registered device constructors and their ordered
 * initialisation, the registered -device models, the reset hook list of a
 * VM and the process exit hooks. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
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

static struct device_model *device_models;

/* Kept sorted by name: listings don't depend on link order. */
void device_model_register(struct device_model *m)
{
	struct device_model **pp = &device_models;

	while (*pp && strcmp((*pp)->name, m->name) < 0)
		pp = &(*pp)->next;
	m->next = *pp;
	*pp = m;
}

const struct device_model *device_model_find(const char *name, size_t len)
{
	for (const struct device_model *m = device_models; m; m = m->next)
		if (strlen(m->name) == len && !strncmp(m->name, name, len))
			return m;
	return NULL;
}

void device_models_each(void (*fn)(const struct device_model *m, void *opaque), void *opaque)
{
	for (const struct device_model *m = device_models; m; m = m->next)
		fn(m, opaque);
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

#define MAX_EXIT_HOOKS 16
static void (*exit_hooks[MAX_EXIT_HOOKS])(void);
static unsigned n_exit_hooks;
static pthread_mutex_t exit_hooks_lock = PTHREAD_MUTEX_INITIALIZER;

void devices_run_exit_hooks(void)
{
	for (;;) {
		void (*fn)(void) = NULL;

		pthread_mutex_lock(&exit_hooks_lock);
		if (n_exit_hooks)
			fn = exit_hooks[--n_exit_hooks];
		pthread_mutex_unlock(&exit_hooks_lock);
		if (!fn)
			return;
		fn();
	}
}

void device_register_exit(void (*fn)(void))
{
	bool first;

	pthread_mutex_lock(&exit_hooks_lock);
	if (n_exit_hooks == MAX_EXIT_HOOKS)
		die("too many exit hooks");
	first = n_exit_hooks == 0;
	exit_hooks[n_exit_hooks++] = fn;
	pthread_mutex_unlock(&exit_hooks_lock);
	if (first)
		atexit(devices_run_exit_hooks);
}
