/* Interrupt lines as seen by a device model: a level on one GSI.
 * The VM wires lines to KVM_IRQ_LINE; unit tests wire them to fakes. */
#ifndef VMM_IRQ_H
#define VMM_IRQ_H

struct irq_line {
	void (*set_level)(void *opaque, unsigned gsi, int level);
	void *opaque;
	unsigned gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l->set_level)
		l->set_level(l->opaque, l->gsi, level);
}

/* Edge-triggered ISA devices (RTC, timers) pulse the line. */
static inline void irq_line_pulse(const struct irq_line *l)
{
	irq_line_set(l, 1);
	irq_line_set(l, 0);
}

#endif
