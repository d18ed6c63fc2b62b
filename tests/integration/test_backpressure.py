#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Flow control of the workload's output (log_policy=block, the default; docs/agent.md "Flow control").

  firehose  two `seq` processes write numbered lines to stdout and stderr (about 20 MB, both at once), then
            exit. So that they are faster than tetherd whatever the machine (tetherd may well take 20 MB in a
            fraction of a second), tetherd is SIGSTOPped for 1 s, well within the 5 s stall bound, as they start:
            with tetherd connected and acking, nothing is dropped — every line of each stream is stored exactly
            once, in order, including the last ones the agent drained after the workload's exit; no LogDropped;
            the agent did pause (shutdown milestone log_pauses > 0).
  exit-drain  tetherd SIGSTOPped (for much less than the stall bound) while a workload whose stdout pipe was
            enlarged to 1 MiB (F_SETPIPE_SZ) writes a 1.6 MB burst and exits: the agent's buffer is full of output
            tetherd does not have and the pipe still holds about half a megabyte. The final drain waits for tetherd
            (SIGCONT) instead of evicting the unsent output: every line is stored exactly once, in order, without
            a LogDropped. Its writes end mid-line, so the pause most likely holds a partial line for a second: it
            is not idle-flushed, no line is split ("partial").
  stall     a workload writes timestamped numbered lines steadily (about 1 MB/s, a 256 KiB replay buffer,
            log_stall_timeout_ms=1000); tetherd is SIGSTOPped for 6 s, then SIGCONTed. The workload was never
            blocked much longer than the stall bound (its own largest gap between two writes, with a generous
            margin: far below the 6 s it would be blocked without the fallback); the agent fell back to dropping
            (log_stalls > 0) and said so: a LogDropped arrives after SIGCONT, and the lines missing are exactly
            what it claims (bytes); no line written before the SIGSTOP is missing; delivery resumed (the lines
            written after SIGCONT are stored, in order, up to the last).
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, log_lines, root_span, run_test, wait_proc  # noqa: E402
from test_init import compare_lines  # noqa: E402

PAD = "x" * 180
N_OUT = 100000  # about 19 MB on stdout...
N_ERR = 10000  # ...and 1.9 MB on stderr, at the same time
STORE_BYTES = 256 * 1024 * 1024

STALL_MS = 1000
STOP_S = 6.0
# The workload's largest gap between two writes may exceed the stall bound by scheduling, a loaded machine, the
# agent's own reaction: allow a lot, but stay well below the time tetherd is stopped.
GAP_LIMIT_S = STALL_MS / 1000.0 + 3.0


def shutdown_attributes(h, mid):
    for e in root_span(h.api.spans(mid)).get("events") or []:
        if e.get("name") == "shutdown":
            return e.get("attributes") or {}
    raise AssertionError("FAILED: no shutdown milestone")


def case_firehose():
    script = r'''
while [ ! -e "%s" ]; do sleep 0.01; done
seq -f "err %%.0f %s" 0 %d >&2 &
seq -f "out %%.0f %s" 0 %d
wait
'''
    expect_out = ["out %d %s" % (i, PAD) for i in range(N_OUT)]
    expect_err = ["err %d %s" % (i, PAD) for i in range(N_ERR)]

    with Harness("bp-firehose", tetherd_args=["--max-log-bytes-per-boot", str(STORE_BYTES)]) as h:
        mid = "firehose"
        h.register(mid)
        # The default policy and buffer (block, 1 MiB): nothing to configure.
        go = h.path("go")
        agent = h.start_init_shell(mid, script % (go, PAD, N_ERR - 1, PAD, N_OUT - 1))
        h.wait_connected(mid)
        h.tetherd.send_signal(signal.SIGSTOP)
        try:
            open(go, "w").close()
            time.sleep(1.0)  # the pipes and the agent's buffer fill: the agent pauses the workload
        finally:
            h.tetherd.send_signal(signal.SIGCONT)
        rc = wait_proc(agent, 240, "the agent exits after its workload")
        check(rc == 0, "the workload ran to completion (exit 0)", rc)
        boot = h.wait_exited(mid, timeout=120)["boot"]
        check(boot.get("logs_dropped", 0) == 0, "no LogDropped while tetherd keeps up", boot)
        check(boot.get("logs_evicted", 0) == 0, "tetherd evicted nothing (test set-up)", boot)

        attrs = shutdown_attributes(h, mid)
        log("shutdown milestone: %s" % json.dumps(attrs))
        check(attrs.get("logs_dropped") == "0", "the agent dropped nothing", attrs)
        check(int(attrs.get("log_pauses", "0")) > 0,
              "the agent paused the workload's output (the workload was faster than tetherd)", attrs)

        objs = h.api.logs(mid)
        check(not any(o.get("partial") for o in objs), "a pause never split a line",
              [o for o in objs if o.get("partial")][:3])
        check(not any("dropped" in o for o in objs), "no dropped markers in the log stream",
              [o for o in objs if "dropped" in o][:5])
        compare_lines("stdout", log_lines(objs, "stdout"), expect_out)
        compare_lines("stderr", log_lines(objs, "stderr"), expect_err)
        log("firehose OK: %d + %d lines, %s pauses" % (N_OUT, N_ERR, attrs.get("log_pauses")))


