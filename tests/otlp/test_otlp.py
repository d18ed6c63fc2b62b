#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""tetherd's OTLP exporter against an independent receiver (receiver.js: the official OTLP definitions via
@opentelemetry/otlp-transformer, not tether's .proto files). One scenario per run (argv[1]):

  export        trace ids and parent links = the registered traceparent and the spans API; timestamps on the
                host clock (= the API's *_unix_ns); log records carry trace/span ids of exported spans, log.iostream,
                host time; resource attributes; lifecycle events as log records; gzip + protobuf; --otlp-header
  retry-503     503 then 200: retried, nothing lost
  retry-after   429 with Retry-After: 2 → the retry is not sent before 2 s passed
  reject-400    400: not retried, items counted as dropped "rejected"
  partial       200 with partial_success: counted as "partial_success" drops, not retried
  down-up       receiver down: requests spooled; tetherd restarted while down; receiver up → everything delivered
  json-file     no endpoint: OTLP/JSON lines in <state-dir>/otlp.jsonl decode with the official definitions
  json-rotate   the file rotated many times during a burst: PATH.1 and PATH hold whole lines that decode, each within
                the bound, and together the latest lines without a gap; no disk space kept beyond what they hold.
                A quiet machine's items rotated away by the burst count in its export_dropped, every one; each
                boot's export_dropped is exactly what it wrote minus what the two files still hold of it
  burst-slow    a burst far larger than the in-memory queue against a slow but healthy receiver: the queue
                spills to the spool, every line is delivered once and in order, nothing is dropped
  spool-full    receiver down, small queue and spool: drops counted as spool_full only once both are full; when
                the receiver is back the rest is delivered, in order
  same-times    every exported timestamp of a boot equals the API's, to the nanosecond: log records (also those
                stored before the boot's clock mapping was fixed), spans and their events, lifecycle events. One
                boot of tether-fake-agent, which sends logs before it answers any clock probe, and one of the real
                agent, whose workload logs at once
  same-times-file  the same through the OTLP/JSON file
  metrics       the real agent in service mode samples every second: each sample's metrics reach the receiver
                (/v1/metrics, decoded with the official definitions) under the machine's resource, with the values
                of GET /v1/machines/ID/metrics; tetherd's own fleet metrics under its resource match /metrics; a
                metrics request answered 400 is counted in tether_export_dropped_items_total{signal="metrics"},
                a partial success's rejected data points too
  metrics-file  the same metrics through the OTLP/JSON file
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from test_samples import BURN  # noqa: E402
from tetherlib import Harness, binary, check, check_exported_times, free_tcp_port, numbered_lines_script, otlp_attrs, otlp_body, otlp_settled_bodies, log, missing, run_test, wait_proc  # noqa: E402,E501

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)

WORKLOAD = r'''
echo "hello from stdout"
echo "oops on stderr" >&2
sleep 0.2
"$TETHER_AGENT" notify READY=1
echo "after ready"
sleep 0.3
'''


def need_node():
    node = shutil.which("node")
    mods = os.environ.get("OTLP_NODE_MODULES", "")
    if not node or not os.path.isdir(os.path.join(mods, "@opentelemetry", "otlp-transformer")):
        missing("node or the npm packages are missing (the build's target otlp-npm-ci installs them into "
                "BUILD/tests/otlp/node_modules, which OTLP_NODE_MODULES names)")
    return node


