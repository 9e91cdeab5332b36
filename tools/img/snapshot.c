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

int cmd_snapshot(int argc, char **argv)
{
	enum { NONE, LIST, CREATE, APPLY, DELETE } action = NONE;
	const char *name = NULL, *fmt = NULL;
	int (*op)(struct bdev *, const char *, char *, size_t) = NULL;
	char err[512] = "";
	struct bdev *bs;
	int c, ret;

	while ((c = getopt(argc, argv, ":la:c:d:f:qUh")) != -1) {
		int a = c == 'l' ? LIST : c == 'c' ? CREATE : c == 'a' ? APPLY :
			c == 'd' ? DELETE : NONE;

		switch (c) {
		case 'l': case 'c': case 'a': case 'd':
			if (action != NONE) {
				img_err("snapshot: only one of -l, -a, -c, -d at a time");
				return 1;
			}
			action = a;
			name = c == 'l' ? NULL : optarg;
			break;
		case 'f': fmt = optarg; break;
		case 'q': case 'U': break;
		default:
			return img_bad_option("snapshot", argc, argv);
		}
	}
	if (optind != argc - 1) {
		img_err("snapshot: expecting exactly one filename (see '%s snapshot --help')",
			IMG_PROG);
		return 1;
	}
	if (action == NONE)
		action = LIST;
	if (name && (!*name || strlen(name) >= sizeof(((struct block_snapshot_info *)0)->name))) {
		img_err("snapshot: invalid snapshot name '%s'", name);
		return 1;
	}
	bs = img_open(argv[optind], fmt, action == LIST, BLOCK_CACHE_WRITEBACK, true);
	if (!bs)
		return 1;
	if (!bs->fmt->snapshot_list) {
		img_err("snapshot: format '%s' does not support internal snapshots",
			bdev_format_name(bs));
		bdev_close(bs);
		return 1;
	}
	if (action == LIST) {
		ret = list(bs);
		bdev_close(bs);
		return ret;
	}
	op = action == CREATE ? bs->fmt->snapshot_create :
	     action == APPLY ? bs->fmt->snapshot_apply : bs->fmt->snapshot_delete;
	if (!op) {
		img_err("snapshot: format '%s' cannot do that", bdev_format_name(bs));
		bdev_close(bs);
		return 1;
	}
	pthread_mutex_lock(&bs->lock);
	ret = op(bs, name, err, sizeof(err));
	pthread_mutex_unlock(&bs->lock);
	if (ret >= 0)
		ret = bdev_flush(bs);
	bdev_close(bs);
	if (ret < 0) {
		if (err[0])
			img_err("snapshot: %s", err);
		else
			img_err("snapshot: could not %s snapshot '%s': %s",
				action == CREATE ? "create" : action == APPLY ? "apply" : "delete",
				name, strerror(-ret));
		return 1;
	}
	return 0;
}
