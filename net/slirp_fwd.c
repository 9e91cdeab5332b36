/* -netdev user's forwarding rules: hostfwd= and guestfwd= (QEMU's syntax),
 * checked before slirp exists and added after, and the host end of a
 * guestfwd= whose target is a socket:
 *   guestfwd=[tcp]:[ADDR]:PORT-cmd:COMMAND	slirp runs COMMAND for each
 *	guest connection to ADDR:PORT, the connection on its stdin/stdout;
 *   guestfwd=[tcp]:[ADDR]:PORT-tcp:HOST:PORT	(or -unix:PATH) one host
 *	connection, made at startup (a refused one is a startup error), as
 *	QEMU's chardev: what the guest sends to ADDR:PORT is written to it,
 *	what the host sends goes to the guest's connection to ADDR:PORT, and
 *	waits in the socket while the guest has none or no room.
 * Every call runs on the event loop thread (slirp is not thread-safe).
 * Writes toward the host are whole or dropped: slirp takes no partial
 * write (QEMU blocks its main loop until all is written); a host end that
 * takes nothing for FWD_STALL_MS is closed and logged, and the rule's
 * later guest data is dropped. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "net/slirp_fwd.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define FWD_STALL_MS	5000	/* a host end that takes no byte for this long is closed */
#define FWD_CHUNK	16384	/* bytes read from a host end at a time */

enum fwd_target { FWD_CMD, FWD_TCP, FWD_UNIX };

struct guestfwd {
	struct slirp_fwds *fwds;
	char *rule;			/* for messages */
	struct in_addr addr;		/* the guest's view: ADDR:PORT */
	int port;
	int fd;				/* the host end; -1: none or closed */
	bool watched;			/* fd is in the event loop */
};

struct slirp_fwds {
	Slirp *slirp;
	struct event_loop *loop;
	const char *netdev_id;
	void (*run)(void *);
	void *opaque;
	unsigned n;
	struct guestfwd g[];
};

/* A decimal port in [min, 65535] that ends the string; -1 if not one. */
static long parse_port(const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	return !*s || *end || errno || v < min || v > 65535 ? -1 : v;
}

/* One side of a hostfwd rule, "[ADDR]:PORT" (cut in place); the host side
 * may use port 0 (any), the guest side may not. */
static int parse_hostfwd_side(char *s, bool guest, struct in_addr *addr, int *port,
			      const char **why)
{
	char *colon = strchr(s, ':');

	if (!colon) {
		*why = guest ? "missing ':' before the guest port" :
			       "missing ':' before the host port";
		return -1;
	}
	*colon = '\0';
	if (*s && !inet_aton(s, addr)) {
		*why = guest ? "bad guest address" : "bad host address";
		return -1;
	}
	*port = (int)parse_port(colon + 1, guest ? 1 : 0);
	if (*port < 0) {
		*why = guest ? "bad guest port" : "bad host port";
		return -1;
	}
	return 0;
}

struct hostfwd_rule {
	bool udp;
	struct in_addr haddr, gaddr;
	int hport, gport;
};

/* "tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT" */
static int parse_hostfwd(const char *rule, struct hostfwd_rule *h, const char **why)
{
	char buf[256], *p = buf, *host, *guest, *colon;

	if (strlen(rule) >= sizeof(buf)) {
		*why = "too long";
		return -1;
	}
	strcpy(buf, rule);
	colon = strchr(p, ':');
	if (!colon) {
		*why = "missing ':' after the protocol";
		return -1;
	}
	*colon = '\0';
	if (!strcmp(p, "udp")) {
		h->udp = true;
	} else if (!strcmp(p, "tcp") || !*p) {
		h->udp = false;
	} else {
		*why = "bad protocol (tcp or udp)";
		return -1;
	}
	host = colon + 1;
	guest = strchr(host, '-');
	if (!guest) {
		*why = "missing '-' between host and guest";
		return -1;
	}
	*guest++ = '\0';
	h->haddr.s_addr = htonl(INADDR_ANY);
	h->gaddr.s_addr = 0;	/* slirp: the first DHCP address */
	if (parse_hostfwd_side(host, false, &h->haddr, &h->hport, why) < 0)
		return -1;
	return parse_hostfwd_side(guest, true, &h->gaddr, &h->gport, why);
}

struct guestfwd_rule {
	struct in_addr addr;
	int port;
	enum fwd_target target;
	const char *cmd;		/* FWD_CMD: the command */
	char host[256], service[8];	/* FWD_TCP */
	struct sockaddr_un un;		/* FWD_UNIX */
};