class Receiver:
    def __init__(self, h, node, port, delay_ms=0):
        self.h, self.node, self.port, self.proc = h, node, port, None
        self.delay_ms = delay_ms
        self.base = "http://127.0.0.1:%d" % port
        self.kept = []  # requests recorded by earlier receiver processes

    def start(self):
        argv = [self.node, os.path.join(HERE, "receiver.js"), str(self.port)]
        if self.delay_ms:
            argv += ["--delay-ms", str(self.delay_ms)]
        self.proc = self.h.spawn(argv, "receiver.log", cwd=HERE)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.requests()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the receiver did not start")

    def stop(self):
        self.kept += self.requests()
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.h.children.remove(self.proc)
        self.proc = None

    def _call(self, path, body=None):
        req = urllib.request.Request(self.base + path, data=None if body is None else json.dumps(body).encode(),
                                     method="GET" if body is None else "POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def script(self, traces=(), logs=(), metrics=()):
        self._call("/control/script", {"traces": list(traces), "logs": list(logs), "metrics": list(metrics)})

    def requests(self):
        return self._call("/control/requests")

    def summary(self):
        return self._call("/control/summary")

    def all_requests(self):
        return self.kept + (self.requests() if self.proc else [])


def spans_of(reqs, status=200):
    out = []
    for r in reqs:
        if r["signal"] == "traces" and r["status"] == status and r["body"]:
            for rs in r["body"].get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append((rs.get("resource", {}), s))
    return out


def logs_of(reqs, status=200):
    out = []
    for r in reqs:
        if r["signal"] == "logs" and r["status"] == status and r["body"]:
            for rl in r["body"].get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for rec in sl.get("logRecords", []):
                        out.append((rl.get("resource", {}), rec))
    return out


def metrics_of(bodies):
    """(resource attributes, metric) of decoded metrics requests (receiver.js' decoding or OTLP/JSON)."""
    out = []
    for b in bodies:
        for rm in b.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    out.append((otlp_attrs(rm.get("resource", {})), m))
    return out


def metric_points(m):
    """A metric's data points and its kind."""
    for kind in ("gauge", "sum", "histogram"):
        if kind in m:
            return kind, m[kind].get("dataPoints", [])
    return None, []


def point_value(p):
    return float(p["asDouble"]) if "asDouble" in p else int(p.get("asInt", 0))


def check_sample_metrics(h, mid, bodies, reg):
    """Every metric of the latest API sample of mid has a point at its receive time with its value."""
    # The newest sample of the API's history that was exported (a newer one may be on its way meanwhile).
    doc = h.api.get_ok("/v1/machines/%s/metrics" % mid)
    times = {p.get("timeUnixNano") for _, m in metrics_of(bodies) for p in metric_points(m)[1]}
    kept = [s for s in doc["history"] if str(s["time_unix_ns"]) in times]
    check(kept, "samples of the API's history were exported", [s["time_unix_ns"] for s in doc["history"]])
    latest = kept[-1]
    t = str(latest["time_unix_ns"])
    boot_id = h.api.machine(mid)["boot"]["boot_id"]
    got = {}
    for res, m in metrics_of(bodies):
        if res.get("tether.machine.id") != mid:
            continue
        check(res.get("service.name") == reg["service_name"] and res.get("tether.node.id") == "itest-node" and
              res.get("tether.request.id") == reg["request_id"] and res.get("tether.boot.id") == boot_id and
              res.get("env") == "qa", "guest metrics carry the machine's resource (the one of its spans and logs)",
              res)
        kind, pts = metric_points(m)
        for p in pts:
            if p.get("timeUnixNano") == t:
                got.setdefault(m["name"], (kind, m, []))[2].append(p)
    check(got, "the latest sample's metrics were exported", latest, sorted(got))

    def one(name, attr=None, value=None):
        check(name in got, "metric %s exported" % name, sorted(got))
        kind, m, pts = got[name]
        if attr:
            pts = [p for p in pts if otlp_attrs(p).get(attr) == value]
        check(len(pts) == 1, "one point of %s %s=%s" % (name, attr, value), got[name])
        return kind, m, pts[0]

    kind, m, p = one("system.cpu.time", "cpu.mode", "user")
    check(kind == "sum" and m["sum"].get("isMonotonic") is True and m["sum"].get("aggregationTemporality") == 2 and
          m.get("unit") == "s", "system.cpu.time is a monotonic cumulative sum in seconds", m)
    check(int(p["startTimeUnixNano"]) == latest["time_unix_ns"] - latest["uptime_ns"],
          "cumulative from the guest's boot (receive time - uptime)", p, latest)
    modes = {"user": "user", "system": "system", "idle": "idle", "iowait": "iowait", "irq": "interrupt",
             "softirq": "softirq", "steal": "steal", "nice": "nice"}
    for api_mode, otel_mode in modes.items():
        _, _, p = one("system.cpu.time", "cpu.mode", otel_mode)
        check(abs(point_value(p) - latest["cpu_ns"][api_mode] / 1e9) < 1e-6, "cpu.mode %s = the API's" % otel_mode,
              p, latest["cpu_ns"])
    mem = latest["memory"]
    check(point_value(one("system.memory.usage", "system.memory.state", "used")[2]) == mem["used_bytes"],
          "system.memory.usage{used} = the API's used_bytes", got["system.memory.usage"], mem)
    check(point_value(one("system.memory.usage", "system.memory.state", "free")[2]) == mem["free_bytes"],
          "system.memory.usage{free} = the API's free_bytes", got["system.memory.usage"], mem)
    check(point_value(one("system.memory.limit")[2]) == mem["total_bytes"], "system.memory.limit = total_bytes", mem)
    check(point_value(one("system.cpu.logical.count")[2]) == latest["cpus"], "system.cpu.logical.count = cpus", latest)
    kind, _, p = one("system.uptime")
    check(kind == "gauge" and abs(point_value(p) - latest["uptime_ns"] / 1e9) < 1e-6, "system.uptime = uptime", p)
    check(abs(point_value(one("system.cpu.load_average.1m")[2]) - latest["load"][0]) < 1e-9, "load 1m", latest)
    for res_name, pv in latest["pressure"].items():
        _, _, p = one("tether.guest.pressure.some_ratio", "resource", res_name)
        check(abs(point_value(p) - pv["some_avg10_pct"] / 100) < 1e-9, "pressure some ratio = the API's", p, pv)
    if latest.get("cgroup"):
        check(point_value(one("tether.guest.cgroup.memory.usage")[2]) == latest["cgroup"]["memory_current_bytes"],
              "cgroup memory = the API's", latest["cgroup"])
        check(point_value(one("tether.guest.cgroup.memory.oom_kill")[2]) == latest["cgroup"]["oom_kill"],
              "cgroup oom_kill = the API's", latest["cgroup"])
    # The burning workload shows: user CPU time grows from sample to sample.
    users = sorted((int(p["timeUnixNano"]), point_value(p)) for res, m in metrics_of(bodies)
                   if res.get("tether.machine.id") == mid and m["name"] == "system.cpu.time"
                   for p in m["sum"]["dataPoints"] if otlp_attrs(p).get("cpu.mode") == "user")
    vals = [v for _, v in users]
    check(len(vals) >= 2 and vals == sorted(vals) and vals[-1] > vals[0],
          "system.cpu.time{user} grows while the workload burns", users)
    log("sample at %s: %d metrics, %d points" % (t, len(got), sum(len(v[2]) for v in got.values())))


def fleet_counted_connect(bodies):
    """Whether tetherd's own metrics were exported once they counted a connection."""
    return any(res.get("service.name") == "tetherd" and m["name"] == "tether.machine.transitions" and
               any(otlp_attrs(p).get("tether.transition") == "connected" and point_value(p) >= 1
                   for p in m["sum"]["dataPoints"]) for res, m in metrics_of(bodies))


def check_fleet_metrics(h, bodies):
    """tetherd's own metrics: under its resource, counters equal to /metrics' (they only grow: at most)."""
    fleet = [(res, m) for res, m in metrics_of(bodies) if res.get("service.name") == "tetherd"]
    check(fleet, "tetherd's own metrics were exported", [r for r, _ in metrics_of(bodies)][:5])
    for res, _ in fleet:
        check(res.get("tether.node.id") == "itest-node" and "tether.machine.id" not in res,
              "fleet metrics are under tetherd's resource", res)
    text = metrics_text(h)
    prom = {}
    for line in text.splitlines():
        if line.startswith("tether_machine_transitions_total{"):
            prom[line.split('transition="')[1].split('"')[0]] = float(line.split()[-1])
    latest = {}
    for _, m in fleet:
        if m["name"] == "tether.machine.transitions":
            kind, pts = metric_points(m)
            check(kind == "sum" and m["sum"].get("isMonotonic") is True, "transitions: a monotonic sum", m)
            for p in pts:
                latest[otlp_attrs(p)["tether.transition"]] = max(
                    latest.get(otlp_attrs(p)["tether.transition"], 0), point_value(p))
    check(latest.get("connected", 0) >= 1, "the connected transition is counted", latest)
    for t, v in latest.items():
        check(t in prom and v <= prom[t], "transition %s: at most /metrics' count" % t, latest, prom)
    names = {m["name"] for _, m in fleet}
    for n in ("tether.export.items", "tether.export.dropped", "tether.resource_samples", "tether.machines",
              "tether.boot.stage.duration", "tether.export.time_since_success"):
        check(n in names, "fleet metric %s" % n, sorted(names))
    hist = [m for _, m in fleet if m["name"] == "tether.boot.stage.duration"][-1]
    for p in hist["histogram"]["dataPoints"]:
        check(len(p.get("bucketCounts", [])) == len(p.get("explicitBounds", [])) + 1 and
              sum(int(c) for c in p["bucketCounts"]) == int(p.get("count", 0)),
              "histogram buckets add up to the count", p)


def sample_machine(h, mid):
    reg = {"request_id": "req-met", "service_name": "svc-met"}
    h.register(mid, attributes={"env": "qa"}, **reg)
    # The samples-burn workload (tests/integration/test_samples.py): burns a CPU, holds 64 MiB.
    h.start_service(mid, h.path("notify.sock"), extra=["--sample-interval-ms=1000"],
                    command=[sys.executable, "-c", BURN])
    h.wait_connected(mid)
    return reg


def scenario_metrics(node):
    port = free_tcp_port()
    with harness("otlp-metrics", port, ["--otlp-metrics-interval-ms", "1000"]) as h:
        rx = Receiver(h, node, port)
        # The first metrics request is refused: its items are counted as dropped, never retried.
        rx.start()
        rx.script(metrics=[{"status": 400}, {"status": 200, "rejected": 2}])
        mid = "met-vm"
        reg = sample_machine(h, mid)

        def settled():
            reqs = [r for r in rx.requests() if r["signal"] == "metrics"]
            ok = [r["body"] for r in reqs if r["status"] == 200 and r["body"]]
            if len([1 for res, m in metrics_of(ok) if res.get("tether.machine.id") == mid and
                    m["name"] == "system.cpu.time"]) < 3:
                return None
            if not fleet_counted_connect(ok):
                return None
            return reqs
        reqs = wait_for("three samples' metrics and tetherd's own were delivered", settled, timeout=40)
        check(all(r["encoding"] == "gzip" and r["content_type"] == "application/x-protobuf" for r in reqs),
              "metrics requests are gzipped protobuf", [(r["encoding"], r["content_type"]) for r in reqs])
        # The API's latest sample may be newer than what was delivered so far: wait for its metrics too.
        t = str(h.api.get_ok("/v1/machines/%s/metrics" % mid)["latest"]["time_unix_ns"])
        bodies = wait_for("the latest sample's metrics were delivered", lambda: (
            lambda b: b if any(p.get("timeUnixNano") == t for _, m in metrics_of(b) for p in metric_points(m)[1])
            else None)([r["body"] for r in rx.requests() if r["signal"] == "metrics" and r["status"] == 200
                        and r["body"]]))
        check_sample_metrics(h, mid, bodies, reg)
        check_fleet_metrics(h, bodies)

        rejected = [r for r in reqs if r["status"] == 400]
        check(len(rejected) == 1, "one metrics request was answered 400", [r["status"] for r in reqs])
        n_rejected = len(metrics_of([rejected[0]["body"]]))
        st = export_stats(h)
        check(st["dropped"]["metrics"]["rejected"] == n_rejected,
              "the refused request's metrics are counted as dropped (rejected)", st, n_rejected)
        check_dropped(h, "metrics", "rejected", n_rejected)
        # The second was accepted with a partial_success of 2 data points: counted, not retried.
        partial = [i for i, r in enumerate(reqs) if r.get("rejected")]
        check(len(partial) == 1 and st["dropped"]["metrics"].get("partial_success") == 2,
              "a partial success counts its rejected points", st["dropped"]["metrics"], partial)
        check(not any(r["body"] == reqs[partial[0]]["body"] for r in reqs[partial[0] + 1:]),
              "the partially accepted request is not sent again", [r["status"] for r in reqs])
        text = metrics_text(h)
        items = [l for l in text.splitlines() if l.startswith('tether_export_items_total{signal="metrics"}')]
        delivered = sum(len(metrics_of([r["body"]])) for r in rx.requests()
                        if r["signal"] == "metrics" and r["status"] == 200)
        check(items and float(items[0].split()[-1]) >= 1, "/metrics counts the delivered metrics", items, delivered)
        log("metrics: %d requests, %d delivered metrics, %d refused" % (len(rx.requests()), delivered, n_rejected))


def scenario_metrics_file(node):
    with Harness("otlp-metrics-file", tetherd_args=["--otlp-batch-delay-ms", "100",
                                                    "--otlp-metrics-interval-ms", "1000"]) as h:
        mid = "met-file"
        reg = sample_machine(h, mid)
        path = os.path.join(h.state_dir, "otlp.jsonl")

        def decoded():
            if not os.path.exists(path):
                return None
            out = subprocess.run([node, os.path.join(HERE, "receiver.js"), "--json-check", path], cwd=HERE,
                                 capture_output=True, text=True, timeout=30)
            check(out.returncode == 0, "every line decodes with the official OTLP definitions", out.stderr[-2000:])
            summary = json.loads(out.stdout)
            bodies = [o["decoded"] for o in summary["objects"] if o["signal"] == "metrics"]
            t = str(h.api.get_ok("/v1/machines/%s/metrics" % mid)["latest"]["time_unix_ns"])
            if not any(p.get("timeUnixNano") == t for _, m in metrics_of(bodies) for p in metric_points(m)[1]):
                return None
            if not fleet_counted_connect(bodies):
                return None
            if len([1 for res, m in metrics_of(bodies) if res.get("tether.machine.id") == mid and
                    m["name"] == "system.cpu.time"]) < 2:
                return None
            return summary, bodies
        summary, bodies = wait_for("the file holds the latest sample's metrics and tetherd's own", decoded,
                                   timeout=40)
        check(summary["metrics"] > 0 and summary["data_points"] > summary["metrics"],
              "metrics and data points in the file", {k: v for k, v in summary.items() if k != "objects"})
        # The file itself: OTLP/JSON as written (64-bit integers as strings, enums as integers).
        with open(path) as f:
            raw = [json.loads(l) for l in f if l.strip()]
        ms = [m for o in raw for rm in o.get("resourceMetrics", []) for sm in rm["scopeMetrics"] for m in sm["metrics"]]
        cpu = [m for m in ms if m["name"] == "system.cpu.time"][0]
        check(cpu["sum"]["aggregationTemporality"] == 2 and cpu["sum"]["isMonotonic"] is True and
              isinstance(cpu["sum"]["dataPoints"][0]["timeUnixNano"], str), "OTLP/JSON of a sum", cpu)
        check_sample_metrics(h, mid, bodies, reg)
        check_fleet_metrics(h, bodies)


def wait_for(what, pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    check(False, what)


def export_stats(h):
    """Stats.export as tetherd exposes it: /v1/stats "export", else /metrics. None when neither shows it."""
    status, doc, _ = h.api.get("/v1/stats")
    if status == 200 and isinstance(doc, dict) and isinstance(doc.get("export"), dict):
        return doc["export"]
    return None


def metrics_text(h):
    status, _, raw = h.api.get("/metrics")
    return raw.decode(errors="replace") if status == 200 and isinstance(raw, (bytes, bytearray)) else \
        (raw if status == 200 and isinstance(raw, str) else None)


def check_dropped(h, signal, reason, expect_at_least):
    st = export_stats(h)
    check(st is not None, "/v1/stats has the export counters")
    n = st.get("dropped", {}).get(signal, {}).get(reason, 0)
    check(n >= expect_at_least, "stats count %s %s drops" % (signal, reason), st)
    text = metrics_text(h)
    check(text is not None, "/metrics answers")
    lines = [l for l in text.splitlines() if l.startswith("tether_export_dropped") and 'reason="%s"' % reason in l
             and 'signal="%s"' % signal in l]
    check(any(float(l.split()[-1]) >= expect_at_least for l in lines), "/metrics counts %s %s drops" % (signal, reason),
          lines)


def boot_machine(h, mid, tetherd_wait=True):
    agent = h.start_init_shell(mid, WORKLOAD)
    rc = wait_proc(agent, 45, "the agent exits")
    check(rc == 0, "the workload exits 0", rc)
    return h.wait_exited(mid)


def harness(name, port, extra=()):
    args = ["--otlp-endpoint", "http://127.0.0.1:%d" % port, "--otlp-batch-delay-ms", "100",
            "--otlp-retry-max-ms", "1000"] + list(extra)
    return Harness(name, tetherd_args=args)


def scenario_export(node):
    port = free_tcp_port()
    with harness("otlp-export", port, ["--otlp-header", "Authorization=Bearer sesame"]) as h:
        rx = Receiver(h, node, port)
        rx.start()
        mid = "otlp-vm"
        h.register(mid, traceparent=TRACEPARENT, request_id="req-otlp", service_name="svc-otlp",
                   attributes={"env": "staging", "service.name": "not-this"})
        t0 = time.time_ns()
        boot_machine(h, mid)
        t1 = time.time_ns()
        api_spans = h.api.spans(mid)["spans"]
        api_names = sorted(s["name"] for s in api_spans)
        got = wait_for("every stitched span is exported", lambda: (
            spans_of(rx.requests()) if sorted(s["name"] for _, s in spans_of(rx.requests())) == api_names else None))
        reqs = rx.requests()
        check(all(r["encoding"] == "gzip" and r["content_type"] == "application/x-protobuf" for r in reqs),
              "requests are gzipped protobuf", [(r["encoding"], r["content_type"]) for r in reqs])
        check(all(r["authorization"] == "Bearer sesame" for r in reqs), "--otlp-header is sent",
              [r["authorization"] for r in reqs])
        ids = [s["spanId"] for _, s in got]
        check(len(ids) == len(set(ids)), "each span is exported once", ids)
        by_id = {s["span_id"]: s for s in api_spans}
        for res, s in got:
            check(s["traceId"] == TRACE_ID, "span trace id is the registered one", s)
            a = by_id.get(s["spanId"])
            check(a is not None, "exported span ids are the API's", s, list(by_id))
            check(s.get("parentSpanId", "") == (a.get("parent_span_id") or ""), "parent links match the API", s, a)
            check(s["name"] == a["name"], "names match", s, a)
            start, end = int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])
            check(t0 - 10**9 * 60 < start <= end <= t1 + 10**9, "span times are host wall-clock times", s)
            check(abs(start - a["start_unix_ns"]) < 100 * 10**6, "start time = the API's start_unix_ns", s, a)
            ra = otlp_attrs(res)
            check(ra.get("service.name") == "svc-otlp" and ra.get("tether.machine.id") == mid and
                  ra.get("host.id") == mid and ra.get("tether.node.id") == "itest-node" and
                  ra.get("tether.request.id") == "req-otlp" and ra.get("env") == "staging",
                  "resource attributes (registration attributes too, the fixed keys win)", ra)
            check("tether.transition" in otlp_attrs(s), "spans carry tether.transition", s)
        root = [s for _, s in got if s["name"] == "machine.boot"][0]
        check(root.get("parentSpanId") == PARENT_ID, "the root's parent is the registered span", root)

        recs = wait_for("log lines and lifecycle events are exported", lambda: (
            logs_of(rx.requests()) if any(otlp_body(r) == "after ready" for _, r in logs_of(rx.requests())) and
            any(otlp_attrs(r).get("event.name") == "tether.machine.exited" for _, r in logs_of(rx.requests()))
            else None))
        lines = [r for _, r in recs if otlp_body(r) in ("hello from stdout", "oops on stderr", "after ready")]
        check(len(lines) == 3, "each workload line is one log record, once", [otlp_body(r) for _, r in recs])
        span_ids = set(ids)
        for r in lines:
            a = otlp_attrs(r)
            check(r.get("traceId") == TRACE_ID and r.get("spanId") in span_ids,
                  "log records carry the trace id and the id of an exported span", r)
            check(a.get("log.iostream") == ("stderr" if "stderr" in otlp_body(r) else "stdout"), "log.iostream", r)
            check(t0 - 60 * 10**9 < int(r["timeUnixNano"]) <= t1 and int(r["observedTimeUnixNano"]) >= t0,
                  "log times are host times", r)
        api_logs = h.api.logs(mid)
        api_t = {o["line"]: o["time_unix_ns"] for o in api_logs if "line" in o}
        for r in lines:
            check(abs(int(r["timeUnixNano"]) - api_t[otlp_body(r)]) < 100 * 10**6,
                  "log time = the API's time_unix_ns", r, api_t)
        events = {otlp_attrs(r).get("event.name") for _, r in recs}
        for ev in ("tether.machine.registered", "tether.machine.booting", "tether.machine.ready",
                   "tether.machine.exited"):
            check(ev in events, "lifecycle event %s exported" % ev, sorted(e for e in events if e))
        for _, r in recs:
            name = otlp_attrs(r).get("event.name")
            if name:
                # LogRecord.event_name (field 12), decoded by an independent definition that knows it.
                check(r.get("eventName") == name, "lifecycle events carry LogRecord.event_name", r)
            else:
                check(not r.get("eventName"), "log lines carry no event_name", r)
        for res, r in recs:
            if otlp_attrs(r).get("event.name") == "tether.machine.ready":
                check(r.get("traceId") == TRACE_ID and otlp_attrs(res).get("tether.machine.id") == mid,
                      "events carry the machine's trace and ids", r)


