/* Unit tests for the 16550A model (hw/serial.c), driven through its
 * register interface with a fake IRQ line and a TX capture backend. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "hw/serial.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include <stdio.h>
#include <unistd.h>

struct fake {
	int level;
	unsigned level_changes;
	uint8_t tx[4096];
	size_t ntx;
	unsigned timeouts_armed;
	uint64_t last_delay;
	unsigned rx_space_calls;
};

static struct fake fk;

static void fake_set_level(void *opaque, unsigned gsi, int level)
{
	struct fake *f = opaque;

	f->level = level;
	f->level_changes++;
}

static void fake_tx(void *opaque, uint8_t byte)
{
	struct fake *f = opaque;

	if (f->ntx < sizeof(f->tx))
		f->tx[f->ntx++] = byte;
}

static void fake_arm(void *opaque, uint64_t delay_ns)
{
	struct fake *f = opaque;

	f->timeouts_armed++;
	f->last_delay = delay_ns;
}

static void fake_rx_space(void *opaque)
{
	struct fake *f = opaque;

	f->rx_space_calls++;
}

static void make_uart(struct serial *s, bool with_timer)
{
	struct irq_line irq = { .set_level = fake_set_level, .opaque = &fk, .gsi = 4 };
	struct serial_backend be = {
		.tx = fake_tx, .rx_space = fake_rx_space,
		.arm_timeout = with_timer ? fake_arm : NULL, .opaque = &fk,
	};

	memset(&fk, 0, sizeof(fk));
	serial_init(s, &irq, &be);
}

static uint8_t rd(struct serial *s, unsigned off)
{
	return serial_io_read(s, off);
}

static void wr(struct serial *s, unsigned off, uint8_t v)
{
	serial_io_write(s, off, v);
}

static void rx_str(struct serial *s, const char *str)
{
	serial_receive(s, (const uint8_t *)str, strlen(str));
}

static void test_reset_values(void **state)
{
	struct serial s;

	make_uart(&s, true);
	assert_int_equal(rd(&s, UART_IER), 0);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_NO_INT);
	assert_int_equal(rd(&s, UART_LCR), 0);
	assert_int_equal(rd(&s, UART_MCR), UART_MCR_OUT2);
	assert_int_equal(rd(&s, UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	assert_int_equal(rd(&s, UART_MSR), UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD);
	assert_int_equal(rd(&s, UART_SCR), 0);
	wr(&s, UART_LCR, UART_LCR_DLAB);
	assert_int_equal(rd(&s, UART_DLL), 0x0c);
	assert_int_equal(rd(&s, UART_DLM), 0x00);
	assert_int_equal(fk.level, 0);
	assert_int_equal(rd(&s, 8), 0xff);	/* out of range offset */
	serial_destroy(&s);
}

static void test_divisor_latch(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_LCR, UART_LCR_DLAB | 0x03);
	wr(&s, UART_DLL, 0x01);
	wr(&s, UART_DLM, 0x02);
	assert_int_equal(rd(&s, UART_DLL), 0x01);
	assert_int_equal(rd(&s, UART_DLM), 0x02);
	assert_int_equal(s.r.divider, 0x0201);
	assert_int_equal(fk.ntx, 0);		/* DLL write did not transmit */
	assert_int_equal(s.r.ier, 0);		/* DLM write did not touch IER */
	wr(&s, UART_LCR, 0x03);
	assert_int_equal(rd(&s, UART_IER), 0);
	wr(&s, UART_THR, 'Z');
	assert_int_equal(fk.ntx, 1);
	assert_int_equal(s.r.divider, 0x0201);
	/* 8N1 at 115200/0x201 baud: 4 characters of 10 bits. */
	assert_true(serial_timeout_ns(&s.r) > 170000000ULL);
	assert_true(serial_timeout_ns(&s.r) < 180000000ULL);
	serial_destroy(&s);
}

