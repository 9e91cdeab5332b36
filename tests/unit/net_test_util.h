/* Shared helpers for the network backend tests: a recording frontend
 * (struct sink), waiting for frames with a deadline, a free loopback port,
 * and an event loop per test. Header-only; include after cmocka.h. */
#ifndef TESTS_UNIT_NET_TEST_UTIL_H
#define TESTS_UNIT_NET_TEST_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "net/net.h"
#include "vmm/event_loop.h"

#define SINK_MAX_FRAMES 4096

struct sink_frame {
	size_t len;
	uint8_t *data;
};

struct sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct sink_frame frames[SINK_MAX_FRAMES];
	unsigned n;
	bool busy;		/* can_receive() says no */
	unsigned send_ready;
};

static inline void sink_init(struct sink *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
}

static inline void sink_reset(struct sink *s)
{
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->n; i++)
		free(s->frames[i].data);
	s->n = 0;
	pthread_mutex_unlock(&s->lock);
}

static bool sink_can_receive(void *opaque)
{
	struct sink *s = opaque;
	bool busy;

	pthread_mutex_lock(&s->lock);
	busy = s->busy;
	pthread_mutex_unlock(&s->lock);
	return !busy;
}

static ssize_t sink_receive(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct sink *s = opaque;
	size_t len = 0, off = 0;
	uint8_t *p;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	p = malloc(len ? len : 1);
	for (int i = 0; i < iovcnt; i++) {
		memcpy(p + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	pthread_mutex_lock(&s->lock);
	if (s->n < SINK_MAX_FRAMES) {
		s->frames[s->n].len = len;
		s->frames[s->n].data = p;
		s->n++;
	} else {
		free(p);
	}
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return len;
}

static void sink_send_ready(void *opaque)
{
	struct sink *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->send_ready++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static inline void sink_attach(struct sink *s, struct net_backend *nb)
{
	struct net_frontend fe = {
		.opaque = s, .can_receive = sink_can_receive, .receive = sink_receive,
		.send_ready = sink_send_ready,
	};

	assert_non_null(nb);
	assert_int_equal(net_attach(nb, &fe), 0);
}

/* Wait until at least n frames arrived; false on timeout. */
static inline bool sink_wait(struct sink *s, unsigned n, unsigned timeout_ms)
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (s->n < n)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT)
			break;
	ok = s->n >= n;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

static inline uint64_t test_now_ms(void)
{
	return clock_ns() / 1000000;
}

/* Send one frame, retrying while the backend is full or not yet
 * connected; returns the final net_send() result. */
static inline ssize_t send_retry(struct net_backend *nb, const void *buf, size_t len,
				 unsigned timeout_ms)
{
	struct iovec iov = { (void *)buf, len };
	uint64_t end = test_now_ms() + timeout_ms;
	ssize_t r;

	for (;;) {
		r = net_send(nb, &iov, 1);
		if (r > 0 || (r < 0 && r != -ENOTCONN) || test_now_ms() > end)
			return r;
		usleep(200);
	}
}

/* Counters are updated right after the frontend callback returns: wait
 * until the one at offset off (in struct net_stats) reaches want. */
static inline uint64_t stat_wait(struct net_backend *nb, size_t off, uint64_t want)
{
	uint64_t end = test_now_ms() + 2000, v;
	struct net_stats st;

	for (;;) {
		net_get_stats(nb, &st);
		memcpy(&v, (uint8_t *)&st + off, sizeof(v));
		if (v >= want || test_now_ms() > end)
			return v;
		usleep(1000);
	}
}
#define STAT_WAIT(nb, field, want) stat_wait(nb, offsetof(struct net_stats, field), want)

/* A loopback port that was free a moment ago. */
static inline int free_port(int type)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, type, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static struct event_loop *test_loop;

static int loop_setup(void **state)
{
	test_loop = event_loop_new();
	assert_non_null(test_loop);
	assert_int_equal(event_loop_start(test_loop), 0);
	return 0;
}

/* Backends go first (their teardown runs on the loop thread). */
static int loop_teardown(void **state)
{
	net_cleanup();
	event_loop_stop(test_loop);
	return 0;
}

#endif
