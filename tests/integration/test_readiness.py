#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Readiness mechanisms of an init-mode agent, one per test case:

  sd_notify  the workload sends a plain sd_notify datagram READY=1 to $NOTIFY_SOCKET (as libsystemd would)
  tcp        --ready=tcp:PORT; the workload starts listening after a delay
  unix       --ready=unix:PATH; the workload binds a Unix socket after a delay
  file       --ready=file:PATH; the workload creates the file after a delay
  exec       --ready=exec:CMD; CMD succeeds only once the workload created a flag file

Each: `tether wait-ready` (already waiting) exits 0, ready.source names the mechanism, and the machine was
not ready before the workload did its part (ready time >= the workload's own "go" milestone).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import (Harness, check, free_tcp_port, log, milestone_events, run_test,  # noqa: E402
                       wait_proc)

DELAY = "0.7"

SD_NOTIFY_PY = r'''
import os, socket
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(addr)
s.send(b"READY=1\nSTATUS=Serving requests")
'''

TCP_PY = r'''
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
s.settimeout(0.2)
end = time.monotonic() + 6
while time.monotonic() < end:
    try:
        c, _ = s.accept()
        c.close()
    except socket.timeout:
        pass
'''

UNIX_PY = r'''
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(16)
s.settimeout(0.2)
end = time.monotonic() + 6
while time.monotonic() < end:
    try:
        c, _ = s.accept()
        c.close()
    except socket.timeout:
        pass
'''


def main(mech):
    with Harness("ready-" + mech) as h:
        mid = "ready-" + mech.replace("_", "-")
        h.register(mid)
        # "go" marks the moment the workload starts doing what makes it ready: readiness must come after.
        go = '"$TETHER_AGENT" milestone app.go || exit 91; '
        ready = None
        expect_source = None
        if mech == "sd_notify":
            script = go + "sleep %s; python3 -c '%s' || exit 92; sleep 2" % (DELAY, SD_NOTIFY_PY)
            expect_source = "sd_notify"
        elif mech == "tcp":
            port = free_tcp_port()
            ready = "tcp:%d" % port
            script = go + "sleep %s; exec python3 -c '%s' %d" % (DELAY, TCP_PY, port)
            expect_source = "probe:tcp"
        elif mech == "unix":
            path = h.path("service.sock")
            ready = "unix:" + path
            script = go + "sleep %s; exec python3 -c '%s' %s" % (DELAY, UNIX_PY, path)
            expect_source = "probe:unix"
        elif mech == "file":
            path = h.path("ready-file")
            ready = "file:" + path
            script = go + "sleep %s; touch %s; sleep 2" % (DELAY, path)
            expect_source = "probe:file"
        elif mech == "exec":
            flag = h.path("flag")
            ready = "exec:/usr/bin/test -e " + flag
            script = go + "sleep %s; touch %s; sleep 2" % (DELAY, flag)
            expect_source = "probe:exec"
        else:
            raise SystemExit("unknown mechanism " + mech)

        waiter = subprocess.Popen(h.cli_argv("wait-ready", mid, "--timeout", "40"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        agent = h.start_init_shell(mid, script, ready=ready)
        rc = wait_proc(waiter, 50, "`tether wait-ready` returns")
        out = waiter.stdout.read().decode(errors="replace")
        err = waiter.stderr.read().decode(errors="replace")
        check(rc == 0, "`tether wait-ready` exits 0 (ready through %s)" % mech,
              "exit %d stdout %r stderr %r" % (rc, out, err), "agent exit: %r" % agent.poll())

        m = h.api.machine(mid)
        rd = m["boot"]["ready"]
        check(rd and rd.get("source") == expect_source, "ready.source is %r" % expect_source, rd)
        if mech == "sd_notify":
            check("Serving requests" in (rd.get("detail") or ""), "the sd_notify STATUS= is the ready detail",
                  rd)

        events = milestone_events(h.api.spans(mid))
        names = [n for n, _ in events]
        check("app.go" in names, "the workload's app.go milestone arrived", names)
        go_time = events[names.index("app.go")][1]
        check(rd["ready_unix_ns"] >= go_time + 400 * 1000 * 1000,
              "not ready before the workload made itself ready (%s s after app.go)" % DELAY,
              "app.go %d, ready %d (diff %.3f s)" % (go_time, rd["ready_unix_ns"],
                                                     (rd["ready_unix_ns"] - go_time) / 1e9))
        delivered = rd.get("delivered_unix_ns") or 0
        if delivered:
            slack = (m["boot"].get("clock_error_ns") or 0) + 1000 * 1000
            check(rd["ready_unix_ns"] <= delivered + slack, "readiness is delivered after it happened", rd)

        rc = wait_proc(agent, 30, "the agent exits after its workload")
        check(rc == 0, "the workload exits 0", rc)
        log("ready via %s OK: %s" % (mech, rd))


if __name__ == "__main__":
    run_test(main, sys.argv[1])
