/* minikvm-img check: run a format's consistency check (and repair) with
 * qemu-img's report, JSON fields and exit codes: 0 clean, 1 the check
 * itself failed, 2 corruptions, 3 leaks only, 63 no check support. */
#include <jansson.h>
#include "tools/img/img.h"

static int run_check(struct bdev *bs, enum block_repair fix, struct block_check_result *r,
		     FILE *report)
{
	int ret;

	memset(r, 0, sizeof(*r));
	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->check(bs, fix, r, report);
	pthread_mutex_unlock(&bs->lock);
	return ret;
}

static void print_human(const char *file, const struct block_check_result *r, int ret)
{
	if (ret < 0 || r->check_errors) {
		printf("%llu internal errors occurred during the check.\n",
		       (unsigned long long)(r->check_errors ? r->check_errors : 1));
		if (ret < 0)
			img_err("check of '%s' failed: %s", file, strerror(-ret));
	}
	if (!r->corruptions && !r->leaks && !r->check_errors && ret >= 0)
		printf("No errors were found on the image.\n");
	if (r->corruptions)
		printf("\n%llu errors were found on the image.\n"
		       "Data may be corrupted, or further writes to the image may corrupt it.\n",
		       (unsigned long long)r->corruptions);
	if (r->leaks)
		printf("\n%llu leaked clusters were found on the image.\n"
		       "This means waste of disk space, but no harm to data.\n",
		       (unsigned long long)r->leaks);
	if (r->total_clusters)
		printf("%llu/%llu = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed "
		       "clusters\n", (unsigned long long)r->allocated_clusters,
		       (unsigned long long)r->total_clusters,
		       r->allocated_clusters * 100.0 / r->total_clusters,
		       r->allocated_clusters ?
		       r->fragmented_clusters * 100.0 / r->allocated_clusters : 0.0,
		       r->allocated_clusters ?
		       r->compressed_clusters * 100.0 / r->allocated_clusters : 0.0);
	if (r->image_end_offset)
		printf("Image end offset: %llu\n", (unsigned long long)r->image_end_offset);
}

static void print_json(struct bdev *bs, const struct block_check_result *r)
{
	json_t *o = json_object();
	char *s;

#define SET_IF(key, v) do { if (v) json_object_set_new(o, key, json_integer((json_int_t)(v))); } \
	while (0)
	SET_IF("image-end-offset", r->image_end_offset);
	SET_IF("total-clusters", r->total_clusters);
	json_object_set_new(o, "check-errors", json_integer((json_int_t)r->check_errors));
	if (r->total_clusters)
		json_object_set_new(o, "allocated-clusters",
				    json_integer((json_int_t)r->allocated_clusters));
	json_object_set_new(o, "filename", json_string(bdev_filename(bs)));
	json_object_set_new(o, "format", json_string(bdev_format_name(bs)));
	SET_IF("corruptions", r->corruptions);
	SET_IF("leaks", r->leaks);
	SET_IF("corruptions-fixed", r->corruptions_fixed);
	SET_IF("leaks-fixed", r->leaks_fixed);
	SET_IF("fragmented-clusters", r->fragmented_clusters);
	SET_IF("compressed-clusters", r->compressed_clusters);
#undef SET_IF
	s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

int cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'O' },
		{ "repair", required_argument, NULL, 'r' },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *path;
	enum block_repair fix = BLOCK_REPAIR_NONE;
	enum block_cache_mode cache = BLOCK_CACHE_WRITEBACK;
	struct block_check_result r, fixed = { 0 };
	bool quiet = false;
	int json = 0, c, ret;
	struct bdev *bs;

	while ((c = getopt_long(argc, argv, ":f:r:T:qhU", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'U': break;
		case 'T':
			if (block_parse_cache_mode(optarg, &cache)) {
				img_err("check: invalid cache mode '%s'", optarg);
				return 1;
			}
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = BLOCK_REPAIR_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = BLOCK_REPAIR_ALL;
			else {
				img_err("check: unknown option value for -r (expecting 'leaks' or "
					"'all'): %s", optarg);
				return 1;
			}
			break;
		case 'O':
			json = img_parse_output(optarg);
			if (json < 0)
				return 1;
			break;
		default:
			return img_bad_option("check", argc, argv);
		}
	}
	path = img_single_image_arg("check", argc - optind, argv + optind, fmt);
	if (!path)
		return 1;
	/* for_check: a corrupt or dirty image opens read-write without the
	 * automatic repair, so -r can do the repair itself and report it. */
	struct block_open_opts o = {
		.format = fmt, .read_only = fix == BLOCK_REPAIR_NONE, .cache = cache,
		.no_backing = true, .for_check = true,
	};
	bs = img_open_opts(path, &o);
	if (!bs)
		return 1;
	if (!bs->fmt->check) {
		img_err("check: format '%s' does not support checks", bdev_format_name(bs));
		bdev_close(bs);
		return 63;
	}
	ret = run_check(bs, fix, &r, quiet ? NULL : stderr);
	if (fix != BLOCK_REPAIR_NONE && ret >= 0 && (r.corruptions_fixed || r.leaks_fixed)) {
		fixed = r;
		if (!quiet && !json)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %llu leaked clusters\n    %llu corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       (unsigned long long)fixed.leaks_fixed,
			       (unsigned long long)fixed.corruptions_fixed);
		ret = run_check(bs, BLOCK_REPAIR_NONE, &r, NULL);
		r.leaks_fixed = fixed.leaks_fixed;
		r.corruptions_fixed = fixed.corruptions_fixed;
	}
	if (json)
		print_json(bs, &r);
	else if (!quiet)
		print_human(path, &r, ret);
	bdev_close(bs);
	if (ret < 0 || r.check_errors)
		return 1;
	if (r.corruptions)
		return 2;
	if (r.leaks)
		return 3;
	return 0;
}
