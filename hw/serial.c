/* 16550A UART: the register model (FIFO, IIR priorities, modem lines,
 * loopback, OUT2 IRQ gating) and the COM1..COM4 glue that wires it to the
 * VM's port bus, IRQ lines and character backends. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "hw/serial.h"
#include "vmm/chardev.h"
#include "vmm/device.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"

#define UART_CLOCK_HZ 115200ULL

/* ------------------------------------------------------------------ */
/* Model internals; every function here runs with s->lock held.        */

static unsigned rx_capacity(const struct serial_regs *r)
{
	return (r->fcr & UART_FCR_FE) ? SERIAL_FIFO_SIZE : 1;
}

static unsigned rx_trigger(const struct serial_regs *r)
{
	static const uint8_t levels[4] = { 1, 4, 8, 14 };

	if (!(r->fcr & UART_FCR_FE))
		return 1;
	return levels[(r->fcr & UART_FCR_ITL) >> 6];
}

uint64_t serial_timeout_ns(const struct serial_regs *r)
{
	unsigned bits = 1 + 5 + (r->lcr & 3) + ((r->lcr & 4) ? 2 : 1) + ((r->lcr & 8) ? 1 : 0);
	uint64_t divisor = r->divider ? r->divider : 1;

	return 4ULL * bits * divisor * 1000000000ULL / UART_CLOCK_HZ;
}

static uint8_t current_iir_id(const struct serial_regs *r)
{
	if ((r->ier & UART_IER_RLSI) && (r->lsr & UART_LSR_INT_ANY))
		return UART_IIR_RLSI;
	if ((r->ier & UART_IER_RDI) && r->timeout_ipending)
		return UART_IIR_CTI;
	if ((r->ier & UART_IER_RDI) && (r->lsr & UART_LSR_DR) &&
	    r->rx_count >= rx_trigger(r))
		return UART_IIR_RDI;
	if ((r->ier & UART_IER_THRI) && r->thr_ipending)
		return UART_IIR_THRI;
	if ((r->ier & UART_IER_MSI) && (r->msr & UART_MSR_DELTA))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

static void update_irq(struct serial *s)
{
	struct serial_regs *r = &s->r;
	uint8_t id = current_iir_id(r);
	int level;

	r->iir = id | ((r->fcr & UART_FCR_FE) ? UART_IIR_FIFO : 0);
	level = id != UART_IIR_NO_INT && (r->mcr & UART_MCR_OUT2);
	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line_set(&s->irq, level);
	}
}

/* Data sits in the FIFO below the trigger level: the guest learns about
 * it through the character timeout, 4 character times later. */
static void rx_restart_timeout(struct serial *s)
{
	struct serial_regs *r = &s->r;

	if (!(r->fcr & UART_FCR_FE) || !r->rx_count || r->rx_count >= rx_trigger(r))
		return;
	if (s->be.arm_timeout)
		s->be.arm_timeout(s->be.opaque, serial_timeout_ns(r));
	else
		r->timeout_ipending = 1;
}

static void rx_clear(struct serial_regs *r)
{
	r->rx_head = 0;
	r->rx_count = 0;
	r->lsr &= ~(UART_LSR_DR | UART_LSR_BI);
	r->timeout_ipending = 0;
}

static void rx_push(struct serial *s, uint8_t byte)
{
	struct serial_regs *r = &s->r;

	if (!(r->fcr & UART_FCR_FE)) {
		/* 16450 mode: a new byte overwrites an unread one. */
		if (r->lsr & UART_LSR_DR) {
			r->lsr |= UART_LSR_OE;
			s->rx_overruns++;
		}
		r->rx_head = 0;
		r->rx_fifo[0] = byte;
		r->rx_count = 1;
	} else if (r->rx_count >= SERIAL_FIFO_SIZE) {
		/* FIFO full: the byte in the shift register is lost. */
		r->lsr |= UART_LSR_OE;
		s->rx_overruns++;
		return;
	} else {
		r->rx_fifo[(r->rx_head + r->rx_count) % SERIAL_FIFO_SIZE] = byte;
		r->rx_count++;
	}
	r->lsr |= UART_LSR_DR;
}

