/* Port 0x92, system control port A: the fast A20 gate (bit 1, read back)
 * and the fast reset bit (bit 0: a 0->1 edge requests a CPU reset). Like
 * QEMU, the latch is independent of the i8042 output port's A20 bit: each
 * reads back what was written to it. KVM runs with A20 always enabled, so
 * neither gate masks guest memory; port92_a20_enabled() reports the latch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/port92.h"
#include "vmm/device.h"
#include "vmm/io.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"

/* ---- Model */

void port92_init(struct port92 *p, const struct port92_hooks *hooks)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	if (hooks)
		p->hooks = *hooks;
}

void port92_destroy(struct port92 *p)
{
	pthread_mutex_destroy(&p->lock);
}

uint8_t port92_read(struct port92 *p)
{
	uint8_t v;

	pthread_mutex_lock(&p->lock);
	v = p->s.outport;
	pthread_mutex_unlock(&p->lock);
	return v;
}

void port92_write(struct port92 *p, uint8_t val)
{
	bool reset_edge;

	pthread_mutex_lock(&p->lock);
	reset_edge = (val & PORT92_FAST_RESET) && !(p->s.outport & PORT92_FAST_RESET);
	p->s.outport = val;
	pthread_mutex_unlock(&p->lock);
	if (reset_edge) {
		log_guest(LOG_IOPORT, "port92: fast reset");
		if (p->hooks.reset_request)
			p->hooks.reset_request(p->hooks.opaque);
	}
}

bool port92_a20_enabled(struct port92 *p)
{
	return port92_read(p) & PORT92_A20;
}

void port92_reset(struct port92 *p)
{
	pthread_mutex_lock(&p->lock);
	p->s.outport &= ~PORT92_FAST_RESET;
	pthread_mutex_unlock(&p->lock);
}

/* No post_load: any latch value is consistent. A loaded bit 0 = 1 only
 * means the next reset needs a write of 0 first, as on the source. */
static const struct vmstate_field port92_fields[] = {
	VMSTATE_U8(struct port92_state, outport),
};
const struct vmstate_desc port92_vmstate = VMSTATE_DESC("port92", 1, port92_fields, NULL);

/* ---- VM glue */

static uint64_t port92_pio_read(void *opaque, uint64_t offset, unsigned size)
{
	return port92_read(opaque);
}

static void port92_pio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	port92_write(opaque, (uint8_t)value);
}

static const struct io_ops port92_ops = {
	.read = port92_pio_read,
	.write = port92_pio_write,
};

static void port92_dev_reset_request(void *opaque)
{
	vm_request_reset(opaque);
}

static void port92_dev_reset(void *opaque)
{
	port92_reset(opaque);
}

int port92_setup(struct vm *vm)
{
	struct port92 *p = calloc(1, sizeof(*p));
	struct port92_hooks hooks = { .reset_request = port92_dev_reset_request, .opaque = vm };
	int ret;

	if (!p)
		return -ENOMEM;
	port92_init(p, &hooks);
	ret = vm_register_pio(vm, PORT92_PORT, 1, &port92_ops, p);
	if (ret < 0) {
		log_error("port92: cannot register port 0x%x", PORT92_PORT);
		port92_destroy(p);
		free(p);
		return ret;
	}
	vm_register_reset(vm, port92_dev_reset, p);
	vmstate_register(&port92_vmstate, &p->s, sizeof(p->s), 0);
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, port92_setup)
