/* The event loop thread: epoll over backend file descriptors and timers.
 * vCPU threads never block on backends; they hand work to this loop. */
#ifndef VMM_EVENT_LOOP_H
#define VMM_EVENT_LOOP_H

#include <stdint.h>
#include <stdbool.h>

struct event_loop;

typedef void (*event_fn)(void *opaque, uint32_t events);

struct event_loop *event_loop_new(void);
/* Watch fd for events (EPOLLIN/EPOLLOUT...); replaces an earlier watch. */
int event_loop_add_fd(struct event_loop *l, int fd, uint32_t events,
		      event_fn fn, void *opaque);
int event_loop_mod_fd(struct event_loop *l, int fd, uint32_t events);
void event_loop_del_fd(struct event_loop *l, int fd);

/* Timers: one-shot, on CLOCK_MONOTONIC nanoseconds; re-arm from the
 * callback for periodic use. Callbacks run on the loop thread. */
struct event_timer;
struct event_timer *event_timer_new(struct event_loop *l, void (*fn)(void *), void *opaque);
void event_timer_arm(struct event_timer *t, uint64_t deadline_ns);
void event_timer_disarm(struct event_timer *t);
/* Unlink and free a timer. Its callback must not be running or re-arm it
 * meanwhile: stop the owner's re-arming, disarm, let the loop pass (a
 * call queued after the disarm has run), then free. */
void event_timer_free(struct event_timer *t);
uint64_t clock_ns(void);

/* Run a function on the loop thread soon (thread-safe). */
int event_loop_call(struct event_loop *l, void (*fn)(void *), void *opaque);

int event_loop_start(struct event_loop *l);	/* spawns the thread */
void event_loop_stop(struct event_loop *l);

#endif
