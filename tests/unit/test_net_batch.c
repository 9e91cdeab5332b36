/* Batched socket I/O of the network backends: frames held by
 * net_send_more() leave in order at net_flush() (mixed with plain
 * net_send() and 64 KiB frames), frames read in one recv() but not yet
 * taken by a busy frontend are delivered after net_receive_ready() with
 * nothing more on the socket, and a raw peer whose length words and
 * frames are split across writes is reassembled. Loopback only. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include "tests/unit/net_test_util.h"

#define BIG_FRAME	65535

/* Frame seq of len bytes: the sequence number, then a pattern from it. */
static void seq_frame(uint8_t *buf, uint32_t seq, size_t len)
{
	memcpy(buf, &seq, 4);
	for (size_t i = 4; i < len; i++)
		buf[i] = (uint8_t)(seq * 7 + i);
}

static void check_seq_frame(const struct sink_frame *f, uint32_t seq, size_t len)
{
	uint32_t got;

	assert_int_equal(f->len, len);
	memcpy(&got, f->data, 4);
	assert_int_equal(got, seq);
	for (size_t i = 4; i < len; i++)
		if (f->data[i] != (uint8_t)(seq * 7 + i))
			fail_msg("frame %u: byte %zu is %u", seq, i, f->data[i]);
}

static size_t batch_len(uint32_t seq)
{
	return seq % 500 == 250 ? BIG_FRAME : 60 + (seq * 37) % 1455;
}

/* Two connected socket backends "<prefix>srv" (listening) and
 * "<prefix>cli", each with a sink; the connection is up on return. */
static void socket_pair(const char *prefix, struct sink *srv_sink, struct sink *cli_sink,
			struct net_backend **srv, struct net_backend **cli)
{
	char listen_spec[96], connect_spec[96], id[32], err[256];
	const char *specs[2] = { listen_spec, connect_spec };
	int port = free_port(SOCK_STREAM);

	snprintf(listen_spec, sizeof(listen_spec), "socket,id=%ssrv,listen=127.0.0.1:%d", prefix,
		 port);
	snprintf(connect_spec, sizeof(connect_spec), "socket,id=%scli,connect=127.0.0.1:%d",
		 prefix, port);
	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	snprintf(id, sizeof(id), "%ssrv", prefix);
	*srv = net_find(id);
	snprintf(id, sizeof(id), "%scli", prefix);
	*cli = net_find(id);
	sink_init(srv_sink);
	sink_init(cli_sink);
	sink_attach(srv_sink, *srv);
	sink_attach(cli_sink, *cli);
}

/* Hold one frame, flushing and waiting while the backend is full. */
static void send_more_retry(struct net_backend *nb, const uint8_t *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	uint64_t end = test_now_ms() + 10000;
	ssize_t r;

	while ((r = net_send_more(nb, &iov, 1)) == 0 && test_now_ms() < end) {
		net_flush(nb);
		usleep(500);
	}
	assert_int_equal(r, (ssize_t)len);
}

static void test_send_more_keeps_order(void **state)
{
	static struct sink srv_sink, cli_sink;
	static uint8_t buf[BIG_FRAME];
	struct net_backend *srv, *cli;
	const uint32_t total = 3000;
	struct net_stats st;

	socket_pair("ord", &srv_sink, &cli_sink, &srv, &cli);
	seq_frame(buf, 0, batch_len(0));
	assert_int_equal(send_retry(cli, buf, batch_len(0), 5000), (ssize_t)batch_len(0));
	for (uint32_t seq = 1; seq < total; seq++) {
		size_t len = batch_len(seq);

		seq_frame(buf, seq, len);
		if (seq % 100 == 0)	/* a plain send goes behind the held frames */
			assert_int_equal(send_retry(cli, buf, len, 5000), (ssize_t)len);
		else
			send_more_retry(cli, buf, len);
		if (seq % 64 == 0)
			net_flush(cli);
	}
	net_flush(cli);
	assert_true(sink_wait(&srv_sink, total, 20000));
	for (uint32_t seq = 0; seq < total; seq++)
		check_seq_frame(&srv_sink.frames[seq], seq, batch_len(seq));
	assert_int_equal(STAT_WAIT(cli, tx_packets, total), total);
	net_get_stats(cli, &st);
	assert_int_equal(st.tx_errors, 0);	/* (drops: sends before the connection) */
	sink_reset(&srv_sink);
}

