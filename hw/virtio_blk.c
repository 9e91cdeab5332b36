/* virtio-blk-pci model (virtio block device, type 2), behaving like QEMU
 * 7.2's: this file owns the device's life cycle (init, exit, reset and
 * draining, migration state), serving its request queues, the statistics
 * and completion. Requests are submitted asynchronously to the block
 * layer, with kicks suppressed while a queue is being served; block
 * threads hand finished ones back through a done list, and they are
 * completed (status byte, used ring, interrupt; one used index update per
 * batch) under the device lock by whoever can take it without waiting: the
 * thread serving a queue, the block thread itself, else the event loop.
 * Block threads never wait for the device lock: a reset holds it while it
 * waits for them. With a polled bdev (io_uring drives) there is no block
 * thread: the event loop reaps completions from the ring's fd (poll_ready)
 * and at each pass; completions handed to a polling driver while others
 * are in flight are followed by a short watch for its answer, kicks still
 * suppressed (virtq_answer_wait in hw/virtq_poll.c). Request parsing and
 * the read/write/flush/GET_ID/discard/write-zeroes handlers are in
 * hw/virtio_blk_req.c, properties, features and the config space
 * (topology, geometry, the guest-visible write cache) in
 * hw/virtio_blk_conf.c, the -drive / -device parsing in
 * hw/virtio_blk_drive.c. */
#include <errno.h>
#include <sys/epoll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "block/block.h"
#include "hw/virtio_blk_int.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/vmstate.h"

#define PCI_CLASS_STORAGE_SCSI	0x010000

/* Notification polling, for requests that finish inside the pass (small
 * I/O to memory-backed images): a pass that took at least POLL_BATCH
 * requests keeps kicks off and looks at the queue again POLL_NS later
 * (doubling after empty looks, up to 4x), for POLL_EMPTY empty looks in a
 * row; then kicks are asked for again. A lone request never waits for
 * the timer. */
#define POLL_BATCH		4
#define POLL_NS			25000ull
#define POLL_EMPTY		3
/* After a pass the ring is watched this long for the driver's next
 * requests before the device waits for a kick or the poll timer. */
#define SPIN_NS			10000ull
#define PASS_BYTES		(8u << 20)	/* data taken per pass over a queue */

/* --- statistics ----------------------------------------------------------- */

unsigned virtio_blk_lat_bucket(uint64_t ns)
{
	unsigned b = 0;

	for (uint64_t limit = 10000; b < VIRTIO_BLK_LAT_BUCKETS - 1 && ns >= limit; limit *= 10)
		b++;
	return b;
}

void virtio_blk_account_done(struct virtio_blk *blk, const struct blk_req *r, bool ok)
{
	struct virtio_blk_op_stats *s = &blk->stats.op[r->op];
	uint64_t now = clock_ns(), lat = now > r->start_ns ? now - r->start_ns : 0;

	if (ok) {
		s->ops++;
		s->bytes += r->bytes;
		if (r->op == VIRTIO_BLK_OP_WRITE || r->op == VIRTIO_BLK_OP_WRITE_ZEROES) {
			if (r->offset + r->bytes > blk->stats.wr_highest_offset)
				blk->stats.wr_highest_offset = r->offset + r->bytes;
		}
	} else {
		s->failed++;
	}
	s->total_ns += lat;
	if (lat > s->max_ns)
		s->max_ns = lat;
	s->hist[virtio_blk_lat_bucket(lat)]++;
	blk->stats.last_access_ns = now;
}

void virtio_blk_account_invalid(struct virtio_blk *blk, enum virtio_blk_op op)
{
	blk->stats.op[op].invalid++;
}

void virtio_blk_get_stats(struct virtio_blk *blk, struct virtio_blk_stats *out)
{
	virtio_pci_lock(&blk->vp);
	*out = blk->stats;
	virtio_pci_unlock(&blk->vp);
	out->inflight = virtio_blk_inflight(blk);
}

/* --- completion ----------------------------------------------------------- */

/* Status byte and used entry of a request finished at once (device lock
 * held); the interrupt is sent by the caller once per batch. */
