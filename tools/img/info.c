/* minikvm-img info: describe an image (and optionally its backing chain)
 * in qemu-img's human layout or its JSON field names, in qemu-img 7.2's
 * key order, with actual-size counting every file of the image. */
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>
#include "tools/img/img.h"

/* Collect a format's key/value pairs into a JSON object. Keys become
 * qemu's JSON names ("lazy refcounts" -> "lazy-refcounts") and may be
 * paths into lists of values or objects, as qemu's nested info:
 * "bitmaps[0].flags[0]" is element 0 of the list "flags" in element 0 of
 * the list "bitmaps"; "name[]" declares a list that may stay empty.
 * Elements come in order: a path that skips an index is kept flat. */
static void json_name(char *k, size_t room, const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < len && key[i] && i < room - 1; i++)
		k[i] = key[i] == ' ' || key[i] == '_' ? '-' : key[i];
	k[i] = '\0';
}

/* One path segment "name", "name[N]" or "name[]" starting at *p. */
struct path_seg {
	char name[64];
	bool list, append;		/* [N] / [] */
	size_t index;
};

/* Parse the segment at *p and move past it (and its '.'); false when
 * malformed. */
static bool parse_seg(const char **p, struct path_seg *seg)
{
	const char *s = *p, *end = s + strcspn(s, ".["), *bracket;
	char *num_end;

	if (end == s)
		return false;
	json_name(seg->name, sizeof(seg->name), s, (size_t)(end - s));
	seg->list = seg->append = false;
	if (*end == '[') {
		bracket = strchr(end, ']');
		if (!bracket)
			return false;
		seg->list = true;
		seg->append = bracket == end + 1;
		if (!seg->append) {
			seg->index = strtoul(end + 1, &num_end, 10);
			if (num_end != bracket)
				return false;
		}
		end = bracket + 1;
	}
	if (*end == '.')
		end++;
	else if (*end)
		return false;
	*p = end;
	return true;
}

/* Place v at seg under parent when seg is the last segment (*used then
 * says whether it went in), else return the object the path goes on into
 * (created on the way) or NULL when it does not fit what is there. */
static json_t *path_step(json_t *parent, const struct path_seg *seg, bool last, json_t *v,
			 bool *used)
{
	json_t *cur = json_object_get(parent, seg->name), *child;
	size_t size;

	if (!seg->list) {
		if (last) {
			*used = json_object_set(parent, seg->name, v) == 0;
			return NULL;
		}
		if (!cur) {
			cur = json_object();
			json_object_set_new(parent, seg->name, cur);
		}
		return json_is_object(cur) ? cur : NULL;
	}
	if (!cur) {
		cur = json_array();
		json_object_set_new(parent, seg->name, cur);
	}
	if (!json_is_array(cur))
		return NULL;
	size = json_array_size(cur);
	if (seg->append || seg->index > size) {
		*used = seg->append && last;	/* a declaration: the list exists now */
		return NULL;
	}
	if (last) {
		*used = (seg->index < size ? json_array_set(cur, seg->index, v)
					   : json_array_append(cur, v)) == 0;
		return NULL;
	}
	if (seg->index < size) {
		child = json_array_get(cur, seg->index);
		return json_is_object(child) ? child : NULL;
	}
	child = json_object();
	json_array_append_new(cur, child);
	return child;
}

static void set_key(json_t *obj, const char *key, json_t *v)
{
	const char *p = key;
	struct path_seg seg;
	json_t *cur = obj;
	bool used = false;
	char k[64];

	while (cur && !used && *p) {
		if (!parse_seg(&p, &seg))
			break;
		cur = path_step(cur, &seg, !*p, v, &used);
	}
	if (!used) {
		json_name(k, sizeof(k), key, strlen(key));
		json_object_set(obj, k, v);
	}
	json_decref(v);
}

static void w_str(void *opaque, const char *key, const char *value)
{
	set_key(opaque, key, json_string(value));
}

static void w_num(void *opaque, const char *key, uint64_t value)
{
	set_key(opaque, key, json_integer((json_int_t)value));
}

static void w_flag(void *opaque, const char *key, bool value)
{
	set_key(opaque, key, json_boolean(value));
}

