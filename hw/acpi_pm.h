/* PIIX4-compatible ACPI power management I/O (PM1a event/control blocks,
 * 24-bit PM timer, GPE0, SMI command port, SCI on IRQ 9): the model's public
 * API. Power-off and timer programming go through hooks so the model can
 * be tested without a VM; the clock is injectable. */
#ifndef HW_ACPI_PM_H
#define HW_ACPI_PM_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include "vmm/irq.h"
#include "vmm/vmstate.h"

#define ACPI_PM_TMR_HZ 3579545ULL
#define ACPI_GPE_BYTES 2	/* GPE0 block: 2 status bytes then 2 enable bytes */

/* PM1 status / enable bits */
#define ACPI_PM1_TMR_STS	0x0001
#define ACPI_PM1_BM_STS		0x0010
#define ACPI_PM1_GBL_STS	0x0020
#define ACPI_PM1_PWRBTN_STS	0x0100
#define ACPI_PM1_SLPBTN_STS	0x0200
#define ACPI_PM1_RTC_STS	0x0400
#define ACPI_PM1_WAK_STS	0x8000
#define ACPI_PM1_TMR_EN		0x0001
#define ACPI_PM1_GBL_EN		0x0020
#define ACPI_PM1_PWRBTN_EN	0x0100
#define ACPI_PM1_SLPBTN_EN	0x0200
#define ACPI_PM1_RTC_EN		0x0400
/* PM1 control bits */
#define ACPI_PM1_SCI_EN		0x0001
#define ACPI_PM1_SLP_TYP_SHIFT	10
#define ACPI_PM1_SLP_TYP_MASK	0x1c00
#define ACPI_PM1_SLP_EN		0x2000

/* Returned by acpi_pm_timer_delay_ns when no timer is needed. */
#define ACPI_PM_NO_TIMER UINT64_MAX

/* The three I/O regions, each addressed from its own base. */
enum acpi_pm_block {
	ACPI_PM_BLK_PM,		/* ACPI_PM_BASE, ACPI_PM_LEN bytes */
	ACPI_PM_BLK_GPE,	/* ACPI_GPE0_BASE, ACPI_GPE0_LEN bytes */
	ACPI_PM_BLK_SMI,	/* ACPI_SMI_CMD (0xb2) and APM status (0xb3) */
};

/* Everything migrated: plain data, validated on load. */
struct acpi_pm_state {
	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;		/* SLP_EN never stored */
	uint8_t gpe_sts[ACPI_GPE_BYTES];
	uint8_t gpe_en[ACPI_GPE_BYTES];
	uint8_t smi_cmd;		/* last value written to 0xb2 */
	uint8_t apm_sts;		/* 0xb3 scratch */
	bool sci_level;
};

struct acpi_pm_hooks {
	void (*poweroff)(void *opaque);		/* S5 entered */
	void (*timers_changed)(void *opaque);	/* TMR_EN changed: re-ask delay */
	void *opaque;
};

struct acpi_pm {
	pthread_mutex_t lock;
	struct acpi_pm_state s;
	struct irq_line sci;
	uint64_t (*now_ns)(void);	/* CLOCK_MONOTONIC ns */
	struct acpi_pm_hooks hooks;
	uint64_t tmr_epoch;		/* timer value >> 23 when last checked */
};

/* now_ns NULL means CLOCK_MONOTONIC. */
void acpi_pm_init(struct acpi_pm *pm, const struct irq_line *sci, uint64_t (*now_ns)(void),
		  const struct acpi_pm_hooks *hooks);
void acpi_pm_destroy(struct acpi_pm *pm);

/* Guest access to one of the blocks; offset from the block's base, size
 * 1, 2 or 4. Unknown offsets read 0 and ignore writes. */
uint64_t acpi_pm_io_read(struct acpi_pm *pm, enum acpi_pm_block blk, unsigned offset,
			 unsigned size);
void acpi_pm_io_write(struct acpi_pm *pm, enum acpi_pm_block blk, unsigned offset,
		      uint64_t value, unsigned size);

/* Current 24-bit PM timer value. */
uint32_t acpi_pm_timer_value(struct acpi_pm *pm);
/* Press the power button: sets PWRBTN_STS and raises the SCI when the
 * guest enabled PWRBTN_EN. Returns false when it did not (no ACPI OS). */
bool acpi_pm_power_button(struct acpi_pm *pm);
/* Set a GPE0 status bit (0..15), e.g. for hotplug. */
void acpi_pm_gpe_raise(struct acpi_pm *pm, unsigned bit);

/* TMR_STS timer for the glue: delay until the timer's bit 23 toggles
 * (ACPI_PM_NO_TIMER while TMR_EN is clear) and the expiry handler. */
uint64_t acpi_pm_timer_delay_ns(struct acpi_pm *pm);
void acpi_pm_timer_tick(struct acpi_pm *pm);

void acpi_pm_reset(struct acpi_pm *pm);
/* After loading state: re-drive the SCI line and the timer. */
void acpi_pm_resync(struct acpi_pm *pm);

struct vm;
/* The VM's instance (after DEVICE_INIT), NULL if none. */
struct acpi_pm *acpi_pm_get(struct vm *vm);

extern const struct vmstate_desc acpi_pm_vmstate;	/* opaque: struct acpi_pm_state */

#endif
