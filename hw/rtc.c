/* MC146818 RTC and CMOS NVRAM at ports 0x70/0x71, IRQ 8: time of day from
 * the host clock plus a guest-set offset, BCD/binary and 12/24 h encodings,
 * UIP window, periodic/alarm/update-ended interrupts, and the NVRAM bytes
 * the firmware reads (memory sizes, CPU count, boot order). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hw/rtc.h"
#include "vmm/device.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/platform.h"
#include "vmm/vm.h"
#include "vmm/vmstate.h"

#define NS_PER_SEC 1000000000LL
#define RTC_HZ 32768
#define SECS_PER_DAY 86400
/* Years a guest may set: keeps guest nanoseconds inside int64. */
#define RTC_YEAR_MIN 1900
#define RTC_YEAR_MAX 2199
/* Loaded bookkeeping stays far from int64 overflow (guest ns / 1e9 and
 * 32.768 kHz ticks of any int64 ns value fit well inside these). */
#define RTC_SEC_BOUND 100000000000LL
#define RTC_EDGE_BOUND 1000000000000000LL

/* ---- Calendar arithmetic (proleptic Gregorian, days since 1970-01-01) */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

struct civil_time {
	int64_t year;
	unsigned month, day, hour, min, sec, wday;	/* wday 0 = Sunday */
};

static void civil_from_secs(int64_t t, struct civil_time *c)
{
	int64_t days = floor_div(t, SECS_PER_DAY);
	int64_t sod = floor_mod(t, SECS_PER_DAY);
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;

	c->day = doy - (153 * mp + 2) / 5 + 1;
	c->month = mp < 10 ? mp + 3 : mp - 9;
	c->year = (int64_t)yoe + era * 400 + (c->month <= 2);
	c->hour = (unsigned)(sod / 3600);
	c->min = (unsigned)(sod / 60 % 60);
	c->sec = (unsigned)(sod % 60);
	c->wday = (unsigned)floor_mod(days + 4, 7);	/* 1970-01-01: Thursday */
}

/* ---- Register encodings (caller holds the lock) */

static bool binary_mode(const struct rtc *r)
{
	return r->s.cmos[RTC_REG_B] & RTC_B_DM_BINARY;
}

static uint8_t to_reg(const struct rtc *r, unsigned v)
{
	return binary_mode(r) ? (uint8_t)v : (uint8_t)(((v / 10 % 10) << 4) | (v % 10));
}

static unsigned from_reg(const struct rtc *r, uint8_t v)
{
	return binary_mode(r) ? v : (unsigned)((v >> 4) * 10 + (v & 0x0f));
}

static uint8_t hour_to_reg(const struct rtc *r, unsigned h)
{
	unsigned h12;

	if (r->s.cmos[RTC_REG_B] & RTC_B_24H)
		return to_reg(r, h);
	h12 = h % 12 ? h % 12 : 12;
	return to_reg(r, h12) | (h >= 12 ? 0x80 : 0);
}

static unsigned hour_from_reg(const struct rtc *r, uint8_t v)
{
	unsigned h;

	if (r->s.cmos[RTC_REG_B] & RTC_B_24H)
		return from_reg(r, v);
	h = from_reg(r, v & 0x7f) % 12;
	return (v & 0x80) ? h + 12 : h;
}

static bool is_time_reg(uint8_t idx)
{
	switch (idx) {
	case RTC_SECONDS: case RTC_MINUTES: case RTC_HOURS: case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH: case RTC_MONTH: case RTC_YEAR: case RTC_CENTURY:
		return true;
	default:
		return false;
	}
}

/* ---- The clock */

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Host time as the guest's zone sees it, in ns. */
static int64_t host_zone_ns(const struct rtc *r)
{
	uint64_t now = r->now_ns();
	int64_t ns = now > INT64_MAX ? INT64_MAX : (int64_t)now;

	if (r->localtime) {
		time_t t = (time_t)(ns / NS_PER_SEC);
		struct tm tm;

		if (localtime_r(&t, &tm))
			ns = sat_add(ns, (int64_t)tm.tm_gmtoff * NS_PER_SEC);
	}
	return ns;
}

static int64_t guest_ns(const struct rtc *r)
{
	return sat_add(host_zone_ns(r), r->s.offset_ns);
}

