/* Unit tests for the character backends (vmm/chardev.c): file and null
 * output, spec errors, the unix socket server with a real event loop
 * (round trip, flow control, reconnect) and stdio over pipes (escape). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "vmm/chardev.h"
#include "vmm/event_loop.h"

/* A frontend that records what it receives; room is its can_read. */
struct sink {
	pthread_mutex_t lock;
	uint8_t buf[4096];
	size_t len;
	size_t room;
	int connects, disconnects;
};

static size_t sink_can_read(void *opaque)
{
	struct sink *s = opaque;
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = s->room;
	pthread_mutex_unlock(&s->lock);
	return room;
}

static void sink_read(void *opaque, const uint8_t *buf, size_t len)
{
	struct sink *s = opaque;

	pthread_mutex_lock(&s->lock);
	assert_true(len <= s->room);
	if (s->len + len <= sizeof(s->buf)) {
		memcpy(s->buf + s->len, buf, len);
		s->len += len;
	}
	s->room -= len;
	pthread_mutex_unlock(&s->lock);
}

static void sink_event(void *opaque, bool connected)
{
	struct sink *s = opaque;

	pthread_mutex_lock(&s->lock);
	if (connected)
		s->connects++;
	else
		s->disconnects++;
	pthread_mutex_unlock(&s->lock);
}

static void sink_init(struct sink *s, size_t room)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->room = room;
}

static struct chardev_frontend sink_fe(struct sink *s)
{
	return (struct chardev_frontend){
		.can_read = sink_can_read, .read = sink_read, .event = sink_event, .opaque = s,
	};
}

/* Poll a condition for up to two seconds. */
#define WAIT_FOR(cond) do {						\
		for (int w_ = 0; w_ < 2000 && !(cond); w_++)		\
			usleep(1000);					\
	} while (0)

static size_t sink_len(struct sink *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int sink_count(struct sink *s, int *field)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = *field;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "/tmp/minikvm-test-chardev-%d-%s", (int)getpid(), name);
}

static void test_file_backend(void **state)
{
	char path[128], spec[160], err[256] = "", got[64] = "";
	struct chardev *c;
	uint64_t written, dropped;
	FILE *f;

	tmp_path(path, sizeof(path), "file");
	snprintf(spec, sizeof(spec), "file:%s", path);
	c = chardev_open(spec, err, sizeof(err));
	assert_non_null(c);
	assert_true(chardev_is_connected(c));
	assert_int_equal(chardev_write(c, (const uint8_t *)"hello ", 6), 6);
	assert_int_equal(chardev_write(c, (const uint8_t *)"world\n", 6), 6);
	chardev_get_stats(c, &written, &dropped);
	assert_int_equal(written, 12);
	assert_int_equal(dropped, 0);
	chardev_close(c);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, sizeof(got) - 1, f), 12);
	fclose(f);
	assert_string_equal(got, "hello world\n");
	/* Reopening truncates, like QEMU's file backend. */
	c = chardev_open(spec, err, sizeof(err));
	assert_non_null(c);
	chardev_close(c);
	f = fopen(path, "r");
	assert_int_equal(fread(got, 1, sizeof(got), f), 0);
	fclose(f);
	unlink(path);
}

static void test_null_backend(void **state)
{
	char err[256] = "";
	const char *specs[] = { "null", "none" };

	for (int i = 0; i < 2; i++) {
		struct chardev *c = chardev_open(specs[i], err, sizeof(err));
		struct sink s;
		struct chardev_frontend fe;

		assert_non_null(c);
		sink_init(&s, 100);
		fe = sink_fe(&s);
		chardev_attach(c, NULL, &fe);
		assert_int_equal(chardev_write(c, (const uint8_t *)"abc", 3), 3);
		chardev_accept_input(c);	/* no loop: a no-op */
		chardev_close(c);
	}
}

static void expect_error(const char *spec, const char *needle)
{
	char err[256] = "";
	struct chardev *c = chardev_open(spec, err, sizeof(err));

	if (c)
		fail_msg("spec '%s' was accepted", spec ? spec : "(null)");
	if (!strstr(err, needle))
		fail_msg("spec '%s': error '%s' lacks '%s'", spec ? spec : "(null)", err, needle);
}

static void test_bad_specs(void **state)
{
	char path[128], spec[200], longpath[300];
	int fd;

	expect_error("", "empty");
	expect_error(NULL, "empty");
	expect_error("bogus", "unknown character device 'bogus'");
	expect_error("tcp:1234", "unknown character device");
	expect_error("file:", "missing path");
	expect_error("file:/nonexistent-dir/x/y", "cannot open /nonexistent-dir/x/y");
	expect_error("unix:", "missing socket path");
	expect_error("unix:,server", "missing socket path");
	expect_error("unix:/tmp/x,server,frobnicate", "unknown option 'frobnicate'");
	expect_error("unix:/tmp/x,server,wait=maybe", "unknown option 'wait=maybe'");
	expect_error("unix:/nonexistent-dir/sock,server,nowait", "cannot listen");
	expect_error("unix:/nonexistent-dir/sock", "cannot connect");
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "unix:/", 6);
	strcpy(longpath + 200, ",server,nowait");
	expect_error(longpath, "longer than");
	/* A server never deletes a file that is not a socket. */
	tmp_path(path, sizeof(path), "notasock");
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(spec, sizeof(spec), "unix:%s,server,nowait", path);
	expect_error(spec, "not a socket");
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static ssize_t read_timeout(int fd, void *buf, size_t len)
{
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return read(fd, buf, len);
}

