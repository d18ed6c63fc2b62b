# SPDX-License-Identifier: MIT
"""Shared bits of the benchmarks: locating the binaries of a build dir, percentiles, table printing, a
process's CPU time and memory, the ready long-poll of tether-ready-waiter and one measured readiness run, cpu
cgroups."""

import json
import os
import re
import resource
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import tetherlib  # noqa: E402,F401


def use_build_dir(build_dir):
    """Points TETHERD/TETHER_AGENT/TETHER_CLI at a build dir's binaries unless already set."""
    paths = {
        "TETHERD": os.path.join(build_dir, "host-collector", "tetherd"),
        "TETHER_AGENT": os.path.join(build_dir, "guest-agent", "tether-agent"),
        "TETHER_CLI": os.path.join(build_dir, "host-collector", "cli", "tether"),
    }
    for var, path in paths.items():
        if not os.environ.get(var):
            os.environ[var] = path
        if not os.access(os.environ[var], os.X_OK):
            sys.exit("bench: %s=%s is not an executable (build first: meson setup %s && ninja -C %s)" %
                     (var, os.environ[var], build_dir, build_dir))
    os.environ["TETHER_REQUIRE_BINARIES"] = "1"


def ready_waiter_binary(build_dir):
    """tether-ready-waiter (bench/ready-waiter.c): TETHER_READY_WAITER when set, else the build dir's."""
    path = os.environ.get("TETHER_READY_WAITER") or os.path.join(build_dir, "bench", "tether-ready-waiter")
    if not os.access(path, os.X_OK):
        sys.exit("bench: TETHER_READY_WAITER=%s is not an executable (build first: ninja -C %s)" % (path, build_dir))
    return path


def enter_cgroup(cgroup_procs):
    """An argv prefix that moves the command into a cgroup (its cgroup.procs file) and execs it; [] for None."""
    return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', cgroup_procs] if cgroup_procs else []