/* The divider chain runs with DV = 000, 001 or 010 (QEMU does the same). */
static bool divider_running(const struct rtc *r)
{
	return (r->s.cmos[RTC_REG_A] & RTC_A_DV_MASK) <= 0x20;
}

/* Time registers follow the clock: updates enabled and divider running. */
static bool clock_running(const struct rtc *r)
{
	return divider_running(r) && !(r->s.cmos[RTC_REG_B] & RTC_B_SET);
}

static void latch_time(struct rtc *r, int64_t g)
{
	struct civil_time c;
	uint8_t *cmos = r->s.cmos;

	civil_from_secs(floor_div(g, NS_PER_SEC), &c);
	cmos[RTC_SECONDS] = to_reg(r, c.sec);
	cmos[RTC_MINUTES] = to_reg(r, c.min);
	cmos[RTC_HOURS] = hour_to_reg(r, c.hour);
	cmos[RTC_DAY_OF_WEEK] = to_reg(r, c.wday + 1);
	cmos[RTC_DAY_OF_MONTH] = to_reg(r, c.day);
	cmos[RTC_MONTH] = to_reg(r, c.month);
	cmos[RTC_YEAR] = to_reg(r, (unsigned)floor_mod(c.year, 100));
	cmos[RTC_CENTURY] = to_reg(r, (unsigned)floor_div(c.year, 100) % 100);
}

