# guest.mk: builds the guest test kit (included by the top Makefile).
# A freestanding x86-64 guest linked at 1 MiB, converted to ELF32 so that
# QEMU's -kernel accepts it. Variants:
#   testkit.elf      Multiboot v1 header + PVH note (the one to use)
#   testkit-mb.elf   Multiboot only (tests the Multiboot path under QEMU)
#   testkit-pvh.elf  PVH note only (QEMU tries Multiboot first, so this is
#                    how the PVH path is tested there)
#   testkit.bzImage  Linux boot protocol 2.06 (32-bit entry)
# It uses its own flags, never the host CFLAGS.

GUEST_SRC_DIR := tests/guest
GUEST_OUT     := $(O)/guest
GUEST_CC      ?= gcc
GUEST_OBJCOPY ?= objcopy
GUEST_CFLAGS  := -std=gnu11 -O2 -g -m64 -ffreestanding -nostdlib -fno-pic -fno-pie \
                 -mno-red-zone -mgeneral-regs-only -fno-stack-protector \
                 -fno-asynchronous-unwind-tables -fcf-protection=none -mcmodel=small \
                 --param=min-pagesize=0 \
                 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
                 -I. -MMD -MP
GUEST_LDFLAGS := -m64 -nostdlib -static -no-pie -Wl,--build-id=none \
                 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments -Wl,-T,$(GUEST_SRC_DIR)/testkit.ld

GUEST_C_SRCS  := $(wildcard $(GUEST_SRC_DIR)/*.c)
GUEST_C_OBJS  := $(GUEST_C_SRCS:$(GUEST_SRC_DIR)/%.c=$(GUEST_OUT)/%.o)
GUEST_KIT     := $(GUEST_OUT)/testkit.elf $(GUEST_OUT)/testkit-mb.elf \
                 $(GUEST_OUT)/testkit-pvh.elf

$(GUEST_OUT)/%.o: $(GUEST_SRC_DIR)/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/boot-all.o: $(GUEST_SRC_DIR)/boot.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -DWITH_MB -DWITH_PVH -c -o $@ $<

$(GUEST_OUT)/boot-mb.o: $(GUEST_SRC_DIR)/boot.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -DWITH_MB -c -o $@ $<

$(GUEST_OUT)/boot-pvh.o: $(GUEST_SRC_DIR)/boot.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -DWITH_PVH -c -o $@ $<

$(GUEST_OUT)/testkit%.elf64: $(GUEST_OUT)/boot%.o $(GUEST_C_OBJS) $(GUEST_SRC_DIR)/testkit.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_C_OBJS)

$(GUEST_OUT)/testkit.elf64: $(GUEST_OUT)/boot-all.o $(GUEST_C_OBJS) $(GUEST_SRC_DIR)/testkit.ld
	$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_C_OBJS)

$(GUEST_OUT)/%.elf: $(GUEST_OUT)/%.elf64
	$(GUEST_OBJCOPY) -O elf32-i386 $< $@

.PHONY: guest

# bzImage (Linux boot protocol 2.06): bzsetup.S + the flat image from
# 1 MiB with .bss included as zeros (Linux loaders do not clear it).
GUEST_KIT += $(GUEST_OUT)/testkit.bzImage

$(GUEST_OUT)/boot-linux.o: $(GUEST_SRC_DIR)/boot.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -DWITH_LINUX -c -o $@ $<

$(GUEST_OUT)/bzsetup.bin: $(GUEST_SRC_DIR)/bzsetup.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $(GUEST_OUT)/bzsetup.o $<
	$(GUEST_OBJCOPY) -O binary -j .setup $(GUEST_OUT)/bzsetup.o $@

$(GUEST_OUT)/testkit-linux.bin: $(GUEST_OUT)/testkit-linux.elf64
	$(GUEST_OBJCOPY) -O binary --set-section-flags .bss=alloc,load,contents $< $@

$(GUEST_OUT)/testkit.bzImage: $(GUEST_OUT)/bzsetup.bin $(GUEST_OUT)/testkit-linux.bin \
			      $(GUEST_SRC_DIR)/mkbzimage.sh
	$(GUEST_SRC_DIR)/mkbzimage.sh $(GUEST_OUT)/bzsetup.bin $(GUEST_OUT)/testkit-linux.bin $@

guest: $(GUEST_KIT)
