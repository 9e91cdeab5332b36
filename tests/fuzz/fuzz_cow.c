/* libFuzzer target for the cow format (block/cow.c): the input is an image
 * file, opened with its backing chain from a private directory, read over a
 * few ranges and, opened writable, written and read back. */
#include "tests/fuzz/fuzz_fmt_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_dir[0])
		fuzz_fmt_setup("fuzz_cow");
	return fuzz_fmt_run("cow", data, size, true);
}
