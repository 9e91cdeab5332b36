/* i8042 PS/2 controller at ports 0x60/0x64 (IRQ 1 keyboard, IRQ 12 mouse):
 * status register, command byte, controller commands (self tests, port
 * enables, output port with the reset line and A20, 0xFE reset pulse),
 * and a keyboard and a motionless mouse that answer probes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/i8042.h"
#include "vmm/device.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define ACK 0xfa
#define RESEND 0xfe
#define BAT_OK 0xaa

#define OUTPORT_POWER_ON 0xcf	/* reset line high, A20 on, unused bits set */
#define CTR_POWER_ON (I8042_CTR_KBDINT | I8042_CTR_AUXINT)

/* ---- Byte queues */

static int queue_push(struct i8042_queue *q, uint8_t b)
{
	if (q->count >= I8042_QUEUE_SIZE)
		return -EAGAIN;
	q->data[(q->head + q->count) % I8042_QUEUE_SIZE] = b;
	q->count++;
	return 0;
}

static uint8_t queue_pop(struct i8042_queue *q)
{
	uint8_t b = q->data[q->head];

	q->head = (q->head + 1) % I8042_QUEUE_SIZE;
	q->count--;
	return b;
}

static void queue_clear(struct i8042_queue *q)
{
	q->head = 0;
	q->count = 0;
}

/* ---- Output buffer and interrupts (lock held) */

static void set_line(const struct irq_line *line, bool *cur, bool level)
{
	if (*cur != level) {
		*cur = level;
		irq_line_set(line, level);
	}
}

static void fill_output_buffer(struct i8042 *k)
{
	struct i8042_state *s = &k->s;

	if (s->obuf_full)
		return;
	if (s->ctrl_full) {
		s->obuf = s->ctrl_byte;
		s->obuf_src = s->ctrl_src;
		s->ctrl_full = false;
	} else if (!(s->ctr & I8042_CTR_KBDDIS) && s->kbdq.count) {
		s->obuf = queue_pop(&s->kbdq);
		s->obuf_src = I8042_SRC_KBD;
	} else if (!(s->ctr & I8042_CTR_AUXDIS) && s->auxq.count) {
		s->obuf = queue_pop(&s->auxq);
		s->obuf_src = I8042_SRC_AUX;
	} else {
		return;
	}
	s->obuf_full = true;
}

static void update_irq(struct i8042 *k)
{
	struct i8042_state *s = &k->s;

	fill_output_buffer(k);
	set_line(&k->kbd_irq, &s->kbd_irq, s->obuf_full && s->obuf_src == I8042_SRC_KBD &&
		 (s->ctr & I8042_CTR_KBDINT));
	set_line(&k->aux_irq, &s->aux_irq, s->obuf_full && s->obuf_src == I8042_SRC_AUX &&
		 (s->ctr & I8042_CTR_AUXINT));
}

static void ctrl_reply(struct i8042 *k, uint8_t b, enum i8042_source src)
{
	if (k->s.ctrl_full)
		log_guest(LOG_GUEST_ERRORS, "i8042: controller reply 0x%02x overwrites 0x%02x",
			  b, k->s.ctrl_byte);
	k->s.ctrl_byte = b;
	k->s.ctrl_src = src;
	k->s.ctrl_full = true;
}

static void kbd_reply(struct i8042 *k, uint8_t b)
{
	if (queue_push(&k->s.kbdq, b) < 0)
		log_guest(LOG_GUEST_ERRORS, "i8042: keyboard queue full, 0x%02x dropped", b);
}

static void aux_reply(struct i8042 *k, uint8_t b)
{
	if (queue_push(&k->s.auxq, b) < 0)
		log_guest(LOG_GUEST_ERRORS, "i8042: mouse queue full, 0x%02x dropped", b);
}

/* ---- Keyboard */

static void kbd_defaults(struct i8042_state *s)
{
	s->kbd_scancode_set = 2;
	s->kbd_typematic = 0x2b;	/* 10.9 cps, 500 ms */
	s->kbd_pending = 0;
}

static void kbd_write_param(struct i8042 *k, uint8_t cmd, uint8_t val)
{
	/* Set number as the guest sees it through translation. */
	static const uint8_t xlated_set[4] = { 0, 0x43, 0x41, 0x3f };
	struct i8042_state *s = &k->s;

	switch (cmd) {
	case 0xed:
		s->kbd_leds = val & 0x07;
		kbd_reply(k, ACK);
		break;
	case 0xf0:
		if (val == 0) {
			kbd_reply(k, ACK);
			kbd_reply(k, (s->ctr & I8042_CTR_XLATE) ? xlated_set[s->kbd_scancode_set]
								  : s->kbd_scancode_set);
		} else if (val <= 3) {
			s->kbd_scancode_set = val;
			kbd_reply(k, ACK);
		} else {
			kbd_reply(k, RESEND);
		}
		break;
	case 0xf3:
		s->kbd_typematic = val & 0x7f;
		kbd_reply(k, ACK);
		break;
	}
}

