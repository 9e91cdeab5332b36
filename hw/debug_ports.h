/* Debug ports of a PC VM: the 0x402 debug console (QEMU isa-debugcon),
 * the 0x80 POST code latch and the isa-debug-exit device. The models are
 * usable without a struct vm so unit tests can drive them. */
#ifndef HW_DEBUG_PORTS_H
#define HW_DEBUG_PORTS_H

#include <stdint.h>

struct chardev;

#define DEBUGCON_READBACK 0xe9	/* QEMU's isa-debugcon default */

struct debugcon {
	struct chardev *chr;	/* NULL: output discarded */
	uint8_t readback;
};

struct post_port {
	uint8_t last;		/* last POST code written */
	uint8_t valid;		/* a code has been written since reset */
	uint64_t writes;
};

struct debug_exit {
	/* Receives (value << 1) | 1, QEMU's exit status convention. */
	void (*poweroff)(void *opaque, int exit_code);
	void *opaque;
};

uint64_t debugcon_read(struct debugcon *d, uint64_t offset, unsigned size);
void debugcon_write(struct debugcon *d, uint64_t offset, uint64_t value, unsigned size);
uint64_t post_port_read(struct post_port *p);
void post_port_write(struct post_port *p, uint8_t value);
void debug_exit_write(struct debug_exit *e, uint64_t value, unsigned size);

struct vm;
/* The DEVICE_INIT glue (exposed for tests): debugcon from cfg->debugcon,
 * the exit port when cfg->exit_port, the POST port always. */
int debug_ports_setup(struct vm *vm);
/* The VM's POST port, to read the last code (monitor, tests). */
extern struct post_port debug_post_port;

#endif
