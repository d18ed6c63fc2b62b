#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A boot far larger than tetherd's log memory (--log-memory-bytes 64K).

`state-dir`: the boot file is the log store. Every line reads back through the API (all of it, after any
since_seq, by a late follow=1 stream that catches up from the file and then gets new lines live, and by
`tether logs`), nothing is counted as evicted or dropped, memory stays within the bound while the budget
evicts (counted in /v1/stats), a quiet machine keeps its tail in memory; after a tetherd restart (SIGKILL)
every line still reads back and no log data was loaded into memory.

`memory`: the same without a state dir: the eviction is counted (stats, the boot, a dropped marker in the
stream), the newest lines are kept, and the quiet machine loses nothing.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, Thread, binary, check, log, log_lines, run_test  # noqa: E402

MEMORY = 64 * 1024
N = 20000
EXPECT = ["line %d" % i for i in range(N)]
FINALS = ["final one", "final two"]


def fake(h, mid, *actions, instance="A"):
    argv = [binary("FAKE_AGENT"), "--boot-id", "boot-" + mid, "--instance", instance,
            "unix:" + h.guest_socket(mid)] + list(actions)
    subprocess.run(argv, stdout=subprocess.DEVNULL, timeout=120, check=True)


def stats(h):
    return h.api.get_ok("/v1/stats")


def check_all_lines(h, mid, what, expect):
    objs = h.api.logs(mid, stream="stdout")
    lines = log_lines(objs, "stdout")
    dropped = [o for o in objs if "dropped" in o]
    check(not dropped, "%s: no dropped marker" % what, dropped[:2])
    check(lines == expect, "%s: every line of %s reads back once, in order" % (what, mid),
          "got %d lines, first %r last %r" % (len(lines), lines[:2], lines[-2:]))


def case_state_dir():
    args = ["--log-memory-bytes", str(MEMORY)]
    with Harness("logstore", tetherd_args=args) as h:
        h.register("big")
        h.register("quiet")
        fake(h, "quiet", "logs", "stdout", "10", "wait-acks")
        fake(h, "big", "logs", "stdout", str(N), "wait-acks")

        st = stats(h)["log_memory"]
        check(st["limit"] == MEMORY and st["bytes"] <= MEMORY, "log memory stays within --log-memory-bytes", st)
        check(st["evicted_records"] > 0, "the budget evicted lines from memory (counted)", st)
        check(stats(h)["dropped_records"]["evicted"] == 0, "... without dropping any", stats(h)["dropped_records"])
        boot = h.api.machine("big")["boot"]
        check(boot["log_memory_bytes"] <= MEMORY, "the boot's memory stays within the bound", boot)
        check(boot["logs_evicted"] == 0 and boot["log_bytes_stored"] == boot["log_bytes"],
              "nothing of the boot is lost", boot)
        quiet = h.api.machine("quiet")["boot"]
        check(quiet["log_memory_bytes"] > 0, "the quiet machine's tail is still in memory", quiet)

        check_all_lines(h, "big", "before a restart", EXPECT)
        check_all_lines(h, "quiet", "before a restart", EXPECT[:10])
        # Records 1..N hold "line 0".."line N-1": since_seq=S starts at "line S".
        for since in (1, 12345, N - 3):
            lines = log_lines(h.api.logs("big", stream="stdout", extra="since_seq=%d" % since), "stdout")
            check(lines == EXPECT[since:], "since_seq=%d reads the rest" % since, lines[:2], len(lines))

        # A late follower catches up from the file, then gets new lines live and ends with the boot.
        got = []

        def follow():
            for o in h.api.stream("/v1/machines/big/logs?follow=1&stream=stdout", timeout=120):
                if "line" in o:
                    got.append(o["line"].rstrip("\n"))
                check("dropped" not in o, "the follower sees no dropped marker", o)
            return True

        follower = Thread(follow)
        follower.start()
        deadline = time.monotonic() + 60
        while len(got) < N and time.monotonic() < deadline:
            time.sleep(0.05)
        check(got == EXPECT, "a follow=1 stream catches up with all %d lines" % N, len(got), got[-2:])
        check(follower.is_alive(), "... and keeps following the running boot")
        fake(h, "big", "log", "stdout", FINALS[0], "log", "stdout", FINALS[1], "exit", "0", "wait-acks",
             instance="B")
        follower.join_result(60)
        check(got == EXPECT + FINALS, "the follower got the new lines live and ended with the boot", got[-3:])

        rc, out, err = h.cli("logs", "--stream", "stdout", "big", check_rc=0)
        check(out.splitlines() == EXPECT + FINALS, "`tether logs` prints every line",
              len(out.splitlines()))

        h.kill_tetherd()
        h.start_tetherd()
        st = stats(h)["log_memory"]
        check(st["bytes"] == 0, "a restart loads no log data into memory", st)
        boot = h.api.machine("big")["boot"]
        check(boot["log_bytes_stored"] == boot["log_bytes"] and boot["logs_evicted"] == 0,
              "after the restart nothing is lost", boot)
        check_all_lines(h, "big", "after a restart", EXPECT + FINALS)
        check_all_lines(h, "quiet", "after a restart", EXPECT[:10])
        lines = log_lines(h.api.logs("big", stream="stdout", extra="since_seq=%d" % (N - 1)), "stdout")
        check(lines == EXPECT[N - 1:] + FINALS, "since_seq after a restart", lines)
        log("log store OK: %d lines, %s" % (N, st))


def case_memory():
    args = ["--log-memory-bytes", str(MEMORY), "--state-dir", ""]
    with Harness("logstore-mem", tetherd_args=args) as h:
        h.register("big")
        h.register("quiet")
        fake(h, "quiet", "logs", "stdout", "10", "wait-acks")
        fake(h, "big", "logs", "stdout", str(N), "wait-acks")

        s = stats(h)
        check(s["log_memory"]["bytes"] <= MEMORY, "log memory stays within --log-memory-bytes", s["log_memory"])
        boot = h.api.machine("big")["boot"]
        check(boot["logs_evicted"] > 0 and boot["log_bytes_stored"] < boot["log_bytes"],
              "without a state dir the eviction loses lines, counted on the boot", boot)
        check(s["dropped_records"]["evicted"] == boot["logs_evicted"], "... and in /v1/stats",
              s["dropped_records"], boot)
        objs = h.api.logs("big", stream="stdout")
        dropped = [o for o in objs if "dropped" in o]
        check(dropped and dropped[0]["dropped"]["reason"] == "evicted" and
              dropped[0]["dropped"]["records"] == boot["logs_evicted"],
              "the eviction shows as a dropped marker in the stream", dropped[:2], boot)
        lines = log_lines(objs, "stdout")
        check(lines and lines == EXPECT[N - len(lines):], "the newest lines are kept, in order", lines[-2:])
        quiet = h.api.machine("quiet")["boot"]
        check(quiet["logs_evicted"] == 0, "the quiet machine lost nothing", quiet)
        check_all_lines(h, "quiet", "memory only", EXPECT[:10])
        log("memory-only eviction OK: %d of %d lines kept" % (len(lines), N))


if __name__ == "__main__":
    run_test({"state-dir": case_state_dir, "memory": case_memory}[sys.argv[1]])
