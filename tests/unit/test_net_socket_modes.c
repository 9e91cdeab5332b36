/* Unit tests for the socket backend's mcast= and fd= modes (net/socket.c)
 * on a real event loop, loopback only: two members of a multicast group on
 * 127.0.0.1 hear each other and themselves (QEMU's loop-back), inherited
 * stream and datagram sockets (socketpairs) carry frames both ways with
 * the right framing, a datagram fd with mcast= is replaced by a group
 * member, and every bad combination gets its own error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include "tests/unit/net_test_util.h"

#define GROUP	"239.255.77.1"	/* administratively scoped; sent on lo only */

static char err[256];

static int init_one(const char *spec)
{
	const char *specs[1] = { spec };

	return net_init_backends(specs, 1, test_loop, err, sizeof(err));
}

static void expect_error(const char *spec, const char *want)
{
	if (init_one(spec) == 0)
		fail_msg("'%s' was accepted", spec);
	if (!strstr(err, want))
		fail_msg("'%s': error '%s' lacks '%s'", spec, err, want);
}

static void fill(uint8_t *buf, size_t len, unsigned seq)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seq * 13 + i * 5);
}

static void check(const struct sink_frame *f, size_t len, unsigned seq)
{
	static uint8_t want[2048];

	assert_int_equal(f->len, len);
	fill(want, len, seq);
	assert_memory_equal(f->data, want, len);
}

/* Two backends from spec1 and spec2 (ids id1, id2), each with a sink. */
static void open_pair(const char *spec1, const char *spec2, const char *id1, const char *id2,
		      struct sink *s1, struct sink *s2)
{
	const char *specs[2] = { spec1, spec2 };

	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	sink_init(s1);
	sink_init(s2);
	sink_attach(s1, net_find(id1));
	sink_attach(s2, net_find(id2));
}

static void test_errors(void **state)
{
	char spec[128];
	int sp[2], pipefd[2], udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	expect_error("socket,id=s", "exactly one of listen=, connect=, udp=, mcast= and fd=");
	expect_error("socket,id=s,mcast=" GROUP ":5000,listen=127.0.0.1:5", "exactly one of");
	expect_error("socket,id=s,mcast=10.0.0.1:5000", "mcast=10.0.0.1:5000: not a multicast");
	expect_error("socket,id=s,mcast=" GROUP, "is not HOST:PORT");
	expect_error("socket,id=s,mcast=" GROUP ":5000,localaddr=127.0.0.1:7",
		     "localaddr=127.0.0.1:7: with mcast= an IPv4 address, no port");
	expect_error("socket,id=s,connect=127.0.0.1:5,localaddr=127.0.0.1",
		     "localaddr= is only valid with udp= or mcast=");
	expect_error("socket,id=s,fd=99999", "fd=99999 is not an open file descriptor");
	expect_error("socket,id=s,fd=x1", "fd=x1 is not an open file descriptor");
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	snprintf(spec, sizeof(spec), "socket,id=s,fd=%d", pipefd[0]);
	expect_error(spec, "is not a stream or datagram socket");
	snprintf(spec, sizeof(spec), "socket,id=s,fd=%d", udp);
	expect_error(spec, "the socket is not connected");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	snprintf(spec, sizeof(spec), "socket,id=s,fd=%d,mcast=" GROUP ":5000", sp[0]);
	expect_error(spec, "mcast= with fd= needs a datagram socket");
	snprintf(spec, sizeof(spec), "socket,id=s,fd=%d,udp=127.0.0.1:5", sp[0]);
	expect_error(spec, "exactly one of");
	/* A refused fd stays the caller's. */
	assert_true(fcntl(sp[0], F_GETFD) >= 0 && fcntl(udp, F_GETFD) >= 0);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sp[0]);
	close(sp[1]);
	close(udp);
}

/* Two members on lo: a frame from either reaches both (the sender too). */
static void test_mcast_pair(void **state)
{
	char spec1[96], spec2[96];
	int port = free_port(SOCK_DGRAM);
	static struct sink s1, s2;
	static uint8_t buf[2048];
	struct net_stats st;

	snprintf(spec1, sizeof(spec1), "socket,id=m1,mcast=" GROUP ":%d,localaddr=127.0.0.1",
		 port);
	snprintf(spec2, sizeof(spec2), "socket,id=m2,mcast=" GROUP ":%d,localaddr=127.0.0.1",
		 port);
	open_pair(spec1, spec2, "m1", "m2", &s1, &s2);
	fill(buf, 60, 1);
	assert_int_equal(send_retry(net_find("m1"), buf, 60, 2000), 60);
	assert_true(sink_wait(&s2, 1, 2000));
	assert_true(sink_wait(&s1, 1, 2000));
	check(&s2.frames[0], 60, 1);
	check(&s1.frames[0], 60, 1);
	fill(buf, 1514, 2);
	assert_int_equal(send_retry(net_find("m2"), buf, 1514, 2000), 1514);
	assert_true(sink_wait(&s1, 2, 2000));
	assert_true(sink_wait(&s2, 2, 2000));
	check(&s1.frames[1], 1514, 2);
	check(&s2.frames[1], 1514, 2);
	assert_int_equal(STAT_WAIT(net_find("m1"), rx_packets, 2), 2);
	net_get_stats(net_find("m1"), &st);
	assert_int_equal(st.tx_packets, 1);
	sink_reset(&s1);
	sink_reset(&s2);
}