static unsigned clamp_u(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Seconds since the epoch described by the time registers (out-of-range
 * fields are clamped: a guest can write anything there). */
static int64_t regs_to_secs(const struct rtc *r)
{
	const uint8_t *cmos = r->s.cmos;
	unsigned sec = from_reg(r, cmos[RTC_SECONDS]);
	unsigned min = from_reg(r, cmos[RTC_MINUTES]);
	unsigned hour = hour_from_reg(r, cmos[RTC_HOURS]);
	unsigned day = from_reg(r, cmos[RTC_DAY_OF_MONTH]);
	unsigned mon = from_reg(r, cmos[RTC_MONTH]);
	int64_t year = (int64_t)from_reg(r, cmos[RTC_CENTURY]) * 100 +
		       from_reg(r, cmos[RTC_YEAR]) % 100;

	if (sec > 59 || min > 59 || hour > 23 || day < 1 || day > 31 || mon < 1 || mon > 12 ||
	    year < RTC_YEAR_MIN || year > RTC_YEAR_MAX)
		log_guest(LOG_GUEST_ERRORS, "rtc: invalid time set %04lld-%02u-%02u %02u:%02u:%02u",
			  (long long)year, mon, day, hour, min, sec);
	year = year < RTC_YEAR_MIN ? RTC_YEAR_MIN : year > RTC_YEAR_MAX ? RTC_YEAR_MAX : year;
	return days_from_civil(year, clamp_u(mon, 1, 12), clamp_u(day, 1, 31)) * SECS_PER_DAY +
	       clamp_u(hour, 0, 23) * 3600 + clamp_u(min, 0, 59) * 60 + clamp_u(sec, 0, 59);
}

static uint64_t period_ticks(const struct rtc *r)
{
	unsigned rs = r->s.cmos[RTC_REG_A] & RTC_A_RS_MASK;

	if (rs == 0)
		return 0;
	if (rs <= 2)
		rs += 7;	/* with a 32.768 kHz base, 1 and 2 mean 256/128 Hz */
	return 1ULL << (rs - 1);
}

uint64_t rtc_rate_period_ns(unsigned rate_select)
{
	unsigned rs = rate_select & RTC_A_RS_MASK;

	if (rs == 0)
		return 0;
	if (rs <= 2)
		rs += 7;
	return ((1ULL << (rs - 1)) * NS_PER_SEC + RTC_HZ - 1) / RTC_HZ;
}

/* Index of the last 32.768 kHz periodic edge at or before guest time g. */
static int64_t periodic_edge(int64_t g, uint64_t period)
{
	int64_t ticks = floor_div(g, NS_PER_SEC) * RTC_HZ +
			floor_mod(g, NS_PER_SEC) * RTC_HZ / NS_PER_SEC;

	return floor_div(ticks, (int64_t)period);
}

/* Set the guest clock from the time registers, with the given position
 * inside the first second. */
static void set_clock_from_regs(struct rtc *r, int64_t subsec_ns)
{
	int64_t g = regs_to_secs(r) * NS_PER_SEC + subsec_ns;
	uint64_t period = period_ticks(r);

	r->s.offset_ns = g - host_zone_ns(r);
	r->s.last_update_sec = floor_div(g, NS_PER_SEC);
	if (period)
		r->s.last_periodic_edge = periodic_edge(g, period);
}

/* ---- Flags and the interrupt line */

static void update_irq(struct rtc *r)
{
	uint8_t *c = &r->s.cmos[RTC_REG_C];
	bool level;

	/* Flag bits line up with their enable bits in register B. */
	if (*c & r->s.cmos[RTC_REG_B] & (RTC_C_PF | RTC_C_AF | RTC_C_UF))
		*c |= RTC_C_IRQF;
	level = *c & RTC_C_IRQF;
	if (level != r->s.irq_level) {
		r->s.irq_level = level;
		irq_line_set(&r->irq, level);
	}
}

static bool alarm_field_matches(uint8_t alarm, unsigned alarm_val, unsigned now)
{
	return (alarm & 0xc0) == 0xc0 || alarm_val == now;
}

static bool alarm_matches(const struct rtc *r, int64_t sec)
{
	const uint8_t *cmos = r->s.cmos;
	int64_t sod = floor_mod(sec, SECS_PER_DAY);

	return alarm_field_matches(cmos[RTC_SECONDS_ALARM], from_reg(r, cmos[RTC_SECONDS_ALARM]),
				   (unsigned)(sod % 60)) &&
	       alarm_field_matches(cmos[RTC_MINUTES_ALARM], from_reg(r, cmos[RTC_MINUTES_ALARM]),
				   (unsigned)(sod / 60 % 60)) &&
	       alarm_field_matches(cmos[RTC_HOURS_ALARM], hour_from_reg(r, cmos[RTC_HOURS_ALARM]),
				   (unsigned)(sod / 3600));
}

/* Account the once-a-second updates that happened up to guest time g:
 * UF for any, AF if the alarm matched one of them. */
static void process_updates(struct rtc *r, int64_t g)
{
	int64_t sec = floor_div(g, NS_PER_SEC);
	int64_t first, s;

	if (!clock_running(r))
		return;
	if (sec <= r->s.last_update_sec) {
		r->s.last_update_sec = sec;	/* host clock stepped back */
		return;
	}
	r->s.cmos[RTC_REG_C] |= RTC_C_UF;
	first = sec - r->s.last_update_sec >= SECS_PER_DAY ? sec - SECS_PER_DAY + 1
							  : r->s.last_update_sec + 1;
	for (s = first; s <= sec; s++) {
		if (alarm_matches(r, s)) {
			r->s.cmos[RTC_REG_C] |= RTC_C_AF;
			break;
		}
	}
	r->s.last_update_sec = sec;
}

static void process_periodic(struct rtc *r, int64_t g)
{
	uint64_t period = period_ticks(r);
	int64_t edge;

	if (!period || !divider_running(r))
		return;
	edge = periodic_edge(g, period);
	if (edge > r->s.last_periodic_edge)
		r->s.cmos[RTC_REG_C] |= RTC_C_PF;
	r->s.last_periodic_edge = edge;
}

static void process_events(struct rtc *r, int64_t g)
{
	process_updates(r, g);
	process_periodic(r, g);
	update_irq(r);
}

/* ---- Register access (lock held) */

static uint8_t cmos_read_locked(struct rtc *r, uint8_t idx)
{
	int64_t g;
	uint8_t v;

	switch (idx) {
	case RTC_REG_A:
		v = r->s.cmos[RTC_REG_A] & ~RTC_A_UIP;
		g = guest_ns(r);
		if (clock_running(r) && floor_mod(g, NS_PER_SEC) >= NS_PER_SEC - RTC_UIP_NS)
			v |= RTC_A_UIP;
		return v;
	case RTC_REG_C:
		process_events(r, guest_ns(r));
		v = r->s.cmos[RTC_REG_C];
		r->s.cmos[RTC_REG_C] = 0;
		update_irq(r);
		return v;
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		if (is_time_reg(idx) && clock_running(r))
			latch_time(r, guest_ns(r));
		return r->s.cmos[idx];
	}
}

static void write_time_reg(struct rtc *r, uint8_t idx, uint8_t val)
{
	int64_t g;

	if (!clock_running(r)) {
		r->s.cmos[idx] = val;	/* applied when SET is cleared */
		return;
	}
	g = guest_ns(r);
	process_events(r, g);
	latch_time(r, g);
	r->s.cmos[idx] = val;
	set_clock_from_regs(r, floor_mod(g, NS_PER_SEC));
}

/* Register A or B changes: keep flags exact across the change, latch the
 * time when the clock stops and restart it from the registers. */
static void write_control_reg(struct rtc *r, uint8_t idx, uint8_t val)
{
	int64_t g = guest_ns(r);
	bool was_running = clock_running(r);
	bool divider_was_reset = !divider_running(r);
	uint64_t period;

	process_events(r, g);
	if (was_running)
		latch_time(r, g);
	if (idx == RTC_REG_A) {
		r->s.cmos[RTC_REG_A] = val & ~RTC_A_UIP;
	} else {
		if ((val ^ r->s.cmos[RTC_REG_B]) & RTC_B_DSE)
			log_guest(LOG_UNIMP, "rtc: daylight saving enable ignored");
		if (val & RTC_B_SET)
			val &= ~RTC_B_UIE;
		r->s.cmos[RTC_REG_B] = val;
	}
	period = period_ticks(r);
	if (period)
		r->s.last_periodic_edge = periodic_edge(g, period);
	if (!was_running && clock_running(r)) {
		/* Leaving divider reset: the first update comes 500 ms later. */
		set_clock_from_regs(r, divider_was_reset ? NS_PER_SEC / 2 : 0);
	}
	update_irq(r);
}

static bool cmos_write_locked(struct rtc *r, uint8_t idx, uint8_t val)
{
	if (is_time_reg(idx)) {
		write_time_reg(r, idx, val);
		return true;
	}
	switch (idx) {
	case RTC_REG_A:
	case RTC_REG_B:
		write_control_reg(r, idx, val);
		return true;
	case RTC_REG_C:
	case RTC_REG_D:
		log_guest(LOG_GUEST_ERRORS, "rtc: write 0x%02x to read-only register 0x%x", val, idx);
		return false;
	case RTC_SECONDS_ALARM:
	case RTC_MINUTES_ALARM:
	case RTC_HOURS_ALARM:
		process_events(r, guest_ns(r));	/* old alarm for past seconds */
		r->s.cmos[idx] = val;
		return false;
	default:
		r->s.cmos[idx] = val;
		return false;
	}
}

static void notify_timers(struct rtc *r)
{
	if (r->timers_changed)
		r->timers_changed(r->timers_opaque);
}

uint8_t rtc_cmos_read(struct rtc *r, uint8_t index)
{
	uint8_t v;

	pthread_mutex_lock(&r->lock);
	v = cmos_read_locked(r, index & 0x7f);
	pthread_mutex_unlock(&r->lock);
	return v;
}

void rtc_cmos_write(struct rtc *r, uint8_t index, uint8_t val)
{
	bool changed;

	pthread_mutex_lock(&r->lock);
	changed = cmos_write_locked(r, index & 0x7f, val);
	pthread_mutex_unlock(&r->lock);
	if (changed)
		notify_timers(r);
}

uint8_t rtc_port_read(struct rtc *r, unsigned offset)
{
	uint8_t idx;

	if (offset == 0)
		return 0xff;	/* the index port is write-only */
	pthread_mutex_lock(&r->lock);
	idx = r->s.index;
	pthread_mutex_unlock(&r->lock);
	return rtc_cmos_read(r, idx);
}

void rtc_port_write(struct rtc *r, unsigned offset, uint8_t val)
{
	uint8_t idx;

	pthread_mutex_lock(&r->lock);
	if (offset == 0) {
		r->s.index = val & 0x7f;	/* bit 7 is the NMI mask */
		pthread_mutex_unlock(&r->lock);
		return;
	}
	idx = r->s.index;
	pthread_mutex_unlock(&r->lock);
	rtc_cmos_write(r, idx, val);
}

void rtc_nvram_set(struct rtc *r, uint8_t index, uint8_t val)
{
	pthread_mutex_lock(&r->lock);
	r->s.cmos[index & 0x7f] = val;
	pthread_mutex_unlock(&r->lock);
}

uint8_t rtc_nvram_get(struct rtc *r, uint8_t index)
{
	uint8_t v;

	pthread_mutex_lock(&r->lock);
	v = r->s.cmos[index & 0x7f];
	pthread_mutex_unlock(&r->lock);
	return v;
}

/* ---- Timers */

uint64_t rtc_periodic_delay_ns(struct rtc *r)
{
	uint64_t period, delay = RTC_NO_TIMER;
	int64_t g, next_tick, next_ns;

	pthread_mutex_lock(&r->lock);
	period = period_ticks(r);
	if (period && divider_running(r) && (r->s.cmos[RTC_REG_B] & RTC_B_PIE)) {
		g = guest_ns(r);
		next_tick = (periodic_edge(g, period) + 1) * (int64_t)period;
		next_ns = floor_div(next_tick, RTC_HZ) * NS_PER_SEC +
			  (floor_mod(next_tick, RTC_HZ) * NS_PER_SEC + RTC_HZ - 1) / RTC_HZ;
		delay = next_ns > g ? (uint64_t)(next_ns - g) : 1;
	}
	pthread_mutex_unlock(&r->lock);
	return delay;
}

uint64_t rtc_update_delay_ns(struct rtc *r)
{
	uint64_t delay = RTC_NO_TIMER;

	pthread_mutex_lock(&r->lock);
	if (clock_running(r) && (r->s.cmos[RTC_REG_B] & (RTC_B_UIE | RTC_B_AIE)))
		delay = (uint64_t)(NS_PER_SEC - floor_mod(guest_ns(r), NS_PER_SEC));
	pthread_mutex_unlock(&r->lock);
	return delay;
}

void rtc_periodic_tick(struct rtc *r)
{
	pthread_mutex_lock(&r->lock);
	process_events(r, guest_ns(r));
	pthread_mutex_unlock(&r->lock);
}

void rtc_update_tick(struct rtc *r)
{
	rtc_periodic_tick(r);	/* both just catch up with the clock */
}

/* ---- Setup, reset, NVRAM contents */

static void rtc_power_on_regs(struct rtc *r)
{
	r->s.cmos[RTC_REG_A] = 0x26;		/* 32.768 kHz, 1024 Hz rate */
	r->s.cmos[RTC_REG_B] = RTC_B_24H;	/* BCD, 24 h, no interrupts */
	r->s.cmos[RTC_REG_C] = 0;
	r->s.cmos[RTC_REG_D] = RTC_D_VRT;
}

void rtc_init(struct rtc *r, const struct irq_line *irq, uint64_t (*now_ns)(void),
	      bool localtime)
{
	int64_t g;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	if (irq)
		r->irq = *irq;
	r->now_ns = now_ns ? now_ns : realtime_ns;
	r->localtime = localtime;
	rtc_power_on_regs(r);
	g = guest_ns(r);
	latch_time(r, g);
	r->s.last_update_sec = floor_div(g, NS_PER_SEC);
	if (period_ticks(r))
		r->s.last_periodic_edge = periodic_edge(g, period_ticks(r));
}

void rtc_destroy(struct rtc *r)
{
	pthread_mutex_destroy(&r->lock);
}

void rtc_set_timers_hook(struct rtc *r, void (*fn)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&r->lock);
	r->timers_changed = fn;
	r->timers_opaque = opaque;
	pthread_mutex_unlock(&r->lock);
}