void virtio_blk_push_status(struct virtio_blk *blk, unsigned q, uint16_t head, uint64_t in_len,
			    uint8_t *status, uint8_t st, unsigned *notify)
{
	struct virtq_elem *e = blk->done_elem;

	*status = st;
	e->head = head;
	e->in_len = in_len;
	virtq_push(&blk->vp.vqs[q], e, in_len);
	*notify |= 1u << q;
}

/* Interrupts for the queues in notify that want one; returns those that
 * did not (their driver polls the used ring). */
static unsigned send_interrupts(struct virtio_blk *blk, unsigned notify)
{
	unsigned quiet = 0;

	for (unsigned q = 0; notify >> q; q++)
		if ((notify & (1u << q)) && !virtio_pci_queue_interrupt(&blk->vp, q))
			quiet |= 1u << q;
	return quiet;
}

/* Accounting and status byte of a finished request; false when it must
 * not reach the used ring (reset meanwhile, or the device is broken). */
static bool finish_req(struct virtio_blk *blk, struct blk_req *r)
{
	if (r->generation != blk->generation)
		return false;	/* the device was reset meanwhile */
	virtio_blk_account_done(blk, r, r->ret >= 0);
	if (r->flushed_after)
		blk->stats.writethrough_flushes++;
	if (blk->vp.broken)
		return false;
	*r->status = r->ret < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	return true;
}

void virtio_blk_complete_req(struct virtio_blk *blk, struct blk_req *r, unsigned *notify)
{
	if (finish_req(blk, r))
		virtio_blk_push_status(blk, r->q, r->head, r->in_len, r->status, *r->status,
				       notify);
}

static struct blk_req *take_done(struct virtio_blk *blk)
{
	struct blk_req *list, *rev = NULL;

