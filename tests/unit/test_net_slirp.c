/* Unit tests for the user-mode backend (net/slirp.c) with hand-built
 * guest frames on a real event loop: ARP for the virtual host is answered,
 * a DHCP DISCOVER gets an OFFER of 10.0.2.15, a TCP connection to a
 * hostfwd port on 127.0.0.1 makes slirp send a SYN to the guest, and a
 * non-default net= moves the lease. Nothing leaves the host: slirp only
 * talks to 127.0.0.1 here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include "tests/unit/net_test_util.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static uint16_t get16(const uint8_t *p)
{
	return p[0] << 8 | p[1];
}

static uint16_t ip_checksum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

static void put_ip(uint8_t *p, const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_aton(s, &a), 1);
	memcpy(p, &a, 4);
}

static bool ip_is(const uint8_t *p, const char *s)
{
	struct in_addr a;

	inet_aton(s, &a);
	return !memcmp(p, &a, 4);
}

static size_t build_arp_request(uint8_t *f, const char *sender, const char *target)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, 0x0806);
	put16(f + 14, 1);		/* Ethernet */
	put16(f + 16, 0x0800);		/* IPv4 */
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, 1);		/* request */
	memcpy(f + 22, guest_mac, 6);
	put_ip(f + 28, sender);
	put_ip(f + 38, target);
	return 60;
}

/* Ethernet + IPv4 + UDP 68->67 + BOOTP with option 53 = DISCOVER. */
static size_t build_dhcp_discover(uint8_t *f)
{
	const size_t bootp = 548, udp = 8 + bootp, ip = 20 + udp;
	uint8_t *iph = f + 14, *udph = iph + 20, *b = udph + 8;

	memset(f, 0, 14 + ip);
	memset(f, 0xff, 6);
	memcpy(f + 6, guest_mac, 6);
	put16(f + 12, 0x0800);
	iph[0] = 0x45;
	put16(iph + 2, ip);
	iph[8] = 64;
	iph[9] = 17;
	put_ip(iph + 12, "0.0.0.0");
	put_ip(iph + 16, "255.255.255.255");
	put16(iph + 10, ip_checksum(iph, 20));
	put16(udph, 68);
	put16(udph + 2, 67);
	put16(udph + 4, udp);
	b[0] = 1;			/* BOOTREQUEST */
	b[1] = 1;
	b[2] = 6;
	memcpy(b + 4, "\x12\x34\x56\x78", 4);
	memcpy(b + 28, guest_mac, 6);
	memcpy(b + 236, "\x63\x82\x53\x63\x35\x01\x01\xff", 8);
	return 14 + ip;
}

static void send_frame(struct net_backend *nb, const uint8_t *f, size_t len)
{
	assert_int_equal(send_retry(nb, f, len, 2000), len);
}

/* Find a frame (from index *from on) that pred accepts, waiting up to
 * timeout_ms; NULL when none came. */
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

static bool is_arp_reply_from_host(const struct sink_frame *f)
{
	const uint8_t *d = f->data;

	return f->len >= 42 && get16(d + 12) == 0x0806 && get16(d + 20) == 2 &&
	       ip_is(d + 28, "10.0.2.2") && ip_is(d + 38, "10.0.2.15") &&
	       !memcmp(d + 32, guest_mac, 6) && !memcmp(d, guest_mac, 6);
}

static const char *expected_lease = "10.0.2.15";

/* A DHCP OFFER (option 53 = 2) for expected_lease, to our MAC. */
static bool is_dhcp_offer(const struct sink_frame *f)
{
	const uint8_t *d = f->data, *ip = d + 14, *udp, *b, *opt, *end;
	size_t ihl;

	if (f->len < 14 + 20 + 8 + 240 || get16(d + 12) != 0x0800 || ip[9] != 17)
		return false;
	ihl = (ip[0] & 15) * 4;
	udp = ip + ihl;
	b = udp + 8;
	if (get16(udp) != 67 || get16(udp + 2) != 68 || b[0] != 2 ||
	    memcmp(b + 28, guest_mac, 6) || !ip_is(b + 16, expected_lease) ||
	    memcmp(b + 236, "\x63\x82\x53\x63", 4))
		return false;
	end = d + f->len;
	for (opt = b + 240; opt + 2 <= end && *opt != 255; opt += opt[0] ? 2 + opt[1] : 1)
		if (opt[0] == 53 && opt[1] == 1 && opt + 3 <= end)
			return opt[2] == 2;
	return false;
}