static void test_thr_output_and_thre_irq(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_LCR, 0x03);
	wr(&s, UART_THR, 'h');
	wr(&s, UART_THR, 'i');
	assert_int_equal(fk.ntx, 2);
	assert_memory_equal(fk.tx, "hi", 2);
	assert_int_equal(rd(&s, UART_LSR) & 0x60, 0x60);
	assert_int_equal(fk.level, 0);		/* THRI not enabled */
	wr(&s, UART_IER, UART_IER_THRI);
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_THRI);
	assert_int_equal(fk.level, 0);		/* IIR read acknowledged it */
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_NO_INT);
	wr(&s, UART_THR, '!');
	assert_int_equal(fk.level, 1);		/* empty again after the byte */
	wr(&s, UART_IER, 0);
	assert_int_equal(fk.level, 0);
	assert_int_equal(s.tx_bytes, 3);
	serial_destroy(&s);
}

static void test_rx_fifo_trigger_and_timeout(void **state)
{
	struct serial s;
	uint8_t buf[13];

	make_uart(&s, true);
	wr(&s, UART_FCR, UART_FCR_FE | UART_FCR_RFR | UART_FCR_XFR | 0xc0);	/* trigger 14 */
	wr(&s, UART_IER, UART_IER_RDI);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);
	assert_int_equal(serial_can_receive(&s), 16);
	memset(buf, 'a', sizeof(buf));
	assert_int_equal(serial_receive(&s, buf, sizeof(buf)), 13);
	assert_int_equal(fk.level, 0);		/* below the trigger level */
	assert_int_equal(fk.timeouts_armed, 1);	/* character timeout pending */
	assert_true(rd(&s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(serial_can_receive(&s), 3);
	rx_str(&s, "b");
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
	/* Drain below the trigger: the interrupt drops until the timeout. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(rd(&s, UART_RBR), 'a');
	assert_int_equal(fk.level, 0);
	assert_true(fk.rx_space_calls >= 10);
	serial_rx_timeout(&s);
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_FIFO | UART_IIR_CTI);
	assert_int_equal(rd(&s, UART_RBR), 'a');
	assert_int_equal(fk.level, 0);		/* reading cleared the timeout */
	assert_int_equal(rd(&s, UART_RBR), 'a');
	assert_int_equal(rd(&s, UART_RBR), 'a');
	assert_int_equal(rd(&s, UART_RBR), 'b');
	assert_false(rd(&s, UART_LSR) & UART_LSR_DR);
	serial_rx_timeout(&s);			/* a late timer on an empty FIFO */
	assert_int_equal(fk.level, 0);
	serial_destroy(&s);
}

static void test_trigger_levels(void **state)
{
	static const struct { uint8_t fcr; unsigned level; } cases[] = {
		{ 0x01, 1 }, { 0x41, 4 }, { 0x81, 8 }, { 0xc1, 14 },
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct serial s;

		make_uart(&s, true);
		wr(&s, UART_FCR, cases[c].fcr);
		wr(&s, UART_IER, UART_IER_RDI);
		for (unsigned i = 1; i < cases[c].level; i++) {
			rx_str(&s, "x");
			assert_int_equal(fk.level, 0);
		}
		rx_str(&s, "x");
		assert_int_equal(fk.level, 1);
		serial_destroy(&s);
	}
}

static void test_rx_overrun(void **state)
{
	struct serial s;
	uint8_t buf[20];

	make_uart(&s, true);
	wr(&s, UART_FCR, UART_FCR_FE);
	wr(&s, UART_IER, UART_IER_RLSI);
	for (int i = 0; i < 20; i++)
		buf[i] = i;
	assert_int_equal(serial_receive(&s, buf, 20), 16);
	assert_int_equal(serial_can_receive(&s), 0);
	assert_int_equal(s.rx_overruns, 4);
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_FIFO | UART_IIR_RLSI);
	assert_int_equal(rd(&s, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), UART_LSR_OE | UART_LSR_DR);
	assert_int_equal(rd(&s, UART_LSR) & UART_LSR_OE, 0);	/* cleared by the read */
	assert_int_equal(fk.level, 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(rd(&s, UART_RBR), i);	/* first 16 kept, in order */
	assert_false(rd(&s, UART_LSR) & UART_LSR_DR);
	serial_destroy(&s);
}

static void test_16450_mode(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_IER, UART_IER_RDI);
	assert_int_equal(serial_can_receive(&s), 1);
	rx_str(&s, "p");
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_RDI);	/* no FIFO bits */
	assert_int_equal(serial_can_receive(&s), 0);
	rx_str(&s, "q");				/* overwrites, sets OE */
	assert_int_equal(rd(&s, UART_LSR) & (UART_LSR_OE | UART_LSR_DR), UART_LSR_OE | UART_LSR_DR);
	assert_int_equal(rd(&s, UART_RBR), 'q');
	assert_int_equal(fk.level, 0);
	assert_int_equal(fk.timeouts_armed, 0);
	serial_destroy(&s);
}