void rtc_reset(struct rtc *r)
{
	pthread_mutex_lock(&r->lock);
	process_events(r, guest_ns(r));
	r->s.cmos[RTC_REG_B] &= ~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE | RTC_B_SQWE);
	r->s.cmos[RTC_REG_C] = 0;
	update_irq(r);
	pthread_mutex_unlock(&r->lock);
	notify_timers(r);
}

void rtc_resync(struct rtc *r)
{
	pthread_mutex_lock(&r->lock);
	irq_line_set(&r->irq, r->s.irq_level);
	pthread_mutex_unlock(&r->lock);
	notify_timers(r);
}

static int boot_device_code(char c)
{
	switch (c) {
	case 'a': case 'b': return 1;	/* floppy */
	case 'c': return 2;		/* hard disk */
	case 'd': return 3;		/* CD-ROM */
	case 'n': return 4;		/* network */
	default: return -1;
	}
}

static unsigned min_u64(uint64_t v, uint64_t max)
{
	return (unsigned)(v < max ? v : max);
}

int rtc_nvram_fill(struct rtc *r, const struct rtc_nvram_config *c)
{
	const char *order = c->boot_order ? c->boot_order : "cad";
	int dev[3] = { 0, 0, 0 };
	unsigned ext, mem16, n = 0;
	uint64_t high;
	uint8_t *cmos = r->s.cmos;

	/* CMOS has three nibbles for it: QEMU refuses longer orders too. */
	if (strlen(order) > 3) {
		log_error("rtc: too many boot devices for PC in \"%s\" (3 at most)", order);
		return -EINVAL;
	}
	for (const char *p = order; *p; p++) {
		int code = boot_device_code(*p);

		if (code < 0) {
			log_error("rtc: unknown boot device '%c' in boot order \"%s\"", *p, order);
			return -EINVAL;
		}
		dev[n++] = code;
	}
	ext = c->below_4g > MiB ? min_u64((c->below_4g - MiB) / 1024, 0xffff) : 0;
	mem16 = c->below_4g > 16 * MiB ?
		min_u64((c->below_4g - 16 * MiB) / 65536, 0xffff) : 0;
	high = c->above_4g / 65536;

	pthread_mutex_lock(&r->lock);
	cmos[CMOS_BASE_MEM_LO] = 640 & 0xff;
	cmos[CMOS_BASE_MEM_HI] = 640 >> 8;
	cmos[CMOS_EXT_MEM_LO] = cmos[CMOS_EXT_MEM2_LO] = ext & 0xff;
	cmos[CMOS_EXT_MEM_HI] = cmos[CMOS_EXT_MEM2_HI] = ext >> 8;
	cmos[CMOS_MEM_16M_LO] = mem16 & 0xff;
	cmos[CMOS_MEM_16M_HI] = mem16 >> 8;
	cmos[CMOS_MEM_4G_LO] = high & 0xff;
	cmos[CMOS_MEM_4G_MID] = (high >> 8) & 0xff;
	cmos[CMOS_MEM_4G_HI] = (high >> 16) & 0xff;
	cmos[CMOS_NR_CPUS_M1] = (uint8_t)(c->ncpus ? c->ncpus - 1 : 0);
	cmos[CMOS_EQUIPMENT] = 0x06;	/* FPU present, PS/2 mouse, no floppy */
	cmos[CMOS_FLOPPY_TYPE] = 0;
	cmos[CMOS_DISK_TYPE] = 0;
	cmos[CMOS_SHUTDOWN_STATUS] = 0;
	cmos[CMOS_BOOTFLAG2] = (uint8_t)(dev[1] << 4 | dev[0]);
	cmos[CMOS_BOOTFLAG1] = (uint8_t)(dev[2] << 4);	/* bit 0 clear: check fd sig */
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* ---- Migration state */

static int rtc_post_load(void *opaque)
{
	const struct rtc_state *s = opaque;

	if (s->last_update_sec > RTC_SEC_BOUND || s->last_update_sec < -RTC_SEC_BOUND ||
	    s->last_periodic_edge > RTC_EDGE_BOUND || s->last_periodic_edge < -RTC_EDGE_BOUND)
		return -EINVAL;
	if (s->irq_level != !!(s->cmos[RTC_REG_C] & RTC_C_IRQF))
		return -EINVAL;
	return 0;
}

static const struct vmstate_field rtc_fields[] = {
	VMSTATE_U8_ARRAY(struct rtc_state, cmos),
	VMSTATE_U8_MAX(struct rtc_state, index, RTC_CMOS_SIZE - 1),
	VMSTATE_I64(struct rtc_state, offset_ns),
	VMSTATE_I64(struct rtc_state, last_update_sec),
	VMSTATE_I64(struct rtc_state, last_periodic_edge),
	VMSTATE_BOOL(struct rtc_state, irq_level),
};

const struct vmstate_desc rtc_vmstate = VMSTATE_DESC("rtc", 1, rtc_fields, rtc_post_load);

/* ---- Glue: ports, IRQ, event-loop timers */

struct rtc_dev {
	struct rtc rtc;
	struct event_loop *loop;
	struct event_timer *periodic_timer;
	struct event_timer *update_timer;
	int reprogram_pending;		/* atomic: a reprogram call is queued */
	struct rtc_nvram_config nv;	/* -boot once=: refilled with order= at reset */
	bool boot_once_pending;
};

static void arm_or_disarm(struct event_timer *t, uint64_t delay)
{
	if (delay == RTC_NO_TIMER)
		event_timer_disarm(t);
	else
		event_timer_arm(t, clock_ns() + delay);
}

/* Runs on the loop thread, the only thread touching the timers. */
static void rtc_dev_reprogram(void *opaque)
{
	struct rtc_dev *d = opaque;

	__atomic_store_n(&d->reprogram_pending, 0, __ATOMIC_SEQ_CST);
	arm_or_disarm(d->periodic_timer, rtc_periodic_delay_ns(&d->rtc));
	arm_or_disarm(d->update_timer, rtc_update_delay_ns(&d->rtc));
}

static void rtc_dev_timers_changed(void *opaque)
{
	struct rtc_dev *d = opaque;

	if (__atomic_exchange_n(&d->reprogram_pending, 1, __ATOMIC_SEQ_CST))
		return;
	if (event_loop_call(d->loop, rtc_dev_reprogram, d) < 0)
		__atomic_store_n(&d->reprogram_pending, 0, __ATOMIC_SEQ_CST);
}

static void rtc_dev_periodic_fired(void *opaque)
{
	struct rtc_dev *d = opaque;

	rtc_periodic_tick(&d->rtc);
	arm_or_disarm(d->periodic_timer, rtc_periodic_delay_ns(&d->rtc));
}

static void rtc_dev_update_fired(void *opaque)
{
	struct rtc_dev *d = opaque;

	rtc_update_tick(&d->rtc);
	arm_or_disarm(d->update_timer, rtc_update_delay_ns(&d->rtc));
}

static uint64_t rtc_io_read(void *opaque, uint64_t offset, unsigned size)
{
	struct rtc_dev *d = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)(offset + i < 2 ? rtc_port_read(&d->rtc, offset + i) : 0xff) << (8 * i);
	return v;
}

