/* Diagnostics: startup errors, warnings, and rate-limited guest-error
 * reports selected with -d and redirected with -D. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "vmm/log.h"

unsigned log_mask_enabled;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct { const char *name; unsigned bit; } log_items[] = {
	{ "guest_errors", LOG_GUEST_ERRORS },
	{ "unimp", LOG_UNIMP },
	{ "ioport", LOG_IOPORT },
	{ "int", LOG_INT },
	{ "startup", LOG_STARTUP },
};

int log_parse_mask(const char *list)
{
	char buf[256];
	unsigned mask = 0;

	if (strlen(list) >= sizeof(buf))
		return -1;
	strcpy(buf, list);
	for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;
		for (i = 0; i < sizeof(log_items) / sizeof(log_items[0]); i++)
			if (!strcmp(tok, log_items[i].name))
				break;
		if (i == sizeof(log_items) / sizeof(log_items[0]))
			return -1;
		mask |= log_items[i].bit;
	}
	log_mask_enabled |= mask;
	return 0;
}

int log_set_file(const char *path)
{
	FILE *f = fopen(path, "w");	/* QEMU truncates -D files too */

	if (!f)
		return -1;
	setvbuf(f, NULL, _IOLBF, 0);
	log_file = f;
	return 0;
}

static void log_vprint(const char *prefix, const char *fmt, va_list ap)
{
	FILE *out = log_file ? log_file : stderr;

	pthread_mutex_lock(&log_lock);
	fprintf(out, "minikvm: %s", prefix);
	vfprintf(out, fmt, ap);
	fputc('\n', out);
	pthread_mutex_unlock(&log_lock);
}

#define LOG_FN(fn, prefix)				\
	void fn(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		log_vprint(prefix, fmt, ap);		\
		va_end(ap);				\
	}
LOG_FN(log_info, "")
LOG_FN(log_warn, "warning: ")
LOG_FN(log_error, "error: ")

void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("minikvm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void log_guest_(unsigned mask, unsigned *budget, const char *fmt, ...)
{
	va_list ap;
	unsigned left = __atomic_load_n(budget, __ATOMIC_RELAXED);

	if (!left)
		return;
	__atomic_store_n(budget, left - 1, __ATOMIC_RELAXED);
	va_start(ap, fmt);
	log_vprint(left == 1 ? "guest (further reports from here suppressed): " : "guest: ",
		   fmt, ap);
	va_end(ap);
}
