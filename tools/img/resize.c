/* minikvm-img resize: grow or (with --shrink) shrink an image's virtual
 * size to an absolute size or by +/- a delta. */
#include "tools/img/img.h"

enum { OPT_PREALLOCATION = IMG_OPT_FIRST_FREE, OPT_SHRINK };

/* --preallocation: QEMU's modes; only off is implemented here. */
static int parse_prealloc(const char *arg)
{
	if (strcmp(arg, "off") && strcmp(arg, "metadata") && strcmp(arg, "falloc") &&
	    strcmp(arg, "full")) {
		img_err("Invalid preallocation mode '%s'", arg);
		return -1;
	}
	if (strcmp(arg, "off")) {
		img_err("resize: --preallocation=%s is not supported (only off)", arg);
		return -1;
	}
	return 0;
}

int cmd_resize(int argc, char **argv)
{
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "preallocation", required_argument, NULL, OPT_PREALLOCATION },
		{ "shrink", no_argument, NULL, OPT_SHRINK },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *size_arg;
	bool shrink = false, quiet = false;
	char err[512] = "";
	struct bdev *bs;
	uint64_t n, cur, new_size;
	int c, ret, relative;

	/* as qemu-img: the last argument is the size, never an option */
	if (argc < 3)
		return img_usage_error("Not enough arguments");
	size_arg = argv[--argc];
	while ((c = getopt_long(argc, argv, ":f:hq", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("resize");
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case OPT_SHRINK: shrink = true; break;
		case OPT_PREALLOCATION:
			if (parse_prealloc(optarg))
				return 1;
			break;
		case IMG_OPT_OBJECT:
		case IMG_OPT_IMAGE_OPTS:
			return img_unsupported_option(c);
		default:
			return img_bad_option(c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("Expecting image file name and size");
	relative = size_arg[0] == '+' ? 1 : size_arg[0] == '-' ? -1 : 0;
	if (img_parse_opt_size("", "size", size_arg + (relative != 0), &n))
		return 1;
	bs = img_open(argv[optind], fmt, false, BLOCK_CACHE_WRITEBACK, true);
	if (!bs)
		return 1;
	cur = bdev_size(bs);
	if (relative > 0 && n > INT64_MAX - cur) {
		img_err("resize: size '%s' is too large", size_arg);
		goto fail;
	}
	new_size = relative > 0 ? cur + n : relative < 0 ? cur - n : n;
	if ((relative < 0 && n >= cur) || new_size == 0 || new_size > INT64_MAX) {
		img_err("New image size must be positive");
		goto fail;
	}
	if (new_size < cur && !shrink) {
		img_err("Use the --shrink option to perform a shrink operation.");
		img_warn("Shrinking an image will delete all data beyond the shrunken image's end. "
			 "Before performing such an operation, make sure there is no important data "
			 "there.");
		goto fail;
	}
	if (!bs->fmt->truncate) {
		img_err("resize: format '%s' does not support resizing", bdev_format_name(bs));
		goto fail;
	}
	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->truncate(bs, new_size, shrink, err, sizeof(err));
	pthread_mutex_unlock(&bs->lock);
	if (ret >= 0)
		ret = bdev_flush(bs);
	if (ret < 0) {
		if (err[0])
			img_err("resize: %s", err);
		else
			img_err("resize: '%s': %s", argv[optind], strerror(-ret));
		goto fail;
	}
	bdev_close(bs);
	if (!quiet)
		printf("Image resized.\n");
	return 0;
fail:
	bdev_close(bs);
	return 1;
}