/* "tcp:HOST:PORT" (HOST may be empty: this host) or "unix:PATH". */
static int parse_socket_target(const char *t, struct guestfwd_rule *r, const char **why)
{
	const char *colon;
	long v;

	if (!strncmp(t, "unix:", 5)) {
		if (!t[5] || strlen(t + 5) >= sizeof(r->un.sun_path)) {
			*why = "bad unix socket path";
			return -1;
		}
		r->target = FWD_UNIX;
		r->un.sun_family = AF_UNIX;
		strcpy(r->un.sun_path, t + 5);
		return 0;
	}
	t += 4;		/* "tcp:" */
	colon = strrchr(t, ':');
	if (!colon || (size_t)(colon - t) >= sizeof(r->host)) {
		*why = "the tcp: target needs HOST:PORT";
		return -1;
	}
	v = parse_port(colon + 1, 1);
	if (v < 0) {
		*why = "bad port in the tcp: target";
		return -1;
	}
	r->target = FWD_TCP;
	memcpy(r->host, t, colon - t);
	r->host[colon - t] = '\0';
	snprintf(r->service, sizeof(r->service), "%d", (int)v);
	return 0;
}

/* "[tcp]:[ADDR]:PORT-TARGET"; an empty ADDR is slirp's default. */
static int parse_guestfwd(const char *rule, struct guestfwd_rule *r, const char **why)
{
	const char *p = rule, *colon, *dash;
	char host[INET_ADDRSTRLEN], *end;
	long v;

	memset(r, 0, sizeof(*r));
	if (!strncmp(p, "tcp:", 4))
		p += 4;
	else if (*p++ != ':') {
		*why = "bad protocol (tcp only)";
		return -1;
	}
	colon = strchr(p, ':');
	if (!colon || (size_t)(colon - p) >= sizeof(host)) {
		*why = "missing ':' before the port";
		return -1;
	}
	memcpy(host, p, colon - p);
	host[colon - p] = '\0';
	if (*host && !inet_aton(host, &r->addr)) {
		*why = "bad address";
		return -1;
	}
	dash = strchr(colon, '-');
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (!dash || end != dash || dash == colon + 1 || errno || v < 1 || v > 65535) {
		*why = "bad port";
		return -1;
	}
	r->port = v;
	if (!strncmp(dash + 1, "cmd:", 4) && dash[5]) {
		r->target = FWD_CMD;
		r->cmd = dash + 5;
		return 0;
	}
	if (!strncmp(dash + 1, "tcp:", 4) || !strncmp(dash + 1, "unix:", 5))
		return parse_socket_target(dash + 1, r, why);
	*why = "the target must be cmd:COMMAND, tcp:HOST:PORT or unix:PATH";
	return -1;
}

int slirp_fwd_check(const struct net_opts *o, char *err, size_t errlen)
{
	struct guestfwd_rule gr;
	struct hostfwd_rule hr;
	const char *rule, *why;
	unsigned pos = 0;

	while ((rule = net_opt_next(o, "hostfwd", &pos))) {
		if (parse_hostfwd(rule, &hr, &why) < 0) {
			snprintf(err, errlen, "invalid host forwarding rule '%s' (%s)", rule, why);
			return -1;
		}
	}
	pos = 0;
	while ((rule = net_opt_next(o, "guestfwd", &pos))) {
		if (parse_guestfwd(rule, &gr, &why) < 0) {
			snprintf(err, errlen, "invalid guest forwarding rule '%s' (%s)", rule, why);
			return -1;
		}
	}
	return 0;
}

/* ---- the host end of a socket target ---- */