static uint8_t rx_pop(struct serial *s)
{
	struct serial_regs *r = &s->r;
	uint8_t byte;

	r->rx_head %= SERIAL_FIFO_SIZE;
	if (!r->rx_count)	/* empty: the last byte read stays visible */
		return r->rx_fifo[(r->rx_head + SERIAL_FIFO_SIZE - 1) % SERIAL_FIFO_SIZE];
	byte = r->rx_fifo[r->rx_head];
	r->rx_head = (r->rx_head + 1) % SERIAL_FIFO_SIZE;
	r->rx_count--;
	r->timeout_ipending = 0;
	if (!r->rx_count)
		r->lsr &= ~(UART_LSR_DR | UART_LSR_BI);
	else
		rx_restart_timeout(s);
	return byte;
}

/* Modem status inputs: looped back from MCR, or the backend's carrier. */
static void update_msr(struct serial_regs *r)
{
	uint8_t lines = 0, old = r->msr, delta = 0;

	if (r->mcr & UART_MCR_LOOP) {
		if (r->mcr & UART_MCR_DTR)
			lines |= UART_MSR_DSR;
		if (r->mcr & UART_MCR_RTS)
			lines |= UART_MSR_CTS;
		if (r->mcr & UART_MCR_OUT1)
			lines |= UART_MSR_RI;
		if (r->mcr & UART_MCR_OUT2)
			lines |= UART_MSR_DCD;
	} else if (r->carrier) {
		lines = UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD;
	}
	if ((old ^ lines) & UART_MSR_CTS)
		delta |= UART_MSR_DCTS;
	if ((old ^ lines) & UART_MSR_DSR)
		delta |= UART_MSR_DDSR;
	if ((old ^ lines) & UART_MSR_DCD)
		delta |= UART_MSR_DDCD;
	if ((old & UART_MSR_RI) && !(lines & UART_MSR_RI))
		delta |= UART_MSR_TERI;
	r->msr = lines | (old & UART_MSR_DELTA) | delta;
}

static void transmit(struct serial *s, uint8_t byte)
{
	struct serial_regs *r = &s->r;

	r->thr_ipending = 0;
	if (r->mcr & UART_MCR_LOOP) {
		rx_push(s, byte);
		rx_restart_timeout(s);
	} else {
		s->tx_bytes++;
		if (s->be.tx)
			s->be.tx(s->be.opaque, byte);
	}
	/* The backend never blocks, so the shift register empties at once. */
	r->lsr |= UART_LSR_THRE | UART_LSR_TEMT;
	r->thr_ipending = 1;
}

static void write_ier(struct serial_regs *r, uint8_t value)
{
	uint8_t old = r->ier;

	r->ier = value & 0x0f;
	if ((r->ier & UART_IER_THRI) && !(old & UART_IER_THRI) && (r->lsr & UART_LSR_THRE))
		r->thr_ipending = 1;
	if (!(r->ier & UART_IER_THRI))
		r->thr_ipending = 0;
}

static void write_fcr(struct serial *s, uint8_t value)
{
	struct serial_regs *r = &s->r;

	if ((value ^ r->fcr) & UART_FCR_FE)
		value |= UART_FCR_RFR | UART_FCR_XFR;
	if (value & UART_FCR_RFR)
		rx_clear(r);
	if (value & UART_FCR_XFR) {
		r->lsr |= UART_LSR_THRE | UART_LSR_TEMT;
		r->thr_ipending = 1;
	}
	r->fcr = (value & UART_FCR_FE) ? value & (UART_FCR_FE | UART_FCR_DMS | UART_FCR_ITL) : 0;
	rx_restart_timeout(s);
}

