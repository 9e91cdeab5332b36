/* -netdev socket: frames over a host socket, compatible with QEMU's socket
 * netdev (IPv4, as QEMU 7.2).
 *   socket,id=ID,listen=[HOST]:PORT   wait for one peer (in the background,
 *                                     like QEMU 7.2; startup never blocks);
 *                                     after it leaves, accept the next one
 *   socket,id=ID,connect=HOST:PORT    non-blocking connect; an immediate
 *                                     refusal is a startup error; once the
 *                                     connection ends it stays down (QEMU)
 *   socket,id=ID,udp=HOST:PORT,localaddr=HOST:PORT
 *                                     one datagram per frame, sent to udp=,
 *                                     received on localaddr= from anyone
 *   socket,id=ID,mcast=GROUP:PORT[,localaddr=ADDR]
 *                                     one datagram per frame to a multicast
 *                                     group that every member receives, the
 *                                     sender included (as QEMU: guests on
 *                                     one host share a segment without
 *                                     root); localaddr= picks the interface
 *   socket,id=ID,fd=N[,mcast=...]     an inherited connected socket: stream
 *                                     (TCP or AF_UNIX) as connect=, datagram
 *                                     one frame per datagram; with mcast= a
 *                                     datagram fd is replaced by a socket
 *                                     joined to the group (QEMU's clone)
 * Stream framing is QEMU's: a 4-byte big-endian length, then the frame.
 * The reader takes what the socket has in one recv() (many frames at once)
 * and hands out the complete frames, keeping a partial one for the next
 * read. The writer sends a frame straight from the caller's iovecs, or,
 * for net_send_more(), copies it into the transmit buffer so that a batch
 * leaves in one send() at net_flush() (or when the buffer fills). What a
 * send leaves unsent stays in the buffer and waits for EPOLLOUT (further
 * sends return 0 until it is gone, then send_ready).
 * A peer announcing a frame above NET_MAX_FRAME loses its connection.
 * Frames sent while no peer is connected are dropped (-ENOTCONN). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "net/net_priv.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define SOCK_READ_BUDGET	16	/* recv() calls per wakeup, for fairness */
#define SOCK_UDP_BUDGET		256	/* datagrams per wakeup */
#define SOCK_DIRECT_IOVS	63	/* larger iovecs are flattened first */
#define SOCK_FRAME_MAX		(4 + NET_MAX_FRAME)	/* length word + frame */
#define SOCK_RBUF_SIZE		(SOCK_FRAME_MAX + 65536)
#define SOCK_TXBUF_SIZE		(SOCK_FRAME_MAX + 196608)
#define SOCK_TX_BATCH		65536	/* held bytes that are sent without waiting */

enum sock_mode { SOCK_LISTEN, SOCK_CONNECT, SOCK_UDP };

struct sock {
	struct net_backend *nb;
	enum sock_mode mode;
	int listen_fd, fd;
	bool connected;			/* stream: frames may flow on fd */
	struct sockaddr_in peer;	/* connect= target, udp= or mcast= destination
					 * (unset: a connected datagram fd=) */
	char where[64];			/* for log lines: the address we use */
	char peer_str[64];		/* the connected peer */

	pthread_mutex_t lock;		/* fd, connected, tx state, epoll masks */
	size_t tx_off, tx_len;		/* txbuf[tx_off, tx_len): bytes not sent yet */
	bool tx_wait;			/* the socket is full: wait for EPOLLOUT */
	bool tx_notify;			/* a send returned 0: send_ready later */
	bool udp_tx_blocked;
	bool rx_paused;

	/* Stream reader state (loop thread): rbuf[rstart, rend) is received
	 * and not handed out yet (frames, then at most one partial one). */
	size_t rstart, rend;

	uint8_t rbuf[SOCK_RBUF_SIZE];
	uint8_t txbuf[SOCK_TXBUF_SIZE];
};

static const char *const socket_keys[] = {
	"listen", "connect", "udp", "mcast", "fd", "localaddr", NULL
};

static void addr_str(const struct sockaddr_in *a, char *buf, size_t len)
{
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
	snprintf(buf, len, "%s:%u", ip, ntohs(a->sin_port));
}

/* Lock held. */
static void sock_update_mask(struct sock *s)
{
	uint32_t ev = s->rx_paused ? 0 : EPOLLIN;

	if (s->fd < 0)
		return;
	if (s->tx_wait || s->udp_tx_blocked || (s->mode == SOCK_CONNECT && !s->connected))
		ev |= EPOLLOUT;
	event_loop_mod_fd(s->nb->loop, s->fd, ev);
}

