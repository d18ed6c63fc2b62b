#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The boot trace: a machine registered with a traceparent boots an init-mode agent.

Proves: the spans API puts the boot in the registered trace (same trace id, root's parent = the registered
span id); the span tree has machine.boot with kernel (not in a container: here, in a pid namespace, the boot starts at
init.start), init and workload.start children in time order; the
TRACEPARENT handed to the guest (/run/tether/traceparent) joins the same trace under workload.start; log
lines are tagged with the trace id; `tether trace` prints a waterfall with those rows and the milestones.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, is_container_boot, log, run_test, wait_proc  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)


def main():
    # The traceparent arrives with the Welcome; the agent writes it to /run/tether/traceparent (inside the
    # agent's mount namespace) when it does. The workload waits for it, prints it, then becomes ready.
    script = r'''
i=0
while [ ! -s /run/tether/traceparent ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
echo "traceparent-file $(cat /run/tether/traceparent 2>/dev/null)"
echo "traceparent-env ${TRACEPARENT:-none}"
sleep 0.2
"$TETHER_AGENT" notify READY=1
sleep 0.3
'''
    with Harness("trace") as h:
        mid = "traced"
        h.register(mid, traceparent=TRACEPARENT, request_id="req-trace")
        agent = h.start_init_shell(mid, script)
        rc = wait_proc(agent, 45, "the agent exits")
        check(rc == 0, "the workload exits 0", rc)
        m = h.wait_exited(mid)
        check(m["boot"].get("trace_id") == TRACE_ID, "the boot's trace id is the registered one", m["boot"])

        doc = h.api.spans(mid)
        check(doc.get("trace_id") == TRACE_ID, "the spans API answers the registered trace id", doc.get("trace_id"))
        spans = doc["spans"]
        by_name = {}
        for s in spans:
            by_name.setdefault(s["name"], s)
        root = spans[0]
        check(root["name"] == "machine.boot", "the root span (first) is machine.boot", [s["name"] for s in spans])
        check(root.get("parent_span_id") == PARENT_ID, "the root's parent is the registered traceparent's span",
              root)
        # In a container (this test's pid namespace) the boot starts at init.start: no kernel span.
        container = is_container_boot(doc)
        children = ("init", "workload.start") if container else ("kernel", "init", "workload.start")
        if container:
            check("kernel" not in by_name, "a container boot has no kernel span", [s["name"] for s in spans])
            init_start = [e["time_unix_ns"] for e in root.get("events", []) if e["name"] == "init.start"]
            check(init_start and root["start_unix_ns"] == init_start[0], "a container boot starts at init.start",
                  root)
        for name in children:
            check(name in by_name, "there is a %s span" % name, [s["name"] for s in spans])
            s = by_name[name]
            check(s.get("parent_span_id") == root["span_id"], "%s is a child of machine.boot" % name, s)
            check(s["start_unix_ns"] <= s["end_unix_ns"], "%s ends after it starts" % name, s)
            check(s["start_unix_ns"] >= root["start_unix_ns"] and s["end_unix_ns"] <= root["end_unix_ns"],
                  "%s lies within machine.boot" % name, s, root)
            attrs = s.get("attributes") or {}
            check(attrs.get("tether.machine.id") == mid, "%s carries tether.machine.id" % name, s)
        i, w = by_name["init"], by_name["workload.start"]
        check(i["end_unix_ns"] <= w["start_unix_ns"] + 1000, "init and workload.start follow each other", i, w)
        if not container:
            k = by_name["kernel"]
            check(k["end_unix_ns"] <= i["start_unix_ns"] + 1000, "kernel and init follow each other", k, i)
        span_ids = [s["span_id"] for s in spans]
        check(len(span_ids) == len(set(span_ids)), "span ids are unique", span_ids)
        check("tether.clock.error_ns" in (root.get("attributes") or {}), "the root records the clock error bound",
              root)

        # The guest got a traceparent in the same trace, whose parent is workload.start.
        lines = [o["line"].rstrip("\n") for o in h.api.logs(mid, stream="stdout") if "line" in o]
        file_tp = next((x.split(" ", 1)[1] for x in lines if x.startswith("traceparent-file")), "")
        parts = file_tp.split("-")
        check(len(parts) == 4 and parts[1] == TRACE_ID and parts[2] == w["span_id"],
              "/run/tether/traceparent names the boot trace with workload.start as parent", lines, w)
        env_tp = next((x.split(" ", 1)[1] for x in lines if x.startswith("traceparent-env")), "none")
        if env_tp != "none":
            check(env_tp == file_tp, "a TRACEPARENT in the workload's environment is the same", env_tp, file_tp)
        for o in h.api.logs(mid):
            if "line" in o:
                check(o.get("trace_id") == TRACE_ID and o.get("span_id") in span_ids,
                      "log lines are tagged with the trace and one of its spans", o)

        # The CLI waterfall.
        _, out, err = h.cli("trace", mid, check_rc=0)
        log("tether trace:\n" + out)
        check(TRACE_ID in out, "the waterfall header names the trace id", out)
        rows = out.splitlines()
        for name in ("machine.boot",) + children:
            check(any(r.strip().startswith(name + " ") for r in rows), "the waterfall has a %s row" % name, out)
        for ms in ("init.start", "workload.exec", "ready"):
            check(ms in out, "the waterfall lists the milestone %s" % ms, out)

        _, out, _ = h.cli("trace", mid, json_out=True, check_rc=0)
        check(json.loads(out).get("trace_id") == TRACE_ID, "`tether --json trace` prints the spans JSON", out[:500])
        log("trace OK")


if __name__ == "__main__":
    run_test(main)
