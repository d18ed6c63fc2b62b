#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tether-agent-systemd against a fake PID 1 (fake-systemd, on a private dbus-daemon): the agent's systemd
integration end to end through tetherd, with no systemd and no VM.

Proves: systemd's boot timestamps become the phases systemd.kernel/initrd/generators/units-load at once and
systemd.userspace when StartupFinished arrives (the agent was started before it: no polling, the signal); a unit
active before the agent started (the unit list) and one activated later (PropertiesChanged) become unit:NAME spans
whose length is ActiveEnter − InactiveExit exactly; a failed unit is an error span with its message, and so is a
unit whose start job failed because of a dependency (JobRemoved, the unit never changed state); a unit outside
systemd_units is not reported; ready=target:app reports ready (source systemd, detail target:app.target) only when
app.target becomes active, at the moment systemd says it did (its ActiveEnter).
"""

import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, milestone_events, run_test  # noqa: E402

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class FakeSystemd:
    def __init__(self, h, env):
        import subprocess
        self.p = h.spawn([os.environ["FAKE_SYSTEMD"]], "fake-systemd.log", stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env)
        check(self.p.stdout.readline().strip() == b"ready", "fake-systemd owns org.freedesktop.systemd1")

    def cmd(self, line):
        self.p.stdin.write((line + "\n").encode())
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        check(answer == b"ok", "fake-systemd takes '%s'" % line, answer)


def start_fake_systemd(h):
    """A private dbus-daemon with fake-systemd on it; returns (FakeSystemd, the environment that points there)."""
    bus = h.path("system_bus")
    with open(h.path("bus.conf"), "w") as f:
        f.write(BUS_CONF % bus)
    h.spawn(["dbus-daemon", "--nofork", "--config-file=" + h.path("bus.conf")], "dbus.log")
    for _ in range(200):
        if os.path.exists(bus):
            break
        time.sleep(0.05)
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=" + bus)
    return FakeSystemd(h, env), env


def skip_without_agent_systemd():
    agent = os.environ.get("TETHER_AGENT_SYSTEMD")
    if not agent or not os.environ.get("FAKE_SYSTEMD") or not shutil.which("dbus-daemon"):
        print("SKIP: needs tether-agent-systemd (a build with libsystemd) and dbus-daemon")
        sys.exit(77)
    return agent


def boot_half_done(sd):
    """Sets the boot timestamps up to the units' load (the boot not finished) and early.service, active before an
    agent starts; returns the initrd's start (µs of CLOCK_MONOTONIC) that the other times count from."""
    now_us = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    t0 = now_us - 10_000_000  # the boot started 10 s ago (on this clock, kernel start is long before)
    for key, v in (("InitRD", t0), ("Userspace", t0 + 2_000_000), ("GeneratorsStart", t0 + 2_100_000),
                   ("GeneratorsFinish", t0 + 2_150_000), ("UnitsLoadStart", t0 + 2_150_000),
                   ("UnitsLoadFinish", t0 + 2_400_000)):
        sd.cmd("set %sTimestampMonotonic %d" % (key, v))
    # Done before the agent starts: only the unit list tells.
    sd.cmd("unit early.service active running %d %d 0" % (t0 + 2_500_000, t0 + 2_800_000))
    return t0


def spans_by_name(h, mid):
    return {s["name"]: s for s in h.api.spans(mid).get("spans") or []}


