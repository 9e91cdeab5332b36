/* The event loop thread: one epoll set for backend fds, a timerfd for
 * the earliest armed timer, and an eventfd for calls from other threads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include "vmm/event_loop.h"
#include "vmm/log.h"

struct fd_watch {
	int fd;
	event_fn fn;
	void *opaque;
	struct fd_watch *next;
};

struct event_timer {
	struct event_loop *loop;
	void (*fn)(void *);
	void *opaque;
	uint64_t deadline;	/* 0: disarmed */
	struct event_timer *next;
};

struct pending_call {
	void (*fn)(void *);
	void *opaque;
	struct pending_call *next;
};

struct event_loop {
	int epfd, timerfd, wakefd;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;	/* guards watches, timers, calls */
	struct fd_watch *watches;
	struct event_timer *timers;
	struct pending_call *calls;
};

uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int loop_watch_internal(struct event_loop *l, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	ev.data.fd = fd;
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

struct event_loop *event_loop_new(void)
{
	struct event_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	pthread_mutex_init(&l->lock, NULL);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->epfd < 0 || l->timerfd < 0 || l->wakefd < 0 ||
	    loop_watch_internal(l, l->timerfd) || loop_watch_internal(l, l->wakefd)) {
		log_error("event loop: %s", strerror(errno));
		free(l);
		return NULL;
	}
	return l;
}

static struct fd_watch *find_watch(struct event_loop *l, int fd)
{
	for (struct fd_watch *w = l->watches; w; w = w->next)
		if (w->fd == fd)
			return w;
	return NULL;
}

int event_loop_add_fd(struct event_loop *l, int fd, uint32_t events,
		      event_fn fn, void *opaque)
{
	struct epoll_event ev = { .events = events };
	struct fd_watch *w;
	int op = EPOLL_CTL_MOD, ret;

	pthread_mutex_lock(&l->lock);
	w = find_watch(l, fd);
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			pthread_mutex_unlock(&l->lock);
			return -ENOMEM;
		}
		w->fd = fd;
		w->next = l->watches;
		l->watches = w;
		op = EPOLL_CTL_ADD;
	}
	w->fn = fn;
	w->opaque = opaque;
	ev.data.fd = fd;
	ret = epoll_ctl(l->epfd, op, fd, &ev) ? -errno : 0;
	pthread_mutex_unlock(&l->lock);
	return ret;
}

int event_loop_mod_fd(struct event_loop *l, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	ev.data.fd = fd;
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) ? -errno : 0;
}

void event_loop_del_fd(struct event_loop *l, int fd)
{
	pthread_mutex_lock(&l->lock);
	for (struct fd_watch **p = &l->watches; *p; p = &(*p)->next) {
		if ((*p)->fd == fd) {
			struct fd_watch *w = *p;
			*p = w->next;
			free(w);
			break;
		}
	}
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	pthread_mutex_unlock(&l->lock);
}

