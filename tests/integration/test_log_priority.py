#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A journal line's syslog priority through the real binaries: a fake journal agent (fake-guest --scenario
journal, protocol version 3) sends "prio 0" ... "prio 7" with those priorities and a stdout line "plain"
without one.

Proves: the logs API shows `priority` (the syslog number) on exactly the journal lines; `priority=err` selects
0 ... 3 and a range selects its both ends and what is between, the stdout line in neither; a bad priority is a
400; `tether logs -p` prints the same selection, tagged `[err]`; a follower with a priority gets the later lines
of its selection and no others (the guest's last line, of the selection, comes after the ones that are not: once
it is there, the others were passed over); and after a restart of tetherd, when the lines come from the boot file
and no longer from memory, the same.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, binary, check, log, run_test, wait_proc  # noqa: E402

NAMES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
LIVENESS_S = 60


def lines(objs):
    return [(o["line"], o.get("priority")) for o in objs if "line" in o]


def check_stored(h, mid, where):
    objs = h.api.logs(mid)
    got = lines(objs)
    want = [("prio %d" % p, p) for p in range(8)] + [("plain", None)]
    check(got == want, "every line has its priority, the stdout line none (%s)" % where, got)
    check(all("priority" not in o for o in objs if o.get("stream") == "stdout"),
          "a line without a priority has no priority member (%s)" % where, objs)

    got = lines(h.api.logs(mid, extra="priority=err"))
    check(got == [("prio %d" % p, p) for p in range(4)], "priority=err selects emerg ... err (%s)" % where, got)
    got = lines(h.api.logs(mid, extra="priority=6..notice"))
    check(got == [("prio 5", 5), ("prio 6", 6)], "a range selects both ends, in either order (%s)" % where, got)
    got = lines(h.api.logs(mid, extra="priority=debug"))
    check(len(got) == 8 and ("plain", None) not in got, "priority=debug: every line with a priority (%s)" % where,
          got)

    status, _, raw = h.api.get("/v1/machines/%s/logs?priority=loud" % mid)
    check(status == 400 and b"priority must be" in raw, "an unknown priority is a 400 (%s)" % where, status, raw)

    _, out, _ = h.cli("logs", "-p", "warning..crit", mid, check_rc=0)
    check(out.splitlines() == ["journal: [crit] prio 2", "journal: [err] prio 3", "journal: [warning] prio 4"],
          "tether logs -p prints the selection, tagged (%s)" % where, out)
    _, out, _ = h.cli("logs", "--stream", "stdout,journal", mid, check_rc=0)
    check(out.splitlines()[-1] == "plain" and out.splitlines()[0] == "journal: [emerg] prio 0",
          "tether logs tags only the lines that have a priority (%s)" % where, out)


def main():
    fake = binary("FAKE_GUEST")
    with Harness("log-priority") as h:
        mid = "journal-prio"
        go = h.path("go")
        h.register(mid)
        guest = h.spawn([fake, "--socket", h.guest_socket(mid), "--scenario", "journal", "--ready-file", go,
                         "--hold-ms", "120000", "--timeout-ms", "30000"], "fake-guest.log", stdout=subprocess.PIPE)

        deadline = time.monotonic() + LIVENESS_S
        while len(lines(h.api.logs(mid))) < 9:
            check(time.monotonic() < deadline, "the journal lines arrive", h.api.logs(mid))
            check(guest.poll() is None, "the fake guest runs", guest.returncode)
            time.sleep(0.05)
        check_stored(h, mid, "from memory")

        # Followers of crit or worse, the API's and the CLI's, from before the later lines.
        cli = subprocess.Popen(h.cli_argv("logs", "-f", "-p", "crit", mid), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        api = h.api.stream("/v1/machines/%s/logs?follow=1&priority=crit" % mid, timeout=LIVENESS_S)
        api_got = []
        for o in api:
            api_got.append((o["line"], o.get("priority")))
            if len(api_got) == 3:
                break
        check(api_got == [("prio 0", 0), ("prio 1", 1), ("prio 2", 2)], "the follower gets the stored selection",
              api_got)
        with open(go, "w"):
            pass
        for o in api:
            api_got.append((o["line"], o.get("priority")))
            if o["line"] == "late alert":
                break
        check(api_got[3:] == [("late crit", 2), ("late alert", 1)],
              "the follower gets the new lines of its selection and no others", api_got)
        api.close()

        cli_out = []
        while not cli_out or cli_out[-1] != "journal: [alert] late alert":
            line = cli.stdout.readline()
            check(line, "tether logs -f -p crit prints until the last line", cli_out)
            cli_out.append(line.decode().rstrip("\n"))
        cli.kill()
        wait_proc(cli, 10, "tether logs -f")
        check(cli_out == ["journal: [emerg] prio 0", "journal: [alert] prio 1", "journal: [crit] prio 2",
                          "journal: [crit] late crit", "journal: [alert] late alert"],
              "tether logs -f -p follows the selection", cli_out)

        status, _, raw = h.api.ready(mid, 30)
        check(status == 200, "the guest's Ready arrives after its lines", raw)
        guest.kill()
        guest.wait(10)

        # The boot file is the store now: nothing of it is in memory after a restart.
        h.kill_tetherd()
        h.start_tetherd()
        objs = h.api.logs(mid)
        got = lines(objs)
        check(got[:9] == [("prio %d" % p, p) for p in range(8)] + [("plain", None)] and
              got[9:] == [("late crit", 2), ("late info", 6), ("late plain", None), ("late alert", 1)],
              "after a restart every line reads back from the boot file with its priority", got)
        got = lines(h.api.logs(mid, extra="priority=alert..crit"))
        check(got == [("prio 1", 1), ("prio 2", 2), ("late crit", 2), ("late alert", 1)],
              "the filter selects from the boot file too", got)
        log("priorities shown and selected from memory, from the boot file and while following")


if __name__ == "__main__":
    run_test(main)