static void test_fifo_enable_clears(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_FCR, UART_FCR_FE);
	rx_str(&s, "abc");
	wr(&s, UART_FCR, UART_FCR_FE | UART_FCR_RFR);
	assert_false(rd(&s, UART_LSR) & UART_LSR_DR);
	rx_str(&s, "abc");
	wr(&s, UART_FCR, 0);				/* FIFO off: both cleared */
	assert_false(rd(&s, UART_LSR) & UART_LSR_DR);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_FIFO, 0);
	serial_destroy(&s);
}

static void test_iir_priorities(void **state)
{
	struct serial s;
	uint8_t buf[17] = { 0 };

	make_uart(&s, true);
	wr(&s, UART_FCR, UART_FCR_FE);			/* trigger 1 */
	wr(&s, UART_IER, 0x0f);
	serial_set_carrier(&s, false);			/* modem status change */
	serial_receive(&s, buf, sizeof(buf));		/* data + overrun */
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_RLSI);
	rd(&s, UART_LSR);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_RDI);
	for (int i = 0; i < 16; i++)
		rd(&s, UART_RBR);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_THRI);
	/* That read acknowledged THRE; modem status is last. */
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_MSI);
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_MSR), UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_NO_INT);
	assert_int_equal(fk.level, 0);
	serial_set_carrier(&s, true);
	assert_int_equal(rd(&s, UART_MSR), 0xb0 | UART_MSR_DCTS | UART_MSR_DDSR | UART_MSR_DDCD);
	serial_destroy(&s);
}

static void test_loopback(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_FCR, UART_FCR_FE);
	wr(&s, UART_MCR, UART_MCR_LOOP);
	rd(&s, UART_MSR);				/* clear the deltas */
	assert_int_equal(rd(&s, UART_MSR), 0);
	assert_int_equal(serial_can_receive(&s), 0);	/* RX pin disconnected */
	wr(&s, UART_THR, 'L');
	wr(&s, UART_THR, 'B');
	assert_int_equal(fk.ntx, 0);			/* nothing reached the backend */
	assert_int_equal(rd(&s, UART_RBR), 'L');
	assert_int_equal(rd(&s, UART_RBR), 'B');
	/* Linux's autoconfig probe: LOOP | RTS | OUT2 reads back CTS | DCD. */
	wr(&s, UART_MCR, UART_MCR_LOOP | UART_MCR_RTS | UART_MCR_OUT2);
	assert_int_equal(rd(&s, UART_MSR) & 0xf0, UART_MSR_CTS | UART_MSR_DCD);
	wr(&s, UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	assert_int_equal(rd(&s, UART_MSR), UART_MSR_DSR | UART_MSR_RI | 0x0b);
	wr(&s, UART_MCR, UART_MCR_LOOP);		/* RI falls: TERI */
	assert_int_equal(rd(&s, UART_MSR), UART_MSR_DDSR | UART_MSR_TERI);
	wr(&s, UART_MCR, UART_MCR_OUT2);		/* back to the real lines */
	assert_int_equal(rd(&s, UART_MSR) & 0xf0, 0xb0);
	wr(&s, UART_THR, 'o');
	assert_int_equal(fk.ntx, 1);
	serial_destroy(&s);
}

