#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tetherd's rooms and their one direction (docs/architecture.md, "Components"):

    common <- proto <- core <- {api, otlp, libvirt} <- daemon <- main.c

The build gives each room's library only its own include directory and those below it, so a quoted include of a
header in a room above, or a sibling, does not compile. This check covers what the build cannot: an include
written with a path ("host-collector/daemon/server.h", "../api/api.h"), which the top-level include directory
would resolve. Every quoted include of a room's file must name a header of that room or of one below it, by its
bare name. And every file of a room opens (after its SPDX line) with the room's one-line comment
"/* Room <name>: ... */", so a reader of any file knows where it stands. Exit status 1 lists the offenders.
"""

import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HC = os.path.join(ROOT, "host-collector")
BELOW = {
    "core": [],
    "api": ["core"],
    "otlp": ["core"],
    "libvirt": ["core"],
    "daemon": ["core", "api", "otlp", "libvirt"],
}
# Below every room: the shared code, the protocol, the generated protobuf-c headers, meson's config.h.
SHARED_DIRS = [os.path.join(ROOT, "common"), os.path.join(ROOT, "proto")]
GENERATED = re.compile(r"^[a-z_]+\.pb-c\.h$|^config\.h$")


def headers(directory):
    return {f for f in os.listdir(directory) if f.endswith(".h")}


def main():
    shared = set()
    for d in SHARED_DIRS:
        shared |= headers(d)
    rooms = {room: headers(os.path.join(HC, room)) for room in BELOW}
    offenders = []
    checked = 0
    for room, below in BELOW.items():
        allowed = rooms[room] | shared
        for b in below:
            allowed |= rooms[b]
        folder = os.path.join(HC, room)
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            with open(os.path.join(folder, name)) as f:
                lines = f.readlines()
                if len(lines) < 2 or not lines[1].startswith("/* Room %s: " % room):
                    offenders.append("host-collector/%s/%s:2: does not open with \"/* Room %s: ... */\"" %
                                     (room, name, room))
                for n, line in enumerate(lines, 1):
                    m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                    if not m:
                        continue
                    checked += 1
                    inc = m.group(1)
                    if inc in allowed or GENERATED.match(inc):
                        continue
                    offenders.append("host-collector/%s/%s:%d: #include \"%s\" (room %s sees %s)" %
                                     (room, name, n, inc, room, ", ".join([room] + below + ["common", "proto"])))
    if offenders:
        print("\n".join(offenders))
        return 1
    print("rooms: %d includes in %d rooms follow the rule" % (checked, len(BELOW)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
