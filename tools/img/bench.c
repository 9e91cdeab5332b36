/* minikvm-img bench: qemu-img bench's I/O benchmark (sequential offsets
 * advancing by -S, -d requests in flight through the asynchronous block
 * API), plus a minikvm extension -r/--random: uniformly random offsets
 * aligned to the buffer size. Like qemu-img, one thread submits and runs
 * the completions (the image is opened with polled completions), and
 * every request uses the same data buffer (see shared_buffer); that
 * thread is the one that opened the image (single_thread). */
#include "tools/img/img.h"

struct bench {
	struct bdev *bs;
	bool write, random;
	uint64_t count, depth, bufsize, step, start, image_size, offset, flush_interval;
	uint64_t submitted, completed, writes_since_flush;
	uint64_t rng;
	int error;
	unsigned in_flight;
};

struct bench_req {
	struct bench *b;
	struct iovec iov;
	struct bench_req *next_free;
};

static struct bench_req *free_list;

static void req_done(void *opaque, int ret)
{
	struct bench_req *r = opaque;
	struct bench *b = r->b;

	if (ret < 0 && !b->error)
		b->error = ret;
	b->completed++;
	b->in_flight--;
	r->next_free = free_list;
	free_list = r;
}

static uint64_t next_offset(struct bench *b)
{
	uint64_t off;

	if (b->random) {
		uint64_t slots = (b->image_size - b->start) / b->bufsize;

		b->rng ^= b->rng << 13;
		b->rng ^= b->rng >> 7;
		b->rng ^= b->rng << 17;
		return b->start + (b->rng % slots) * b->bufsize;
	}
	off = b->offset;
	b->offset += b->step;
	if (b->offset + b->bufsize > b->image_size)
		b->offset = b->start;
	return off;
}

/* Runs completions until none is in flight. */
static void drain(struct bench *b)
{
	while (b->in_flight) {
		int ret = bdev_aio_poll(b->bs, true);

		if (ret < 0) {
			img_err("bench: waiting for requests: %s", strerror(-ret));
			exit(1);	/* requests still point at our buffers */
		}
	}
}

static void submit_one(struct bench *b)
{
	struct bench_req *r = free_list;
	uint64_t off = next_offset(b);

	free_list = r->next_free;
	b->in_flight++;
	b->submitted++;
	if (b->write)
		bdev_aio_writev(b->bs, off, &r->iov, 1, req_done, r);
	else
		bdev_aio_readv(b->bs, off, &r->iov, 1, req_done, r);
	if (b->write && b->flush_interval && ++b->writes_since_flush >= b->flush_interval) {
		int ret;

		b->writes_since_flush = 0;
		drain(b);
		ret = bdev_flush(b->bs);
		if (ret < 0 && !b->error)
			b->error = ret;
	}
}

static void run(struct bench *b)
{
	while (b->completed < b->count && !b->error) {
		while (b->in_flight < b->depth && b->submitted < b->count && free_list &&
		       !b->error)
			submit_one(b);
		if (b->completed < b->count && !b->error) {
			int ret = bdev_aio_poll(b->bs, true);

			if (ret < 0)
				b->error = ret;
		}
	}
	drain(b);
}

/* The one page-aligned buffer every request writes from or reads into,
 * filled with the pattern. qemu-img bench allocates depth buffers but
 * passes the first one's iovec to every request, so its requests copy from
 * and to one cache-hot buffer; depth distinct buffers made the same page
 * cache copies 3-7% slower (1 MiB requests at depth 8 cycle 8 MiB through
 * the CPU caches instead of 1). Same bytes, same system calls:
 * the data of concurrent reads is never looked at, and every write sends
 * the pattern either way. */
static uint8_t *shared_buffer(uint64_t size, int pattern)
{
	size_t alloc = (size_t)(size + 4095) / 4096 * 4096;
	uint8_t *buf = aligned_alloc(4096, alloc);

	if (buf)
		memset(buf, pattern, alloc);
	return buf;
}

/* qemu_strtoul(s, NULL, 0, ...) as qemu-img bench reads its numbers
 * (decimal, 0x hex or 0 octal; a '-' wraps around, so is above max). */
static int parse_num(const char *what, const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (end == s || *end || errno || v > max) {
		img_err("%s", what);
		return -1;
	}
	*out = v;
	return 0;
}

enum { OPT_PATTERN = IMG_OPT_FIRST_FREE, OPT_FLUSH_INTERVAL, OPT_NO_DRAIN };

