/* minikvm-img create: make a new image of any format that can create,
 * with qemu-img's flags (-f, -b, -F, -u, -o, size with suffixes). */
#include <string.h>
#include "tools/img/img.h"

/* Without an explicit size, a backed image takes its backing file's. */
static int size_from_backing(const char *path, const struct block_create_opts *o,
			     uint64_t *size)
{
	char *dir = strdup(path), *slash, *full = NULL;
	struct bdev *bs;
	int ret = -1;

	if (!dir)
		return -1;
	slash = strrchr(dir, '/');
	if (o->backing_file[0] != '/' && slash) {
		slash[1] = '\0';
		if (asprintf(&full, "%s%s", dir, o->backing_file) < 0)
			full = NULL;
	} else {
		full = strdup(o->backing_file);
	}
	free(dir);
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

int cmd_create(int argc, char **argv)
{
	struct block_create_opts o = { 0 };
	const char *fmt = "raw", *path;
	const char *opt_lists[16];
	unsigned n_lists = 0;
	bool quiet = false, unsafe = false, have_size = false;
	char hs[32];
	int c;

	/* a negative size would otherwise read as an option */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9') {
			img_err("create: invalid image size '%s' (sizes cannot be negative)", argv[i]);
			return 1;
		}
	}
	while ((c = getopt(argc, argv, ":f:b:F:o:uqh")) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'b': o.backing_file = optarg; break;
		case 'F': o.backing_format = optarg; break;
		case 'u': unsafe = true; break;
		case 'q': quiet = true; break;
		case 'o':
			if (!strcmp(optarg, "help") || !strcmp(optarg, "?")) {
				img_print_create_opts_help(fmt);
				return 0;
			}
			if (n_lists == 16) {
				img_err("create: too many -o options");
				return 1;
			}
			opt_lists[n_lists++] = optarg;
			break;
		default:
			return img_bad_option("create", argc, argv);
		}
	}
	for (unsigned i = 0; i < n_lists; i++)
		if (img_parse_create_opts(opt_lists[i], &o))
			return 1;
	if (o.size)
		have_size = true;
	if (optind >= argc) {
		img_err("create: expecting a filename (see '%s create --help')", IMG_PROG);
		return 1;
	}
	path = argv[optind++];
	if (optind < argc) {
		if (img_parse_size(argv[optind], &o.size)) {
			img_err("create: invalid image size '%s' (a number with optional suffix "
				"k, M, G, T, P, E)", argv[optind]);
			return 1;
		}
		have_size = true;
		optind++;
	}
	if (optind < argc) {
		img_err("create: unexpected argument '%s'", argv[optind]);
		return 1;
	}
	if (!block_format_find(fmt)) {
		img_err("%s: Unknown file format '%s'", path, fmt);
		return 1;
	}
	if (!block_format_find(fmt)->create) {
		img_err("%s: Format driver '%s' does not support image creation", path, fmt);
		return 1;
	}
	if (o.backing_format && !o.backing_file) {
		img_err("create: -F/backing_fmt needs a backing file (-b)");
		return 1;
	}
	if (o.backing_file && !o.backing_format && !unsafe) {
		img_err("create: backing format must be given with -F when using -b");
		return 1;
	}
	if (!have_size) {
		if (!o.backing_file || unsafe) {
			img_err("create: image size must be given");
			return 1;
		}
		if (size_from_backing(path, &o, &o.size))
			return 1;
	}
	if (!quiet) {
		img_human_size(o.size, hs, sizeof(hs));
		printf("Formatting '%s', fmt=%s size=%llu", path, fmt,
		       (unsigned long long)o.size);
		if (o.backing_file)
			printf(" backing_file=%s", o.backing_file);
		if (o.backing_format)
			printf(" backing_fmt=%s", o.backing_format);
		if (o.cluster_size)
			printf(" cluster_size=%u", o.cluster_size);
		printf("\n");
		fflush(stdout);
	}
	return img_create_image(path, fmt, &o) ? 1 : 0;
}