static uint8_t reg_read(struct serial *s, unsigned offset)
{
	struct serial_regs *r = &s->r;
	uint8_t ret;

	switch (offset) {
	case UART_RBR:
		if (r->lcr & UART_LCR_DLAB)
			return r->divider & 0xff;
		return rx_pop(s);
	case UART_IER:
		if (r->lcr & UART_LCR_DLAB)
			return r->divider >> 8;
		return r->ier;
	case UART_IIR:
		ret = r->iir;
		if ((ret & UART_IIR_ID) == UART_IIR_THRI)
			r->thr_ipending = 0;
		return ret;
	case UART_LCR:
		return r->lcr;
	case UART_MCR:
		return r->mcr;
	case UART_LSR:
		ret = r->lsr;
		r->lsr &= ~(UART_LSR_INT_ANY | UART_LSR_ERR);
		return ret;
	case UART_MSR:
		ret = r->msr;
		r->msr &= ~UART_MSR_DELTA;
		return ret;
	case UART_SCR:
		return r->scr;
	}
	return 0xff;
}

static void reg_write(struct serial *s, unsigned offset, uint8_t value)
{
	struct serial_regs *r = &s->r;

	switch (offset) {
	case UART_THR:
		if (r->lcr & UART_LCR_DLAB)
			r->divider = (r->divider & 0xff00) | value;
		else
			transmit(s, value);
		break;
	case UART_IER:
		if (r->lcr & UART_LCR_DLAB)
			r->divider = (r->divider & 0x00ff) | (value << 8);
		else
			write_ier(r, value);
		break;
	case UART_FCR:
		write_fcr(s, value);
		break;
	case UART_LCR:
		r->lcr = value;
		break;
	case UART_MCR:
		r->mcr = value & UART_MCR_MASK;
		update_msr(r);
		break;
	case UART_LSR:
	case UART_MSR:
		/* Factory-test writes; read-only here like on most clones. */
		log_guest(LOG_UNIMP, "serial: write 0x%02x to read-only register %u",
			  value, offset);
		break;
	case UART_SCR:
		r->scr = value;
		break;
	}
}

static void reset_regs(struct serial_regs *r)
{
	uint8_t carrier = r->carrier;

	memset(r, 0, sizeof(*r));
	r->carrier = carrier;
	r->divider = 0x0c;		/* 9600 baud */
	r->iir = UART_IIR_NO_INT;
	r->mcr = UART_MCR_OUT2;		/* as QEMU's reset state */
	r->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	update_msr(r);
	r->msr &= ~UART_MSR_DELTA;
}

/* ------------------------------------------------------------------ */
/* Public model API: takes the lock around the internals.             */

static void notify_rx_space(struct serial *s)
{
	if (s->be.rx_space)
		s->be.rx_space(s->be.opaque);
}

void serial_init(struct serial *s, const struct irq_line *irq, const struct serial_backend *be)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	if (irq)
		s->irq = *irq;
	if (be)
		s->be = *be;
	s->r.carrier = 1;
	s->irq_level = -1;
	reset_regs(&s->r);
	update_irq(s);
}

void serial_destroy(struct serial *s)
{
	pthread_mutex_destroy(&s->lock);
}

void serial_reset(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	reset_regs(&s->r);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	notify_rx_space(s);
}

uint8_t serial_io_read(struct serial *s, unsigned offset)
{
	uint8_t ret;
	bool rx_read;

	if (offset >= SERIAL_NREGS)
		return 0xff;
	pthread_mutex_lock(&s->lock);
	rx_read = offset == UART_RBR && !(s->r.lcr & UART_LCR_DLAB);
	ret = reg_read(s, offset);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (rx_read)
		notify_rx_space(s);
	return ret;
}

void serial_io_write(struct serial *s, unsigned offset, uint8_t value)
{
	if (offset >= SERIAL_NREGS)
		return;
	pthread_mutex_lock(&s->lock);
	reg_write(s, offset, value);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	if (offset == UART_FCR || offset == UART_MCR)
		notify_rx_space(s);
}

