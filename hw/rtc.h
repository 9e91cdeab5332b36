/* MC146818 real-time clock and CMOS NVRAM (ports 0x70/0x71, IRQ 8): the
 * model's public API. The model keeps no thread of its own: the time of day
 * is the host wall clock plus an offset the guest sets, the update-in-progress
 * window is derived from it, and interrupts are driven by two timers whose
 * delays the glue asks for (rtc_*_delay_ns) and whose expiry it reports
 * (rtc_*_tick). Tests inject the wall clock. */
#ifndef HW_RTC_H
#define HW_RTC_H

#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include "vmm/irq.h"
#include "vmm/vmstate.h"

#define RTC_CMOS_SIZE 128

/* Clock and control registers */
#define RTC_SECONDS		0x00
#define RTC_SECONDS_ALARM	0x01
#define RTC_MINUTES		0x02
#define RTC_MINUTES_ALARM	0x03
#define RTC_HOURS		0x04
#define RTC_HOURS_ALARM		0x05
#define RTC_DAY_OF_WEEK		0x06	/* 1 = Sunday */
#define RTC_DAY_OF_MONTH	0x07
#define RTC_MONTH		0x08
#define RTC_YEAR		0x09
#define RTC_REG_A		0x0a
#define RTC_REG_B		0x0b
#define RTC_REG_C		0x0c
#define RTC_REG_D		0x0d
#define RTC_CENTURY		0x32

#define RTC_A_UIP	0x80
#define RTC_A_DV_MASK	0x70	/* 0x20: 32.768 kHz time base running */
#define RTC_A_RS_MASK	0x0f
#define RTC_B_SET	0x80
#define RTC_B_PIE	0x40
#define RTC_B_AIE	0x20
#define RTC_B_UIE	0x10
#define RTC_B_SQWE	0x08
#define RTC_B_DM_BINARY	0x04
#define RTC_B_24H	0x02
#define RTC_B_DSE	0x01
#define RTC_C_IRQF	0x80
#define RTC_C_PF	0x40
#define RTC_C_AF	0x20
#define RTC_C_UF	0x10
#define RTC_D_VRT	0x80

/* NVRAM locations the firmware reads */
#define CMOS_SHUTDOWN_STATUS	0x0f
#define CMOS_FLOPPY_TYPE	0x10
#define CMOS_DISK_TYPE		0x12
#define CMOS_EQUIPMENT		0x14
#define CMOS_BASE_MEM_LO	0x15
#define CMOS_BASE_MEM_HI	0x16
#define CMOS_EXT_MEM_LO		0x17
#define CMOS_EXT_MEM_HI		0x18
#define CMOS_EXT_MEM2_LO	0x30
#define CMOS_EXT_MEM2_HI	0x31
#define CMOS_BOOTFLAG1		0x38	/* boot device 3 << 4 | no fd sig check */
#define CMOS_BOOTFLAG2		0x3d	/* boot device 2 << 4 | boot device 1 */
#define CMOS_MEM_16M_LO		0x34	/* 64 KiB units from 16 MiB to 4 GiB */
#define CMOS_MEM_16M_HI		0x35
#define CMOS_MEM_4G_LO		0x5b	/* 64 KiB units above 4 GiB, 3 bytes */
#define CMOS_MEM_4G_MID		0x5c
#define CMOS_MEM_4G_HI		0x5d
#define CMOS_NR_CPUS_M1		0x5f

/* Returned by the delay functions when the timer must stay disarmed. */
#define RTC_NO_TIMER UINT64_MAX

/* 244.14 us (8 ticks of 32.768 kHz): UIP is set this long before an update */
#define RTC_UIP_NS 244141

/* Everything migrated: plain data, validated on load. */
struct rtc_state {
	uint8_t cmos[RTC_CMOS_SIZE];	/* time registers hold the latched time */
	uint8_t index;			/* 0..127 */
	int64_t offset_ns;		/* guest clock = host clock (+zone) + this */
	int64_t last_update_sec;	/* last guest second whose update ran */
	int64_t last_periodic_edge;	/* last periodic tick counted into PF */
	bool irq_level;
};

struct rtc {
	pthread_mutex_t lock;
	struct rtc_state s;
	struct irq_line irq;
	uint64_t (*now_ns)(void);	/* host wall clock (CLOCK_REALTIME ns) */
	bool localtime;			/* guest sees host local time */
	/* Called (without the lock) when the timer delays may have changed. */
	void (*timers_changed)(void *opaque);
	void *timers_opaque;
};

struct rtc_nvram_config {
	uint64_t below_4g;		/* RAM bytes mapped below 4 GiB */
	uint64_t above_4g;		/* RAM bytes mapped at 4 GiB */
	unsigned ncpus;
	const char *boot_order;		/* "cad" style (a/b floppy, c disk, d cd, n net) */
};

/* now_ns NULL means CLOCK_REALTIME. Registers get their power-on values
 * (A = 0x26, B = 0x02: 24 h, BCD), the clock runs from the host time. */
void rtc_init(struct rtc *r, const struct irq_line *irq, uint64_t (*now_ns)(void),
	      bool localtime);
void rtc_destroy(struct rtc *r);
void rtc_set_timers_hook(struct rtc *r, void (*fn)(void *opaque), void *opaque);

/* Guest port access: offset 0 is the index port (0x70), 1 the data port. */
uint8_t rtc_port_read(struct rtc *r, unsigned offset);
void rtc_port_write(struct rtc *r, unsigned offset, uint8_t val);
/* The same register semantics, addressed directly. */
uint8_t rtc_cmos_read(struct rtc *r, uint8_t index);
void rtc_cmos_write(struct rtc *r, uint8_t index, uint8_t val);

/* Raw NVRAM bytes, no side effects (firmware configuration, tests). */
void rtc_nvram_set(struct rtc *r, uint8_t index, uint8_t val);
uint8_t rtc_nvram_get(struct rtc *r, uint8_t index);
/* Fill the memory size, CPU count, equipment and boot order bytes.
 * Returns 0, or -EINVAL for an unknown boot device letter. */
int rtc_nvram_fill(struct rtc *r, const struct rtc_nvram_config *c);

/* Timer interface for the glue: delay from now until the timer must fire
 * (RTC_NO_TIMER: disarm), and the work to do when it fires. */
uint64_t rtc_periodic_delay_ns(struct rtc *r);
uint64_t rtc_update_delay_ns(struct rtc *r);
void rtc_periodic_tick(struct rtc *r);
void rtc_update_tick(struct rtc *r);
/* Period of the periodic interrupt for a register A rate select, in ns
 * (0 when rate is 0). */
uint64_t rtc_rate_period_ns(unsigned rate_select);

/* System reset: clears the interrupt enables and flags, keeps the time. */
void rtc_reset(struct rtc *r);
/* After loading state: re-drive the IRQ line and the timers. */
void rtc_resync(struct rtc *r);

extern const struct vmstate_desc rtc_vmstate;	/* opaque: struct rtc_state */

#endif
