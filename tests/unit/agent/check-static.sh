#!/bin/sh
# usage: check-static.sh BINARY MAX_BYTES — fails unless BINARY is a static ELF of at most MAX_BYTES.
set -eu
bin=$1; max=$2
[ -f "$bin" ] || { echo "missing $bin" >&2; exit 1; }
if readelf -lW "$bin" | grep -q 'INTERP'; then
        echo "$bin has a program interpreter: not static" >&2; exit 1
fi
if readelf -dW "$bin" | grep -q 'Dynamic section'; then
        echo "$bin has a dynamic section: not static" >&2; exit 1
fi
readelf -hW "$bin" | grep -q 'EXEC\|DYN' || { echo "$bin is not an executable" >&2; exit 1; }
size=$(stat -c %s "$bin")
if [ "$size" -gt "$max" ]; then
        echo "$bin is $size bytes, more than $max" >&2; exit 1
fi
echo "$bin: static, $size bytes (limit $max)"
