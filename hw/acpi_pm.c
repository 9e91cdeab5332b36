/* PIIX4-compatible ACPI power management I/O at fixed ports: PM1a event
 * and control blocks (S5 power-off), the 24-bit 3.579545 MHz PM timer,
 * GPE0, the SMI command port that switches SCI_EN, and the SCI on IRQ 9.
 * The PIIX4 PCI function's config space belongs to the PCI code. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hw/acpi_pm.h"
#include "vmm/device.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define NS_PER_SEC 1000000000ULL
#define TMR_MASK ((1u << ACPI_PM_TMR_BITS) - 1)
#define TMR_MSB_SHIFT (ACPI_PM_TMR_BITS - 1)

#define PM1_STS_BITS (ACPI_PM1_TMR_STS | ACPI_PM1_BM_STS | ACPI_PM1_GBL_STS | \
		      ACPI_PM1_PWRBTN_STS | ACPI_PM1_SLPBTN_STS | ACPI_PM1_RTC_STS | \
		      ACPI_PM1_WAK_STS)
#define PM1_EN_BITS (ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN | ACPI_PM1_PWRBTN_EN | \
		     ACPI_PM1_SLPBTN_EN | ACPI_PM1_RTC_EN)
#define PM1_CNT_BITS (ACPI_PM1_SCI_EN | 0x0006 | ACPI_PM1_SLP_TYP_MASK)

/* Register offsets inside the PM block */
#define PM_OFF_STS 0
#define PM_OFF_EN  2
#define PM_OFF_CNT 4
#define PM_OFF_TMR 8

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Free-running tick count since the clock's origin. */
static uint64_t timer_ticks(const struct acpi_pm *pm)
{
	return (uint64_t)((unsigned __int128)pm->now_ns() * ACPI_PM_TMR_HZ / NS_PER_SEC);
}

/* ---- SCI and status (lock held) */

/* TMR_STS is set each time the timer's top bit toggles. */
static void check_timer_overflow(struct acpi_pm *pm)
{
	uint64_t epoch = timer_ticks(pm) >> TMR_MSB_SHIFT;

	if (epoch != pm->tmr_epoch) {
		pm->tmr_epoch = epoch;
		pm->s.pm1_sts |= ACPI_PM1_TMR_STS;
	}
}

static void update_sci(struct acpi_pm *pm)
{
	bool level = (pm->s.pm1_sts & pm->s.pm1_en & PM1_EN_BITS) != 0;

	for (unsigned i = 0; i < ACPI_GPE_BYTES; i++)
		level |= (pm->s.gpe_sts[i] & pm->s.gpe_en[i]) != 0;
	if (level != pm->s.sci_level) {
		pm->s.sci_level = level;
		irq_line_set(&pm->sci, level);
	}
}

/* ---- PM1 block */

static void pm1_write_sts(struct acpi_pm *pm, uint16_t val)
{
	check_timer_overflow(pm);
	pm->s.pm1_sts &= ~val;		/* write 1 to clear */
}

/* Returns true when TMR_EN changed (the overflow timer needs reprogramming). */
static bool pm1_write_en(struct acpi_pm *pm, uint16_t val)
{
	uint16_t old = pm->s.pm1_en;

	if (val & ~PM1_EN_BITS)
		log_guest(LOG_UNIMP, "acpi_pm: PM1_EN bits 0x%04x ignored", val & ~PM1_EN_BITS);
	pm->s.pm1_en = val & PM1_EN_BITS;
	return (old ^ pm->s.pm1_en) & ACPI_PM1_TMR_EN;
}

/* Returns true when the guest asked for S5. */
static bool pm1_write_cnt(struct acpi_pm *pm, uint16_t val)
{
	unsigned typ = (val & ACPI_PM1_SLP_TYP_MASK) >> ACPI_PM1_SLP_TYP_SHIFT;

	pm->s.pm1_cnt = val & PM1_CNT_BITS;
	if (!(val & ACPI_PM1_SLP_EN))
		return false;
	if (typ == ACPI_S5_SLP_TYP)
		return true;
	log_guest(LOG_UNIMP, "acpi_pm: sleep type %u not implemented, ignored", typ);
	return false;
}

struct write_effects {
	bool poweroff;
	bool timers_changed;
};

/* Merge the bytes of an access into the 16-bit register at reg. */
static bool lane_merge(unsigned reg, unsigned offset, uint64_t value, unsigned size,
		       uint16_t old, uint16_t *merged, uint16_t *mask)
{
	*mask = 0;
	*merged = old;
	for (unsigned i = 0; i < size; i++) {
		unsigned o = offset + i, shift = 8 * (o - reg);

		if (o < reg || o >= reg + 2)
			continue;
		*mask |= (uint16_t)(0xff << shift);
		*merged = (uint16_t)((*merged & ~(0xff << shift)) |
				     (((value >> (8 * i)) & 0xff) << shift));
	}
	return *mask != 0;
}