static void rtc_io_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
	struct rtc_dev *d = opaque;

	for (unsigned i = 0; i < size && offset + i < 2; i++)
		rtc_port_write(&d->rtc, offset + i, (uint8_t)(value >> (8 * i)));
}

static const struct io_ops rtc_io_ops = {
	.read = rtc_io_read,
	.write = rtc_io_write,
};

static void rtc_dev_reset(void *opaque)
{
	struct rtc_dev *d = opaque;

	rtc_reset(&d->rtc);
	if (d->boot_once_pending) {
		/* -boot once=: the first reset returns to order= (QEMU). */
		d->boot_once_pending = false;
		rtc_nvram_fill(&d->rtc, &d->nv);
	}
}

static int rtc_dev_init(struct vm *vm)
{
	struct rtc_dev *d = calloc(1, sizeof(*d));
	struct irq_line irq = vm_irq_line(vm, RTC_IRQ);
	struct rtc_nvram_config once;
	int ret;

	if (!d)
		return -ENOMEM;
	rtc_init(&d->rtc, &irq, NULL, vm->cfg->rtc_localtime);
	d->nv = (struct rtc_nvram_config){
		.below_4g = vm->mem.below_4g,
		.above_4g = vm->mem.above_4g,
		.ncpus = vm->ncpus ? vm->ncpus : vm->cfg->ncpus,
		.boot_order = vm->cfg->boot_order,
	};
	ret = rtc_nvram_fill(&d->rtc, &d->nv);		/* checks order= */
	if (ret == 0 && vm->cfg->boot_once) {
		once = d->nv;
		once.boot_order = vm->cfg->boot_once;
		d->boot_once_pending = true;
		ret = rtc_nvram_fill(&d->rtc, &once);
	}
	if (ret < 0) {
		rtc_destroy(&d->rtc);
		free(d);
		return ret;
	}
	d->loop = vm->loop;
	d->periodic_timer = event_timer_new(vm->loop, rtc_dev_periodic_fired, d);
	d->update_timer = event_timer_new(vm->loop, rtc_dev_update_fired, d);
	if (!d->periodic_timer || !d->update_timer) {
		log_error("rtc: cannot create timers");
		return -ENOMEM;
	}
	rtc_set_timers_hook(&d->rtc, rtc_dev_timers_changed, d);
	ret = vm_register_pio(vm, RTC_PORT, 2, &rtc_io_ops, d);
	if (ret < 0) {
		log_error("rtc: cannot register ports 0x%x-0x%x", RTC_PORT, RTC_PORT + 1);
		return ret;
	}
	vm_register_reset(vm, rtc_dev_reset, d);
	vmstate_register(&rtc_vmstate, &d->rtc.s, sizeof(d->rtc.s), 0);
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_PLATFORM, rtc_dev_init)
