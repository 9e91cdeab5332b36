/* minikvm-img measure: how large a new image would be, as qemu-img
 * computes it: the size required for the data the input has allocated
 * and the size of a fully allocated image (raw and qcow2 targets). */
#include <jansson.h>
#include "tools/img/img.h"

#define DIV_UP(a, b) (((a) + (b) - 1) / (b))
#define ROUND_UP(a, b) (DIV_UP(a, b) * (b))

/* Refcount table and blocks covering `clusters` clusters plus themselves:
 * iterate to the fixed point. */
static uint64_t refcount_metadata_size(uint64_t clusters, uint64_t cluster_size,
				       unsigned refcount_bits)
{
	uint64_t per_table_cluster = cluster_size / 8;
	uint64_t per_block = cluster_size * 8 / refcount_bits;
	uint64_t table = 0, blocks = 0, n = 0, last;

	do {
		last = n;
		blocks = DIV_UP(clusters + table + blocks, per_block);
		table = DIV_UP(blocks, per_table_cluster);
		n = clusters + blocks + table;
	} while (n != last);
	return (blocks + table) * cluster_size;
}

/* Size of a qcow2 image with every cluster of total_size allocated. */
static uint64_t qcow2_full_size(uint64_t total_size, uint64_t cluster_size,
				unsigned refcount_bits, bool extended_l2)
{
	uint64_t l2e = extended_l2 ? 16 : 8;
	uint64_t aligned = ROUND_UP(total_size, cluster_size);
	uint64_t meta = cluster_size;				/* header */
	uint64_t nl2e = ROUND_UP(aligned / cluster_size, cluster_size / l2e);
	uint64_t nl1e;

	meta += nl2e * l2e;					/* L2 tables */
	nl1e = ROUND_UP(nl2e * l2e / cluster_size, cluster_size / 8);
	meta += nl1e * 8;					/* L1 table */
	meta += refcount_metadata_size((meta + aligned) / cluster_size, cluster_size,
				       refcount_bits);
	return meta + aligned;
}

/* Bytes of the input that hold data, rounded out to target clusters. */
static int allocated_bytes(struct bdev *bs, uint64_t cluster_size, uint64_t *out)
{
	uint64_t size = bdev_size(bs), off = 0, req = 0;

	while (off < size) {
		struct chain_status cs;
		int64_t n = img_chain_status(bs, off, size - off, &cs);

		if (n <= 0)
			return n ? (int)n : -EIO;
		if ((cs.status & BLOCK_STATUS_DATA) && !(cs.status & BLOCK_STATUS_ZERO)) {
			uint64_t pn = ROUND_UP(off + (uint64_t)n, cluster_size) - off;

			req += off % cluster_size + pn;
			n = (int64_t)pn;
		}
		off += (uint64_t)n;
	}
	*out = req;
	return 0;
}

enum { OPT_OUTPUT = IMG_OPT_FIRST_FREE, OPT_SIZE };

/* The argument checks qemu-img measure makes, in its order and words. */
static int check_measure_args(int nargs, bool have_size, bool need_file)
{
	if (nargs > 1)
		img_err("At most one filename argument is allowed.");
	else if (!nargs && need_file)
		img_err("--image-opts, -f, and -l require a filename argument.");
	else if (nargs && have_size)
		img_err("--size N cannot be used together with a filename.");
	else if (!nargs && !have_size)
		img_err("Either --size N or one filename must be specified.");
	else
		return 0;
	return -1;
}

int cmd_measure(int argc, char **argv)
{
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_IMAGE_OPTS, IMG_LONGOPT_OBJECT,
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	struct block_create_opts co = { 0 };
	const char *fmt = NULL, *out_fmt = "raw";
	char *options = NULL;
	uint64_t size = 0, required, full, vsize;
	bool have_size = false, bitmaps = false;
	struct bdev *bs = NULL;
	int json = 0, c;

	/* qemu-img measure lets getopt report a bad option itself, then prints
	 * the help and exits 0 */
	opterr = 1;
	while ((c = getopt_long(argc, argv, "hf:O:o:l:U", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'U': break;
		case 'l':
			img_err("measure: -l (snapshots) is not supported");
			return 1;
		case 'o':
			options = img_add_option_list(options, optarg);
			if (!options)
				return 1;
			break;
		case OPT_SIZE:
			if (img_cvtnum("image size", optarg, 0, INT64_MAX, &size))
				return 1;
			have_size = true;
			break;
		case OPT_OUTPUT:
			json = img_parse_output(optarg);
			if (json < 0)
				return 1;
			break;
		case IMG_OPT_OBJECT:
		case IMG_OPT_IMAGE_OPTS:
			return img_unsupported_option(c);
		default:	/* 'h', '?' */
			return img_cmd_help("measure");
		}
	}
	if (check_measure_args(argc - optind, have_size, fmt != NULL))
		return 1;
	if (!have_size) {	/* an unknown -f: the open says so, as qemu-img */
		bs = img_open(argv[optind], fmt, true, BLOCK_CACHE_WRITEBACK, false);
		if (!bs)
			return 1;
		size = bdev_size(bs);
	}
	if (!block_format_find(out_fmt) ||
	    (strcmp(out_fmt, "raw") && strcmp(out_fmt, "qcow2"))) {
		if (!block_format_find(out_fmt))
			img_err("Unknown file format '%s'", out_fmt);
		else
			img_err("Block driver '%s' does not support size measurement", out_fmt);
		bdev_close(bs);
		return 1;
	}
	if (options && img_parse_create_opts_for(options, out_fmt, "", &co)) {
		img_err("Invalid options for file format '%s'", out_fmt);
		bdev_close(bs);
		return 1;
	}
	if (!strcmp(out_fmt, "raw")) {
		required = full = bs ? size : ROUND_UP(size, 512);
	} else {
		uint64_t cl = co.cluster_size ? co.cluster_size : 65536;
		unsigned rb = co.refcount_bits ? co.refcount_bits : 16;

		vsize = ROUND_UP(size, cl);
		required = 0;
		if (bs && co.backing_file) {
			required = vsize;
		} else if (bs) {
			int ret = allocated_bytes(bs, cl, &required);

			if (ret < 0) {
				img_err("measure: reading the allocation of '%s' failed: %s",
					argv[optind], strerror(-ret));
				bdev_close(bs);
				return 1;
			}
		}
		if (co.prealloc == PREALLOC_FULL || co.prealloc == PREALLOC_FALLOC)
			required = vsize;
		full = qcow2_full_size(vsize, cl, rb, co.extended_l2);
		required = full - vsize + required;
		bitmaps = bs && !strcmp(bdev_format_name(bs), "qcow2");
	}
	if (bs)
		bdev_close(bs);
	if (json) {
		json_t *o = json_object();
		char *s;

		json_object_set_new(o, "required", json_integer((json_int_t)required));
		json_object_set_new(o, "fully-allocated", json_integer((json_int_t)full));
		if (bitmaps)
			json_object_set_new(o, "bitmaps", json_integer(0));
		s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("required size: %llu\nfully allocated size: %llu\n",
		       (unsigned long long)required, (unsigned long long)full);
		if (bitmaps)
			printf("bitmaps size: 0\n");
	}
	return 0;
}
