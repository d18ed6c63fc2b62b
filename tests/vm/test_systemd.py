#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real full-distro guest (suite `systemd`): Debian trixie with systemd 257 under QEMU TCG + tether-vsock.

One scenario per test case:
  agent     the static tether-agent as an early unit (images/tether-agent.service, service mode): readiness
            arrives through `tether-agent notify` once tether-demo.service is active; the guest reached
            multi-user.target with no failed unit; SSH (key login) works; qemu-guest-agent answers guest-ping;
            the kernel log arrives through the agent. The same boot has systemd's vmm.notify_socket credential
            pointing at a plain listener on another vsock port (NotifyWireListener, not tetherd): systemd 257's
            READY=1 arrives through tether-vsock
  agent-systemd  tether-agent-systemd (glibc, libsystemd) as the early unit images/tether-agent-systemd.service
            with ready=unit:tether-demo.service: the boot phases equal what `systemd-analyze` says of the same boot
            (to the millisecond), units are spans (ssh.service among them), a unit started after boot that fails
            (`systemd-run /bin/false`) is an error span, the journal arrives with the unit as source
  no-agent  no agent at all: only systemd.set_credential=vmm.notify_socket:vsock-stream:2:4818 (tetherd's
            vmm.notify port): tetherd's ready comes from systemd (source systemd, STATUS "Ready.") after
            tether-demo.service is active, the targets are milestones of the trace, the hostname is the guest's;
            a target started, stopped and started again after boot stays in the same ready boot;
            `systemctl poweroff` over SSH ends the boot as exited, code 0, reason poweroff
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmlib import Harness, check, log  # noqa: E402
from systemdvm import READY_MARKER, NotifyWireListener, SystemdImage, SystemdVM, qga_ping  # noqa: E402
from systemdvm import GUEST_AGENT_PATH, REPO, require_systemd_vm_tools  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from tetherlib import binary, free_tcp_port, run_test  # noqa: E402

# Generous: a systemd boot under TCG takes 20-40 s on a loaded 2-core machine.
BOOT_TIMEOUT = 300
CID = 3
VMM_NOTIFY_PORT = 4818  # tetherd's vmm.notify port (--vmm-notify-port, on by default)
WIRE_PORT = 4899  # systemd's vmm.notify_socket, to NotifyWireListener (not a port tetherd uses)


def scenario_agent(h, image):
    mid = "sd-agent"
    h.register(mid)
    wire = NotifyWireListener("%s_%d" % (h.uds_base(mid), WIRE_PORT))
    vm = SystemdVM(h, image, mid, CID, agent=True, qga=True, ssh_port=free_tcp_port(),
                   append="systemd.set_credential=vmm.notify_socket:vsock-stream:2:%d" % WIRE_PORT).start()
    marker = vm.wait_console(READY_MARKER, BOOT_TIMEOUT)
    status, doc, raw = h.api.ready(mid, 120)
    check(status == 200, "tetherd reports the machine ready", status, raw)
    m = h.api.machine(mid)
    r = m["boot"]["ready"]
    check(r["source"] == "notify", "ready through the agent's notify socket", r)
    check("tether-demo.service" in (r.get("detail") or ""), "the STATUS names the unit", r)
    check(m["boot"]["agent_mode"] == "service", "the agent ran as a systemd service", m["boot"])

    vm.wait_ssh(120)
    rc, out, err = vm.ssh("systemctl is-system-running --wait; systemctl --failed --no-legend --plain")
    check(rc == 0 and out.split()[:1] == ["running"], "the guest is running with no failed unit", rc, out, err)
    rc, out, err = vm.ssh("systemctl is-active multi-user.target tether-demo.service tether-agent.service "
                          "ssh.service qemu-guest-agent.service")
    check(rc == 0 and out.split() == ["active"] * 5, "multi-user.target and the units are active", rc, out, err)
    rc, out, err = vm.ssh("systemctl --version")
    check(rc == 0 and out.startswith("systemd 257"), "the guest runs systemd 257", out, err)

    check(qga_ping(vm.qga_socket, 30), "qemu-guest-agent answers guest-ping on its virtio-serial channel")

    kmsg = [o for o in h.api.logs(mid, "kmsg") if "line" in o]
    check(any("systemd" in o["line"] for o in kmsg), "the kernel log (with systemd's lines) arrives",
          [o["line"] for o in kmsg][:20])
    log("guest ready, SSH and guest agent answer; %d kernel log lines through the agent" % len(kmsg))

    msgs = [f for _, f in wire.messages]
    check(any(f.get("READY") == "1" for f in msgs), "systemd's READY=1 arrives over vsock (vmm.notify_socket)", msgs)
    log("tether-demo.service ready (console marker) %+.3f s after QEMU start" % ((marker - vm.started_unix_ns) / 1e9))
    for t, f in wire.messages:
        log("vmm.notify message %+.3f s after QEMU start: %s" % ((t - vm.started_unix_ns) / 1e9, f))
    wire.close()
    vm.kill()


