/* minikvm-img resize: grow or (with --shrink) shrink an image's virtual
 * size to an absolute size or by +/- a delta. */
#include "tools/img/img.h"

int cmd_resize(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "shrink", no_argument, NULL, 'S' },
		{ "preallocation", required_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *size_arg;
	bool shrink = false, quiet = false;
	char err[512] = "";
	struct bdev *bs;
	uint64_t n, cur, new_size;
	int c, ret;

	/* "-1G" as the last argument is a size, not an option */
	if (argc >= 3 && argv[argc - 1][0] == '-' && argv[argc - 1][1] >= '0' &&
	    argv[argc - 1][1] <= '9') {
		size_arg = argv[argc - 1];
		argc--;
	} else {
		size_arg = NULL;
	}
	while ((c = getopt_long(argc, argv, ":f:qhU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'U': break;
		case 'S': shrink = true; break;
		case 'P':
			if (strcmp(optarg, "off")) {
				img_err("resize: only --preallocation=off is supported");
				return 1;
			}
			break;
		default:
			return img_bad_option("resize", argc, argv);
		}
	}
	if (!size_arg && optind == argc - 2)
		size_arg = argv[--argc];
	if (!size_arg || optind != argc - 1) {
		img_err("resize: expecting a filename and a size (see '%s resize --help')", IMG_PROG);
		return 1;
	}
	if (img_parse_size(size_arg + (size_arg[0] == '+' || size_arg[0] == '-'), &n)) {
		img_err("resize: invalid size '%s'", size_arg);
		return 1;
	}
	bs = img_open(argv[optind], fmt, false, BLOCK_CACHE_WRITEBACK, true);
	if (!bs)
		return 1;
	cur = bdev_size(bs);
	if (size_arg[0] == '+') {
		if (n > INT64_MAX - cur) {
			img_err("resize: size '%s' is too large", size_arg);
			goto fail;
		}
		new_size = cur + n;
	} else if (size_arg[0] == '-') {
		if (n > cur) {
			img_err("resize: image would have a negative size");
			goto fail;
		}
		new_size = cur - n;
	} else {
		new_size = n;
	}
	if (new_size < cur && !shrink) {
		img_err("resize: use the --shrink option to shrink '%s' (data beyond the new size "
			"is lost)", argv[optind]);
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
