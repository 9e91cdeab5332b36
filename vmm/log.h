/* Logging: startup errors, informational messages and rate-limited
 * guest-error reports (enabled with -d guest_errors, sent to -D file). */
#ifndef VMM_LOG_H
#define VMM_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>

enum log_mask {
	LOG_GUEST_ERRORS = 1u << 0,	/* guest did something invalid */
	LOG_UNIMP        = 1u << 1,	/* unimplemented device feature */
	LOG_IOPORT       = 1u << 2,	/* every unclaimed port/MMIO access */
	LOG_INT          = 1u << 3,	/* interrupts raised by devices */
	LOG_STARTUP      = 1u << 4,	/* startup timing (for benchmarks) */
};

extern unsigned log_mask_enabled;

/* Parse a -d argument ("guest_errors,unimp"); returns -1 on unknown item. */
int log_parse_mask(const char *list);
/* Redirect diagnostics (-D file); returns -1 with errno on failure. */
int log_set_file(const char *path);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Startup configuration error: one clear line, exit code 1. Never call
 * this on a path a guest can reach. */
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Guest-triggered problem, logged only when the mask bit is enabled and
 * rate-limited per call site so a guest cannot flood the log. */
void log_guest_(unsigned mask, unsigned *budget, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#define log_guest(mask, ...) do {					\
		static unsigned log_budget_ = 16;			\
		if (log_mask_enabled & (mask))				\
			log_guest_((mask), &log_budget_, __VA_ARGS__);	\
	} while (0)

#endif