DRAIN_WRITER = r'''
import fcntl, os, sys, time
n, go, done = int(sys.argv[1]), sys.argv[2], sys.argv[3]
fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, 1 << 20)
while not os.path.exists(go):
    time.sleep(0.01)
pad = "z" * 150
for first in range(0, n, 1000):
    data = "".join("d %d %s\n" % (i, pad) for i in range(first, min(n, first + 1000))).encode()
    # Writes that end mid-line: when the agent pauses, it most likely holds a partial line, which must wait.
    for at in range(0, len(data), 4000):
        view = memoryview(data[at:at + 4000])
        while view:
            view = view[os.write(1, view):]
open(done, "w").close()
os._exit(0)
'''


def case_exit_drain():
    n = 10000  # 1.6 MB: more than the agent's buffer takes, less than that and the 1 MiB pipe together
    with Harness("bp-drain", tetherd_args=["--max-log-bytes-per-boot", str(STORE_BYTES)]) as h:
        mid = "drain"
        h.register(mid)
        writer, go, done = h.path("writer.py"), h.path("go"), h.path("done")
        with open(writer, "w") as f:
            f.write(DRAIN_WRITER)
        agent = h.start_init(mid, ["python3", writer, str(n), go, done])
        h.wait_connected(mid)
        h.wait_machine(mid, lambda m: (m.get("boot") or {}).get("milestones", 0) >= 2,
                       "the first milestones are stored", timeout=30)

        # tetherd stops taking output (for much less than the 5 s stall bound); the workload writes its burst and
        # exits with part of it still in its pipe, the agent's buffer full of output tetherd does not have.
        h.tetherd.send_signal(signal.SIGSTOP)
        try:
            open(go, "w").close()
            deadline = time.monotonic() + 3
            while not os.path.exists(done) and time.monotonic() < deadline:
                time.sleep(0.01)
            finished = os.path.exists(done)
            time.sleep(0.5)  # the agent reaps the workload and starts the final drain
        finally:
            h.tetherd.send_signal(signal.SIGCONT)
        check(finished, "the workload wrote everything and exited while tetherd was stopped (test set-up)")

        rc = wait_proc(agent, 120, "the agent exits after its workload")
        check(rc == 0, "the workload exited 0", rc)
        boot = h.wait_exited(mid, timeout=120)["boot"]
        check(boot.get("logs_dropped", 0) == 0, "no LogDropped: the final drain waited for tetherd", boot)
        attrs = shutdown_attributes(h, mid)
        log("shutdown milestone: %s" % json.dumps(attrs))
        check(int(attrs.get("log_pauses", "0")) > 0, "the agent paused the workload's output", attrs)
        check(attrs.get("log_stalls") == "0", "the agent never stopped waiting (test set-up)", attrs)
        objs = h.api.logs(mid, stream="stdout")
        check(not any(o.get("partial") for o in objs), "a pause never split a line",
              [o for o in objs if o.get("partial")][:3])
        compare_lines("stdout", log_lines(objs, "stdout"), ["d %d %s" % (i, "z" * 150) for i in range(n)])
        log("exit-drain OK: %d lines" % n)


WRITER = r'''
import os, sys, time
stop_file, report = sys.argv[1], sys.argv[2]
pad = "y" * 90
i = 0
last = time.monotonic()
start = last
max_gap = 0.0
while not os.path.exists(stop_file):
    buf = "".join("n %d %s\n" % (i + k, pad) for k in range(100)).encode()
    # Writes that end mid-line (the batch ends with one): a pause most likely finds a partial line, which waits.
    for at in range(0, len(buf), 4000):
        view = memoryview(buf[at:at + 4000])
        while view:
            view = view[os.write(1, view):]  # blocks while the agent does not read
    now = time.monotonic()
    max_gap = max(max_gap, now - last)
    last = now
    i += 100
    # About 1 MB/s: tetherd keeps up easily while it runs.
    delay = start + i / 10000.0 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
        last = time.monotonic()
with open(report, "w") as f:
    f.write("%d %.6f\n" % (i, max_gap))
'''


