/* The network backend core: -netdev/-nic spec parsing (QEMU syntax, ",,"
 * for a comma in a value), the backend registry, frontend attachment, the
 * send path with its statistics, the receive queue that holds frames while
 * a frontend has no buffers, MAC addresses, network scripts, cleanup at
 * exit, and the startup hook that creates every configured backend. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include "net/net.h"
#include "net/net_priv.h"
#include "vmm/device.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define SPEC_SHOWN_MAX	200	/* longest spec quoted in an error line */

static struct net_backend *backends[NET_MAX_BACKENDS];
static unsigned n_backends;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static const struct net_backend_ops *const backend_types[] = {
	&net_tap_ops, &net_user_ops, &net_socket_ops,
};

/* ---- spec parsing ---- */

static void net_opts_free(struct net_opts *o)
{
	opts_free(&o->opts);
	o->type = NULL;
}

/* Parse "type,k=v,k2=v2" into o (vmm/opts.c: ",," stands for a literal
 * comma, a bare "key" means "key=on" as in QEMU); the type is item 0. */
static int net_opts_parse(const char *spec, struct net_opts *o, char *err, size_t errlen)
{
	static const struct opts_syntax syntax = {
		.implied_key = "type", .max_items = NET_MAX_OPTS + 1, .max_len = NET_SPEC_MAX,
	};
	const struct opt *first;
	int r = opts_parse(&o->opts, spec, &syntax, err, errlen);

	o->type = NULL;
	if (r == -E2BIG)
		snprintf(err, errlen, "too many parameters (at most %d)", NET_MAX_OPTS);
	if (r < 0)
		return -1;
	first = o->opts.n ? &o->opts.items[0] : NULL;
	if (!first || strcmp(first->key, "type") || !first->val || !*first->val ||
	    strchr(first->val, '=')) {
		snprintf(err, errlen, "missing backend type (tap, user, socket)");
		return -1;
	}
	o->type = first->val;
	for (unsigned i = 1; i < o->opts.n; i++) {
		if (!*o->opts.items[i].key) {
			snprintf(err, errlen, "parameter without a name");
			return -1;
		}
	}
	if (o->opts.trailing_comma) {
		snprintf(err, errlen, "empty parameter");
		return -1;
	}
	return 0;
}

const char *net_opt_get(const struct net_opts *o, const char *key)
{
	return opts_get(&o->opts, key);
}

const char *net_opt_next(const struct net_opts *o, const char *key, unsigned *pos)
{
	return opts_next(&o->opts, key, pos);
}

int net_opt_bool(const struct net_opts *o, const char *key, bool def, bool *out, char *err,
		 size_t errlen)
{
	const char *bad;

	*out = def;
	if (opts_get_bool(&o->opts, key, out, &bad) < 0) {
		snprintf(err, errlen, "%s= expects on or off, not '%s'", key, bad);
		return -1;
	}
	return 0;
}

int net_opt_uint(const struct net_opts *o, const char *key, unsigned min, unsigned max,
		 unsigned def, unsigned *out, char *err, size_t errlen)
{
	uint64_t x = def;
	const char *bad;

	*out = def;
	if (opts_get_uint(&o->opts, key, min, max, &x, &bad) < 0) {
		snprintf(err, errlen, "%s= expects a number from %u to %u, not '%s'", key, min,
			 max, bad);
		return -1;
	}
	*out = x;
	return 0;
}

/* Unknown keys and keys given twice are refused (item 0 is the type). */
static int check_params(const struct net_opts *o, const struct net_backend_ops *ops,
			char *err, size_t errlen)
{
	for (unsigned i = 1; i < o->opts.n; i++) {
		const char *key = o->opts.items[i].key;

		if (strcmp(key, "id") && !opts_key_in(key, ops->keys)) {
			snprintf(err, errlen, "unknown parameter '%s' for type %s", key,
				 ops->type);
			return -1;
		}
		if (opts_key_in(key, ops->repeatable))
			continue;
		for (unsigned j = 1; j < i; j++) {
			if (!strcmp(o->opts.items[j].key, key)) {
				snprintf(err, errlen, "parameter '%s' given twice", key);
				return -1;
			}
		}
	}
	return 0;
}

