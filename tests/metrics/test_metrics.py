#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""GET /metrics of a real tetherd, after a VM boot and a container boot reached ready (tether-fake-agent).

The exposition is fetched over the Unix API socket and over --api-port (same families, Prometheus text 0.0.4
content type), linted with `promtool check metrics` (exit 0, nothing printed), then a real Prometheus server
(temp storage, a free port, scraping --api-port every second) must report the boots: one kernel-to-ready
observation (the VM), one init-to-ready (the container), two machines ready, the target up.
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


def main():
    promtool = tool("promtool")
    prometheus = tool("prometheus")
    fake_agent = binary("FAKE_AGENT")
    port = free_tcp_port()

    with Harness("metrics", tetherd_args=["--api-port", str(port)]) as h:
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
        check(not label_values & {"vm", "ct", "boot-vm", "boot-ct"}, "no machine or boot id in any label",
              sorted(label_values))

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
                    "scrape_configs:\n  - job_name: tether\n    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % port)
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
            wait_value(prom_port, 'scrape_samples_scraped{job="tether"}', len(s))
            log("Prometheus scraped tetherd: %d samples" % len(s))
        finally:
            kill_tree(prom)
            h.children.remove(prom)


if __name__ == "__main__":
    run_test(main)
