/* minikvm-img convert: copy one or more images (concatenated) into a new
 * or existing image of any format. Zero and unallocated ranges are left
 * sparse, data is copied with up to -m requests in flight through the
 * asynchronous block API (in order unless -W), or compressed cluster by
 * cluster with -c. Like qemu-img, one thread runs the copy: the sources
 * are opened with polled completions (bdev_aio_poll), so their data I/O
 * goes to the kernel in batches without a completion thread or a worker
 * hop, and so is a raw target. Other targets are not: their writes are
 * format work (allocation, metadata) that the block layer's workers
 * overlap with the reads, which one thread cannot do (raw->qcow2 took
 * 30% longer polled on tmpfs). The polled images are opened, polled and
 * closed on the main thread only (single_thread; -c's compression threads
 * use the synchronous calls, which do not go through the engine). */
#include <pthread.h>
#include <unistd.h>
#include "tools/img/img.h"

#define MAX_SLOTS 16
#define CHUNK_DEFAULT (1u << 20)

enum slot_state { SLOT_FREE, SLOT_READING, SLOT_READ_DONE, SLOT_WRITING, SLOT_WRITE_DONE };

struct slot {
	enum slot_state state;
	uint64_t dst_off, seq;
	size_t len;
	uint8_t *buf;
	struct bdev *rbs;		/* the source being read */
	struct iovec iov[1];
	struct iovec wiov[256];		/* write segments after -S sparse detection */
	int pending, ret;
	struct convert *cv;
};

struct src {
	struct bdev *bs;
	uint64_t start, size;		/* position in the concatenated input */
};

struct convert {
	struct src src[32];
	unsigned nsrc;
	uint64_t total;
	struct bdev *dst;
	bool compress, fresh, top_only, out_of_order, dst_backed;
	uint64_t sparse;
	size_t chunk;
	uint32_t dst_cluster;
	unsigned nslots;
	struct slot slots[MAX_SLOTS];
	uint64_t next_seq, write_seq, done;
	uint64_t cnext;			/* -c: next cluster to compress */
	uint64_t run_start, run_end;	/* cached status run [start, end) */
	int run_kind;
	bool dst_polled;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a request of an unpolled target finished */
	int error;
	uint64_t error_off;
	const char *error_what;
	struct img_progress progress;
};

static void fail(struct convert *cv, int ret, uint64_t off, const char *what)
{
	if (!cv->error) {
		cv->error = ret;
		cv->error_off = off;
		cv->error_what = what;
	}
}

static void io_done(void *opaque, int ret)
{
	struct slot *s = opaque;
	struct convert *cv = s->cv;

	pthread_mutex_lock(&cv->lock);
	if (ret < 0 && !s->ret)
		s->ret = ret;
	if (--s->pending == 0)
		s->state = s->state == SLOT_READING ? SLOT_READ_DONE : SLOT_WRITE_DONE;
	pthread_cond_signal(&cv->cond);
	pthread_mutex_unlock(&cv->lock);
}

/* Which source holds the input offset. */
static struct src *src_at(struct convert *cv, uint64_t off)
{
	for (unsigned i = 0; i < cv->nsrc; i++)
		if (off < cv->src[i].start + cv->src[i].size)
			return &cv->src[i];
	return NULL;
}

/* Classify the run at off: 1 data to copy, 0 zeroes, 2 skip (comes from
 * the target's backing file). Returns the run length or a negative errno. */
static int64_t classify_uncached(struct convert *cv, uint64_t off, int *kind)
{
	struct src *s = src_at(cv, off);
	uint64_t soff = off - s->start, len = s->start + s->size - off;
	int64_t n;

	if (cv->top_only) {
		unsigned st;
		uint64_t host;
		bool valid;

		n = img_layer_status(s->bs, soff, len, &st, &host, &valid);
		if (n < 0)
			return n;
		if (st & (BLOCK_STATUS_BACKING | BLOCK_STATUS_UNALLOCATED) ||
		    !(st & (BLOCK_STATUS_DATA | BLOCK_STATUS_ZERO)))
			*kind = 2;
		else
			*kind = (st & BLOCK_STATUS_DATA) ? 1 : 0;
	} else {
		struct chain_status cs;

		n = img_chain_status(s->bs, soff, len, &cs);
		if (n < 0)
			return n;
		*kind = (cs.status & BLOCK_STATUS_DATA) ? 1 : 0;
	}
	if (*kind == 0 && cv->sparse == 0)
		*kind = 1;	/* -S 0: fully allocate */
	return n;
}