/* QEMU identifiers: a letter, then letters, digits, '-', '.', '_'. */
static bool valid_id(const char *id)
{
	if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z')))
		return false;
	if (strlen(id) >= NET_ID_MAX)
		return false;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789-._") == strlen(id);
}

static const struct net_backend_ops *find_type(const char *type)
{
	for (size_t i = 0; i < sizeof(backend_types) / sizeof(backend_types[0]); i++)
		if (!strcmp(backend_types[i]->type, type))
			return backend_types[i];
	return NULL;
}

/* ---- registry ---- */

static struct net_backend *find_locked(const char *id)
{
	for (unsigned i = 0; i < n_backends; i++)
		if (backends[i] && !strcmp(backends[i]->id, id))
			return backends[i];
	return NULL;
}

struct net_backend *net_find(const char *id)
{
	struct net_backend *nb;

	if (!id)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	nb = find_locked(id);
	pthread_mutex_unlock(&registry_lock);
	return nb;
}

static void mark_loop_alive(void *opaque)
{
	struct net_backend *nb = opaque;

	__atomic_store_n(&nb->loop_alive, true, __ATOMIC_RELEASE);
}

static void backend_free(struct net_backend *nb)
{
	struct net_rx_frame *f = nb->rxq_head;

	while (f) {
		struct net_rx_frame *next = f->next;
		free(f);
		f = next;
	}
	free(nb->priv);
	free(nb);
}

