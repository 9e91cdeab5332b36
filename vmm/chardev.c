/* Character backends: stdio (raw tty, Ctrl-a escape), file, pty, unix
 * socket server/client, null. Owns the input path (event loop thread,
 * paced by the frontend's can_read) and the never-blocking output path. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "vmm/chardev.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define CTRL_A 0x01
#define CHR_INBUF 256

enum chr_kind { CHR_NULL, CHR_STDIO, CHR_FILE, CHR_PTY, CHR_UNIX_SERVER, CHR_UNIX_CLIENT };

struct chardev {
	enum chr_kind kind;
	char label[32];
	char *path;			/* socket path (server: unlinked at close) */

	/* Output side: out_fd may be swapped by the loop thread (socket
	 * connect/disconnect) while vCPU threads write, hence the lock. */
	pthread_mutex_t lock;
	int out_fd;
	bool out_is_socket;
	uint64_t written, dropped;

	/* Input side: touched on the loop thread only (except paused). */
	int in_fd;			/* -1: no input */
	bool in_pollable;		/* false: regular file, read via calls */
	bool in_watched;
	bool in_eof;
	int paused;			/* atomic: waiting for accept_input */
	int resume_queued;		/* atomic */
	uint8_t pend[CHR_INBUF];
	size_t pend_off, pend_len;

	int listen_fd;			/* unix server */
	int slave_fd;			/* pty: held open so the master never hangs up */
	int close_out;			/* out_fd is ours to close */

	bool escape;			/* stdio: Ctrl-a escape processing */
	bool escape_pending;
	bool raw_tty;			/* saved_tio valid */
	struct termios saved_tio;
	int saved_out_flags;		/* stdout fallback: flags to restore, -1 none */

	struct event_loop *loop;
	struct chardev_frontend fe;
	bool attached;
	struct chardev *next;
};

static pthread_mutex_t chr_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chardev *chr_list;
static bool stdio_in_use;
static void (*quit_fn)(void *);
static void *quit_opaque;

static void chr_input_ready(void *opaque, uint32_t events);
static void chr_listen_ready(void *opaque, uint32_t events);

static void chr_file_input_ready(void *opaque)
{
	chr_input_ready(opaque, EPOLLIN);
}

void chardev_set_quit_handler(void (*fn)(void *), void *opaque)
{
	quit_fn = fn;
	quit_opaque = opaque;
}

static struct chardev *chr_new(enum chr_kind kind, const char *label)
{
	struct chardev *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->kind = kind;
	snprintf(c->label, sizeof(c->label), "%s", label ? label : "chardev");
	pthread_mutex_init(&c->lock, NULL);
	c->out_fd = c->in_fd = c->listen_fd = c->slave_fd = -1;
	c->saved_out_flags = -1;
	c->in_pollable = true;
	return c;
}

static void chr_free(struct chardev *c)
{
	if (c->close_out && c->out_fd >= 0 && c->out_fd != c->in_fd)
		close(c->out_fd);
	if (c->in_fd > 2)
		close(c->in_fd);
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->slave_fd >= 0)
		close(c->slave_fd);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
}

static void chr_list_add(struct chardev *c)
{
	pthread_mutex_lock(&chr_list_lock);
	c->next = chr_list;
	chr_list = c;
	pthread_mutex_unlock(&chr_list_lock);
}

/* Writing to a vanished pipe reader must drop bytes, not kill the VMM. */
static void ignore_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
		sa.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &sa, NULL);
	}
}

static void restore_terminal(struct chardev *c)
{
	if (c->raw_tty) {
		tcsetattr(c->in_fd >= 0 ? c->in_fd : STDIN_FILENO, TCSANOW, &c->saved_tio);
		c->raw_tty = false;
	}
	if (c->saved_out_flags >= 0 && c->out_fd >= 0) {
		fcntl(c->out_fd, F_SETFL, c->saved_out_flags);
		c->saved_out_flags = -1;
	}
}

void chardev_cleanup_all(void)
{
	for (struct chardev *c = chr_list; c; c = c->next)
		restore_terminal(c);
}

/* ------------------------------------------------------------------ */
/* Backend constructors                                               */

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A non-blocking descriptor for our stdout that does not change the
 * shared file description the shell sees. */
