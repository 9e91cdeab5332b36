/* libFuzzer target for the cloop format (block/cloop.c): the input is an image
 * file, opened with its backing chain from a private directory, read over a
 * few ranges and queried for block status (read-only format). */
#include "tests/fuzz/fuzz_fmt_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!fuzz_dir[0])
		fuzz_fmt_setup("fuzz_cloop");
	return fuzz_fmt_run("cloop", data, size, false);
}
