#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Guest resource samples (protocol version 2): the real agent in service mode samples this machine's kernel.

Proves (scenario `burn`): with --sample-interval-ms=1000 a workload that burns a CPU and holds memory shows up in
GET /v1/machines/ID/metrics: samples arrive about once a second (history grows, bounded), CPU user time grows and
the busy share between samples is within (0, 1], the memory total is this kernel's MemTotal, the online CPU count
is this machine's; the machine object carries the "resources" summary; /v1/stats and /metrics count the samples;
another machine registered beside it shows none.
Proves (scenario `off`): --sample-interval-ms=0 sends nothing (no samples, none counted) and costs no wakeups: an
idle agent with sampling off sleeps through 4.5 s while one sampling every second beside it wakes each second.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, run_test  # noqa: E402

BURN = ("import time\n"
        "hold = bytearray(64 << 20)\n"  # 64 MiB the workload keeps while it burns
        "end = time.monotonic() + 60\n"
        "tick = 0\n"
        "while time.monotonic() < end:\n"
        "    if time.monotonic() > tick:\n"  # and logs a line every 50 ms
        "        print('x' * 100, flush=True)\n"
        "        tick = time.monotonic() + 0.05\n")


def mem_total_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal")


def online_cpus():
    with open("/sys/devices/system/cpu/online") as f:
        n = 0
        for part in f.read().strip().split(","):
            a, _, b = part.partition("-")
            n += int(b or a) - int(a) + 1
        return n