/* Status queries can be costly (SEEK_DATA scans on some file systems):
 * ask once for the longest run to the end of the source and remember it. */
static int64_t classify(struct convert *cv, uint64_t off, uint64_t len, int *kind)
{
	if (off < cv->run_start || off >= cv->run_end) {
		int64_t n = classify_uncached(cv, off, &cv->run_kind);

		if (n <= 0)
			return n;
		cv->run_start = off;
		cv->run_end = off + (uint64_t)n;
	}
	*kind = cv->run_kind;
	return (int64_t)(cv->run_end - off < len ? cv->run_end - off : len);
}

static int write_zero_range(struct convert *cv, uint64_t off, uint64_t len)
{
	if (cv->fresh && !cv->dst_backed)
		return 0;
	return bdev_write_zeroes(cv->dst, off, len, !cv->dst_backed);
}

/* Split the slot's buffer into non-zero segments of -S granularity and
 * submit them; zero granules are skipped on a fresh target. */
static void submit_writes(struct convert *cv, struct slot *s)
{
	int nseg = 0;
	size_t pos = 0;
	bool sparse = cv->sparse && cv->fresh && !cv->dst_backed;

	while (pos < s->len) {
		size_t g = cv->sparse ? cv->sparse - (s->dst_off + pos) % cv->sparse : s->len;
		bool zero;

		if (g > s->len - pos)
			g = s->len - pos;
		zero = sparse && img_buf_is_zero(s->buf + pos, g);
		if (!zero) {
			if (nseg && (uint8_t *)s->wiov[nseg - 1].iov_base + s->wiov[nseg - 1].iov_len
				    == s->buf + pos) {
				s->wiov[nseg - 1].iov_len += g;
			} else if (nseg < 256) {
				s->wiov[nseg].iov_base = s->buf + pos;
				s->wiov[nseg].iov_len = g;
				nseg++;
			} else {
				s->wiov[nseg - 1].iov_len = (size_t)(s->buf + pos + g -
						(uint8_t *)s->wiov[nseg - 1].iov_base);
			}
		}
		pos += g;
	}
	pthread_mutex_lock(&cv->lock);
	s->state = SLOT_WRITING;
	s->pending = nseg + 1;
	pthread_mutex_unlock(&cv->lock);
	for (int i = 0; i < nseg; i++) {
		uint64_t off = s->dst_off + (uint64_t)((uint8_t *)s->wiov[i].iov_base - s->buf);

		bdev_aio_writev(cv->dst, off, &s->wiov[i], 1, io_done, s);
	}
	io_done(s, 0);	/* drop the guard */
}

static void submit_read(struct convert *cv, struct slot *s, uint64_t off, size_t len)
{
	struct src *src = src_at(cv, off);

	s->dst_off = off;
	s->len = len;
	s->seq = cv->next_seq++;
	s->ret = 0;
	s->iov[0].iov_base = s->buf;
	s->iov[0].iov_len = len;
	s->rbs = src->bs;
	pthread_mutex_lock(&cv->lock);
	s->state = SLOT_READING;
	s->pending = 1;
	pthread_mutex_unlock(&cv->lock);
	bdev_aio_readv(src->bs, off - src->start, s->iov, 1, io_done, s);
}

/* Find the next data run to read, handling zero runs on the way. */
static int next_data_run(struct convert *cv, uint64_t *off, uint64_t *len)
{
	while (*off < cv->total && !cv->error) {
		uint64_t win_end = (*off / cv->chunk + 1) * cv->chunk;
		int64_t n;
		int kind;

		if (win_end > cv->total)
			win_end = cv->total;
		n = classify(cv, *off, win_end - *off, &kind);
		if (n <= 0) {
			fail(cv, n ? (int)n : -EIO, *off, "reading the allocation status");
			return 0;
		}
		if (kind == 1) {
			*len = (uint64_t)n;
			return 1;
		}
		if (kind == 0) {
			int ret = write_zero_range(cv, *off, (uint64_t)n);

			if (ret < 0) {
				fail(cv, ret, *off, "zeroing");
				return 0;
			}
		}
		*off += (uint64_t)n;
		cv->done += (uint64_t)n;
		img_progress_update(&cv->progress, cv->done, cv->total);
	}
	return 0;
}

/* Runs the callbacks of finished requests on every image (and starts the
 * queued ones); returns how many ran. */