static void pm_block_write(struct acpi_pm *pm, unsigned offset, uint64_t value, unsigned size,
			   struct write_effects *fx)
{
	uint16_t v, mask;

	if (lane_merge(PM_OFF_STS, offset, value, size, 0, &v, &mask))
		pm1_write_sts(pm, v);
	if (lane_merge(PM_OFF_EN, offset, value, size, pm->s.pm1_en, &v, &mask))
		fx->timers_changed |= pm1_write_en(pm, v);
	if (lane_merge(PM_OFF_CNT, offset, value, size, pm->s.pm1_cnt, &v, &mask))
		fx->poweroff |= pm1_write_cnt(pm, v);
	if (offset + size > PM_OFF_CNT + 2)
		log_guest(LOG_GUEST_ERRORS, "acpi_pm: write 0x%llx to PM block offset 0x%x ignored",
			  (unsigned long long)value, offset);
}

static uint8_t pm_block_byte(const struct acpi_pm *pm, unsigned o, uint32_t tmr)
{
	switch (o) {
	case PM_OFF_STS: case PM_OFF_STS + 1:
		return (uint8_t)(pm->s.pm1_sts >> (8 * (o - PM_OFF_STS)));
	case PM_OFF_EN: case PM_OFF_EN + 1:
		return (uint8_t)(pm->s.pm1_en >> (8 * (o - PM_OFF_EN)));
	case PM_OFF_CNT: case PM_OFF_CNT + 1:
		return (uint8_t)(pm->s.pm1_cnt >> (8 * (o - PM_OFF_CNT)));
	case PM_OFF_TMR: case PM_OFF_TMR + 1: case PM_OFF_TMR + 2: case PM_OFF_TMR + 3:
		return (uint8_t)(tmr >> (8 * (o - PM_OFF_TMR)));
	default:
		return 0;
	}
}

/* ---- GPE0 and SMI command blocks */

static uint8_t gpe_byte(const struct acpi_pm *pm, unsigned o)
{
	if (o < ACPI_GPE_BYTES)
		return pm->s.gpe_sts[o];
	if (o < 2 * ACPI_GPE_BYTES)
		return pm->s.gpe_en[o - ACPI_GPE_BYTES];
	return 0;
}

static void gpe_write_byte(struct acpi_pm *pm, unsigned o, uint8_t b)
{
	if (o < ACPI_GPE_BYTES)
		pm->s.gpe_sts[o] &= ~b;
	else if (o < 2 * ACPI_GPE_BYTES)
		pm->s.gpe_en[o - ACPI_GPE_BYTES] = b;
}

static void smi_write_byte(struct acpi_pm *pm, unsigned o, uint8_t b)
{
	if (o == 1) {
		pm->s.apm_sts = b;
		return;
	}
	pm->s.smi_cmd = b;
	if (b == ACPI_ENABLE_CMD)
		pm->s.pm1_cnt |= ACPI_PM1_SCI_EN;
	else if (b == ACPI_DISABLE_CMD)
		pm->s.pm1_cnt &= ~ACPI_PM1_SCI_EN;
}

static uint8_t smi_byte(const struct acpi_pm *pm, unsigned o)
{
	return o == 0 ? pm->s.smi_cmd : o == 1 ? pm->s.apm_sts : 0;
}

/* ---- Public access */

uint64_t acpi_pm_io_read(struct acpi_pm *pm, enum acpi_pm_block blk, unsigned offset,
			 unsigned size)
{
	uint64_t v = 0;
	uint32_t tmr;

	pthread_mutex_lock(&pm->lock);
	check_timer_overflow(pm);
	update_sci(pm);
	tmr = (uint32_t)(timer_ticks(pm) & TMR_MASK);
	for (unsigned i = 0; i < size; i++) {
		unsigned o = offset + i;
		uint8_t b = blk == ACPI_PM_BLK_PM ? pm_block_byte(pm, o, tmr) :
			    blk == ACPI_PM_BLK_GPE ? gpe_byte(pm, o) : smi_byte(pm, o);

		v |= (uint64_t)b << (8 * i);
	}
	pthread_mutex_unlock(&pm->lock);
	return v;
}

