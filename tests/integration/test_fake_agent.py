#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tether-fake-agent (the benchmarks' and tests' scriptable agent) against a real tetherd, one case per test:

  late-welcome  many fake agents connect at once while tetherd is stopped (SIGSTOP, 0.6 s), so every Welcome
                comes late: each must wait for its Welcome before sending a record, and send each record once per
                connection in order. Every agent exits 0, every machine stores exactly its records, and tetherd
                counts no protocol error (a fake agent that gave up on the Welcome after 200 ms sent its records,
                then resent them after the late Welcome: seq_regression).
  reconnect     the `reconnect` action while tetherd is stopped: the new connection's Welcome is late too; the
                records after it wait for it (and the unacked ones are resent once, after Welcome.acked_seq).
  flood         `flood` with a small --window-bytes: every line stored once and in order, the fake agent's unacked
                bytes never beyond the window (plus one record), so it exercises tetherd's acks.
"""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, binary, check, log, run_test, wait_proc  # noqa: E402

STORM = 100  # fake agents connecting at once
STOP_S = 0.6  # how long tetherd is stopped: well beyond the 200 ms an old fake agent waited for its Welcome


def final_line(out):
    """The fake agent's last stdout line, "acked_seq=N unacked=N ... unix_ns=T", as a dict of ints."""
    lines = [x for x in out.splitlines() if x.startswith("acked_seq=")]
    check(lines, "the fake agent prints its final acked_seq line", out)
    return {k: int(v) for k, v in (kv.split("=", 1) for kv in lines[-1].split())}


def check_machine(h, mid, records, what):
    m = h.api.machine(mid)
    boot = m.get("boot") or {}
    check(m.get("protocol_errors", 0) == 0 and boot.get("protocol_errors", 0) == 0,
          "%s: no protocol error on %s" % (what, mid), m)
    check(boot.get("records") == records and boot.get("last_seq") == records,
          "%s: %s stored its %d records" % (what, mid, records), boot)
    check(boot.get("seq_gaps", 0) == 0 and boot.get("logs_dropped", 0) == 0, "%s: no gap on %s" % (what, mid), boot)
    return m


def stopped(h, seconds):
    """Stops tetherd for a while (SIGSTOP ... SIGCONT): connections and frames wait in the kernel's buffers."""
    h.tetherd.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        h.tetherd.send_signal(signal.SIGCONT)


def case_late_welcome(h, fake):
    ids = ["storm-%03d" % i for i in range(STORM)]
    for mid in ids:
        h.register(mid)
    h.tetherd.send_signal(signal.SIGSTOP)
    try:
        procs = {}
        for mid in ids:
            procs[mid] = h.spawn([fake, "--boot-id", "00000000-0000-4000-8000-%012d" % int(mid[-3:]),
                                  "unix:" + h.guest_socket(mid), "milestone", "init.start", "100",
                                  "milestone", "workload.exec", "120", "logs", "stdout", "20", "ready", "notify",
                                  "wait-acks"], "fake-%s.err" % mid, stdout=subprocess.PIPE)
        time.sleep(STOP_S)
    finally:
        h.tetherd.send_signal(signal.SIGCONT)
    for mid, p in procs.items():
        out = p.communicate(timeout=60)[0].decode(errors="replace")
        check(p.returncode == 0, "the fake agent of %s exits 0 after a late Welcome" % mid,
              "exit %d, stdout %r" % (p.returncode, out), open(h.path("fake-%s.err" % mid)).read()[-2000:])
        fin = final_line(out)
        check(fin["acked_seq"] == 23 and fin["unacked"] == 0, "%s: everything acked" % mid, fin)
    for mid in ids:
        m = check_machine(h, mid, 23, "late welcome")
        check(m["state"] == "ready", "%s is ready" % mid, m)
    stats = h.api.get_ok("/v1/stats")
    check(not any(stats["protocol_errors"].values()), "tetherd counts no protocol error", stats["protocol_errors"])
    log("%d fake agents connected to a stopped tetherd, all waited for their Welcome" % STORM)