static char *full_backing_name(const char *image, const char *backing)
{
	const char *slash = strrchr(image, '/');
	char *out = NULL;

	if (backing[0] == '/' || !slash)
		return strdup(backing);
	if (asprintf(&out, "%.*s%s", (int)(slash - image + 1), image, backing) < 0)
		return NULL;
	return out;
}

static json_t *snapshots_json(struct bdev *bs)
{
	struct block_snapshot_info *sn = NULL;
	unsigned n = 0;
	json_t *arr;
	int ret;

	if (!bs->fmt->snapshot_list)
		return NULL;
	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->snapshot_list(bs, &sn, &n);
	pthread_mutex_unlock(&bs->lock);
	if (ret < 0 || n == 0) {
		free(sn);
		return NULL;
	}
	arr = json_array();
	for (unsigned i = 0; i < n; i++) {
		json_t *o = json_object();

		if (sn[i].icount != UINT64_MAX)		/* qemu-img omits "no icount" */
			json_object_set_new(o, "icount", json_integer((json_int_t)sn[i].icount));
		json_object_set_new(o, "vm-clock-nsec",
				    json_integer((json_int_t)(sn[i].vm_clock_nsec % 1000000000)));
		json_object_set_new(o, "name", json_string(sn[i].name));
		json_object_set_new(o, "date-sec", json_integer((json_int_t)sn[i].date_sec));
		json_object_set_new(o, "date-nsec", json_integer((json_int_t)sn[i].date_nsec));
		json_object_set_new(o, "vm-clock-sec",
				    json_integer((json_int_t)(sn[i].vm_clock_nsec / 1000000000)));
		json_object_set_new(o, "id", json_string(sn[i].id));
		json_object_set_new(o, "vm-state-size",
				    json_integer((json_int_t)sn[i].vm_state_size));
		json_array_append_new(arr, o);
	}
	free(sn);
	return arr;
}

/* qemu-img 7.2 prints ImageInfo from a QDict, whose keys come out in hash
 * bucket order (and, within a bucket, last inserted first): this is that
 * order for every top-level key qemu-img can print. */
static const char *const qemu_key_order[] = {
	"backing-image", "compressed", "backing-filename-format", "snapshots",
	"virtual-size", "filename", "cluster-size", "format", "actual-size",
	"format-specific", "full-backing-filename", "encrypted", "backing-filename",
	"dirty-flag",
};

/* o's keys rearranged into qemu_key_order (any other key last). */
static json_t *in_qemu_key_order(json_t *o)
{
	json_t *out = json_object(), *v;
	const char *key;

	for (size_t i = 0; i < sizeof(qemu_key_order) / sizeof(qemu_key_order[0]); i++) {
		v = json_object_get(o, qemu_key_order[i]);
		if (v)
			json_object_set(out, qemu_key_order[i], v);
	}
	json_object_foreach(o, key, v) {
		if (!json_object_get(out, key))
			json_object_set(out, key, v);
	}
	json_decref(o);
	return out;
}

static int64_t image_allocated_size(struct bdev *bs, const char *file)
{
	struct stat st;
	int64_t ret;

	if (bs->fmt->allocated_size) {
		pthread_mutex_lock(&bs->lock);
		ret = bs->fmt->allocated_size(bs);
		pthread_mutex_unlock(&bs->lock);
		return ret;
	}
	if (stat(file, &st) < 0)
		return -errno;
	return (int64_t)st.st_blocks * 512;
}