def scenario_retry_503(node):
    port = free_tcp_port()
    with harness("otlp-503", port) as h:
        rx = Receiver(h, node, port)
        rx.start()
        rx.script(traces=[{"status": 503}, {"status": 503}], logs=[{"status": 503}])
        mid = "vm503"
        h.register(mid)
        boot_machine(h, mid)
        n_api = len(h.api.spans(mid)["spans"])
        wait_for("spans delivered after two 503s", lambda: len(spans_of(rx.requests())) >= n_api)
        reqs = rx.requests()
        t503 = [r for r in reqs if r["signal"] == "traces" and r["status"] == 503]
        check(len(t503) == 2, "two trace requests were answered 503", [(r["signal"], r["status"]) for r in reqs])
        names = [s["name"] for _, s in spans_of(reqs)]
        check(len(names) == n_api and len(set(s["spanId"] for _, s in spans_of(reqs))) == n_api,
              "nothing lost, nothing duplicated", names)
        wait_for("log lines delivered after a 503",
                 lambda: any(otlp_body(r) == "after ready" for _, r in logs_of(rx.requests())))


def scenario_retry_after(node):
    port = free_tcp_port()
    with harness("otlp-429", port) as h:
        rx = Receiver(h, node, port)
        rx.start()
        rx.script(traces=[{"status": 429, "retry_after": "2"}])
        mid = "vm429"
        h.register(mid)
        boot_machine(h, mid)
        wait_for("spans delivered after 429", lambda: spans_of(rx.requests()))
        reqs = [r for r in rx.requests() if r["signal"] == "traces"]
        first = [r for r in reqs if r["status"] == 429][0]
        retry = [r for r in reqs if r["time_ms"] > first["time_ms"]][0]
        check(retry["time_ms"] - first["time_ms"] >= 2000, "the retry waits for Retry-After (2 s)",
              [(r["status"], r["time_ms"]) for r in reqs])


