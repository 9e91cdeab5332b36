/* Device self-registration. Each hw/ file declares its init function with
 * DEVICE_INIT(level, fn); the VM calls them in level order after the core
 * (memory, vCPUs, irqchip) is up. vmm/ never names a device. */
#ifndef VMM_DEVICE_H
#define VMM_DEVICE_H

#include <stddef.h>

struct vm;

enum device_level {
	DEVICE_LEVEL_BUS = 0,		/* PCI host bridge, ISA bus */
	DEVICE_LEVEL_PLATFORM = 1,	/* chipset functions, RTC, PM, fw_cfg */
	DEVICE_LEVEL_DEVICE = 2,	/* serial, i8042, PCI devices */
	DEVICE_LEVEL_LATE = 3,		/* things that look at all devices */
	DEVICE_LEVEL_COUNT
};

struct device_init {
	const char *name;
	enum device_level level;
	/* Returns 0, or a negative errno on a configuration error (the VMM
	 * then stops at startup with the message the device logged). */
	int (*init)(struct vm *vm);
	struct device_init *next;
};

void device_register_init(struct device_init *d);
/* Runs all inits, level by level; returns the first error. */
int devices_init(struct vm *vm);

#define DEVICE_INIT(lvl, fn)						\
	static struct device_init device_init_##fn = {			\
		.name = #fn, .level = (lvl), .init = (fn) };		\
	__attribute__((constructor)) static void device_reg_##fn(void)	\
	{ device_register_init(&device_init_##fn); }

/* -device models. Each hw/ model registers its name, a usage line and the
 * keys its spec may carry: the command line accepts a -device only for a
 * registered model and only with those keys (addr= and id= always), keeps
 * the spec, and the model reads the values when it creates its devices.
 * A model that only sets the VM configuration has a set() hook instead,
 * called for the model name (key NULL) and then for each key. */
struct vm_config;
struct device_model {
	const char *name;
	const char *usage;		/* "-device help" */
	const char *const *keys;	/* NULL-terminated; unused with set() */
	int (*set)(struct vm_config *cfg, const char *key, const char *val, char *err,
		   size_t errlen);
	struct device_model *next;
};

void device_model_register(struct device_model *m);
const struct device_model *device_model_find(const char *name, size_t len);
/* The models in name order, for listing: calls fn for each. */
void device_models_each(void (*fn)(const struct device_model *m, void *opaque), void *opaque);

#define DEVICE_MODEL(var, ...)							\
	static struct device_model var = { __VA_ARGS__ };			\
	__attribute__((constructor)) static void device_model_reg_##var(void)	\
	{ device_model_register(&var); }

/* Reset hooks run on a guest reset (triple fault, i8042 0xFE, 0xCF9). */
struct reset_hook {
	void (*reset)(void *opaque);
	void *opaque;
	struct reset_hook *next;
};
void vm_register_reset(struct vm *vm, void (*fn)(void *), void *opaque);

/* Exit hooks: host-side teardown that must run when the process leaves
 * (tap downscripts, ...), newest first, at most once each. main() runs
 * them before _exit(); they are also registered with atexit(). */
void device_register_exit(void (*fn)(void));
void devices_run_exit_hooks(void);

#endif