def main():
    agent = skip_without_agent_systemd()
    with Harness("agent-systemd") as h:
        mid = "sd-1"
        h.register(mid)
        sd, env = start_fake_systemd(h)
        t0 = boot_half_done(sd)

        a = h.spawn([agent, "--mode=service", "--transport=unix:" + h.guest_socket(mid),
                     "--notify-socket=" + h.path("notify.sock"), "--traceparent-file=",
                     "--ready=target:app", "--systemd-units=*.service,app.target", "--no-journal"],
                    "agent-%s.log" % mid, env=env)
        h.wait_connected(mid)

        def has_spans(names):
            def pred(m):
                got = spans_by_name(h, mid)
                return all(n in got for n in names)
            return pred

        early = ["systemd.kernel", "systemd.initrd", "systemd.generators", "systemd.units-load", "unit:early.service"]
        h.wait_machine(mid, has_spans(early), "the boot phases so far and the early unit are spans")
        got = spans_by_name(h, mid)
        check("systemd.userspace" not in got, "no userspace phase before the boot finished", sorted(got))
        m = h.api.machine(mid)
        check(m["state"] != "ready", "not ready before app.target is active", m["state"])

        # Later: units change, one fails, one is outside systemd_units, the boot finishes, the target is reached.
        sd.cmd("unit late.service active running %d %d 0" % (t0 + 3_000_000, t0 + 3_250_000))
        sd.cmd("unit broken.service failed failed %d 0 %d" % (t0 + 3_100_000, t0 + 3_300_000))
        sd.cmd("unit other.socket active listening %d %d 0" % (t0 + 3_000_000, t0 + 3_010_000))
        sd.cmd("job needs-broken.service dependency")  # its start job failed: broken.service is required
        sd.cmd("job late.service done")
        sd.cmd("finish %d" % (t0 + 4_000_000))
        sd.cmd("unit app.target active active %d %d 0" % (t0 + 3_900_000, t0 + 3_900_000))

        r = h.api.ready(mid, 20)
        m = h.wait_machine(mid, lambda m: m["state"] == "ready", "the machine is ready")
        ready = m["boot"]["ready"]
        check(ready.get("source") == "systemd" and ready.get("detail") == "target:app.target",
              "ready comes from systemd, app.target reached", ready, r)

        final = early + ["systemd.userspace", "unit:late.service", "unit:broken.service", "unit:app.target",
                         "unit:needs-broken.service"]
        h.wait_machine(mid, has_spans(final), "the later units and the userspace phase are spans")
        got = spans_by_name(h, mid)
        check("unit:other.socket" not in got, "a unit outside systemd_units is not reported", sorted(got))

        def length(name):
            s = got[name]
            return s["end_unix_ns"] - s["start_unix_ns"]

        check(length("unit:late.service") == 250_000_000, "late.service's span is ActiveEnter − InactiveExit",
              got["unit:late.service"])
        check(length("unit:early.service") == 300_000_000, "early.service's span is ActiveEnter − InactiveExit",
              got["unit:early.service"])
        check(length("systemd.userspace") == 2_000_000_000, "userspace is Finish − Userspace",
              got["systemd.userspace"])
        check(length("systemd.initrd") == 2_000_000_000, "initrd is Userspace − InitRD", got["systemd.initrd"])
        check(got["unit:late.service"]["start_unix_ns"] - got["systemd.userspace"]["start_unix_ns"] == 1_000_000_000,
              "units and boot phases are on one clock", got["unit:late.service"], got["systemd.userspace"])
        # Ready at systemd's moment (app.target's ActiveEnter), not when the agent learnt it.
        doc = h.api.spans(mid)
        userspace = [s for s in doc["spans"] if s["name"] == "systemd.userspace"][0]
        ready_at = [t for n, t in milestone_events(doc) if n == "ready"]
        check(ready_at == [userspace["start_unix_ns"] + 1_900_000_000], "ready is app.target's ActiveEnter",
              ready_at, userspace)
        b = got["unit:broken.service"]
        check(b["status"] == "error" and "broken.service failed" in (b.get("status_message") or ""),
              "a failed unit is an error span with its message", b)
        check(length("unit:broken.service") == 200_000_000, "the failure spans InactiveExit → InactiveEnter", b)
        events = [(e["name"], (e.get("attributes") or {}).get("unit")) for e in
                  h.api.spans(mid)["spans"][0].get("events") or []]
        for u in ("broken.service", "needs-broken.service"):
            check(("unit.failed", u) in events, "a unit.failed event of the boot names %s" % u, events)
        check(not any(u == "late.service" for n, u in events if n == "unit.failed"), "no event for an activation",
              events)
        d = got["unit:needs-broken.service"]
        check(d["status"] == "error" and "a unit it requires failed" in (d.get("status_message") or ""),
              "a start job failed by a dependency (JobRemoved) is an error span", d)
        check(got["unit:late.service"]["status"] != "error", "an activation is not an error",
              got["unit:late.service"])
        check((got["unit:late.service"].get("attributes") or {}).get("unit") == "late.service",
              "a unit span carries unit=NAME", got["unit:late.service"])

        # The same state again (a repeated signal) is not reported twice.
        sd.cmd("unit late.service active running %d %d 0" % (t0 + 3_000_000, t0 + 3_250_000))
        sd.cmd("unit late2.service active running %d %d 0" % (t0 + 5_000_000, t0 + 5_100_000))
        h.wait_machine(mid, has_spans(["unit:late2.service"]), "a unit after boot is reported")
        names = [s["name"] for s in h.api.spans(mid)["spans"]]
        check(names.count("unit:late.service") == 1,
              "a repeated signal makes no second span, a job done none either", names)
        h.assert_tetherd_alive()
        a.kill()
        log("tether-agent-systemd OK")


if __name__ == "__main__":
    run_test(main)
