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
/* Report a getopt failure ('?' or ':') for a command; returns 1. */
int img_bad_option(const char *cmd, int argc, char **argv);
/* qemu-img's usage errors: the message, then where to find help; returns
 * 1 (the exit status). */
int img_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "1G", "512k", "1.5M", "4096": bytes (qemu suffixes k M G T P E, b
 * ignored). Returns 0, or -1 with *out untouched. */
int img_parse_size(const char *s, uint64_t *out);
/* Parse an unsigned decimal integer in [min, max]; -1 on error. */
int img_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Apply a "-o key=val,key=val" list to creation options. Strings point
 * into a private copy that lives until exit. Returns 0 or -1 after
 * printing the error. */
int img_parse_create_opts(const char *list, struct block_create_opts *o);
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
 * left over) for command `cmd`; checks -f's format name (fmt, may be NULL)
 * too. NULL, with the error printed, when there isn't exactly one filename
 * or the format is unknown. */
const char *img_single_image_arg(const char *cmd, int nargs, char **args, const char *fmt);

#endif
