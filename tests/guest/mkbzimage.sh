#!/bin/sh
# mkbzimage.sh SETUP.bin PAYLOAD.bin OUT: joins the real-mode setup
# (bzsetup.S) and the flat protected-mode payload into a bzImage, patching
# syssize (payload size in 16-byte units, little-endian at 0x1f4).
set -e
setup=$1 payload=$2 out=$3
size=$(wc -c <"$payload")
paras=$(( (size + 15) / 16 ))
cp "$setup" "$out.tmp"
printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((paras & 255)) $((paras >> 8 & 255)) \
	$((paras >> 16 & 255)) $((paras >> 24 & 255)))" |
	dd of="$out.tmp" bs=1 seek=$((0x1f4)) conv=notrunc status=none
cat "$payload" >>"$out.tmp"
mv "$out.tmp" "$out"
