/* Port 0x92, "system control port A" of PS/2-era chipsets (QEMU's port92
 * device): bit 1 gates A20, a 0->1 edge on bit 0 resets the CPU. The
 * model's public API; the reset request goes through a hook so the model
 * can be tested without a VM. */
#ifndef HW_PORT92_H
#define HW_PORT92_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include "vmm/vmstate.h"

#define PORT92_FAST_RESET	0x01	/* 0->1 pulses the CPU reset line */
#define PORT92_A20		0x02	/* 1: A20 enabled */

/* Everything migrated. Every byte value is a state the latch can hold. */
struct port92_state {
	uint8_t outport;		/* last value written, read back as is */
};

struct port92_hooks {
	void (*reset_request)(void *opaque);
	void *opaque;
};

struct port92 {
	pthread_mutex_t lock;
	struct port92_state s;
	struct port92_hooks hooks;
};

void port92_init(struct port92 *p, const struct port92_hooks *hooks);
void port92_destroy(struct port92 *p);

uint8_t port92_read(struct port92 *p);
void port92_write(struct port92 *p, uint8_t val);
bool port92_a20_enabled(struct port92 *p);

/* System reset: the fast reset bit drops, the A20 bit stays (as in QEMU). */
void port92_reset(struct port92 *p);

extern const struct vmstate_desc port92_vmstate;	/* opaque: struct port92_state */

struct vm;
/* The DEVICE_INIT glue, exposed for tests: registers port 0x92 on vm. */
int port92_setup(struct vm *vm);

#endif