static int poll_all(struct convert *cv)
{
	int n = 0, r;

	for (unsigned i = 0; i < cv->nsrc; i++) {
		r = bdev_aio_poll(cv->src[i].bs, false);
		if (r < 0)
			fail(cv, r, 0, "reading");
		n += r > 0 ? r : 0;
	}
	if (!cv->dst_polled)
		return n;
	r = bdev_aio_poll(cv->dst, false);
	if (r < 0)
		fail(cv, r, 0, "writing");
	return n + (r > 0 ? r : 0);
}

/* Nothing to do until a request finishes: run what is ready, else block
 * on the image of the oldest request in flight. */
static void wait_completion(struct convert *cv)
{
	struct bdev *wait_on = NULL;
	struct slot *old_s = NULL;
	uint64_t oldest = UINT64_MAX;
	int r;

	if (poll_all(cv))
		return;
	pthread_mutex_lock(&cv->lock);
	for (unsigned i = 0; i < cv->nslots; i++) {
		struct slot *s = &cv->slots[i];

		if ((s->state == SLOT_READING || s->state == SLOT_WRITING) && s->seq < oldest) {
			oldest = s->seq;
			old_s = s;
			wait_on = s->state == SLOT_READING ? s->rbs : cv->dst;
		}
	}
	if (wait_on == cv->dst && !cv->dst_polled) {
		/* its callback runs on a block-layer thread */
		while (old_s->state == SLOT_WRITING)
			pthread_cond_wait(&cv->cond, &cv->lock);
		wait_on = NULL;
	}
	pthread_mutex_unlock(&cv->lock);
	if (!wait_on)
		return;
	r = bdev_aio_poll(wait_on, true);
	if (r < 0)
		fail(cv, r, 0, wait_on == cv->dst ? "writing" : "reading");
}

static void run_parallel(struct convert *cv)
{
	uint64_t off = 0;

	for (;;) {
		bool busy = false, acted = false, ready = false;

		for (unsigned i = 0; i < cv->nslots; i++) {
			struct slot *s = &cv->slots[i];
			enum slot_state st;

			pthread_mutex_lock(&cv->lock);
			st = s->state;
			pthread_mutex_unlock(&cv->lock);
			if (st == SLOT_READ_DONE && (cv->out_of_order || s->seq == cv->write_seq)) {
				if (s->ret < 0) {
					fail(cv, s->ret, s->dst_off, "reading");
					s->state = SLOT_FREE;
				} else {
					submit_writes(cv, s);
				}
				cv->write_seq++;
				acted = true;
				i = (unsigned)-1;	/* a later seq may now be writable */
				continue;
			}
			if (st == SLOT_WRITE_DONE) {
				if (s->ret < 0)
					fail(cv, s->ret, s->dst_off, "writing");
				cv->done += s->len;
				img_progress_update(&cv->progress, cv->done, cv->total);
				s->state = SLOT_FREE;
				acted = true;
			}
		}
		for (unsigned i = 0; i < cv->nslots && !cv->error; i++) {
			struct slot *s = &cv->slots[i];
			uint64_t len;

			if (s->state != SLOT_FREE)
				continue;
			if (!next_data_run(cv, &off, &len))
				break;
			submit_read(cv, s, off, (size_t)len);
			off += len;
			acted = true;
		}
		pthread_mutex_lock(&cv->lock);
		for (unsigned i = 0; i < cv->nslots; i++) {
			struct slot *s = &cv->slots[i];

			if (s->state != SLOT_FREE)
				busy = true;
			if ((s->state == SLOT_READ_DONE &&
			     (cv->out_of_order || s->seq == cv->write_seq)) ||
			    s->state == SLOT_WRITE_DONE)
				ready = true;
		}
		pthread_mutex_unlock(&cv->lock);
		if (!busy && (off >= cv->total || cv->error))
			return;
		if (acted)
			poll_all(cv);	/* start what was queued, pick up what is done */
		else if (!ready)
			wait_completion(cv);
	}
}

/* -c: whole clusters, read synchronously and compressed unless all zero,
 * by up to -m threads (at most one per CPU; qemu-img compresses on its
 * thread pool too): the format deflates without holding the image lock. */
