/* minikvm-img helpers shared by the commands: error lines, size and
 * option parsing, human sizes, opening images (open errors in qemu-img's
 * words) and creating them, allocation status through a backing chain,
 * progress output. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "tools/img/img.h"

void img_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(IMG_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void img_warn(const char *fmt, ...)
{
	va_list ap;

	fputs(IMG_PROG ": warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int img_usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	img_err("%s", msg);
	fprintf(stderr, "Try '%s --help' for more information\n", IMG_PROG);
	return 1;
}

/* As qemu-img: the argument getopt stopped at is argv[optind - 1] (for an
 * unknown letter inside a group such as -qx, that is the argument before
 * the group, as in qemu-img). */
int img_bad_option(int c, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";

	if (c == ':')
		return img_usage_error("missing argument for option '%s'", arg);
	return img_usage_error("unrecognized option '%s'", arg);
}

int img_unsupported_option(int c)
{
	img_err("%s is not supported", c == IMG_OPT_OBJECT ? "--object" :
		c == IMG_OPT_TARGET_IMAGE_OPTS ? "--target-image-opts" : "--image-opts");
	return 1;
}

static int suffix_shift(char c)
{
	switch (c) {
	case 'k': case 'K': return 10;
	case 'm': case 'M': return 20;
	case 'g': case 'G': return 30;
	case 't': case 'T': return 40;
	case 'p': case 'P': return 50;
	case 'e': case 'E': return 60;
	case 'b': case 'B': return 0;
	default: return -1;
	}
}

/* The integer at *p (after blanks and an optional '+'), decimal or, for
 * "0x...", hexadecimal; *p moves past it. */
static int parse_integer(const char **p, uint64_t *val, bool *hex)
{
	const char *s = *p;
	char *end;

	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	if (*s == '+')
		s++;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	*hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	errno = 0;
	*val = strtoull(s, &end, *hex ? 16 : 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s || (*hex && end == s + 1))
		return -EINVAL;
	*p = end;
	return 0;
}

int img_strtosz(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t ip, frac_num = 0, frac_den = 1, frac_bytes = 0;
	bool hex;
	int shift = 0, ret;

	if (!s || strchr(s, '-'))
		return -EINVAL;
	ret = parse_integer(&p, &ip, &hex);
	if (ret)
		return ret;
	if (*p == '.') {
		if (hex)
			return -EINVAL;
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (frac_den < 1000000000000000000ULL) {
				frac_num = frac_num * 10 + (uint64_t)(*p - '0');
				frac_den *= 10;
			}
		}
	}
	if (*p && suffix_shift(*p) >= 0) {
		shift = suffix_shift(*p++);
		if (hex && shift)
			img_warn("Using a multiplier suffix on hex numbers is deprecated: %s", s);
	}
	if (*p)
		return -EINVAL;
	if (!shift && frac_num)		/* a fraction needs a unit */
		return -EINVAL;
	if (frac_num)
		frac_bytes = (uint64_t)((long double)frac_num / frac_den *
					(long double)(1ULL << shift));
	if (shift && ip > (UINT64_MAX - frac_bytes) >> shift)
		return -ERANGE;
	*out = (ip << shift) + frac_bytes;
	return 0;
}