def scenario_reject_400(node):
    port = free_tcp_port()
    with harness("otlp-400", port) as h:
        rx = Receiver(h, node, port)
        rx.start()
        rx.script(traces=[{"status": 400}])
        mid = "vm400"
        h.register(mid)
        boot_machine(h, mid)
        time.sleep(2.5)  # long enough for any (wrong) retry: backoff is at most 1 s here
        reqs = [r for r in rx.requests() if r["signal"] == "traces"]
        rejected = [r for r in reqs if r["status"] == 400]
        check(len(rejected) == 1, "one trace request answered 400", [(r["status"]) for r in reqs])
        rej_ids = {s["spanId"] for _, s in spans_of(reqs, 400)}
        ok_ids = {s["spanId"] for _, s in spans_of(reqs, 200)}
        check(rej_ids and not (rej_ids & ok_ids), "the rejected spans are not sent again", rej_ids, ok_ids)
        check_dropped(h, "traces", "rejected", len(rej_ids))


def scenario_partial(node):
    port = free_tcp_port()
    with harness("otlp-partial", port) as h:
        rx = Receiver(h, node, port)
        rx.start()
        rx.script(logs=[{"status": 200, "rejected": 1}])
        mid = "vmpartial"
        h.register(mid)
        boot_machine(h, mid)
        wait_for("logs delivered", lambda: any(otlp_body(r) == "after ready" for _, r in logs_of(rx.requests())))
        time.sleep(1.5)
        reqs = [r for r in rx.requests() if r["signal"] == "logs"]
        first_ids = {json.dumps(rec, sort_keys=True) for _, rec in logs_of(reqs[:1])}
        later = {json.dumps(rec, sort_keys=True) for _, rec in logs_of(reqs[1:])}
        check(not (first_ids & later), "a partially successful request is not retried")
        check_dropped(h, "logs", "partial_success", 1)