size_t serial_can_receive(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	if (s->r.mcr & UART_MCR_LOOP)
		room = 0;	/* the receive pin is disconnected in loopback */
	else if (s->r.fcr & UART_FCR_FE)
		room = SERIAL_FIFO_SIZE - (s->r.rx_count % (SERIAL_FIFO_SIZE + 1));
	else
		room = (s->r.lsr & UART_LSR_DR) ? 0 : 1;
	pthread_mutex_unlock(&s->lock);
	return room;
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	size_t taken = 0;

	pthread_mutex_lock(&s->lock);
	if (!(s->r.mcr & UART_MCR_LOOP)) {
		for (size_t i = 0; i < len; i++) {
			uint64_t overruns = s->rx_overruns;
			bool fifo = s->r.fcr & UART_FCR_FE;
			rx_push(s, buf[i]);
			if (!fifo || overruns == s->rx_overruns)
				taken++;
		}
		rx_restart_timeout(s);
		update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return taken;
}

void serial_rx_timeout(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	if ((s->r.fcr & UART_FCR_FE) && s->r.rx_count)
		s->r.timeout_ipending = 1;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_set_carrier(struct serial *s, bool connected)
{
	pthread_mutex_lock(&s->lock);
	s->r.carrier = connected;
	update_msr(&s->r);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

void serial_resync(struct serial *s)
{
	pthread_mutex_lock(&s->lock);
	s->irq_level = -1;
	if (!s->r.timeout_ipending)
		rx_restart_timeout(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	notify_rx_space(s);
}

/* ------------------------------------------------------------------ */
/* Migration state                                                    */

static int serial_post_load(void *opaque)
{
	const struct serial_regs *r = opaque;

	if (r->rx_head >= SERIAL_FIFO_SIZE || r->rx_count > rx_capacity(r))
		return -EINVAL;
	if (!!r->rx_count != !!(r->lsr & UART_LSR_DR))
		return -EINVAL;
	if ((r->ier & ~0x0f) || (r->mcr & ~UART_MCR_MASK))
		return -EINVAL;
	if ((r->lsr & (UART_LSR_THRE | UART_LSR_TEMT)) != (UART_LSR_THRE | UART_LSR_TEMT))
		return -EINVAL;	/* no transmit backlog exists in this model */
	if (r->timeout_ipending && !r->rx_count)
		return -EINVAL;
	return 0;
}

static const struct vmstate_field serial_fields[] = {
	VMSTATE_U16(struct serial_regs, divider),
	VMSTATE_U8(struct serial_regs, ier),
	VMSTATE_U8(struct serial_regs, iir),
	VMSTATE_U8(struct serial_regs, fcr),
	VMSTATE_U8(struct serial_regs, lcr),
	VMSTATE_U8(struct serial_regs, mcr),
	VMSTATE_U8(struct serial_regs, lsr),
	VMSTATE_U8(struct serial_regs, msr),
	VMSTATE_U8(struct serial_regs, scr),
	VMSTATE_U8_ARRAY(struct serial_regs, rx_fifo),
	VMSTATE_U8_MAX(struct serial_regs, rx_head, SERIAL_FIFO_SIZE - 1),
	VMSTATE_U8_MAX(struct serial_regs, rx_count, SERIAL_FIFO_SIZE),
	VMSTATE_U8_MAX(struct serial_regs, thr_ipending, 1),
	VMSTATE_U8_MAX(struct serial_regs, timeout_ipending, 1),
	VMSTATE_U8_MAX(struct serial_regs, carrier, 1),
};

const struct vmstate_desc serial_vmstate =
	VMSTATE_DESC("serial", 1, serial_fields, serial_post_load);

/* ------------------------------------------------------------------ */
/* COM1..COM4 on the VM                                               */

struct com_port {
	struct serial uart;
	struct chardev *chr;
	struct event_timer *timer;
	struct shared_irq *line;
	unsigned bit;
};

/* COM1/COM3 and COM2/COM4 share an ISA IRQ: OR the levels of both. */
struct shared_irq {
	pthread_mutex_t lock;
	struct irq_line out;
	unsigned levels;
};

static const uint16_t com_ports[MAX_SERIAL_PORTS] = { COM1_PORT, COM2_PORT, COM3_PORT, COM4_PORT };
static const uint8_t com_irqs[MAX_SERIAL_PORTS] = { COM1_IRQ, COM2_IRQ, COM1_IRQ, COM2_IRQ };
static struct com_port coms[MAX_SERIAL_PORTS];
static struct shared_irq com_lines[2] = {
	{ .lock = PTHREAD_MUTEX_INITIALIZER }, { .lock = PTHREAD_MUTEX_INITIALIZER },
};

static void shared_irq_set(void *opaque, unsigned gsi, int level)
{
	struct com_port *p = opaque;
	struct shared_irq *l = p->line;
	unsigned old;

	pthread_mutex_lock(&l->lock);
	old = l->levels;
	if (level)
		l->levels |= p->bit;
	else
		l->levels &= ~p->bit;
	if (!!old != !!l->levels)
		irq_line_set(&l->out, !!l->levels);
	pthread_mutex_unlock(&l->lock);
}

static uint64_t com_pio_read(void *opaque, uint64_t offset, unsigned size)
{
	struct com_port *p = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)serial_io_read(&p->uart, offset + i) << (8 * i);
	return v;
}

static void com_pio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct com_port *p = opaque;

	for (unsigned i = 0; i < size; i++)
		serial_io_write(&p->uart, offset + i, value >> (8 * i));
}

static const struct io_ops com_pio_ops = { .read = com_pio_read, .write = com_pio_write };

static void com_tx(void *opaque, uint8_t byte)
{
	struct com_port *p = opaque;

	chardev_write(p->chr, &byte, 1);
}

static void com_rx_space(void *opaque)
{
	struct com_port *p = opaque;

	chardev_accept_input(p->chr);
}

static void com_arm_timeout(void *opaque, uint64_t delay_ns)
{
	struct com_port *p = opaque;

	event_timer_arm(p->timer, clock_ns() + delay_ns);
}

static void com_timer_fired(void *opaque)
{
	struct com_port *p = opaque;

	serial_rx_timeout(&p->uart);
}

static size_t com_can_read(void *opaque)
{
	struct com_port *p = opaque;

	return serial_can_receive(&p->uart);
}

static void com_read(void *opaque, const uint8_t *buf, size_t len)
{
	struct com_port *p = opaque;

	serial_receive(&p->uart, buf, len);
}

static void com_event(void *opaque, bool connected)
{
	struct com_port *p = opaque;

	serial_set_carrier(&p->uart, connected);
}

static void com_reset(void *opaque)
{
	struct com_port *p = opaque;

	serial_reset(&p->uart);
}

static int com_create(struct vm *vm, unsigned index, const char *spec)
{
	struct com_port *p = &coms[index];
	struct shared_irq *line = &com_lines[index & 1];
	char err[256], label[16];
	struct serial_backend be = {
		.tx = com_tx, .rx_space = com_rx_space, .opaque = p,
	};
	struct irq_line irq = { .set_level = shared_irq_set, .opaque = p, .gsi = com_irqs[index] };
	struct chardev_frontend fe = {
		.can_read = com_can_read, .read = com_read, .event = com_event, .opaque = p,
	};
	int ret;

	snprintf(label, sizeof(label), "serial%u", index);
	p->chr = chardev_open_label(spec, label, err, sizeof(err));
	if (!p->chr) {
		log_error("-serial %s: %s", spec, err);
		return -EINVAL;
	}
	if (vm->loop) {
		p->timer = event_timer_new(vm->loop, com_timer_fired, p);
		if (p->timer)
			be.arm_timeout = com_arm_timeout;
	}
	line->out = vm_irq_line(vm, com_irqs[index]);
	p->line = line;
	p->bit = 1u << (index >> 1);
	serial_init(&p->uart, &irq, &be);
	p->uart.r.carrier = chardev_is_connected(p->chr);	/* no delta at power-on */
	serial_reset(&p->uart);
	ret = vm_register_pio(vm, com_ports[index], SERIAL_NREGS, &com_pio_ops, p);
	if (ret < 0) {
		log_error("serial%u: port 0x%x busy", index, com_ports[index]);
		return ret;
	}
	vm_register_reset(vm, com_reset, p);
	vmstate_register(&serial_vmstate, &p->uart.r, sizeof(p->uart.r), index);
	chardev_attach(p->chr, vm->loop, &fe);
	return 0;
}

int serial_setup(struct vm *vm)
{
	for (unsigned i = 0; i < MAX_SERIAL_PORTS; i++) {
		const char *spec = vm->cfg->serial[i];
		int ret;

		if (!spec || !strcmp(spec, "none"))
			continue;
		ret = com_create(vm, i, spec);
		if (ret < 0)
			return ret;
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_DEVICE, serial_setup)
