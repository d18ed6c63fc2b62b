# SPDX-License-Identifier: MIT
"""Shared bits of the benchmarks: locating the binaries of a build dir, percentiles, table printing, a
process's CPU time and memory."""

import os
import resource
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
