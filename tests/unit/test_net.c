/* Unit tests for the network backend core and the socket backend
 * (net/net.c, net/socket.c) on a real event loop, loopback only: spec
 * errors, -nic backends, MAC addresses, a listen/connect pair carrying
 * frames of every size from 1 to 1514 plus 65535 bytes, flow control with
 * a busy frontend, a UDP pair, a hostile raw TCP peer, reconnection. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include "tests/unit/net_test_util.h"

/* ---- spec errors ---- */

static void test_spec_errors(void **state)
{
	static const struct {
		const char *spec, *expect;
	} cases[] = {
		{ "", "missing backend type" },
		{ "id=x", "missing backend type" },
		{ "tap", "missing id=" },
		{ "user,id=a,id=b", "given twice" },
		{ "user,id=u,bogus=1", "unknown parameter 'bogus'" },
		{ "user,id=u,,bogus=1", "invalid id 'u,bogus=1'" },
		{ "vde,id=v", "backend type 'vde' is not supported" },
		{ "user,id=1bad", "invalid id '1bad'" },
		{ "user,id=", "invalid id ''" },
		{ "user,id=u,=3", "parameter without a name" },
		{ "user,id=u,", "empty parameter" },
		{ ",id=u", "missing backend type" },
		{ "type=,id=u", "missing backend type" },
		{ "user=x,id=u", "missing backend type" },
		{ "user,id=u,type=user", "unknown parameter 'type' for type user" },
		{ "tap,id=t,queues=+2", "queues= expects a number from 1 to 16, not '+2'" },
		{ "socket,id=s", "exactly one of listen=, connect=, udp=, mcast= and fd=" },
		{ "socket,id=s,listen=127.0.0.1:1,connect=127.0.0.1:2", "exactly one of" },
		{ "socket,id=s,udp=127.0.0.1:5", "localaddr= is mandatory with udp=" },
		{ "socket,id=s,localaddr=127.0.0.1:1,listen=127.0.0.1:5", "only valid with udp= or mcast=" },
		{ "socket,id=s,listen=127.0.0.1:99999", "invalid port in '127.0.0.1:99999'" },
		{ "socket,id=s,listen=127.0.0.1:5,,6", "invalid port in '127.0.0.1:5,6'" },
		{ "socket,id=s,connect=127.0.0.1:", "invalid port" },
		{ "socket,id=s,connect=nocolon", "is not HOST:PORT" },
		{ "user,id=u,net=10.0.2.0/33", "net= expects" },
		{ "user,id=u,net=10.0.2.0/255.0.255.0", "net= expects" },
		{ "user,id=u,net=10.0.2.0/31", "leaves no room" },
		{ "user,id=u,host=10.0.3.2", "host= 10.0.3.2 is not a host address" },
		{ "user,id=u,dns=10.0.2.255", "dns= 10.0.2.255 is not a host address" },
		{ "user,id=u,dhcpstart=10.0.2.2", "dhcpstart= must differ" },
		{ "user,id=u,host=ten", "host= expects an IPv4 address" },
		{ "user,id=u,hostfwd=tcp:127.0.0.1:2222", "missing '-'" },
		{ "user,id=u,hostfwd=sctp::1-:2", "bad protocol" },
		{ "user,id=u,hostfwd=tcp::1-:0", "bad guest port" },
		{ "user,id=u,hostfwd=tcp::70000-:22", "bad host port" },
		{ "user,id=u,hostfwd=tcp:1.2.3.x:1-:22", "bad host address" },
		{ "user,id=u,hostfwd=tcp::1-10.0.2.x:22", "bad guest address" },
		{ "user,id=u,restrict=maybe", "restrict= expects on or off" },
		{ "user,id=u,ipv4=off,ipv6=off", "nothing to do" },
		{ "user,id=u,hostname=0123456789012345678901234567890123", "longer than 32" },
		{ "user,id=u,smb=/tmp", "unknown parameter 'smb'" },
		{ "user,id=u,hostfwd=tcp:192.0.2.1:0-:22",
		  "could not set up host forwarding rule" },
		{ "tap,id=t,fd=99999", "fd=99999 is not an open file descriptor" },
		{ "tap,id=t,fd=3,ifname=x", "invalid with fd=" },
		{ "tap,id=t,queues=0", "queues= expects a number from 1 to 16" },
		{ "tap,id=t,ifname=0123456789abcdefg", "ifname= must have 1 to 15" },
		{ "tap,id=t,vnet_hdr=perhaps", "vnet_hdr= expects on or off" },
		{ "tap,id=t,br=br0", "unknown parameter 'br'" },
	};
	char err[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *spec = cases[i].spec;

		err[0] = 0;
		if (net_init_backends(&spec, 1, test_loop, err, sizeof(err)) >= 0)
			fail_msg("'%s' was accepted", spec);
		if (strncmp(err, "-netdev ", 8) || !strstr(err, cases[i].expect) ||
		    strchr(err, '\n'))
			fail_msg("'%s': got '%s', expected '%s'", spec, err, cases[i].expect);
	}
	/* Nothing half-made stays registered. */
	assert_null(net_find("u"));
	assert_null(net_find("s"));
	assert_null(net_find("t"));
}

