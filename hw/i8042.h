/* i8042 PS/2 controller (ports 0x60/0x64, IRQ 1 and 12) with a keyboard and
 * a mouse that answer the firmware's and the OS's probes: the model's
 * public API. Reset requests and A20 go through hooks so the model can be
 * tested without a VM. */
#ifndef HW_I8042_H
#define HW_I8042_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include "vmm/irq.h"
#include "vmm/vmstate.h"

/* Status register (port 0x64 read) */
#define I8042_STR_OBF		0x01	/* output buffer full */
#define I8042_STR_IBF		0x02
#define I8042_STR_SYS		0x04	/* system flag (self test passed) */
#define I8042_STR_CMD		0x08	/* last write was to port 0x64 */
#define I8042_STR_UNLOCKED	0x10	/* keyboard not inhibited */
#define I8042_STR_AUXDATA	0x20	/* output buffer holds mouse data */

/* Command byte */
#define I8042_CTR_KBDINT	0x01
#define I8042_CTR_AUXINT	0x02
#define I8042_CTR_SYS		0x04
#define I8042_CTR_KBDDIS	0x10
#define I8042_CTR_AUXDIS	0x20
#define I8042_CTR_XLATE		0x40

/* Output port */
#define I8042_OUT_RESET		0x01	/* 0 asserts the CPU reset line */
#define I8042_OUT_A20		0x02
#define I8042_OUT_KBD_OBF	0x10
#define I8042_OUT_AUX_OBF	0x20

#define I8042_QUEUE_SIZE 16

enum i8042_source { I8042_SRC_KBD = 0, I8042_SRC_AUX = 1 };

/* A device's byte FIFO towards the controller. */
struct i8042_queue {
	uint8_t data[I8042_QUEUE_SIZE];
	uint8_t head;			/* < I8042_QUEUE_SIZE */
	uint8_t count;			/* <= I8042_QUEUE_SIZE */
};

/* Everything migrated: plain data, validated on load. */
struct i8042_state {
	uint8_t status;			/* SYS, CMD bits; OBF/AUXDATA derived */
	uint8_t ctr;			/* command byte */
	uint8_t outport;
	uint8_t pending_cmd;		/* controller command awaiting data, 0 = none */
	uint8_t obuf;			/* output buffer */
	bool obuf_full;
	uint8_t obuf_src;		/* enum i8042_source */
	bool kbd_irq, aux_irq;		/* current line levels */
	uint8_t ctrl_byte;		/* controller reply waiting for the buffer */
	bool ctrl_full;
	uint8_t ctrl_src;		/* enum i8042_source: which IRQ it raises */
	struct i8042_queue kbdq, auxq;
	/* keyboard */
	uint8_t kbd_pending;		/* command awaiting its parameter, 0 = none */
	bool kbd_scanning;
	uint8_t kbd_leds;
	uint8_t kbd_scancode_set;	/* 1..3 */
	uint8_t kbd_typematic;
	/* mouse */
	uint8_t aux_pending;
	bool aux_enabled;		/* data reporting */
	bool aux_remote, aux_wrap;
	uint8_t aux_rate, aux_resolution, aux_scaling;
};

struct i8042_hooks {
	/* CPU reset requested (0xFE pulse or output port bit 0 cleared). */
	void (*reset_request)(void *opaque);
	void *opaque;
};

struct i8042 {
	pthread_mutex_t lock;
	struct i8042_state s;
	struct irq_line kbd_irq, aux_irq;
	struct i8042_hooks hooks;
};

void i8042_init(struct i8042 *k, const struct irq_line *kbd_irq, const struct irq_line *aux_irq,
		const struct i8042_hooks *hooks);
void i8042_destroy(struct i8042 *k);

/* Guest access: data port 0x60 and command/status port 0x64. */
uint8_t i8042_read_data(struct i8042 *k);
void i8042_write_data(struct i8042 *k, uint8_t val);
uint8_t i8042_read_status(struct i8042 *k);
void i8042_write_command(struct i8042 *k, uint8_t cmd);

/* Queue raw bytes from the keyboard as they must appear at port 0x60
 * (the caller translates to set 1 if it wants; dropped while the
 * keyboard is not scanning or the queue is full). Returns 0 or -EAGAIN. */
int i8042_inject_key(struct i8042 *k, uint8_t scancode);
bool i8042_a20_enabled(struct i8042 *k);
/* The VM's controller once DEVICE_INIT ran (NULL before), for key input. */
struct i8042 *i8042_get(void);

/* Controller and devices back to power-on state (system reset). */
void i8042_reset(struct i8042 *k);
/* After loading state: re-drive the IRQ lines. */
void i8042_resync(struct i8042 *k);

extern const struct vmstate_desc i8042_vmstate;	/* opaque: struct i8042_state */

#endif
