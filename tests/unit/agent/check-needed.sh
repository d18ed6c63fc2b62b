#!/bin/sh
# usage: check-needed.sh BINARY LIB... — fails unless BINARY's DT_NEEDED are exactly among LIB... (what every guest
# has: tether-agent-systemd may need libc.so.6 and libsystemd.so.0, nothing a systemd guest may lack).
set -eu
bin=$1; shift
[ -f "$bin" ] || { echo "missing $bin" >&2; exit 1; }
needed=$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in $needed; do
        ok=false
        for allowed in "$@"; do [ "$lib" = "$allowed" ] && ok=true; done
        $ok || { echo "$bin needs $lib, which a guest may not have (allowed: $*)" >&2; exit 1; }
done
echo "$bin needs:" $needed
