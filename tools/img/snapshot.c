/* minikvm-img snapshot: list, create, apply and delete internal
 * snapshots (qcow2). */
#include <sys/time.h>
#include "tools/img/img.h"

void img_snapshot_header(void);
void img_snapshot_line(const char *id, const char *name, uint64_t vm_size, uint64_t date_sec,
		       uint64_t clock_nsec, uint64_t icount);

static int list(struct bdev *bs)
{
	struct block_snapshot_info *sn = NULL;
	unsigned n = 0;
	int ret;

	pthread_mutex_lock(&bs->lock);
	ret = bs->fmt->snapshot_list(bs, &sn, &n);
	pthread_mutex_unlock(&bs->lock);
	if (ret < 0) {
		img_err("snapshot: could not list snapshots of '%s': %s", bdev_filename(bs),
			strerror(-ret));
		return 1;
	}
	if (n) {
		printf("Snapshot list:\n");
		img_snapshot_header();
		for (unsigned i = 0; i < n; i++)
			img_snapshot_line(sn[i].id, sn[i].name, sn[i].vm_state_size, sn[i].date_sec,
					  sn[i].vm_clock_nsec, sn[i].icount);
	}
	free(sn);
	return 0;
}

/* A failed action in qemu-img's words. */
static void report_failure(int action, const char *name, int ret, const char *err)
{
	if (action == 'c')
		img_err("Could not create snapshot '%s': %d (%s)", name, ret, strerror(-ret));
	else if (action == 'd' && ret == -ENOENT)
		img_err("Could not delete snapshot '%s': snapshot not found", name);
	else if (action == 'a' && ret == -ENOTSUP)
		img_err("Could not apply snapshot '%s': Block driver does not support snapshots",
			name);
	else if (action == 'a' && ret == -ENOENT)
		img_err("Could not apply snapshot '%s': Failed to load snapshot: %s", name,
			strerror(ENOENT));
	else
		img_err("Could not %s snapshot '%s': %s", action == 'a' ? "apply" : "delete", name,
			err[0] ? err : strerror(-ret));
}

static int run_action(struct bdev *bs, int action, const char *name)
{
	int (*op)(struct bdev *, const char *, char *, size_t) = NULL;
	char err[512] = "";
	int ret = -ENOTSUP;

	if (action == 'c')
		op = bs->fmt->snapshot_create;
	else if (action == 'a')
		op = bs->fmt->snapshot_apply;
	else
		op = bs->fmt->snapshot_delete;
	if (op) {
		pthread_mutex_lock(&bs->lock);
		ret = op(bs, name, err, sizeof(err));
		pthread_mutex_unlock(&bs->lock);
		if (ret >= 0)
			ret = bdev_flush(bs);
	} else if (action == 'd') {
		ret = -ENOENT;		/* no snapshot to find */
	}
	if (ret < 0) {
		report_failure(action, name, ret, err);
		return 1;
	}
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL;
	struct bdev *bs;
	int c, ret, action = 0;

	while ((c = getopt_long(argc, argv, ":la:c:d:hqU", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("snapshot");
		case 'l': case 'c': case 'a': case 'd':
			if (action)
				return img_usage_error("Cannot mix '-l', '-a', '-c', '-d'");
			action = c;
			name = c == 'l' ? NULL : optarg;
			break;
		case 'q': case 'U': break;
		case IMG_OPT_OBJECT:
		case IMG_OPT_IMAGE_OPTS:
			return img_unsupported_option(c);
		default:
			return img_bad_option(c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("Expecting one image file name");
	if (name && strlen(name) >= sizeof(((struct block_snapshot_info *)0)->name)) {
		img_err("snapshot: snapshot name '%s' is too long", name);
		return 1;
	}
	/* no action: qemu-img opens the image read-write and does nothing */
	bs = img_open(argv[optind], NULL, action == 'l', BLOCK_CACHE_WRITEBACK, true);
	if (!bs)
		return 1;
	if (action == 'l')
		ret = bs->fmt->snapshot_list ? list(bs) : 0;	/* nothing listed, as qemu-img */
	else
		ret = action ? run_action(bs, action, name) : 0;
	bdev_close(bs);
	return ret;
}
