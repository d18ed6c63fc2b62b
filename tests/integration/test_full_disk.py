#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A boot that begins while the state dir's file system is full.

The state dir is a small tmpfs, filled to the last block before the machine's agent connects: its boot file
cannot even be created. The machine's readiness is answered all the same (from memory), and nothing it sends is
acked (the agent keeps it). Once space is freed, tetherd creates the file and the file ends up with every record
exactly once: after a SIGKILL and restart, the boot's readiness, its exit and every line are still there, in
order.

- `kept`: the workload and its agent are gone before space is freed; tetherd writes the copies it kept in memory
  (no agent needed; with --unwritten-memory-bytes 0, as before them, nothing is written and all is lost).
- `resent`: tetherd keeps no copies (--unwritten-memory-bytes 0): it has the agent, still running, reconnect and
  resend from the file's hole.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, log_lines, numbered_lines_script, run_test, wait_proc  # noqa: E402
from test_init import compare_lines  # noqa: E402

N = 300


def fill(path):
    """Writes path until the file system is full; returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError:
                break
        while True:  # the last partial block
            try:
                n += f.write(b"\0" * 512)
            except OSError:
                break
    return n


def main(scenario):
    kept = scenario == "kept"
    # resent: still running when the repair comes (tried 1, 3, 7 s after the first failure), the agent holds what
    # tetherd did not ack until then. kept: the agent gives up after its 1 s final flush, long before.
    script = numbered_lines_script("line", N, 20, after="" if kept else "sleep 8\n")
    expect = ["line %d" % i for i in range(N)]
    args = [] if kept else ["--unwritten-memory-bytes", "0"]

    with Harness("full-disk-" + scenario, start=False, tetherd_args=args) as h:
        os.makedirs(h.state_dir, mode=0o700)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", h.state_dir], check=True)
        try:
            h.start_tetherd()
            mid = "crowded"
            h.register(mid)
            filler = os.path.join(h.state_dir, "filler")
            log("filled the state dir with %d bytes" % fill(filler))

            agent = h.start_init_shell(mid, script)
            status, doc, raw = h.api.get("/v1/machines/%s/ready?timeout=30" % mid, timeout=40)
            check(status == 200 and doc.get("state") == "ready",
                  "readiness is answered while nothing of the boot can be written", status, raw[:300])
            st = h.api.get_ok("/v1/stats")
            check(st["persist_errors"] >= 1, "the failed writes are counted", st["persist_errors"])
            boot_files = [f for f in os.listdir(os.path.join(h.state_dir, "machines", mid)) if f.endswith(".rec")]
            check(not boot_files, "the boot file could not be created (test set-up)", boot_files)
            m = h.api.machine(mid)
            check(m["boot"].get("logs_dropped", 0) == 0, "nothing is dropped while the disk is full", m["boot"])

            if kept:
                rc = wait_proc(agent, 120, "the agent exits after its workload")
                check(rc == 0, "the workload ran to completion", rc)
                h.wait_exited(mid)
                h.wait_machine(mid, lambda m: not m["connected"], "the agent is gone")
                check(h.api.get_ok("/v1/stats")["records_repersisted"] == 0,
                      "nothing is in the file while the disk is full")
            time.sleep(1.0)
            os.unlink(filler)
            log("freed the state dir")
            if not kept:
                rc = wait_proc(agent, 120, "the agent exits after its workload")
                check(rc == 0, "the workload ran to completion", rc)
                h.wait_exited(mid)

            def repersisted():
                s = h.api.get_ok("/v1/stats")
                return s if s["records_repersisted"] > 0 else None
            deadline = time.monotonic() + 60
            st = None
            while time.monotonic() < deadline and not st:
                st = repersisted()
                time.sleep(0.1)
            check(st, "the records kept out of the file are written once the disk takes them",
                  h.api.get_ok("/v1/stats"))
            if kept:
                check(st["connections_closed"]["resync"] == 0, "no agent was needed", st["connections_closed"])
            else:
                check(st["connections_closed"]["resync"] >= 1, "the agent was asked to resend by a reconnect",
                      st["connections_closed"])
            check(st["dropped_records"].get("persist_failed", 0) == 0, "no record counted as lost",
                  st["dropped_records"])
            log("records written into the file late: %d, reconnects for it: %d" %
                (st["records_repersisted"], st["connections_closed"]["resync"]))
            before = h.api.machine(mid)["boot"]

            # Everything acked is on disk: a SIGKILL loses nothing.
            h.kill_tetherd()
            h.start_tetherd()
            m = h.api.machine(mid)
            boot = m["boot"]
            check(boot.get("ready") is not None and m.get("state") in ("ready", "exited"),
                  "the readiness survived the restart", m)
            check(boot["exit"] == before["exit"], "the exit survived the restart", boot["exit"], before["exit"])
            check(boot["records"] == before["records"], "every record survived the restart, once",
                  boot["records"], before["records"])
            objs = h.api.logs(mid, stream="stdout")
            compare_lines("stdout after a full disk and a restart", log_lines(objs, "stdout"), expect)
            seqs = [o["seq"] for o in objs if "line" in o]
            check(seqs == sorted(seqs), "lines are stored in seq order", seqs[:50])
        finally:
            if h.tetherd:
                h.kill_tetherd()
            subprocess.run(["umount", "-l", h.state_dir])


if __name__ == "__main__":
    run_test(main, sys.argv[1])