static int stdio_output_fd(struct chardev *c)
{
	struct stat st;
	int fd;

	if (fstat(STDOUT_FILENO, &st) < 0)
		return -1;
	if (S_ISREG(st.st_mode))
		return dup(STDOUT_FILENO);	/* files do not block; keep the offset */
	/* A slow pipe reader (a test harness) loses less with a big pipe. */
	if (S_ISFIFO(st.st_mode))
		fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20);
	fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0)
		return fd;
	/* Sockets cannot be reopened: flip the flag and restore it at exit. */
	fd = dup(STDOUT_FILENO);
	if (fd < 0)
		return -1;
	c->saved_out_flags = fcntl(fd, F_GETFL);
	set_nonblock(fd);
	return fd;
}

static void stdio_raw_mode(struct chardev *c, bool keep_signals)
{
	struct termios tio;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &c->saved_tio) < 0)
		return;
	tio = c->saved_tio;
	tio.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	tio.c_oflag |= OPOST;
	tio.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
	if (!keep_signals)
		tio.c_lflag &= ~ISIG;
	tio.c_cflag &= ~(CSIZE | PARENB);
	tio.c_cflag |= CS8;
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &tio) == 0)
		c->raw_tty = true;
}

static struct chardev *open_stdio(const char *label, bool mux, char *err, size_t errlen)
{
	struct chardev *c;
	struct stat st;
	static bool atexit_done;

	if (stdio_in_use) {
		snprintf(err, errlen, "cannot use stdio by multiple character devices");
		return NULL;
	}
	c = chr_new(CHR_STDIO, label);
	if (!c)
		goto oom;
	c->out_fd = stdio_output_fd(c);
	if (c->out_fd < 0) {
		snprintf(err, errlen, "stdio: cannot use standard output: %s", strerror(errno));
		chr_free(c);
		return NULL;
	}
	c->close_out = 1;
	c->in_fd = STDIN_FILENO;
	if (fstat(STDIN_FILENO, &st) < 0)
		c->in_fd = -1;
	else if (S_ISREG(st.st_mode))
		c->in_pollable = false;
	c->escape = true;
	stdio_raw_mode(c, !mux);
	stdio_in_use = true;
	if (!atexit_done) {
		atexit(chardev_cleanup_all);
		atexit_done = true;
	}
	return c;
oom:
	snprintf(err, errlen, "out of memory");
	return NULL;
}

static struct chardev *open_file(const char *path, const char *label, char *err, size_t errlen)
{
	struct chardev *c;
	int fd;

	if (!*path) {
		snprintf(err, errlen, "file: missing path (file:PATH)");
		return NULL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0666);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	c = chr_new(CHR_FILE, label);
	if (!c) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->out_fd = fd;
	c->close_out = 1;
	return c;
}

static struct chardev *open_pty(const char *label, char *err, size_t errlen)
{
	struct chardev *c;
	struct termios tio;
	const char *name;
	int master;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
	    !(name = ptsname(master))) {
		snprintf(err, errlen, "pty: %s", strerror(errno));
		if (master >= 0)
			close(master);
		return NULL;
	}
	c = chr_new(CHR_PTY, label);
	if (!c) {
		close(master);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->slave_fd = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tcgetattr(master, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(master, TCSANOW, &tio);
	}
	set_nonblock(master);
	c->in_fd = c->out_fd = master;
	c->close_out = 1;
	printf("char device redirected to %s (label %s)\n", name, c->label);
	fflush(stdout);
	return c;
}

struct unix_opts {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	bool server, wait;
};

static int parse_bool_opt(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
		*out = false;
		return 0;
	}
	return -1;
}