static void kbd_write(struct i8042 *k, uint8_t val)
{
	struct i8042_state *s = &k->s;

	if (s->kbd_pending) {
		uint8_t cmd = s->kbd_pending;

		s->kbd_pending = 0;
		kbd_write_param(k, cmd, val);
		return;
	}
	switch (val) {
	case 0xed:	/* set LEDs */
	case 0xf0:	/* get/set scancode set */
	case 0xf3:	/* typematic rate */
		kbd_reply(k, ACK);
		s->kbd_pending = val;
		break;
	case 0xee:	/* echo */
		kbd_reply(k, 0xee);
		break;
	case 0xf2:	/* identify: MF2 keyboard */
		kbd_reply(k, ACK);
		kbd_reply(k, 0xab);
		kbd_reply(k, (s->ctr & I8042_CTR_XLATE) ? 0x41 : 0x83);
		break;
	case 0xf4:
		s->kbd_scanning = true;
		kbd_reply(k, ACK);
		break;
	case 0xf5:	/* disable and restore defaults */
		kbd_defaults(s);
		s->kbd_scanning = false;
		kbd_reply(k, ACK);
		break;
	case 0xf6:
		kbd_defaults(s);
		s->kbd_scanning = true;
		kbd_reply(k, ACK);
		break;
	case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
		kbd_reply(k, ACK);	/* scancode set 3 key modes: accepted */
		break;
	case 0xff:	/* reset and self test */
		queue_clear(&s->kbdq);
		kbd_defaults(s);
		s->kbd_scanning = true;
		kbd_reply(k, ACK);
		kbd_reply(k, BAT_OK);
		break;
	default:
		log_guest(LOG_UNIMP, "i8042: unknown keyboard command 0x%02x", val);
		kbd_reply(k, RESEND);
		break;
	}
}

/* ---- Mouse: a standard PS/2 mouse that never moves */

static void aux_defaults(struct i8042_state *s)
{
	s->aux_enabled = false;
	s->aux_remote = false;
	s->aux_wrap = false;
	s->aux_rate = 100;
	s->aux_resolution = 2;
	s->aux_scaling = 1;
	s->aux_pending = 0;
}

static void aux_write(struct i8042 *k, uint8_t val)
{
	struct i8042_state *s = &k->s;

	if (s->aux_pending) {
		if (s->aux_pending == 0xf3)
			s->aux_rate = val;
		else
			s->aux_resolution = val & 0x03;
		s->aux_pending = 0;
		aux_reply(k, ACK);
		return;
	}
	if (s->aux_wrap && val != 0xec && val != 0xff) {
		aux_reply(k, val);
		return;
	}
	switch (val) {
	case 0xe6:
	case 0xe7:
		s->aux_scaling = val == 0xe6 ? 1 : 2;
		aux_reply(k, ACK);
		break;
	case 0xe8:	/* set resolution */
	case 0xf3:	/* set sample rate */
		s->aux_pending = val;
		aux_reply(k, ACK);
		break;
	case 0xe9:	/* status request */
		aux_reply(k, ACK);
		aux_reply(k, (uint8_t)((s->aux_remote ? 0x40 : 0) | (s->aux_enabled ? 0x20 : 0) |
				       (s->aux_scaling == 2 ? 0x10 : 0)));
		aux_reply(k, s->aux_resolution);
		aux_reply(k, s->aux_rate);
		break;
	case 0xea:
	case 0xf0:
		s->aux_remote = val == 0xf0;
		aux_reply(k, ACK);
		break;
	case 0xeb:	/* read data: one empty packet */
		aux_reply(k, ACK);
		aux_reply(k, 0x08);
		aux_reply(k, 0x00);
		aux_reply(k, 0x00);
		break;
	case 0xec:
	case 0xee:
		s->aux_wrap = val == 0xee;
		aux_reply(k, ACK);
		break;
	case 0xf2:	/* identify: standard mouse */
		aux_reply(k, ACK);
		aux_reply(k, 0x00);
		break;
	case 0xf4:
	case 0xf5:
		s->aux_enabled = val == 0xf4;
		aux_reply(k, ACK);
		break;
	case 0xf6:
		aux_defaults(s);
		aux_reply(k, ACK);
		break;
	case 0xff:
		queue_clear(&s->auxq);
		aux_defaults(s);
		aux_reply(k, ACK);
		aux_reply(k, BAT_OK);
		aux_reply(k, 0x00);
		break;
	default:
		log_guest(LOG_UNIMP, "i8042: unknown mouse command 0x%02x", val);
		aux_reply(k, RESEND);
		break;
	}
}