	pthread_mutex_lock(&blk->done_lock);
	list = blk->done;
	blk->done = NULL;
	blk->done_scheduled = false;
	pthread_mutex_unlock(&blk->done_lock);
	while (list) {		/* back to completion order */
		struct blk_req *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	return rev;
}

/* Complete everything the block layer has finished (device lock held):
 * the used entries of a batch are published with one index update and at
 * most one interrupt per queue. Returns the queues that got entries
 * without an interrupt: their driver polls, and answers at once. */
static unsigned process_done_locked(struct virtio_blk *blk)
{
	uint16_t filled[VIRTIO_MAX_QUEUES] = { 0 };
	struct virtq_elem *e = blk->done_elem;
	unsigned notify = 0;
	struct blk_req *r = take_done(blk);

	while (r) {
		struct blk_req *next = r->next;

		if (finish_req(blk, r)) {
			e->head = r->head;
			e->in_len = r->in_len;
			virtq_fill(&blk->vp.vqs[r->q], e, r->in_len, filled[r->q]++);
			notify |= 1u << r->q;
		}
		free(r);
		r = next;
	}
	for (unsigned q = 0; q < blk->conf.num_queues; q++)
		if (filled[q])
			virtq_flush(&blk->vp.vqs[q], filled[q]);
	return send_interrupts(blk, notify);
}

static void process_queue(struct virtio_blk *blk, unsigned q, bool polled);

/* Completions published outside a pass (device lock held): a queue that
 * the poll timer watches with kicks off gets the requests the driver has
 * added since picked up now, as the answer to earlier completions, rather
 * than at the next timer look. */
static void pick_up_new_requests(struct virtio_blk *blk)
{
	for (unsigned q = 0; q < blk->conf.num_queues && !blk->stopping && !blk->vp.broken; q++) {
		struct virtq *vq = &blk->vp.vqs[q];

		if (vq->no_notify && virtq_ready(vq) && virtq_has_work(vq))
			process_queue(blk, q, true);
	}
}

/* The event loop's share: complete what block threads could not (the
 * done timer, armed by schedule_done). */
static void process_done_cb(void *opaque)
{
	struct virtio_blk *blk = opaque;

	virtio_pci_lock(&blk->vp);
	process_done_locked(blk);
	pick_up_new_requests(blk);
	virtio_pci_unlock(&blk->vp);
}

/* Have the event loop complete what is on the done list. An expired timer
 * rather than a queued call: nothing to allocate, so nothing can fail on a
 * block thread, which must never wait for the device lock (a reset holding
 * it waits for this very thread). */
static void schedule_done(struct virtio_blk *blk)
{
	bool schedule;

	pthread_mutex_lock(&blk->done_lock);
	schedule = blk->done && !blk->done_scheduled;
	/* Only when arming: the list may already have been taken (take_done),
	 * and a flag left set with nothing armed would keep every later
	 * completion waiting for a take_done that may never come. */
	if (schedule)
		blk->done_scheduled = true;
	pthread_mutex_unlock(&blk->done_lock);
	if (schedule)
		event_timer_arm(blk->done_timer, 1);	/* a deadline long past */
}

/* Block-layer callback (a block thread, or inside the submit call). The
 * request is completed without a hop through the event loop when that is
 * possible, which matters most at depth 1: by the thread serving a queue
 * (it holds the device lock and takes the done list before dropping it),
 * or right here when the device lock is free. Otherwise (a vCPU accesses
 * the device, a reset or a drain waits for us) the event loop completes
 * it. The request counts as in flight until it is handed over, so a
 * drain or reset that sees none in flight sees no block thread still
 * touching the device. */
static void req_done(void *opaque, int ret)
{
	struct blk_req *r = opaque;
	struct virtio_blk *blk = r->blk;
	bool handed_over;

	if (ret >= 0 && r->flush_after) {
		r->flush_after = false;		/* writethrough: the data must be stable */
		r->flushed_after = true;
		bdev_aio_flush(blk->bs, req_done, r);
		return;
	}
	r->ret = ret;
	pthread_mutex_lock(&blk->done_lock);
	r->next = blk->done;
	blk->done = r;
	handed_over = blk->processing;
	pthread_mutex_unlock(&blk->done_lock);
	if (!handed_over) {
		if (virtio_pci_trylock(&blk->vp)) {
			process_done_locked(blk);
			pick_up_new_requests(blk);
			virtio_pci_unlock(&blk->vp);
		} else {
			schedule_done(blk);
		}
	}
	pthread_mutex_lock(&blk->done_lock);
	if (--blk->io_inflight == 0)
		pthread_cond_broadcast(&blk->idle_cond);
	pthread_mutex_unlock(&blk->done_lock);
}

/* Serving a queue (device lock held): completions that arrive meanwhile
 * are left to us. */
static void begin_processing(struct virtio_blk *blk)
{
	pthread_mutex_lock(&blk->done_lock);
	blk->processing = true;
	pthread_mutex_unlock(&blk->done_lock);
}

/* Returns the queues that got used entries without an interrupt. */
static unsigned end_processing(struct virtio_blk *blk)
{
	unsigned quiet = 0;

	for (;;) {
		pthread_mutex_lock(&blk->done_lock);
		if (!blk->done) {
			blk->processing = false;
			pthread_mutex_unlock(&blk->done_lock);
			return quiet;
		}
		pthread_mutex_unlock(&blk->done_lock);
		quiet |= process_done_locked(blk);
	}
}

unsigned virtio_blk_inflight(struct virtio_blk *blk)
{
	unsigned n;

	pthread_mutex_lock(&blk->done_lock);
	n = blk->io_inflight;
	pthread_mutex_unlock(&blk->done_lock);
	return n;
}

/* Polled bdev (device lock held): run its completions here until none is
 * in flight, leaving them on the done list for the caller (a reset drops
 * them, a drain completes them). */
static void wait_idle_polled(struct virtio_blk *blk)
{
	bool was_processing;

	pthread_mutex_lock(&blk->done_lock);
	was_processing = blk->processing;
	blk->processing = true;
	pthread_mutex_unlock(&blk->done_lock);
	while (virtio_blk_inflight(blk) && bdev_aio_poll(blk->bs, true) >= 0)
		;
	pthread_mutex_lock(&blk->done_lock);
	blk->processing = was_processing;
	pthread_mutex_unlock(&blk->done_lock);
}

static void wait_idle(struct virtio_blk *blk)
{
	if (blk->poll_fd >= 0) {
		virtio_pci_lock(&blk->vp);
		wait_idle_polled(blk);
		virtio_pci_unlock(&blk->vp);
	}
	pthread_mutex_lock(&blk->done_lock);
	while (blk->io_inflight)
		pthread_cond_wait(&blk->idle_cond, &blk->done_lock);
	pthread_mutex_unlock(&blk->done_lock);
}

void virtio_blk_drain(struct virtio_blk *blk)
{
	wait_idle(blk);
	virtio_pci_lock(&blk->vp);
	process_done_locked(blk);	/* new requests wait for the device to run again */
	virtio_pci_unlock(&blk->vp);
}

/* --- submission ----------------------------------------------------------- */

void virtio_blk_submit(struct virtio_blk *blk, struct blk_req *r, bool may_unmap)
{
	pthread_mutex_lock(&blk->done_lock);
	blk->io_inflight++;
	pthread_mutex_unlock(&blk->done_lock);
	switch (r->op) {
	case VIRTIO_BLK_OP_READ:
		bdev_aio_readv(blk->bs, r->offset, r->iov, r->niov, req_done, r);
		break;
	case VIRTIO_BLK_OP_WRITE:
		bdev_aio_writev(blk->bs, r->offset, r->iov, r->niov, req_done, r);
		break;
	case VIRTIO_BLK_OP_FLUSH:
		bdev_aio_flush(blk->bs, req_done, r);
		break;
	case VIRTIO_BLK_OP_DISCARD:
		bdev_aio_discard(blk->bs, r->offset, r->bytes, req_done, r);
		break;
	case VIRTIO_BLK_OP_WRITE_ZEROES:
		bdev_aio_write_zeroes(blk->bs, r->offset, r->bytes, may_unmap, req_done, r);
		break;
	default:
		req_done(r, -EINVAL);
	}
	/* an immediate error has already gone through req_done */
}

/* --- serving the queues --------------------------------------------------- */

/* Polled bdev (device lock held): start what was submitted and run the
 * callbacks of what finished; callbacks may submit again (writethrough
 * flushes), so until a poll finds nothing. */
static void poll_bdev(struct virtio_blk *blk)
{
	while (bdev_aio_poll(blk->bs, false) > 0)
		;
}

/* Queue q had kicks suppressed while completions went out (device lock
 * held). quiet: some went to a polling driver (no interrupt), whose
 * answer is watched for and served; otherwise kicks are asked for again
 * (and what came in between is served). */
static void answer_or_listen(struct virtio_blk *blk, unsigned q, bool quiet)
{
	struct virtq *vq = &blk->vp.vqs[q];
	bool serve = !blk->vp.broken && !blk->stopping;

	if (serve && quiet && virtq_answer_wait(&blk->answer[q], vq, SPIN_NS)) {
		process_queue(blk, q, false);
		return;
	}
	virtq_enable_notify(vq);
	if (serve && virtq_has_work(vq))
		process_queue(blk, q, false);
}

/* The polled bdev's completion fd is readable (event loop). Kicks are
 * suppressed on the queues waiting for them before the completions go
 * out, so a polling driver that answers at once does not exit: its
 * answer is watched for (answer_or_listen). */
static void poll_ready(void *opaque, uint32_t events)
{
	struct virtio_blk *blk = opaque;
	unsigned kick_mode = 0, quiet;

	(void)events;
	virtio_pci_lock(&blk->vp);
	for (unsigned q = 0; q < blk->conf.num_queues; q++) {
		struct virtq *vq = &blk->vp.vqs[q];

		if (virtq_ready(vq) && !vq->no_notify) {
			virtq_suppress_kicks(vq);
			kick_mode |= 1u << q;
		}
	}
	begin_processing(blk);		/* one used index update for the lot */
	poll_bdev(blk);
	quiet = end_processing(blk);
	for (unsigned q = 0; kick_mode >> q; q++)
		if (kick_mode & (1u << q))
			answer_or_listen(blk, q, quiet & (1u << q));
	virtio_pci_unlock(&blk->vp);
}

/* What one pass over a queue took: at most a ring's worth of requests and
 * PASS_BYTES of data (memory-backed images are copied right here), so
 * the loop's other work never waits long. */
struct pass {
	unsigned popped;
	uint64_t bytes;
};

static bool pass_full(const struct pass *pass, const struct virtq *vq)
{
	return pass->popped >= vq->size || pass->bytes >= PASS_BYTES;
}

/* Pop and dispatch until the ring is empty or the pass is full; returns
 * virtq_pop's last result. */
static int process_ring(struct virtio_blk *blk, struct virtq *vq, unsigned q,
			struct pass *pass, unsigned *notify)
{
	struct virtio_pci *vp = &blk->vp;
	int r = 0;

