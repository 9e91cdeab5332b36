/* Character backends for serial ports and consoles: stdio (raw mode with
 * the Ctrl-a escape), file, pty, unix socket server/client, null. Input
 * arrives on the event loop thread and is handed to the frontend's
 * callbacks; output never blocks the caller (excess bytes are dropped). */
#ifndef VMM_CHARDEV_H
#define VMM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_loop;
struct chardev;

/* Frontend callbacks, all called on the event loop thread. can_read
 * returns how many bytes the frontend can take now (0 pauses input until
 * chardev_accept_input); read delivers at most that many. event (may be
 * NULL) reports a peer connecting or going away (unix sockets). */
struct chardev_frontend {
	size_t (*can_read)(void *opaque);
	void (*read)(void *opaque, const uint8_t *buf, size_t len);
	void *opaque;
	void (*event)(void *opaque, bool connected);
};

/* spec: "stdio", "mon:stdio" (stdio; the monitor is a later step),
 * "file:PATH", "pty", "unix:PATH[,server][,nowait|,wait=off]", "null",
 * "none". Returns NULL with a one-line reason in err on a bad spec or a
 * failed open. label names the device in messages ("serial0"). */
struct chardev *chardev_open_label(const char *spec, const char *label,
				   char *err, size_t errlen);
struct chardev *chardev_open(const char *spec, char *err, size_t errlen);

/* Start delivering input to fe (loop may be NULL: output only). */
void chardev_attach(struct chardev *c, struct event_loop *loop,
		    const struct chardev_frontend *fe);
/* Non-blocking write of guest output, callable from any thread; drops
 * (and counts) bytes the backend cannot take now. Returns bytes taken. */
size_t chardev_write(struct chardev *c, const uint8_t *buf, size_t len);
/* Called by the frontend, from any thread, when can_read may have
 * become non-zero again. Cheap when input is not paused. */
void chardev_accept_input(struct chardev *c);
/* A peer is there to talk to (always true except for an idle socket). */
bool chardev_is_connected(struct chardev *c);
void chardev_get_stats(struct chardev *c, uint64_t *written, uint64_t *dropped);
/* Detach from the loop and release it (call after the loop stopped or
 * from the loop thread). */
void chardev_close(struct chardev *c);
/* Restore terminals (called at exit; also registered with atexit). */
void chardev_cleanup_all(void);

/* What Ctrl-a x on stdio does: typically vm_request_quit(vm). Without a
 * handler the process exits with status 0. Called on the loop thread. */
void chardev_set_quit_handler(void (*fn)(void *), void *opaque);

#endif
