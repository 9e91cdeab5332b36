/* minikvm-img check: run a format's consistency check (and repair) with
 * qemu-img's report, JSON fields (in its key order) and exit codes: 0
 * clean, 1 the check failed or hit internal errors (then only "Check
 * failed" on stderr, no report), 2 corruptions, 3 leaks only, 63 no check
 * support. */
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

/* qemu-img's report of a check that ran (dump_human_image_check). */
static void print_human(const struct block_check_result *r)
{
	if (!r->corruptions && !r->leaks && !r->check_errors)
		printf("No errors were found on the image.\n");
	if (r->corruptions)
		printf("\n%llu errors were found on the image.\n"
		       "Data may be corrupted, or further writes to the image may corrupt it.\n",
		       (unsigned long long)r->corruptions);
	if (r->leaks)
		printf("\n%llu leaked clusters were found on the image.\n"
		       "This means waste of disk space, but no harm to data.\n",
		       (unsigned long long)r->leaks);
	if (r->check_errors)
		printf("\n%llu internal errors have occurred during the check.\n",
		       (unsigned long long)r->check_errors);
	if (r->total_clusters && r->allocated_clusters)
		printf("%llu/%llu = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed "
		       "clusters\n", (unsigned long long)r->allocated_clusters,
		       (unsigned long long)r->total_clusters,
		       r->allocated_clusters * 100.0 / r->total_clusters,
		       r->fragmented_clusters * 100.0 / r->allocated_clusters,
		       r->compressed_clusters * 100.0 / r->allocated_clusters);
	if (r->image_end_offset)
		printf("Image end offset: %llu\n", (unsigned long long)r->image_end_offset);
}

/* qemu-img 7.2 prints ImageCheck from a QDict: keys in hash bucket order
 * (tdb_hash(key) % 512). Numbers but check-errors are left out when zero. */
static void print_json(struct bdev *bs, const struct block_check_result *r)
{
	const struct { const char *key; const uint64_t *num; const char *str; } fields[] = {
		{ "image-end-offset", &r->image_end_offset, NULL },
		{ "compressed-clusters", &r->compressed_clusters, NULL },
		{ "total-clusters", &r->total_clusters, NULL },
		{ "corruptions", &r->corruptions, NULL },
		{ "corruptions-fixed", &r->corruptions_fixed, NULL },
		{ "check-errors", &r->check_errors, NULL },
		{ "leaks", &r->leaks, NULL },
		{ "leaks-fixed", &r->leaks_fixed, NULL },
		{ "allocated-clusters", &r->allocated_clusters, NULL },
		{ "filename", NULL, bdev_filename(bs) },
		{ "format", NULL, bdev_format_name(bs) },
		{ "fragmented-clusters", &r->fragmented_clusters, NULL },
	};
	json_t *o = json_object();
	char *s;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (fields[i].str)
			json_object_set_new(o, fields[i].key, json_string(fields[i].str));
		else if (*fields[i].num || fields[i].num == &r->check_errors)
			json_object_set_new(o, fields[i].key,
					    json_integer((json_int_t)*fields[i].num));
	}
	s = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* As qemu-img: the report only when the check ran to its end (nothing on
 * stdout when it failed), then "Check failed" and exit 1 when it failed or
 * hit internal errors, else 2 for corruptions, 3 for leaks, 0 when clean. */
static int report_check(struct bdev *bs, const struct block_check_result *r, int ret,
			bool json, bool quiet)
{
	if (ret >= 0 && !quiet) {
		if (json)
			print_json(bs, r);
		else
			print_human(r);
	}
	if (ret < 0) {
		img_err("Check failed: %s", strerror(-ret));
		return 1;
	}
	if (r->check_errors) {
		img_err("Check failed");
		return 1;
	}
	if (r->corruptions)
		return 2;
	return r->leaks ? 3 : 0;
}

int cmd_check(int argc, char **argv)
{
	enum { OPT_OUTPUT = IMG_OPT_FIRST_FREE };
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, OPT_OUTPUT },
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

	while ((c = getopt_long(argc, argv, ":hf:r:T:qU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("check");
		case 'f': fmt = optarg; break;
		case 'q': quiet = true; break;
		case 'U': break;
		case 'T':
			if (block_parse_cache_mode(optarg, &cache)) {
				img_err("Invalid source cache option: %s", optarg);
				return 1;
			}
			break;
		case 'r':
			if (!strcmp(optarg, "leaks"))
				fix = BLOCK_REPAIR_LEAKS;
			else if (!strcmp(optarg, "all"))
				fix = BLOCK_REPAIR_ALL;
			else
				return img_usage_error("Unknown option value for -r (expecting "
						       "'leaks' or 'all'): %s", optarg);
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
	/* for_check: a corrupt or dirty image opens read-write without the
	 * automatic repair, so -r can do the repair itself and report it. The
	 * backing chain is opened too: qemu-img refuses to check an image
	 * whose backing file cannot be opened. */
	struct block_open_opts o = {
		.format = fmt, .read_only = fix == BLOCK_REPAIR_NONE, .cache = cache,
		.for_check = true,
	};
	bs = img_open_opts(path, &o);
	if (!bs)
		return 1;
	/* the format's messages go to stderr even with -q, as qemu-img's */
	ret = bs->fmt->check ? run_check(bs, fix, &r, stderr) : -ENOTSUP;
	if (ret == -ENOTSUP) {
		img_err("This image format does not support checks");
		bdev_close(bs);
		return 63;
	}
	if (ret >= 0 && (r.corruptions_fixed || r.leaks_fixed)) {
		fixed = r;
		if (!quiet && !json)
			printf("The following inconsistencies were found and repaired:\n\n"
			       "    %llu leaked clusters\n    %llu corruptions\n\n"
			       "Double checking the fixed image now...\n",
			       (unsigned long long)fixed.leaks_fixed,
			       (unsigned long long)fixed.corruptions_fixed);
		ret = run_check(bs, BLOCK_REPAIR_NONE, &r, stderr);
		r.leaks_fixed = fixed.leaks_fixed;
		r.corruptions_fixed = fixed.corruptions_fixed;
	}
	ret = report_check(bs, &r, ret, json, quiet);
	bdev_close(bs);
	return ret;
}
