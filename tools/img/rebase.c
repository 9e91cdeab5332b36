/* minikvm-img rebase: point an image at a new backing file. Safe mode
 * copies into the image every unallocated range where the old and new
 * backing files differ, so the guest-visible content is unchanged; -u only
 * rewrites the recorded name. */
#include "tools/img/img.h"

#define REBASE_CHUNK (1u << 20)

static char *relative_to_image(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	char *out = NULL;

	if (name[0] == '/' || !slash)
		return strdup(name);
	if (asprintf(&out, "%.*s%s", (int)(slash - image + 1), image, name) < 0)
		return NULL;
	return out;
}

static int read_or_zero(struct bdev *bs, uint64_t off, uint8_t *buf, size_t len)
{
	uint64_t size = bs ? bdev_size(bs) : 0;
	size_t n = 0;

	if (off < size)
		n = size - off < len ? (size_t)(size - off) : len;
	memset(buf + n, 0, len - n);
	return n ? bdev_pread(bs, off, buf, n) : 0;
}

/* Copy old-backing content into the image where the new backing differs. */
static int copy_differences(struct bdev *top, struct bdev *newb, uint32_t gran,
			    struct img_progress *pg)
{
	uint64_t end = bdev_size(top), off = 0;
	uint8_t *a = malloc(REBASE_CHUNK), *b = malloc(REBASE_CHUNK);
	int ret = 0;

	if (!a || !b) {
		ret = -ENOMEM;
		goto out;
	}
	while (off < end) {
		unsigned st;
		uint64_t host;
		bool valid;
		int64_t n = img_layer_status(top, off, end - off, &st, &host, &valid);

		if (n <= 0) {
			ret = n ? (int)n : -EIO;
			goto out;
		}
		if ((st & (BLOCK_STATUS_BACKING | BLOCK_STATUS_UNALLOCATED)) ||
		    !(st & (BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO))) {
			size_t len = n > REBASE_CHUNK ? REBASE_CHUNK : (size_t)n;

			ret = bdev_pread(top, off, a, len);
			if (ret >= 0)
				ret = read_or_zero(newb, off, b, len);
			if (ret < 0)
				goto out;
			for (size_t p = 0; p < len;) {
				size_t g = gran - (size_t)((off + p) % gran);

				if (g > len - p)
					g = len - p;
				if (memcmp(a + p, b + p, g)) {
					ret = bdev_pwrite(top, off + p, a + p, g);
					if (ret < 0)
						goto out;
				}
				p += g;
			}
			n = (int64_t)len;
		}
		off += (uint64_t)n;
		img_progress_update(pg, off, end);
	}
out:
	free(a);
	free(b);
	return ret;
}

int cmd_rebase(int argc, char **argv)
{
	const char *fmt = NULL, *backing = NULL, *bfmt = NULL, *path;
	enum block_cache_mode cache = BLOCK_CACHE_WRITEBACK, src_cache = BLOCK_CACHE_WRITEBACK;
	struct img_progress pg = { 0 };
	bool unsafe = false, quiet = false;
	struct bdev *top = NULL, *newb = NULL;
	uint32_t gran;
	int c, ret, rc = 1;

	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cache_arg = "writeback", *src_cache_arg = "writeback";

	while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("rebase");
		case 'f': fmt = optarg; break;
		case 'b': backing = optarg; break;
		case 'F': bfmt = optarg; break;
		case 'u': unsafe = true; break;
		case 'p': pg.on = true; break;
		case 'q': quiet = true; break;
		case 'U': break;
		case 't': cache_arg = optarg; break;
		case 'T': src_cache_arg = optarg; break;
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
	if (!backing && !unsafe)
		return img_usage_error("Must specify backing file (-b) or use unsafe mode (-u)");
	if (!backing)
		backing = "";		/* -u alone: no backing file any more */
	if (block_parse_cache_mode(cache_arg, &cache)) {
		img_err("Invalid cache option: %s", cache_arg);
		return 1;
	}
	if (block_parse_cache_mode(src_cache_arg, &src_cache)) {
		img_err("Invalid source cache option: %s", src_cache_arg);
		return 1;
	}
	path = argv[optind];	/* an unknown -f: the open says so, as qemu-img */
	{
		struct block_open_opts oo = { .format = fmt, .cache = cache, .no_backing = unsafe };

		top = img_open_opts(path, &oo);
	}
	if (!top)
		return 1;
	if (unsafe && backing[0] && !bfmt) {	/* as QEMU: nothing to record */
		img_err("Could not change the backing file to '%s': backing format must be "
			"specified", backing);
		goto out;
	}
	if (bfmt && !block_format_find(bfmt)) {
		img_err("Invalid format name: '%s'", bfmt);
		goto out;
	}
	if (!top->fmt->change_backing) {
		img_err("rebase: format '%s' cannot change its backing file", bdev_format_name(top));
		goto out;
	}
	if (*backing) {
		char *full = relative_to_image(path, backing);

		if (!full) {
			img_err("rebase: out of memory");
			goto out;
		}
		if (!unsafe || !bfmt) {
			newb = img_open(full, bfmt, true, src_cache, false);
			if (!newb) {
				free(full);
				goto out;
			}
			if (!bfmt)
				bfmt = bdev_format_name(newb);
		}
		free(full);
	} else {
		backing = NULL;
		bfmt = NULL;
	}
	if (!unsafe) {
		gran = img_cluster_size(top);
		if (!gran)
			gran = 65536;
		ret = copy_differences(top, newb, gran, &pg);
		if (ret < 0) {
			img_err("rebase: copying data into '%s' failed: %s", path, strerror(-ret));
			goto out;
		}
	}
	pthread_mutex_lock(&top->lock);
	ret = top->fmt->change_backing(top, backing, bfmt);
	pthread_mutex_unlock(&top->lock);
	if (ret >= 0)
		ret = bdev_flush(top);
	if (ret < 0) {
		img_err("rebase: could not change the backing file of '%s': %s", path,
			strerror(-ret));
		goto out;
	}
	img_progress_end(&pg);
	rc = 0;
out:
	if (newb)
		bdev_close(newb);
	bdev_close(top);
	return rc;
}