static void sock_conn_event(void *opaque, uint32_t events);
static void sock_listen_event(void *opaque, uint32_t events);

/* Drop the stream connection; a listener waits for the next peer. */
static void sock_disconnect(struct sock *s)
{
	bool notify;

	pthread_mutex_lock(&s->lock);
	if (s->fd >= 0) {
		event_loop_del_fd(s->nb->loop, s->fd);
		close(s->fd);
	}
	s->fd = -1;
	s->connected = false;
	s->tx_off = s->tx_len = 0;
	s->tx_wait = false;
	notify = s->tx_notify;
	s->tx_notify = false;
	s->rstart = s->rend = 0;
	if (s->mode == SOCK_LISTEN &&
	    event_loop_add_fd(s->nb->loop, s->listen_fd, EPOLLIN, sock_listen_event, s) < 0)
		log_error("netdev %s: cannot listen on %s again", s->nb->id, s->where);
	pthread_mutex_unlock(&s->lock);
	if (notify)
		net_tx_ready(s->nb);
}

static void sock_set_rx_paused(struct sock *s, bool paused)
{
	pthread_mutex_lock(&s->lock);
	s->rx_paused = paused;
	sock_update_mask(s);
	pthread_mutex_unlock(&s->lock);
}

static void stream_read(struct sock *s);

/* Frames may wait in rbuf with nothing more on the socket (so no EPOLLIN):
 * hand them out now. */
static void sock_rx_resume(struct net_backend *nb)
{
	struct sock *s = nb->priv;

	sock_set_rx_paused(s, false);
	if (s->mode != SOCK_UDP && s->fd >= 0 && s->rend > s->rstart)
		stream_read(s);
}

static void sock_listen_event(void *opaque, uint32_t events)
{
	struct sock *s = opaque;
	struct sockaddr_in from = { 0 };
	socklen_t fromlen = sizeof(from);
	int fd = accept4(s->listen_fd, (struct sockaddr *)&from, &fromlen,
			 SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_error("netdev %s: accept on %s: %s", s->nb->id, s->where,
				  strerror(errno));
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_lock(&s->lock);
	if (s->fd >= 0) {
		pthread_mutex_unlock(&s->lock);
		close(fd);	/* one peer at a time */
		return;
	}
	event_loop_del_fd(s->nb->loop, s->listen_fd);
	addr_str(&from, s->peer_str, sizeof(s->peer_str));
	s->fd = fd;
	s->connected = true;
	s->rstart = s->rend = 0;
	if (event_loop_add_fd(s->nb->loop, fd, s->rx_paused ? 0 : EPOLLIN, sock_conn_event,
			      s) < 0) {
		pthread_mutex_unlock(&s->lock);
		log_error("netdev %s: cannot watch the connection", s->nb->id);
		sock_disconnect(s);
		return;
	}
	pthread_mutex_unlock(&s->lock);
}

/* Hand out the complete frames at the front of rbuf: 1 done (more bytes
 * needed), 0 paused by the frontend, -1 bad length (drop the peer). */
static int stream_parse(struct sock *s)
{
	while (!s->rx_paused && s->rend - s->rstart >= 4) {
		const uint8_t *p = s->rbuf + s->rstart;
		uint32_t want = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];

		if (want > NET_MAX_FRAME) {
			log_error("netdev %s: peer %s announced a %u-byte frame (at most %u); "
				  "dropping the connection", s->nb->id, s->peer_str, want,
				  NET_MAX_FRAME);
			net_count_rx_error(s->nb);
			return -1;
		}
		if (s->rend - s->rstart - 4 < want)
			break;
		s->rstart += 4 + want;
		/* An empty frame carries nothing to deliver. */
		if (want && !net_rx_deliver(s->nb, p + 4, want)) {
			sock_set_rx_paused(s, true);
			return 0;
		}
	}
	if (s->rstart == s->rend)
		s->rstart = s->rend = 0;
	return s->rx_paused ? 0 : 1;
}