/* Create one backend from parsed options under the given id. */
static int backend_create(const struct net_opts *o, const char *id, struct event_loop *loop,
			  char *err, size_t errlen)
{
	const struct net_backend_ops *ops = find_type(o->type);
	struct net_backend *nb;

	if (!ops) {
		snprintf(err, errlen, "backend type '%s' is not supported (tap, user, socket)",
			 o->type);
		return -1;
	}
	if (check_params(o, ops, err, errlen) < 0)
		return -1;
	pthread_mutex_lock(&registry_lock);
	if (find_locked(id)) {
		pthread_mutex_unlock(&registry_lock);
		snprintf(err, errlen, "duplicate netdev id '%s'", id);
		return -1;
	}
	if (n_backends == NET_MAX_BACKENDS) {
		pthread_mutex_unlock(&registry_lock);
		snprintf(err, errlen, "too many network backends (at most %d)",
			 NET_MAX_BACKENDS);
		return -1;
	}
	nb = calloc(1, sizeof(*nb));
	if (!nb || !(nb->priv = calloc(1, ops->priv_size ? ops->priv_size : 1))) {
		pthread_mutex_unlock(&registry_lock);
		free(nb);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(nb->id, sizeof(nb->id), "%s", id);
	nb->ops = ops;
	nb->loop = loop;
	nb->rxq_tail = &nb->rxq_head;
	if (ops->open(nb, o, err, errlen) < 0) {
		pthread_mutex_unlock(&registry_lock);
		backend_free(nb);
		return -1;
	}
	backends[n_backends++] = nb;
	pthread_mutex_unlock(&registry_lock);
	event_loop_call(loop, mark_loop_alive, nb);
	return 0;
}

static void register_cleanup_once(void)
{
	static bool done;

	if (!__atomic_exchange_n(&done, true, __ATOMIC_ACQ_REL))
		device_register_exit(net_cleanup);
}

/* "-netdev SPEC: reason" with the spec shortened if it is very long. */
static void prefix_error(const char *opt, const char *spec, const char *why, char *err,
			 size_t errlen)
{
	snprintf(err, errlen, "%s %.*s%s: %s", opt, SPEC_SHOWN_MAX, spec,
		 strlen(spec) > SPEC_SHOWN_MAX ? "..." : "", why);
}

static int create_netdev(const char *spec, struct event_loop *loop, char *err, size_t errlen)
{
	struct net_opts o;
	char why[256] = "";
	const char *id;
	int ret = -1;

	if (net_opts_parse(spec, &o, why, sizeof(why)) < 0)
		goto out;
	id = net_opt_get(&o, "id");
	if (!id)
		snprintf(why, sizeof(why), "missing id=");
	else if (!valid_id(id))
		snprintf(why, sizeof(why), "invalid id '%s' (a letter, then letters, digits, "
			 "'-', '.', '_'; at most %d)", id, NET_ID_MAX - 1);
	else
		ret = backend_create(&o, id, loop, why, sizeof(why));
out:
	if (ret < 0)
		prefix_error("-netdev", spec, why, err, errlen);
	net_opts_free(&o);
	return ret;
}

int net_init_backends(const char *const *specs, unsigned n, struct event_loop *loop, char *err,
		      size_t errlen)
{
	register_cleanup_once();
	for (unsigned i = 0; i < n; i++)
		if (create_netdev(specs[i], loop, err, errlen) < 0)
			return -EINVAL;
	return 0;
}

/* -nic TYPE,model=,mac=,...: model= and mac= belong to the NIC. */
static int create_nic(const char *spec, unsigned index, struct event_loop *loop, char *err,
		      size_t errlen)
{
	struct net_opts o;
	char why[256] = "", id[NET_ID_MAX];
	int ret = -1;

	if (net_opts_parse(spec, &o, why, sizeof(why)) < 0)
		goto out;
	if (!strcmp(o.type, "none")) {
		ret = 0;	/* -nic none: no backend, no NIC */
		goto out;
	}
	opts_remove(&o.opts, "model");
	opts_remove(&o.opts, "mac");
	if (net_opt_get(&o, "id")) {
		snprintf(why, sizeof(why), "id= is not accepted (the backend is named __nic%u)",
			 index);
		goto out;
	}
	snprintf(id, sizeof(id), "__nic%u", index);
	ret = backend_create(&o, id, loop, why, sizeof(why));
out:
	if (ret < 0)
		prefix_error("-nic", spec, why, err, errlen);
	net_opts_free(&o);
	return ret;
}

int net_init_nics(const char *const *specs, unsigned n, struct event_loop *loop, char *err,
		  size_t errlen)
{
	register_cleanup_once();
	for (unsigned i = 0; i < n; i++)
		if (create_nic(specs[i], i, loop, err, errlen) < 0)
			return -EINVAL;
	return 0;
}

int net_attach(struct net_backend *nb, const struct net_frontend *fe)
{
	static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
	int ret = -EBUSY;

	if (!nb || !fe || !fe->receive)
		return -EINVAL;
	pthread_mutex_lock(&attach_lock);
	if (!__atomic_load_n(&nb->attached, __ATOMIC_ACQUIRE)) {
		nb->fe = *fe;
		__atomic_store_n(&nb->attached, true, __ATOMIC_RELEASE);
		ret = 0;
	}
	pthread_mutex_unlock(&attach_lock);
	return ret;
}

/* ---- send path ---- */

static void stat_add(uint64_t *counter, uint64_t v)
{
	__atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static ssize_t send_frame(struct net_backend *nb, const struct iovec *iov, int iovcnt, bool more)
{
	size_t len = 0, hdr = nb->vnet_hdr ? nb->vnet_hdr_len : 0;
	ssize_t ret;

	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > NET_MAX_FRAME + NET_VNET_HDR_LEN) {
			len = SIZE_MAX;
			break;
		}
		len += iov[i].iov_len;
	}
	if (len <= hdr || len - hdr > NET_MAX_FRAME) {
		stat_add(&nb->stats.tx_dropped, 1);
		return len <= hdr ? -EINVAL : -EMSGSIZE;
	}
	if (__atomic_load_n(&nb->closed, __ATOMIC_ACQUIRE))
		return -ENODEV;
	if (more && nb->ops->send_more)
		ret = nb->ops->send_more(nb, iov, iovcnt, len);
	else
		ret = nb->ops->send(nb, iov, iovcnt, len);
	if (ret > 0) {
		stat_add(&nb->stats.tx_packets, 1);
		stat_add(&nb->stats.tx_bytes, len - hdr);
	} else if (ret == -ENOTCONN || ret == -EMSGSIZE || ret == -ENOBUFS) {
		stat_add(&nb->stats.tx_dropped, 1);
	} else if (ret < 0) {
		stat_add(&nb->stats.tx_errors, 1);
	}
	return ret;
}