static void test_out2_gates_irq(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_MCR, 0);
	wr(&s, UART_IER, UART_IER_THRI);
	assert_int_equal(fk.level, 0);
	assert_int_equal(rd(&s, UART_IIR) & UART_IIR_ID, UART_IIR_THRI);	/* pending */
	wr(&s, UART_THR, 'x');				/* pending again */
	wr(&s, UART_MCR, UART_MCR_OUT2);
	assert_int_equal(fk.level, 1);
	wr(&s, UART_MCR, UART_MCR_DTR | UART_MCR_RTS);
	assert_int_equal(fk.level, 0);
	serial_destroy(&s);
}

static void test_scratch(void **state)
{
	struct serial s;

	make_uart(&s, true);
	wr(&s, UART_SCR, 0x5a);
	assert_int_equal(rd(&s, UART_SCR), 0x5a);
	wr(&s, UART_SCR, 0xa5);
	assert_int_equal(rd(&s, UART_SCR), 0xa5);
	serial_reset(&s);
	assert_int_equal(rd(&s, UART_SCR), 0);
	serial_destroy(&s);
}

static void test_no_timer_backend(void **state)
{
	struct serial s;

	make_uart(&s, false);	/* no arm_timeout: the timeout is immediate */
	wr(&s, UART_FCR, 0xc1);
	wr(&s, UART_IER, UART_IER_RDI);
	rx_str(&s, "ab");
	assert_int_equal(fk.level, 1);
	assert_int_equal(rd(&s, UART_IIR), UART_IIR_FIFO | UART_IIR_CTI);
	serial_destroy(&s);
}

static void check_invariants(struct serial *s)
{
	const struct serial_regs *r = &s->r;
	uint8_t id = r->iir & UART_IIR_ID;

	assert_true(r->rx_count <= SERIAL_FIFO_SIZE);
	assert_true(r->rx_head < SERIAL_FIFO_SIZE);
	assert_int_equal(!!r->rx_count, !!(r->lsr & UART_LSR_DR));
	if (!(r->fcr & UART_FCR_FE))
		assert_true(r->rx_count <= 1);
	assert_int_equal(r->iir & 0x30, 0);
	assert_int_equal(r->lsr & 0x60, 0x60);
	assert_true(id == UART_IIR_NO_INT || id == UART_IIR_MSI || id == UART_IIR_THRI ||
		    id == UART_IIR_RDI || id == UART_IIR_RLSI || id == UART_IIR_CTI);
	assert_int_equal(fk.level, id != UART_IIR_NO_INT && (r->mcr & UART_MCR_OUT2));
	assert_int_equal(r->ier & 0xf0, 0);
	assert_int_equal(r->mcr & ~UART_MCR_MASK, 0);
}

static void test_fuzz(void **state)
{
	struct serial s;
	uint8_t buf[64], saved[128];
	char err[128];

	srand(12345);
	make_uart(&s, true);
	for (int iter = 0; iter < 200000; iter++) {
		int op = rand() % 8;
		unsigned off = rand() % 10;	/* includes out-of-range offsets */

		if (op < 3) {
			wr(&s, off, rand());
		} else if (op < 6) {
			rd(&s, off);
		} else if (op == 6) {
			size_t n = rand() % sizeof(buf);
			for (size_t i = 0; i < n; i++)
				buf[i] = rand();
			serial_receive(&s, buf, n);
		} else {
			switch (rand() % 3) {
			case 0: serial_rx_timeout(&s); break;
			case 1: serial_set_carrier(&s, rand() & 1); break;
			default: if (!(rand() % 1000)) serial_reset(&s); break;
			}
		}
		check_invariants(&s);
		if (iter % 1000 == 0) {
			struct serial t;
			size_t n = vmstate_save(&serial_vmstate, &s.r, saved);
			make_uart(&t, true);
			assert_int_equal(vmstate_load(&serial_vmstate, &t.r, sizeof(t.r), saved, n,
						      err, sizeof(err)), 0);
			serial_destroy(&t);
			fk.level = s.irq_level;	/* make_uart reset the fake */
		}
	}
	serial_destroy(&s);
}