/* The spec syntax (vmm/opts.c): "type=" or a bare first word, ",," in
 * values, a bare key meaning key=on, the bound on parameters. */
static void test_spec_syntax(void **state)
{
	const char *specs[] = { "type=user,id=s1,ipv6,restrict=n", "user,id=s2,ipv4=on,ipv6=off" };
	char err[512], many[512] = "user,id=m";

	assert_int_equal(net_init_backends(specs, 2, test_loop, err, sizeof(err)), 0);
	assert_string_equal(net_type(net_find("s1")), "user");
	assert_string_equal(net_type(net_find("s2")), "user");
	for (int i = 0; i < 32; i++)	/* id= and 32 more: one too many */
		strcat(many, ",ipv6=on");
	specs[0] = many;
	assert_true(net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, ": too many parameters (at most 32)"));
	many[strlen(many) - 8] = 0;	/* 32 parameters: past the parser */
	assert_true(net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, ": parameter 'ipv6' given twice"));
	specs[0] = "user,id=s3,ipv6=on,,off";
	assert_true(net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "ipv6= expects on or off, not 'on,off'"));
	specs[0] = "user,id=s4,ipv6=off,";
	assert_true(net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0);
	assert_string_equal(err, "-netdev user,id=s4,ipv6=off,: empty parameter");
	assert_null(net_find("s3"));
	assert_null(net_find("s4"));
}

static void test_duplicate_id_and_attach(void **state)
{
	const char *specs[] = { "user,id=a,ipv6=off", "user,id=a" };
	struct sink s1, s2;
	char err[256];
	struct net_backend *nb;
	uint8_t big[NET_MAX_FRAME + 1] = { 0 };
	struct iovec iov = { big, sizeof(big) };
	struct net_stats st;

	assert_true(net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "duplicate netdev id 'a'"));
	nb = net_find("a");
	assert_non_null(nb);
	assert_string_equal(net_type(nb), "user");
	assert_string_equal(net_id(nb), "a");
	assert_false(net_has_vnet_hdr(nb));
	assert_int_equal(net_vnet_hdr_len(nb), 0);
	assert_int_equal(net_set_vnet_hdr_len(nb, 12), -ENOTSUP);
	sink_init(&s1);
	sink_init(&s2);
	sink_attach(&s1, nb);
	{
		struct net_frontend fe = { .opaque = &s2, .receive = sink_receive };
		assert_int_equal(net_attach(nb, &fe), -EBUSY);
	}
	assert_int_equal(net_send(nb, &iov, 1), -EMSGSIZE);
	net_get_stats(nb, &st);
	assert_int_equal(st.tx_dropped, 1);
	assert_int_equal(st.tx_packets, 0);
	assert_null(net_find("b"));
	assert_null(net_find(NULL));
}

static void test_nic_backends(void **state)
{
	const char *nics[] = {
		"user,model=virtio-net-pci,mac=52:54:00:12:34:56,ipv6=off",
		"none",
		"socket,mac=52:54:00:12:34:57,listen=127.0.0.1:0",
	};
	const char *bad = "user,id=x";
	const char *bad2 = "user,model=virtio-net-pci,frob=1";
	char err[256];

	assert_int_equal(net_init_nics(nics, 3, test_loop, err, sizeof(err)), 0);
	assert_non_null(net_find("__nic0"));
	assert_string_equal(net_type(net_find("__nic0")), "user");
	assert_null(net_find("__nic1"));
	assert_string_equal(net_type(net_find("__nic2")), "socket");
	assert_true(net_init_nics(&bad, 1, test_loop, err, sizeof(err)) < 0);
	assert_string_equal(err, "-nic user,id=x: id= is not accepted (the backend is named "
			    "__nic0)");
	assert_true(net_init_nics(&bad2, 1, test_loop, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "-nic user,model=virtio-net-pci,frob=1: unknown parameter "
				    "'frob'"));
}