ssize_t net_send(struct net_backend *nb, const struct iovec *iov, int iovcnt)
{
	return send_frame(nb, iov, iovcnt, false);
}

ssize_t net_send_more(struct net_backend *nb, const struct iovec *iov, int iovcnt)
{
	return send_frame(nb, iov, iovcnt, true);
}

void net_flush(struct net_backend *nb)
{
	if (nb->ops->flush && !__atomic_load_n(&nb->closed, __ATOMIC_ACQUIRE))
		nb->ops->flush(nb);
}

void net_tx_ready(struct net_backend *nb)
{
	if (__atomic_load_n(&nb->attached, __ATOMIC_ACQUIRE) && nb->fe.send_ready)
		nb->fe.send_ready(nb->fe.opaque);
}

/* ---- receive path (loop thread) ---- */

void net_count_rx_error(struct net_backend *nb)
{
	stat_add(&nb->stats.rx_errors, 1);
}

/* Offer one frame to the frontend: 1 taken, 0 busy (keep it), -1 dropped. */
static int offer(struct net_backend *nb, const void *buf, size_t len)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	size_t hdr = nb->vnet_hdr ? nb->vnet_hdr_len : 0;
	ssize_t r;

	if (nb->fe.can_receive && !nb->fe.can_receive(nb->fe.opaque))
		return 0;
	r = nb->fe.receive(nb->fe.opaque, &iov, 1);
	if (r == 0)
		return 0;
	if (r < 0) {
		stat_add(&nb->stats.rx_dropped, 1);
		return -1;
	}
	stat_add(&nb->stats.rx_packets, 1);
	stat_add(&nb->stats.rx_bytes, len > hdr ? len - hdr : 0);
	return 1;
}

static bool rxq_push(struct net_backend *nb, const void *buf, size_t len)
{
	struct net_rx_frame *f;

	if (nb->rxq_frames >= NET_RXQ_FRAMES || nb->rxq_bytes + len > NET_RXQ_BYTES)
		return false;
	f = malloc(sizeof(*f) + len);
	if (!f)
		return false;
	f->next = NULL;
	f->len = len;
	memcpy(f->data, buf, len);
	*nb->rxq_tail = f;
	nb->rxq_tail = &f->next;
	nb->rxq_frames++;
	nb->rxq_bytes += len;
	return true;
}

bool net_rx_deliver(struct net_backend *nb, const void *buf, size_t len)
{
	if (nb->closed)
		return false;
	if (!__atomic_load_n(&nb->attached, __ATOMIC_ACQUIRE)) {
		stat_add(&nb->stats.rx_dropped, 1);	/* no NIC: like QEMU, drop */
		return true;
	}
	if (!nb->rxq_head && offer(nb, buf, len) != 0)
		return true;
	if (!rxq_push(nb, buf, len))
		stat_add(&nb->stats.rx_dropped, 1);
	nb->rx_paused = true;
	return false;
}

static void rx_flush(void *opaque)
{
	struct net_backend *nb = opaque;
	struct net_rx_frame *f;

	__atomic_store_n(&nb->flush_scheduled, false, __ATOMIC_RELEASE);
	if (nb->closed)
		return;
	while ((f = nb->rxq_head)) {
		if (offer(nb, f->data, f->len) == 0)
			return;
		nb->rxq_head = f->next;
		if (!nb->rxq_head)
			nb->rxq_tail = &nb->rxq_head;
		nb->rxq_frames--;
		nb->rxq_bytes -= f->len;
		free(f);
	}
	if (nb->rx_paused) {
		nb->rx_paused = false;
		if (nb->ops->rx_resume)
			nb->ops->rx_resume(nb);
	}
}

void net_receive_ready(struct net_backend *nb)
{
	if (!__atomic_exchange_n(&nb->flush_scheduled, true, __ATOMIC_ACQ_REL))
		if (event_loop_call(nb->loop, rx_flush, nb) < 0)
			__atomic_store_n(&nb->flush_scheduled, false, __ATOMIC_RELEASE);
}

/* ---- vnet header, offloads, identity, stats ---- */

bool net_has_vnet_hdr(const struct net_backend *nb)
{
	return nb->vnet_hdr;
}