static void test_unix_server_roundtrip(void **state)
{
	char path[128], spec[200], err[256] = "", got[16] = "";
	struct event_loop *loop = event_loop_new();
	struct chardev_frontend fe;
	struct chardev *c;
	struct sink s;
	uint64_t written, dropped;
	int cl;

	assert_non_null(loop);
	tmp_path(path, sizeof(path), "sock");
	snprintf(spec, sizeof(spec), "unix:%s,server,nowait", path);
	c = chardev_open(spec, err, sizeof(err));
	assert_non_null(c);
	assert_false(chardev_is_connected(c));
	/* Output without a client is dropped, not queued or blocking. */
	assert_int_equal(chardev_write(c, (const uint8_t *)"lost", 4), 0);
	sink_init(&s, 1000);
	fe = sink_fe(&s);
	chardev_attach(c, loop, &fe);
	assert_int_equal(event_loop_start(loop), 0);

	for (int round = 1; round <= 2; round++) {
		cl = connect_unix(path);
		assert_true(cl >= 0);
		WAIT_FOR(sink_count(&s, &s.connects) == round);
		assert_int_equal(sink_count(&s, &s.connects), round);
		assert_true(chardev_is_connected(c));
		assert_int_equal(write(cl, "ping", 4), 4);
		WAIT_FOR(sink_len(&s) == 4u * round);
		assert_int_equal(sink_len(&s), 4u * round);
		assert_memory_equal(s.buf + 4 * (round - 1), "ping", 4);
		assert_int_equal(chardev_write(c, (const uint8_t *)"pong", 4), 4);
		assert_int_equal(read_timeout(cl, got, sizeof(got)), 4);
		assert_memory_equal(got, "pong", 4);
		close(cl);
		WAIT_FOR(sink_count(&s, &s.disconnects) == round);
		assert_int_equal(sink_count(&s, &s.disconnects), round);
		assert_false(chardev_is_connected(c));
	}
	chardev_get_stats(c, &written, &dropped);
	assert_int_equal(written, 8);
	assert_int_equal(dropped, 4);
	event_loop_stop(loop);
	chardev_close(c);
	assert_int_not_equal(access(path, F_OK), 0);	/* socket removed */
}

static void test_unix_flow_control(void **state)
{
	char path[128], spec[200], err[256] = "";
	struct event_loop *loop = event_loop_new();
	struct chardev_frontend fe;
	struct chardev *c;
	struct sink s;
	int cl;

	tmp_path(path, sizeof(path), "flow");
	snprintf(spec, sizeof(spec), "unix:%s,server=on,wait=off", path);
	c = chardev_open(spec, err, sizeof(err));
	assert_non_null(c);
	sink_init(&s, 3);	/* a tiny FIFO */
	fe = sink_fe(&s);
	chardev_attach(c, loop, &fe);
	event_loop_start(loop);
	cl = connect_unix(path);
	assert_true(cl >= 0);
	assert_int_equal(write(cl, "abcdefghij", 10), 10);
	WAIT_FOR(sink_len(&s) == 3);
	usleep(20000);
	assert_int_equal(sink_len(&s), 3);	/* paused, nothing lost */
	for (int i = 0; i < 10 && sink_len(&s) < 10; i++) {
		pthread_mutex_lock(&s.lock);
		s.room = 3;
		pthread_mutex_unlock(&s.lock);
		chardev_accept_input(c);
		size_t want = sink_len(&s) + 3 > 10 ? 10 : sink_len(&s) + 3;
		WAIT_FOR(sink_len(&s) == want);
	}
	assert_int_equal(sink_len(&s), 10);
	assert_memory_equal(s.buf, "abcdefghij", 10);
	close(cl);
	event_loop_stop(loop);
	chardev_close(c);
}

static void test_unix_client(void **state)
{
	char path[128], spec[200], err[256] = "", got[8] = "";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct event_loop *loop = event_loop_new();
	struct chardev_frontend fe;
	struct chardev *c;
	struct sink s;
	int lfd, peer;

	tmp_path(path, sizeof(path), "client");
	unlink(path);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	c = chardev_open(spec, err, sizeof(err));
	assert_non_null(c);
	assert_true(chardev_is_connected(c));
	peer = accept(lfd, NULL, NULL);
	assert_true(peer >= 0);
	sink_init(&s, 100);
	fe = sink_fe(&s);
	chardev_attach(c, loop, &fe);
	event_loop_start(loop);
	assert_int_equal(chardev_write(c, (const uint8_t *)"up", 2), 2);
	assert_int_equal(read_timeout(peer, got, sizeof(got)), 2);
	assert_memory_equal(got, "up", 2);
	assert_int_equal(write(peer, "down", 4), 4);
	WAIT_FOR(sink_len(&s) == 4);
	assert_memory_equal(s.buf, "down", 4);
	close(peer);
	WAIT_FOR(sink_count(&s, &s.disconnects) == 1);
	assert_false(chardev_is_connected(c));
	assert_int_equal(chardev_write(c, (const uint8_t *)"gone", 4), 0);
	event_loop_stop(loop);
	chardev_close(c);
	close(lfd);
	unlink(path);
}