def line_number(text):
    return int(text.split(" ", 2)[1])


def case_stall():
    with Harness("bp-stall", tetherd_args=["--max-log-bytes-per-boot", str(STORE_BYTES)]) as h:
        mid = "stall"
        h.register(mid)
        writer = h.path("writer.py")
        with open(writer, "w") as f:
            f.write(WRITER)
        stop_file, report = h.path("stop"), h.path("report")
        agent = h.start_init(mid, ["python3", writer, stop_file, report],
                             extra=["--replay-bytes=256K", "--log-stall-timeout-ms=%d" % STALL_MS])

        h.wait_connected(mid)
        h.wait_machine(mid, lambda m: (m.get("boot") or {}).get("log_bytes", 0) >= 500000,
                       "the first half megabyte is stored", timeout=60, interval=0.05)
        before = log_lines(h.api.logs(mid, stream="stdout"), "stdout")
        check(before, "lines are stored before the stop")
        last_before = line_number(before[-1])

        h.tetherd.send_signal(signal.SIGSTOP)
        log("tetherd stopped with line %d stored" % last_before)
        time.sleep(STOP_S)
        h.tetherd.send_signal(signal.SIGCONT)
        log("tetherd continued")
        check(agent.poll() is None, "the workload is still running (test set-up)")
        # Let delivery resume, then let the workload finish.
        h.wait_machine(mid, lambda m: (m.get("boot") or {}).get("logs_dropped", 0) > 0,
                       "a LogDropped arrives after SIGCONT", timeout=60, interval=0.05)
        time.sleep(2.0)
        open(stop_file, "w").close()

        rc = wait_proc(agent, 120, "the agent exits after its workload")
        check(rc == 0, "the workload exited 0", rc)
        with open(report) as f:
            n_written, max_gap = f.read().split()
        n_written, max_gap = int(n_written), float(max_gap)
        log("the workload wrote %d lines; its largest gap between two writes: %.3f s" % (n_written, max_gap))
        check(max_gap < GAP_LIMIT_S,
              "the workload was never blocked much longer than the stall bound (%d ms), though tetherd was stopped "
              "for %.0f s" % (STALL_MS, STOP_S), "largest gap %.3f s, limit %.1f s" % (max_gap, GAP_LIMIT_S))

        boot = h.wait_exited(mid)["boot"]
        attrs = shutdown_attributes(h, mid)
        log("shutdown milestone: %s; boot logs_dropped %s" % (json.dumps(attrs), boot.get("logs_dropped")))
        check(int(attrs.get("log_stalls", "0")) > 0, "the agent fell back to dropping", attrs)
        check(int(attrs.get("logs_dropped", "0")) > 0, "the agent counted what it dropped", attrs)
        check(boot.get("logs_evicted", 0) == 0, "tetherd evicted nothing (test set-up)", boot)

        objs = h.api.logs(mid, stream="stdout")
        check(not any(o.get("partial") for o in objs), "a pause never split a line",
              [o for o in objs if o.get("partial")][:3])
        lines = log_lines(objs, "stdout")
        nums = [line_number(x) for x in lines]
        check(all(a < b for a, b in zip(nums, nums[1:])), "stored lines are in order, each once",
              [(a, b) for a, b in zip(nums, nums[1:]) if a >= b][:5])
        check(nums and nums[-1] == n_written - 1, "delivery resumed: the last line written is stored",
              nums[-1:], n_written)
        present = set(nums)
        missing = [i for i in range(n_written) if i not in present]
        check(missing, "lines were dropped while tetherd was stopped")
        check(missing[0] > last_before, "no line stored before the stop, or written before it, is missing",
              "first missing %d, last stored before the stop %d" % (missing[0], last_before))
        line_bytes = len("n 0 %s\n" % ("y" * 90)) - 1  # without the number's digits
        missing_bytes = sum(line_bytes + len(str(i)) for i in missing)
        claimed = sum(o["dropped"].get("bytes", 0) for o in objs if "dropped" in o)
        check(claimed == missing_bytes, "the LogDropped records claim exactly the bytes of the missing lines",
              "claimed %d, missing %d lines of %d bytes" % (claimed, len(missing), missing_bytes))
        after = [i for i in nums if i > missing[-1]]
        check(len(after) > 1000, "lines written after the drops are stored (delivery resumed)", len(after))
        log("stall OK: %d lines written, %d dropped, max gap %.3f s" % (n_written, len(missing), max_gap))


def main(case):
    if case == "firehose":
        case_firehose()
    elif case == "exit-drain":
        case_exit_drain()
    elif case == "stall":
        case_stall()
    else:
        raise SystemExit("unknown case " + case)


if __name__ == "__main__":
    run_test(main, sys.argv[1])
