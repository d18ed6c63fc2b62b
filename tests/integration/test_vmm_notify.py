#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Agentless boots: systemd's own notifications (vmm.notify_socket) on tetherd's vmm.notify port (issue #12).

A fake systemd connects to a machine's hybrid vsock socket `<uds>_4818` the way a guest's connection reaches
it through Firecracker, Cloud Hypervisor or tether-vsock (the VMM connects to the socket: no handshake for
guest-initiated connections), one connection per message, as PID 1 does:

- READY=1 makes the machine ready in the API (the ready long-poll answers, source "systemd"); target
  activations become milestones; EXIT_STATUS + X_SYSTEMD_SHUTDOWN record the exit; a READY=1 after the
  shutdown starts a new boot.
- tetherd closes every connection itself and never writes: a client that never half-closes (as on
  Firecracker) sees EOF with nothing read, counted as closed "idle"; one that half-closes, "eof".
- An oversized message, garbage, and an empty connection are refused and counted; they change nothing.
- Another machine's socket cannot affect this machine, whatever X_SYSTEMD_MACHINE_ID it claims.
- The agentless boot survives a tetherd restart (it is stored like an agent's).
- A target reached twice before READY=1 (initrd, then root) is one boot; once ready, a target reached again
  while still active, or PID 1's machine id or hostname, is a reset: a new boot. A target stopped and started
  again after boot (INACTIVE, then ACTIVE) is the same boot.
- A machine holds at most 4 open notify connections: a fifth is refused and counted.

`with-agent`: while an agent is connected, its boot stays the agent's: systemd's READY=1 neither changes the
boot nor makes the machine ready; it is a "systemd_notify" event.
"""

import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, run_test  # noqa: E402

NOTIFY_PORT = 4818


def send(h, machine_id, payload, half_close=False):
    """One message on its own connection; returns what the host sent back before closing (must be b"")."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(30)  # far beyond tetherd's own 1 s bound: a hang is a failure, not a slow pass
    try:
        s.connect(h.guest_socket(machine_id, NOTIFY_PORT))
        try:
            if payload:
                s.sendall(payload)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # tetherd closed first: a refused connection, or the rest of an oversized message
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass  # closed with the rest of an oversized message unread
        return got
    finally:
        s.close()


def metrics(h):
    status, _, raw = h.api.request("GET", "/metrics")
    check(status == 200, "GET /metrics answers 200", status)
    text = raw.decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(tether_vmm_notify_\w+)(\{reason="(\w+)"\})? (\d+)$', line)
        if m:
            out[(m.group(1), m.group(3))] = int(m.group(4))
    return out


def milestone_names(h, machine_id):
    spans = h.api.spans(machine_id)
    names = []
    for span in spans.get("spans", []):
        for ev in span.get("events", []) or []:
            names.append(ev.get("name"))
    return names


def main():
    with Harness("vmm-notify") as h:
        h.register("vm")
        h.register("other")
        for mid in ("vm", "other"):
            check(os.path.exists(h.guest_socket(mid, NOTIFY_PORT)), "tetherd listens on %s_%d" % (mid, NOTIFY_PORT))

        # Refusals: too large, garbage, empty. Nothing is written back, nothing changes.
        check(send(h, "vm", b"READY=1\nSTATUS=" + b"x" * 5000) == b"", "an oversized message gets no answer")
        check(send(h, "vm", b"\x00\x01\x02 not a notification", half_close=True) == b"", "garbage gets no answer")
        check(send(h, "vm", b"", half_close=True) == b"", "an empty connection gets no answer")
        m = h.api.machine("vm")
        check(m["state"] == "registered" and not m.get("boot"), "refused messages change nothing", m)
        mt = metrics(h)
        for reason in ("too_large", "malformed", "empty"):
            check(mt.get(("tether_vmm_notify_refused_total", reason)) == 1, "one refusal counted as %s" % reason, mt)

        # Another machine's socket speaks for that machine only, whatever machine id it claims.
        check(send(h, "other", b"READY=1\nX_SYSTEMD_MACHINE_ID=vm\nX_SYSTEMD_HOSTNAME=vm") == b"", "no answer")
        h.wait_machine("other", lambda m: m["state"] == "ready", "the other machine is ready")
        m = h.api.machine("vm")
        check(m["state"] == "registered" and not m.get("boot"), "the other machine's message left vm alone", m)

        # A boot as systemd 256+ reports it; no half-close (Firecracker), except the first message.
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=sysinit.target\n", half_close=True) == b"", "no answer")
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=basic.target") == b"", "no answer")
        # After switch-root the root's systemd reaches the initrd's targets again: the same boot.
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=basic.target") == b"", "no answer")
        m = h.api.machine("vm")
        check(m["state"] == "booting" and m["boot"]["ready"] is None, "vm is booting before READY=1", m)
        # `tether wait-ready`, started before READY=1 (parked by then, or answered at once if it comes later).
        waiter = subprocess.Popen(h.cli_argv("wait-ready", "vm", "--timeout", "30"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        check(send(h, "vm", b"READY=1\nSTATUS=Startup finished in 1.5s.\nX_SYSTEMD_HOSTNAME=guest-vm\n"
                            b"X_SYSTEMD_MACHINE_ID=0123456789abcdef0123456789abcdef\nX_SYSTEMD_SIGNALS_LEVEL=2")
              == b"", "no answer")
        status, doc, raw = h.api.ready("vm", 10)
        check(status == 200 and doc["ready"]["source"] == "systemd", "the ready long-poll answers, source systemd",
              (status, raw[:2000]))
        check(doc["ready"]["detail"] == "Startup finished in 1.5s.", "STATUS= is the ready detail", doc)
        out, err = waiter.communicate(timeout=60)
        check(waiter.returncode == 0, "`tether wait-ready vm` exits 0", waiter.returncode, out[-2000:], err[-2000:])
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=multi-user.target") == b"", "no answer")
        m = h.wait_machine("vm", lambda m: m["boot"]["milestones"] >= 5, "five milestones stored")
        check(m["boots"] == 1, "basic.target twice before ready is one boot", m)
        boot1 = m["boot"]["boot_id"]
        check(boot1.startswith("vmm-notify-"), "an agentless boot id", m)
        check(m["boot"]["hostname"] == "guest-vm", "X_SYSTEMD_HOSTNAME is the boot's hostname", m)
        names = milestone_names(h, "vm")
        for name in ("sysinit.target", "basic.target", "systemd.ready", "multi-user.target"):
            check(name in names, "milestone %s in the trace" % name, names)

        # Shutdown: the exit status and kind are recorded.
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=shutdown.target") == b"", "no answer")
        check(send(h, "vm", b"EXIT_STATUS=0\nX_SYSTEMD_SHUTDOWN=poweroff") == b"", "no answer")
        m = h.wait_exited("vm")
        check(m["state"] == "exited" and m["boot"]["exit"]["code"] == 0, "vm exited with status 0", m)
        check("poweroff" in (m["boot"]["exit"].get("reason") or ""), "the shutdown kind is the exit reason", m)
        check(m["boot"]["boot_id"] == boot1, "the exit belongs to the same boot", m)

        # The next boot's READY=1 is a new boot.
        check(send(h, "vm", b"READY=1", half_close=True) == b"", "no answer")
        m = h.wait_machine("vm", lambda m: m["state"] == "ready", "vm is ready again")
        check(m["boot"]["boot_id"] != boot1, "a READY=1 after the shutdown starts a new boot", m)
        boot2 = m["boot"]["boot_id"]

        mt = metrics(h)
        log("metrics:", mt)
        check(mt.get(("tether_vmm_notify_messages_total", None)) == 9, "9 messages applied", mt)
        check(mt.get(("tether_vmm_notify_connections_closed_total", "idle"), 0) >= 7,
              "connections without a half-close were closed by tetherd after their message", mt)
        check(mt.get(("tether_vmm_notify_connections_closed_total", "eof"), 0) >= 4,
              "half-closed connections were closed at their EOF", mt)
        check(mt.get(("tether_vmm_notify_connections_closed_total", "timeout"), 0) == 0,
              "no connection waited for the overall timeout", mt)
        check(mt.get(("tether_vmm_notify_keys_ignored_total", None)) == 1, "X_SYSTEMD_SIGNALS_LEVEL ignored", mt)

        # At most 4 open connections per machine: a fifth is refused (and the 4 silent ones time out).
        held = []
        for _ in range(4):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            c.connect(h.guest_socket("vm", NOTIFY_PORT))
            held.append(c)
        h.wait_machine("vm", lambda m: metrics(h).get(("tether_vmm_notify_connections_open", None)) == 4,
                       "tetherd holds the 4 connections")
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=rescue.target") == b"", "no answer")
        mt = metrics(h)
        check(mt.get(("tether_vmm_notify_refused_total", "machine_limit")) == 1, "the fifth is refused", mt)
        check("rescue.target" not in milestone_names(h, "vm"), "the refused message changed nothing")
        for c in held:
            c.settimeout(30)
            check(c.recv(1) == b"", "a silent connection is closed by tetherd, nothing written")
            c.close()
        mt = metrics(h)
        check(mt.get(("tether_vmm_notify_connections_closed_total", "timeout")) == 4, "closed at their timeout", mt)
        check(mt.get(("tether_vmm_notify_refused_total", "empty")) == 5, "and counted as empty", mt)

        # Stored like an agent's boot: a restarted tetherd has it, and the next message continues it.
        h.kill_tetherd()
        h.start_tetherd()
        m = h.api.machine("vm")
        check(m["boot"]["boot_id"] == boot2 and m["state"] == "ready", "the agentless boot survived a restart", m)
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=graphical.target") == b"", "no answer")
        m = h.wait_machine("vm", lambda m: m["boot"]["milestones"] >= 2, "the restarted boot continues")
        check(m["boot"]["boot_id"] == boot2, "same boot after the restart", m)

        # A target stopped and started again after boot (systemctl stop/start) stays in the boot.
        check(send(h, "vm", b"X_SYSTEMD_UNIT_INACTIVE=graphical.target") == b"", "no answer")
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=graphical.target") == b"", "no answer")
        m = h.wait_machine("vm", lambda m: m["boot"]["milestones"] >= 4, "the stop and start are milestones")
        check(m["boot"]["boot_id"] == boot2 and m["state"] == "ready", "a target started again is the same boot", m)

        # A guest reset without a shutdown message: once ready, a target reached again is a new boot.
        check(send(h, "vm", b"X_SYSTEMD_UNIT_ACTIVE=graphical.target") == b"", "no answer")
        m = h.wait_machine("vm", lambda m: m["boot"]["boot_id"] != boot2, "a new boot after the reset")
        check(m["state"] == "booting" and m["boot"]["milestones"] == 1, "the new boot has just that target", m)
        boot3 = m["boot"]["boot_id"]

        # So is PID 1 saying its machine id or hostname once the boot is ready: it says them once, as it starts.
        check(send(h, "vm", b"READY=1\nSTATUS=Ready.") == b"", "no answer")
        h.wait_machine("vm", lambda m: m["state"] == "ready", "the third boot is ready")
        check(send(h, "vm", b"X_SYSTEMD_MACHINE_ID=0123456789abcdef0123456789abcdef") == b"", "no answer")
        m = h.wait_machine("vm", lambda m: m["boot"]["boot_id"] != boot3, "a new boot after PID 1 started again")
        check(m["state"] == "booting", "the new boot is not ready", m)
        h.assert_tetherd_alive()


def with_agent():
    with Harness("vmm-notify-agent") as h:
        h.register("vm")
        agent = h.start_service("vm", h.path("notify.sock"))
        m = h.wait_connected("vm")
        boot = m["boot"]["boot_id"]
        check(m["state"] != "ready", "not ready before anything said so", m)
        check(send(h, "vm", b"READY=1\nSTATUS=Startup finished.\nX_SYSTEMD_MACHINE_ID=other") == b"", "no answer")
        ev = h.wait_machine("vm", lambda m: any(e.get("transition") == "systemd_notify" for e in h.api.events("vm")),
                            "a systemd_notify event")
        m = h.api.machine("vm")
        check(m["boot"]["boot_id"] == boot and m["state"] != "ready" and m["boot"]["ready"] is None,
              "the agent's boot is unchanged and not ready", m)
        notify = [e for e in h.api.events("vm") if e.get("transition") == "systemd_notify"]
        log("event:", notify)
        check(notify[0]["ready"] is True and notify[0]["status"] == "Startup finished.",
              "the event carries what systemd said", notify)
        check(notify[0]["machine_id"] == "vm" and notify[0]["systemd_machine_id"] == "other",
              "the event is the transport's machine's; the claimed id is only informational", notify)
        agent.terminate()


if __name__ == "__main__":
    run_test(with_agent if sys.argv[1:] == ["with-agent"] else main)