/* Read what the socket has and deliver the frames in it. */
static void stream_read(struct sock *s)
{
	for (int i = 0; i < SOCK_READ_BUDGET; i++) {
		size_t room;
		ssize_t n;
		int r = stream_parse(s);

		if (r < 0)
			sock_disconnect(s);
		if (r <= 0 || s->fd < 0)
			return;
		if (s->rstart) {	/* a partial frame (< SOCK_FRAME_MAX) to the front */
			memmove(s->rbuf, s->rbuf + s->rstart, s->rend - s->rstart);
			s->rend -= s->rstart;
			s->rstart = 0;
		}
		room = sizeof(s->rbuf) - s->rend;
		n = recv(s->fd, s->rbuf + s->rend, room, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (n < 0)
				log_warn("netdev %s: connection with %s: %s", s->nb->id,
					 s->peer_str, strerror(errno));
			sock_disconnect(s);
			return;
		}
		s->rend += n;
		if ((size_t)n < room)
			break;		/* drained the socket: EPOLLIN says when there is more */
	}
	if (stream_parse(s) < 0)
		sock_disconnect(s);
}

static void udp_read(struct sock *s)
{
	for (int i = 0; i < SOCK_UDP_BUDGET && !s->rx_paused; i++) {
		ssize_t n = recv(s->fd, s->rbuf, NET_MAX_FRAME, MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;		/* EAGAIN, or an ICMP error: nothing to read */
		if (n == 0)
			continue;
		if ((size_t)n > NET_MAX_FRAME) {
			net_count_rx_error(s->nb);
			continue;
		}
		if (!net_rx_deliver(s->nb, s->rbuf, n))
			sock_set_rx_paused(s, true);
	}
}

/* Lock held: send txbuf[tx_off, tx_len). False when the socket is full
 * (tx_wait set, EPOLLOUT asked for); a broken connection drops the bytes
 * (the read side sees the error). */
static bool stream_push(struct sock *s)
{
	while (s->fd >= 0 && s->tx_off < s->tx_len) {
		ssize_t n = send(s->fd, s->txbuf + s->tx_off, s->tx_len - s->tx_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!s->tx_wait) {
				s->tx_wait = true;
				sock_update_mask(s);
			}
			return false;
		}
		if (n <= 0)
			break;
		s->tx_off += n;
	}
	s->tx_off = s->tx_len = 0;
	return true;
}

/* Loop thread, EPOLLOUT: push the unsent bytes; true when something waits
 * for send_ready. */
static bool stream_flush(struct sock *s)
{
	bool notify = false;

	pthread_mutex_lock(&s->lock);
	s->tx_wait = false;
	if (stream_push(s)) {
		notify = s->tx_notify;
		s->tx_notify = false;
	}
	sock_update_mask(s);
	pthread_mutex_unlock(&s->lock);
	return notify;
}

static void sock_connected(struct sock *s)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		log_error("netdev %s: cannot connect to %s: %s", s->nb->id, s->where,
			  strerror(err));
		sock_disconnect(s);
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_lock(&s->lock);
	s->connected = true;
	sock_update_mask(s);
	pthread_mutex_unlock(&s->lock);
}