def scenario_down_up(node):
    port = free_tcp_port()
    with harness("otlp-down", port) as h:
        rx = Receiver(h, node, port)  # not started: the backend is down
        mid = "vmdown"
        h.register(mid)
        boot_machine(h, mid)
        n_api = len(h.api.spans(mid)["spans"])
        spool = os.path.join(h.state_dir, "otlp-spool")
        wait_for("requests are spooled while the backend is down",
                 lambda: os.path.isdir(spool) and any(f.endswith(".otlp") for f in os.listdir(spool)))
        # Restart tetherd while the backend is still down: the spool survives it.
        h.kill_tetherd(signal_term())
        files = sorted(f for f in os.listdir(spool) if f.endswith(".otlp"))
        check(any("-traces-" in f for f in files) and any("-logs-" in f for f in files),
              "the spool holds traces and logs after shutdown", files)
        h.start_tetherd()
        rx.start()
        wait_for("spooled spans delivered once the backend is up", lambda: len(spans_of(rx.requests())) >= n_api,
                 timeout=40)
        wait_for("spooled log lines delivered",
                 lambda: any(otlp_body(r) == "after ready" for _, r in logs_of(rx.requests())), timeout=40)
        ids = [s["spanId"] for _, s in spans_of(rx.requests())]
        check(len(set(ids)) == n_api, "every span delivered", ids)
        wait_for("the spool drains", lambda: not any(f.endswith(".otlp") for f in os.listdir(spool)), timeout=20)


def signal_term():
    import signal
    return signal.SIGTERM


def scenario_json_file(node):
    with Harness("otlp-json", tetherd_args=["--otlp-batch-delay-ms", "100"]) as h:
        mid = "vmjson"
        h.register(mid, traceparent=TRACEPARENT)
        boot_machine(h, mid)
        path = os.path.join(h.state_dir, "otlp.jsonl")
        n_api = len(h.api.spans(mid)["spans"])

        def count():
            if not os.path.exists(path):
                return None
            with open(path) as f:
                lines = [json.loads(l) for l in f if l.strip()]
            n = sum(len(ss.get("spans", [])) for o in lines for rs in o.get("resourceSpans", [])
                    for ss in rs.get("scopeSpans", []))
            return lines if n >= n_api else None
        lines = wait_for("the JSON file holds every span", count)
        for o in lines:
            check(set(o) <= {"resourceSpans", "resourceLogs", "resourceMetrics"} and len(o) == 1, "one request per line", o)
        spans = [s for o in lines for rs in o.get("resourceSpans", []) for ss in rs["scopeSpans"] for s in ss["spans"]]
        for s in spans:
            check(s["traceId"] == TRACE_ID and len(s["spanId"]) == 16, "hex ids", s)
            check(isinstance(s["startTimeUnixNano"], str) and s["startTimeUnixNano"].isdigit(),
                  "64-bit integers as strings", s)
            check(isinstance(s.get("kind"), int), "enums as integers", s)
        out = subprocess.run([node, os.path.join(HERE, "receiver.js"), "--json-check", path], cwd=HERE,
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "every line decodes with the official OTLP definitions", out.stderr[-2000:])
        summary = json.loads(out.stdout)
        check(summary["spans"] >= n_api and summary["log_records"] >= 3, "spans and log records survive", summary)
        n_events = 0
        for o in summary["objects"]:
            for rl in o["decoded"].get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for rec in sl.get("logRecords", []):
                        name = otlp_attrs(rec).get("event.name")
                        check(rec.get("eventName") == name if name else not rec.get("eventName"),
                              "eventName survives the JSON file", rec)
                        n_events += bool(name)
        check(n_events >= 3, "lifecycle events in the JSON file", n_events)


def jsonl_records(path):
    """The log records of an OTLP/JSON lines file, in order; checks that every line is one whole request."""
    out = []
    with open(path) as f:
        for line in f:
            check(line.endswith("\n"), "whole lines only", line[-80:])
            o = json.loads(line)
            check(set(o) <= {"resourceSpans", "resourceLogs", "resourceMetrics"} and len(o) == 1, "one request per line", o)
            out += [rec for rl in o.get("resourceLogs", []) for sl in rl["scopeLogs"] for rec in sl["logRecords"]]
    return out


def jsonl_items_by_boot(path):
    """Items (spans, log records, events) of an OTLP/JSON lines file per resource's (tether.machine.id,
    tether.boot.id), the boot id "" without one (boot ids alone may repeat: agents in containers share the host's)."""
    out = {}
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            for key, scopes, items in (("resourceSpans", "scopeSpans", "spans"),
                                       ("resourceLogs", "scopeLogs", "logRecords")):
                for r in o.get(key, []):
                    a = otlp_attrs(r.get("resource", {}))
                    boot = (a.get("tether.machine.id"), a.get("tether.boot.id", ""))
                    out[boot] = out.get(boot, 0) + sum(len(sc.get(items, [])) for sc in r[scopes])
    return out


def boot_items_written(h, mid):
    """What the exporter wrote under the resource of the machine's boot: its log lines, its spans (each once) and
    its lifecycle events but "registered" (before the boot: the resource of a machine without one)."""
    lines, _ = expected_logs(h, mid)
    spans = len(h.api.spans(mid)["spans"])
    events = [e for e in h.api.events(mid) if e.get("transition") not in ("milestone", "phase") and e.get("boot_id")]
    return lines + spans + len(events)