/* stdio over pipes: fds 0 and 1 are swapped for the test and restored. */
static int quit_calls;

static void count_quit(void *opaque)
{
	(*(int *)opaque)++;
}

static void test_stdio_pipe_escape_and_eof(void **state)
{
	int in[2], out[2], saved0 = dup(0), saved1 = dup(1);
	char err[256] = "", got[256] = "";
	struct event_loop *loop = event_loop_new();
	struct chardev_frontend fe;
	struct chardev *c, *c2;
	struct sink s;
	ssize_t n;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	fflush(stdout);
	dup2(in[0], 0);
	dup2(out[1], 1);
	close(in[0]);
	close(out[1]);
	c = chardev_open("mon:stdio", err, sizeof(err));
	c2 = chardev_open("stdio", err, sizeof(err));	/* only one user of stdio */
	dup2(saved1, 1);
	assert_non_null(c);
	assert_null(c2);
	assert_non_null(strstr(err, "multiple"));
	chardev_set_quit_handler(count_quit, &quit_calls);
	sink_init(&s, 1000);
	fe = sink_fe(&s);
	chardev_attach(c, loop, &fe);
	event_loop_start(loop);

	/* Ctrl-a Ctrl-a is a literal Ctrl-a, Ctrl-a c is ignored, Ctrl-a h
	 * prints help on the output, Ctrl-a x quits. */
	assert_int_equal(write(in[1], "ab\x01\x01" "c\x01" "cd\x01h", 10), 10);
	WAIT_FOR(sink_len(&s) == 5);
	assert_int_equal(sink_len(&s), 5);
	assert_memory_equal(s.buf, "ab\x01" "cd", 5);
	n = read(out[0], got, sizeof(got) - 1);
	assert_true(n > 0);
	assert_non_null(strstr(got, "C-a x"));
	assert_int_equal(chardev_write(c, (const uint8_t *)"out", 3), 3);
	n = read(out[0], got, 3);
	assert_int_equal(n, 3);
	assert_memory_equal(got, "out", 3);
	assert_int_equal(write(in[1], "\x01x", 2), 2);
	WAIT_FOR(quit_calls == 1);
	assert_int_equal(quit_calls, 1);
	/* EOF on a pipe stops input without quitting. */
	assert_int_equal(write(in[1], "z", 1), 1);
	close(in[1]);
	WAIT_FOR(sink_len(&s) == 6);
	usleep(20000);
	assert_int_equal(sink_len(&s), 6);
	assert_int_equal(quit_calls, 1);
	event_loop_stop(loop);
	chardev_close(c);
	chardev_set_quit_handler(NULL, NULL);
	dup2(saved0, 0);
	close(saved0);
	close(saved1);
	close(out[0]);
	/* stdio is free again once closed. */
}

static void test_stdio_output_never_blocks(void **state)
{
	int out[2], saved1 = dup(1);
	char err[256] = "";
	struct chardev *c;
	uint8_t chunk[4096];
	uint64_t written, dropped;
	size_t total = 0;

	assert_int_equal(pipe(out), 0);
	fflush(stdout);
	dup2(out[1], 1);
	close(out[1]);
	c = chardev_open("stdio", err, sizeof(err));
	dup2(saved1, 1);
	close(saved1);
	assert_non_null(c);
	memset(chunk, 'x', sizeof(chunk));
	/* Nobody reads the pipe: far more than its capacity must not block. */
	for (int i = 0; i < 512; i++)	/* 2 MiB, more than even a 1 MiB pipe */
		total += chardev_write(c, chunk, sizeof(chunk));
	chardev_get_stats(c, &written, &dropped);
	assert_int_equal(written, total);
	assert_true(dropped > 0);
	assert_int_equal(written + dropped, 512 * sizeof(chunk));
	/* The shared stdout description was left blocking. */
	assert_int_equal(fcntl(1, F_GETFL) & O_NONBLOCK, 0);
	/* A vanished reader drops output instead of raising SIGPIPE. */
	close(out[0]);
	assert_int_equal(chardev_write(c, chunk, 10), 0);
	chardev_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_backend),
		cmocka_unit_test(test_null_backend),
		cmocka_unit_test(test_bad_specs),
		cmocka_unit_test(test_unix_server_roundtrip),
		cmocka_unit_test(test_unix_flow_control),
		cmocka_unit_test(test_unix_client),
		cmocka_unit_test(test_stdio_pipe_escape_and_eof),
		cmocka_unit_test(test_stdio_output_never_blocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
