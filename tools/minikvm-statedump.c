/* minikvm-statedump: print a device-state stream (a save file or a
 * captured migration stream) field by field, using the schema the stream
 * carries. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "migration/state_stream.h"

#define MAX_STREAM (256u << 20)

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			uint8_t *nb = cap > MAX_STREAM ? NULL : realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				errno = EFBIG;
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

int main(int argc, char **argv)
{
	char err[256];
	uint8_t *buf;
	size_t len;

	if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fprintf(argc == 2 ? stdout : stderr,
			"usage: minikvm-statedump FILE\n"
			"Prints every device section of a minikvm state stream.\n");
		return argc == 2 ? 0 : 1;
	}
	buf = read_file(argv[1], &len);
	if (!buf) {
		fprintf(stderr, "minikvm-statedump: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (state_stream_dump(buf, len, stdout, err, sizeof(err)) < 0) {
		fprintf(stderr, "minikvm-statedump: %s: %s\n", argv[1], err);
		return 1;
	}
	free(buf);
	return 0;
}