def scenario_json_rotate(node):
    n, n_quiet, bound = 3000, 200, 64 * 1024
    # Batches of 8K (an eighth of the queue): a line is far smaller than the bound, ~1.5 MB in all.
    # Traces and logs only (no guest samples, no fleet metrics): what each boot wrote is then known exactly.
    args = ["--otlp-batch-delay-ms", "100", "--otlp-queue-bytes", "64K", "--otlp-file-max-bytes", "64K",
            "--otlp-metrics-interval-ms", "0"]
    with Harness("otlp-rotate", tetherd_args=args) as h:
        # A quiet machine writes first (about 1.5 generations of its own), then the burst rotates every item of it
        # out of the two files.
        quiet = "vmquiet"
        h.register(quiet)
        agent = h.start_init_shell(quiet, numbered_lines_script("quiet", n_quiet, n_quiet),
                                   extra=["--sample-interval-ms=0"])
        check(wait_proc(agent, 30, "the quiet agent exits") == 0, "the quiet workload exits 0")
        h.wait_exited(quiet)
        q_stored, q_events = expected_logs(h, quiet)
        check(q_stored == n_quiet, "every quiet line stored", q_stored)
        q_spans = len(h.api.spans(quiet)["spans"])
        wait_for("the quiet machine's lines, events and spans written", lambda: (
            export_stats(h)["items"]["logs"] >= q_stored + q_events and
            export_stats(h)["items"]["traces"] >= q_spans))

        mid = "vmrotate"
        h.register(mid)
        agent = h.start_init_shell(mid, burst_script(n), extra=BURST_AGENT_ARGS + ("--sample-interval-ms=0",))
        check(wait_proc(agent, 60, "the agent exits") == 0, "the workload exits 0")
        h.wait_exited(mid)
        stored, events = expected_logs(h, mid)
        check(stored == n, "every line stored", stored)
        n_spans = q_spans + len(h.api.spans(mid)["spans"])
        wait_for("every line, event and span written", lambda: (
            export_stats(h)["items"]["logs"] >= q_stored + q_events + stored + events and
            export_stats(h)["items"]["traces"] >= n_spans))
        dropped = logs_dropped(h)
        check(set(dropped) <= {"rotated"}, "nothing dropped but what rotation deleted", dropped)
        st = export_stats(h)
        written = st["items"]["logs"]
        rotated = st["dropped"]["logs"].get("rotated", 0) + st["dropped"]["traces"].get("rotated", 0)
        boots = {m: h.api.machine(m)["boot"] for m in (quiet, mid)}
        boot_written = {m: boot_items_written(h, m) for m in (quiet, mid)}
        # Shut down: the file is closed, its reserved space given back.
        check(h.kill_tetherd(signal_term()) == 0, "tetherd exits 0 on SIGTERM")
        path = os.path.join(h.state_dir, "otlp.jsonl")
        nums = []
        in_files = len(jsonl_records(path + ".1")) + len(jsonl_records(path))
        check(dropped.get("rotated", 0) == written - in_files,
              "what rotation deleted is counted: written %d, in the two files %d" % (written, in_files), dropped)

        # Per machine: what its boot wrote and the files no longer hold, exactly, in its export_dropped.
        kept = {}
        for p in (path + ".1", path):
            for boot, k in jsonl_items_by_boot(p).items():
                kept[boot] = kept.get(boot, 0) + k
        per_boot = {}
        for m, b in boots.items():
            per_boot[m] = boot_written[m] - kept.get((m, b["boot_id"]), 0)
            check(b["export_dropped"] == per_boot[m],
                  "%s: its items rotated away count in its export_dropped: wrote %d, %d still in the files" %
                  (m, boot_written[m], kept.get((m, b["boot_id"]), 0)), b["export_dropped"])
        check(kept.get((quiet, boots[quiet]["boot_id"]), 0) == 0 and boots[quiet]["export_dropped"] == boot_written[quiet] > 0,
              "the burst rotated every item of the quiet machine away, and it is counted in full",
              boots[quiet]["export_dropped"], boot_written[quiet])
        check(boots[mid]["export_dropped"] > 0, "the burst's own rotated items count on its boot too")
        # Node-wide: the boots' items, and the two "registered" events written before either machine had a boot.
        no_boot = sum(k for (_, boot), k in kept.items() if boot == "")
        check(rotated == sum(per_boot.values()) + 2 - no_boot,
              "every rotated item counts node-wide, the boots' on their boots as well", rotated, per_boot, no_boot)
        log("json-rotate: quiet machine %d items rotated away of %d, burst %d of %d; node-wide %d" %
            (boots[quiet]["export_dropped"], boot_written[quiet], boots[mid]["export_dropped"], boot_written[mid],
             rotated))
        for p in (path + ".1", path):
            st = os.stat(p)
            check(0 < st.st_size <= bound, "%s within the bound" % p, st.st_size)
            # What the file system allocates for its size, no more: a block of slack for file systems that
            # allocate ahead of their own (st_blocks counts 512-byte units).
            check(st.st_blocks * 512 <= (st.st_size + 4095) // 4096 * 4096 + 4096,
                  "%s keeps no space beyond its data" % p, st.st_size, st.st_blocks)
            nums += [int(otlp_body(r).split()[1]) for r in jsonl_records(p)
                     if (otlp_body(r) or "").startswith("line ")]
            out = subprocess.run([node, os.path.join(HERE, "receiver.js"), "--json-check", p], cwd=HERE,
                                 capture_output=True, text=True, timeout=30)
            check(out.returncode == 0, "%s decodes with the official OTLP definitions" % p, out.stderr[-2000:])
        check(nums and nums[0] > 1, "older lines rotated away", nums[:3])
        check(nums == list(range(nums[0], n + 1)), "the two files end with the latest lines, none missing",
              [x for x in zip(nums, range(nums[0], n + 1)) if x[0] != x[1]][:5], len(nums))


def scenario_env(node):
    """The OpenTelemetry SDK environment configures the exporter; a traces endpoint alone exports traces only."""
    port = free_tcp_port()
    os.environ.update({
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:%d/v1/traces" % port,
        "OTEL_EXPORTER_OTLP_HEADERS": " Authorization = Bearer%20from-env ",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    })
    with Harness("otlp-env", tetherd_args=["--otlp-batch-delay-ms", "100"]) as h:
        rx = Receiver(h, node, port)
        rx.start()
        mid = "vmenv"
        h.register(mid)
        boot_machine(h, mid)
        n_api = len(h.api.spans(mid)["spans"])
        wait_for("spans exported to the environment's endpoint", lambda: len(spans_of(rx.requests())) >= n_api)
        time.sleep(0.5)  # any (wrong) log request would be out by now: the batch delay is 100 ms
        reqs = rx.requests()
        check(all(r["signal"] == "traces" for r in reqs), "no logs endpoint: no log requests",
              [r["signal"] for r in reqs])
        check(all(r["authorization"] == "Bearer from-env" and r["encoding"] == "identity" for r in reqs),
              "OTEL_EXPORTER_OTLP_HEADERS and _COMPRESSION apply", [(r["authorization"], r["encoding"]) for r in reqs])
        check(not os.path.exists(os.path.join(h.state_dir, "otlp.jsonl")), "no JSON file with an endpoint")
        st = export_stats(h)
        check(st and st["items"]["logs"] == 0 and sum(st["dropped"]["logs"].values()) == 0,
              "logs are not exported, and not counted as dropped either", st)

    # Another protocol is refused at startup, not silently ignored.
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    p = subprocess.run([binary("TETHERD"), "--no-vsock", "--help"], capture_output=True, text=True, timeout=30)
    check(p.returncode != 0 and "http/protobuf" in p.stderr, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is refused",
          p.returncode, p.stderr)


