#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tether-agent-systemd restarted during a boot (Restart=always after a SIGKILL, `systemctl restart` after ready),
against the fake PID 1 of test_agent_systemd.py: every agent process of the boot sends its own init.start (its
main(), a time of its own), and one started after the boot finished sends ready again (systemd says the boot has
finished).

Proves: the boot keeps one init.start (the first agent's) and one ready (at systemd's FinishTimestamp, whichever
agent said it) however many agent processes report them; the readiness itself (source, time) stays the first
one's; what the restarted agents say again (systemd's phases, init.start, ready) is counted in
annotations_repeated; the phases are not doubled.
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, milestone_events, run_test, wait_proc  # noqa: E402
from test_agent_systemd import (boot_half_done, skip_without_agent_systemd, spans_by_name,  # noqa: E402
                                start_fake_systemd)

EARLY = ["systemd.kernel", "systemd.initrd", "systemd.generators", "systemd.units-load", "unit:early.service"]


def named(events, name):
    return [t for n, t in events if n == name]


def main():
    agent = skip_without_agent_systemd()
    with Harness("agent-systemd-restart") as h:
        mid = "sd-restart"
        h.register(mid)
        sd, env = start_fake_systemd(h)
        t0 = boot_half_done(sd)

        argv = [agent, "--mode=service", "--transport=unix:" + h.guest_socket(mid),
                "--notify-socket=" + h.path("notify.sock"), "--traceparent-file=", "--ready=boot-finished",
                "--systemd-units=*.service", "--no-journal"]

        def boot(m):
            return m.get("boot") or {}

        def repeated_at_least(n):
            return lambda m: boot(m).get("annotations_repeated", 0) >= n

        def has_spans(names):
            return lambda m: all(n in spans_by_name(h, mid) for n in names)

        # The first agent process sees the boot half done.
        a1 = h.spawn(argv, "agent-1.log", env=env)
        h.wait_connected(mid)
        h.wait_machine(mid, has_spans(EARLY), "the first agent's boot phases are spans")
        # Times are compared across API calls below: on a mapping that no longer changes.
        h.wait_machine(mid, lambda m: boot(m).get("clock_fixed"), "the boot's clock mapping is fixed")
        first = named(milestone_events(h.api.spans(mid)), "init.start")
        check(len(first) == 1, "the first agent's init.start is there", first)

        # Killed mid-boot; systemd starts it again (Restart=always): a new process, the same boot.
        a1.kill()
        wait_proc(a1, 10, "the SIGKILLed agent is gone")
        a2 = h.spawn(argv, "agent-2.log", env=env)
        # Its init.start comes first, then systemd's phases again (each repeated: kept once).
        h.wait_machine(mid, repeated_at_least(len(EARLY)), "the restarted agent reported the phases again")
        m = h.api.machine(mid)
        check(m["state"] != "ready", "not ready before the boot finished", m["state"])

        sd.cmd("finish %d" % (t0 + 4_000_000))
        m = h.wait_machine(mid, lambda m: m["state"] == "ready", "the machine is ready once the boot finished")
        ready = boot(m)["ready"]
        check(ready.get("source") == "systemd" and ready.get("detail") == "boot-finished",
              "ready comes from the restarted agent's boot-finished", ready)
        h.wait_machine(mid, lambda m: len(named(milestone_events(h.api.spans(mid)), "ready")) >= 1,
                       "the ready milestone is an event of the boot")
        ready_at = named(milestone_events(h.api.spans(mid)), "ready")

        # `systemctl restart` after ready: SIGTERM (the agent flushes and stops), then a new process, which finds
        # the boot finished and says ready again (its own init.start too).
        a2.send_signal(signal.SIGTERM)
        wait_proc(a2, 20, "the agent stops on SIGTERM")
        before = boot(h.api.machine(mid))["annotations_repeated"]
        a3 = h.spawn(argv, "agent-3.log", env=env)
        # EARLY, systemd.userspace and systemd.startup-finished again; ready comes right after the latter.
        h.wait_machine(mid, repeated_at_least(before + len(EARLY) + 2), "the third agent reported the boot again")
        a3.send_signal(signal.SIGTERM)
        check(wait_proc(a3, 20, "the third agent stops on SIGTERM") == 0, "the third agent flushed and exited")

        doc = h.api.spans(mid)
        events = milestone_events(doc)
        check(named(events, "init.start") == first, "one init.start, the first agent's", events)
        check(named(events, "ready") == ready_at, "one ready, the first one's", events)
        userspace = [s for s in doc["spans"] if s["name"] == "systemd.userspace"][0]
        check(ready_at == [userspace["end_unix_ns"]], "ready is systemd's FinishTimestamp", ready_at, userspace)
        check(len(named(events, "shutdown")) == 2, "each stopped agent said so (shutdown)", events)
        m = h.api.machine(mid)
        check(boot(m)["ready"] == ready, "the boot's readiness is the first one's", boot(m)["ready"], ready)
        # The lifecycle events: one per milestone or phase the boot kept, none for what it kept once.
        evs = h.api.events(mid)
        said = [(e["name"], e["boottime_ns"]) for e in evs if e.get("transition") == "milestone"]
        check(len(said) == len(set(said)) == len(events), "one milestone event per milestone kept", said, events)
        spans_said = [(e["name"], e["start_unix_ns"]) for e in evs if e.get("transition") == "phase"]
        check(len(spans_said) == len(set(spans_said)), "one phase event per phase kept", spans_said)
        names = [s["name"] for s in doc["spans"]]
        for n in EARLY + ["systemd.userspace"]:
            check(names.count(n) == 1, "one %s span" % n, names)
        h.assert_tetherd_alive()
        log("agent-systemd-restart OK: annotations_repeated %d" % boot(m)["annotations_repeated"])


if __name__ == "__main__":
    run_test(main)