static void test_vmstate_roundtrip(void **state)
{
	struct serial a, b;
	uint8_t s1[128], s2[128];
	size_t n1, n2;
	char err[128];

	assert_true(vmstate_size(&serial_vmstate) <= sizeof(s1));
	make_uart(&a, true);
	wr(&a, UART_LCR, 0x80);
	wr(&a, UART_DLL, 3);
	wr(&a, UART_LCR, 0x1b);
	wr(&a, UART_FCR, 0x87);
	wr(&a, UART_IER, 0x05);
	wr(&a, UART_SCR, 0x42);
	wr(&a, UART_MCR, 0x0b);
	for (int i = 0; i < 10; i++)
		rx_str(&a, "xy");
	for (int i = 0; i < 7; i++)
		rd(&a, UART_RBR);		/* head moves off zero, FIFO wraps */
	rx_str(&a, "0123456789");
	n1 = vmstate_save(&serial_vmstate, &a.r, s1);
	assert_int_equal(n1, vmstate_size(&serial_vmstate));

	make_uart(&b, true);
	assert_int_equal(vmstate_load(&serial_vmstate, &b.r, sizeof(b.r), s1, n1,
				      err, sizeof(err)), 0);
	serial_resync(&b);
	n2 = vmstate_save(&serial_vmstate, &b.r, s2);
	assert_int_equal(n1, n2);
	assert_memory_equal(s1, s2, n1);
	assert_int_equal(fk.level, 1);		/* resync drove the pending RDI */
	/* Same bytes come out of both. */
	for (int i = 0; i < 16; i++)
		assert_int_equal(rd(&a, UART_RBR), rd(&b, UART_RBR));
	serial_destroy(&a);
	serial_destroy(&b);
}

static size_t field_offset(const char *name)
{
	size_t pos = 0;

	for (size_t i = 0; i < serial_vmstate.nfields; i++) {
		const struct vmstate_field *f = &serial_vmstate.fields[i];
		size_t w = f->type == VMS_U16 ? 2 : 1;
		if (!strcmp(f->name, name))
			return pos;
		pos += w * f->count;
	}
	fail_msg("no field %s", name);
	return 0;
}

static void test_vmstate_rejects_bad_indexes(void **state)
{
	struct serial a, b;
	uint8_t buf[128], bad[128];
	size_t n;
	char err[128];

	make_uart(&a, true);
	wr(&a, UART_FCR, 0x01);
	rx_str(&a, "abc");
	n = vmstate_save(&serial_vmstate, &a.r, buf);
	make_uart(&b, true);
	wr(&b, UART_SCR, 0x77);

	memcpy(bad, buf, n);
	bad[field_offset("rx_head")] = SERIAL_FIFO_SIZE;
	assert_int_not_equal(vmstate_load(&serial_vmstate, &b.r, sizeof(b.r), bad, n,
					  err, sizeof(err)), 0);
	assert_non_null(strstr(err, "rx_head"));

	memcpy(bad, buf, n);
	bad[field_offset("rx_count")] = SERIAL_FIFO_SIZE + 1;
	assert_int_not_equal(vmstate_load(&serial_vmstate, &b.r, sizeof(b.r), bad, n,
					  err, sizeof(err)), 0);

	/* Consistency: a count with the FIFO disabled, DR without data. */
	memcpy(bad, buf, n);
	bad[field_offset("fcr")] = 0;
	assert_int_not_equal(vmstate_load(&serial_vmstate, &b.r, sizeof(b.r), bad, n,
					  err, sizeof(err)), 0);
	memcpy(bad, buf, n);
	bad[field_offset("rx_count")] = 0;
	assert_int_not_equal(vmstate_load(&serial_vmstate, &b.r, sizeof(b.r), bad, n,
					  err, sizeof(err)), 0);
	/* Truncated section. */
	assert_int_not_equal(vmstate_load(&serial_vmstate, &b.r, sizeof(b.r), buf, n - 1,
					  err, sizeof(err)), 0);
	/* The target was left untouched by every rejected load. */
	assert_int_equal(rd(&b, UART_SCR), 0x77);
	assert_false(rd(&b, UART_LSR) & UART_LSR_DR);
	serial_destroy(&a);
	serial_destroy(&b);
}