/* ---- Controller (lock held; return true when a CPU reset is requested) */

static uint8_t outport_value(const struct i8042_state *s)
{
	uint8_t v = s->outport & ~(I8042_OUT_KBD_OBF | I8042_OUT_AUX_OBF);

	if (s->obuf_full)
		v |= s->obuf_src == I8042_SRC_AUX ? I8042_OUT_AUX_OBF : I8042_OUT_KBD_OBF;
	return v;
}

static bool write_outport(struct i8042_state *s, uint8_t val)
{
	s->outport = val;
	return !(val & I8042_OUT_RESET);
}

static void set_a20(struct i8042_state *s, bool on)
{
	s->outport = on ? s->outport | I8042_OUT_A20 : s->outport & ~I8042_OUT_A20;
}

static bool controller_command(struct i8042 *k, uint8_t cmd)
{
	struct i8042_state *s = &k->s;

	s->pending_cmd = 0;
	if (cmd >= 0x21 && cmd <= 0x3f) {	/* read controller RAM */
		ctrl_reply(k, 0, I8042_SRC_KBD);
		return false;
	}
	if (cmd >= 0x60 && cmd <= 0x7f) {	/* write controller RAM */
		s->pending_cmd = cmd;
		return false;
	}
	if (cmd >= 0xf0)			/* pulse output lines: bit 0 = reset */
		return !(cmd & 0x01);
	switch (cmd) {
	case 0x20:
		ctrl_reply(k, s->ctr, I8042_SRC_KBD);
		break;
	case 0xa7:
		s->ctr |= I8042_CTR_AUXDIS;
		break;
	case 0xa8:
		s->ctr &= ~I8042_CTR_AUXDIS;
		break;
	case 0xa9:	/* aux interface test */
	case 0xab:	/* keyboard interface test */
		ctrl_reply(k, 0x00, I8042_SRC_KBD);
		break;
	case 0xaa:	/* self test */
		s->status |= I8042_STR_SYS;
		ctrl_reply(k, 0x55, I8042_SRC_KBD);
		break;
	case 0xad:
		s->ctr |= I8042_CTR_KBDDIS;
		break;
	case 0xae:
		s->ctr &= ~I8042_CTR_KBDDIS;
		break;
	case 0xc0:	/* input port: keyboard not inhibited */
		ctrl_reply(k, 0x80, I8042_SRC_KBD);
		break;
	case 0xd0:
		ctrl_reply(k, outport_value(s), I8042_SRC_KBD);
		break;
	case 0xd1:
	case 0xd2:
	case 0xd3:
	case 0xd4:
		s->pending_cmd = cmd;
		break;
	case 0xdd:
	case 0xdf:
		set_a20(s, cmd == 0xdf);
		break;
	case 0xe0:	/* test inputs */
		ctrl_reply(k, 0x00, I8042_SRC_KBD);
		break;
	default:
		log_guest(LOG_UNIMP, "i8042: unknown controller command 0x%02x", cmd);
		break;
	}
	return false;
}

static bool controller_data(struct i8042 *k, uint8_t val)
{
	struct i8042_state *s = &k->s;
	uint8_t cmd = s->pending_cmd;
	bool reset = false;

	s->pending_cmd = 0;
	switch (cmd) {
	case 0:		/* no controller command: to the keyboard */
		s->ctr &= ~I8042_CTR_KBDDIS;
		kbd_write(k, val);
		break;
	case 0x60:
		s->ctr = val;
		s->status = (s->status & ~I8042_STR_SYS) | (val & I8042_CTR_SYS);
		break;
	case 0xd1:
		reset = write_outport(s, val);
		break;
	case 0xd2:
		ctrl_reply(k, val, I8042_SRC_KBD);
		break;
	case 0xd3:
		ctrl_reply(k, val, I8042_SRC_AUX);
		break;
	case 0xd4:
		s->ctr &= ~I8042_CTR_AUXDIS;
		aux_write(k, val);
		break;
	default:	/* 0x61..0x7f: controller RAM, not kept */
		break;
	}
	return reset;
}