/* 300 small frames arrive in one read while the frontend is busy: the
 * first is queued, the rest wait in the reader's buffer, and all of them
 * come out in order once the frontend has room again. */
static void test_busy_frontend_then_resume(void **state)
{
	static struct sink srv_sink, cli_sink;
	uint8_t buf[64];
	struct net_backend *srv, *cli;
	const uint32_t total = 300;

	socket_pair("res", &srv_sink, &cli_sink, &srv, &cli);
	seq_frame(buf, 0, sizeof(buf));		/* connected: the batch goes in one send */
	assert_int_equal(send_retry(cli, buf, sizeof(buf), 5000), (ssize_t)sizeof(buf));
	assert_true(sink_wait(&srv_sink, 1, 5000));
	sink_reset(&srv_sink);
	pthread_mutex_lock(&srv_sink.lock);
	srv_sink.busy = true;
	pthread_mutex_unlock(&srv_sink.lock);
	for (uint32_t seq = 0; seq < total; seq++) {
		seq_frame(buf, seq, sizeof(buf));
		send_more_retry(cli, buf, sizeof(buf));
	}
	net_flush(cli);
	usleep(200000);
	pthread_mutex_lock(&srv_sink.lock);
	assert_int_equal(srv_sink.n, 0);
	srv_sink.busy = false;
	pthread_mutex_unlock(&srv_sink.lock);
	net_receive_ready(srv);
	assert_true(sink_wait(&srv_sink, total, 5000));
	for (uint32_t seq = 0; seq < total; seq++)
		check_seq_frame(&srv_sink.frames[seq], seq, sizeof(buf));
	sink_reset(&srv_sink);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		assert_true(n > 0);
		p += n;
		len -= n;
	}
}

/* A QEMU-style peer whose writes cut length words and frames anywhere. */
static void test_split_writes_reassembled(void **state)
{
	static struct sink srv_sink;
	static uint8_t stream[8 * (4 + 2000)];
	char spec[96], err[256];
	const char *specs[1] = { spec };
	int port = free_port(SOCK_STREAM), fd;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	static const size_t cuts[] = { 1, 2, 3, 5, 700, 1, 4000, 9 };
	size_t off = 0, pos = 0;
	struct net_backend *srv;

	snprintf(spec, sizeof(spec), "socket,id=split,listen=127.0.0.1:%d", port);
	if (net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	srv = net_find("split");
	sink_init(&srv_sink);
	sink_attach(&srv_sink, srv);
	for (uint32_t seq = 0; seq < 8; seq++) {
		size_t len = 60 + seq * 250;

		stream[off] = len >> 24;
		stream[off + 1] = len >> 16;
		stream[off + 2] = len >> 8;
		stream[off + 3] = len;
		seq_frame(stream + off + 4, seq, len);
		off += 4 + len;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	for (unsigned i = 0; pos < off; i++) {
		size_t n = cuts[i % (sizeof(cuts) / sizeof(cuts[0]))];

		if (n > off - pos)
			n = off - pos;
		write_all(fd, stream + pos, n);
		pos += n;
		usleep(2000);
	}
	assert_true(sink_wait(&srv_sink, 8, 5000));
	for (uint32_t seq = 0; seq < 8; seq++)
		check_seq_frame(&srv_sink.frames[seq], seq, 60 + seq * 250);
	close(fd);
	sink_reset(&srv_sink);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_send_more_keeps_order, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_busy_frontend_then_resume, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_split_writes_reassembled, loop_setup,
						loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