def agent_systemd_binary():
    # Not TETHER_AGENT_SYSTEMD: a sanitized build's agent needs libasan, which the guest has not; scripts/check
    # gives the ASan build's run the release build's through TETHER_GUEST_AGENT_SYSTEMD_OVERRIDE.
    return binary("TETHER_GUEST_AGENT_SYSTEMD")


def spans_by_name(h, mid):
    return {s["name"]: s for s in h.api.spans(mid).get("spans", [])}


def ms(text, unit):
    """'2.211s (kernel)' → 2211 (ms) from systemd-analyze's line, for the part named unit."""
    m = re.search(r"([0-9.]+)(ms|s|min) \(%s\)" % unit, text)
    check(m, "systemd-analyze names the %s time" % unit, text)
    v = float(m.group(1))
    return v * {"ms": 1, "s": 1000, "min": 60000}[m.group(2)]


def scenario_agent_systemd(h, image):
    mid = "sd-agent-systemd"
    h.register(mid)
    unit = open(os.path.join(REPO, "images", "tether-agent-systemd.service"), "rb").read()
    unit = unit.replace(b"/usr/local/sbin/tether-agent-systemd", GUEST_AGENT_PATH.encode())
    vm = SystemdVM(h, image, mid, CID, agent=agent_systemd_binary(), agent_unit=unit, ssh_port=free_tcp_port(),
                   overlay={"/etc/tether/agent.conf": (0o100644, b"ready=unit:tether-demo.service\n")}).start()
    vm.wait_console(READY_MARKER, BOOT_TIMEOUT)
    status, doc, raw = h.api.ready(mid, 120)
    check(status == 200, "tetherd reports the machine ready", status, raw)
    r = h.api.machine(mid)["boot"]["ready"]
    # The demo's ExecStartPost also says READY=1 through `tether-agent notify`: whichever comes first.
    check(r["source"] == "notify" or (r["source"] == "systemd" and r["detail"] == "unit:tether-demo.service"),
          "ready when tether-demo.service is active", r)

    vm.wait_ssh(120)
    rc, out, err = vm.ssh("systemctl is-system-running --wait >/dev/null; systemd-analyze")
    check(rc == 0 and "Startup finished" in out, "systemd-analyze answers", rc, out, err)
    h.wait_machine(mid, lambda m: "systemd.userspace" in spans_by_name(h, mid), "the boot phases arrive", 60)
    spans = spans_by_name(h, mid)
    for phase, part in (("systemd.kernel", "kernel"), ("systemd.userspace", "userspace")):
        got = (spans[phase]["end_unix_ns"] - spans[phase]["start_unix_ns"]) / 1e6
        # systemd-analyze rounds to the millisecond (and prints fewer digits above a second).
        want = ms(out, part)
        check(abs(got - want) <= (2 if want < 1000 else 10), "%s lasts what systemd-analyze says" % phase,
              got, want, out)
    check("unit:ssh.service" in spans, "units are spans of the boot", sorted(spans)[:40])

    vm.ssh("systemd-run --unit=tether-fails /bin/false")
    h.wait_machine(mid, lambda m: spans_by_name(h, mid).get("unit:tether-fails.service", {}).get("status") == "error",
                   "a unit failing after boot is an error span", 60)

    journal = [o for o in h.api.logs(mid, "journal") if "line" in o]
    sources = {o.get("source") for o in journal}
    check(len(journal) > 50 and "ssh.service" in sources, "the journal arrives, the unit as source",
          len(journal), sorted(s for s in sources if s)[:30])
    log("agent-systemd: kernel %.1f ms, userspace %.1f ms (systemd-analyze: %s); %d unit spans, %d journal lines" % (
        (spans["systemd.kernel"]["end_unix_ns"] - spans["systemd.kernel"]["start_unix_ns"]) / 1e6,
        (spans["systemd.userspace"]["end_unix_ns"] - spans["systemd.userspace"]["start_unix_ns"]) / 1e6,
        out.strip().splitlines()[0], sum(1 for n in spans if n.startswith("unit:")), len(journal)))
    vm.kill()


