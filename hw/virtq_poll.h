/* Notification polling for virtio devices: while a queue streams, the
 * device looks at it again from a timer instead of asking the driver for
 * a kick (each kick is a guest exit). A busy pass (at least `batch`
 * chains) starts the polling; every look that finds work continues it;
 * after `max_empty` empty looks in a row the device asks for kicks again.
 * The interval doubles after each empty look, at most POLL_MAX_SHIFT
 * times. Used by virtio-net (tx) and virtio-blk. */
#ifndef HW_VIRTQ_POLL_H
#define HW_VIRTQ_POLL_H

#include <stdbool.h>
#include <stdint.h>

struct event_loop;
struct event_timer;

struct virtq_poll {
	void *owner;			/* the device, for the timer callback */
	unsigned q;			/* the queue it watches */
	struct event_timer *timer;	/* NULL: never polls (no event loop) */
	uint64_t base_ns;		/* first interval */
	unsigned batch;			/* chains in a pass that start polling */
	unsigned max_empty;		/* empty looks before kicks come back */
	unsigned empty;			/* empty looks in a row */
};

/* 0, or -ENOMEM. Without a loop the poller stays off. fn runs on the
 * loop with p (p->owner, p->q) when the timer fires. */
int virtq_poll_init(struct virtq_poll *p, struct event_loop *l, void (*fn)(void *),
		    void *owner, unsigned q, uint64_t base_ns, unsigned batch,
		    unsigned max_empty);
/* Stop the timer (the owner no longer re-arms it), and after the loop has
 * passed (no callback running), release it. */
void virtq_poll_cancel(struct virtq_poll *p);
void virtq_poll_destroy(struct virtq_poll *p);
/* A pass that found the queue empty after `done` chains; polled: the
 * pass ran from the timer. True when the timer was armed for another
 * look (keep kicks off); false: enable notifications as usual. */
bool virtq_poll_again(struct virtq_poll *p, bool polled, unsigned done);
/* The next interval after `empty` empty looks. */
uint64_t virtq_poll_interval(uint64_t base_ns, unsigned empty);

/* Answer watching: a device that has just handed completions to a driver
 * while other requests are still in flight (a slow backend) watches the
 * ring for up to ns for the driver's answer, with kicks suppressed, so a
 * driver that polls its used ring sends new requests without exiting to
 * kick and the device takes them without a wake-up. A driver that waits
 * for interrupts answers later: after VIRTQ_ANSWER_MISSES watches in a row
 * that saw nothing, the next VIRTQ_ANSWER_PAUSE are skipped (no spinning),
 * then watching is tried again. */
#define VIRTQ_ANSWER_MISSES	8
#define VIRTQ_ANSWER_PAUSE	256

struct virtq;

struct virtq_answer {
	unsigned misses;		/* watches in a row that saw nothing */
	unsigned skip;			/* watches still to skip */
	uint64_t hits;			/* answers taken without a kick (statistics) */
};

/* True when the driver added requests within ns (or had already). */
bool virtq_answer_wait(struct virtq_answer *a, const struct virtq *vq, uint64_t ns);

#endif
