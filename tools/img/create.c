/* minikvm-img create: make a new image of any format that can create,
 * with qemu-img's flags (-f, -b, -F, -u, -o, size with suffixes). */
#include <string.h>
#include "tools/img/img.h"
#include "vmm/opts.h"

/* The backing file name as the new image at path will resolve it
 * (relative to the image's directory); NULL when out of memory. */
static char *backing_path(const char *path, const char *backing)
{
	const char *slash = strrchr(path, '/');
	char *full = NULL;

	if (backing[0] == '/' || !slash)
		return strdup(backing);
	if (asprintf(&full, "%.*s%s", (int)(slash + 1 - path), path, backing) < 0)
		return NULL;
	return full;
}

/* Without an explicit size, a backed image takes its backing file's. */
static int size_from_backing(const char *path, const struct block_create_opts *o,
			     uint64_t *size)
{
	char *full = backing_path(path, o->backing_file);
	struct bdev *bs;
	int ret = -1;

	if (!full)
		return -1;
	bs = img_open(full, o->backing_format, true, BLOCK_CACHE_WRITEBACK, false);
	if (bs) {
		*size = bdev_size(bs);
		bdev_close(bs);
		ret = 0;
	}
	free(full);
	return ret;
}

/* qemu's hint after "Backing file specified without backing format":
 * the format a probe finds (no newline, as QEMU prints it). */
static void hint_backing_format(const char *path, const struct block_create_opts *o)
{
	char *full = backing_path(path, o->backing_file);
	struct block_open_opts oo = { .read_only = true, .no_backing = true };
	struct bdev *bs = NULL;
	char err[256];

	if (full && bdev_open(full, &oo, &bs, err, sizeof(err)) >= 0 && bs) {
		fprintf(stderr, "Detected format of %s.", bdev_format_name(bs));
		bdev_close(bs);
	}
	free(full);
}

/* The checks qemu's bdrv_img_create makes before creating, in its order
 * and words ("FILE: ..."). */
static int check_create(const char *path, const char *fmt, const char *options, bool unsafe,
			bool have_size, struct block_create_opts *o)
{
	const struct block_format *f = block_format_find(fmt);
	char where[4200];

	if (!f) {
		img_err("%s: Unknown file format '%s'", path, fmt);
		return -1;
	}
	if (!f->create) {
		img_err("%s: Format driver '%s' does not support image creation", path, fmt);
		return -1;
	}
	snprintf(where, sizeof(where), "%s: ", path);
	if (options) {
		uint64_t cli_size = o->size;

		o->size = 0;
		if (img_parse_create_opts_for(options, fmt, where, o))
			return -1;
		if (have_size && o->size) {
			img_err("%sThe image size must be specified only once", where);
			return -1;
		}
		if (have_size)
			o->size = cli_size;
	}
	if (o->backing_file && !strstr(" qcow2 qcow cow vmdk ", fmt)) {
		img_err("%sBacking file not supported for file format '%s'", where, fmt);
		return -1;
	}
	if (o->backing_format && !strstr(" qcow2 qcow cow vmdk ", fmt)) {
		img_err("%sBacking file format not supported for file format '%s'", where, fmt);
		return -1;
	}
	if (o->backing_file && !o->backing_format) {
		img_err("%sBacking file specified without backing format", where);
		if (!unsafe)
			hint_backing_format(path, o);
		return -1;
	}
	return 0;
}

/* qemu-img's "Formatting" line: the format's creation options in QEMU's
 * order, each one given (sizes and numbers as bytes/values, the rest as
 * typed) or with a default QEMU prints ('#': a number). */
struct shown_opt {
	const char *key;
	bool number;
	const char *def;
};

static const struct shown_opt raw_line[] = {
	{ "size", true, NULL }, { "preallocation", false, NULL }, { NULL, false, NULL },
};
static const struct shown_opt qcow_line[] = {
	{ "size", true, NULL }, { "backing_file", false, NULL }, { "backing_fmt", false, NULL },
	{ "encryption", false, NULL }, { NULL, false, NULL },
};
static const struct shown_opt qcow2_line[] = {
	{ "cluster_size", true, "65536" }, { "extended_l2", false, "off" },
	{ "preallocation", false, NULL }, { "compression_type", false, "zlib" },
	{ "size", true, NULL }, { "compat", false, NULL }, { "backing_file", false, NULL },
	{ "backing_fmt", false, NULL }, { "data_file", false, NULL },
	{ "data_file_raw", false, NULL }, { "lazy_refcounts", false, "off" },
	{ "refcount_bits", true, "16" }, { NULL, false, NULL },
};
static const struct shown_opt vmdk_line[] = {
	{ "size", true, NULL }, { "adapter_type", false, NULL }, { "backing_file", false, NULL },
	{ "backing_fmt", false, NULL }, { "compat6", false, "off" },
	{ "hwversion", false, "undefined" }, { "toolsversion", false, NULL },
	{ "subformat", false, NULL }, { "zeroed_grain", false, NULL }, { NULL, false, NULL },
};
/* cow is not in QEMU 7.2: its own options, in the same style. */
static const struct shown_opt cow_line[] = {
	{ "size", true, NULL }, { "backing_file", false, NULL }, { "backing_fmt", false, NULL },
	{ "cluster_size", true, NULL }, { "compat", false, NULL }, { NULL, false, NULL },
};

