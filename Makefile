# minikvm top-level build: plain GNU make, automatic header dependencies.
# Targets: all (default), check, unit, integration, bench, install, clean.
# Switch off -Werror with `make WERROR=0`.

PREFIX   ?= /usr/local
CC       ?= gcc
WERROR   ?= 1
O        := build
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2 \
            -fno-strict-aliasing -D_GNU_SOURCE -I. -MMD -MP
ifeq ($(WERROR),1)
CFLAGS   += -Werror
endif
LDLIBS   := -laio -luring -lz -lzstd -ljansson -lslirp -lpthread

# Everything except the program entry points goes into one archive that
# the VMM, the tools and the unit tests link against.
CORE_DIRS := vmm hw block net migration
CORE_SRCS := $(filter-out vmm/main.c,$(foreach d,$(CORE_DIRS),$(wildcard $(d)/*.c)))
CORE_OBJS := $(CORE_SRCS:%.c=$(O)/%.o)
LIB       := $(O)/libminikvm.a

# tools/NAME.c is a one-file program; tools/img/*.c make up minikvm-img.
TOOL_SRCS := $(wildcard tools/*.c)
TOOLS     := $(TOOL_SRCS:tools/%.c=$(O)/%)
IMG_SRCS  := $(wildcard tools/img/*.c)
IMG_OBJS  := $(IMG_SRCS:%.c=$(O)/%.o)
ifneq ($(IMG_SRCS),)
TOOLS     += $(O)/minikvm-img
endif

# libFuzzer targets: tests/fuzz/fuzz_NAME.c, built with clang (make fuzz).
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(O)/fuzz/%)
FUZZ_CC   ?= clang
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -I. \
              -Wno-unused-command-line-argument

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(O)/tests/%)
UNIT_LIBS := -lcmocka

all: $(O)/minikvm $(TOOLS) guest

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# Devices register themselves from constructors that nothing references,
# so programs take the whole archive.
$(O)/minikvm: $(O)/vmm/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS)

$(O)/minikvm-img: $(IMG_OBJS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(IMG_OBJS) -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS)

$(O)/%: $(O)/tools/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(LDLIBS)

# The command line finds the -device models hw/ registers.
$(O)/tests/test_cli: $(O)/tests/unit/test_cli.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--whole-archive $(LIB) -Wl,--no-whole-archive $(UNIT_LIBS) $(LDLIBS)

$(O)/tests/%: $(O)/tests/unit/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(UNIT_LIBS) $(LDLIBS)

-include tests/guest/guest.mk

# Fuzz targets link a second copy of the core, compiled by clang with the
# fuzzer and sanitizer instrumentation (build/fuzz/obj, build/fuzz/libcore.a).
FUZZ_OBJS := $(CORE_SRCS:%.c=$(O)/fuzz/obj/%.o)
FUZZ_LIB  := $(O)/fuzz/libcore.a

$(O)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(O)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< -Wl,--whole-archive $(FUZZ_LIB) -Wl,--no-whole-archive $(LDLIBS)

# make fuzz: each target for FUZZ_SECONDS (default 60); make check runs a
# short pass (FUZZ_SECONDS=10) over the committed corpora.
FUZZ_SECONDS ?= 60
fuzz: $(FUZZ_BINS)
	@tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BINS)

# Run only by tests/integration/test_net_backends.sh, which fails if they
# skip: test_net_tap makes tap interfaces (inside a network namespace of
# its own there), test_net_qemu needs the QEMU peer that script starts.
UNIT_BY_INTEGRATION := $(O)/tests/test_net_tap $(O)/tests/test_net_qemu
unit: $(UNIT_BINS)
	@tests/run-unit $(filter-out $(UNIT_BY_INTEGRATION),$(UNIT_BINS))

integration: all
	@tests/integration/run

check: all unit integration fuzz-short

fuzz-short: $(FUZZ_BINS)
	@tests/fuzz/run 10 $(FUZZ_BINS)

# Boots Debian's kernel with a busybox initramfs to init and power-off.
# Needs hardware virtualization (Linux stops early where CPL0 is emulated),
# so it is not part of check.
check-linux: all
	tests/linux/run
check-linux-qemu:
	tests/linux/run --vmm qemu

# The demo: boot the test kit, which prints what it finds and powers off.
demo: all
	$(O)/minikvm -m 128 -smp 2 -kernel $(O)/guest/testkit.elf -nographic -nodefaults -serial stdio

bench: all
	@tests/bench/run

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/minikvm
	install -m 755 $(O)/minikvm $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(GUEST_KIT) $(DESTDIR)$(PREFIX)/share/minikvm/

clean:
	rm -rf $(O)

.PHONY: all unit integration check check-linux check-linux-qemu demo bench install clean guest fuzz fuzz-short
.SECONDARY:

-include $(shell find $(O) -name '*.d' 2>/dev/null)