/* Everything `info` knows about one image, as qemu's ImageInfo. */
json_t *img_info_json(struct bdev *bs);
json_t *img_info_json(struct bdev *bs)
{
	json_t *o = json_object(), *snaps, *data;
	const char *file = bdev_filename(bs);
	uint32_t cs = img_cluster_size(bs);
	int64_t allocated = image_allocated_size(bs, file);

	json_object_set_new(o, "virtual-size", json_integer((json_int_t)bdev_size(bs)));
	json_object_set_new(o, "filename", json_string(file));
	if (cs)
		json_object_set_new(o, "cluster-size", json_integer(cs));
	json_object_set_new(o, "format", json_string(bdev_format_name(bs)));
	if (allocated >= 0)
		json_object_set_new(o, "actual-size", json_integer((json_int_t)allocated));
	json_object_set_new(o, "dirty-flag", json_false());
	if (bs->backing_filename) {
		char *full = full_backing_name(file, bs->backing_filename);

		json_object_set_new(o, "backing-filename", json_string(bs->backing_filename));
		if (full)
			json_object_set_new(o, "full-backing-filename", json_string(full));
		free(full);
		if (bs->backing_format)
			json_object_set_new(o, "backing-filename-format",
					    json_string(bs->backing_format));
	}
	snaps = snapshots_json(bs);
	if (snaps)
		json_object_set_new(o, "snapshots", snaps);
	if (bs->fmt->info) {
		struct block_info_writer w = { w_str, w_num, w_flag, NULL };
		json_t *dirty;

		data = json_object();
		w.opaque = data;
		pthread_mutex_lock(&bs->lock);
		bs->fmt->info(bs, &w);
		pthread_mutex_unlock(&bs->lock);
		/* a format may report the dirty flag among its own keys */
		dirty = json_object_get(data, "dirty-flag");
		if (dirty) {
			json_object_set(o, "dirty-flag", dirty);
			json_object_del(data, "dirty-flag");
		}
		if (json_object_size(data)) {
			json_t *fs = json_object();

			json_object_set_new(fs, "type", json_string(bdev_format_name(bs)));
			json_object_set_new(fs, "data", data);
			json_object_set_new(o, "format-specific", fs);
		} else {
			json_decref(data);
		}
	}
	return in_qemu_key_order(o);
}

static void print_value(const json_t *v)
{
	if (json_is_string(v))
		printf("%s", json_string_value(v));
	else if (json_is_integer(v))
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_boolean(v))
		printf("%s", json_is_true(v) ? "true" : "false");
}

static void print_fields(const json_t *obj, int indent);

/* After "key:" or "[i]:": a scalar on the same line, a list or an object
 * on the following lines, four columns further in (as qemu-img). */
static void print_nested(const json_t *v, int indent)
{
	size_t i;
	json_t *e;

	if (json_is_object(v)) {
		printf("\n");
		print_fields(v, indent + 4);
	} else if (json_is_array(v)) {
		printf("\n");
		json_array_foreach(v, i, e) {
			printf("%*s[%zu]:", indent + 4, "", i);
			print_nested(e, indent + 4);
		}
	} else {
		printf(" ");
		print_value(v);
		printf("\n");
	}
}

/* Format-specific fields, JSON names shown with spaces. */
static void print_fields(const json_t *obj, int indent)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		printf("%*s", indent, "");
		for (const char *k = key; *k; k++)
			putchar(*k == '-' ? ' ' : *k);
		printf(":");
		print_nested(v, indent);
	}
}

void img_snapshot_header(void);
void img_snapshot_header(void)
{
	printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK",
	       "ICOUNT");
}

void img_snapshot_line(const char *id, const char *name, uint64_t vm_size, uint64_t date_sec,
		       uint64_t clock_nsec, uint64_t icount);
void img_snapshot_line(const char *id, const char *name, uint64_t vm_size, uint64_t date_sec,
		       uint64_t clock_nsec, uint64_t icount)
{
	char size[32], date[32], clock[32], icount_s[24];
	time_t t = (time_t)date_sec;
	uint64_t secs = clock_nsec / 1000000000;
	struct tm tm;

	img_human_size(vm_size, size, sizeof(size));
	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(clock, sizeof(clock), "%02llu:%02llu:%02llu.%03llu",
		 (unsigned long long)(secs / 3600), (unsigned long long)(secs / 60 % 60),
		 (unsigned long long)(secs % 60),
		 (unsigned long long)(clock_nsec / 1000000 % 1000));
	/* as qemu-img: no icount recorded (-1) prints nothing */
	if (icount == UINT64_MAX)
		icount_s[0] = 0;
	else
		snprintf(icount_s, sizeof(icount_s), "%llu", (unsigned long long)icount);
	printf("%-9s %-16s %8s%20s%13s%11s\n", id, name, size, date, clock, icount_s);
}

