# Shared by the image-format tests: make_cloop IN OUT builds a cloop image
# (64 KiB blocks) of file IN, with Debian's create_compressed_fs when
# cloop-utils is installed, else from the format description (the V2.0
# header, big-endian block size and count, offsets table, zlib blocks).
make_cloop() {	# make_cloop IN OUT
	if command -v create_compressed_fs >/dev/null; then
		create_compressed_fs -q -B 65536 "$1" "$2" >/dev/null 2>&1
		return
	fi
	echo "note: cloop-utils missing, building the cloop image from the format description"
	python3 - "$1" "$2" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
bs = 65536
data += b'\0' * (-len(data) % bs)
blocks = [zlib.compress(data[i:i + bs], 9) for i in range(0, len(data), bs)]
pre = (b"#!/bin/sh\n#V2.0 Format\n"
       b"modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\nexit $?\n")
out = pre.ljust(128, b'\0') + struct.pack('>II', bs, len(blocks))
off = len(out) + 8 * (len(blocks) + 1)
offs = []
for b in blocks:
    offs.append(off)
    off += len(b)
offs.append(off)
out += b''.join(struct.pack('>Q', o) for o in offs) + b''.join(blocks)
open(sys.argv[2], 'wb').write(out)
EOF
}