/* ---- MAC addresses ---- */

static void test_mac_parse(void **state)
{
	uint8_t m[6];
	static const char *const bad[] = {
		"", "52:54:00:12:34", "52:54:00:12:34:56:78", "01:00:5e:00:00:01",
		"52:54:00:12:34:5g", "52:54-00:12:34:56", "523:54:00:12:34:56",
		"52:54:00:12:34:56 ", ":52:54:00:12:34:5", "52::54:00:12:34",
	};

	assert_int_equal(net_parse_mac("52:54:00:12:34:56", m), 0);
	assert_memory_equal(m, ((uint8_t[]){ 0x52, 0x54, 0, 0x12, 0x34, 0x56 }), 6);
	assert_int_equal(net_parse_mac("52-54-00-ab-CD-ef", m), 0);
	assert_memory_equal(m, ((uint8_t[]){ 0x52, 0x54, 0, 0xab, 0xcd, 0xef }), 6);
	assert_int_equal(net_parse_mac("2:0:0:0:0:1", m), 0);
	assert_memory_equal(m, ((uint8_t[]){ 2, 0, 0, 0, 0, 1 }), 6);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(m, 0xaa, 6);
		if (net_parse_mac(bad[i], m) != -EINVAL)
			fail_msg("'%s' parsed", bad[i]);
		assert_int_equal(m[0], 0xaa);	/* untouched on error */
	}
	assert_int_equal(net_parse_mac(NULL, m), -EINVAL);
}

static void test_mac_generate(void **state)
{
	enum { N = 2000 };
	static uint8_t macs[N][6];

	for (int i = 0; i < N; i++) {
		net_generate_mac(macs[i]);
		assert_memory_equal(macs[i], ((uint8_t[]){ 0x52, 0x54, 0x00 }), 3);
		for (int j = 0; j < i; j++)
			if (!memcmp(macs[i], macs[j], 6))
				fail_msg("MAC %d repeats MAC %d", i, j);
	}
}

/* ---- socket stream ---- */

static void fill_frame(uint8_t *buf, size_t len, unsigned seq)
{
	for (size_t j = 0; j < len; j++)
		buf[j] = (uint8_t)(seq * 31 + j * 7 + (j >> 8));
	if (len >= 2) {
		buf[0] = seq >> 8;
		buf[1] = seq;
	}
}

static void check_frame(const struct sink_frame *f, size_t len, unsigned seq)
{
	static uint8_t want[65536];

	if (f->len != len)
		fail_msg("frame %u: %zu bytes, expected %zu", seq, f->len, len);
	fill_frame(want, len, seq);
	if (memcmp(f->data, want, len))
		fail_msg("frame %u (%zu bytes) differs", seq, len);
}

/* Frame seq has size seq+1 for 0..1513, then 65535 bytes. */
static size_t seq_len(unsigned seq)
{
	return seq < 1514 ? seq + 1 : 65535;
}

static void send_sizes(struct net_backend *nb, unsigned count)
{
	static uint8_t buf[65536];

	for (unsigned seq = 0; seq < count; seq++) {
		fill_frame(buf, seq_len(seq), seq);
		ssize_t r = send_retry(nb, buf, seq_len(seq), 5000);
		if (r != (ssize_t)seq_len(seq))
			fail_msg("send of frame %u returned %zd", seq, r);
	}
}