int cmd_bench(int argc, char **argv)
{
	static const struct option longopts[] = {
		IMG_LONGOPT_HELP, IMG_LONGOPT_IMAGE_OPTS,
		{ "pattern", required_argument, NULL, OPT_PATTERN },
		{ "flush-interval", required_argument, NULL, OPT_FLUSH_INTERVAL },
		{ "no-drain", no_argument, NULL, OPT_NO_DRAIN },
		{ "random", no_argument, NULL, 'r' },
		{ "force-share", no_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	struct bench b = { .count = 75000, .depth = 64, .bufsize = 4096, .rng = 0x9e3779b97f4a7c15ULL };
	struct block_open_opts oo = { .cache = BLOCK_CACHE_WRITEBACK, .poll_completions = true,
				      .single_thread = true };
	struct bench_req *reqs = NULL;
	uint8_t *buf = NULL;
	uint64_t pattern = 0, n;
	bool quiet = false, step_set = false;
	double t0, t;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, ":hc:d:f:ni:o:qs:S:t:wUr", longopts, NULL)) != -1) {
		switch (c) {
		case 'h': return img_cmd_help("bench");
		case 'c':
			if (parse_num("Invalid request count specified", optarg, INT32_MAX, &b.count))
				return 1;
			break;
		case 'd':
			if (parse_num("Invalid queue depth specified", optarg, INT32_MAX, &b.depth))
				return 1;
			break;
		case 'f': oo.format = optarg; break;
		case 'i':
			if (block_parse_engine(optarg, &oo.engine)) {
				img_err("Invalid aio option: %s", optarg);
				return 1;
			}
			break;
		case 'n': oo.engine = BLOCK_ENGINE_NATIVE; break;
		case 'o':
			if (img_cvtnum("offset", optarg, 0, INT64_MAX, &b.start))
				return 1;
			break;
		case 'q': quiet = true; break;
		case 's':
			if (img_cvtnum("buffer size", optarg, 0, INT32_MAX, &b.bufsize))
				return 1;
			break;
		case 'S':
			if (img_cvtnum("step_size", optarg, 0, INT32_MAX, &b.step))
				return 1;
			step_set = true;
			break;
		case 't':
			if (block_parse_cache_mode(optarg, &oo.cache)) {
				img_err("Invalid cache mode");
				return 1;
			}
			break;
		case 'w': b.write = true; break;
		case 'r': b.random = true; break;
		case 'U': case OPT_NO_DRAIN: break;
		case OPT_PATTERN:
			if (parse_num("Invalid pattern byte specified", optarg, 255, &pattern))
				return 1;
			break;
		case OPT_FLUSH_INTERVAL:
			if (parse_num("Invalid flush interval specified", optarg, INT32_MAX, &n))
				return 1;
			b.flush_interval = n;
			break;
		case IMG_OPT_IMAGE_OPTS:
			return img_unsupported_option(c);
		default:
			return img_bad_option(c, argv);
		}
	}
	if (optind != argc - 1)
		return img_usage_error("Expecting one image file name");
	if (b.flush_interval && !b.write) {
		img_err("--flush-interval is only available in write tests");
		return 1;
	}
	if (b.flush_interval && b.flush_interval < b.depth) {
		img_err("Flush interval can't be smaller than depth");
		return 1;
	}
	/* QEMU hangs on a depth of 0 and runs requests of 0 bytes: refused */
	if (b.depth == 0 || b.depth > 4096) {
		img_err("bench: the queue depth must be from 1 to 4096");
		return 1;
	}
	if (b.bufsize == 0 || b.bufsize > (64u << 20)) {
		img_err("bench: the buffer size must be from 1 byte to 64 MiB");
		return 1;
	}
	if (b.depth * b.bufsize > (1ULL << 30)) {
		img_err("bench: depth times buffer size is above 1 GiB of buffers");
		return 1;
	}
	if (!step_set)
		b.step = b.bufsize;
	oo.read_only = !b.write;
	b.bs = img_open_opts(argv[optind], &oo);
	if (!b.bs)
		return 1;
	b.image_size = bdev_size(b.bs);
	if (b.start + b.bufsize > b.image_size) {
		img_err("bench: offset plus buffer size exceed the image size (%llu bytes)",
			(unsigned long long)b.image_size);
		goto out;
	}
	b.offset = b.start;
	reqs = calloc(b.depth, sizeof(*reqs));
	if (!reqs) {
		img_err("bench: out of memory");
		goto out;
	}
	buf = shared_buffer(b.bufsize, (int)pattern);
	if (!buf) {
		img_err("bench: out of memory");
		goto out;
	}
	for (uint64_t i = b.depth; i-- > 0;) {
		reqs[i].b = &b;
		reqs[i].iov.iov_len = b.bufsize;
		reqs[i].iov.iov_base = buf;
		reqs[i].next_free = free_list;
		free_list = &reqs[i];
	}
	if (!quiet)
		printf("Sending %llu %s requests, %llu bytes each, %llu in parallel "
		       "(starting at offset %llu, step size %llu%s)\n",
		       (unsigned long long)b.count, b.write ? "write" : "read",
		       (unsigned long long)b.bufsize, (unsigned long long)b.depth,
		       (unsigned long long)b.start, (unsigned long long)b.step,
		       b.random ? ", random offsets" : "");
	if (!quiet && b.flush_interval)
		printf("Sending flush every %llu requests\n", (unsigned long long)b.flush_interval);
	fflush(stdout);
	t0 = img_now();
	run(&b);
	t = img_now() - t0;	/* like qemu-img, the final flush is not timed */
	if (b.write && !b.error) {
		int ret = bdev_flush(b.bs);

		if (ret < 0)
			b.error = ret;
	}
	if (b.error) {
		img_err("bench: request failed: %s", strerror(-b.error));
		goto out;
	}
	if (!quiet)
		printf("Run completed in %.3f seconds.\n", t);
	rc = 0;
out:
	free(buf);
	free(reqs);
	bdev_close(b.bs);
	return rc;
}