static int parse_unix_spec(const char *s, struct unix_opts *o, char *err, size_t errlen)
{
	const char *comma = strchr(s, ',');
	size_t plen = comma ? (size_t)(comma - s) : strlen(s);
	char opts[256];

	memset(o, 0, sizeof(*o));
	o->wait = true;
	if (!plen) {
		snprintf(err, errlen, "unix: missing socket path");
		return -1;
	}
	if (plen >= sizeof(o->path)) {
		snprintf(err, errlen, "unix: socket path longer than %zu bytes",
			 sizeof(o->path) - 1);
		return -1;
	}
	memcpy(o->path, s, plen);
	if (!comma)
		return 0;
	if (strlen(comma + 1) >= sizeof(opts)) {
		snprintf(err, errlen, "unix: options too long");
		return -1;
	}
	strcpy(opts, comma + 1);
	for (char *save, *tok = strtok_r(opts, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		bool *target = NULL, val = true;

		if (eq)
			*eq = '\0';
		if (!strcmp(tok, "server"))
			target = &o->server;
		else if (!strcmp(tok, "wait"))
			target = &o->wait;
		else if (!strcmp(tok, "nowait") && !eq)
			target = &o->wait, val = false;
		if (!target || (eq && parse_bool_opt(eq + 1, &val) < 0)) {
			snprintf(err, errlen, "unix: unknown option '%s%s%s'", tok,
				 eq ? "=" : "", eq ? eq + 1 : "");
			return -1;
		}
		*target = val;
	}
	return 0;
}

static void unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, strlen(path));
}