static void test_socket_stream_pair(void **state)
{
	char listen_spec[64], connect_spec[64], err[256];
	const char *specs[2] = { listen_spec, connect_spec };
	int port = free_port(SOCK_STREAM);
	static struct sink srv_sink, cli_sink;
	struct net_backend *srv, *cli;
	struct net_stats st;
	const unsigned count = 1515;
	uint64_t bytes = 0;

	snprintf(listen_spec, sizeof(listen_spec), "socket,id=srv,listen=127.0.0.1:%d", port);
	snprintf(connect_spec, sizeof(connect_spec), "socket,id=cli,connect=127.0.0.1:%d", port);
	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	srv = net_find("srv");
	cli = net_find("cli");
	sink_init(&srv_sink);
	sink_init(&cli_sink);
	sink_attach(&srv_sink, srv);
	sink_attach(&cli_sink, cli);

	send_sizes(cli, count);
	assert_true(sink_wait(&srv_sink, count, 10000));
	for (unsigned seq = 0; seq < count; seq++) {
		check_frame(&srv_sink.frames[seq], seq_len(seq), seq);
		bytes += seq_len(seq);
	}
	net_get_stats(cli, &st);
	assert_int_equal(st.tx_packets, count);
	assert_int_equal(st.tx_bytes, bytes);
	assert_int_equal(st.tx_errors, 0);	/* drops: sends before the connect */
	assert_int_equal(STAT_WAIT(srv, rx_packets, count), count);
	net_get_stats(srv, &st);
	assert_int_equal(st.rx_packets, count);
	assert_int_equal(st.rx_bytes, bytes);
	assert_int_equal(st.rx_dropped + st.rx_errors, 0);

	/* And back, from the listening side. */
	send_sizes(srv, 40);
	assert_true(sink_wait(&cli_sink, 40, 5000));
	for (unsigned seq = 0; seq < 40; seq++)
		check_frame(&cli_sink.frames[seq], seq_len(seq), seq);
	sink_reset(&srv_sink);
	sink_reset(&cli_sink);
}

/* A busy frontend: frames wait (in order) until net_receive_ready. */
static void test_socket_flow_control(void **state)
{
	char listen_spec[64], connect_spec[64], err[256];
	const char *specs[2] = { listen_spec, connect_spec };
	int port = free_port(SOCK_STREAM);
	static struct sink srv_sink, cli_sink;
	struct net_backend *srv, *cli;
	struct net_stats st;

	snprintf(listen_spec, sizeof(listen_spec), "socket,id=fsrv,listen=127.0.0.1:%d", port);
	snprintf(connect_spec, sizeof(connect_spec), "socket,id=fcli,connect=127.0.0.1:%d",
		 port);
	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	srv = net_find("fsrv");
	cli = net_find("fcli");
	sink_init(&srv_sink);
	sink_init(&cli_sink);
	srv_sink.busy = true;
	sink_attach(&srv_sink, srv);
	sink_attach(&cli_sink, cli);

	send_sizes(cli, 200);
	usleep(200000);
	assert_int_equal(srv_sink.n, 0);
	pthread_mutex_lock(&srv_sink.lock);
	srv_sink.busy = false;
	pthread_mutex_unlock(&srv_sink.lock);
	net_receive_ready(srv);
	assert_true(sink_wait(&srv_sink, 200, 5000));
	for (unsigned seq = 0; seq < 200; seq++)
		check_frame(&srv_sink.frames[seq], seq_len(seq), seq);
	assert_int_equal(STAT_WAIT(srv, rx_packets, 200), 200);
	net_get_stats(srv, &st);
	assert_int_equal(st.rx_dropped, 0);
	sink_reset(&srv_sink);
}

/* A peer that does not read: the sender's socket fills, a partial frame
 * is kept, net_send returns 0, and send_ready follows once it drains. */
