#!/bin/sh
# Builds the static, stripped tether-agent with musl-gcc.
# usage: build-static.sh OUTPUT MAX_BYTES -- CFLAGS... -- SOURCES...
# musl-gcc does not search the system include directory, so the kernel uapi headers and protobuf-c's
# header are offered through a private directory of symlinks.
set -eu
out=$1; max=$2; shift 2
[ "$1" = "--" ] && shift
cflags=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do cflags="$cflags $1"; shift; done
shift
inc="$out.musl-include"
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
rm -rf "$inc"; mkdir -p "$inc/protobuf-c"
ln -s /usr/include/linux "$inc/linux"
ln -s /usr/include/asm-generic "$inc/asm-generic"
ln -s "/usr/include/$multiarch/asm" "$inc/asm"
ln -s /usr/include/protobuf-c/protobuf-c.h "$inc/protobuf-c/protobuf-c.h"
libpb=$(ls /usr/lib/$multiarch/libprotobuf-c.a)
# shellcheck disable=SC2086
# -z noseparate-code: no page-aligned padding between the headers, code and read-only data (7 KB here).
# -z norelro: a static musl binary never applies PT_GNU_RELRO (no dynamic loader: no mprotect() at startup, see
# strace), but ld still pads the file so that the RELRO region ends on a page: up to 4 KB of nothing.
musl-gcc -static -Os -std=gnu11 -D_GNU_SOURCE -ffunction-sections -fdata-sections -Wl,--gc-sections \
        -Wl,-z,noseparate-code -Wl,-z,norelro -Wl,--build-id=none \
        -fno-asynchronous-unwind-tables -fno-unwind-tables -isystem "$inc" $cflags "$@" "$libpb" -o "$out"
strip --strip-all "$out"
size=$(stat -c %s "$out")
echo "tether-agent: static musl binary, stripped size $size bytes (limit $max)"
if [ "$size" -gt "$max" ]; then
        echo "tether-agent: $size bytes exceeds the $max byte limit" >&2
        rm -f "$out"
        exit 1
fi
