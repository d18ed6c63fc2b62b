#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tether-agent-systemd forwards the journal: a real systemd-journald in a private mount namespace (tmpfs over
/run/systemd, /run/log and /var/log/journal, so the host's journal is untouched), entries written with
systemd-cat, the agent in the same namespace, through the real tetherd.

Proves: entries written before the agent started are forwarded (from the boot's first entry), with the syslog
identifier as source, stream journal and their priority (the logs API's `priority`, its filter); after a SIGKILL
of the agent and entries written while none runs, a new agent process resumes after the cursor tetherd stored
(Welcome.journal_cursor): every line exactly once, in order.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, log_lines, run_test  # noqa: E402

JOURNALD = next((p for p in ("/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald")
                 if os.path.exists(p)), None)

# Runs in the private mount namespace; one command per stdin line, "ok" on stdout once done.
GUEST_SH = r'''
set -e
mkdir -p /run/systemd /run/log /var/log/journal
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
mount -t tmpfs tmpfs /var/log/journal
mkdir -p /run/systemd/journal
"$JOURNALD" &
i=0
while [ ! -S /run/systemd/journal/stdout ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
echo ready
while read -r cmd a b; do
    case "$cmd" in
    log) seq -f "journal line %g" "$a" "$b" | systemd-cat -t app -p warning ;;
    start) "$AGENT" --mode=service --transport="unix:$SOCK" --notify-socket="$NOTIFY" --traceparent-file= \
               --systemd-units-max=0 --flush-timeout-ms=0 2>>"$AGENT_LOG" &
           apid=$! ;;
    kill) kill -9 "$apid"; wait "$apid" || true ;;
    esac
    echo ok
done
'''


def main():
    agent = os.environ.get("TETHER_AGENT_SYSTEMD")
    if not agent or not JOURNALD or not shutil.which("systemd-cat"):
        print("SKIP: needs tether-agent-systemd, systemd-journald and systemd-cat")
        sys.exit(77)
    with Harness("agent-journal") as h:
        mid = "journal-1"
        h.register(mid)
        env = dict(os.environ, JOURNALD=JOURNALD, AGENT=agent, SOCK=h.guest_socket(mid),
                   NOTIFY=h.path("notify.sock"), AGENT_LOG=h.path("agent-%s.log" % mid))
        g = h.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", GUEST_SH], "guest.log",
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        check(g.stdout.readline().strip() == b"ready", "systemd-journald runs in the namespace")

        def cmd(line):
            g.stdin.write((line + "\n").encode())
            g.stdin.flush()
            check(g.stdout.readline().strip() == b"ok", "the guest script did '%s'" % line)

        def lines():
            return [x for x in log_lines(h.api.logs(mid, stream="journal"), "journal") if x.startswith("journal line")]

        def lines_up_to(n):
            return lambda m: ("journal line %d" % n) in lines()

        cmd("log 1 300")  # before any agent: the boot's entries so far
        cmd("start")
        h.wait_connected(mid)
        h.wait_machine(mid, lines_up_to(300), "the entries written before the agent started arrive")
        objs = [o for o in h.api.logs(mid, stream="journal") if (o.get("line") or "").startswith("journal line")]
        check(all(o.get("source") == "app" for o in objs), "the syslog identifier is the source", objs[:3])
        check(all(o.get("priority") == 4 for o in objs), "systemd-cat -p warning is priority 4 in the logs API",
              objs[:3])
        check(not [o for o in h.api.logs(mid, stream="journal", extra="priority=err")
                   if (o.get("line") or "").startswith("journal line")],
              "priority=err leaves the warnings out")

        cmd("kill")
        cmd("log 301 600")  # while no agent runs
        cmd("start")
        h.wait_machine(mid, lines_up_to(600), "a restarted agent forwards what was written meanwhile")
        cmd("log 601 700")
        h.wait_machine(mid, lines_up_to(700), "and what comes after")

        got = lines()
        want = ["journal line %d" % i for i in range(1, 701)]
        check(got == want, "every journal line exactly once, in order, across the agent's restart",
              "got %d lines; first differences: %r" % (len(got), [(i, a, b) for i, (a, b) in
                                                                   enumerate(zip(got, want)) if a != b][:5]),
              "missing: %r" % sorted(set(want) - set(got))[:10])
        h.assert_tetherd_alive()
        cmd("kill")
        g.stdin.close()
        log("journal forwarding OK")


if __name__ == "__main__":
    run_test(main)