static bool is_syn_to_guest_22(const struct sink_frame *f)
{
	const uint8_t *d = f->data, *ip = d + 14, *tcp;

	if (f->len < 14 + 20 + 20 || get16(d + 12) != 0x0800 || ip[9] != 6)
		return false;
	tcp = ip + (ip[0] & 15) * 4;
	return ip_is(ip + 16, "10.0.2.15") && get16(tcp + 2) == 22 && (tcp[13] & 0x12) == 0x02 &&
	       !memcmp(d, guest_mac, 6);
}

static struct net_backend *user_backend(const char *spec, struct sink *s)
{
	char err[256];
	struct net_backend *nb;

	if (net_init_backends(&spec, 1, test_loop, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	nb = net_find("u0");
	sink_init(s);
	sink_attach(s, nb);
	assert_string_equal(net_type(nb), "user");
	assert_false(net_has_vnet_hdr(nb));
	return nb;
}

static void test_arp_and_dhcp(void **state)
{
	static struct sink s;
	struct net_backend *nb = user_backend("user,id=u0", &s);
	uint8_t f[1514];
	struct net_stats st;

	send_frame(nb, f, build_arp_request(f, "10.0.2.15", "10.0.2.2"));
	assert_non_null(wait_for(&s, is_arp_reply_from_host, 3000));
	expected_lease = "10.0.2.15";
	send_frame(nb, f, build_dhcp_discover(f));
	assert_non_null(wait_for(&s, is_dhcp_offer, 3000));
	assert_true(STAT_WAIT(nb, rx_packets, 2) >= 2);
	net_get_stats(nb, &st);
	assert_int_equal(st.tx_packets, 2);
	sink_reset(&s);
}

/* net= moves host, DNS and the first lease with it. */
static void test_custom_net(void **state)
{
	static struct sink s;
	struct net_backend *nb = user_backend("user,id=u0,net=192.168.76.0/24,ipv6=off", &s);
	uint8_t f[1514];

	expected_lease = "192.168.76.15";
	send_frame(nb, f, build_dhcp_discover(f));
	assert_non_null(wait_for(&s, is_dhcp_offer, 3000));
	expected_lease = "10.0.2.15";
	sink_reset(&s);
}

static void test_hostfwd_syn(void **state)
{
	static struct sink s;
	char spec[128];
	int port = free_port(SOCK_STREAM), fd;
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct net_backend *nb;
	uint8_t f[1514];

	snprintf(spec, sizeof(spec), "user,id=u0,ipv6=off,hostfwd=tcp:127.0.0.1:%d-:22", port);
	nb = user_backend(spec, &s);
	/* Slirp learns the guest's MAC from its ARP request. */
	send_frame(nb, f, build_arp_request(f, "10.0.2.15", "10.0.2.2"));
	assert_non_null(wait_for(&s, is_arp_reply_from_host, 3000));

	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_non_null(wait_for(&s, is_syn_to_guest_22, 5000));
	close(fd);
	sink_reset(&s);
}

/* Hostile frames (short, garbage) are absorbed. */
static void test_garbage_frames(void **state)
{
	static struct sink s;
	struct net_backend *nb = user_backend("user,id=u0", &s);
	uint8_t f[1514];

	for (unsigned len = 1; len < 80; len++) {
		for (unsigned i = 0; i < len; i++)
			f[i] = (uint8_t)(i * 37 + len);
		if (len > 13) {
			put16(f + 12, len & 1 ? 0x0800 : 0x0806);
			f[14] = 0x45;
		}
		send_frame(nb, f, len);
	}
	/* Still alive and answering. */
	send_frame(nb, f, build_arp_request(f, "10.0.2.15", "10.0.2.2"));
	assert_non_null(wait_for(&s, is_arp_reply_from_host, 3000));
	sink_reset(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_arp_and_dhcp, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_custom_net, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_hostfwd_syn, loop_setup, loop_teardown),
		cmocka_unit_test_setup_teardown(test_garbage_frames, loop_setup, loop_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