def case_reconnect(h, fake):
    mid = "again"
    h.register(mid)
    p = h.spawn([fake, "--reconnect", "yes", "unix:" + h.guest_socket(mid), "milestone", "init.start", "100",
                 "logs", "stdout", "5", "wait-acks", "wait-signal", "reconnect", "logs", "stdout", "5",
                 "ready", "notify", "wait-acks"], "fake-%s.err" % mid, stdout=subprocess.PIPE)
    h.wait_machine(mid, lambda m: (m.get("boot") or {}).get("records") == 6, "the first 6 records are stored")
    h.tetherd.send_signal(signal.SIGSTOP)
    try:
        p.send_signal(signal.SIGUSR1)  # reconnect now, while tetherd cannot answer
        time.sleep(STOP_S)
    finally:
        h.tetherd.send_signal(signal.SIGCONT)
    out = p.communicate(timeout=60)[0].decode(errors="replace")
    check(p.returncode == 0, "the fake agent exits 0 after reconnecting to a late Welcome",
          "exit %d, stdout %r" % (p.returncode, out), open(h.path("fake-%s.err" % mid)).read()[-2000:])
    welcomes = [x for x in out.splitlines() if x.startswith("welcome ")]
    check(len(welcomes) == 2, "two Welcomes: the first connection's and the reconnect's", out)
    check("acked_seq=6 " in welcomes[1], "the second Welcome acks the 6 records stored before", welcomes)
    check(final_line(out)["acked_seq"] == 12, "everything acked", out)
    m = check_machine(h, mid, 12, "reconnect")
    check(m["boot"].get("duplicates", 0) == 0, "nothing was resent that tetherd held", m)
    lines = [o["line"].rstrip("\n") for o in h.api.logs(mid, "stdout") if "line" in o]
    check(lines == ["line %d" % i for i in range(5)] * 2, "each line stored once, in order", lines)
    log("reconnect to a late Welcome OK")


def case_flood(h, fake):
    mid = "flood"
    n, size, window = 5000, 99, 64 * 1024
    h.register(mid)
    p = subprocess.run([fake, "--window-bytes", str(window), "unix:" + h.guest_socket(mid), "milestone",
                        "init.start", "100", "flood", "stdout", str(n), str(size), "wait-acks"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out = p.stdout.decode(errors="replace")
    check(p.returncode == 0, "the flooding fake agent exits 0", out, p.stderr.decode(errors="replace"))
    fin = final_line(out)
    check(fin["acked_seq"] == n + 1 and fin["unacked"] == 0, "every record acked", fin)
    # The window is checked before each record: at most one record beyond it (a frame of ~130 bytes here).
    check(fin["max_unacked_bytes"] < window + size + 64, "the unacked bytes stay within the window", fin)
    check(fin["max_unacked_bytes"] >= window, "the window filled (the flood waited for acks)", fin)
    m = check_machine(h, mid, n + 1, "flood")
    check(m["boot"]["log_bytes"] == n * size, "log_bytes are the flood's", m["boot"])
    lines = [o["line"] for o in h.api.logs(mid, "stdout") if "line" in o]
    check(len(lines) == n, "%d lines read back" % n, len(lines))
    for i, line in enumerate(lines):
        want = "line %012d " % i
        check(line.startswith(want) and len(line.rstrip("\n")) == size - 1 and set(line[len(want):].rstrip("\n"))
              == {"x"}, "line %d is the flood's line %d" % (i, i), line)
    log("flood of %d lines through a %d-byte window OK (max unacked %d bytes)" % (n, window, fin["max_unacked_bytes"]))


def main(case):
    fake = binary("FAKE_AGENT")
    with Harness("fake-agent-" + case, tetherd_args=["--log-level", "info"]) as h:
        {"late-welcome": case_late_welcome, "reconnect": case_reconnect, "flood": case_flood}[case](h, fake)
        h.assert_tetherd_alive()


if __name__ == "__main__":
    run_test(main, sys.argv[1])