static void sock_conn_event(void *opaque, uint32_t events)
{
	struct sock *s = opaque;
	bool notify = false;

	if (s->fd < 0)
		return;
	if (s->mode == SOCK_CONNECT && !s->connected) {
		sock_connected(s);
		return;
	}
	if (events & EPOLLOUT) {
		if (s->mode == SOCK_UDP) {
			pthread_mutex_lock(&s->lock);
			notify = s->udp_tx_blocked;
			s->udp_tx_blocked = false;
			sock_update_mask(s);
			pthread_mutex_unlock(&s->lock);
		} else {
			notify = stream_flush(s);
		}
		if (notify)
			net_tx_ready(s->nb);
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	if (s->mode == SOCK_UDP)
		udp_read(s);
	else if (s->rx_paused && (events & (EPOLLERR | EPOLLHUP)))
		sock_disconnect(s);	/* dead while paused: no spinning on HUP */
	else
		stream_read(s);
}

/* Append the bytes of [hdr, iov...] after the first skip to txbuf (the
 * caller checked the room); returns the new tx_len. */
static size_t stash_tail(struct sock *s, const uint8_t *hdr, const struct iovec *iov,
			 int iovcnt, size_t skip)
{
	size_t out = s->tx_len;

	for (int i = -1; i < iovcnt; i++) {
		const uint8_t *p = i < 0 ? hdr : iov[i].iov_base;
		size_t l = i < 0 ? 4 : iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(s->txbuf + out, p + skip, l - skip);
		out += l - skip;
		skip = 0;
	}
	return out;
}

/* Lock held, nothing held in txbuf: send one frame from the caller's
 * iovecs; an unsent tail is copied aside and waits for EPOLLOUT. */
static ssize_t stream_send(struct sock *s, const struct iovec *iov, int iovcnt, size_t len)
{
	uint8_t hdr[4] = { len >> 24, len >> 16, len >> 8, len };
	struct iovec vec[SOCK_DIRECT_IOVS + 1];
	struct msghdr msg = { .msg_iov = vec };
	ssize_t n;

	if (iovcnt > SOCK_DIRECT_IOVS) {
		s->tx_len = stash_tail(s, hdr, iov, iovcnt, 0);
		stream_push(s);
		return len;
	}
	vec[0] = (struct iovec){ hdr, 4 };
	memcpy(vec + 1, iov, iovcnt * sizeof(*iov));
	msg.msg_iovlen = iovcnt + 1;
	do {
		n = sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN)
		return -errno;
	if (n < 0)
		n = 0;
	if ((size_t)n < 4 + len) {
		s->tx_len = stash_tail(s, hdr, iov, iovcnt, n);
		s->tx_wait = true;
		sock_update_mask(s);
	}
	return len;
}

/* Lock held: hold one frame in txbuf for a batched send. Sends first when
 * it does not fit; 0 when the socket is full. */
static ssize_t stream_hold(struct sock *s, const struct iovec *iov, int iovcnt, size_t len)
{
	uint8_t hdr[4] = { len >> 24, len >> 16, len >> 8, len };

	if (4 + len > sizeof(s->txbuf) - s->tx_len && !stream_push(s)) {
		s->tx_notify = true;
		return 0;
	}
	if (s->tx_off) {
		memmove(s->txbuf, s->txbuf + s->tx_off, s->tx_len - s->tx_off);
		s->tx_len -= s->tx_off;
		s->tx_off = 0;
	}
	s->tx_len = stash_tail(s, hdr, iov, iovcnt, 0);
	if (s->tx_len >= SOCK_TX_BATCH)
		stream_push(s);
	return len;
}

static ssize_t udp_send(struct sock *s, const struct iovec *iov, int iovcnt)
{
	bool to_peer = s->peer.sin_family == AF_INET;
	struct msghdr msg = {
		.msg_name = to_peer ? &s->peer : NULL,
		.msg_namelen = to_peer ? sizeof(s->peer) : 0,
		.msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt,
	};
	ssize_t n;

	do {
		n = sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	if (errno != EAGAIN && errno != ENOBUFS)
		return -errno;
	s->udp_tx_blocked = true;
	s->tx_notify = true;
	sock_update_mask(s);
	return 0;
}

static ssize_t sock_send_common(struct net_backend *nb, const struct iovec *iov, int iovcnt,
				size_t len, bool more)
{
	struct sock *s = nb->priv;
	ssize_t r;

	pthread_mutex_lock(&s->lock);
	if (s->mode == SOCK_UDP) {
		r = s->udp_tx_blocked ? 0 : udp_send(s, iov, iovcnt);
		if (r == 0)
			s->tx_notify = true;
	} else if (!s->connected) {
		r = -ENOTCONN;
	} else if (s->tx_wait) {
		s->tx_notify = true;
		r = 0;
	} else if (more) {
		r = stream_hold(s, iov, iovcnt, len);
	} else if (s->tx_len) {		/* behind held frames: keep the order */
		r = stream_hold(s, iov, iovcnt, len);
		if (r > 0)
			stream_push(s);
	} else {
		r = stream_send(s, iov, iovcnt, len);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

static ssize_t sock_send(struct net_backend *nb, const struct iovec *iov, int iovcnt, size_t len)
{
	return sock_send_common(nb, iov, iovcnt, len, false);
}

static ssize_t sock_send_more(struct net_backend *nb, const struct iovec *iov, int iovcnt,
			      size_t len)
{
	return sock_send_common(nb, iov, iovcnt, len, true);
}

static void sock_flush(struct net_backend *nb)
{
	struct sock *s = nb->priv;

	pthread_mutex_lock(&s->lock);
	if (s->mode != SOCK_UDP && s->connected && !s->tx_wait)
		stream_push(s);
	pthread_mutex_unlock(&s->lock);
}

static int sock_socket(int type, const struct sockaddr_in *bind_to, char *err, size_t errlen)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	char a[64];

	if (fd < 0) {
		snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
		return -1;
	}
	if (!bind_to)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)bind_to, sizeof(*bind_to)) < 0) {
		addr_str(bind_to, a, sizeof(a));
		snprintf(err, errlen, "cannot bind to %s: %s", a, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int sock_watch(struct sock *s, char *err, size_t errlen)
{
	if (event_loop_add_fd(s->nb->loop, s->fd, EPOLLIN, sock_conn_event, s) < 0) {
		snprintf(err, errlen, "cannot watch the socket");
		return -1;
	}
	return 0;
}

static int sock_open_listen(struct sock *s, const char *addr, char *err, size_t errlen)
{
	struct sockaddr_in sa;

	if (net_parse_host_port(addr, &sa, err, errlen) < 0)
		return -1;
	addr_str(&sa, s->where, sizeof(s->where));
	s->listen_fd = sock_socket(SOCK_STREAM, &sa, err, errlen);
	if (s->listen_fd < 0)
		return -1;
	if (listen(s->listen_fd, 1) < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", s->where, strerror(errno));
		return -1;
	}
	if (event_loop_add_fd(s->nb->loop, s->listen_fd, EPOLLIN, sock_listen_event, s) < 0) {
		snprintf(err, errlen, "cannot watch the listening socket");
		return -1;
	}
	return 0;
}

static int sock_open_connect(struct sock *s, const char *addr, char *err, size_t errlen)
{
	if (net_parse_host_port(addr, &s->peer, err, errlen) < 0)
		return -1;
	addr_str(&s->peer, s->where, sizeof(s->where));
	memcpy(s->peer_str, s->where, sizeof(s->peer_str));
	s->fd = sock_socket(SOCK_STREAM, NULL, err, errlen);
	if (s->fd < 0)
		return -1;
	if (connect(s->fd, (struct sockaddr *)&s->peer, sizeof(s->peer)) == 0) {
		s->connected = true;
	} else if (errno != EINPROGRESS && errno != EINTR) {
		snprintf(err, errlen, "cannot connect to %s: %s", s->where, strerror(errno));
		return -1;
	}
	if (event_loop_add_fd(s->nb->loop, s->fd, s->connected ? EPOLLIN : EPOLLOUT,
			      sock_conn_event, s) < 0) {
		snprintf(err, errlen, "cannot watch the socket");
		return -1;
	}
	return 0;
}

static int sock_open_udp(struct sock *s, const char *addr, const char *local, char *err,
			 size_t errlen)
{
	struct sockaddr_in la;

	if (!local) {
		snprintf(err, errlen, "localaddr= is mandatory with udp=");
		return -1;
	}
	if (net_parse_host_port(addr, &s->peer, err, errlen) < 0 ||
	    net_parse_host_port(local, &la, err, errlen) < 0)
		return -1;
	addr_str(&s->peer, s->where, sizeof(s->where));
	s->fd = sock_socket(SOCK_DGRAM, &la, err, errlen);
	return s->fd < 0 ? -1 : sock_watch(s, err, errlen);
}

/* A datagram socket bound to the group's port and joined to the group,
 * looping our own datagrams back (other VMMs on this host are members too);
 * local: the interface's address, else the kernel's choice. */
static int mcast_socket(const struct sockaddr_in *group, const char *local, char *err,
			size_t errlen)
{
	struct ip_mreq mreq = { .imr_multiaddr = group->sin_addr };
	char a[64];
	int fd, one = 1;

	addr_str(group, a, sizeof(a));
	if (!IN_MULTICAST(ntohl(group->sin_addr.s_addr))) {
		snprintf(err, errlen, "mcast=%s: not a multicast address (224.0.0.0/4)", a);
		return -1;
	}
	mreq.imr_interface.s_addr = htonl(INADDR_ANY);
	if (local && !inet_aton(local, &mreq.imr_interface)) {
		snprintf(err, errlen, "localaddr=%s: with mcast= an IPv4 address, no port", local);
		return -1;
	}
	fd = sock_socket(SOCK_DGRAM, group, err, errlen);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof(mreq)) < 0 ||
	    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof(one)) < 0 ||
	    (local && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq.imr_interface,
				 sizeof(mreq.imr_interface)) < 0)) {
		snprintf(err, errlen, "cannot join the multicast group %s%s%s: %s", a,
			 local ? " on " : "", local ? local : "", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int sock_open_mcast(struct sock *s, const char *addr, const char *local, char *err,
			   size_t errlen)
{
	if (net_parse_host_port(addr, &s->peer, err, errlen) < 0)
		return -1;
	addr_str(&s->peer, s->where, sizeof(s->where));
	s->fd = mcast_socket(&s->peer, local, err, errlen);
	return s->fd < 0 ? -1 : sock_watch(s, err, errlen);
}

/* fd=N: the socket must be connected (a stream is used as connect=, a
 * datagram socket sends to its peer), unless mcast= replaces it. */
static int sock_open_fd(struct sock *s, const char *v, const char *mcast, const char *local,
			char *err, size_t errlen)
{
	int fd = net_parse_fd(v, err, errlen), type = 0, one = 1;
	socklen_t len = sizeof(type);
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);

	if (fd < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    (type != SOCK_STREAM && type != SOCK_DGRAM)) {
		snprintf(err, errlen, "fd=%s is not a stream or datagram socket", v);
		return -1;
	}
	if (mcast && type != SOCK_DGRAM) {
		snprintf(err, errlen, "mcast= with fd= needs a datagram socket");
		return -1;
	}
	if (mcast) {		/* QEMU's clone: a socket of our own in the group */
		s->mode = SOCK_UDP;
		close(fd);
		return sock_open_mcast(s, mcast, local, err, errlen);
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0) {
		snprintf(err, errlen, "fd=%s: the socket is not connected", v);
		return -1;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "fd=%s: cannot make it non-blocking: %s", v, strerror(errno));
		return -1;
	}
	s->fd = fd;
	snprintf(s->where, sizeof(s->where), "fd=%s", v);
	memcpy(s->peer_str, s->where, sizeof(s->peer_str));
	if (type == SOCK_DGRAM) {
		s->mode = SOCK_UDP;
	} else {
		s->mode = SOCK_CONNECT;
		s->connected = true;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));	/* TCP only */
	}
	return sock_watch(s, err, errlen);
}

