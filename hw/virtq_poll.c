/* Notification polling for virtio devices (see virtq_poll.h). */
#include <errno.h>
#include <stddef.h>
#include "hw/virtq_poll.h"
#include "hw/virtqueue.h"
#include "vmm/event_loop.h"

#define POLL_MAX_SHIFT	2	/* a chain waits at most 4 base intervals longer */

int virtq_poll_init(struct virtq_poll *p, struct event_loop *l, void (*fn)(void *),
		    void *owner, unsigned q, uint64_t base_ns, unsigned batch,
		    unsigned max_empty)
{
	*p = (struct virtq_poll){ .owner = owner, .q = q, .base_ns = base_ns, .batch = batch,
				  .max_empty = max_empty };
	if (!l)
		return 0;
	p->timer = event_timer_new(l, fn, p);
	return p->timer ? 0 : -ENOMEM;
}

void virtq_poll_cancel(struct virtq_poll *p)
{
	if (p->timer)
		event_timer_disarm(p->timer);
}

void virtq_poll_destroy(struct virtq_poll *p)
{
	event_timer_free(p->timer);
	p->timer = NULL;
}

uint64_t virtq_poll_interval(uint64_t base_ns, unsigned empty)
{
	return base_ns << (empty < POLL_MAX_SHIFT ? empty : POLL_MAX_SHIFT);
}

bool virtq_poll_again(struct virtq_poll *p, bool polled, unsigned done)
{
	if (!p->timer || (!polled && done < p->batch))
		return false;
	if (done)
		p->empty = 0;
	else if (++p->empty > p->max_empty)
		return false;
	event_timer_arm(p->timer, clock_ns() + virtq_poll_interval(p->base_ns, p->empty));
	return true;
}

bool virtq_answer_wait(struct virtq_answer *a, const struct virtq *vq, uint64_t ns)
{
	uint64_t until;

	if (virtq_has_work(vq))
		goto hit;
	if (a->skip) {
		a->skip--;
		return false;
	}
	until = clock_ns() + ns;
	do {
		__builtin_ia32_pause();
		if (virtq_has_work(vq))
			goto hit;
	} while (clock_ns() < until);
	if (++a->misses >= VIRTQ_ANSWER_MISSES) {
		a->misses = 0;
		a->skip = VIRTQ_ANSWER_PAUSE;
	}
	return false;
hit:
	a->misses = 0;
	a->hits++;
	return true;
}
