# SPDX-License-Identifier: MIT
"""Shared bits of the benchmarks: locating the binaries of a build dir, percentiles, table printing."""

import os
import sys

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