static void loop_wake(struct event_loop *l)
{
	uint64_t one = 1;

	if (write(l->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("event loop wake: %s", strerror(errno));
}

/* Program the timerfd for the earliest deadline; lock held. */
static void timers_reprogram(struct event_loop *l)
{
	uint64_t earliest = 0;
	struct itimerspec its = { 0 };

	for (struct event_timer *t = l->timers; t; t = t->next)
		if (t->deadline && (!earliest || t->deadline < earliest))
			earliest = t->deadline;
	if (earliest) {
		its.it_value.tv_sec = earliest / 1000000000ULL;
		its.it_value.tv_nsec = earliest % 1000000000ULL;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(l->timerfd, TFD_TIMER_ABSTIME, &its, NULL);
}

struct event_timer *event_timer_new(struct event_loop *l, void (*fn)(void *), void *opaque)
{
	struct event_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->loop = l;
	t->fn = fn;
	t->opaque = opaque;
	pthread_mutex_lock(&l->lock);
	t->next = l->timers;
	l->timers = t;
	pthread_mutex_unlock(&l->lock);
	return t;
}

void event_timer_arm(struct event_timer *t, uint64_t deadline_ns)
{
	pthread_mutex_lock(&t->loop->lock);
	t->deadline = deadline_ns ? deadline_ns : 1;
	timers_reprogram(t->loop);
	pthread_mutex_unlock(&t->loop->lock);
}

void event_timer_disarm(struct event_timer *t)
{
	pthread_mutex_lock(&t->loop->lock);
	t->deadline = 0;
	timers_reprogram(t->loop);
	pthread_mutex_unlock(&t->loop->lock);
}

void event_timer_free(struct event_timer *t)
{
	struct event_loop *l;

	if (!t)
		return;
	l = t->loop;
	pthread_mutex_lock(&l->lock);
	for (struct event_timer **pp = &l->timers; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	timers_reprogram(l);
	pthread_mutex_unlock(&l->lock);
	free(t);
}

int event_loop_call(struct event_loop *l, void (*fn)(void *), void *opaque)
{
	struct pending_call *c = malloc(sizeof(*c)), **tail;

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->opaque = opaque;
	c->next = NULL;
	pthread_mutex_lock(&l->lock);
	for (tail = &l->calls; *tail; tail = &(*tail)->next)
		;
	*tail = c;
	pthread_mutex_unlock(&l->lock);
	loop_wake(l);
	return 0;
}

static void run_expired_timers(struct event_loop *l)
{
	uint64_t now = clock_ns(), expirations;

	if (read(l->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		return;
	for (;;) {
		struct event_timer *due = NULL;
		pthread_mutex_lock(&l->lock);
		for (struct event_timer *t = l->timers; t; t = t->next)
			if (t->deadline && t->deadline <= now) {
				due = t;
				break;
			}
		if (due)
			due->deadline = 0;
		else
			timers_reprogram(l);
		pthread_mutex_unlock(&l->lock);
		if (!due)
			break;
		due->fn(due->opaque);
	}
}

static void run_calls(struct event_loop *l)
{
	uint64_t v;
	struct pending_call *c;

	if (read(l->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&l->lock);
	c = l->calls;
	l->calls = NULL;
	pthread_mutex_unlock(&l->lock);
	while (c) {
		struct pending_call *next = c->next;
		c->fn(c->opaque);
		free(c);
		c = next;
	}
}

static void dispatch_fd(struct event_loop *l, int fd, uint32_t events)
{
	event_fn fn = NULL;
	void *opaque = NULL;

	pthread_mutex_lock(&l->lock);
	struct fd_watch *w = find_watch(l, fd);
	if (w) {
		fn = w->fn;
		opaque = w->opaque;
	}
	pthread_mutex_unlock(&l->lock);
	if (fn)
		fn(opaque, events);
}

static void *event_loop_thread(void *arg)
{
	struct event_loop *l = arg;
	struct epoll_event evs[16];

	while (__atomic_load_n(&l->running, __ATOMIC_ACQUIRE)) {
		int n = epoll_wait(l->epfd, evs, 16, -1);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == l->timerfd)
				run_expired_timers(l);
			else if (fd == l->wakefd)
				run_calls(l);
			else
				dispatch_fd(l, fd, evs[i].events);
		}
	}
	return NULL;
}

int event_loop_start(struct event_loop *l)
{
	l->running = true;
	if (pthread_create(&l->thread, NULL, event_loop_thread, l)) {
		l->running = false;
		return -1;
	}
	pthread_setname_np(l->thread, "event loop");
	return 0;
}

static void loop_stop_cb(void *opaque)
{
	struct event_loop *l = opaque;

	__atomic_store_n(&l->running, false, __ATOMIC_RELEASE);
}

void event_loop_stop(struct event_loop *l)
{
	if (!l->running)
		return;
	event_loop_call(l, loop_stop_cb, l);
	pthread_join(l->thread, NULL);
}