PAD = "x" * 80


def burst_script(n):
    """READY=1, then n numbered lines of 99 bytes as fast as the pipe takes them."""
    return '"$TETHER_AGENT" notify READY=1; seq -f "line %%06.0f %s" 1 %d' % (PAD, n)


def line_numbers(reqs):
    """Numbers of the burst lines in the order the receiver got them."""
    return [int(otlp_body(r).split()[1]) for _, r in logs_of(reqs) if (otlp_body(r) or "").startswith("line ")]


def logs_dropped(h):
    st = export_stats(h)
    return {k: v for k, v in st["dropped"]["logs"].items() if v}


def expected_logs(h, mid):
    """What the logs signal should carry: stored lines and lifecycle events (not milestones and phases)."""
    lines = [o for o in h.api.logs(mid) if "line" in o]
    events = [e for e in h.api.events(mid) if e.get("transition") not in ("milestone", "phase")]
    return len(lines), len(events)


# The burst's workload exits at once; its agent then waits for tetherd's acks before it exits too. 1 s (the
# default) is plenty for tetherd, not for tetherd under memcheck on a loaded machine: it stored 6 of 34 records
# by then once, and the rest of the burst was lost with the agent.
BURST_AGENT_ARGS = ("--flush-timeout-ms=30000",)


def scenario_burst_slow(node):
    n = 4000
    port = free_tcp_port()
    # 256K of queue (batches of 32K) and ~1 MB of protobuf: the queue overflows many times over.
    with harness("otlp-burst", port, ["--otlp-queue-bytes", "256K", "--otlp-compression", "none"]) as h:
        rx = Receiver(h, node, port, delay_ms=100)
        rx.start()
        mid = "vmburst"
        h.register(mid)
        agent = h.start_init_shell(mid, burst_script(n), extra=BURST_AGENT_ARGS)
        spool = os.path.join(h.state_dir, "otlp-spool")
        saw_spool = False
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            if os.path.isdir(spool) and any(f.endswith(".otlp") for f in os.listdir(spool)):
                saw_spool = True
            if agent.poll() is not None and rx.summary()["log_records"] >= n:
                break
            time.sleep(0.02)
        check(wait_proc(agent, 10, "the agent exits") == 0, "the workload exits 0")
        h.wait_exited(mid)
        stored, events = expected_logs(h, mid)
        check(stored == n, "every line stored (the agent dropped none)", stored)
        wait_for("every line and event delivered", lambda: rx.summary()["log_records"] >= stored + events, timeout=30)
        # The flood waits where it is stored already (the boot file) rather than being written to the spool too:
        # the boot holds more than its fair share of the pressed queue.
        st = export_stats(h)
        boot = h.api.machine(mid)["boot"]
        check(st["deferred"] > 0 and boot["export_deferred"] > 0, "the burst waited in the log store",
              st["deferred"], boot["export_deferred"])
        check(boot["export_dropped"] == 0, "nothing of the machine dropped", boot["export_dropped"])
        log("burst-slow: deferred %d times, spool used: %s" % (st["deferred"], saw_spool))
        nums = line_numbers(rx.requests())
        check(nums == list(range(1, n + 1)), "every line delivered once, in order",
              [x for x in zip(nums, range(1, n + 1)) if x[0] != x[1]][:5], len(nums))
        check(not logs_dropped(h), "nothing dropped", logs_dropped(h))
        wait_for("the spool drains", lambda: not any(f.endswith(".otlp") for f in os.listdir(spool)), timeout=20)


def scenario_spool_full(node):
    """The backend is down, the queue and the spool are tiny: the log lines wait in the boot file (flow control,
    not drops), and everything is delivered, once and in order, when the backend comes back."""
    n = 3000
    port = free_tcp_port()
    with harness("otlp-spoolfull", port, ["--otlp-queue-bytes", "64K", "--otlp-spool-bytes", "64K",
                                          "--otlp-compression", "none"]) as h:
        rx = Receiver(h, node, port)  # not started: the backend is down
        mid = "vmfull"
        h.register(mid)
        agent = h.start_init_shell(mid, burst_script(n), extra=BURST_AGENT_ARGS)
        check(wait_proc(agent, 60, "the agent exits") == 0, "the workload exits 0")
        h.wait_exited(mid)
        stored, events = expected_logs(h, mid)
        wait_for("the lines wait in the log store while queue and spool are pressed",
                 lambda: export_stats(h)["deferred"] > 0)
        spool = os.path.join(h.state_dir, "otlp-spool")
        size = sum(os.path.getsize(os.path.join(spool, f)) for f in os.listdir(spool) if f.endswith(".otlp"))
        check(size <= 64 * 1024, "the spool holds up to its bound", size)

        rx.start()

        def settled():
            st = export_stats(h)
            got = st["items"]["logs"] + sum(st["dropped"]["logs"].values())
            return st if got >= stored + events and st["queue_bytes"] == 0 and st["spool_bytes"] == 0 else None
        st = wait_for("everything delivered", settled, timeout=40)
        check(not logs_dropped(h), "nothing dropped", logs_dropped(h))
        check(st["items"]["logs"] == stored + events, "delivered = stored lines + events", st, stored, events)
        summary = rx.summary()
        check(summary["log_records"] == st["items"]["logs"], "the receiver got what tetherd counts", summary, st)
        nums = line_numbers(rx.requests())
        log("spool-full: %d lines stored, %d delivered, deferred %d times" % (stored, len(nums), st["deferred"]))
        check(nums == list(range(1, n + 1)), "every line delivered once, in order",
              [x for x in zip(nums, range(1, n + 1)) if x[0] != x[1]][:5], len(nums))