void acpi_pm_io_write(struct acpi_pm *pm, enum acpi_pm_block blk, unsigned offset,
		      uint64_t value, unsigned size)
{
	struct write_effects fx = { false, false };

	pthread_mutex_lock(&pm->lock);
	if (blk == ACPI_PM_BLK_PM) {
		pm_block_write(pm, offset, value, size, &fx);
	} else {
		for (unsigned i = 0; i < size; i++) {
			uint8_t b = (uint8_t)(value >> (8 * i));

			if (blk == ACPI_PM_BLK_GPE)
				gpe_write_byte(pm, offset + i, b);
			else
				smi_write_byte(pm, offset + i, b);
		}
	}
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	if (fx.timers_changed && pm->hooks.timers_changed)
		pm->hooks.timers_changed(pm->hooks.opaque);
	if (fx.poweroff && pm->hooks.poweroff)
		pm->hooks.poweroff(pm->hooks.opaque);
}

uint32_t acpi_pm_timer_value(struct acpi_pm *pm)
{
	return (uint32_t)acpi_pm_io_read(pm, ACPI_PM_BLK_PM, PM_OFF_TMR, 4);
}

bool acpi_pm_power_button(struct acpi_pm *pm)
{
	bool delivered;

	pthread_mutex_lock(&pm->lock);
	delivered = pm->s.pm1_en & ACPI_PM1_PWRBTN_EN;
	if (delivered)
		pm->s.pm1_sts |= ACPI_PM1_PWRBTN_STS;
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
	return delivered;
}