def wakeups(pid):
    """The process's voluntary context switches: each return from its poll() is one."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def wait_samples(h, mid, n, timeout=30):
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        doc = h.api.get_ok("/v1/machines/%s/metrics" % mid)
        if len(doc.get("history") or []) >= n:
            return doc
        time.sleep(0.2)
    check(False, "%d samples of %s within %d s" % (n, mid, timeout), doc)


def burn():
    with Harness("samples-burn") as h:
        mid, other = "smp-1", "smp-2"
        h.register(mid, request_id="req-smp")
        h.register(other)
        h.start_service(mid, h.path("notify.sock"), extra=["--sample-interval-ms=1000"],
                        command=[sys.executable, "-c", BURN])
        h.wait_connected(mid)

        doc = wait_samples(h, mid, 4)
        log("metrics: %d samples, cpu_busy_ratio %r" % (len(doc["history"]), doc.get("cpu_busy_ratio")))
        check(doc["machine_id"] == mid and doc["node_id"] == "itest-node" and doc["request_id"] == "req-smp",
              "the metrics carry machine id, node id and request id", doc)
        hist = doc["history"]
        latest = doc["latest"]
        check(latest == hist[-1], "latest is the newest of the history", latest, hist[-1])
        check(len(hist) <= doc["history_max"], "the history is bounded by history_max", len(hist))
        check(doc["samples_refused"] == 0, "an agent sampling every second has nothing refused", doc)

        # Guest times one interval apart (give or take the loop's scheduling), host receive times increasing.
        ups = [s["uptime_ns"] for s in hist]
        gaps = [b - a for a, b in zip(ups, ups[1:])]
        check(all(0.9e9 <= g <= 5e9 for g in gaps), "samples are about one interval apart", gaps)
        times = [s["time_unix_ns"] for s in hist]
        check(times == sorted(times), "receive times increase", times)

        # This kernel's numbers: the agent runs on this machine.
        check(latest["memory"]["total_bytes"] == mem_total_bytes(), "memory total is this kernel's MemTotal",
              latest["memory"], mem_total_bytes())
        mem = latest["memory"]
        check(0 < mem["used_bytes"] <= mem["total_bytes"] and
              mem["used_bytes"] + mem["available_bytes"] == mem["total_bytes"],
              "used = total - available, within the total", mem)
        check(latest["cpus"] == online_cpus(), "the CPU count is this machine's online CPUs", latest, online_cpus())
        check(len(latest["load"]) == 3 and all(x >= 0 for x in latest["load"]), "three load averages", latest)
        users = [s["cpu_ns"]["user"] for s in hist]
        check(users == sorted(users) and users[-1] > users[0], "CPU user time grows while the workload burns",
              users)
        busy = doc["cpu_busy_ratio"]
        check(busy is not None and 0 < busy <= 1, "the busy share between the last two samples is in (0, 1]",
              busy)
        if os.path.exists("/proc/pressure/cpu"):
            check("cpu" in latest["pressure"], "this kernel has PSI: the sample carries it", latest["pressure"])

        # The machine object's summary, the counters, the other machine.
        m = h.api.machine(mid)
        res = m.get("resources")
        check(res and res["memory_total_bytes"] == mem_total_bytes() and res["uptime_ns"] > 0,
              "the machine object carries a resources summary", res)
        stats = h.api.get_ok("/v1/stats")
        check(stats["guest_samples"] >= 4, "/v1/stats counts the samples kept", stats["guest_samples"])
        status, _, raw = h.api.get("/metrics")
        text = raw.decode()
        check("tether_resource_samples_total " in text, "/metrics has tether_resource_samples_total", text[:500])
        odoc = h.api.get_ok("/v1/machines/%s/metrics" % other)
        check(odoc["latest"] is None and odoc["history"] == [] and odoc["samples_kept"] == 0,
              "a machine without an agent has no samples", odoc)
        check(h.api.machine(other).get("resources") is None, "and no resources summary", other)

        # tether top: one snapshot with rates over one second, as JSON and as an 80-column screen.
        rc, out, err = h.cli("top", "--interval", "1", json_out=True, check_rc=0)
        top = json.loads(out)
        rows = {r["machine_id"]: r for r in top["machines"]}
        check(set(rows) == {mid, other}, "top --json lists both machines", rows.keys())
        row = rows[mid]
        check(row["state"] == "booting" and row["request_id"] == "req-smp", "top shows state and request id", row)
        check(row["memory_total_bytes"] == mem_total_bytes() and 0 < row["cpu_busy_ratio"] <= 1,
              "top shows the machine's memory and CPU share", row)
        check(row["log_bytes_per_second"] is not None and row["log_bytes_per_second"] > 0,
              "top shows the log rate of a workload that logs", row)
        check(row["uptime_ns"] > 0 and 0.9e9 <= top["interval_ns"] <= 10e9, "uptime and the interval", top)
        check(rows[other]["cpu_busy_ratio"] is None and rows[other]["log_bytes_per_second"] is None,
              "the machine without an agent has nulls, not zeros", rows[other])
        rc, out, err = h.cli("top", "--interval", "0", check_rc=0, env_extra={"COLUMNS": "80"})
        lines = out.splitlines()
        check(lines[0].startswith("tether top") and "2 machines" in lines[0] and lines[1].startswith("MACHINE"),
              "top's screen: summary and header", out)
        check(all(len(line) <= 80 for line in lines), "every line fits 80 columns", out)
        check(any(line.startswith(mid) and "/" in line for line in lines), "the sampled machine's row", out)
        h.assert_tetherd_alive()


def off():
    with Harness("samples-off") as h:
        mid, on = "smp-off", "smp-on"
        h.register(mid)
        h.register(on)
        agent = h.start_service(mid, h.path("notify-off.sock"), extra=["--sample-interval-ms=0"])
        sampler = h.start_service(on, h.path("notify-on.sock"), extra=["--sample-interval-ms=1000"])
        h.wait_connected(mid)
        h.wait_connected(on)
        time.sleep(1)  # the connection's first clock probes are over
        before = wakeups(agent.pid), wakeups(sampler.pid)
        time.sleep(4.5)  # four intervals and more of the agent sampling every second, less than a heartbeat's (5 s)
        woke_off, woke_on = wakeups(agent.pid) - before[0], wakeups(sampler.pid) - before[1]
        log("wakeups in 4.5 s: %d with sampling off, %d sampling every second" % (woke_off, woke_on))
        doc = h.api.get_ok("/v1/machines/%s/metrics" % mid)
        check(doc["latest"] is None and doc["samples_kept"] == 0 and doc["samples_refused"] == 0,
              "sampling off: no samples", doc)
        check(h.api.get_ok("/v1/machines/%s/metrics" % on)["samples_kept"] >= 3, "the other agent samples")
        check(h.api.get_ok("/v1/stats")["guest_samples"] >= 3, "only its samples are counted")
        # Off means no timer for it: the idle agent wakes at most for a heartbeat (every 5 s) and a clock probe
        # (every 10 s), while the sampling one wakes once a second (4 or 5 times in the window, plus a probe).
        check(woke_off <= 2, "sampling off: no wakeups for it (at most a heartbeat's and a probe's)", woke_off)
        check(woke_on >= woke_off + 2, "sampling on wakes about once a second", woke_on, woke_off)
        h.assert_tetherd_alive()


if __name__ == "__main__":
    run_test({"burn": burn, "off": off}[sys.argv[1]])
