#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Service mode: an agent under another init, driven by `tether-agent milestone` and `tether-agent notify`.

Proves: a registered machine becomes ready through `tether-agent notify READY=1`; `tether wait-ready` exits 0;
the milestone pushed by a guest script (with its attribute) shows in the API; the CLI's ls/get (human and
--json) agree with the API; `tether rm` deletes the machine.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, root_span, run_test, wait_proc  # noqa: E402


def main():
    with Harness("service") as h:
        mid = "svc-1"
        doc = h.register(mid, request_id="req-svc-1", attributes={"role": "web"})
        check(doc and doc.get("machine_id") == mid and doc.get("state") == "registered",
              "register answers the machine object in state registered", doc)

        notify = h.path("notify.sock")
        agent = h.start_service(mid, notify)
        h.wait_connected(mid)
        m = h.api.machine(mid)
        check(m["boot"].get("agent_mode") == "service", "the boot reports agent_mode service", m)
        check(m["state"] in ("booting", "registered"), "the machine is not ready before READY=1", m)

        agent_bin = h.agent()

        def agent_cmd(*args):
            p = subprocess.run([agent_bin] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=30)
            check(p.returncode == 0, "`tether-agent %s` exits 0" % " ".join(args),
                  "exit %d stderr %r" % (p.returncode, p.stderr[-2000:]))

        agent_cmd("milestone", "--socket", notify, "app.configured", "config=prod", "workers=4")

        # wait-ready is already waiting when READY=1 arrives.
        waiter = subprocess.Popen(h.cli_argv("wait-ready", mid, "--timeout", "30"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        agent_cmd("notify", "--socket", notify, "READY=1", "STATUS=serving")
        rc = wait_proc(waiter, 40, "`tether wait-ready` returns after READY=1")
        out = waiter.stdout.read().decode(errors="replace")
        check(rc == 0, "`tether wait-ready` exits 0 once ready", "exit %d, stdout %r, stderr %r" %
              (rc, out, waiter.stderr.read()))
        check(mid in out, "wait-ready names the machine", out)

        m = h.api.machine(mid)
        check(m["state"] == "ready", "machine state is ready", m)
        ready = m["boot"]["ready"]
        check(ready and ready.get("source") == "notify",
              "ready.source is 'notify' (tether-agent notify READY=1)", ready)
        check(m.get("request_id") == "req-svc-1", "the request id is kept", m)
        check(m.get("node_id") == "itest-node", "the node id is the one tetherd was given", m)

        # The guest script's milestone is a span event of the boot, with its attributes.
        spans = h.api.spans(mid)
        events = root_span(spans).get("events") or []
        names = [e.get("name") for e in events]
        check("app.configured" in names, "the milestone pushed with `tether-agent milestone` is in the trace",
              names)
        ev = events[names.index("app.configured")]
        attrs = ev.get("attributes") or {}
        check(attrs.get("config") == "prod" and attrs.get("workers") == "4",
              "the milestone's attributes are kept", ev)
        check("ready" in names, "the ready milestone is in the trace", names)
        check(names.index("app.configured") < names.index("ready"), "app.configured comes before ready", names)

        # The same through the event stream.
        evs = h.api.events(mid)
        transitions = [e.get("transition") for e in evs]
        for t in ("registered", "connected", "ready"):
            check(t in transitions, "the events stream has a '%s' transition" % t, transitions)
        for e in evs:
            check(e.get("machine_id") == mid and e.get("node_id") == "itest-node",
                  "every event names the machine and the node", e)

        # CLI: --json output parses and agrees with the API.
        _, out, _ = h.cli("ls", json_out=True, check_rc=0)
        ls = json.loads(out)
        ids = [x.get("machine_id") for x in ls.get("machines", [])]
        check(ids == [mid], "`tether --json ls` lists exactly the registered machine", ls)

        _, out, _ = h.cli("get", mid, json_out=True, check_rc=0)
        got = json.loads(out)
        check(got.get("machine_id") == mid and got.get("state") == "ready", "`tether --json get` shows it ready",
              got)

        _, out, _ = h.cli("ls", check_rc=0)
        check(mid in out and "ready" in out, "`tether ls` shows the machine and its state", out)
        _, out, _ = h.cli("get", mid, check_rc=0)
        check(mid in out, "`tether get` shows the machine", out)

        # wait-ready answers at once when already ready.
        h.cli("wait-ready", mid, "--timeout", "5", check_rc=0)

        rc, _, _ = h.cli("get", "no-such-machine")
        check(rc != 0, "`tether get` of an unknown machine fails", rc)

        h.cli("rm", mid, check_rc=0)
        status, _, _ = h.api.get("/v1/machines/" + mid)
        check(status == 404, "a deleted machine is gone (404)", status)
        h.assert_tetherd_alive()
        agent.kill()
        log("service mode OK")


if __name__ == "__main__":
    run_test(main)
