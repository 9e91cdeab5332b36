/* minikvm-img compare: do two images read the same? Exit 0 identical,
 * 1 different (or a usage error, as qemu-img), 2 error opening, 3 error
 * checking allocation, 4 error reading; qemu-img's messages, 512-byte
 * mismatch offsets, and -s (strict) also requiring equal sizes and
 * allocation. Unknown formats are reported by img_open like any open
 * error. */
#include <stdarg.h>
#include "tools/img/img.h"

#define CMP_CHUNK (1u << 20)

static int64_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i += 512) {
		size_t n = len - i < 512 ? len - i : 512;

		if (memcmp(a + i, b + i, n))
			return (int64_t)i;
	}
	return -1;
}

static int64_t first_nonzero(const uint8_t *a, size_t len)
{
	for (size_t i = 0; i < len; i += 512)
		if (!img_buf_is_zero(a + i, len - i < 512 ? len - i : 512))
			return (int64_t)i;
	return -1;
}

static int read_err(const char *file, uint64_t off, int ret)
{
	img_err("Error while reading offset %llu of %s: %s", (unsigned long long)off, file,
		strerror(-ret));
	return 4;
}

static int status_err(const char *file)
{
	img_err("Sector allocation test failed for %s", file);
	return 3;
}

/* The tail of the longer image must read as zeroes. */
static int check_tail(struct bdev *bs, uint64_t off, uint8_t *buf)
{
	uint64_t end = bdev_size(bs);

	while (off < end) {
		struct chain_status cs;
		int64_t n = img_chain_status(bs, off, end - off, &cs), d;
		int ret;

		if (n <= 0)
			return status_err(bdev_filename(bs));
		if (!(cs.status & BLOCK_STATUS_DATA)) {
			off += (uint64_t)n;
			continue;
		}
		if (n > CMP_CHUNK)
			n = CMP_CHUNK;
		ret = bdev_pread(bs, off, buf, (size_t)n);
		if (ret < 0)
			return read_err(bdev_filename(bs), off, ret);
		d = first_nonzero(buf, (size_t)n);
		if (d >= 0) {
			printf("Content mismatch at offset %llu!\n",
			       (unsigned long long)(off + (uint64_t)d));
			return 1;
		}
		off += (uint64_t)n;
	}
	return 0;
}

/* Strict mode: QEMU compares the whole block status: allocation, data,
 * zero and whether a host offset is known. */
static bool same_status(const struct chain_status *a, const struct chain_status *b)
{
	const unsigned kind = BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO;

	return (a->layer != NULL) == (b->layer != NULL) &&
	       (a->status & kind) == (b->status & kind) && a->offset_valid == b->offset_valid;
}

static int compare_images(struct bdev *b1, struct bdev *b2, bool strict, bool quiet,
			  struct img_progress *pg)
{
	uint64_t s1 = bdev_size(b1), s2 = bdev_size(b2), min = s1 < s2 ? s1 : s2, off = 0;
	uint8_t *buf1 = malloc(CMP_CHUNK), *buf2 = malloc(CMP_CHUNK);
	int rc = 0;

	if (!buf1 || !buf2) {
		img_err("compare: out of memory");
		rc = 2;
		goto out;
	}
	if (s1 != s2 && strict) {
		printf("Strict mode: Image size mismatch!\n");
		rc = 1;
		goto out;
	}
	while (off < min) {
		struct chain_status c1, c2;
		int64_t n1, n2, d;
		uint64_t len;
		int ret;

		n1 = img_chain_status(b1, off, min - off, &c1);
		if (n1 <= 0) {
			rc = status_err(bdev_filename(b1));
			goto out;
		}
		n2 = img_chain_status(b2, off, (uint64_t)n1, &c2);
		if (n2 <= 0) {
			rc = status_err(bdev_filename(b2));
			goto out;
		}
		len = (uint64_t)n2 < CMP_CHUNK ? (uint64_t)n2 : CMP_CHUNK;
		if (strict && !same_status(&c1, &c2)) {
			printf("Strict mode: Offset %llu block status mismatch!\n",
			       (unsigned long long)off);
			rc = 1;
			goto out;
		}
		if ((c1.status & BLOCK_STATUS_DATA) || (c2.status & BLOCK_STATUS_DATA)) {
			ret = bdev_pread(b1, off, buf1, (size_t)len);
			if (ret < 0) {
				rc = read_err(bdev_filename(b1), off, ret);
				goto out;
			}
			ret = bdev_pread(b2, off, buf2, (size_t)len);
			if (ret < 0) {
				rc = read_err(bdev_filename(b2), off, ret);
				goto out;
			}
			d = first_diff(buf1, buf2, (size_t)len);
			if (d >= 0) {
				printf("Content mismatch at offset %llu!\n",
				       (unsigned long long)(off + (uint64_t)d));
				rc = 1;
				goto out;
			}
		}
		off += len;
		img_progress_update(pg, off, s1 > s2 ? s1 : s2);
	}
	if (s1 != s2) {		/* the common part matched: warn, then check the rest */
		if (!quiet)
			printf("Warning: Image size mismatch!\n");
		rc = check_tail(s1 > s2 ? b1 : b2, min, buf1);
	}
	if (!rc && !quiet)
		printf("Images are identical.\n");
out:
	free(buf1);
	free(buf2);
	return rc;
}

int cmd_compare(int argc, char **argv)
{
	const char *fmt1 = NULL, *fmt2 = NULL;
	enum block_cache_mode cache = BLOCK_CACHE_WRITEBACK;
	struct img_progress pg = { 0 };
	bool strict = false, quiet = false;
	struct bdev *b1, *b2;
	int c, rc;

	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};

	while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("compare");
		case 'f': fmt1 = optarg; break;
		case 'F': fmt2 = optarg; break;
		case 'p': pg.on = true; break;
		case 'q': quiet = true; break;
		case 's': strict = true; break;
		case 'U': break;
		case 'T':
			if (block_parse_cache_mode(optarg, &cache)) {
				img_err("Invalid source cache option: %s", optarg);
				return 2;
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
	if (argc - optind != 2)
		return img_usage_error("Expecting two image file names");
	b1 = img_open(argv[optind], fmt1, true, cache, false);
	if (!b1)
		return 2;
	b2 = img_open(argv[optind + 1], fmt2, true, cache, false);
	if (!b2) {
		bdev_close(b1);
		return 2;
	}
	rc = compare_images(b1, b2, strict, quiet, &pg);
	if (pg.on && rc == 0)
		img_progress_end(&pg);
	bdev_close(b1);
	bdev_close(b2);
	return rc;
}
