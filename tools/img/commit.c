/* minikvm-img commit: write the data allocated in an image (and in every
 * layer above the base) down into its backing file or the -b base, then,
 * unless -d is given, empty the top image so it reads through to its
 * backing file again (qemu-img's behaviour: formats without a make_empty
 * op, and flat or streamOptimized vmdk, silently keep their data). -b
 * implies -d, as in qemu-img. A base smaller than the top grows to the
 * top's size first, as QEMU's commit job does. Errors are qemu-img's
 * words. */
#include <stdarg.h>
#include "tools/img/img.h"

#define COMMIT_CHUNK (1u << 20)

static bool is_allocated_above(struct bdev *top, struct bdev *base, uint64_t off, uint64_t len,
			       int64_t *run, int *err)
{
	struct bdev *bs = top;
	uint64_t n = len;

	/* the run is allocated if any layer above base has data here */
	for (; bs && bs != base; bs = bdev_backing(bs)) {
		unsigned st;
		uint64_t host;
		bool valid;
		int64_t r;

		if (off >= bdev_size(bs))
			continue;
		r = img_layer_status(bs, off, n, &st, &host, &valid);
		if (r <= 0) {
			*err = r ? (int)r : -EIO;
			return false;
		}
		n = (uint64_t)r;
		if (!(st & (BLOCK_STATUS_BACKING | BLOCK_STATUS_UNALLOCATED)) &&
		    (st & (BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO))) {
			*run = (int64_t)n;
			return true;
		}
	}
	*run = (int64_t)n;
	return false;
}

/* The base named by -b among the backing files of top: by the name
 * opened, its last component, or the name top records. */
static struct bdev *find_base(struct bdev *top, const char *name)
{
	struct bdev *bs;

	for (bs = bdev_backing(top); bs; bs = bdev_backing(bs)) {
		const char *f = bdev_filename(bs), *slash = strrchr(f, '/');

		if (!strcmp(f, name) || (slash && !strcmp(slash + 1, name)) ||
		    (bs->depth == 1 && top->backing_filename &&
		     !strcmp(top->backing_filename, name)))
			return bs;
	}
	return NULL;
}

/* Grow the (writable) base to the top's size; a failure reads as the
 * failed block job it is in qemu-img. */
static int grow_base(struct bdev *wbase, uint64_t size)
{
	char err[512] = "";
	int ret = -ENOTSUP;

	if (bdev_size(wbase) >= size)
		return 0;
	if (wbase->fmt->truncate) {
		pthread_mutex_lock(&wbase->lock);
		ret = wbase->fmt->truncate(wbase, size, false, err, sizeof(err));
		pthread_mutex_unlock(&wbase->lock);
	}
	if (ret < 0)
		img_err("Block job failed: %s", strerror(-ret));
	return ret;
}

/* Empty the top image after a successful commit; -ENOTSUP (the format
 * cannot) is not an error, as in qemu-img. */
static int make_empty(struct bdev *top)
{
	int ret;

	if (!top->fmt->make_empty)
		return 0;
	pthread_mutex_lock(&top->lock);
	ret = top->fmt->make_empty(top);
	pthread_mutex_unlock(&top->lock);
	if (ret == -ENOTSUP)
		return 0;
	if (ret >= 0)
		ret = bdev_flush(top);
	return ret;
}

int cmd_commit(int argc, char **argv)
{
	const char *fmt = NULL, *base_name = NULL;
	enum block_cache_mode cache = BLOCK_CACHE_UNSAFE;
	struct img_progress pg = { 0 };
	bool drop = false, quiet = false;
	struct bdev *top, *base = NULL, *wbase = NULL;
	uint8_t *buf = NULL;
	uint64_t off = 0, end, rate;
	int c, ret, rc = 1;

	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS, { NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, ":f:ht:b:dpqr:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("commit");
		case 'f': fmt = optarg; break;
		case 'b': base_name = optarg; drop = true; break;	/* -b implies -d */
		case 'd': drop = true; break;
		case 'p': pg.on = true; break;
		case 'q': quiet = true; break;
		case 'r':	/* rate limit: checked, not applied */
			if (img_cvtnum("rate limit", optarg, 0, INT64_MAX, &rate))
				return 1;
			break;
		case 't':
			if (block_parse_cache_mode(optarg, &cache)) {
				img_err("Invalid cache option: %s", optarg);
				return 1;
			}
			break;
		case IMG_OPT_OBJECT:
		case IMG_OPT_IMAGE_OPTS:
			return img_unsupported_option(c);
		default:
			return img_bad_option(c, argv);
		}
	}
	if (quiet)
		pg.on = false;
	if (optind != argc - 1)
		return img_usage_error("Expecting one image file name");
	{
		struct block_open_opts oo = { .format = fmt, .cache = cache };

		top = img_open_opts(argv[optind], &oo);
	}
	if (!top)
		return 1;
	if (!bdev_backing(top)) {
		img_err("Image does not have a backing file");
		goto out;
	}
	if (base_name) {
		base = find_base(top, base_name);
		if (!base) {
			img_err("Did not find '%s' in the backing chain of '%s'", base_name,
				argv[optind]);
			goto out;
		}
	} else {
		base = bdev_backing(top);
	}
	/* The chain holds the base read-only: write through a second,
	 * writable handle (reads of the layers above never touch the base). */
	{
		struct block_open_opts bo = {
			.format = bdev_format_name(base), .cache = cache, .no_backing = true,
		};

		wbase = img_open_opts(bdev_filename(base), &bo);
		if (!wbase)
			goto out;
	}
	buf = malloc(COMMIT_CHUNK);
	if (!buf) {
		img_err("commit: out of memory");
		goto out;
	}
	if (grow_base(wbase, bdev_size(top)) < 0)
		goto out;
	end = bdev_size(top);
	while (off < end) {
		int64_t run = 0;
		int err = 0;
		bool alloc = is_allocated_above(top, base, off, end - off, &run, &err);

		if (err) {
			img_err("commit: error reading the allocation at offset %llu: %s",
				(unsigned long long)off, strerror(-err));
			goto out;
		}
		if (alloc) {
			size_t n = run > COMMIT_CHUNK ? COMMIT_CHUNK : (size_t)run;

			ret = bdev_pread(top, off, buf, n);
			if (ret >= 0)
				ret = img_buf_is_zero(buf, n) ?
				      bdev_write_zeroes(wbase, off, n, false) :
				      bdev_pwrite(wbase, off, buf, n);
			if (ret < 0) {
				img_err("commit: error copying offset %llu: %s",
					(unsigned long long)off, strerror(-ret));
				goto out;
			}
			run = (int64_t)n;
		}
		off += (uint64_t)run;
		img_progress_update(&pg, off, end);
	}
	ret = bdev_flush(wbase);
	if (ret < 0) {
		img_err("commit: flushing '%s' failed: %s", bdev_filename(base), strerror(-ret));
		goto out;
	}
	/* the base is complete (a cow top records its backing file's mtime) */
	bdev_close(wbase);
	wbase = NULL;
	if (!drop) {
		ret = make_empty(top);
		if (ret < 0) {
			img_err("commit: cannot empty '%s': %s", argv[optind], strerror(-ret));
			goto out;
		}
	}
	img_progress_end(&pg);
	if (!quiet)
		printf("Image committed.\n");
	rc = 0;
out:
	free(buf);
	if (wbase)
		bdev_close(wbase);
	bdev_close(top);
	return rc;
}