unsigned net_vnet_hdr_len(const struct net_backend *nb)
{
	return nb->vnet_hdr ? nb->vnet_hdr_len : 0;
}

int net_set_vnet_hdr_len(struct net_backend *nb, unsigned len)
{
	if (!nb->vnet_hdr || !nb->ops->set_vnet_hdr_len)
		return -ENOTSUP;
	if (len != 10 && len != 12)
		return -EINVAL;
	return nb->ops->set_vnet_hdr_len(nb, len);
}

int net_set_offloads(struct net_backend *nb, const struct net_offloads *o)
{
	if (!nb->vnet_hdr || !nb->ops->set_offloads)
		return -ENOTSUP;
	return nb->ops->set_offloads(nb, o);
}

const char *net_id(const struct net_backend *nb)
{
	return nb->id;
}

const char *net_type(const struct net_backend *nb)
{
	return nb->ops->type;
}

void net_get_stats(const struct net_backend *nb, struct net_stats *out)
{
	const uint64_t *in = (const uint64_t *)&nb->stats;
	uint64_t *o = (uint64_t *)out;

	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		o[i] = __atomic_load_n(&in[i], __ATOMIC_RELAXED);
}

/* ---- MAC addresses ---- */

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Six groups of one or two hex digits, separated by ':' or '-' (one kind).
 * Multicast addresses (odd first byte) cannot belong to a NIC: -EINVAL. */
int net_parse_mac(const char *s, uint8_t mac[6])
{
	char sep = 0;
	uint8_t out[6];

	if (!s)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hex_digit(*s), lo;

		if (hi < 0)
			return -EINVAL;
		s++;
		lo = hex_digit(*s);
		if (lo >= 0) {
			out[i] = hi << 4 | lo;
			s++;
		} else {
			out[i] = hi;
		}
		if (i == 5)
			break;
		if (*s != ':' && *s != '-')
			return -EINVAL;
		if (sep && *s != sep)
			return -EINVAL;
		sep = *s++;
	}
	if (*s || (out[0] & 1))
		return -EINVAL;
	memcpy(mac, out, 6);
	return 0;
}

/* 52:54:00 then 24 bits: a pid-derived base plus a per-process counter,
 * so addresses never repeat within a process and differ between runs. */
void net_generate_mac(uint8_t mac[6])
{
	static unsigned counter;
	uint32_t base = ((uint32_t)getpid() * 2654435761u) >> 8;
	uint32_t v = (base + __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED)) & 0xffffff;

	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = v >> 16;
	mac[4] = v >> 8;
	mac[5] = v;
}

/* ---- helpers for backends ---- */