/* A backend id on one end of a new AF_UNIX socketpair of type (fd=), with
 * a sink; sp[1] is the test's end. */
static void open_fd_backend(int type, const char *id, struct sink *s, int sp[2])
{
	char spec[64];

	assert_int_equal(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sp), 0);
	snprintf(spec, sizeof(spec), "socket,id=%s,fd=%d", id, sp[0]);
	if (init_one(spec) < 0)
		fail_msg("%s", err);
	sink_init(s);
	sink_attach(s, net_find(id));
}

/* An inherited AF_UNIX stream: QEMU's framing (4-byte big-endian length). */
static void test_fd_stream(void **state)
{
	static struct sink s;
	static uint8_t buf[2048];
	uint8_t got[4 + 300];
	int sp[2];

	open_fd_backend(SOCK_STREAM, "fs", &s, sp);
	fill(buf + 4, 1000, 3);
	buf[0] = 0, buf[1] = 0, buf[2] = 1000 >> 8, buf[3] = 1000 & 0xff;
	assert_int_equal(write(sp[1], buf, 1004), 1004);
	assert_true(sink_wait(&s, 1, 2000));
	check(&s.frames[0], 1000, 3);
	fill(buf, 300, 4);
	assert_int_equal(send_retry(net_find("fs"), buf, 300, 2000), 300);
	assert_int_equal(recv(sp[1], got, sizeof(got), MSG_WAITALL), sizeof(got));
	assert_memory_equal(got, ((uint8_t[]){ 0, 0, 300 >> 8, 300 & 0xff }), 4);
	assert_memory_equal(got + 4, buf, 300);
	sink_reset(&s);
	net_cleanup();		/* the backend owns the fd now and closes it */
	assert_int_equal(recv(sp[1], got, 1, 0), 0);
	close(sp[1]);
}

/* An inherited connected datagram socket: one frame per datagram. */
static void test_fd_dgram(void **state)
{
	static struct sink s;
	static uint8_t buf[2048];
	uint8_t got[2048];
	int sp[2];

	open_fd_backend(SOCK_DGRAM, "fd", &s, sp);
	fill(buf, 64, 5);
	assert_int_equal(send(sp[1], buf, 64, 0), 64);
	fill(buf, 1514, 6);
	assert_int_equal(send(sp[1], buf, 1514, 0), 1514);
	assert_true(sink_wait(&s, 2, 2000));
	check(&s.frames[0], 64, 5);
	check(&s.frames[1], 1514, 6);
	fill(buf, 700, 7);
	assert_int_equal(send_retry(net_find("fd"), buf, 700, 2000), 700);
	assert_int_equal(recv(sp[1], got, sizeof(got), 0), 700);
	assert_memory_equal(got, buf, 700);
	sink_reset(&s);
	close(sp[1]);
}

/* fd= with mcast=: the datagram fd is replaced by a member of the group. */
static void test_fd_mcast_clone(void **state)
{
	char spec1[128], spec2[96];
	int port = free_port(SOCK_DGRAM), udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	static struct sink s1, s2;
	static uint8_t buf[2048];

	snprintf(spec1, sizeof(spec1),
		 "socket,id=c1,fd=%d,mcast=" GROUP ":%d,localaddr=127.0.0.1", udp, port);
	snprintf(spec2, sizeof(spec2), "socket,id=c2,mcast=" GROUP ":%d,localaddr=127.0.0.1",
		 port);
	open_pair(spec1, spec2, "c1", "c2", &s1, &s2);
	fill(buf, 200, 8);
	assert_int_equal(send_retry(net_find("c2"), buf, 200, 2000), 200);
	assert_true(sink_wait(&s1, 1, 2000));
	check(&s1.frames[0], 200, 8);
	sink_reset(&s1);
	sink_reset(&s2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_errors, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_mcast_pair, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_fd_stream, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_fd_dgram, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_fd_mcast_clone, loop_setup, loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