static void test_socket_backpressure(void **state)
{
	char listen_spec[64], connect_spec[64], err[256];
	const char *specs[2] = { listen_spec, connect_spec };
	int port = free_port(SOCK_STREAM);
	static struct sink srv_sink, cli_sink;
	static uint8_t buf[65536];
	struct iovec iov = { buf, 65535 };
	struct net_backend *srv, *cli;
	unsigned sent = 0;
	ssize_t r = 1;

	snprintf(listen_spec, sizeof(listen_spec), "socket,id=bsrv,listen=127.0.0.1:%d", port);
	snprintf(connect_spec, sizeof(connect_spec), "socket,id=bcli,connect=127.0.0.1:%d",
		 port);
	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	srv = net_find("bsrv");
	cli = net_find("bcli");
	sink_init(&srv_sink);
	sink_init(&cli_sink);
	srv_sink.busy = true;
	sink_attach(&srv_sink, srv);
	sink_attach(&cli_sink, cli);

	fill_frame(buf, 65535, 1514);
	assert_int_equal(send_retry(cli, buf, 65535, 5000), 65535);
	sent = 1;
	while (sent < 4000 && (r = net_send(cli, &iov, 1)) > 0)
		sent++;
	assert_int_equal(r, 0);
	assert_true(sent > 1);
	assert_int_equal(cli_sink.send_ready, 0);

	pthread_mutex_lock(&srv_sink.lock);
	srv_sink.busy = false;
	pthread_mutex_unlock(&srv_sink.lock);
	net_receive_ready(srv);
	assert_true(sink_wait(&srv_sink, sent, 10000));
	for (unsigned i = 0; i < sent; i++)
		check_frame(&srv_sink.frames[i], 65535, 1514);
	pthread_mutex_lock(&cli_sink.lock);
	for (int i = 0; i < 200 && !cli_sink.send_ready; i++) {
		pthread_mutex_unlock(&cli_sink.lock);
		usleep(10000);
		pthread_mutex_lock(&cli_sink.lock);
	}
	assert_true(cli_sink.send_ready >= 1);
	pthread_mutex_unlock(&cli_sink.lock);
	assert_int_equal(net_send(cli, &iov, 1), 65535);	/* room again */
	assert_true(sink_wait(&srv_sink, sent + 1, 5000));
	sink_reset(&srv_sink);
}

/* ---- UDP ---- */

static void test_socket_udp_pair(void **state)
{
	char spec1[96], spec2[96], err[256];
	const char *specs[2] = { spec1, spec2 };
	int p1 = free_port(SOCK_DGRAM), p2 = free_port(SOCK_DGRAM);
	static struct sink s1, s2;
	static const size_t sizes[] = { 1, 60, 1514, 9000, 65507 };
	static uint8_t buf[65536];
	struct net_stats st;

	snprintf(spec1, sizeof(spec1), "socket,id=u1,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
		 p2, p1);
	snprintf(spec2, sizeof(spec2), "socket,id=u2,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d",
		 p1, p2);
	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	sink_init(&s1);
	sink_init(&s2);
	sink_attach(&s1, net_find("u1"));
	sink_attach(&s2, net_find("u2"));
	for (unsigned i = 0; i < 5; i++) {
		fill_frame(buf, sizes[i], i);
		assert_int_equal(send_retry(net_find("u1"), buf, sizes[i], 2000), sizes[i]);
		assert_true(sink_wait(&s2, i + 1, 2000));
		check_frame(&s2.frames[i], sizes[i], i);
		fill_frame(buf, sizes[i], 100 + i);
		assert_int_equal(send_retry(net_find("u2"), buf, sizes[i], 2000), sizes[i]);
		assert_true(sink_wait(&s1, i + 1, 2000));
		check_frame(&s1.frames[i], sizes[i], 100 + i);
	}
	assert_int_equal(STAT_WAIT(net_find("u2"), rx_packets, 5), 5);
	net_get_stats(net_find("u2"), &st);
	assert_int_equal(st.tx_packets, 5);
	sink_reset(&s1);
	sink_reset(&s2);
}

/* ---- hostile peer, reconnection ---- */

static int raw_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void raw_send_frame(int fd, const void *data, uint32_t len)
{
	uint8_t hdr[4] = { len >> 24, len >> 16, len >> 8, len };

	assert_int_equal(send(fd, hdr, 4, MSG_NOSIGNAL), 4);
	if (len)
		assert_int_equal(send(fd, data, len, MSG_NOSIGNAL), len);
}

/* Wait until the peer closes fd (recv returns 0 or an error). */
static bool raw_wait_closed(int fd, unsigned timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	char c;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return recv(fd, &c, 1, 0) <= 0 && errno != EAGAIN;
}

