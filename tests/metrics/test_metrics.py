#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""GET /metrics of a real tetherd, after a VM boot and a container boot reached ready (tether-fake-agent).

The exposition is fetched over the Unix API socket and over --api-port (same families, Prometheus text 0.0.4
content type), linted with `promtool check metrics` (exit 0, nothing printed), then a real Prometheus server
(temp storage, a free port, scraping --api-port every second) must report the boots: one kernel-to-ready
observation (the VM), one init-to-ready (the container), two machines ready, the target up.
With --metrics-per-machine and a real agent sampling this machine (service mode, one sample a second), the
guest families appear with its machine id, and only for it. The Prometheus server also loads
host-collector/monitoring/tether-rules.yml (every group healthy, the recording rules evaluate) and answers every
query of host-collector/monitoring/tether-dashboard.json ($__rate_interval, $instance and $machine filled in)
with data: a panel whose query is invalid or matches nothing fails the test.
Without prometheus/promtool the test is skipped (77), or fails with TETHER_REQUIRE_BINARIES=1.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from tetherlib import (Harness, TestFailure, UnixHTTPConnection, binary, check, free_tcp_port,  # noqa: E402
                       kill_tree, log, missing, run_test)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MONITORING = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "host-collector", "monitoring")
WAIT_S = 30


def tool(name):
    path = shutil.which(name)
    if path:
        return path
    missing("%s not found (Debian package prometheus)" % name)


def fetch(conn):
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        return resp.status, resp.getheader("Content-Type"), body
    finally:
        conn.close()