static void print_human(const json_t *o)
{
	json_t *v, *fs, *snaps;
	char hs[32];

	printf("image: %s\n", json_string_value(json_object_get(o, "filename")));
	printf("file format: %s\n", json_string_value(json_object_get(o, "format")));
	img_human_size((uint64_t)json_integer_value(json_object_get(o, "virtual-size")), hs,
		       sizeof(hs));
	printf("virtual size: %s (%" JSON_INTEGER_FORMAT " bytes)\n", hs,
	       json_integer_value(json_object_get(o, "virtual-size")));
	v = json_object_get(o, "actual-size");
	if (v) {
		img_human_size((uint64_t)json_integer_value(v), hs, sizeof(hs));
		printf("disk size: %s\n", hs);
	} else {
		printf("disk size: unavailable\n");
	}
	v = json_object_get(o, "cluster-size");
	if (v)
		printf("cluster_size: %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
	v = json_object_get(o, "backing-filename");
	if (v) {
		const char *b = json_string_value(v);
		json_t *full = json_object_get(o, "full-backing-filename");

		printf("backing file: %s", b);
		if (full && strcmp(json_string_value(full), b))
			printf(" (actual path: %s)", json_string_value(full));
		printf("\n");
		v = json_object_get(o, "backing-filename-format");
		if (v)
			printf("backing file format: %s\n", json_string_value(v));
	}
	if (json_is_true(json_object_get(o, "dirty-flag")))
		printf("cleanly shut down: no\n");
	snaps = json_object_get(o, "snapshots");
	if (snaps && json_array_size(snaps)) {
		size_t i;

		printf("Snapshot list:\n");
		img_snapshot_header();
		json_array_foreach(snaps, i, v) {
			uint64_t clk = (uint64_t)json_integer_value(json_object_get(v, "vm-clock-sec"))
				       * 1000000000ULL +
				       (uint64_t)json_integer_value(json_object_get(v, "vm-clock-nsec"));
			json_t *icount = json_object_get(v, "icount");	/* absent: none */

			img_snapshot_line(json_string_value(json_object_get(v, "id")),
					  json_string_value(json_object_get(v, "name")),
					  (uint64_t)json_integer_value(json_object_get(v, "vm-state-size")),
					  (uint64_t)json_integer_value(json_object_get(v, "date-sec")),
					  clk,
					  icount ? (uint64_t)json_integer_value(icount) :
						   UINT64_MAX);
		}
	}
	fs = json_object_get(json_object_get(o, "format-specific"), "data");
	if (fs) {
		printf("Format specific information:\n");
		print_fields(fs, 4);
	}
}

/* Print jansson's JSON_INDENT(4) text s (and a newline) as qemu's pretty
 * printer writes it: an empty list or object opens on its line and closes
 * on the next one, at that line's indentation ("[" newline "]"), where
 * jansson writes "[]". String contents are copied untouched. */
static void print_qemu_pretty(const char *s)
{
	bool in_string = false;
	int indent = 0;

	for (const char *p = s; *p; p++) {
		if (in_string) {
			if (*p == '\\' && p[1])
				putchar(*p++);
			else if (*p == '"')
				in_string = false;
		} else if (*p == '"') {
			in_string = true;
		} else if (*p == '\n') {
			indent = (int)strspn(p + 1, " ");
		} else if ((*p == '[' && p[1] == ']') || (*p == '{' && p[1] == '}')) {
			printf("%c\n%*s", *p, indent, "");
			continue;
		}
		putchar(*p);
	}
	putchar('\n');
}

int cmd_info(int argc, char **argv)
{
	enum { OPT_OUTPUT = IMG_OPT_FIRST_FREE, OPT_BACKING_CHAIN };
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "format", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "backing-chain", no_argument, NULL, OPT_BACKING_CHAIN },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fmt = NULL, *path;
	bool chain = false;
	int json = 0, c;
	struct bdev *bs, *cur;
	json_t *all;

	while ((c = getopt_long(argc, argv, ":f:hU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("info");
		case 'f': fmt = optarg; break;
		case 'U': break;
		case OPT_BACKING_CHAIN: chain = true; break;
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
	bs = img_open(path, fmt, true, BLOCK_CACHE_WRITEBACK, !chain);
	if (!bs)
		return 1;
	all = json_array();
	for (cur = bs; cur; cur = chain ? bdev_backing(cur) : NULL)
		json_array_append_new(all, img_info_json(cur));
	if (json) {
		json_t *out = chain ? all : json_array_get(all, 0);
		char *s = json_dumps(out, JSON_INDENT(4) | JSON_PRESERVE_ORDER);

		print_qemu_pretty(s);
		free(s);
	} else {
		size_t i;
		json_t *o;

		json_array_foreach(all, i, o) {
			if (i)
				printf("\n");
			print_human(o);
		}
	}
	json_decref(all);
	bdev_close(bs);
	return 0;
}
