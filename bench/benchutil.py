# SPDX-License-Identifier: MIT
"""Shared bits of the benchmarks: locating the binaries of a build dir, percentiles, table printing, a
process's CPU time and memory, the ready long-poll of tether-ready-waiter."""

import json
import os
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