/* The COM port glue on a VM shell: I/O bus, no KVM (IRQ ioctls fail
 * quietly on vm_fd -1), no event loop. */
static void test_glue_com_ports(void **state)
{
	char path[128], spec[160], got[16] = "";
	struct vm_config cfg = { 0 };
	struct vm vm = { 0 };
	uint32_t v;
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/minikvm-test-serial-glue-%d", (int)getpid());
	snprintf(spec, sizeof(spec), "file:%s", path);
	cfg.serial[0] = spec;
	cfg.serial[1] = "null";
	vm.cfg = &cfg;
	vm.vm_fd = -1;
	vm.io = io_bus_new();
	assert_int_equal(serial_setup(&vm), 0);
	v = 0;
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, COM1_PORT + UART_LSR, &v, 1, false));
	assert_int_equal(v, UART_LSR_THRE | UART_LSR_TEMT);
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, COM2_PORT + UART_SCR, &v, 1, false));
	assert_false(io_dispatch(vm.io, IO_SPACE_PIO, COM3_PORT, &v, 1, false));
	/* A 16-bit write covers THR and IER: 'O' is sent, IER gets 0. */
	v = 'O';
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, COM1_PORT, &v, 2, true));
	v = 'K';
	assert_true(io_dispatch(vm.io, IO_SPACE_PIO, COM1_PORT, &v, 1, true));
	v = 0x33;
	io_dispatch(vm.io, IO_SPACE_PIO, COM1_PORT + UART_SCR, &v, 1, true);
	for (struct reset_hook *h = vm.reset_hooks; h; h = h->next)
		h->reset(h->opaque);
	io_dispatch(vm.io, IO_SPACE_PIO, COM1_PORT + UART_SCR, &v, 1, false);
	assert_int_equal(v & 0xff, 0);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, f), 2);
	fclose(f);
	assert_string_equal(got, "OK");
	unlink(path);
	/* A bad backend spec is a startup error. */
	cfg.serial[0] = "bogus";
	cfg.serial[1] = NULL;
	vm.io = io_bus_new();
	assert_true(serial_setup(&vm) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reset_values),
		cmocka_unit_test(test_divisor_latch),
		cmocka_unit_test(test_thr_output_and_thre_irq),
		cmocka_unit_test(test_rx_fifo_trigger_and_timeout),
		cmocka_unit_test(test_trigger_levels),
		cmocka_unit_test(test_rx_overrun),
		cmocka_unit_test(test_16450_mode),
		cmocka_unit_test(test_fifo_enable_clears),
		cmocka_unit_test(test_iir_priorities),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_out2_gates_irq),
		cmocka_unit_test(test_scratch),
		cmocka_unit_test(test_no_timer_backend),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_vmstate_roundtrip),
		cmocka_unit_test(test_vmstate_rejects_bad_indexes),
		cmocka_unit_test(test_glue_com_ports),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
