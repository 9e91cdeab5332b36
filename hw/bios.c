/* Firmware image loading: file checks and page-aligned read-only memory
 * for the KVM slots that show it to the guest (see i440fx.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "hw/bios.h"
#include "vmm/fileio.h"
#include "vmm/memory.h"

#define BIOS_ALIGN (64 * 1024)

int bios_check_size(uint64_t size)
{
	if (size == 0 || size % BIOS_ALIGN || size > BIOS_MAX_SIZE)
		return -EINVAL;
	return 0;
}

static int load_file(const char *path, struct bios_image *img, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *mem;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open BIOS %s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || bios_check_size(st.st_size) < 0) {
		snprintf(err, errlen, "BIOS %s: size must be a multiple of 64 KiB, at most "
			 "16 MiB", path);
		close(fd);
		return -EINVAL;
	}
	mem = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0);
	if (mem == MAP_FAILED) {
		r = -errno;
		snprintf(err, errlen, "BIOS %s: %s", path, strerror(-r));
		close(fd);
		return r;
	}
	r = read_full_at(fd, 0, mem, st.st_size);
	close(fd);
	if (r < 0) {
		snprintf(err, errlen, "cannot read BIOS %s: %s", path, strerror(-r));
		munmap(mem, st.st_size);
		return r;
	}
	mprotect(mem, st.st_size, PROT_READ);
	img->data = mem;
	img->size = st.st_size;
	snprintf(img->path, sizeof(img->path), "%s", path);
	return 0;
}

int bios_load(const char *path, struct bios_image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof(*img));
	if (path)
		return load_file(path, img, err, errlen);
	if (access(BIOS_DEFAULT_PATH, R_OK) == 0)
		return load_file(BIOS_DEFAULT_PATH, img, err, errlen);
	return load_file(BIOS_FALLBACK_PATH, img, err, errlen);
}

void bios_free(struct bios_image *img)
{
	if (img->data)
		munmap(img->data, img->size);
	img->data = NULL;
	img->size = 0;
}