static bool next_cluster(struct convert *cv, uint64_t *off, size_t *len)
{
	bool found = false;

	pthread_mutex_lock(&cv->lock);
	while (!found && cv->cnext < cv->total && !cv->error) {
		*off = cv->cnext;
		*len = cv->dst_cluster;
		if (*len > cv->total - *off)
			*len = (size_t)(cv->total - *off);
		cv->cnext += *len;
		/* is anything in this cluster data? */
		for (uint64_t p = *off; p < *off + *len;) {
			int kind;
			int64_t n = classify(cv, p, *off + *len - p, &kind);

			if (n <= 0) {
				fail(cv, n ? (int)n : -EIO, p, "reading the allocation status");
				break;
			}
			if (kind == 1)
				found = true;
			p += (uint64_t)n;
		}
		if (!found) {
			cv->done += *len;
			img_progress_update(&cv->progress, cv->done, cv->total);
		}
	}
	found = found && !cv->error;
	pthread_mutex_unlock(&cv->lock);
	return found;
}

static int compress_one(struct convert *cv, uint8_t *buf, uint64_t off, size_t len,
			const char **what, uint64_t *where)
{
	int ret;

	/* a cluster may straddle two concatenated sources */
	for (size_t p = 0; p < len;) {
		struct src *s = src_at(cv, off + p);
		size_t n = len - p;

		if (n > s->start + s->size - (off + p))
			n = (size_t)(s->start + s->size - (off + p));
		ret = bdev_pread(s->bs, off + p - s->start, buf + p, n);
		if (ret < 0) {
			*what = "reading";
			*where = off + p;
			return ret;
		}
		p += n;
	}
	if (img_buf_is_zero(buf, len))
		return 0;
	*what = "writing compressed";
	*where = off;
	if (len == cv->dst_cluster)
		return img_write_compressed(cv->dst, off, buf, len);
	return bdev_pwrite(cv->dst, off, buf, len);
}

struct cworker {
	struct convert *cv;
	uint8_t *buf;
	pthread_t thread;
};

static void *compress_worker(void *arg)
{
	struct cworker *w = arg;
	struct convert *cv = w->cv;
	uint64_t off, where = 0;
	size_t len;

	while (next_cluster(cv, &off, &len)) {
		const char *what = NULL;
		int ret = compress_one(cv, w->buf, off, len, &what, &where);

		pthread_mutex_lock(&cv->lock);
		if (ret < 0)
			fail(cv, ret, where, what);
		cv->done += len;
		img_progress_update(&cv->progress, cv->done, cv->total);
		pthread_mutex_unlock(&cv->lock);
	}
	return NULL;
}

