/* minikvm-img map: the image's allocation through its backing chain, in
 * qemu-img's human table (data extents with host offset and the file the
 * data is in: a vmdk's extent file, not its descriptor) or its JSON line
 * format (every extent with depth/present/zero/data/offset). */
#include "tools/img/img.h"

struct map_entry {
	uint64_t start, length;
	unsigned depth;
	bool present, zero, data, has_offset;
	uint64_t offset;
	const char *file;
};

/* The file the data at off comes from in layer bs: the image file, or
 * for formats with data in other files (vmdk extents) that file. */
static const char *data_filename(struct bdev *bs, uint64_t off)
{
	const char *name;

	if (!bs->fmt->data_filename)
		return bdev_filename(bs);
	pthread_mutex_lock(&bs->lock);
	name = bs->fmt->data_filename(bs, off);
	pthread_mutex_unlock(&bs->lock);
	return name ? name : bdev_filename(bs);
}

static bool can_merge(const struct map_entry *a, const struct map_entry *b)
{
	if (a->depth != b->depth || a->present != b->present || a->zero != b->zero ||
	    a->data != b->data || a->has_offset != b->has_offset || a->file != b->file)
		return false;
	return !a->has_offset || a->offset + a->length == b->offset;
}

/* One merged extent; false (after the error) when the human table
 * cannot show it: data without a host offset, as qemu-img refuses. */
static bool print_entry(const struct map_entry *e, bool json, bool *first)
{
	if (json) {
		printf("%s{ \"start\": %llu, \"length\": %llu, \"depth\": %u, \"present\": %s, "
		       "\"zero\": %s, \"data\": %s", *first ? "" : ",\n",
		       (unsigned long long)e->start, (unsigned long long)e->length, e->depth,
		       e->present ? "true" : "false", e->zero ? "true" : "false",
		       e->data ? "true" : "false");
		if (e->has_offset)
			printf(", \"offset\": %llu", (unsigned long long)e->offset);
		printf("}");
		*first = false;
		return true;
	}
	if (e->data && !e->has_offset) {
		img_err("File contains external, encrypted or compressed clusters.");
		return false;
	}
	/* as qemu-img: data that reads as zeroes (over a hole of the file) is
	 * not listed */
	if (e->data && !e->zero)
		printf("%#-16llx%#-16llx%#-16llx%s\n", (unsigned long long)e->start,
		       (unsigned long long)e->length, (unsigned long long)e->offset, e->file);
	return true;
}

int cmd_map(int argc, char **argv)
{
	enum { OPT_OUTPUT = IMG_OPT_FIRST_FREE };
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "start-offset", required_argument, NULL, 's' },
		{ "max-length", required_argument, NULL, 'l' },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *path;
	uint64_t start = 0, max_len = UINT64_MAX, end, off;
	struct map_entry cur = { 0 };
	bool have = false, first = true;
	int json = 0, c, rc = 0;
	struct bdev *bs;

	while ((c = getopt_long(argc, argv, ":f:s:l:hU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("map");
		case 'f': fmt = optarg; break;
		case 'U': break;
		case 's':
			if (img_cvtnum("start offset", optarg, 0, INT64_MAX, &start))
				return 1;
			break;
		case 'l':
			if (img_cvtnum("max length", optarg, 0, INT64_MAX, &max_len))
				return 1;
			break;
		case OPT_OUTPUT:
			json = img_parse_output(optarg);
			if (json < 0)
				return 1;
			break;
		case IMG_OPT_OBJECT:
		case IMG_OPT_IMAGE_OPTS:
			return img_unsupported_option(c);
		default:
			return img_bad_option(c, argv);
		}
	}
	path = img_single_image_arg(argc - optind, argv + optind, fmt);
	if (!path)
		return 1;
	bs = img_open(path, fmt, true, BLOCK_CACHE_WRITEBACK, false);
	if (!bs)
		return 1;
	end = bdev_size(bs);
	if (max_len < end && start + max_len < end)
		end = start + max_len;
	if (json)
		printf("[");
	else
		printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
	for (off = start; off < end;) {
		struct chain_status cs;
		struct map_entry e;
		int64_t n = img_chain_status(bs, off, end - off, &cs);

		if (n <= 0) {
			img_err("map: could not read the allocation of '%s' at offset %llu: %s",
				path, (unsigned long long)off, strerror(n ? (int)-n : EIO));
			rc = 1;
			break;
		}
		e = (struct map_entry){
			.start = off, .length = (uint64_t)n, .depth = cs.depth,
			.present = cs.layer != NULL,
			.zero = (cs.status & BLOCK_STATUS_ZERO) != 0,
			.data = (cs.status & BLOCK_STATUS_DATA) != 0,
			.has_offset = cs.offset_valid, .offset = cs.host_offset,
			.file = cs.layer ? data_filename(cs.layer, off) : "",
		};
		if (have && can_merge(&cur, &e)) {
			cur.length += e.length;
		} else {
			if (have && !print_entry(&cur, json, &first)) {
				have = false;
				rc = 1;
				break;
			}
			cur = e;
			have = true;
		}
		off += (uint64_t)n;
	}
	if (have && !print_entry(&cur, json, &first))
		rc = 1;
	if (json)
		printf("]\n");
	bdev_close(bs);
	return rc;
}
