/* The I/O bus: one sorted table of regions per address space (PIO and
 * MMIO) and the dispatch used by vCPU exits. Lookups take a read lock;
 * (un)registration (BAR moves) takes the write lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "vmm/io.h"

struct io_region {
	uint64_t base, len;
	const struct io_ops *ops;
	void *opaque;
};

struct io_space_table {
	struct io_region *r;
	size_t n, cap;
};

struct io_bus {
	pthread_rwlock_t lock;
	struct io_space_table space[2];
};

struct io_bus *io_bus_new(void)
{
	struct io_bus *bus = calloc(1, sizeof(*bus));

	if (bus)
		pthread_rwlock_init(&bus->lock, NULL);
	return bus;
}

void io_bus_free(struct io_bus *bus)
{
	if (!bus)
		return;
	free(bus->space[0].r);
	free(bus->space[1].r);
	pthread_rwlock_destroy(&bus->lock);
	free(bus);
}

/* Index of the first region whose end is above addr. */
static size_t io_lower_bound(const struct io_space_table *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (t->r[mid].base + t->r[mid].len - 1 < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int io_register(struct io_bus *bus, enum io_space space, uint64_t base,
		uint64_t len, const struct io_ops *ops, void *opaque)
{
	struct io_space_table *t = &bus->space[space];
	size_t i;
	int ret = 0;

	if (!len || base + len - 1 < base)
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	i = io_lower_bound(t, base);
	if (i < t->n && t->r[i].base <= base + len - 1) {
		ret = -EEXIST;
		goto out;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct io_region *r = realloc(t->r, cap * sizeof(*r));
		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		t->r = r;
		t->cap = cap;
	}
	memmove(&t->r[i + 1], &t->r[i], (t->n - i) * sizeof(*t->r));
	t->r[i] = (struct io_region){ base, len, ops, opaque };
	t->n++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int io_unregister(struct io_bus *bus, enum io_space space, uint64_t base)
{
	struct io_space_table *t = &bus->space[space];
	size_t i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	i = io_lower_bound(t, base);
	if (i < t->n && t->r[i].base == base) {
		memmove(&t->r[i], &t->r[i + 1], (t->n - i - 1) * sizeof(*t->r));
		t->n--;
		ret = 0;
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

static uint64_t io_load(const void *data, unsigned size)
{
	uint64_t v = 0;

	memcpy(&v, data, size);
	return v;
}

bool io_dispatch(struct io_bus *bus, enum io_space space, uint64_t addr,
		 void *data, unsigned size, bool is_write)
{
	const struct io_space_table *t = &bus->space[space];
	struct io_region r;
	size_t i;

	if (size == 0 || size > 8)
		return false;
	pthread_rwlock_rdlock(&bus->lock);
	i = io_lower_bound(t, addr);
	if (i >= t->n || t->r[i].base > addr) {
		pthread_rwlock_unlock(&bus->lock);
		if (!is_write)
			memset(data, 0xff, size);
		return false;
	}
	r = t->r[i];
	pthread_rwlock_unlock(&bus->lock);

	if (is_write) {
		if (r.ops->write)
			r.ops->write(r.opaque, addr - r.base, io_load(data, size), size);
	} else {
		uint64_t v = r.ops->read ? r.ops->read(r.opaque, addr - r.base, size) : ~0ULL;
		memcpy(data, &v, size);
	}
	return true;
}