	while (!pass_full(pass, vq) && (r = virtq_pop(vq, vp->elem)) == 1) {
		pass->popped++;
		pass->bytes += vp->elem->out_len + vp->elem->in_len;
		if (!virtio_blk_handle_request(blk, q, vp->elem, notify))
			break;
	}
	return r;
}

/* The ring ran empty after a pass whose requests all finished already
 * (done inline, or fast): hand them to the driver and watch the ring for
 * SPIN_NS, the time a driver needs to answer completions with new
 * requests. True when some came. */
static bool await_more(struct virtio_blk *blk, struct virtq *vq)
{
	uint64_t until;

	process_done_locked(blk);
	until = clock_ns() + SPIN_NS;
	do {
		if (virtq_has_work(vq))
			return true;
		__builtin_ia32_pause();
	} while (clock_ns() < until);
	return false;
}

/* Serve queue q; polled: from the poll timer. */
static void process_queue(struct virtio_blk *blk, unsigned q, bool polled)
{
	struct virtio_pci *vp = &blk->vp;
	struct virtq *vq = &vp->vqs[q];
	struct virtq_poll *poll = &blk->queue_poll[q];
	struct pass pass = { 0 };
	unsigned notify = 0;
	bool fast;
	int r;

	virtio_blk_apply_driver_ok(blk);
	begin_processing(blk);
	for (;;) {
		unsigned before = pass.popped;

		virtq_suppress_kicks(vq);
		r = process_ring(blk, vq, q, &pass, &notify);
		if (blk->poll_fd >= 0)
			poll_bdev(blk);	/* what is done (inline copies) completes now, so
					 * the checks below see nothing in flight */
		if (r != 0 || pass_full(&pass, vq) || vp->broken)
			break;
		/* Nothing in flight: requests finish as fast as they come (done
		 * inline), so the driver's next ones are watched for rather than
		 * kicked. With requests in flight, kicks get new ones to the
		 * block layer at once, which keeps a device's queue full. */
		fast = !virtio_blk_inflight(blk);
		if (fast && pass.popped > before && await_more(blk, vq))
			continue;
		if (fast && !blk->stopping && virtq_poll_again(poll, polled, pass.popped))
			break;		/* kicks stay off: the timer looks again */
		virtq_enable_notify(vq);
		if (!virtq_has_work(vq))
			break;
	}
	if (r < 0)
		virtio_pci_set_needs_reset(vp, vq->error);
	send_interrupts(blk, notify);
	end_processing(blk);
	if (r == 1 && pass_full(&pass, vq) && !vp->broken)
		virtio_pci_kick_later(vp, q);	/* the rest on the loop's next round */
}

/* Kicks are suppressed while we work through the ring (QEMU's
 * virtio_queue_set_notification): the driver adding requests meanwhile
 * does not exit. Re-enabling asks for a kick beyond the avail index we
 * saw, and the ring is checked once more for what came in between;
 * while requests stream, the poll timer looks instead (POLL_BATCH). */
void virtio_blk_process(struct virtio_pci *vp, unsigned q)
{
	process_queue(vp->opaque, q, false);
}

static void queue_poll_timer(void *opaque)
{
	struct virtq_poll *qp = opaque;
	struct virtio_blk *blk = qp->owner;

	virtio_pci_lock(&blk->vp);
	if (!blk->stopping && !blk->vp.broken && qp->q < blk->conf.num_queues &&
	    virtq_ready(&blk->vp.vqs[qp->q]))
		process_queue(blk, qp->q, true);
	virtio_pci_unlock(&blk->vp);
}

static int create_poll_timers(struct virtio_blk *blk)
{
	for (unsigned q = 0; q < blk->conf.num_queues; q++) {
		if (virtq_poll_init(&blk->queue_poll[q], blk->loop, queue_poll_timer, blk, q,
				    POLL_NS, POLL_BATCH, POLL_EMPTY) < 0)
			return -ENOMEM;
	}
	return 0;
}

static void stop_poll_timers(struct virtio_blk *blk)
{
	virtio_pci_lock(&blk->vp);
	blk->stopping = true;
	virtio_pci_unlock(&blk->vp);
	for (unsigned q = 0; q < VIRTIO_BLK_MAX_NUM_QUEUES; q++)
		virtq_poll_cancel(&blk->queue_poll[q]);
}

static void free_poll_timers(struct virtio_blk *blk)
{
	for (unsigned q = 0; q < VIRTIO_BLK_MAX_NUM_QUEUES; q++)
		virtq_poll_destroy(&blk->queue_poll[q]);
}

/* Reset (device lock held): wait for the block layer like QEMU's
 * blk_drain, so nothing writes guest memory afterwards; finished requests
 * of the old generation are dropped. */
static void virtio_blk_reset(struct virtio_pci *vp)
{
	struct virtio_blk *blk = vp->opaque;
	struct blk_req *r;

	wait_idle(blk);
	blk->generation++;
	r = take_done(blk);
	while (r) {
		struct blk_req *next = r->next;

		free(r);
		r = next;
	}
	blk->st.wce = blk->original_wce;
	blk->st.driver_ok_seen = false;
	virtio_blk_refresh_config(blk);
}

/* --- setup ---------------------------------------------------------------- */

static struct event_loop *private_loop;
static pthread_once_t private_loop_once = PTHREAD_ONCE_INIT;

static void private_loop_init(void)
{
	struct event_loop *l = event_loop_new();

	if (l && event_loop_start(l) == 0)
		private_loop = l;
}

struct loop_barrier {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool passed;
};

static void barrier_cb(void *opaque)
{
	struct loop_barrier *b = opaque;

	pthread_mutex_lock(&b->lock);
	b->passed = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* Wait until the loop has run every call queued before this one. */
static void loop_barrier(struct event_loop *l)
{
	struct loop_barrier b = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

	if (event_loop_call(l, barrier_cb, &b) < 0)
		return;
	pthread_mutex_lock(&b.lock);
	while (!b.passed)
		pthread_cond_wait(&b.cond, &b.lock);
	pthread_mutex_unlock(&b.lock);
}

void virtio_blk_exit(struct virtio_blk *blk)
{
	stop_poll_timers(blk);
	virtio_blk_drain(blk);
	if (blk->poll_fd >= 0)
		event_loop_del_fd(blk->loop, blk->poll_fd);
	event_timer_disarm(blk->done_timer);
	loop_barrier(blk->loop);	/* no completion call or timer left that names blk */
	free_poll_timers(blk);
	event_timer_free(blk->done_timer);
	blk->done_timer = NULL;
	pthread_cond_destroy(&blk->idle_cond);
	pthread_mutex_destroy(&blk->done_lock);
	free(blk->vp.elem);
	blk->vp.elem = NULL;
	free(blk->done_elem);
	blk->done_elem = NULL;
}

static void init_ops(struct virtio_blk *blk)
{
	struct virtio_dev_ops *o = &blk->ops;

	memset(o, 0, sizeof(*o));
	o->name = "virtio-blk-pci";
	o->device_type = VIRTIO_ID_BLOCK;
	o->transitional_id = VIRTIO_BLK_PCI_ID;
	o->class_code = PCI_CLASS_STORAGE_SCSI;
	o->features = virtio_blk_offered_features(blk);
	o->num_queues = blk->conf.num_queues;
	o->queue_size = blk->conf.queue_size;
	o->config_size = virtio_blk_config_size(&blk->conf);
	o->queue_notify = virtio_blk_process;
	o->config_write = virtio_blk_config_write;
	o->reset = virtio_blk_reset;
}

int virtio_blk_init(struct virtio_blk *blk, struct bdev *bs, const struct virtio_blk_conf *conf,
		    const struct guest_memory *mem, struct event_loop *loop)
{
	char err[160];
	int r;

	if (virtio_blk_conf_check(conf, err, sizeof(err)) < 0) {
		log_error("virtio-blk-pci: %s", err);
		return -EINVAL;
	}
	if (!loop) {
		pthread_once(&private_loop_once, private_loop_init);
		loop = private_loop;
		if (!loop)
			return -ENOMEM;
	}
	memset(blk, 0, sizeof(*blk));
	blk->conf = *conf;
	blk->bs = bs;
	blk->loop = loop;
	blk->read_only = conf->read_only || bdev_is_read_only(bs);
	blk->capacity = bdev_size(bs) / BDRV_SECTOR_SIZE;
	blk->sector_mask = conf->logical_block_size / BDRV_SECTOR_SIZE - 1;
	if (conf->serial)
		snprintf(blk->serial, sizeof(blk->serial), "%s", conf->serial);
	blk->conf.serial = blk->serial;
	blk->st.wce = blk->original_wce = conf->writeback;
	blk->st.num_queues = blk->st.local_num_queues = conf->num_queues;
	blk->st.queue_size = blk->st.local_queue_size = conf->queue_size;
	virtio_blk_guess_geometry(blk);
	init_ops(blk);
	pthread_mutex_init(&blk->done_lock, NULL);
	pthread_cond_init(&blk->idle_cond, NULL);
	r = bdev_aio_poll_fd(bs);	/* -EINVAL: not polled */
	if (r == -ENOTSUP) {
		log_error("virtio-blk-pci: %s: polled completions need an engine that can "
			  "signal them", bdev_filename(bs));
		return -ENOTSUP;
	}
	blk->poll_fd = r >= 0 ? r : -1;
	blk->done_elem = malloc(sizeof(*blk->done_elem));
	if (!blk->done_elem)
		return -ENOMEM;
	/* nothing completes before the first request: the handler may come first */
	r = blk->poll_fd >= 0 ? event_loop_add_fd(loop, blk->poll_fd, EPOLLIN, poll_ready, blk) : 0;
	if (r == 0)
		r = create_poll_timers(blk);
	if (r == 0) {
		blk->done_timer = event_timer_new(loop, process_done_cb, blk);
		r = blk->done_timer ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = virtio_pci_init(&blk->vp, &blk->ops, blk, mem);
	if (r < 0) {
		free_poll_timers(blk);	/* never armed */
		event_timer_free(blk->done_timer);
		blk->done_timer = NULL;
		if (blk->poll_fd >= 0)
			event_loop_del_fd(loop, blk->poll_fd);
		free(blk->done_elem);
		blk->done_elem = NULL;
		return r;
	}
	virtio_blk_refresh_config(blk);
	return 0;
}

/* --- migration state ------------------------------------------------------ */

static int virtio_blk_post_load(void *opaque)
{
	struct virtio_blk_state *st = opaque;

	/* The queues the stream was saved with must be the ones we have. */
	if (st->num_queues != st->local_num_queues || st->queue_size != st->local_queue_size)
		return -EINVAL;
	return 0;
}

static const struct vmstate_field virtio_blk_fields[] = {
	VMSTATE_BOOL(struct virtio_blk_state, wce),
	VMSTATE_BOOL(struct virtio_blk_state, driver_ok_seen),
	VMSTATE_U16_MAX(struct virtio_blk_state, num_queues, VIRTIO_MAX_QUEUES),
	VMSTATE_U16_MAX(struct virtio_blk_state, queue_size, VIRTQ_MAX_SIZE),
};
const struct vmstate_desc virtio_blk_vmstate =
	VMSTATE_DESC("virtio-blk", 1, virtio_blk_fields, virtio_blk_post_load);