def scenario_fair_share(node):
    """One machine floods, another logs steadily; the queue and the spool are small, the backend slow. Nothing is
    dropped: the flood waits in its boot file (its share of the queue used up), the quiet machine's lines are not
    pushed out by it, and every line of both is exported once, in order."""
    n_flood, n_quiet = 12000, 1000
    quiet_script = numbered_lines_script("quiet", n_quiet, 50)
    port = free_tcp_port()
    with harness("otlp-fair", port, ["--otlp-queue-bytes", "256K", "--otlp-spool-bytes", "256K",
                                     "--otlp-compression", "none"]) as h:
        rx = Receiver(h, node, port, delay_ms=100)
        rx.start()
        h.register("flood")
        h.register("quiet")
        flood = h.start_init_shell("flood", burst_script(n_flood))
        quiet = h.start_init_shell("quiet", quiet_script)
        check(wait_proc(flood, 60, "the flood's agent exits") == 0, "the flood's workload exits 0")
        check(wait_proc(quiet, 60, "the quiet agent exits") == 0, "the quiet workload exits 0")
        expected = 0
        for mid in ("flood", "quiet"):
            h.wait_exited(mid)
            stored, events = expected_logs(h, mid)
            expected += stored + events

        def settled():
            st = export_stats(h)
            got = st["items"]["logs"] + sum(st["dropped"]["logs"].values())
            return st if got >= expected and st["queue_bytes"] == 0 and st["spool_bytes"] == 0 else None
        wait_for("every line of both machines delivered or counted", settled, timeout=45)
        check(not logs_dropped(h), "nothing dropped", logs_dropped(h))
        bodies = [otlp_body(r) or "" for _, r in logs_of(rx.requests())]
        quiet_nums = [int(b.split()[1]) for b in bodies if b.startswith("quiet ")]
        check(quiet_nums == list(range(n_quiet)), "every line of the quiet machine exported once, in order",
              len(quiet_nums), [x for x in zip(quiet_nums, range(n_quiet)) if x[0] != x[1]][:5])
        flood_nums = [int(b.split()[1]) for b in bodies if b.startswith("line ")]
        check(flood_nums == list(range(1, n_flood + 1)), "every line of the flood exported once, in order",
              len(flood_nums), [x for x in zip(flood_nums, range(1, n_flood + 1)) if x[0] != x[1]][:5])
        boots = {mid: h.api.machine(mid)["boot"] for mid in ("flood", "quiet")}
        check(boots["flood"]["export_deferred"] > 0, "the flood waited in its boot file", boots["flood"])
        check(all(b["export_dropped"] == 0 for b in boots.values()), "no machine lost an item",
              {m: b["export_dropped"] for m, b in boots.items()})
        log("fair-share: %d + %d lines, flood deferred %d times, quiet %d" %
            (n_flood, n_quiet, boots["flood"]["export_deferred"], boots["quiet"]["export_deferred"]))


EARLY_WORKLOAD = r'''
echo "early 1"; echo "early 2" >&2; echo "early 3"
"$TETHER_AGENT" milestone app.start
sleep 0.2
"$TETHER_AGENT" notify READY=1
echo "after ready"
sleep 0.2
'''


def fake_early_actions():
    """Logs (and milestones) while tetherd has no clock sample: --hold-probes leaves its probes unanswered until
    answer-probes. Then a phase, more logs, ready, exit."""
    return (["log", "stdout", "early 1", "log", "stderr", "early 2", "logs", "stdout", "20",
             "milestone", "kernel.start", "0", "milestone", "init.start", "400", "milestone", "workload.exec",
             "log", "stdout", "multi", "answer-probes", "sleep", "300", "log", "stdout", "after fix",
             "phase", "setup", "900", "950", "ready", "notify", "log", "stdout", "after ready",
             "milestone", "late.one", "exit", "0"])


def boot_fake_early(h, mid):
    fake = binary("FAKE_AGENT")
    argv = [fake, "--hold-probes", "yes", "--boot-id", "boot-" + mid, "unix:" + h.guest_socket(mid)]
    p = h.spawn(argv + fake_early_actions(), "fake-%s.log" % mid)
    check(wait_proc(p, 30, "the fake agent exits") == 0, "the fake agent exits 0")
    h.wait_exited(mid)
    return h.wait_machine(mid, lambda m: m.get("connected") is False, "%s is disconnected" % mid)


def boot_real_early(h, mid):
    agent = h.start_init_shell(mid, EARLY_WORKLOAD)
    check(wait_proc(agent, 45, "the agent exits") == 0, "the workload exits 0")
    h.wait_exited(mid)
    return h.wait_machine(mid, lambda m: m.get("connected") is False, "%s is disconnected" % mid)


def scenario_same_times(node):
    port = free_tcp_port()
    with harness("otlp-times", port) as h:
        rx = Receiver(h, node, port)
        rx.start()
        h.register("times-fake")
        h.register("times-real", traceparent=TRACEPARENT)
        boot_fake_early(h, "times-fake")
        boot_real_early(h, "times-real")
        bodies = otlp_settled_bodies(h, lambda: [r["body"] for r in rx.requests() if r["status"] == 200 and r["body"]],
                                ["times-fake", "times-real"])
        for mid in ("times-fake", "times-real"):
            check_exported_times(h, mid, bodies)


def scenario_same_times_file(node):
    with Harness("otlp-times-file", tetherd_args=["--otlp-batch-delay-ms", "100"]) as h:
        path = os.path.join(h.state_dir, "otlp.jsonl")
        h.register("times-fake")
        h.register("times-real")
        boot_fake_early(h, "times-fake")
        boot_real_early(h, "times-real")

        def fetch():
            if not os.path.exists(path):
                return []
            out = subprocess.run([node, os.path.join(HERE, "receiver.js"), "--json-check", path], cwd=HERE,
                                 capture_output=True, text=True, timeout=30)
            check(out.returncode == 0, "every line decodes with the official OTLP definitions", out.stderr[-2000:])
            return [o["decoded"] for o in json.loads(out.stdout)["objects"]]
        bodies = otlp_settled_bodies(h, fetch, ["times-fake", "times-real"])
        for mid in ("times-fake", "times-real"):
            check_exported_times(h, mid, bodies)


def scenario_metrics_shutdown(node):
    """tetherd's own metrics of the last interval go with the final flush at SIGTERM: an interval of an hour never
    fires here, yet the file then holds them, counting what happened."""
    with Harness("otlp-metrics-shutdown", tetherd_args=["--otlp-metrics-interval-ms", "3600000"]) as h:
        for mid in ("shut-a", "shut-b"):
            h.register(mid)
        h.api.request("DELETE", "/v1/machines/shut-b")
        path = os.path.join(h.state_dir, "otlp.jsonl")
        check(h.kill_tetherd(signal_term()) == 0, "tetherd exits 0 on SIGTERM")
        out = subprocess.run([node, os.path.join(HERE, "receiver.js"), "--json-check", path], cwd=HERE,
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "every line decodes with the official OTLP definitions", out.stderr[-2000:])
        bodies = [o["decoded"] for o in json.loads(out.stdout)["objects"] if o["signal"] == "metrics"]
        counts = {otlp_attrs(p)["tether.transition"]: point_value(p)
                  for res, m in metrics_of(bodies) if res.get("service.name") == "tetherd" and
                  m["name"] == "tether.machine.transitions" for p in m["sum"]["dataPoints"]}
        check(counts.get("registered") == 2 and counts.get("deleted") == 1,
              "the shutdown's fleet metrics count the two registrations and the delete", counts)


SCENARIOS = {
    "same-times": scenario_same_times,
    "same-times-file": scenario_same_times_file,
    "env": scenario_env,
    "export": scenario_export,
    "retry-503": scenario_retry_503,
    "retry-after": scenario_retry_after,
    "reject-400": scenario_reject_400,
    "partial": scenario_partial,
    "down-up": scenario_down_up,
    "json-file": scenario_json_file,
    "json-rotate": scenario_json_rotate,
    "burst-slow": scenario_burst_slow,
    "spool-full": scenario_spool_full,
    "fair-share": scenario_fair_share,
    "metrics": scenario_metrics,
    "metrics-file": scenario_metrics_file,
    "metrics-shutdown": scenario_metrics_shutdown,
}


def main():
    node = need_node()
    SCENARIOS[sys.argv[1]](node)


if __name__ == "__main__":
    run_test(main)
