/* Tap backend test (net/tap.c). It creates tap interfaces, so it only runs
 * inside a private network namespace: tests/integration/test_net_backends.sh
 * runs it under `ip netns exec` with MINIKVM_NETNS_TEST=1 and the up/down
 * scripts in MKVM_TAP_UP / MKVM_TAP_DOWN (they log "$1" to MKVM_TAP_LOG/up
 * and /down, and the up script gives the interface 192.168.77.1/24).
 * Elsewhere every test skips. Checks: the scripts ran with the interface
 * name, the kernel's ARP request and the UDP datagram it then sends reach
 * the backend behind a vnet header, our ARP reply and ICMP echo request get
 * through (the kernel answers the ping), header length and offloads can be
 * changed, vnet_hdr=off, queues=2 and fd= open. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include "net/net_priv.h"
#include "tests/unit/net_test_util.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };
static uint8_t host_mac[6];
static unsigned hdr_len = 12;

static bool in_netns(void)
{
	const char *v = getenv("MINIKVM_NETNS_TEST");

	return v && !strcmp(v, "1");
}

static uint16_t get16(const uint8_t *p)
{
	return p[0] << 8 | p[1];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put_ip(uint8_t *p, const char *s)
{
	struct in_addr a;

	inet_aton(s, &a);
	memcpy(p, &a, 4);
}

static bool ip_is(const uint8_t *p, const char *s)
{
	struct in_addr a;

	inet_aton(s, &a);
	return !memcmp(p, &a, 4);
}

static uint16_t csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i < len; i += 2)
		sum += i + 1 < len ? get16(p + i) : p[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static const uint8_t *eth_of(const struct sink_frame *f)
{
	return f->len >= hdr_len + 42 ? f->data + hdr_len : NULL;
}

static bool is_arp_request(const struct sink_frame *f)
{
	const uint8_t *e = eth_of(f);

	if (!e || get16(e + 12) != 0x0806 || get16(e + 20) != 1 || !ip_is(e + 38, "192.168.77.2"))
		return false;
	memcpy(host_mac, e + 22, 6);
	return true;
}

static bool is_udp_to_guest(const struct sink_frame *f)
{
	const uint8_t *e = eth_of(f), *ip;

	if (!e || get16(e + 12) != 0x0800 || memcmp(e, guest_mac, 6))
		return false;
	ip = e + 14;
	return ip[9] == 17 && ip_is(ip + 16, "192.168.77.2") &&
	       get16(ip + (ip[0] & 15) * 4 + 2) == 9;
}

static bool is_echo_reply(const struct sink_frame *f)
{
	const uint8_t *e = eth_of(f), *ip;

	if (!e || get16(e + 12) != 0x0800 || memcmp(e, guest_mac, 6))
		return false;
	ip = e + 14;
	return ip[9] == 1 && ip_is(ip + 16, "192.168.77.2") && ip[(ip[0] & 15) * 4] == 0 &&
	       get16(ip + (ip[0] & 15) * 4 + 4) == 0x4242;
}

static const struct sink_frame *wait_for(struct sink *s, bool (*pred)(const struct sink_frame *),
					 unsigned timeout_ms)
{
	uint64_t end = test_now_ms() + timeout_ms;
	unsigned seen = 0;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		for (; seen < s->n; seen++) {
			if (pred(&s->frames[seen])) {
				const struct sink_frame *f = &s->frames[seen];
				pthread_mutex_unlock(&s->lock);
				return f;
			}
		}
		pthread_mutex_unlock(&s->lock);
		if (test_now_ms() > end)
			return NULL;
		sink_wait(s, seen + 1, 50);
	}
}

/* The kernel sends a datagram to 192.168.77.2:9 (after ARP). */
static void kernel_send_udp(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	put_ip((uint8_t *)&a.sin_addr, "192.168.77.2");
	assert_true(sendto(fd, "hello", 5, 0, (struct sockaddr *)&a, sizeof(a)) == 5);
	close(fd);
}

static void send_with_hdr(struct net_backend *nb, const uint8_t *eth, size_t len)
{
	uint8_t hdr[12] = { 0 };
	struct iovec iov[2] = { { hdr, hdr_len }, { (void *)eth, len } };

	assert_int_equal(net_send(nb, iov, 2), hdr_len + len);
}

static size_t build_arp_reply(uint8_t *e)
{
	memset(e, 0, 60);
	memcpy(e, host_mac, 6);
	memcpy(e + 6, guest_mac, 6);
	put16(e + 12, 0x0806);
	put16(e + 14, 1);
	put16(e + 16, 0x0800);
	e[18] = 6;
	e[19] = 4;
	put16(e + 20, 2);
	memcpy(e + 22, guest_mac, 6);
	put_ip(e + 28, "192.168.77.2");
	memcpy(e + 32, host_mac, 6);
	put_ip(e + 38, "192.168.77.1");
	return 60;
}