static const struct shown_opt *formatting_line(const char *fmt)
{
	static const struct {
		const char *fmt;
		const struct shown_opt *line;
	} lines[] = {
		{ "raw", raw_line }, { "qcow", qcow_line }, { "qcow2", qcow2_line },
		{ "vmdk", vmdk_line }, { "cow", cow_line },
	};

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strcmp(lines[i].fmt, fmt))
			return lines[i].line;
	return raw_line;
}

/* The value shown for key: -b/-F and the size from o, numbers parsed,
 * the rest as the last -o gave it; NULL when neither set nor defaulted. */
static const char *shown_value(const struct shown_opt *so, const struct opts *given,
			       const struct block_create_opts *o, char *buf, size_t len)
{
	const char *v = opts_get(given, so->key);
	uint64_t n;

	if (!strcmp(so->key, "size")) {
		snprintf(buf, len, "%llu", (unsigned long long)o->size);
		return buf;
	}
	if (!strcmp(so->key, "backing_file"))
		return o->backing_file;
	if (!strcmp(so->key, "backing_fmt"))
		return o->backing_format;
	if (v && so->number && img_strtosz(v, &n) == 0) {
		snprintf(buf, len, "%llu", (unsigned long long)n);
		return buf;
	}
	return v ? v : so->def;
}

static void print_formatting(const char *path, const char *fmt, const char *options,
			     const struct block_create_opts *o)
{
	struct opts given = { 0 };
	char err[128], buf[32];

	if (options)
		opts_parse(&given, options, &(struct opts_syntax){ .max_len = 65535,
								   .max_items = 256 },
			   err, sizeof(err));
	printf("Formatting '%s', fmt=%s", path, fmt);
	for (const struct shown_opt *so = formatting_line(fmt); so->key; so++) {
		const char *v = shown_value(so, &given, o, buf, sizeof(buf));

		if (v)
			printf(" %s=%s", so->key, v);
	}
	printf("\n");
	fflush(stdout);
	opts_free(&given);
}

int cmd_create(int argc, char **argv)
{
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, { NULL, 0, NULL, 0 },
	};
	struct block_create_opts o = { 0 };
	const char *fmt = "raw", *path;
	char *options = NULL;
	bool quiet = false, unsafe = false, have_size = false;
	int c;

	while ((c = getopt_long(argc, argv, ":F:b:f:ho:qu", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'b': o.backing_file = optarg; break;
		case 'F': o.backing_format = optarg; break;
		case 'u': unsafe = true; break;
		case 'q': quiet = true; break;
		case 'h': return img_cmd_help("create");
		case 'o':
			options = img_add_option_list(options, optarg);
			if (!options)
				return 1;
			break;
		case IMG_OPT_OBJECT:
			return img_unsupported_option(c);
		default:
			return img_bad_option(c, argv);
		}
	}
	if (options && img_has_help_option(options)) {
		if (!block_format_find(fmt)) {
			img_err("Unknown file format '%s'", fmt);
			return 1;
		}
		img_print_create_opts_help(fmt);
		return 0;
	}
	if (optind >= argc)
		return img_usage_error("Expecting image file name");
	path = argv[optind++];
	if (optind < argc) {
		if (img_cvtnum("image size", argv[optind], 0, INT64_MAX, &o.size))
			return 1;
		have_size = true;
		optind++;
	}
	if (optind < argc)
		return img_usage_error("Unexpected argument: %s", argv[optind]);
	img_defer_value_errors(true);
	if (check_create(path, fmt, options, unsafe, have_size, &o))
		return 1;
	if (o.size)
		have_size = true;
	if (!have_size) {
		if (!o.backing_file || unsafe) {
			img_err("%s: Image creation needs a size parameter", path);
			return 1;
		}
		if (size_from_backing(path, &o, &o.size))
			return 1;
	}
	if (!quiet)
		print_formatting(path, fmt, options, &o);
	if (img_deferred_value_error()) {
		img_err("%s", img_deferred_value_error());
		return 1;
	}
	if (o.backing_format && !o.backing_file) {
		img_err("%s: Backing format cannot be used without backing file", path);
		return 1;
	}
	return img_create_image(path, fmt, &o) ? 1 : 0;
}