class ReadyWaiter:
    """A long-poll GET of tetherd's API from tether-ready-waiter, a C process of its own: connect, GET, blocking
    reads, CLOCK_REALTIME (and CLOCK_BOOTTIME) read right after the read that completes the response. A Python
    waiter thread in the bench process measured the bench too: waiting for the GIL while another thread spawned
    processes or parsed output put tails of several ms into the client's part that were not tetherd's.

    The constructor returns once the request is written (the waiter's "parked" line): it is then on its way to
    tetherd, parked there a few ms later."""

    def __init__(self, binary, socket_path, path, timeout=60, cgroup_procs=None):
        # cgroup_procs: the waiter runs in that cgroup.
        self.proc = subprocess.Popen(enter_cgroup(cgroup_procs) + [binary, socket_path, path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        line = self._line(timeout, "the request sent")
        if line != b"parked":
            self._fail("said %r instead of parked" % line)

    def _line(self, timeout, what):
        fd = self.proc.stdout.fileno()  # os.read: nothing is left in a Python buffer behind select's back
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self._fail("not %s within %.0f s" % (what, timeout))
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._fail("exited before %s" % what)
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def _fail(self, why):
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate()
        raise SystemExit("tether-ready-waiter %s: %s (exit status %s): %s" % (
            " ".join(self.proc.args[1:]), why, self.proc.returncode, err.decode(errors="replace").strip()))

    def result(self, timeout):
        """Waits for the answer: (returned_unix_ns, returned_boottime_ns, status, doc (the JSON body or None), the
        body's bytes)."""
        line = self._line(timeout, "answered")
        _, err = self.proc.communicate(timeout=30)  # after its JSON line it only exits
        if self.proc.returncode != 0:
            raise SystemExit("tether-ready-waiter %s: exit status %d after its answer: %s" % (
                " ".join(self.proc.args[1:]), self.proc.returncode, err.decode(errors="replace").strip()))
        o = json.loads(line)
        raw = o["body"].encode()
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            doc = None
        return o["returned_unix_ns"], o["returned_boottime_ns"], o["status"], doc, raw


def vmm_notify_close_reasons(h):
    """How tetherd closed the vmm.notify connections so far (tether_vmm_notify_connections_closed_total): {reason: n}."""
    _, _, raw = h.api.request("GET", "/metrics")
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^tether_vmm_notify_connections_closed_total\{reason="(\w+)"\} (\d+)$',
                                 raw.decode(), re.M)}


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def table(rows, headers):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, headers))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(("%*s" if i else "%-*s") % (w, x) for i, (w, x) in enumerate(zip(widths, r))))


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """CPU time of a process (user + system, every thread, live or exited), in seconds.

    The same quantity as utime + stime of /proc/PID/stat, read from the process's CPU-time clock instead
    (clock_getcpuclockid(3): clock id ((~pid) << 3) | 2, CPUCLOCK_SCHED of the whole process) because
    /proc/PID/stat counts in clock ticks (1/CLK_TCK s, 10 ms): too coarse for short runs. Falls back to
    /proc/PID/stat when the clock cannot be read."""
    try:
        return time.clock_gettime_ns(((~pid) << 3) | 2) / 1e9
    except OSError:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def proc_status(pid):
    """The kB figures of /proc/PID/status (VmHWM, VmRSS, RssAnon, ...) as {name: bytes}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name, _, value = line.partition(":")
            parts = value.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[name] = int(parts[0]) * 1024
    return out


def schedstat(pid):
    """(ns on a CPU, ns runnable waiting for a CPU) of a process, summed over its threads (/proc/PID/task/*/
    schedstat, fields 1 and 2). The rest of the wall time it was blocked: on I/O (fdatasync...) or idle."""
    run = wait = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                fields = f.read().split()
        except OSError:
            continue  # the thread ended
        run += int(fields[0])
        wait += int(fields[1])
    return run, wait


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE (inherited by its children) towards want, up to the hard limit.
    Returns the soft limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def mib(n):
    return "%.1f MiB" % (n / 1048576.0)


def cpu_cgroup(what="guests"):
    """A cpu cgroup of the bench's (its guests beside tetherd's, as VMs run under machine.slice and tetherd under
    its slice: under contention the guests share one cgroup's CPU instead of outnumbering tetherd a thousand to
    one). Returns its directory, or None (then they share the bench's)."""
    name = "tether-bench-%s-%d" % (what, os.getpid())
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # cgroup v2
        try:
            with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
                f.write("+cpu")
        except OSError:
            pass
        d = os.path.join("/sys/fs/cgroup", name)
    else:
        d = os.path.join("/sys/fs/cgroup/cpu", name)
    try:
        os.mkdir(d)
    except OSError as e:
        print("warning: no cgroup for the fake agents (%s): they share tetherd's CPU" % e, file=sys.stderr)
        return None
    return d


def set_cpu_weight(d, weight):
    """systemd's CPUWeight= (1..10000, default 100) on cgroup v2's cpu.weight or v1's cpu.shares (x 1024/100)."""
    if os.path.exists(os.path.join(d, "cpu.weight")):
        path, value = os.path.join(d, "cpu.weight"), weight
    else:
        path, value = os.path.join(d, "cpu.shares"), max(2, weight * 1024 // 100)
    with open(path, "w") as f:
        f.write(str(value))


def remove_cgroup(d):
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except OSError:
            time.sleep(0.1)


SD_NOTIFY = ("python3 -c 'import os,socket; a=os.environ[\"NOTIFY_SOCKET\"]; "
             "a=chr(0)+a[1:] if a[0]==\"@\" else a; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); "
             "s.connect(a); s.send(b\"READY=1\")'")


def ready_run(h, waiter_bin, mid, delay, mechanism="notify", cgroup_procs=None):
    """One measured readiness: registers mid, parks tether-ready-waiter's long-poll on it, boots an init-mode agent
    whose workload sleeps delay seconds and says READY=1 (mechanism notify: `tether-agent notify READY=1`,
    sd_notify: a raw datagram); agent and waiter in cgroup_procs' cgroup when given. Returns ({part: ns or None}
    with parts waiter, received, answered, client (see bench/README.md), the Ready's source, the clock the waiter
    part was measured on, the boot's clock error bound in ns). The machine stays registered."""
    h.register(mid)
    notify = '"$TETHER_AGENT" notify READY=1' if mechanism == "notify" else SD_NOTIFY
    # The workload lingers after READY=1 so an exit cannot race the answer (see docs: tetherd must still
    # answer 200 for a boot that became ready and then exited).
    script = "sleep %.3f; %s; sleep 0.3" % (delay, notify)

    waiter = ReadyWaiter(waiter_bin, h.api.socket_path, "/v1/machines/%s/ready?timeout=60" % mid,
                         cgroup_procs=cgroup_procs)
    time.sleep(0.03)  # the long-poll is parked in tetherd before the guest even starts
    env = dict(os.environ, TETHER_AGENT=h.agent())
    agent = h.spawn(enter_cgroup(cgroup_procs) + h.init_argv(mid, ["/bin/sh", "-c", script]),
                    "agent-%s.log" % mid, env=env)
    returned_realtime_ns, returned_boottime_ns, status, doc, raw = waiter.result(90)
    if status != 200:
        raise SystemExit("readiness of %s answered %d: %r" % (mid, status, raw))
    rd = doc["ready"]
    if rd.get("kernel_to_ready_ns") is not None:
        waited_ns = returned_boottime_ns - rd["kernel_to_ready_ns"]
        method = "boottime"
    else:
        waited_ns = returned_realtime_ns - rd["ready_unix_ns"]
        method = "realtime"
    delivered, answered = rd.get("delivered_unix_ns") or 0, doc.get("answered_unix_ns") or 0
    parts = {
        "waiter": waited_ns,
        "received": delivered - rd["ready_unix_ns"],
        "answered": answered - delivered if answered and delivered else None,
        "client": returned_realtime_ns - answered if answered else None,
    }
    tetherlib.wait_proc(agent, 30, "the agent exits")
    h.children.remove(agent)
    clock_error_ns = (h.api.machine(mid)["boot"] or {}).get("clock_error_ns") or 0
    return parts, rd.get("source"), method, clock_error_ns
