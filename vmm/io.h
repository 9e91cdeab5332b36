/* One registration API for port I/O and MMIO. Devices register regions
 * with read/write callbacks; vCPU exits are dispatched here. Offsets
 * passed to callbacks are relative to the region base. */
#ifndef VMM_IO_H
#define VMM_IO_H

#include <stdint.h>
#include <stdbool.h>

enum io_space { IO_SPACE_PIO, IO_SPACE_MMIO };

struct io_ops {
	/* size is 1, 2, 4 or 8; missing callbacks read as all-ones / ignore */
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
	void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
};

struct io_bus;

struct io_bus *io_bus_new(void);
void io_bus_free(struct io_bus *bus);

/* Returns 0, or -EEXIST when the range overlaps an existing region,
 * -EINVAL for an empty or wrapping range. */
int io_register(struct io_bus *bus, enum io_space space, uint64_t base,
		uint64_t len, const struct io_ops *ops, void *opaque);
/* Removes the region starting exactly at base (used when a BAR moves). */
int io_unregister(struct io_bus *bus, enum io_space space, uint64_t base);

/* Dispatch one access. Returns false when nothing is mapped there (the
 * caller logs it as a guest error; reads then return all-ones). */
bool io_dispatch(struct io_bus *bus, enum io_space space, uint64_t addr,
		 void *data, unsigned size, bool is_write);

#endif
