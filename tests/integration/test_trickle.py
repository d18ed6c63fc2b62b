#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A guest that trickles a frame is closed like a silent one (issue #10, defect 10).

Liveness is a whole message: tetherd closes a connection that has not completed one within the heartbeat
timeout (3 x 5 s + 5 s), counting partial bytes for nothing.
  before-hello  the first frame's header and then a byte every 10 ms, never a whole Hello
  after-hello   a healthy Hello and milestone, then the same trickle (fake-guest --scenario trickle)
Either way the connection is closed as heartbeat_timeout within the timeout plus slack, long before the
trickle would have ended (41 s), and a healthy machine next to it is unaffected.
"""

import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, binary, check, log, run_test  # noqa: E402

HEARTBEAT_TIMEOUT_S = 20


def trickle_raw(path, seconds):
    """Returns the seconds until tetherd closed the connection, or None if it did not within `seconds`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    start = time.monotonic()
    s.sendall(struct.pack("<I", 4096))  # a frame header (little-endian length): 4 KiB follow
    s.settimeout(0.01)
    try:
        while time.monotonic() - start < seconds:
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - start
            except socket.timeout:
                pass
            s.send(b"\x0a")
    except OSError:
        return time.monotonic() - start
    finally:
        s.close()
    return None


def main(scenario):
    fake = binary("FAKE_GUEST")
    with Harness("trickle-" + scenario) as h:
        h.register("healthy")
        h.register("trickler")
        ready_file = h.path("healthy-go")
        h.spawn([fake, "--socket", h.guest_socket("healthy"), "--scenario", "healthy", "--ready-file", ready_file,
                 "--hold-ms", "120000"], "fake-healthy.log", stdout=subprocess.PIPE)
        limit = HEARTBEAT_TIMEOUT_S + 10
        if scenario == "before-hello":
            took = trickle_raw(h.guest_socket("trickler"), limit)
            check(took is not None, "tetherd closes a connection whose Hello never completes, within %d s" % limit)
        else:
            start = time.monotonic()
            p = subprocess.run([fake, "--socket", h.guest_socket("trickler"), "--scenario", "trickle",
                                "--timeout-ms", str(limit * 1000)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=limit + 30)
            took = time.monotonic() - start
            check(p.returncode == 0 and b'"closed_by_peer": true' in p.stdout,
                  "tetherd closes a connection that trickles a frame after its Hello",
                  "exit %d %s %s" % (p.returncode, p.stdout[-300:], p.stderr[-300:]))
            check(took < limit, "... within the heartbeat timeout and slack", took)
        log("closed after %.1f s" % took)
        check(took >= HEARTBEAT_TIMEOUT_S - 1, "not before the heartbeat timeout", took)
        st = h.api.get_ok("/v1/stats")
        check(st["connections_closed"].get("heartbeat_timeout", 0) >= 1, "closed as heartbeat_timeout",
              st["connections_closed"])
        open(ready_file, "w").close()
        status, _, raw = h.api.ready("healthy", 30)
        check(status == 200, "the healthy machine next to it becomes ready", raw)
        h.assert_tetherd_alive()


if __name__ == "__main__":
    run_test(main, sys.argv[1])