static void test_socket_hostile_peer(void **state)
{
	char spec[64], err[256];
	const char *specs[1] = { spec };
	int port = free_port(SOCK_STREAM), fd;
	static struct sink s;
	struct net_backend *nb;
	struct net_stats st;
	uint8_t frame[100];

	snprintf(spec, sizeof(spec), "socket,id=hsrv,listen=127.0.0.1:%d", port);
	if (net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	nb = net_find("hsrv");
	sink_init(&s);
	sink_attach(&s, nb);

	/* A good frame, split in awkward pieces, then a huge length. */
	fd = raw_connect(port);
	fill_frame(frame, sizeof(frame), 7);
	assert_int_equal(send(fd, "\0\0", 2, 0), 2);
	usleep(20000);
	assert_int_equal(send(fd, "\0d", 2, 0), 2);
	usleep(20000);
	assert_int_equal(send(fd, frame, 50, 0), 50);
	usleep(20000);
	assert_int_equal(send(fd, frame + 50, 50, 0), 50);
	assert_true(sink_wait(&s, 1, 2000));
	check_frame(&s.frames[0], sizeof(frame), 7);
	raw_send_frame(fd, NULL, 0);		/* empty frames are skipped */
	assert_int_equal(send(fd, "\x7f\xff\xff\xff", 4, 0), 4);
	assert_true(raw_wait_closed(fd, 3000));
	close(fd);
	assert_int_equal(STAT_WAIT(nb, rx_packets, 1), 1);
	net_get_stats(nb, &st);
	assert_int_equal(st.rx_errors, 1);

	/* NET_MAX_FRAME + 1 is refused too; exactly NET_MAX_FRAME is fine. */
	fd = raw_connect(port);
	{
		static uint8_t big[NET_MAX_FRAME];
		fill_frame(big, NET_MAX_FRAME, 9);
		raw_send_frame(fd, big, NET_MAX_FRAME);
		assert_true(sink_wait(&s, 2, 3000));
		check_frame(&s.frames[1], NET_MAX_FRAME, 9);
	}
	assert_int_equal(send(fd, "\0\x01\0\x01", 4, 0), 4);
	assert_true(raw_wait_closed(fd, 3000));
	close(fd);

	/* A peer that leaves mid-frame; the next one is served. */
	fd = raw_connect(port);
	assert_int_equal(send(fd, "\0\0\0\x64zz", 6, 0), 6);
	close(fd);
	fd = raw_connect(port);
	fill_frame(frame, sizeof(frame), 11);
	raw_send_frame(fd, frame, sizeof(frame));
	assert_true(sink_wait(&s, 3, 3000));
	check_frame(&s.frames[2], sizeof(frame), 11);

	/* Frames to the peer arrive with QEMU's framing. */
	{
		uint8_t got[4 + 60];
		size_t have = 0;
		struct timeval tv = { 3, 0 };

		fill_frame(frame, 60, 12);
		assert_int_equal(send_retry(nb, frame, 60, 2000), 60);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (have < sizeof(got)) {
			ssize_t n = recv(fd, got + have, sizeof(got) - have, 0);
			assert_true(n > 0);
			have += n;
		}
		assert_memory_equal(got, "\0\0\0\x3c", 4);
		assert_memory_equal(got + 4, frame, 60);
	}
	close(fd);
	assert_int_equal(STAT_WAIT(nb, rx_packets, 3), 3);
	net_get_stats(nb, &st);
	assert_int_equal(st.rx_errors, 2);
	sink_reset(&s);
}

/* Sending with no peer drops the frame and says so. */
static void test_socket_not_connected(void **state)
{
	char spec[64], err[256];
	const char *specs[1] = { spec };
	uint8_t frame[60] = { 0 };
	struct iovec iov = { frame, sizeof(frame) };
	struct net_stats st;

	snprintf(spec, sizeof(spec), "socket,id=lonely,listen=127.0.0.1:%d",
		 free_port(SOCK_STREAM));
	if (net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(net_send(net_find("lonely"), &iov, 1), -ENOTCONN);
	net_get_stats(net_find("lonely"), &st);
	assert_int_equal(st.tx_dropped, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_spec_errors, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_spec_syntax, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_id_and_attach, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_nic_backends, loop_setup, loop_teardown),
		cmocka_unit_test(test_mac_parse),
		cmocka_unit_test(test_mac_generate),
		cmocka_unit_test_setup_teardown(test_socket_stream_pair, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_socket_flow_control, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_socket_backpressure, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_socket_udp_pair, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_socket_hostile_peer, loop_setup,
						loop_teardown),
		cmocka_unit_test_setup_teardown(test_socket_not_connected, loop_setup,
						loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
