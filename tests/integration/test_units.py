#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The systemd units tether ships: tetherd.service, tether.slice and the guest's tether-agent.service and
tether-agent-systemd.service.

Proves: `systemd-analyze verify` loads each with nothing to say (no unknown key, no bad value, no missing
binary: ExecStart= is pointed at this build's binary); tetherd.service runs in a slice that is shipped beside
it, and that slice gives tetherd more CPU weight than the default 100 of system.slice and machine.slice, where
the guests run (bench/scale measures why).

usage: test_units.py TETHERD_SERVICE TETHER_SLICE TETHER_AGENT_SERVICE [TETHER_AGENT_SYSTEMD_SERVICE]
       (TETHERD, TETHER_AGENT, TETHER_AGENT_SYSTEMD from the env)
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import check, log, run_test  # noqa: E402

def keys(path, section, key):
    """Every value of KEY in [SECTION] of a unit file."""
    values, current = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1]
            elif current == section and "=" in line and not line.startswith(("#", ";")):
                k, _, v = line.partition("=")
                if k.strip() == key:
                    values.append(v.strip())
    return values


def point_exec_at(src, dst, binary):
    """Copies a unit, its ExecStart= binary replaced by BINARY (the installed path does not exist here)."""
    with open(src) as f:
        text = f.read()
    text, n = re.subn(r"^(ExecStart=)(\S+)", lambda m: m.group(1) + binary, text, flags=re.M)
    check(n == 1, "%s has one ExecStart=" % os.path.basename(src), n)
    with open(dst, "w") as f:
        f.write(text)


def main():
    service, slice_unit, agent_service = sys.argv[1:4]
    analyze = shutil.which("systemd-analyze")
    check(analyze is not None, "systemd-analyze is installed (package systemd, from scripts/deps)")
    agent = os.environ.get("TETHER_AGENT_OVERRIDE") or os.environ.get("TETHER_AGENT")
    tmp = tempfile.mkdtemp(prefix="tether-units-")
    try:
        units = [os.path.join(tmp, os.path.basename(p)) for p in (service, slice_unit, agent_service)]
        point_exec_at(service, units[0], os.environ["TETHERD"])
        shutil.copy(slice_unit, units[1])
        if agent:
            point_exec_at(agent_service, units[2], agent)
        else:
            log("no TETHER_AGENT in this build: tether-agent.service is left out")
            units.pop()
        agent_systemd = os.environ.get("TETHER_AGENT_SYSTEMD")
        if len(sys.argv) > 4 and agent_systemd:
            units.append(os.path.join(tmp, os.path.basename(sys.argv[4])))
            point_exec_at(sys.argv[4], units[-1], agent_systemd)
        p = subprocess.run([analyze, "verify", "--man=no"] + units, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        out = p.stdout.decode(errors="replace").strip()
        check(p.returncode == 0 and not out, "systemd-analyze verify accepts %s with nothing to say" %
              ", ".join(os.path.basename(u) for u in units), "exit %d: %s" % (p.returncode, out))

        slices = keys(service, "Service", "Slice")
        check(slices == [os.path.basename(slice_unit)], "tetherd.service runs in the shipped %s" %
              os.path.basename(slice_unit), slices)
        weights = keys(slice_unit, "Slice", "CPUWeight")
        check(len(weights) == 1 and weights[0].isdigit() and int(weights[0]) > 100,
              "tether.slice weighs more than system.slice's and machine.slice's default CPUWeight 100", weights)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_test(main)