static void run_compressed(struct convert *cv)
{
	struct cworker w[MAX_SLOTS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cv->nslots, started = 1;

	if (cpus >= 1 && (unsigned long)cpus < n)
		n = (unsigned)cpus;
	for (unsigned i = 0; i < n; i++)
		w[i] = (struct cworker){ cv, cv->slots[i].buf, 0 };
	while (started < n && !pthread_create(&w[started].thread, NULL, compress_worker,
					      &w[started]))
		started++;
	compress_worker(&w[0]);
	for (unsigned i = 1; i < started; i++)
		pthread_join(w[i].thread, NULL);
}

static int open_sources(struct convert *cv, char **names, int n, const char *fmt,
			enum block_cache_mode cache)
{
	if (n > 32) {
		img_err("convert: at most 32 source images");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct block_open_opts oo = {
			.format = fmt, .read_only = true, .cache = cache, .poll_completions = true,
			.single_thread = true,
		};
		struct bdev *bs = img_open_opts(names[i], &oo);

		if (!bs)
			return -1;
		cv->src[i].bs = bs;
		cv->src[i].start = cv->total;
		cv->src[i].size = bdev_size(bs);
		cv->total += bdev_size(bs);
		cv->nsrc++;
	}
	return 0;
}

/* -m as qemu-img reads it (qemu_strtol, base 0). */
static int parse_coroutines(const char *arg, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 0);
	if (end == arg || *end || errno || v < 1 || v > MAX_SLOTS) {
		img_err("Invalid number of coroutines. Allowed number of coroutines is between "
			"1 and %d", MAX_SLOTS);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

/* -S: a multiple of 512 up to 16 MiB (qemu-img's MAX_BUF_SECTORS). */
static int parse_sparse(const char *arg, uint64_t *out)
{
	if (img_cvtnum("buffer size for sparse output", arg, 0, INT64_MAX, out))
		return -1;
	if (*out % 512 || *out > (16u << 20)) {
		img_err("Invalid buffer size for sparse output specified. Valid sizes are "
			"multiples of 512 up to 16777216. Select 0 to disable sparse detection "
			"(fully allocates output).");
		return -1;
	}
	return 0;
}

/* The -o list, -B and -F against the target format, as qemu-img checks
 * them before creating the target. */
static int check_target_options(const char *out, const char *out_fmt, const char *options,
				bool nsrc_many, bool compress, struct block_create_opts *co)
{
	const struct block_format *f = img_format_for_create(out_fmt);
	bool backing = strstr(" qcow2 qcow cow vmdk ", out_fmt) != NULL;
	const char *backing_file = co->backing_file, *backing_fmt = co->backing_format;

	if (!f)
		return -1;
	if (options && img_parse_create_opts_for(options, out_fmt, "", co))
		return -1;
	if (backing_file && !backing) {
		img_err("Backing file not supported for file format '%s'", out_fmt);
		return -1;
	}
	if (backing_fmt && !backing) {
		img_err("Backing file format not supported for file format '%s'", out_fmt);
		return -1;
	}
	if (co->backing_file && nsrc_many) {
		img_err("Having a backing file for the target makes no sense when concatenating "
			"multiple input images");
		return -1;
	}
	if (co->backing_file && !co->backing_format) {
		img_err("Use of backing file requires explicit backing format");
		return -1;
	}
	if (co->backing_format && !co->backing_file) {
		img_err("%s: error while converting %s: Backing format cannot be used without "
			"backing file", out, out_fmt);
		return -1;
	}
	if (compress && !f->write_compressed) {
		img_err("Compression not supported for this file format");
		return -1;
	}
	if (compress && co->prealloc != PREALLOC_OFF) {
		img_err("Compression and preallocation not supported at the same time");
		return -1;
	}
	return 0;
}

enum {
	OPT_SALVAGE = IMG_OPT_FIRST_FREE, OPT_TARGET_IS_ZERO, OPT_BITMAPS, OPT_SKIP_BROKEN,
};

int cmd_convert(int argc, char **argv)
{
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_OBJECT, IMG_LONGOPT_IMAGE_OPTS,
		{ "force-share", no_argument, NULL, 'U' },
		{ "target-image-opts", no_argument, NULL, IMG_OPT_TARGET_IMAGE_OPTS },
		{ "salvage", no_argument, NULL, OPT_SALVAGE },
		{ "target-is-zero", no_argument, NULL, OPT_TARGET_IS_ZERO },
		{ "bitmaps", no_argument, NULL, OPT_BITMAPS },
		{ "skip-broken-bitmaps", no_argument, NULL, OPT_SKIP_BROKEN },
		{ NULL, 0, NULL, 0 },
	};
	struct convert cv = { .sparse = 4096, .nslots = 8 };
	struct block_create_opts co = { 0 };
	const char *fmt = NULL, *out_fmt = "raw", *out = NULL;
	const char *cache_arg = "unsafe", *src_cache_arg = "writeback";
	enum block_cache_mode cache = BLOCK_CACHE_UNSAFE, src_cache = BLOCK_CACHE_WRITEBACK;
	bool no_create = false, quiet = false, copy_range = false, sparse_set = false;
	char *options = NULL;
	uint64_t rate;
	int c, rc = 1, nsrc;

	while ((c = getopt_long(argc, argv, ":hf:O:B:Cco:l:S:pt:T:qnm:WUr:F:", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("convert");
		case 'f': fmt = optarg; break;
		case 'O': out_fmt = optarg; break;
		case 'B': co.backing_file = optarg; break;
		case 'F': co.backing_format = optarg; break;
		case 'c': cv.compress = true; break;
		case 'C': copy_range = true; break;
		case 'p': cv.progress.on = true; break;
		case 'q': quiet = true; break;
		case 'n': no_create = true; break;
		case 'W': cv.out_of_order = true; break;
		case 'U': break;
		case 't': cache_arg = optarg; break;
		case 'T': src_cache_arg = optarg; break;
		case 'l':
			img_err("convert: -l (internal snapshots) is not supported");
			return 1;
		case 'o':
			options = img_add_option_list(options, optarg);
			if (!options)
				return 1;
			break;
		case 'S':
			if (parse_sparse(optarg, &cv.sparse))
				return 1;
			sparse_set = true;
			break;
		case 'm':
			if (parse_coroutines(optarg, &cv.nslots))
				return 1;
			break;
		case 'r':	/* rate limit: checked, not applied */
			if (img_cvtnum("rate limit", optarg, 0, INT64_MAX, &rate))
				return 1;
			break;
		case IMG_OPT_OBJECT:
		case IMG_OPT_IMAGE_OPTS:
		case IMG_OPT_TARGET_IMAGE_OPTS:
			return img_unsupported_option(c);
		case OPT_SALVAGE: case OPT_TARGET_IS_ZERO: case OPT_BITMAPS: case OPT_SKIP_BROKEN:
			img_err("%s is not supported", argv[optind - 1]);
			return 1;
		default:
			return img_bad_option(c, argv);
		}
	}
	if (cv.compress && copy_range) {
		img_err("Cannot enable copy offloading when -c is used");
		return 1;
	}
	if (sparse_set && copy_range) {
		img_err("Cannot enable copy offloading when -S is used");
		return 1;
	}
	if (no_create && options) {
		img_err("-o has no effect when skipping image creation");
		return 1;
	}
	nsrc = argc - optind - 1;
	if (nsrc >= 1)
		out = argv[argc - 1];
	if (options && img_has_help_option(options)) {
		if (!block_format_find(out_fmt)) {
			img_err("Unknown file format '%s'", out_fmt);
			return 1;
		}
		img_print_create_opts_help(out_fmt);
		return 0;
	}
	if (nsrc < 1) {
		img_err("Must specify image file name");
		return 1;
	}
	if (block_parse_cache_mode(src_cache_arg, &src_cache)) {
		img_err("Invalid source cache option: %s", src_cache_arg);
		return 1;
	}
	if (quiet)
		cv.progress.on = false;
	pthread_mutex_init(&cv.lock, NULL);
	pthread_cond_init(&cv.cond, NULL);
	if (open_sources(&cv, argv + optind, nsrc, fmt, src_cache))
		goto out;
	if (!no_create && check_target_options(out, out_fmt, options, nsrc > 1, cv.compress, &co))
		goto out;
	cv.top_only = co.backing_file != NULL;
	cv.dst_backed = co.backing_file != NULL;
	if (!no_create) {
		co.size = cv.total;
		if (img_create_image(out, out_fmt, &co))
			goto out;
		cv.fresh = true;
	}
	if (block_parse_cache_mode(cache_arg, &cache)) {	/* after creating, as qemu-img */
		img_err("Invalid cache option: %s", cache_arg);
		goto out;
	}
	{
		struct block_open_opts oo = {
			.format = out_fmt, .cache = cache, .no_backing = true,
			.poll_completions = !strcmp(out_fmt, "raw"), .single_thread = true,
		};

		cv.dst_polled = oo.poll_completions;

		cv.dst = img_open_opts(out, &oo);
	}
	if (!cv.dst)
		goto out;
	if (bdev_size(cv.dst) < cv.total) {
		img_err("convert: target '%s' is smaller (%llu bytes) than the input (%llu bytes)",
			out, (unsigned long long)bdev_size(cv.dst), (unsigned long long)cv.total);
		goto out;
	}
	cv.dst_cluster = img_cluster_size(cv.dst);
	if (cv.compress && (!cv.dst->fmt->write_compressed || !cv.dst_cluster)) {
		img_err("convert: format '%s' does not support compression", out_fmt);
		goto out;
	}
	cv.chunk = CHUNK_DEFAULT;
	if (cv.dst_cluster > cv.chunk)
		cv.chunk = cv.dst_cluster;
	for (unsigned i = 0; i < cv.nslots; i++) {
		cv.slots[i].cv = &cv;
		cv.slots[i].buf = aligned_alloc(4096, cv.chunk);
		if (!cv.slots[i].buf) {
			img_err("convert: out of memory");
			goto out;
		}
	}
	img_progress_update(&cv.progress, 0, cv.total);
	if (cv.compress)
		run_compressed(&cv);
	else
		run_parallel(&cv);
	if (!cv.error) {
		int ret = bdev_flush(cv.dst);

		if (ret < 0)
			fail(&cv, ret, 0, "flushing");
	}
	if (cv.error) {
		img_err("convert: error while %s at offset %llu: %s", cv.error_what,
			(unsigned long long)cv.error_off, strerror(-cv.error));
		goto out;
	}
	img_progress_end(&cv.progress);
	rc = 0;
out:
	if (cv.dst)
		bdev_close(cv.dst);
	for (unsigned i = 0; i < cv.nsrc; i++)
		bdev_close(cv.src[i].bs);
	for (unsigned i = 0; i < MAX_SLOTS; i++)
		free(cv.slots[i].buf);
	return rc;
}