static size_t build_echo_request(uint8_t *e)
{
	uint8_t *ip = e + 14, *icmp = ip + 20;

	memset(e, 0, 14 + 20 + 16);
	memcpy(e, host_mac, 6);
	memcpy(e + 6, guest_mac, 6);
	put16(e + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, 20 + 16);
	ip[8] = 64;
	ip[9] = 1;
	put_ip(ip + 12, "192.168.77.2");
	put_ip(ip + 16, "192.168.77.1");
	put16(ip + 10, csum(ip, 20));
	icmp[0] = 8;
	put16(icmp + 4, 0x4242);
	put16(icmp + 6, 1);
	memcpy(icmp + 8, "minikvm!", 8);
	put16(icmp + 2, csum(icmp, 16));
	return 14 + 20 + 16;
}

static void read_log(const char *name, char *buf, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", getenv("MKVM_TAP_LOG"), name);
	buf[0] = 0;
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(buf, len, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static void test_tap_traffic(void **state)
{
	static struct sink s;
	char spec[512], err[512], line[64];
	const char *specs[1] = { spec };
	struct net_backend *nb;
	struct net_offloads off = { .csum = true, .tso4 = true, .tso6 = true };
	uint8_t e[128];
	struct net_stats st;

	if (!in_netns())
		skip();
	snprintf(spec, sizeof(spec), "tap,id=t0,ifname=mkvmtap0,script=%s,downscript=%s",
		 getenv("MKVM_TAP_UP"), getenv("MKVM_TAP_DOWN"));
	if (net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	nb = net_find("t0");
	assert_string_equal(net_type(nb), "tap");
	assert_string_equal(net_tap_ifname(nb), "mkvmtap0");
	read_log("up", line, sizeof(line));
	assert_string_equal(line, "mkvmtap0");
	assert_true(net_has_vnet_hdr(nb));
	assert_int_equal(net_vnet_hdr_len(nb), 12);
	sink_init(&s);
	sink_attach(&s, nb);

	hdr_len = 12;
	kernel_send_udp();
	assert_non_null(wait_for(&s, is_arp_request, 5000));
	build_arp_reply(e);
	send_with_hdr(nb, e, 60);
	assert_non_null(wait_for(&s, is_udp_to_guest, 5000));
	send_with_hdr(nb, e, build_echo_request(e));
	assert_non_null(wait_for(&s, is_echo_reply, 5000));

	/* A 10-byte header from now on. */
	assert_int_equal(net_set_vnet_hdr_len(nb, 10), 0);
	assert_int_equal(net_vnet_hdr_len(nb), 10);
	assert_int_equal(net_set_vnet_hdr_len(nb, 11), -EINVAL);
	hdr_len = 10;
	sink_reset(&s);
	kernel_send_udp();
	assert_non_null(wait_for(&s, is_udp_to_guest, 5000));
	send_with_hdr(nb, e, build_echo_request(e));
	assert_non_null(wait_for(&s, is_echo_reply, 5000));
	assert_int_equal(net_set_offloads(nb, &off), 0);

	net_get_stats(nb, &st);
	assert_true(st.tx_packets >= 3);
	assert_true(st.rx_packets >= 4);
	assert_int_equal(st.tx_errors + st.tx_dropped, 0);
	sink_reset(&s);

	net_cleanup();
	read_log("down", line, sizeof(line));
	assert_string_equal(line, "mkvmtap0");
	assert_int_equal(if_nametoindex("mkvmtap0"), 0);	/* gone with its fd */
	hdr_len = 12;
}

static void test_tap_variants(void **state)
{
	char err[512], spec[64];
	const char *specs[] = {
		"tap,id=t1,ifname=mkvmtap1,script=no,downscript=no,vnet_hdr=off",
		"tap,id=t2,ifname=mkvmtap2,script=no,downscript=no,queues=2",
		spec,
	};
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	int fd;

	if (!in_netns())
		skip();
	fd = open("/dev/net/tun", O_RDWR);
	assert_true(fd >= 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "mkvmtap3");
	assert_int_equal(ioctl(fd, TUNSETIFF, &ifr), 0);
	snprintf(spec, sizeof(spec), "tap,id=t3,fd=%d", fd);
	if (net_init_backends(specs, 3, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_false(net_has_vnet_hdr(net_find("t1")));
	assert_int_equal(net_set_vnet_hdr_len(net_find("t1"), 12), -ENOTSUP);
	assert_true(net_has_vnet_hdr(net_find("t2")));
	assert_false(net_has_vnet_hdr(net_find("t3")));
	assert_string_equal(net_tap_ifname(net_find("t3")), "mkvmtap3");
	assert_true(if_nametoindex("mkvmtap2") > 0);
}

static void test_tap_script_failure(void **state)
{
	char err[512];
	const char *specs[] = { "tap,id=t4,ifname=mkvmtap4,script=/bin/false" };
	const char *specs2[] = { "tap,id=t5,ifname=mkvmtap5,script=/nonexistent/ifup" };

	if (!in_netns())
		skip();
	assert_true(net_init_backends(specs, 1, test_loop, err, sizeof(err)) < 0);
	assert_string_equal(err, "-netdev tap,id=t4,ifname=mkvmtap4,script=/bin/false: network "
			    "script /bin/false failed with status 1");
	assert_null(net_find("t4"));
	assert_int_equal(if_nametoindex("mkvmtap4"), 0);
	assert_true(net_init_backends(specs2, 1, test_loop, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "could not launch network script /nonexistent/ifup"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tap_traffic, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_tap_variants, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_tap_script_failure, loop_setup,
						loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