int net_run_script(const char *script, const char *ifname, char *err, size_t errlen)
{
	int status;
	pid_t pid = fork();

	if (pid < 0) {
		snprintf(err, errlen, "cannot run network script %s: %s", script,
			 strerror(errno));
		return -1;
	}
	if (pid == 0) {
		char *argv[] = { (char *)script, (char *)ifname, NULL };

		close_range(3, ~0u, 0);
		execv(script, argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "network script %s: %s", script, strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		snprintf(err, errlen, "could not launch network script %s", script);
	else if (WIFEXITED(status))
		snprintf(err, errlen, "network script %s failed with status %d", script,
			 WEXITSTATUS(status));
	else
		snprintf(err, errlen, "network script %s killed by signal %d", script,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
}

int net_parse_host_port(const char *s, struct sockaddr_in *out, char *err, size_t errlen)
{
	const char *colon = strrchr(s, ':');
	char host[256], *end;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	out->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(host)) {
		snprintf(err, errlen, "'%s' is not HOST:PORT", s);
		return -1;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535 || colon[1] == '-') {
		snprintf(err, errlen, "invalid port in '%s'", s);
		return -1;
	}
	out->sin_port = htons(port);
	memcpy(host, s, colon - s);
	host[colon - s] = '\0';
	if (!host[0]) {
		out->sin_addr.s_addr = htonl(INADDR_ANY);
	} else if (!inet_aton(host, &out->sin_addr)) {
		struct addrinfo hints = { .ai_family = AF_INET }, *res;
		int r = getaddrinfo(host, NULL, &hints, &res);

		if (r) {
			snprintf(err, errlen, "cannot resolve host '%s': %s", host,
				 gai_strerror(r));
			return -1;
		}
		out->sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
		freeaddrinfo(res);
	}
	return 0;
}

int net_parse_fd(const char *s, char *err, size_t errlen)
{
	char *end;
	long fd;

	errno = 0;
	fd = strtol(s, &end, 10);
	if (!*s || *end || errno || fd < 0 || fd > INT_MAX || fcntl(fd, F_GETFD) < 0) {
		snprintf(err, errlen, "fd=%s is not an open file descriptor", s);
		return -1;
	}
	return fd;
}

/* ---- cleanup ---- */

struct teardown {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct net_backend *nb;
	bool done, abandoned;
};

static void backend_close(struct net_backend *nb)
{
	if (nb->closed)
		return;
	__atomic_store_n(&nb->closed, true, __ATOMIC_RELEASE);
	nb->ops->close(nb);
}

static void teardown_on_loop(void *opaque)
{
	struct teardown *t = opaque;
	bool abandoned;

	pthread_mutex_lock(&t->lock);
	abandoned = t->abandoned;
	if (!abandoned)
		backend_close(t->nb);
	t->done = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (abandoned)
		free(t);
}

/* Has the loop run our first call (it was queued at creation)? A running
 * loop does so at once; give it a moment, then assume it never started.
 * The answer for one loop is remembered for the other backends. */
static bool loop_seems_alive(struct net_backend *nb)
{
	static struct event_loop *dead_loop;

	for (int i = 0; i < 100 && nb->loop != dead_loop; i++) {
		if (__atomic_load_n(&nb->loop_alive, __ATOMIC_ACQUIRE))
			return true;
		usleep(1000);
	}
	if (__atomic_load_n(&nb->loop_alive, __ATOMIC_ACQUIRE))
		return true;
	dead_loop = nb->loop;
	return false;
}

/* Close on the loop thread when it runs, so that no callback of this
 * backend is in flight; inline when the loop never ran or is stopped. */
static void backend_close_quiesced(struct net_backend *nb)
{
	struct teardown *t;
	struct timespec deadline;
	bool done;

	if (!loop_seems_alive(nb) || !(t = calloc(1, sizeof(*t)))) {
		backend_close(nb);
		return;
	}
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->nb = nb;
	if (event_loop_call(nb->loop, teardown_on_loop, t) < 0) {
		free(t);
		backend_close(nb);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 1;
	pthread_mutex_lock(&t->lock);
	while (!t->done)
		if (pthread_cond_timedwait(&t->cond, &t->lock, &deadline) == ETIMEDOUT)
			break;
	done = t->done;
	if (!done) {
		t->abandoned = true;	/* the loop frees it if it ever runs */
		backend_close(nb);
	}
	pthread_mutex_unlock(&t->lock);
	if (done)
		free(t);
}

void net_cleanup(void)
{
	struct net_backend *list[NET_MAX_BACKENDS];
	unsigned n;

	pthread_mutex_lock(&registry_lock);
	n = n_backends;
	memcpy(list, backends, sizeof(list));
	memset(backends, 0, sizeof(backends));
	n_backends = 0;
	pthread_mutex_unlock(&registry_lock);
	for (unsigned i = 0; i < n; i++) {
		backend_close_quiesced(list[i]);
		/* Frontends may still hold the pointer: it stays valid, closed. */
	}
}

/* ---- startup ---- */

static int net_device_init(struct vm *vm)
{
	const struct vm_config *cfg = vm->cfg;
	char err[512];

	if (!cfg->n_netdevs && !cfg->n_nics)
		return 0;
	if (!vm->loop) {
		log_error("network backends need the event loop");
		return -EINVAL;
	}
	if (net_init_backends(cfg->netdevs, cfg->n_netdevs, vm->loop, err, sizeof(err)) < 0 ||
	    net_init_nics(cfg->nics, cfg->n_nics, vm->loop, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -EINVAL;
	}
	return 0;
}

DEVICE_INIT(DEVICE_LEVEL_PLATFORM, net_device_init);