def samples(text):
    """{'name{labels}': value} of an exposition (labels exactly as written)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def boot(h, fake_agent, machine_id, actions):
    h.register(machine_id)
    argv = [fake_agent, "--boot-id", "boot-" + machine_id, "unix:" + h.guest_socket(machine_id)] + actions
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=WAIT_S)
    check(p.returncode == 0, "fake agent of %s succeeds" % machine_id, p.stdout.decode(errors="replace"))
    h.wait_machine(machine_id, lambda m: m.get("state") == "ready", "machine %s is ready" % machine_id)


def prom_query(port, query):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/api/v1/query?query=" + urllib.parse.quote(query))
        resp = conn.getresponse()
        doc = json.loads(resp.read())
    finally:
        conn.close()
    check(doc.get("status") == "success", "Prometheus answers the query %s" % query, doc)
    return doc["data"]["result"]


def wait_value(port, query, expect):
    """Waits (bounded) until the query returns exactly one series with value expect."""
    deadline = time.monotonic() + WAIT_S
    result = None
    while time.monotonic() < deadline:
        try:
            result = prom_query(port, query)
        except OSError as e:
            result = repr(e)
        if isinstance(result, list) and len(result) == 1 and float(result[0]["value"][1]) == expect:
            return result[0]
        time.sleep(0.5)
    raise TestFailure("FAILED: Prometheus reports %s == %s within %d s; last result:\n    %s"
                      % (query, expect, WAIT_S, json.dumps(result)[:2000]))


def prom_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def check_rules(port):
    """The rules file loaded, every group healthy once evaluated, the recording rules producing series."""
    deadline = time.monotonic() + WAIT_S
    while True:
        doc = prom_get(port, "/api/v1/rules")
        groups = doc["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if rules and all(r.get("health") == "ok" for r in rules):
            break
        check(time.monotonic() < deadline, "every rule evaluates without error within %d s" % WAIT_S,
              json.dumps([(r["name"], r.get("health"), r.get("lastError")) for r in rules]))
        time.sleep(0.5)
    names = {g["name"] for g in groups}
    check(names == {"tether.recording", "tether.alerts"}, "both rule groups are loaded", names)
    # Recording rules over counters that exist (even when 0) produce series.
    for record in ("tether:machine_transitions:rate5m", "tether:protocol_errors:increase5m"):
        wait_nonempty(port, record)
    log("rules: %d loaded, all healthy" % len(rules))


def wait_nonempty(port, query, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        result = prom_query(port, query)
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TestFailure("FAILED: the query returns data within %d s: %s" % (timeout, query))
        time.sleep(0.5)


def check_dashboard(port):
    """Every panel's query is valid and returns data from tetherd's real series."""
    with open(os.path.join(MONITORING, "tether-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]
    check(len(exprs) >= 10, "the dashboard has its panels", len(exprs))
    psi = os.path.exists("/proc/pressure/memory")
    for title, expr in exprs:
        q = expr.replace("$__rate_interval", "30s").replace("$instance", ".*").replace("$machine", ".*")
        if "pressure" in q and not psi:
            prom_query(port, q)  # valid, but this kernel has no PSI to show
            continue
        wait_nonempty(port, q)
    log("dashboard: %d queries of %d panels valid and answered" % (len(exprs), len(dash["panels"])))


def main():
    promtool = tool("promtool")
    prometheus = tool("prometheus")
    fake_agent = binary("FAKE_AGENT")
    port = free_tcp_port()

    with Harness("metrics", tetherd_args=["--api-port", str(port), "--metrics-per-machine"]) as h:
        # A VM: kernel.start, init.start, a guest phase, workload.exec, ready.
        boot(h, fake_agent, "vm", ["milestone", "kernel.start", "0", "milestone", "init.start", "150",
                                   "phase", "mount", "160", "200", "milestone", "workload.exec", "400",
                                   "ready", "sd_notify", "wait-acks"])
        # A container: no kernel.start.
        boot(h, fake_agent, "ct", ["milestone", "init.start", "100", "milestone", "workload.exec", "120",
                                   "ready", "sd_notify", "wait-acks"])

        status, ctype, via_unix = fetch(UnixHTTPConnection(h.api_socket))
        check(status == 200 and ctype == CONTENT_TYPE, "GET /metrics on the Unix socket answers 200 " + CONTENT_TYPE,
              "status %d content type %r" % (status, ctype))
        status, ctype, via_tcp = fetch(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
        check(status == 200 and ctype == CONTENT_TYPE, "GET /metrics on --api-port answers 200 " + CONTENT_TYPE,
              "status %d content type %r" % (status, ctype))
        # Same series both ways (values like tether_api_requests_total move between the two requests).
        check(sorted(samples(via_unix)) == sorted(samples(via_tcp)), "both sockets expose the same series")

        s = samples(via_tcp)
        expect = {
            "tether_boot_kernel_to_ready_seconds_count": 1,
            "tether_boot_init_to_ready_seconds_count": 1,
            'tether_boot_phase_duration_seconds_count{phase="kernel"}': 1,
            'tether_boot_phase_duration_seconds_count{phase="init"}': 2,
            'tether_boot_phase_duration_seconds_count{phase="workload.start"}': 2,
            'tether_boot_phase_duration_seconds_count{phase="other"}': 1,
            'tether_boot_phase_duration_seconds_sum{phase="kernel"}': 0.15,
            'tether_boot_phase_duration_seconds_sum{phase="other"}': 0.04,
            "tether_boot_registered_to_ready_seconds_count": 2,
            "tether_ready_delivery_seconds_count": 2,
            'tether_machines{state="ready"}': 2,
            'tether_machines{state="booting"}': 0,
            'tether_log_records_total{stream="stdout"}': 0,
            "tether_connections_accepted_total": 2,
            'tether_export_requests_total{signal="traces"}': 0,
        }
        for key, value in expect.items():
            check(s.get(key) == value, "%s is %s" % (key, value), "got %r" % s.get(key))
        label_values = set(re.findall(r'="((?:[^"\\]|\\.)*)"', via_tcp))
        check(not label_values & {"vm", "ct", "boot-vm", "boot-ct"}, "no machine without samples in any label",
              sorted(label_values))
        check(not any(k.startswith("tether_guest_") for k in s), "no guest families without samples")

        # A real agent sampling this machine (it also boots: the counts above move): the guest families, with
        # its machine id and only its.
        h.register("sampled")
        h.start_service("sampled", h.path("notify.sock"), extra=["--sample-interval-ms=1000"],
                        command=["sleep", "600"])
        h.wait_machine("sampled", lambda m: m.get("resources") is not None, "machine sampled has a sample")
        _, _, via_tcp = fetch(http.client.HTTPConnection("127.0.0.1", port, timeout=10))
        s = samples(via_tcp)
        guest = {k for k in s if k.startswith("tether_guest_")}
        check(guest and all('machine_id="sampled"' in k for k in guest) and len(guest) <= 18,
              "the guest families carry the sampled machine, at most 18 series", sorted(guest))
        check(s.get('tether_guest_cpu_seconds_total{machine_id="sampled",mode="user"}', 0) > 0,
              "its CPU time is this machine's", sorted(guest))

        p = subprocess.run([promtool, "check", "metrics"], input=via_tcp.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=WAIT_S)
        out = p.stdout.decode(errors="replace")
        check(p.returncode == 0 and out.strip() == "", "promtool check metrics is clean",
              "exit %d, output:\n%s" % (p.returncode, out))
        log("promtool check metrics: clean (%d series)" % len(s))

        # A real Prometheus scraping --api-port every second.
        prom_port = free_tcp_port()
        config = h.path("prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: tether\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % (os.path.join(MONITORING, "tether-rules.yml"), port))
        prom = h.spawn([prometheus, "--config.file=" + config, "--storage.tsdb.path=" + h.path("prometheus-data"),
                        "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"], "prometheus.log")
        try:
            deadline = time.monotonic() + WAIT_S
            while True:
                check(prom.poll() is None, "prometheus keeps running", "exit %r" % prom.returncode)
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", prom_port, timeout=5)
                    conn.request("GET", "/-/ready")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                finally:
                    conn.close()
                check(time.monotonic() < deadline, "prometheus becomes ready within %d s" % WAIT_S)
                time.sleep(0.2)

            wait_value(prom_port, 'up{job="tether"}', 1)
            wait_value(prom_port, "tether_boot_kernel_to_ready_seconds_count", 1)
            wait_value(prom_port, "tether_boot_init_to_ready_seconds_count", 1)
            wait_value(prom_port, 'tether_machines{state="ready"}', 2)
            wait_value(prom_port, 'tether_boot_phase_duration_seconds_bucket{phase="kernel",le="0.25"}', 1)
            # A scrape never fails or drops samples.
            log("Prometheus scraped tetherd: %d samples" % len(s))
            check_rules(prom_port)
            check_dashboard(prom_port)
        finally:
            kill_tree(prom)
            h.children.remove(prom)


if __name__ == "__main__":
    run_test(main)