static void request_reset(struct i8042 *k)
{
	if (k->hooks.reset_request)
		k->hooks.reset_request(k->hooks.opaque);
}

uint8_t i8042_read_status(struct i8042 *k)
{
	uint8_t v;

	pthread_mutex_lock(&k->lock);
	v = (k->s.status & (I8042_STR_SYS | I8042_STR_CMD)) | I8042_STR_UNLOCKED;
	if (k->s.obuf_full)
		v |= I8042_STR_OBF | (k->s.obuf_src == I8042_SRC_AUX ? I8042_STR_AUXDATA : 0);
	pthread_mutex_unlock(&k->lock);
	return v;
}

uint8_t i8042_read_data(struct i8042 *k)
{
	uint8_t v;

	pthread_mutex_lock(&k->lock);
	v = k->s.obuf;		/* reading an empty buffer repeats the last byte */
	if (k->s.obuf_full) {
		k->s.obuf_full = false;
		/* Drop the lines so the next byte makes a new edge. */
		set_line(&k->kbd_irq, &k->s.kbd_irq, false);
		set_line(&k->aux_irq, &k->s.aux_irq, false);
		update_irq(k);
	}
	pthread_mutex_unlock(&k->lock);
	return v;
}

void i8042_write_data(struct i8042 *k, uint8_t val)
{
	bool reset;

	pthread_mutex_lock(&k->lock);
	k->s.status &= ~I8042_STR_CMD;
	reset = controller_data(k, val);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		request_reset(k);
}

void i8042_write_command(struct i8042 *k, uint8_t cmd)
{
	bool reset;

	pthread_mutex_lock(&k->lock);
	k->s.status |= I8042_STR_CMD;
	reset = controller_command(k, cmd);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	if (reset)
		request_reset(k);
}

int i8042_inject_key(struct i8042 *k, uint8_t scancode)
{
	int ret = -EAGAIN;

	pthread_mutex_lock(&k->lock);
	if (k->s.kbd_scanning)
		ret = queue_push(&k->s.kbdq, scancode);
	update_irq(k);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

bool i8042_a20_enabled(struct i8042 *k)
{
	bool on;

	pthread_mutex_lock(&k->lock);
	on = k->s.outport & I8042_OUT_A20;
	pthread_mutex_unlock(&k->lock);
	return on;
}

static void power_on_state(struct i8042_state *s)
{
	memset(s, 0, sizeof(*s));
	s->status = I8042_STR_CMD;
	s->ctr = CTR_POWER_ON;
	s->outport = OUTPORT_POWER_ON;
	kbd_defaults(s);
	s->kbd_scanning = true;
	aux_defaults(s);
}

void i8042_init(struct i8042 *k, const struct irq_line *kbd_irq, const struct irq_line *aux_irq,
		const struct i8042_hooks *hooks)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	if (kbd_irq)
		k->kbd_irq = *kbd_irq;
	if (aux_irq)
		k->aux_irq = *aux_irq;
	if (hooks)
		k->hooks = *hooks;
	power_on_state(&k->s);
}

void i8042_destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

void i8042_reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	power_on_state(&k->s);
	irq_line_set(&k->kbd_irq, 0);
	irq_line_set(&k->aux_irq, 0);
	pthread_mutex_unlock(&k->lock);
}

void i8042_resync(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	irq_line_set(&k->kbd_irq, k->s.kbd_irq);
	irq_line_set(&k->aux_irq, k->s.aux_irq);
	pthread_mutex_unlock(&k->lock);
}

/* ---- Migration state */

static bool pending_cmd_valid(uint8_t c)
{
	return c == 0 || (c >= 0x60 && c <= 0x7f) || (c >= 0xd1 && c <= 0xd4);
}

static int i8042_post_load(void *opaque)
{
	const struct i8042_state *s = opaque;

	if (!pending_cmd_valid(s->pending_cmd) || s->kbd_scancode_set < 1)
		return -EINVAL;
	if (s->kbd_pending && s->kbd_pending != 0xed && s->kbd_pending != 0xf0 &&
	    s->kbd_pending != 0xf3)
		return -EINVAL;
	if (s->aux_pending && s->aux_pending != 0xe8 && s->aux_pending != 0xf3)
		return -EINVAL;
	if (s->kbd_irq && !(s->obuf_full && s->obuf_src == I8042_SRC_KBD))
		return -EINVAL;
	if (s->aux_irq && !(s->obuf_full && s->obuf_src == I8042_SRC_AUX))
		return -EINVAL;
	return 0;
}