def milestone_names(h, mid):
    return [ev.get("name") for span in h.api.spans(mid).get("spans", []) for ev in span.get("events", []) or []]


def scenario_no_agent(h, image):
    mid = "sd-bare"
    h.register(mid)
    extra = b"[Unit]\nDescription=tether test target\nDefaultDependencies=no\n"
    vm = SystemdVM(h, image, mid, CID, ssh_port=free_tcp_port(),
                   overlay={"/etc/systemd/system/tether-extra.target": (0o100644, extra)},
                   append="systemd.set_credential=vmm.notify_socket:vsock-stream:2:%d" % VMM_NOTIFY_PORT).start()
    marker = vm.wait_console(READY_MARKER, BOOT_TIMEOUT)
    status, doc, raw = h.api.ready(mid, 120)
    check(status == 200, "tetherd reports the agentless machine ready", status, raw)
    m = h.api.machine(mid)
    r = m["boot"]["ready"]
    check(r["source"] == "systemd" and r.get("detail") == "Ready.", "ready from systemd's own READY=1", r)
    check(r["delivered_unix_ns"] >= marker - 10**9, "systemd's READY=1 comes once tether-demo.service is ready "
          "(boot finished: every start job done; 1 s for the console poll)", r, marker)
    check(m["boot"].get("hostname") == "tether-guest", "X_SYSTEMD_HOSTNAME is the boot's hostname", m["boot"])
    names = milestone_names(h, mid)
    for name in ("sysinit.target", "basic.target", "multi-user.target", "systemd.ready"):
        check(name in names, "milestone %s in the trace" % name, names)

    vm.wait_ssh(120)
    # A target started, stopped and started again after boot: milestones of the same boot, which stays ready.
    boot_id = m["boot"]["boot_id"]
    rc, out, err = vm.ssh("systemctl start tether-extra.target && systemctl stop tether-extra.target && "
                          "systemctl start tether-extra.target")
    check(rc == 0, "the extra target starts, stops and starts", rc, out, err)
    m = h.wait_machine(mid, lambda m: milestone_names(h, mid).count("tether-extra.target") == 2,
                       "both activations of the extra target are milestones")
    check(m["boot"]["boot_id"] == boot_id and m["state"] == "ready" and m["boots"] == 1,
          "a target started again after boot is the same boot, still ready", m)
    check("inactive:tether-extra.target" in milestone_names(h, mid), "its stop is a milestone", milestone_names(h, mid))
    vm.ssh("systemctl --no-block poweroff")
    rc = vm.qemu.wait(timeout=BOOT_TIMEOUT)
    check(rc == 0, "QEMU exits when the guest powers off", rc)
    m = h.wait_exited(mid)
    ex = m["boot"]["exit"]
    check(m["state"] == "exited" and ex["code"] == 0 and "poweroff" in (ex.get("reason") or ""),
          "systemd's EXIT_STATUS=0 and X_SYSTEMD_SHUTDOWN=poweroff end the boot", m)
    log("agentless: ready %+.3f s after the demo's console marker; %d milestones" % (
        (r["delivered_unix_ns"] - marker) / 1e9, len(names)))


SCENARIOS = {"agent": scenario_agent, "agent-systemd": scenario_agent_systemd, "no-agent": scenario_no_agent}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in SCENARIOS:
        sys.exit("usage: test_systemd.py {%s}" % "|".join(SCENARIOS))
    require_systemd_vm_tools()
    image = SystemdImage().ensure()
    with Harness("systemd-" + sys.argv[1]) as h:
        SCENARIOS[sys.argv[1]](h, image)


if __name__ == "__main__":
    run_test(main)