static int unix_listen(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	/* Replace a stale socket, but never delete some other kind of file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "unix: %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "unix: socket: %s", strerror(errno));
		return -1;
	}
	unix_addr(&sa, path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		snprintf(err, errlen, "unix: cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int unix_connect(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "unix: socket: %s", strerror(errno));
		return -1;
	}
	unix_addr(&sa, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "unix: cannot connect to %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	set_nonblock(fd);
	return fd;
}

static struct chardev *open_unix(const char *spec, const char *label, char *err, size_t errlen)
{
	struct unix_opts o;
	struct chardev *c;
	int fd;

	if (parse_unix_spec(spec, &o, err, errlen) < 0)
		return NULL;
	fd = o.server ? unix_listen(o.path, err, errlen) : unix_connect(o.path, err, errlen);
	if (fd < 0)
		return NULL;
	c = chr_new(o.server ? CHR_UNIX_SERVER : CHR_UNIX_CLIENT, label);
	if (!c || !(c->path = strdup(o.path))) {
		if (c)
			chr_free(c);
		close(fd);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->out_is_socket = true;
	if (!o.server) {
		c->in_fd = c->out_fd = fd;
		return c;
	}
	c->listen_fd = fd;
	if (o.wait) {
		int client;

		fprintf(stderr, "minikvm: waiting for connection on: unix:%s,server\n", o.path);
		client = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (client < 0) {
			snprintf(err, errlen, "unix: accept on %s: %s", o.path, strerror(errno));
			chr_free(c);
			return NULL;
		}
		c->in_fd = c->out_fd = client;
	}
	set_nonblock(fd);
	return c;
}

struct chardev *chardev_open_label(const char *spec, const char *label, char *err, size_t errlen)
{
	struct chardev *c;

	if (!spec || !*spec) {
		snprintf(err, errlen, "empty character device spec");
		return NULL;
	}
	ignore_sigpipe();
	if (!strcmp(spec, "stdio") || !strcmp(spec, "mon:stdio"))
		c = open_stdio(label, spec[0] == 'm', err, errlen);
	else if (!strcmp(spec, "null") || !strcmp(spec, "none"))
		c = chr_new(CHR_NULL, label);
	else if (!strncmp(spec, "file:", 5))
		c = open_file(spec + 5, label, err, errlen);
	else if (!strcmp(spec, "pty"))
		c = open_pty(label, err, errlen);
	else if (!strncmp(spec, "unix:", 5))
		c = open_unix(spec + 5, label, err, errlen);
	else {
		snprintf(err, errlen, "unknown character device '%s' (use stdio, mon:stdio, "
			 "file:PATH, pty, unix:PATH,server[,nowait], null or none)", spec);
		return NULL;
	}
	if (!c) {
		if (!*err)
			snprintf(err, errlen, "out of memory");
		return NULL;
	}
	chr_list_add(c);
	return c;
}

struct chardev *chardev_open(const char *spec, char *err, size_t errlen)
{
	return chardev_open_label(spec, "chardev", err, errlen);
}

/* ------------------------------------------------------------------ */
/* Output                                                             */

size_t chardev_write(struct chardev *c, const uint8_t *buf, size_t len)
{
	ssize_t n = 0;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	if (c->kind == CHR_NULL) {
		n = len;
	} else if (c->out_fd >= 0) {
		if (c->out_is_socket)
			n = send(c->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			n = write(c->out_fd, buf, len);
		if (n < 0)
			n = 0;	/* EAGAIN, EPIPE...: the guest must not stall */
	}
	c->written += n;
	c->dropped += len - n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

static void chr_print(struct chardev *c, const char *s)
{
	chardev_write(c, (const uint8_t *)s, strlen(s));
}

void chardev_get_stats(struct chardev *c, uint64_t *written, uint64_t *dropped)
{
	pthread_mutex_lock(&c->lock);
	if (written)
		*written = c->written;
	if (dropped)
		*dropped = c->dropped;
	pthread_mutex_unlock(&c->lock);
}

bool chardev_is_connected(struct chardev *c)
{
	bool connected;

	if (c->kind != CHR_UNIX_SERVER && c->kind != CHR_UNIX_CLIENT)
		return true;
	pthread_mutex_lock(&c->lock);
	connected = c->out_fd >= 0;
	pthread_mutex_unlock(&c->lock);
	return connected;
}

/* ------------------------------------------------------------------ */
/* Input (event loop thread)                                          */

static void stdio_help(struct chardev *c)
{
	chr_print(c, "\r\nC-a h    print this help\r\n"
		     "C-a x    exit emulator\r\n"
		     "C-a c    switch between console and monitor (not yet)\r\n"
		     "C-a C-a  sends C-a\r\n");
}

static void stdio_quit(struct chardev *c)
{
	chr_print(c, "minikvm: Terminated\r\n");
	if (quit_fn) {
		quit_fn(quit_opaque);
		return;
	}
	chardev_cleanup_all();
	exit(0);
}

/* Apply the Ctrl-a escape to freshly read bytes; returns bytes kept. */
static size_t stdio_escape(struct chardev *c, uint8_t *buf, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t b = buf[i];

		if (!c->escape_pending) {
			if (b == CTRL_A)
				c->escape_pending = true;
			else
				buf[out++] = b;
			continue;
		}
		c->escape_pending = false;
		switch (b) {
		case CTRL_A:
			buf[out++] = b;
			break;
		case 'x':
			stdio_quit(c);
			return 0;
		case 'h':
		case '?':
			stdio_help(c);
			break;
		default:	/* 'c' (monitor) and unknown keys: ignored */
			break;
		}
	}
	return out;
}

static void input_watch(struct chardev *c)
{
	if (c->in_fd < 0 || c->in_eof || !c->loop || c->in_watched)
		return;
	if (!c->in_pollable) {
		/* Regular files are always readable: poll them by calls. */
		c->in_watched = event_loop_call(c->loop, chr_file_input_ready, c) == 0;
		return;
	}
	if (event_loop_add_fd(c->loop, c->in_fd, EPOLLIN, chr_input_ready, c) == 0)
		c->in_watched = true;
	else
		c->in_eof = true;	/* e.g. /dev/null on stdin: nothing to read */
}

static void input_unwatch(struct chardev *c)
{
	if (!c->in_watched)
		return;
	if (c->in_pollable)
		event_loop_del_fd(c->loop, c->in_fd);
	c->in_watched = false;
}

/* Hand pending bytes to the frontend. Returns false when it is full. */
static bool deliver_pending(struct chardev *c)
{
	while (c->pend_len) {
		size_t room = c->fe.can_read ? c->fe.can_read(c->fe.opaque) : c->pend_len;

		if (!room) {
			/* Publish "paused" before looking again, so a racing
			 * accept_input either sees it or we see its room. */
			__atomic_store_n(&c->paused, 1, __ATOMIC_SEQ_CST);
			room = c->fe.can_read(c->fe.opaque);
			if (!room)
				return false;
			__atomic_store_n(&c->paused, 0, __ATOMIC_SEQ_CST);
		}
		if (room > c->pend_len)
			room = c->pend_len;
		if (c->fe.read)
			c->fe.read(c->fe.opaque, c->pend + c->pend_off, room);
		c->pend_off += room;
		c->pend_len -= room;
	}
	c->pend_off = 0;
	return true;
}

static void server_listen_watch(struct chardev *c)
{
	if (c->loop && c->listen_fd >= 0)
		event_loop_add_fd(c->loop, c->listen_fd, EPOLLIN, chr_listen_ready, c);
}

static void peer_disconnected(struct chardev *c)
{
	int fd = c->in_fd;

	input_unwatch(c);
	pthread_mutex_lock(&c->lock);
	c->out_fd = -1;
	pthread_mutex_unlock(&c->lock);
	c->in_fd = -1;
	c->pend_len = c->pend_off = 0;
	close(fd);
	if (c->fe.event)
		c->fe.event(c->fe.opaque, false);
	if (c->kind == CHR_UNIX_SERVER)
		server_listen_watch(c);
}

static void input_eof(struct chardev *c)
{
	if (c->kind == CHR_UNIX_SERVER || c->kind == CHR_UNIX_CLIENT) {
		peer_disconnected(c);
		return;
	}
	/* stdin at EOF (a pipe in tests): stop reading, keep running. */
	input_unwatch(c);
	c->in_eof = true;
}

static void chr_input_ready(void *opaque, uint32_t events)
{
	struct chardev *c = opaque;
	ssize_t n;

	if (!c->in_pollable)
		c->in_watched = false;	/* one-shot call */
	if (!deliver_pending(c)) {
		input_unwatch(c);
		return;
	}
	if (c->in_fd < 0)
		return;
	n = read(c->in_fd, c->pend, sizeof(c->pend));
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		input_watch(c);
		return;
	}
	if (n <= 0) {
		input_eof(c);
		return;
	}
	c->pend_off = 0;
	c->pend_len = c->escape ? stdio_escape(c, c->pend, n) : (size_t)n;
	if (!deliver_pending(c))
		input_unwatch(c);
	else
		input_watch(c);
}

static void chr_listen_ready(void *opaque, uint32_t events)
{
	struct chardev *c = opaque;
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	if (c->in_fd >= 0) {	/* one client at a time */
		close(fd);
		return;
	}
	event_loop_del_fd(c->loop, c->listen_fd);
	c->in_fd = fd;
	c->in_eof = false;
	pthread_mutex_lock(&c->lock);
	c->out_fd = fd;
	pthread_mutex_unlock(&c->lock);
	if (c->fe.event)
		c->fe.event(c->fe.opaque, true);
	input_watch(c);
}

static void chr_resume(void *opaque)
{
	struct chardev *c = opaque;

	__atomic_store_n(&c->resume_queued, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&c->paused, 0, __ATOMIC_SEQ_CST);
	if (!deliver_pending(c))
		return;
	input_watch(c);
}

void chardev_accept_input(struct chardev *c)
{
	if (!c || !c->loop || !__atomic_load_n(&c->paused, __ATOMIC_SEQ_CST))
		return;
	if (__atomic_exchange_n(&c->resume_queued, 1, __ATOMIC_SEQ_CST))
		return;
	if (event_loop_call(c->loop, chr_resume, c) < 0)
		__atomic_store_n(&c->resume_queued, 0, __ATOMIC_SEQ_CST);
}

void chardev_attach(struct chardev *c, struct event_loop *loop,
		    const struct chardev_frontend *fe)
{
	c->fe = *fe;
	c->loop = loop;
	c->attached = true;
	if (!loop)
		return;
	if (c->kind == CHR_UNIX_SERVER && c->in_fd < 0)
		server_listen_watch(c);
	input_watch(c);
}

void chardev_close(struct chardev *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&chr_list_lock);
	for (struct chardev **p = &chr_list; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	pthread_mutex_unlock(&chr_list_lock);
	if (c->loop) {
		if (c->in_watched && c->in_pollable)
			event_loop_del_fd(c->loop, c->in_fd);
		if (c->listen_fd >= 0)
			event_loop_del_fd(c->loop, c->listen_fd);
	}
	restore_terminal(c);
	if (c->kind == CHR_STDIO) {
		stdio_in_use = false;
		c->in_fd = -1;	/* never close our stdin */
	}
	if (c->kind == CHR_UNIX_SERVER && c->path)
		unlink(c->path);
	chr_free(c);
}