#define I8042_QUEUE_FIELDS(q)							\
	VMSTATE_U8_ARRAY(struct i8042_state, q.data),				\
	VMSTATE_U8_MAX(struct i8042_state, q.head, I8042_QUEUE_SIZE - 1),	\
	VMSTATE_U8_MAX(struct i8042_state, q.count, I8042_QUEUE_SIZE)

static const struct vmstate_field i8042_fields[] = {
	VMSTATE_U8(struct i8042_state, status),
	VMSTATE_U8(struct i8042_state, ctr),
	VMSTATE_U8(struct i8042_state, outport),
	VMSTATE_U8(struct i8042_state, pending_cmd),
	VMSTATE_U8(struct i8042_state, obuf),
	VMSTATE_BOOL(struct i8042_state, obuf_full),
	VMSTATE_U8_MAX(struct i8042_state, obuf_src, I8042_SRC_AUX),
	VMSTATE_BOOL(struct i8042_state, kbd_irq),
	VMSTATE_BOOL(struct i8042_state, aux_irq),
	VMSTATE_U8(struct i8042_state, ctrl_byte),
	VMSTATE_BOOL(struct i8042_state, ctrl_full),
	VMSTATE_U8_MAX(struct i8042_state, ctrl_src, I8042_SRC_AUX),
	I8042_QUEUE_FIELDS(kbdq),
	I8042_QUEUE_FIELDS(auxq),
	VMSTATE_U8(struct i8042_state, kbd_pending),
	VMSTATE_BOOL(struct i8042_state, kbd_scanning),
	VMSTATE_U8_MAX(struct i8042_state, kbd_leds, 7),
	VMSTATE_U8_MAX(struct i8042_state, kbd_scancode_set, 3),
	VMSTATE_U8(struct i8042_state, kbd_typematic),
	VMSTATE_U8(struct i8042_state, aux_pending),
	VMSTATE_BOOL(struct i8042_state, aux_enabled),
	VMSTATE_BOOL(struct i8042_state, aux_remote),
	VMSTATE_BOOL(struct i8042_state, aux_wrap),
	VMSTATE_U8(struct i8042_state, aux_rate),
	VMSTATE_U8_MAX(struct i8042_state, aux_resolution, 3),
	VMSTATE_U8_MAX(struct i8042_state, aux_scaling, 2),
};

const struct vmstate_desc i8042_vmstate =
	VMSTATE_DESC("i8042", 1, i8042_fields, i8042_post_load);

/* ---- Glue: ports 0x60 and 0x64 */

static uint64_t i8042_data_read(void *opaque, uint64_t offset, unsigned size)
{
	return i8042_read_data(opaque);
}

static void i8042_data_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	i8042_write_data(opaque, (uint8_t)value);
}

static uint64_t i8042_status_read(void *opaque, uint64_t offset, unsigned size)
{
	return i8042_read_status(opaque);
}

static void i8042_command_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	i8042_write_command(opaque, (uint8_t)value);
}

static const struct io_ops i8042_data_ops = {
	.read = i8042_data_read,
	.write = i8042_data_write,
};

static const struct io_ops i8042_cmd_ops = {
	.read = i8042_status_read,
	.write = i8042_command_write,
};

static void i8042_dev_reset_request(void *opaque)
{
	vm_request_reset(opaque);
}

static void i8042_dev_reset(void *opaque)
{
	i8042_reset(opaque);
}

static struct i8042 *the_i8042;

struct i8042 *i8042_get(void)
{
	return the_i8042;
}

static int i8042_dev_init(struct vm *vm)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	struct irq_line kbd = vm_irq_line(vm, I8042_KBD_IRQ);
	struct irq_line aux = vm_irq_line(vm, I8042_AUX_IRQ);
	struct i8042_hooks hooks = { .reset_request = i8042_dev_reset_request, .opaque = vm };
	int ret;

	if (!k)
		return -ENOMEM;
	i8042_init(k, &kbd, &aux, &hooks);
	/* Two one-byte regions: 0x61..0x63 belong to the PIT/speaker owner. */
	ret = vm_register_pio(vm, I8042_DATA_PORT, 1, &i8042_data_ops, k);
	if (ret == 0)
		ret = vm_register_pio(vm, I8042_CMD_PORT, 1, &i8042_cmd_ops, k);
	if (ret < 0) {
		log_error("i8042: cannot register ports 0x60/0x64");
		return ret;
	}
	vm_register_reset(vm, i8042_dev_reset, k);
	vmstate_register(&i8042_vmstate, &k->s, sizeof(k->s), 0);
	the_i8042 = k;
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, i8042_dev_init)