void acpi_pm_gpe_raise(struct acpi_pm *pm, unsigned bit)
{
	if (bit >= 8 * ACPI_GPE_BYTES)
		return;
	pthread_mutex_lock(&pm->lock);
	pm->s.gpe_sts[bit / 8] |= (uint8_t)(1u << (bit % 8));
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

uint64_t acpi_pm_timer_delay_ns(struct acpi_pm *pm)
{
	uint64_t delay = ACPI_PM_NO_TIMER, ticks, left;

	pthread_mutex_lock(&pm->lock);
	if (pm->s.pm1_en & ACPI_PM1_TMR_EN) {
		ticks = timer_ticks(pm);
		left = (1ULL << TMR_MSB_SHIFT) - (ticks & ((1ULL << TMR_MSB_SHIFT) - 1));
		delay = (left * NS_PER_SEC + ACPI_PM_TMR_HZ - 1) / ACPI_PM_TMR_HZ;
	}
	pthread_mutex_unlock(&pm->lock);
	return delay;
}

void acpi_pm_timer_tick(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	check_timer_overflow(pm);
	update_sci(pm);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm_init(struct acpi_pm *pm, const struct irq_line *sci, uint64_t (*now_ns)(void),
		  const struct acpi_pm_hooks *hooks)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	if (sci)
		pm->sci = *sci;
	if (hooks)
		pm->hooks = *hooks;
	pm->now_ns = now_ns ? now_ns : monotonic_ns;
	pm->tmr_epoch = timer_ticks(pm) >> TMR_MSB_SHIFT;
}

void acpi_pm_destroy(struct acpi_pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

void acpi_pm_reset(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	memset(&pm->s, 0, sizeof(pm->s));
	pm->tmr_epoch = timer_ticks(pm) >> TMR_MSB_SHIFT;
	irq_line_set(&pm->sci, 0);
	pthread_mutex_unlock(&pm->lock);
	if (pm->hooks.timers_changed)
		pm->hooks.timers_changed(pm->hooks.opaque);
}

void acpi_pm_resync(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->tmr_epoch = timer_ticks(pm) >> TMR_MSB_SHIFT;
	irq_line_set(&pm->sci, pm->s.sci_level);
	pthread_mutex_unlock(&pm->lock);
	if (pm->hooks.timers_changed)
		pm->hooks.timers_changed(pm->hooks.opaque);
}

/* ---- Migration state */

static int acpi_pm_post_load(void *opaque)
{
	const struct acpi_pm_state *s = opaque;

	if ((s->pm1_sts & ~PM1_STS_BITS) || (s->pm1_en & ~PM1_EN_BITS) ||
	    (s->pm1_cnt & ~PM1_CNT_BITS))
		return -EINVAL;
	return 0;
}

static const struct vmstate_field acpi_pm_fields[] = {
	VMSTATE_U16(struct acpi_pm_state, pm1_sts),
	VMSTATE_U16(struct acpi_pm_state, pm1_en),
	VMSTATE_U16(struct acpi_pm_state, pm1_cnt),
	VMSTATE_U8_ARRAY(struct acpi_pm_state, gpe_sts),
	VMSTATE_U8_ARRAY(struct acpi_pm_state, gpe_en),
	VMSTATE_U8(struct acpi_pm_state, smi_cmd),
	VMSTATE_U8(struct acpi_pm_state, apm_sts),
	VMSTATE_BOOL(struct acpi_pm_state, sci_level),
};

const struct vmstate_desc acpi_pm_vmstate =
	VMSTATE_DESC("acpi_pm", 1, acpi_pm_fields, acpi_pm_post_load);

/* ---- Glue: ports, SCI, overflow timer, instance lookup */

struct acpi_pm_dev {
	struct acpi_pm pm;
	struct vm *vm;
	struct event_loop *loop;
	struct event_timer *timer;
	int reprogram_pending;		/* atomic */
};

static struct acpi_pm_dev *the_acpi_pm;

struct acpi_pm *acpi_pm_get(struct vm *vm)
{
	struct acpi_pm_dev *d = the_acpi_pm;

	return d && d->vm == vm ? &d->pm : NULL;
}

static void acpi_pm_dev_arm(struct acpi_pm_dev *d)
{
	uint64_t delay = acpi_pm_timer_delay_ns(&d->pm);

	if (delay == ACPI_PM_NO_TIMER)
		event_timer_disarm(d->timer);
	else
		event_timer_arm(d->timer, clock_ns() + delay);
}

static void acpi_pm_dev_reprogram(void *opaque)
{
	struct acpi_pm_dev *d = opaque;

	__atomic_store_n(&d->reprogram_pending, 0, __ATOMIC_SEQ_CST);
	acpi_pm_dev_arm(d);
}

static void acpi_pm_dev_timers_changed(void *opaque)
{
	struct acpi_pm_dev *d = opaque;

	if (__atomic_exchange_n(&d->reprogram_pending, 1, __ATOMIC_SEQ_CST))
		return;
	if (event_loop_call(d->loop, acpi_pm_dev_reprogram, d) < 0)
		__atomic_store_n(&d->reprogram_pending, 0, __ATOMIC_SEQ_CST);
}

static void acpi_pm_dev_timer_fired(void *opaque)
{
	struct acpi_pm_dev *d = opaque;

	acpi_pm_timer_tick(&d->pm);
	acpi_pm_dev_arm(d);
}

static void acpi_pm_dev_poweroff(void *opaque)
{
	struct acpi_pm_dev *d = opaque;

	vm_request_poweroff(d->vm, 0);
}

#define ACPI_PM_IO_OPS(name, blk)						\
	static uint64_t name##_read(void *opaque, uint64_t offset, unsigned size)	\
	{									\
		struct acpi_pm_dev *d = opaque;					\
		return acpi_pm_io_read(&d->pm, blk, (unsigned)offset, size);	\
	}									\
	static void name##_write(void *opaque, uint64_t offset, uint64_t value,	\
				 unsigned size)					\
	{									\
		struct acpi_pm_dev *d = opaque;					\
		acpi_pm_io_write(&d->pm, blk, (unsigned)offset, value, size);	\
	}									\
	static const struct io_ops name##_ops = {				\
		.read = name##_read, .write = name##_write };

ACPI_PM_IO_OPS(acpi_pm_blk, ACPI_PM_BLK_PM)
ACPI_PM_IO_OPS(acpi_gpe_blk, ACPI_PM_BLK_GPE)
ACPI_PM_IO_OPS(acpi_smi_blk, ACPI_PM_BLK_SMI)

static void acpi_pm_dev_reset(void *opaque)
{
	struct acpi_pm_dev *d = opaque;

	acpi_pm_reset(&d->pm);
}

static int acpi_pm_dev_init(struct vm *vm)
{
	struct acpi_pm_dev *d = calloc(1, sizeof(*d));
	struct irq_line sci = vm_irq_line(vm, ACPI_SCI_IRQ);
	struct acpi_pm_hooks hooks = {
		.poweroff = acpi_pm_dev_poweroff,
		.timers_changed = acpi_pm_dev_timers_changed,
	};
	int ret;

	if (!d)
		return -ENOMEM;
	hooks.opaque = d;
	d->vm = vm;
	d->loop = vm->loop;
	acpi_pm_init(&d->pm, &sci, NULL, &hooks);
	d->timer = event_timer_new(vm->loop, acpi_pm_dev_timer_fired, d);
	if (!d->timer) {
		log_error("acpi_pm: cannot create timer");
		return -ENOMEM;
	}
	ret = vm_register_pio(vm, ACPI_PM_BASE, ACPI_PM_LEN, &acpi_pm_blk_ops, d);
	if (ret == 0)
		ret = vm_register_pio(vm, ACPI_GPE0_BASE, ACPI_GPE0_LEN, &acpi_gpe_blk_ops, d);
	if (ret == 0)
		ret = vm_register_pio(vm, ACPI_SMI_CMD, 2, &acpi_smi_blk_ops, d);
	if (ret < 0) {
		log_error("acpi_pm: cannot register ports");
		return ret;
	}
	vm_register_reset(vm, acpi_pm_dev_reset, d);
	vmstate_register(&acpi_pm_vmstate, &d->pm.s, sizeof(d->pm.s), 0);
	the_acpi_pm = d;
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_PLATFORM, acpi_pm_dev_init)