static void sock_close_fds(struct sock *s)
{
	if (s->fd >= 0) {
		event_loop_del_fd(s->nb->loop, s->fd);
		close(s->fd);
	}
	if (s->listen_fd >= 0) {
		event_loop_del_fd(s->nb->loop, s->listen_fd);
		close(s->listen_fd);
	}
	s->fd = s->listen_fd = -1;
	s->connected = false;
}

static int sock_open(struct net_backend *nb, const struct net_opts *o, char *err, size_t errlen)
{
	struct sock *s = nb->priv;
	const char *listen_at = net_opt_get(o, "listen"), *conn = net_opt_get(o, "connect");
	const char *udp = net_opt_get(o, "udp"), *local = net_opt_get(o, "localaddr");
	const char *mcast = net_opt_get(o, "mcast"), *fd = net_opt_get(o, "fd");
	int r;

	s->nb = nb;
	s->fd = s->listen_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	if (!!listen_at + !!conn + !!udp + !!(mcast || fd) != 1) {
		snprintf(err, errlen, "exactly one of listen=, connect=, udp=, mcast= and fd= is "
			 "needed (fd= may come with mcast=)");
		return -1;
	}
	if (local && !udp && !mcast) {
		snprintf(err, errlen, "localaddr= is only valid with udp= or mcast=");
		return -1;
	}
	if (fd) {
		r = sock_open_fd(s, fd, mcast, local, err, errlen);
	} else if (mcast) {
		s->mode = SOCK_UDP;
		r = sock_open_mcast(s, mcast, local, err, errlen);
	} else if (listen_at) {
		s->mode = SOCK_LISTEN;
		r = sock_open_listen(s, listen_at, err, errlen);
	} else if (conn) {
		s->mode = SOCK_CONNECT;
		r = sock_open_connect(s, conn, err, errlen);
	} else {
		s->mode = SOCK_UDP;
		r = sock_open_udp(s, udp, local, err, errlen);
	}
	if (r < 0)
		sock_close_fds(s);
	return r;
}

static void sock_close(struct net_backend *nb)
{
	struct sock *s = nb->priv;

	pthread_mutex_lock(&s->lock);
	sock_close_fds(s);
	pthread_mutex_unlock(&s->lock);
}

const struct net_backend_ops net_socket_ops = {
	.type = "socket",
	.keys = socket_keys,
	.priv_size = sizeof(struct sock),
	.open = sock_open,
	.send = sock_send,
	.send_more = sock_send_more,
	.flush = sock_flush,
	.rx_resume = sock_rx_resume,
	.close = sock_close,
};
