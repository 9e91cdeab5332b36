/* minikvm-img: shared declarations for the qemu-img-compatible tool.
 * Each command lives in its own file (create.c, info.c, ...) and is
 * listed in the command table in main.c; util.c holds the helpers they
 * share (size parsing, -o option lists, error lines, progress, opening
 * images, allocation status through a backing chain). */
#ifndef TOOLS_IMG_IMG_H
#define TOOLS_IMG_IMG_H

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/block.h"
#include "block/format.h"

#define IMG_PROG "minikvm-img"
#define IMG_VERSION "0.1"

struct img_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;	/* one line, after "minikvm-img NAME " */
	const char *help;	/* option descriptions, may be NULL */
};

/* Command entry points (return the process exit status). */
int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_rebase(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_bench(int argc, char **argv);

const struct img_cmd *img_find_cmd(const char *name);
/* Print the command's usage and help to stdout; returns 0. */
int img_cmd_help(const char *name);

/* One error line "minikvm-img: ..." on stderr. */
void img_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void img_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* qemu-img's usage errors: the message, then "Try 'minikvm-img --help'
 * for more information"; returns 1 (the exit status). */
int img_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A getopt failure (c is ':' for a missing argument, else '?') in
 * qemu-img's words: "missing argument for option 'ARG'" or "unrecognized
 * option 'ARG'", ARG being argv[optind - 1] as qemu-img reports it (the
 * optstrings start with ':'); returns 1. */
int img_bad_option(int c, char **argv);

/* Long options qemu-img takes that minikvm-img does not implement: they
 * are parsed (so the other arguments are read as qemu-img reads them)
 * and refused with img_unsupported_option (one line; returns 1). */
enum {
	IMG_OPT_OBJECT = 0x100,
	IMG_OPT_IMAGE_OPTS,
	IMG_OPT_TARGET_IMAGE_OPTS,
	IMG_OPT_FIRST_FREE,	/* commands number their own long options from here */
};
#define IMG_LONGOPT_OBJECT { "object", required_argument, NULL, IMG_OPT_OBJECT }
#define IMG_LONGOPT_IMAGE_OPTS { "image-opts", no_argument, NULL, IMG_OPT_IMAGE_OPTS }
#define IMG_LONGOPT_HELP { "help", no_argument, NULL, 'h' }
int img_unsupported_option(int c);

/* A size as qemu_strtosz reads it: "1G", "512k", "1.5M", "4096", "0x1000"
 * (decimal, or hex without a fraction; suffixes b k M G T P E, one
 * letter; a fraction needs a unit). 0, -EINVAL (malformed) or -ERANGE
 * (above UINT64_MAX), *out untouched on error. */
int img_strtosz(const char *s, uint64_t *out);
/* qemu-img's cvtnum(): a size for option `name` ("image size") in
 * [min, max], or -1 after qemu-img's two-line (malformed) or one-line
 * (out of range) error. */
int img_cvtnum(const char *name, const char *value, uint64_t min, uint64_t max,
	       uint64_t *out);
/* Parse an unsigned decimal integer in [min, max]; -1 on error. */
int img_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Apply a "-o key=val,key=val" list (",," is a comma in a value) to
 * creation options. Strings point into a private copy that lives until
 * exit. A key the format fmt does not take (fmt NULL: any key) is an
 * invalid parameter. Returns 0 or -1 after printing the error in QEMU's
 * words, after `where` ("FILE: " or ""). */
int img_parse_create_opts_for(const char *list, const char *fmt, const char *where,
			      struct block_create_opts *o);
/* A size-type option value in QemuOpts' words on error ("Parameter 'KEY'
 * expects a non-negative number below 2^64" and its hint, or "Value 'V'
 * is out of range for parameter 'KEY'"), after `where`; 0 or -1. */
int img_parse_opt_size(const char *where, const char *key, const char *val, uint64_t *out);
/* qemu-img's is_valid_option_list: not empty, no leading comma, no odd
 * run of trailing commas. */
bool img_valid_option_list(const char *list);
/* all (freed; NULL: none yet) and list joined by a comma, as qemu-img
 * accumulates -o lists; NULL, with "Invalid option list" printed (or out
 * of memory), when list is not a valid list. */
char *img_add_option_list(char *all, const char *list);
/* create: keep the first error of a value the format rejects (printed
 * after qemu's "Formatting" line) instead of printing it; see util.c. */
void img_defer_value_errors(bool on);
const char *img_deferred_value_error(void);	/* NULL: none */
/* Does a -o list ask for help (a key "help" or "?")? */
bool img_has_help_option(const char *list);
/* Print the options create -o help supports for a format. */
void img_print_create_opts_help(const char *fmt);

/* qemu's human size: "64 MiB", "1.06 MiB", "0 B". */
void img_human_size(uint64_t val, char *buf, size_t len);

/* Open an image, printing the error line on failure. */
struct bdev *img_open(const char *path, const char *fmt, bool read_only,
		      enum block_cache_mode cache, bool no_backing);
/* Like img_open with full options. */
struct bdev *img_open_opts(const char *path, const struct block_open_opts *o);

/* Create an image of a format, printing the error on failure. */
/* The format fmt names if it can create images, else NULL after qemu-img's
 * "Unknown file format" / "Format driver ... does not support image
 * creation" line. */
const struct block_format *img_format_for_create(const char *fmt);
int img_create_image(const char *path, const char *fmt, const struct block_create_opts *o);

/* Allocation status resolved through the backing chain: the length of the
 * leading run of [off, off+len) that comes from one layer with one status.
 * *layer is the bdev the data comes from (NULL when unallocated in the
 * whole chain), *depth its depth (0 = top). Negative errno on error. */
struct chain_status {
	unsigned status;	/* BLOCK_STATUS_* of the resolving layer */
	struct bdev *layer;
	unsigned depth;
	uint64_t host_offset;
	bool offset_valid;
};
int64_t img_chain_status(struct bdev *bs, uint64_t off, uint64_t len, struct chain_status *cs);
/* Status of the top layer alone, with the host offset validity. */
int64_t img_layer_status(struct bdev *bs, uint64_t off, uint64_t len, unsigned *status,
			 uint64_t *host_offset, bool *offset_valid);

/* Format operations the core has no public wrapper for: called with the
 * image's lock held. */
uint32_t img_cluster_size(struct bdev *bs);
int img_write_compressed(struct bdev *bs, uint64_t off, const void *buf, size_t len);

/* Progress: "    (12.34/100%)\r" when enabled. */
struct img_progress {
	bool on;
	double last;
};
void img_progress_update(struct img_progress *p, uint64_t done, uint64_t total);
void img_progress_end(struct img_progress *p);

bool img_buf_is_zero(const void *buf, size_t len);
double img_now(void);

/* Parse --output=human|json; returns 0 human, 1 json, -1 error. */
int img_parse_output(const char *s);

/* The one image filename left after option parsing (nargs/args: what getopt
 * left over); checks -f's format name (fmt, may be NULL) too. NULL, with
 * qemu-img's error printed, when there isn't exactly one filename
 * ("Expecting one image file name", a usage error) or the format is
 * unknown. */
const char *img_single_image_arg(int nargs, char **args, const char *fmt);

/* The full help (minikvm-img --help) on stdout. */
void img_help(void);

#endif