static int connect_tcp(const struct guestfwd_rule *r, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, e;

	e = getaddrinfo(*r->host ? r->host : NULL, r->service, &hints, &res);
	if (e) {
		snprintf(err, errlen, "%s", gai_strerror(e));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, errlen, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int connect_target(const struct guestfwd_rule *r, char *err, size_t errlen)
{
	int fd;

	if (r->target == FWD_TCP)
		return connect_tcp(r, err, errlen);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (const struct sockaddr *)&r->un, sizeof(r->un)) == 0)
		return fd;
	snprintf(err, errlen, "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void fwd_unwatch(struct guestfwd *g)
{
	if (g->watched)
		event_loop_del_fd(g->fwds->loop, g->fd);
	g->watched = false;
}

static void fwd_close(struct guestfwd *g, const char *why)
{
	fwd_unwatch(g);
	if (g->fd < 0)
		return;
	log_warn("netdev %s: guestfwd '%s': %s; closed, later guest data is dropped",
		 g->fwds->netdev_id, g->rule, why);
	close(g->fd);
	g->fd = -1;
}

/* slirp -> host: the guest's bytes for ADDR:PORT, all of them. */
static ssize_t fwd_write(const void *buf, size_t len, void *opaque)
{
	struct guestfwd *g = opaque;
	const uint8_t *p = buf;
	size_t done = 0;

	while (g->fd >= 0 && done < len) {
		ssize_t n = send(g->fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd pfd = { .fd = g->fd, .events = POLLOUT };

		if (n > 0) {
			done += n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno != EAGAIN) {
			fwd_close(g, strerror(errno));
		} else if (poll(&pfd, 1, FWD_STALL_MS) == 0) {
			fwd_close(g, "the host end takes no data");
		}
	}
	return len;
}

static void fwd_readable(void *opaque, uint32_t events);

static void fwd_watch(struct guestfwd *g)
{
	if (g->fd >= 0 && !g->watched &&
	    event_loop_add_fd(g->fwds->loop, g->fd, EPOLLIN, fwd_readable, g) == 0)
		g->watched = true;
}

/* host -> guest, as much as the guest's connection has room for; with no
 * room (or no connection yet) the data waits in the socket, unwatched,
 * until slirp_fwd_resume finds room. */
static void fwd_readable(void *opaque, uint32_t events)
{
	struct guestfwd *g = opaque;
	struct slirp_fwds *f = g->fwds;
	uint8_t buf[FWD_CHUNK];
	size_t room = slirp_socket_can_recv(f->slirp, g->addr, g->port);
	ssize_t n;

	if (!room) {
		fwd_unwatch(g);
		return;
	}
	n = recv(g->fd, buf, room < sizeof(buf) ? room : sizeof(buf), MSG_DONTWAIT);
	if (n > 0) {
		slirp_socket_recv(f->slirp, g->addr, g->port, buf, (int)n);
		f->run(f->opaque);
	} else if (n == 0) {
		fwd_close(g, "the host end closed the connection");
	} else if (errno != EAGAIN && errno != EINTR) {
		fwd_close(g, strerror(errno));
	}
}

void slirp_fwd_resume(struct slirp_fwds *f)
{
	for (unsigned i = 0; f && i < f->n; i++) {
		struct guestfwd *g = &f->g[i];

		if (g->fd >= 0 && !g->watched &&
		    slirp_socket_can_recv(f->slirp, g->addr, g->port))
			fwd_watch(g);
	}
}

/* ---- setting up ---- */

static int add_hostfwds(Slirp *slirp, const struct net_opts *o, char *err, size_t errlen)
{
	struct hostfwd_rule h;
	const char *rule, *why;
	unsigned pos = 0;

	while ((rule = net_opt_next(o, "hostfwd", &pos))) {
		parse_hostfwd(rule, &h, &why);
		errno = 0;
		if (slirp_add_hostfwd(slirp, h.udp, h.haddr, h.hport, h.gaddr, h.gport) < 0) {
			snprintf(err, errlen, "could not set up host forwarding rule '%s'%s%s",
				 rule, errno ? ": " : "", errno ? strerror(errno) : "");
			return -1;
		}
	}
	return 0;
}

static int add_guestfwd(struct slirp_fwds *f, const char *rule, char *err, size_t errlen)
{
	struct guestfwd *g = &f->g[f->n];
	struct guestfwd_rule r;
	const char *why;
	char cerr[128];
	int rc;

	parse_guestfwd(rule, &r, &why);
	*g = (struct guestfwd){ .fwds = f, .addr = r.addr, .port = r.port, .fd = -1 };
	if (r.target == FWD_CMD) {
		rc = slirp_add_exec(f->slirp, r.cmd, &g->addr, r.port);
	} else {
		g->rule = strdup(rule);
		g->fd = g->rule ? connect_target(&r, cerr, sizeof(cerr)) : -1;
		if (g->fd < 0) {
			free(g->rule);
			if (!g->rule)
				snprintf(cerr, sizeof(cerr), "out of memory");
			snprintf(err, errlen, "guest forwarding rule '%s': cannot connect to %s%s%s: "
				 "%s", rule, r.target == FWD_TCP ? r.host : r.un.sun_path,
				 r.target == FWD_TCP ? ":" : "",
				 r.target == FWD_TCP ? r.service : "", cerr);
			return -1;
		}
		f->n++;		/* freed with the others from here on */
		rc = slirp_add_guestfwd(f->slirp, fwd_write, g, &g->addr, r.port);
	}
	if (rc < 0) {
		snprintf(err, errlen, "could not set up guest forwarding rule '%s' (the address "
			 "must be a free one of the virtual network, used once)", rule);
		return -1;
	}
	return 0;	/* watched by slirp_fwd_resume once the guest connects */
}

struct slirp_fwds *slirp_fwd_add(Slirp *slirp, struct event_loop *loop, const char *netdev_id,
				 void (*run)(void *), void *opaque, const struct net_opts *o,
				 char *err, size_t errlen)
{
	struct slirp_fwds *f;
	const char *rule;
	unsigned pos = 0, n = 0;

	while (net_opt_next(o, "guestfwd", &pos))
		n++;
	f = calloc(1, sizeof(*f) + n * sizeof(f->g[0]));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*f = (struct slirp_fwds){ .slirp = slirp, .loop = loop, .netdev_id = netdev_id,
				  .run = run, .opaque = opaque };
	if (add_hostfwds(slirp, o, err, errlen) < 0)
		goto fail;
	pos = 0;
	while ((rule = net_opt_next(o, "guestfwd", &pos)))
		if (add_guestfwd(f, rule, err, errlen) < 0)
			goto fail;
	return f;
fail:
	slirp_fwd_free(f);
	return NULL;
}

void slirp_fwd_free(struct slirp_fwds *f)
{
	for (unsigned i = 0; f && i < f->n; i++) {
		fwd_unwatch(&f->g[i]);
		if (f->g[i].fd >= 0)
			close(f->g[i].fd);
		free(f->g[i].rule);
	}
	free(f);
}
