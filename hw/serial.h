/* The 16550A UART model: registers, 16-byte receive FIFO, interrupt
 * identification and modem lines. Independent of struct vm so unit tests
 * drive it directly; hw/serial.c also holds the COM1..COM4 glue. */
#ifndef HW_SERIAL_H
#define HW_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include "vmm/irq.h"
#include "vmm/vmstate.h"

#define SERIAL_FIFO_SIZE 16
#define SERIAL_NREGS     8

/* Register offsets from the port base */
#define UART_RBR 0	/* read, DLAB=0 */
#define UART_THR 0	/* write, DLAB=0 */
#define UART_DLL 0	/* DLAB=1 */
#define UART_IER 1	/* DLAB=0 */
#define UART_DLM 1	/* DLAB=1 */
#define UART_IIR 2	/* read */
#define UART_FCR 2	/* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_IER_RDI   0x01	/* received data available */
#define UART_IER_THRI  0x02	/* transmitter holding register empty */
#define UART_IER_RLSI  0x04	/* receiver line status */
#define UART_IER_MSI   0x08	/* modem status */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI    0x00
#define UART_IIR_THRI   0x02
#define UART_IIR_RDI    0x04
#define UART_IIR_RLSI   0x06
#define UART_IIR_CTI    0x0c	/* character timeout */
#define UART_IIR_ID     0x0f
#define UART_IIR_FIFO   0xc0	/* FIFOs enabled */

#define UART_FCR_FE     0x01
#define UART_FCR_RFR    0x02	/* clear receive FIFO */
#define UART_FCR_XFR    0x04	/* clear transmit FIFO */
#define UART_FCR_DMS    0x08
#define UART_FCR_ITL    0xc0	/* trigger level: 1, 4, 8, 14 */

#define UART_LCR_DLAB   0x80
#define UART_LCR_SBC    0x40	/* set break */

#define UART_MCR_DTR    0x01
#define UART_MCR_RTS    0x02
#define UART_MCR_OUT1   0x04
#define UART_MCR_OUT2   0x08	/* on a PC: gates the IRQ to the PIC */
#define UART_MCR_LOOP   0x10
#define UART_MCR_MASK   0x1f

#define UART_LSR_DR     0x01
#define UART_LSR_OE     0x02
#define UART_LSR_PE     0x04
#define UART_LSR_FE     0x08
#define UART_LSR_BI     0x10
#define UART_LSR_THRE   0x20
#define UART_LSR_TEMT   0x40
#define UART_LSR_ERR    0x80	/* error in receive FIFO */
#define UART_LSR_INT_ANY (UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI)

#define UART_MSR_DCTS   0x01
#define UART_MSR_DDSR   0x02
#define UART_MSR_TERI   0x04
#define UART_MSR_DDCD   0x08
#define UART_MSR_CTS    0x10
#define UART_MSR_DSR    0x20
#define UART_MSR_RI     0x40
#define UART_MSR_DCD    0x80
#define UART_MSR_DELTA  0x0f

/* Guest-visible state, saved and loaded as one vmstate section. Plain
 * data only: vmstate_load copies it around. */
struct serial_regs {
	uint16_t divider;
	uint8_t ier, iir, fcr, lcr, mcr, lsr, msr, scr;
	uint8_t rx_fifo[SERIAL_FIFO_SIZE];
	uint8_t rx_head;	/* index of the oldest byte, < SERIAL_FIFO_SIZE */
	uint8_t rx_count;	/* bytes in the FIFO, <= SERIAL_FIFO_SIZE */
	uint8_t thr_ipending;	/* THR-empty interrupt latched */
	uint8_t timeout_ipending;	/* character timeout latched */
	uint8_t carrier;	/* a backend is connected (CTS/DSR/DCD) */
};

/* Where the UART's output and flow-control notifications go. */
struct serial_backend {
	/* A transmitted byte; must not block (called with the UART locked). */
	void (*tx)(void *opaque, uint8_t byte);
	/* The receive FIFO has room again; called with the UART unlocked. */
	void (*rx_space)(void *opaque);
	/* Ask for serial_rx_timeout() after delay_ns (character timeout).
	 * NULL: the timeout is reported at once. May be called locked. */
	void (*arm_timeout)(void *opaque, uint64_t delay_ns);
	void *opaque;
};

struct serial {
	pthread_mutex_t lock;
	struct serial_regs r;
	struct irq_line irq;
	struct serial_backend be;
	int irq_level;		/* last level driven on the line, -1: unknown */
	uint64_t tx_bytes;	/* statistics */
	uint64_t rx_overruns;
};

extern const struct vmstate_desc serial_vmstate;

/* Initialise (and reset) a UART; irq and be may be NULL. */
void serial_init(struct serial *s, const struct irq_line *irq, const struct serial_backend *be);
void serial_destroy(struct serial *s);
void serial_reset(struct serial *s);

/* Register access; offset 0..7, other offsets read 0xff / are ignored. */
uint8_t serial_io_read(struct serial *s, unsigned offset);
void serial_io_write(struct serial *s, unsigned offset, uint8_t value);

/* Bytes from the backend. serial_can_receive() says how many fit without
 * overrun; extra bytes set LSR.OE and are dropped. Returns bytes taken. */
size_t serial_can_receive(struct serial *s);
size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len);
/* Character-timeout expiry (from the backend's timer). */
void serial_rx_timeout(struct serial *s);
/* Backend connected or not: drives CTS/DSR/DCD (outside loopback). */
void serial_set_carrier(struct serial *s, bool connected);
/* Re-derive the IRQ level and timers after the registers were replaced
 * (vmstate load). */
void serial_resync(struct serial *s);
/* Time of 4 characters at the programmed divisor and line format. */
uint64_t serial_timeout_ns(const struct serial_regs *r);

struct vm;
/* The DEVICE_INIT glue (exposed for tests): one UART per non-NULL
 * vm->cfg->serial[i] at COM1..COM4 (IRQ 4, 3, 4, 3). */
int serial_setup(struct vm *vm);

#endif