int img_cvtnum(const char *name, const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	int ret = img_strtosz(value, &v);

	if (ret == -EINVAL) {
		img_err("Invalid %s specified. You may use k, M, G, T, P or E suffixes for", name);
		img_err("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
		return -1;
	}
	if (ret || v < min || v > max) {
		img_err("Invalid %s specified. Must be between %" PRIu64 " and %" PRIu64 ".", name,
			min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int img_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int img_parse_output(const char *s)
{
	if (!strcmp(s, "human"))
		return 0;
	if (!strcmp(s, "json"))
		return 1;
	img_err("--output must be used with human or json as argument.");
	return -1;
}

const char *img_single_image_arg(int nargs, char **args, const char *fmt)
{
	if (nargs != 1) {
		img_usage_error("Expecting one image file name");
		return NULL;
	}
	if (fmt && !block_format_find(fmt)) {
		img_err("Could not open '%s': Unknown driver '%s'", args[0], fmt);	/* qemu's */
		return NULL;
	}
	return args[0];
}

/* QemuOpts' words for a value of the wrong type. */
static int bad_bool(const char *where, const char *key)
{
	img_err("%sParameter '%s' expects 'on' or 'off'", where, key);
	return -1;
}

static int bad_size(const char *where, const char *key, const char *val, int why)
{
	if (why == -ERANGE) {
		img_err("%sValue '%s' is out of range for parameter '%s'", where, val, key);
		return -1;
	}
	img_err("%sParameter '%s' expects a non-negative number below 2^64", where, key);
	fputs("Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
	      "and exabytes, respectively.\n", stderr);
	return -1;
}

/* create prints qemu's "Formatting" line before the errors of values a
 * format rejects (enumerations, ranges): while deferring, parsing goes on
 * and the error qemu would report is kept for create to print after that
 * line. qemu checks the enumerations in the order of its create options,
 * then the sizes, whatever the order on the command line: the kept error
 * is the one with the lowest rank. */
enum value_rank {
	RANK_VERSION,
	RANK_PREALLOCATION,
	RANK_COMPRESSION_TYPE,
	RANK_CLUSTER_SIZE,
	RANK_REFCOUNT_BITS,
};

static bool defer_values;
static char deferred[512];
static enum value_rank deferred_rank;

void img_defer_value_errors(bool on)
{
	defer_values = on;
	deferred[0] = 0;
}

const char *img_deferred_value_error(void)
{
	return deferred[0] ? deferred : NULL;
}

static int value_error(enum value_rank rank, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int value_error(enum value_rank rank, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!defer_values) {
		img_err("%s", msg);
		return -1;
	}
	if (!deferred[0] || rank < deferred_rank) {
		snprintf(deferred, sizeof(deferred), "%s", msg);
		deferred_rank = rank;
	}
	return 0;
}

static int bad_value(enum value_rank rank, const char *where, const char *key,
		     const char *val)
{
	return value_error(rank, "%sParameter '%s' does not accept value '%s'", where, key, val);
}

static int parse_bool(const char *where, const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no")) {
		*out = false;
		return 0;
	}
	return bad_bool(where, key);
}

int img_parse_opt_size(const char *where, const char *key, const char *val, uint64_t *out)
{
	int ret = img_strtosz(val, out);

	return ret ? bad_size(where, key, val, ret) : 0;
}

static bool create_opt_known(const char *key, const char *fmt);

static int apply_prealloc(const char *where, const char *val, struct block_create_opts *o)
{
	if (!strcmp(val, "off"))
		o->prealloc = PREALLOC_OFF;
	else if (!strcmp(val, "metadata"))
		o->prealloc = PREALLOC_METADATA;
	else if (!strcmp(val, "falloc"))
		o->prealloc = PREALLOC_FALLOC;
	else if (!strcmp(val, "full"))
		o->prealloc = PREALLOC_FULL;
	else
		return bad_value(RANK_PREALLOCATION, where, "preallocation", val);
	return 0;
}

static int apply_create_opt(const char *where, char *key, char *val,
			    struct block_create_opts *o)
{
	uint64_t n;

	if (!strcmp(key, "size")) {
		if (img_parse_opt_size(where, key, val, &n))
			return -1;
		if (n > INT64_MAX)
			return bad_size(where, key, val, -ERANGE);
		o->size = n;
	} else if (!strcmp(key, "backing_file")) {
		o->backing_file = val;
	} else if (!strcmp(key, "backing_fmt")) {
		o->backing_format = val;
	} else if (!strcmp(key, "cluster_size")) {
		if (img_parse_opt_size(where, key, val, &n))
			return -1;
		if (n < 512 || n > (2u << 20) || (n & (n - 1)))
			return value_error(RANK_CLUSTER_SIZE, "%sCluster size must be a power of two between 512 and "
					   "2048k", where);
		o->cluster_size = (uint32_t)n;
	} else if (!strcmp(key, "preallocation")) {
		return apply_prealloc(where, val, o);
	} else if (!strcmp(key, "compat")) {
		if (!strcmp(val, "v2"))
			val = "0.10";
		else if (!strcmp(val, "v3"))
			val = "1.1";
		if (strcmp(val, "0.10") && strcmp(val, "1.1"))
			return bad_value(RANK_VERSION, where, "version", val);	/* qemu's name */
		o->compat = val;
	} else if (!strcmp(key, "subformat")) {
		o->subformat = val;
	} else if (!strcmp(key, "lazy_refcounts")) {
		return parse_bool(where, key, val, &o->lazy_refcounts);
	} else if (!strcmp(key, "extended_l2")) {
		return parse_bool(where, key, val, &o->extended_l2);
	} else if (!strcmp(key, "refcount_bits")) {
		char *end;

		errno = 0;
		n = strtoull(val, &end, 0);
		if (!*val || *end || errno || strchr(val, '-')) {
			img_err("%sParameter '%s' expects a number", where, key);
			return -1;
		}
		if (n < 1 || n > 64 || (n & (n - 1)))
			return value_error(RANK_REFCOUNT_BITS, "%sRefcount width must be a power of two and may not "
					   "exceed 64 bits", where);
		o->refcount_bits = (unsigned)n;
	} else if (!strcmp(key, "compression_type")) {
		if (strcmp(val, "zlib") && strcmp(val, "zstd"))
			return bad_value(RANK_COMPRESSION_TYPE, where, "compression-type", val);
		o->compression_type = val;
	} else {
		img_err("%sInvalid parameter '%s'", where, key);
		return -1;
	}
	return 0;
}

bool img_valid_option_list(const char *list)
{
	size_t len = strlen(list), i = len;

	if (!list[0] || list[0] == ',')
		return false;
	while (i > 0 && list[i - 1] == ',')
		i--;
	return (len - i) % 2 == 0;	/* ",," is an escaped comma */
}

/* The -o lists joined by commas, as qemu-img accumulates them; NULL
 * (with the error printed) when one is not a valid list. */
char *img_add_option_list(char *all, const char *list)
{
	char *joined = NULL;

	if (!img_valid_option_list(list)) {
		img_err("Invalid option list: %s", list);
		free(all);
		return NULL;
	}
	if (!all)
		return strdup(list);
	if (asprintf(&joined, "%s,%s", all, list) < 0)
		joined = NULL;
	free(all);
	return joined;
}

/* The next "key[=value]" of a -o list at *p (",," standing for a comma
 * in a value): key and value are cut in place; *p moves past it. */
static void next_create_opt(char **p, char **key, char **val)
{
	char *r = *p, *w;

	*key = r;
	*val = NULL;
	while (*r && *r != '=' && *r != ',')
		r++;
	if (*r != '=') {
		*p = *r ? r + 1 : r;
		*r = '\0';
		return;
	}
	*r++ = '\0';
	*val = w = r;
	for (; *r; r++) {
		if (*r == ',' && r[1] != ',')
			break;
		if (*r == ',')
			r++;
		*w++ = *r;
	}
	*p = *r ? r + 1 : r;
	*w = '\0';
}

bool img_has_help_option(const char *list)
{
	char *copy = strdup(list), *p = copy, *key, *val;
	bool help = false;

	while (p && *p && !help) {
		next_create_opt(&p, &key, &val);
		help = !strcmp(key, "help") || !strcmp(key, "?");
	}
	free(copy);
	return help;
}

int img_parse_create_opts_for(const char *list, const char *fmt, const char *where,
			      struct block_create_opts *o)
{
	char *copy = strdup(list), *p = copy, *key, *val;

	if (!copy) {
		img_err("out of memory");
		return -1;
	}
	/* The copy is referenced by o until exit: deliberately kept. */
	while (*p) {
		next_create_opt(&p, &key, &val);
		if (!*key)
			continue;
		if (fmt && !create_opt_known(key, fmt)) {
			img_err("%sInvalid parameter '%s'", where, key);
			return -1;
		}
		if (apply_create_opt(where, key, val ? val : "on", o))
			return -1;
	}
	return 0;
}

/* -o help: the creation options each format takes, named and worded as
 * qemu-img's help (alphabetical); formats lists where a row applies
 * (NULL: every format). */
struct create_opt_help {
	const char *name, *type, *formats, *text;
};

static const struct create_opt_help create_opts_help[] = {
	{ "backing_file", "str", " qcow2 qcow cow vmdk ", "File name of a base image" },
	{ "backing_fmt", "str", " qcow2 qcow cow vmdk ", "Image format of the base image" },
	{ "cluster_size", "size", " qcow2 ", "qcow2 cluster size" },
	{ "cluster_size", "size", " qcow ", "qcow cluster size" },
	{ "cluster_size", "size", " cow ", "Data alignment in the file" },
	{ "compat", "str", " qcow2 ", "Compatibility level (v2 [0.10] or v3 [1.1])" },
	{ "compat", "str", " cow ", "Header version (v2 [0.10] or v3 [1.1])" },
	{ "compression_type", "str", " qcow2 ",
	  "Compression method used for image cluster compression" },
	{ "extended_l2", "bool (on/off)", " qcow2 ", "Extended L2 tables" },
	{ "lazy_refcounts", "bool (on/off)", " qcow2 ", "Postpone refcount updates" },
	{ "preallocation", "str", " qcow2 ",
	  "Preallocation mode (allowed values: off, metadata, falloc, full)" },
	{ "preallocation", "str", " raw vmdk ",
	  "Preallocation mode (allowed values: off, falloc, full)" },
	{ "refcount_bits", "num", " qcow2 ", "Width of a reference count entry in bits" },
	{ "size", "size", NULL, "Virtual disk size" },
	{ "subformat", "str", " vmdk ",
	  "VMDK flat extent format, can be one of {monolithicSparse (default) | "
	  "monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} " },
};

static bool opt_applies(const struct create_opt_help *h, const char *fmt)
{
	char word[64];

	if (!h->formats)
		return true;
	snprintf(word, sizeof(word), " %s ", fmt);
	return strstr(h->formats, word) != NULL;
}

static bool create_opt_known(const char *key, const char *fmt)
{
	for (size_t i = 0; i < sizeof(create_opts_help) / sizeof(create_opts_help[0]); i++)
		if (!strcmp(create_opts_help[i].name, key) && opt_applies(&create_opts_help[i], fmt))
			return true;
	return false;
}

void img_print_create_opts_help(const char *fmt)
{
	char left[64];

	if (!fmt)
		fmt = "raw";		/* qemu-img's default format */
	printf("Supported %s options:\n", fmt);
	for (size_t i = 0; i < sizeof(create_opts_help) / sizeof(create_opts_help[0]); i++) {
		const struct create_opt_help *h = &create_opts_help[i];

		if (!opt_applies(h, fmt))
			continue;
		snprintf(left, sizeof(left), "%s=<%s>", h->name, h->type);
		printf("  %-22s - %s\n", left, h->text);
	}
}

void img_human_size(uint64_t val, char *buf, size_t len)
{
	static const char *const suffixes[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
	int i = 0;

	/* Switch to the next unit once the integer part reaches 1000. */
	while (i < 6 && (double)val >= 1000.0 * (double)(1ULL << (i * 10)))
		i++;
	snprintf(buf, len, "%0.3g %sB", (double)val / (double)(1ULL << (i * 10)), suffixes[i]);
}

/* qemu's words when a format named with -f (or recorded for a backing
 * file) does not find its magic: its drivers' own messages. */
static const struct {
	const char *format, *magic, *message;
} magic_errors[] = {
	{ "qcow2", "QFI\xfb", "Image is not in qcow2 format" },
	{ "qcow", "QFI\xfb", "Image not in qcow format" },
};

static const char *wrong_magic_error(const char *path, const char *format)
{
	char head[4] = { 0 };
	ssize_t n;
	int fd;

	for (size_t i = 0; i < sizeof(magic_errors) / sizeof(magic_errors[0]); i++) {
		if (strcmp(magic_errors[i].format, format))
			continue;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return NULL;
		n = pread(fd, head, sizeof(head), 0);	/* a short file reads as zeroes */
		close(fd);
		if (n < 0)
			return NULL;
		return memcmp(head, magic_errors[i].magic, 4) ? magic_errors[i].message : NULL;
	}
	return NULL;
}

/* The block layer's message without its leading "FILE: " (or "FORMAT:
 * FILE: "): qemu-img's line names the file itself. */
static const char *reason_of(const char *err, const char *path)
{
	const char *p = err;
	size_t n;

	for (const struct block_format *f = block_format_first(); f; f = f->next) {
		n = strlen(f->name);
		if (!strncmp(p, f->name, n) && !strncmp(p + n, ": ", 2)) {
			p += n + 2;
			break;
		}
	}
	n = strlen(path);
	return !strncmp(p, path, n) && !strncmp(p + n, ": ", 2) ? p + n + 2 : err;
}

/* The image of path's backing chain that fails to open on its own: its
 * depth (0: path itself), path and format as named (-f, -F or recorded;
 * "" when probed). Walks the chain opening one image at a time,
 * read-only; depth 0 when no image fails alone (a loop, a read-write
 * refusal). */
struct open_failure {
	unsigned depth;
	char path[4096];
	char format[64];
};

static void failure_at(struct open_failure *f, unsigned depth, const char *path,
		       const char *format)
{
	f->depth = depth;
	snprintf(f->path, sizeof(f->path), "%s", path);
	snprintf(f->format, sizeof(f->format), "%s", format ? format : "");
}

static void locate_failure(const char *path, const struct block_open_opts *o,
			   struct open_failure *f)
{
	unsigned max = o->max_chain_depth ? o->max_chain_depth : 16;
	struct block_open_opts one = *o;
	char err[512], next_format[64];

	failure_at(f, 0, path, o->format);
	one.no_backing = true;
	one.read_only = true;
	one.backing_format = NULL;
	one.poll_completions = false;
	for (unsigned depth = 0; !o->no_backing && depth + 1 < max; depth++) {
		struct bdev *bs = NULL;
		const char *bfmt;
		char *next = NULL;

		one.format = f->format[0] ? f->format : NULL;
		if (bdev_open(f->path, &one, &bs, err, sizeof(err)) < 0)
			return;		/* this one */
		if (bs->backing_filename)
			next = block_resolve_relative(bs, bs->backing_filename,
						      o->allow_absolute_paths, err, sizeof(err));
		bfmt = depth == 0 && o->backing_format ? o->backing_format : bs->backing_format;
		snprintf(next_format, sizeof(next_format), "%s", bfmt ? bfmt : "");
		bdev_close(bs);
		if (!next)
			break;
		failure_at(f, depth + 1, next, next_format);
		free(next);
	}
	failure_at(f, 0, path, o->format);	/* no image fails on its own */
}

/* qemu-img's line for a failed open: "Could not open 'PATH': " then, per
 * backing file down to the one that failed, "Could not open backing
 * file: ", then why that image failed (its driver's words; a file that
 * cannot be opened gives "Could not open 'FILE': ERROR" again). */
static void report_open_error(const char *path, const struct block_open_opts *o, int ret,
			      const char *err)
{
	static const char backing[] = "Could not open backing file: ";
	char chain[8 * sizeof(backing)] = "";
	struct open_failure *f = malloc(sizeof(*f));
	const char *reason = NULL;

	if (!f) {
		img_err("Could not open '%s': %s", path, err[0] ? err : strerror(-ret));
		return;
	}
	locate_failure(path, o, f);
	for (unsigned i = 0; i < f->depth && strlen(chain) + sizeof(backing) <= sizeof(chain); i++)
		strcat(chain, backing);
	if (f->format[0])
		reason = wrong_magic_error(f->path, f->format);
	if (!reason)
		reason = err[0] ? reason_of(err, f->path) : strerror(-ret);
	img_err("Could not open '%s': %s%s", path, chain, reason);
	free(f);
}

struct bdev *img_open_opts(const char *path, const struct block_open_opts *o)
{
	struct bdev *bs = NULL;
	char err[512] = "";
	int ret;

	if (o->format && !block_format_find(o->format)) {
		img_err("Could not open '%s': Unknown driver '%s'", path, o->format);
		return NULL;
	}
	ret = bdev_open(path, o, &bs, err, sizeof(err));
	if (ret < 0 || !bs) {
		report_open_error(path, o, ret, err);
		return NULL;
	}
	return bs;
}

struct bdev *img_open(const char *path, const char *fmt, bool read_only,
		      enum block_cache_mode cache, bool no_backing)
{
	struct block_open_opts o = {
		.format = fmt, .read_only = read_only, .cache = cache, .no_backing = no_backing,
	};

	return img_open_opts(path, &o);
}

const struct block_format *img_format_for_create(const char *fmt)
{
	const struct block_format *f = block_format_find(fmt);

	if (!f)
		img_err("Unknown file format '%s'", fmt);
	else if (!f->create)
		img_err("Format driver '%s' does not support image creation", fmt);
	return f && f->create ? f : NULL;
}

int img_create_image(const char *path, const char *fmt, const struct block_create_opts *o)
{
	const struct block_format *f = img_format_for_create(fmt);
	char err[512] = "";
	int ret;

	if (!f)
		return -1;
	ret = f->create(path, o, err, sizeof(err));
	if (ret < 0) {
		if (err[0])
			img_err("%s", err);
		else
			img_err("%s: could not create image: %s", path, strerror(-ret));
		return -1;
	}
	return 0;
}

int64_t img_layer_status(struct bdev *bs, uint64_t off, uint64_t len, unsigned *status,
			 uint64_t *host_offset, bool *offset_valid)
{
	uint64_t host = 0;
	int64_t n;

	*status = 0;
	n = bdev_block_status(bs, off, len, status, &host);
	if (n <= 0)
		return n ? n : -EIO;
	if ((uint64_t)n > len)
		n = (int64_t)len;
	*host_offset = host;
	/* Uncompressed data has a host offset; zero and unallocated ranges
	 * have one where the format still maps them to a host cluster (a
	 * nonzero host_offset: preallocated qcow2 clusters) or maps guest
	 * offsets to file offsets one to one (raw holes, at 0 too). */
	*offset_valid = !(*status & BLOCK_STATUS_COMPRESSED) &&
			((*status & BLOCK_STATUS_DATA) || host != 0 ||
			 ((*status & BLOCK_STATUS_ZERO) && !strcmp(bdev_format_name(bs), "raw")));
	return n;
}

/* Unallocated in the whole chain, decided at layer bs (depth): zeroes,
 * with the host offset bs still maps the range to, if any. */
static void chain_unallocated(struct chain_status *cs, unsigned depth, uint64_t host,
			      bool valid)
{
	cs->status = BLOCK_STATUS_ZERO;
	cs->layer = NULL;
	cs->depth = depth;
	cs->host_offset = host;
	cs->offset_valid = valid;
}

int64_t img_chain_status(struct bdev *bs, uint64_t off, uint64_t len, struct chain_status *cs)
{
	unsigned depth = 0;

	if (off >= bdev_size(bs)) {
		chain_unallocated(cs, 0, 0, false);
		return (int64_t)len;
	}
	for (;;) {
		struct bdev *backing = bdev_backing(bs);
		unsigned st;
		uint64_t host;
		bool valid;
		int64_t n;

		if (len > bdev_size(bs) - off)
			len = bdev_size(bs) - off;
		n = img_layer_status(bs, off, len, &st, &host, &valid);
		if (n < 0)
			return n;
		if (!(st & (BLOCK_STATUS_BACKING | BLOCK_STATUS_UNALLOCATED)) &&
		    (st & (BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO))) {
			cs->status = st;
			cs->layer = bs;
			cs->depth = depth;
			cs->host_offset = host;
			cs->offset_valid = valid;
			return n;
		}
		/* as qemu-img: past the end of a shorter backing file the
		 * layer above itself reads as zeroes */
		if (!backing || off >= bdev_size(backing)) {
			chain_unallocated(cs, depth, host, valid);
			return n;
		}
		len = (uint64_t)n;
		bs = backing;
		depth++;
	}
}

uint32_t img_cluster_size(struct bdev *bs)
{
	uint32_t cs = 0;

	if (bs->fmt && bs->fmt->cluster_size) {
		pthread_mutex_lock(&bs->lock);
		cs = bs->fmt->cluster_size(bs);
		pthread_mutex_unlock(&bs->lock);
	}
	return cs;
}

int img_write_compressed(struct bdev *bs, uint64_t off, const void *buf, size_t len)
{
	int ret;

	if (!bs->fmt->write_compressed)
		return -ENOTSUP;
	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->write_compressed(bs, off, buf, len);
	pthread_mutex_unlock(&bs->lock);
	return ret;
}

void img_progress_update(struct img_progress *p, uint64_t done, uint64_t total)
{
	double pct;

	if (!p->on)
		return;
	pct = total ? (double)done * 100.0 / (double)total : 100.0;
	if (pct - p->last < 0.01 && pct < 100.0 && p->last > 0)
		return;
	p->last = pct;
	printf("    (%.2f/100%%)\r", pct);
	fflush(stdout);
}

void img_progress_end(struct img_progress *p)
{
	if (!p->on)
		return;
	printf("    (100.00/100%%)\n");
	fflush(stdout);
}

bool img_buf_is_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i = 0;

	for (; i < len && ((uintptr_t)(p + i) & 7); i++)
		if (p[i])
			return false;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (w)
			return false;
	}
	for (; i < len; i++)
		if (p[i])
			return false;
	return true;
}

double img_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
