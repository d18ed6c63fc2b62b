#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Following logs: `tether logs -f` and GET .../logs?follow=1 deliver lines while the workload runs, and
end by themselves when the boot ends.

The workload prints tick 0..4 slowly, then a burst of 2000 lines at once, and then blocks until the test
creates a "go" file, so the followers have provably received those lines while the workload was still
running (a follow stream must keep up with a burst and must not hold back its tail until more output
comes); then it prints "final" and exits, and both followers must see "final" and end (the CLI with exit
0). The deadline for the burst (60 s for 2000 short lines, which take a fraction of a second normally) is a
liveness bound, not a speed assertion. A third follower joins late, while the workload is idle, and
must catch up with every line so far.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, Thread, check, log, run_test, wait_proc  # noqa: E402

N_BURST = 2000
BEFORE_GO = ["tick %d" % i for i in range(5)] + ["burst %d" % i for i in range(N_BURST)]
EXPECT = BEFORE_GO + ["final"]
LIVENESS_S = 60


def main():
    with Harness("follow") as h:
        mid = "chatty"
        go = h.path("go")
        script = r'''
"$TETHER_AGENT" notify READY=1
for i in 0 1 2 3 4; do echo "tick $i"; sleep 0.1; done
seq -f "burst %%.0f" 0 %d
while [ ! -e %s ]; do sleep 0.05; done
echo final
''' % (N_BURST - 1, go)
        h.register(mid)
        agent = h.start_init_shell(mid, script)
        status, _, raw = h.api.ready(mid, 30)
        check(status == 200, "the machine becomes ready", raw)

        cli = subprocess.Popen(h.cli_argv("logs", "-f", "--stream", "stdout", mid), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        api_lines = []

        def follow_api():
            for o in h.api.stream("/v1/machines/%s/logs?follow=1&stream=stdout" % mid, timeout=60):
                if "line" in o:
                    api_lines.append(o["line"].rstrip("\n"))
            return True

        api_follower = Thread(follow_api)
        api_follower.start()

        # The CLI follower prints the lines written so far, while the workload is blocked.
        cli_lines = []
        deadline = time.monotonic() + LIVENESS_S
        while len(cli_lines) < len(BEFORE_GO) and time.monotonic() < deadline:
            line = cli.stdout.readline()
            if not line:
                break
            cli_lines.append(line.decode(errors="replace").rstrip("\n"))
        check(cli_lines == BEFORE_GO, "`tether logs -f` printed all %d lines so far, in order, within %d s" %
              (len(BEFORE_GO), LIVENESS_S), "got %d lines, last %r" % (len(cli_lines), cli_lines[-3:]))
        check(agent.poll() is None and not os.path.exists(go), "... while the workload was still running")
        check(cli.poll() is None, "`tether logs -f` keeps following while the boot runs")
        while len(api_lines) < len(BEFORE_GO) and time.monotonic() < deadline:
            time.sleep(0.02)
        check(api_lines == BEFORE_GO, "the follow=1 stream delivered all %d lines so far, in order, within %d s" %
              (len(BEFORE_GO), LIVENESS_S), "got %d lines, last %r" % (len(api_lines), api_lines[-3:]))
        check(api_follower.is_alive(), "the follow=1 stream stays open while the boot runs")

        # A follower that joins late catches up with everything so far, without waiting for more output.
        late = subprocess.Popen(h.cli_argv("logs", "-f", "--stream", "stdout", mid), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        late_lines = []
        late_deadline = time.monotonic() + LIVENESS_S
        while len(late_lines) < len(BEFORE_GO) and time.monotonic() < late_deadline:
            line = late.stdout.readline()
            if not line:
                break
            late_lines.append(line.decode(errors="replace").rstrip("\n"))
        check(late_lines == BEFORE_GO, "a late `tether logs -f` catches up with all %d lines while the workload "
              "is idle" % len(BEFORE_GO), "got %d lines, last %r" % (len(late_lines), late_lines[-3:]))
        check(agent.poll() is None and not os.path.exists(go), "... while the workload was still running")

        open(go, "w").close()
        rc = wait_proc(cli, 30, "`tether logs -f` ends when the boot ends")
        rest = cli.stdout.read().decode(errors="replace").splitlines()
        check(rc == 0, "`tether logs -f` exits 0 at the end of the boot", rc, cli.stderr.read())
        check(cli_lines + rest == EXPECT, "`tether logs -f` printed every line once, in order",
              (cli_lines + rest)[-5:])
        api_follower.join_result(30)
        check(api_lines == EXPECT, "the follow=1 stream delivered every line once and ended", api_lines[-5:])
        rc = wait_proc(late, 30, "the late `tether logs -f` ends when the boot ends")
        rest = late.stdout.read().decode(errors="replace").splitlines()
        check(rc == 0 and late_lines + rest == EXPECT, "the late follower printed every line once and exited 0",
              rc, (late_lines + rest)[-3:])
        check(wait_proc(agent, 20, "the agent exits") == 0, "the workload exits 0")
        log("follow OK")


if __name__ == "__main__":
    run_test(main)
