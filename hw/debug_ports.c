/* Debug ports: the 0x402 debug console (-debugcon), the 0x80 POST code
 * latch and the isa-debug-exit device (-device isa-debug-exit). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hw/debug_ports.h"
#include "vmm/chardev.h"
#include "vmm/device.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

/* ------------------------------------------------------------------ */
/* Models                                                             */

uint64_t debugcon_read(struct debugcon *d, uint64_t offset, unsigned size)
{
	uint64_t v = 0;

	/* Reading the port tells the guest a debug console is there. */
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)d->readback << (8 * i);
	return v;
}

void debugcon_write(struct debugcon *d, uint64_t offset, uint64_t value, unsigned size)
{
	uint8_t bytes[8];

	if (size > sizeof(bytes))
		size = sizeof(bytes);
	for (unsigned i = 0; i < size; i++)
		bytes[i] = value >> (8 * i);
	if (d->chr)
		chardev_write(d->chr, bytes, size);
}

uint64_t post_port_read(struct post_port *p)
{
	return 0xff;	/* as on QEMU: the port is write-only */
}

void post_port_write(struct post_port *p, uint8_t value)
{
	p->last = value;
	p->valid = 1;
	p->writes++;
	log_guest(LOG_IOPORT, "POST code 0x%02x", value);
}

void debug_exit_write(struct debug_exit *e, uint64_t value, unsigned size)
{
	if (size < 8)
		value &= (1ULL << (8 * size)) - 1;
	if (e->poweroff)
		e->poweroff(e->opaque, (int)((value << 1) | 1));
}

/* ------------------------------------------------------------------ */
/* Glue                                                               */

static struct debugcon debugcon;
struct post_port debug_post_port;
static struct debug_exit exit_dev;

static uint64_t debugcon_pio_read(void *opaque, uint64_t offset, unsigned size)
{
	return debugcon_read(opaque, offset, size);
}

static void debugcon_pio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	debugcon_write(opaque, offset, value, size);
}

static uint64_t post_pio_read(void *opaque, uint64_t offset, unsigned size)
{
	return post_port_read(opaque) & ((size < 8) ? (1ULL << (8 * size)) - 1 : ~0ULL);
}

static void post_pio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	post_port_write(opaque, value);
}

static void exit_pio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	debug_exit_write(opaque, value, size);
}

static const struct io_ops debugcon_ops = {
	.read = debugcon_pio_read, .write = debugcon_pio_write,
};
static const struct io_ops post_ops = { .read = post_pio_read, .write = post_pio_write };
static const struct io_ops exit_ops = { .write = exit_pio_write };

static void exit_poweroff(void *opaque, int code)
{
	vm_request_poweroff(opaque, code);
}

static void post_reset(void *opaque)
{
	struct post_port *p = opaque;

	p->last = 0;
	p->valid = 0;
}

static const struct vmstate_field post_fields[] = {
	VMSTATE_U8(struct post_port, last),
	VMSTATE_U8_MAX(struct post_port, valid, 1),
};

static const struct vmstate_desc post_vmstate = VMSTATE_DESC("post_port", 1, post_fields, NULL);

static int debugcon_init(struct vm *vm, const char *spec)
{
	struct chardev_frontend fe = { 0 };	/* input is read and discarded */
	char err[256];
	int ret;

	debugcon.readback = DEBUGCON_READBACK;
	debugcon.chr = chardev_open_label(spec, "debugcon", err, sizeof(err));
	if (!debugcon.chr) {
		log_error("-debugcon %s: %s", spec, err);
		return -EINVAL;
	}
	ret = vm_register_pio(vm, DEBUGCON_PORT, 1, &debugcon_ops, &debugcon);
	if (ret < 0) {
		log_error("debugcon: port 0x%x busy", DEBUGCON_PORT);
		return ret;
	}
	chardev_attach(debugcon.chr, vm->loop, &fe);
	return 0;
}

static int exit_port_init(struct vm *vm)
{
	uint16_t base = vm->cfg->exit_port_base ? vm->cfg->exit_port_base : EXIT_PORT_DEFAULT;
	uint16_t size = vm->cfg->exit_port_size ? vm->cfg->exit_port_size : 1;
	int ret;

	exit_dev.poweroff = exit_poweroff;
	exit_dev.opaque = vm;
	ret = vm_register_pio(vm, base, size, &exit_ops, &exit_dev);
	if (ret < 0)
		log_error("isa-debug-exit: cannot use ports 0x%x..0x%x", base, base + size - 1);
	return ret;
}

int debug_ports_setup(struct vm *vm)
{
	const char *spec = vm->cfg->debugcon;
	int ret;

	if (spec && strcmp(spec, "none")) {
		ret = debugcon_init(vm, spec);
		if (ret < 0)
			return ret;
	}
	if (vm->cfg->exit_port) {
		ret = exit_port_init(vm);
		if (ret < 0)
			return ret;
	}
	memset(&debug_post_port, 0, sizeof(debug_post_port));
	if (vm_register_pio(vm, POST_PORT, 1, &post_ops, &debug_post_port) < 0)
		log_warn("POST port 0x%x already claimed", POST_PORT);
	vm_register_reset(vm, post_reset, &debug_post_port);
	vmstate_register(&post_vmstate, &debug_post_port, sizeof(debug_post_port), 0);
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, debug_ports_setup)

/* -device isa-debug-exit[,iobase=PORT,iosize=N]: QEMU's defaults, 0x501
 * and 2 bytes. */
static int exit_model_set(struct vm_config *cfg, const char *key, const char *val, char *err,
			  size_t errlen)
{
	unsigned long long n;
	char *end;

	if (!key) {
		cfg->exit_port = true;
		cfg->exit_port_base = EXIT_PORT_DEFAULT;
		cfg->exit_port_size = 2;
		return 0;
	}
	errno = 0;
	n = val && *val ? strtoull(val, &end, 0) : 0;
	if (!val || !*val || errno || *end || n > 0xffff) {
		snprintf(err, errlen, "invalid %s '%s'", key, val ? val : "");
		return -EINVAL;
	}
	if (!strcmp(key, "iobase")) {
		cfg->exit_port_base = n;
	} else if (!strcmp(key, "iosize") && n >= 1 && n <= 8) {
		cfg->exit_port_size = n;
	} else {
		snprintf(err, errlen, "unknown or bad parameter '%s'", key);
		return -EINVAL;
	}
	return 0;
}

DEVICE_MODEL(isa_debug_exit_model, .name = "isa-debug-exit",
	     .usage = "isa-debug-exit[,iobase=PORT,iosize=N]", .set = exit_model_set)
