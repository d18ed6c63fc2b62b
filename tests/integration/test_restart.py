#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tetherd SIGKILLed in the middle of a log stream and restarted with the same state dir.

The workload writes numbered lines steadily for a few seconds; tetherd is killed once a part of them is
stored, and restarted while the workload keeps writing. At the end every line is in the store exactly once,
in order (no loss: persisted before acked, replayed by the agent; no duplicate: Welcome.acked_seq from the
persisted state), the registration survived, and the workload was never blocked (it exited 0).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, log_lines, numbered_lines_script, run_test, wait_proc  # noqa: E402
from test_init import compare_lines  # noqa: E402

N = 600


def main():
    script = numbered_lines_script("tick", N, 10)
    expect = ["tick %d" % i for i in range(N)]

    with Harness("restart") as h:
        mid = "survivor"
        h.register(mid, request_id="req-restart")
        agent = h.start_init_shell(mid, script)

        # Kill once some lines are stored, but well before the end.
        h.wait_machine(mid, lambda m: (m.get("boot") or {}).get("records", 0) >= 15,
                       "some records are stored before the kill", timeout=60, interval=0.02)
        before = h.api.machine(mid)["boot"]
        rc = h.kill_tetherd()
        log("tetherd SIGKILLed (rc %s) with %d records stored" % (rc, before["records"]))
        check(agent.poll() is None, "the workload is still running when tetherd dies (test set-up)")
        time.sleep(0.7)
        h.start_tetherd()
        log("tetherd restarted")

        m = h.api.machine(mid)
        check(m.get("request_id") == "req-restart", "the registration survived the restart", m)
        rc = wait_proc(agent, 90, "the agent exits after its workload")
        check(rc == 0, "the workload ran to completion and exited 0 despite the collector's death", rc)
        m = h.wait_exited(mid)
        boot = m["boot"]
        check(boot.get("logs_dropped", 0) == 0, "no log records were dropped", boot)
        check(m.get("boots") == 1, "the restart did not create a second boot", m)
        check(boot["records"] >= before["records"], "no stored record was lost by the restart", before, boot)

        objs = h.api.logs(mid, stream="stdout")
        check(not any("dropped" in o for o in objs), "no dropped markers in the log stream",
              [o for o in objs if "dropped" in o][:3])
        compare_lines("stdout after a tetherd SIGKILL + restart", log_lines(objs, "stdout"), expect)
        seqs = [o["seq"] for o in objs if "line" in o]
        check(seqs == sorted(seqs), "lines are stored in seq order", seqs[:50])

        # A second restart replays the finished boot from disk: same lines, same exit.
        h.kill_tetherd()
        h.start_tetherd()
        m2 = h.api.machine(mid)
        check(m2["boot"]["exit"] == boot["exit"], "the exit is persisted", m2["boot"]["exit"], boot["exit"])
        compare_lines("stdout after a second restart", log_lines(h.api.logs(mid, stream="stdout"), "stdout"),
                      expect)
        log("restart OK: %d lines, %d records" % (N, boot["records"]))


if __name__ == "__main__":
    run_test(main)
