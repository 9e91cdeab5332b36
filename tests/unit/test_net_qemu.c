/* Interoperability with QEMU 7.2's socket netdev: a socket listen backend
 * bridged to a user (slirp) backend. tests/integration/test_net_backends.sh
 * runs this with MINIKVM_QEMU_PORT=P and starts QEMU (TCG, iPXE network
 * boot) with -netdev socket,connect=127.0.0.1:P. iPXE's DHCP DISCOVER
 * reaches slirp through our stream framing, slirp's OFFER goes back the
 * same way, and iPXE's DHCP REQUEST for 10.0.2.15 proves QEMU read our
 * frames intact. Without the variable the test skips. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include "tests/unit/net_test_util.h"

static struct net_backend *qemu_side, *slirp_side;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t seen_cond = PTHREAD_COND_INITIALIZER;
static int dhcp_seen[8];	/* by DHCP message type */

static uint16_t get16(const uint8_t *p)
{
	return p[0] << 8 | p[1];
}

/* The DHCP message type of a BOOTP request frame, else 0. */
static int dhcp_type(const uint8_t *d, size_t len)
{
	const uint8_t *ip = d + 14, *udp, *b, *opt, *end = d + len;

	if (len < 14 + 20 + 8 + 240 || get16(d + 12) != 0x0800 || ip[9] != 17)
		return 0;
	udp = ip + (ip[0] & 15) * 4;
	b = udp + 8;
	if (b + 240 > end || get16(udp + 2) != 67 || memcmp(b + 236, "\x63\x82\x53\x63", 4))
		return 0;
	for (opt = b + 240; opt + 3 <= end && *opt != 255; opt += opt[0] ? 2 + opt[1] : 1)
		if (opt[0] == 53 && opt[1] == 1)
			return opt[2] < 8 ? opt[2] : 0;
	return 0;
}

static ssize_t from_qemu(void *opaque, const struct iovec *iov, int iovcnt)
{
	int t = dhcp_type(iov[0].iov_base, iov[0].iov_len);

	if (t) {
		pthread_mutex_lock(&seen_lock);
		dhcp_seen[t]++;
		pthread_cond_broadcast(&seen_cond);
		pthread_mutex_unlock(&seen_lock);
	}
	net_send(slirp_side, iov, iovcnt);
	return iov[0].iov_len;
}

static ssize_t from_slirp(void *opaque, const struct iovec *iov, int iovcnt)
{
	net_send(qemu_side, iov, iovcnt);
	return iov[0].iov_len;
}

static void test_qemu_dhcp_through_socket(void **state)
{
	const char *port = getenv("MINIKVM_QEMU_PORT");
	char spec[64], err[256];
	const char *specs[2] = { spec, "user,id=qslirp,ipv6=off" };
	struct net_frontend fq = { .receive = from_qemu }, fs = { .receive = from_slirp };
	struct timespec dl;
	struct net_stats st;

	if (!port)
		skip();
	snprintf(spec, sizeof(spec), "socket,id=qemu,listen=127.0.0.1:%s", port);
	if (net_init_backends(specs, 2, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	qemu_side = net_find("qemu");
	slirp_side = net_find("qslirp");
	assert_int_equal(net_attach(qemu_side, &fq), 0);
	assert_int_equal(net_attach(slirp_side, &fs), 0);
	printf("listening on 127.0.0.1:%s\n", port);
	fflush(stdout);

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 120;
	pthread_mutex_lock(&seen_lock);
	while (!dhcp_seen[3])
		if (pthread_cond_timedwait(&seen_cond, &seen_lock, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&seen_lock);
	net_get_stats(qemu_side, &st);
	printf("DHCP from QEMU: %d discover, %d request; frames in %lu, out %lu\n", dhcp_seen[1],
	       dhcp_seen[3], (unsigned long)st.rx_packets, (unsigned long)st.tx_packets);
	assert_true(dhcp_seen[1] >= 1);
	assert_true(dhcp_seen[3] >= 1);
	assert_true(st.tx_packets >= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_qemu_dhcp_through_socket, loop_setup,
						loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
