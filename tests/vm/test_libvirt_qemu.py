#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A real libvirtd with the QEMU driver (TCG) starts a microVM whose virtio-vsock comes from tether-vsock through
QEMU command-line passthrough; tetherd watches that libvirtd (--libvirt-uri) and does the rest by itself.

The test runs its own libvirtd, never the system's: system mode (root), in a private mount namespace where
/run, /var and /etc/libvirt are directories of the test's temp dir, so its sockets, state, logs, capability
cache and domain definitions are all there and vanish with it, whatever else runs on the host (a system
libvirtd, systemd or not). Its QEMU runs as root without a security driver, cgroups or namespaces (qemu.conf):
the kernel, initrd and sockets are the test's own files. See Libvirtd below and docs/libvirt.md.

Proves, with a persistent domain (no <vsock> device; tether metadata with an id and a uds-path):
  - `virsh define` registers the machine (source libvirt, source_id = the domain UUID, id from the metadata,
    uds_path from the metadata, no CID), `domain.defined (added)`
  - a `tether wait-ready` parked before `virsh start` answers 0 when the guest's workload says READY=1 (its agent
    reaches tetherd through tether-vsock's Unix socket `<uds-path>_4817`)
  - events registered, domain.defined, domain.started (booted), connected, booting, ready, in that order
  - ONE trace, the boot and its spans read as one view (the same boot, mapping fixed, same times before and after
    the spans are read): machine.boot starts at libvirt's start (host_start_unix_ns, taken between `virsh start` being
    called and the kernel starting), a host.start span up to the kernel, then kernel, init, workload.start, all
    children of the root, in order; host_start_to_ready_ns recorded (> kernel_to_ready_ns); `tether trace`
    shows it; the workload's stdout arrives
  - `virsh destroy`: state stopped, `libvirt: domain stopped (destroyed)`, a domain.stopped event, CID-less
  - a second boot (the domain redefined with a workload that never gets ready): a `tether wait-ready` parked on
    it answers 2 at once when the domain is destroyed, not at its timeout (the agent's connection ends as QEMU
    gets SIGTERM, before libvirt's STOPPED: `disconnected` or `stopped`, whichever tetherd sees first); then
    stopped with libvirt's reason
  - `virsh undefine`: the machine is deleted
Skipped (77) when a private libvirtd cannot run here at all (not root, no mount namespaces); a missing libvirt
package fails under TETHER_REQUIRE_BINARIES=1 (scripts/deps installs it).
"""

import glob
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import uuid
from xml.sax.saxutils import escape, quoteattr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmlib import QEMU, SKIP, Harness, Image, check, initrd_append, log, require_vm_tools  # noqa: E402
from vmlib import missing, start_backend  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from tetherlib import Thread, log_lines, run_test  # noqa: E402

BOOT_TIMEOUT = 120
CID = 3
MID = "vm-libvirt"
DOMAIN = "tether-vm-libvirt"
NS = "https://tether.dev/xmlns/libvirt/1"

# Debian builds the QEMU driver with user and group libvirt-qemu (created by libvirt-daemon-system's postinst),
# and the driver resolves them before it reads qemu.conf: without them it does not start. The test does not
# install libvirt-daemon-system (it would start a system libvirtd) nor add users to the host: inside its mount
# namespace libvirtd sees copies of /etc/passwd and /etc/group with them. qemu.conf runs QEMU as root anyway.
QEMU_USER = "libvirt-qemu"

LIBVIRTD_CONF = """# tests/vm/test_libvirt_qemu.py: a private libvirtd, only root on this host reaches its sockets.
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:stderr"
"""

# QEMU as root without DAC/AppArmor labelling, cgroups or a private /dev: nothing to relabel (the test's own
# files), nothing that depends on systemd/machined or on the host's cgroup layout, works in containers.
QEMU_CONF = """user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""


class Libvirtd:
    """A private libvirtd (system mode, QEMU driver) as a child of the test, in its own mount namespace."""

    def __init__(self, h):
        self.h = h
        self.root = h.path("libvirt")
        self.run_dir = os.path.join(self.root, "run")
        self.uri = "qemu:///system?socket=%s/libvirt/libvirt-sock" % self.run_dir
        self.ro_uri = "qemu:///system?socket=%s/libvirt/libvirt-sock-ro" % self.run_dir
        self.proc = None

    def mounts(self):
        binds = [("run", "/run"), ("var", "/var"), ("etc", "/etc/libvirt")]
        for db, lookup, line in (
                ("passwd", pwd.getpwnam, "%s:x:64055:64055:libvirt QEMU:/var/lib/libvirt:/usr/sbin/nologin\n"),
                ("group", grp.getgrnam, "%s:x:64055:\n")):
            try:
                lookup(QEMU_USER)
            except KeyError:
                shutil.copy("/etc/" + db, os.path.join(self.root, db))
                with open(os.path.join(self.root, db), "a") as f:
                    f.write(line % QEMU_USER)
                binds.append((db, "/etc/" + db))
        return binds

    def start(self, timeout=60):
        for d in ("run", "var", "etc"):
            os.makedirs(os.path.join(self.root, d), mode=0o755, exist_ok=True)
        with open(os.path.join(self.root, "etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
        with open(os.path.join(self.root, "etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        script = "set -e\n"
        for src, dst in self.mounts():
            script += "mount --bind %s %s\n" % (os.path.join(self.root, src), dst)
        script += "exec libvirtd --config /etc/libvirt/libvirtd.conf --pid-file /run/libvirtd.pid\n"
        self.proc = self.h.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                 "libvirtd.log")
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            check(self.proc.poll() is None, "libvirtd keeps running after start", "exit %s" % self.proc.returncode)
            if os.path.exists(os.path.join(self.run_dir, "libvirt", "libvirt-sock")):
                p = self.virsh("version", check_rc=None, timeout=30)
                if p.returncode == 0:
                    log("libvirtd is up after %.2f s: %s" % (time.monotonic() - t0, " ".join(p.stdout.split())))
                    return self
            check(time.monotonic() < deadline, "libvirtd answers `virsh version` within %d s" % timeout)
            time.sleep(0.1)

    def restart(self):
        """libvirtd goes away and comes back (an upgrade, a crash): its domains and their QEMUs stay."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.h.children.remove(self.proc)
        return self.start()

    def virsh(self, *args, check_rc=0, timeout=60):
        p = subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check_rc is not None:
            check(p.returncode == check_rc, "`virsh %s` exits %d" % (" ".join(args), check_rc),
                  "exit %d" % p.returncode, "stdout: " + p.stdout[-2000:], "stderr: " + p.stderr[-2000:])
        return p

    def stop(self):
        """Leaves nothing behind: QEMU is libvirt's daemonized child, not in libvirtd's process group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            p = self.virsh("list", "--name", check_rc=None, timeout=30)
            for name in p.stdout.split() if p.returncode == 0 else []:
                self.virsh("destroy", name, check_rc=None, timeout=30)
        for pidfile in glob.glob(os.path.join(self.run_dir, "libvirt", "qemu", "*.pid")):
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    if QEMU.encode() in f.read():
                        os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # QEMU's log as libvirt wrote it (its command line, its errors): into the test dir, shown on failure.
        for f in glob.glob(os.path.join(self.root, "var", "log", "libvirt", "qemu", "*.log")):
            shutil.copy(f, self.h.path("libvirt-qemu-" + os.path.basename(f)))


def require_libvirtd():
    for tool in ("libvirtd", "virsh", "unshare"):
        if not shutil.which(tool):
            missing("%s is not installed (scripts/deps installs libvirt-daemon, libvirt-daemon-driver-qemu, "
                         "libvirt-clients)" % tool)
    if not glob.glob("/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so") + \
            glob.glob("/usr/lib*/libvirt/connection-driver/libvirt_driver_qemu.so"):
        missing("libvirt's QEMU driver is not installed (scripts/deps installs libvirt-daemon-driver-qemu)")
    # What no package fixes: a skip even under TETHER_REQUIRE_BINARIES=1.
    if os.geteuid() != 0:
        print("SKIP: a private system-mode libvirtd (its own mount namespace) needs root", flush=True)
        sys.exit(SKIP)
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "--bind", "/tmp", "/tmp"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        print("SKIP: cannot bind-mount in a private mount namespace here (%s): no private libvirtd"
              % p.stdout.strip(), flush=True)
        sys.exit(SKIP)


def domain_xml(dom_uuid, image, initrd, workload, vhost_socket, uds_path, console):
    cmdline = "console=ttyS0 panic=-1 %s tether.exec=\"/bin/sh %s\"" % (image.cmdline, workload)
    return """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <tether:machine xmlns:tether='%(ns)s' id='%(mid)s' request-id='req-libvirt' uds-path=%(uds)s/>
  </metadata>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>%(kernel)s</kernel>
    <initrd>%(initrd)s</initrd>
    <cmdline>%(cmdline)s</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>%(emulator)s</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path=%(console)s/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-chardev'/>
    <qemu:arg value=%(chardev)s/>
    <qemu:arg value='-device'/>
    <qemu:arg value='vhost-user-vsock-pci,chardev=vsock0'/>
  </qemu:commandline>
</domain>
""" % {"name": DOMAIN, "uuid": dom_uuid, "ns": NS, "mid": MID, "uds": quoteattr(uds_path),
       "kernel": escape(image.kernel), "initrd": escape(initrd), "cmdline": escape(cmdline),
       "emulator": escape(shutil.which(QEMU)), "console": quoteattr(console),
       "chardev": quoteattr("socket,id=vsock0,path=" + vhost_socket)}


def transitions(h):
    return [(e.get("transition"), e.get("reason")) for e in h.api.events(MID)]


def wait_event(h, transition, count, timeout):
    deadline = time.monotonic() + timeout
    while True:
        seen = transitions(h)
        if sum(1 for t, _ in seen if t == transition) >= count:
            return seen
        check(time.monotonic() < deadline, "%s event #%d within %d s" % (transition, count, timeout), seen)
        time.sleep(0.05)


def wait_ready_cli(h, timeout):
    return h.cli("wait-ready", MID, "--timeout", str(timeout), timeout=timeout + 30)


def in_order(seen, wanted):
    """True when wanted (transition names) occur in seen in this order (others may come between)."""
    names = [t for t, _ in seen]
    i = 0
    for name in names:
        if i < len(wanted) and name == wanted[i]:
            i += 1
    return i == len(wanted)


def boot_and_spans(h):
    """The machine (its current boot) and that boot's spans as one view: the machine read before and after the
    spans, both reads the same boot (id, index, trace) with its clock mapping fixed and the same times, and the
    spans of that boot. After ready nothing the checks compare may move between the reads; if it did, that is a
    failure, not a retry."""
    m = h.api.machine(MID)
    doc = h.api.spans(MID)
    again = h.api.machine(MID)
    b, b2 = m["boot"], again["boot"]
    keys = ("boot_id", "index", "trace_id", "clock_fixed", "host_start_unix_ns", "kernel_start_unix_ns",
            "first_seen_unix_ns", "ready")
    check(b["clock_fixed"] is True, "the boot's clock mapping is fixed once it is ready", b)
    check({k: b.get(k) for k in keys} == {k: b2.get(k) for k in keys},
          "the boot is the same, with the same times, before and after reading its spans", b, b2)
    check(doc.get("boot_id") == b["boot_id"] and doc.get("trace_id") == b["trace_id"],
          "the spans are the boot's", doc.get("boot_id"), b["boot_id"])
    return again, doc


def scenario(h, lv, image):
    dom_uuid = str(uuid.uuid4())
    uds = h.uds_base(MID)
    vhost = h.path("vsock-%s.vhost" % MID)
    console = h.path("console-%s.log" % MID)
    initrd = h.path("initrd-%s.img" % MID)
    initrd_append.append(image.initramfs, initrd, {
        "/test": (0o40755, None),
        "/test/ready.sh": (0o100755, b'echo "hello from a libvirt domain"\n/init notify READY=1 "STATUS=up"\n'
                                     b'exec busybox sleep 600\n'),
        "/test/hang.sh": (0o100755, b'echo "never ready"\nexec busybox sleep 600\n'),
    })
    xml_path = h.path("domain.xml")

    def define(workload):
        with open(xml_path, "w") as f:
            f.write(domain_xml(dom_uuid, image, initrd, workload, vhost, uds, console))
        lv.virsh("define", xml_path)

    # Registered from libvirt's DEFINED event: nothing calls POST /v1/machines.
    define("/test/ready.sh")
    m = h.wait_machine(MID, lambda m: True, "the defined domain is registered from libvirt", timeout=30)
    check(m["source"] == "libvirt" and m["source_id"] == dom_uuid, "source libvirt, source_id = the domain UUID",
          m)
    check(m["uds_path"] == uds and m["cid"] is None, "the metadata's uds-path, no CID", m)
    check(m["request_id"] == "req-libvirt", "the metadata's request id", m)
    check((m.get("attributes") or {}).get("libvirt.domain.name") == DOMAIN, "libvirt.domain.name", m)
    check(m["state"] == "registered", "registered, no boot yet", m)
    check(os.path.exists(uds + "_4817"), "tetherd listens on <uds-path>_4817", uds)

    start_backend(h, vhost, uds, CID, MID)
    waiter = Thread(wait_ready_cli, h, BOOT_TIMEOUT)
    waiter.start()
    time.sleep(0.5)
    t_start = time.time_ns()
    lv.virsh("start", DOMAIN)
    log("virsh start returned after %.3f s" % ((time.time_ns() - t_start) / 1e9))
    rc, out, err = waiter.join_result(BOOT_TIMEOUT + 30)
    check(rc == 0, "a wait-ready parked before `virsh start` exits 0 (ready)", rc, out, err)

    m, doc = boot_and_spans(h)
    b = m["boot"]
    check(m["state"] == "ready" and b["ready"]["source"] == "notify", "ready through the notify socket", m)
    # The long-poll is answered first; the ready event follows in the session's next turn (session.h, tail_record).
    seen = wait_event(h, "ready", 1, 30)
    check(("domain.defined", "added") in seen and ("domain.started", "booted") in seen,
          "domain.defined (added) and domain.started (booted) events", seen)
    check(in_order(seen, ["registered", "domain.defined", "domain.started", "connected", "booting", "ready"]),
          "registered, domain.defined, domain.started, connected, booting, ready in this order", seen)

    # One trace from libvirt's start to ready.
    hs, ks = b["host_start_unix_ns"], b["kernel_start_unix_ns"]
    check(hs is not None and t_start <= hs, "host_start_unix_ns: libvirt's start, after `virsh start` was called",
          t_start, b)
    check(ks is not None and hs < ks, "the guest kernel starts after the host start", b)
    r = b["ready"]
    check(r["host_start_to_ready_ns"] is not None and r["host_start_to_ready_ns"] > r["kernel_to_ready_ns"] > 0,
          "host_start_to_ready_ns recorded, longer than kernel_to_ready_ns", r)
    spans = doc["spans"]
    names = [s["name"] for s in spans]
    root = spans[0]
    roots = [s["name"] for s in spans if not s.get("parent_span_id")]
    check(root["name"] == "machine.boot" and roots == ["machine.boot"], "one root span, machine.boot", roots)
    check({s["trace_id"] for s in spans} == {b["trace_id"]} == {doc.get("trace_id")},
          "one trace: every span in the boot's trace", b["trace_id"], doc.get("trace_id"))
    check(root["start_unix_ns"] == hs, "machine.boot starts at libvirt's start", root, hs)
    by_name = {}
    for s in spans:
        by_name.setdefault(s["name"], s)
    stages = ["host.start", "kernel", "init", "workload.start"]
    for name in stages:
        check(name in by_name, "a %s span" % name, names)
        s = by_name[name]
        check(s.get("parent_span_id") == root["span_id"], "%s is a child of machine.boot" % name, s)
        check(root["start_unix_ns"] <= s["start_unix_ns"] <= s["end_unix_ns"] <= root["end_unix_ns"],
              "%s lies within machine.boot" % name, s, root)
    check(names.index("host.start") == 1, "host.start is the first child", names)
    host = by_name["host.start"]
    check(host["start_unix_ns"] == hs and host["end_unix_ns"] == ks, "host.start covers libvirt start -> kernel",
          host, b)
    for a, z in zip(stages, stages[1:]):
        check(by_name[a]["end_unix_ns"] <= by_name[z]["start_unix_ns"] + 1000, "%s then %s" % (a, z),
              by_name[a], by_name[z])
    _, trace_out, _ = h.cli("trace", MID, check_rc=0)
    log("tether trace %s:\n%s" % (MID, trace_out))
    check(b["trace_id"] in trace_out and all(n in trace_out for n in stages),
          "`tether trace` shows the trace id and the host.start, kernel, init, workload.start rows", trace_out)
    check("hello from a libvirt domain" in log_lines(h.api.logs(MID), "stdout"), "the workload's stdout arrives")
    log("libvirt start -> kernel %.3f s, host start -> ready %.3f s, kernel -> ready %.3f s" % (
        (ks - hs) / 1e9, r["host_start_to_ready_ns"] / 1e9, r["kernel_to_ready_ns"] / 1e9))

    # virsh destroy: stopped, with libvirt's reason.
    lv.virsh("destroy", DOMAIN)
    m = h.wait_machine(MID, lambda m: m["state"] == "stopped", "the machine is stopped after `virsh destroy`", 30)
    check(m["state_reason"] == "libvirt: domain stopped (destroyed)", "state_reason: libvirt's reason", m)
    check(m["connected"] is False and m["cid"] is None, "no agent connection, no CID", m)
    seen = wait_event(h, "domain.stopped", 1, 10)
    check(("domain.stopped", "destroyed") in seen, "a domain.stopped (destroyed) event", seen)

    # A second boot that never gets ready: a parked waiter learns at once when the domain is destroyed.
    define("/test/hang.sh")
    lv.virsh("start", DOMAIN)
    wait_event(h, "domain.started", 2, 30)  # before parking: not the previous boot's `stopped` (docs/libvirt.md)
    waiter = Thread(wait_ready_cli, h, 100)
    waiter.start()
    m = h.wait_machine(MID, lambda m: m["connected"] and (m.get("boot") or {}).get("index") == 2,
                       "the second boot's agent connects", BOOT_TIMEOUT)
    check(m["state"] == "booting", "the second boot is booting", m)
    time.sleep(1)
    t0 = time.monotonic()
    lv.virsh("destroy", DOMAIN)
    rc, out, err = waiter.join_result(60)
    took = waiter.done_at - t0
    check(rc == 2, "the parked wait-ready exits 2 (failed before ready)", rc, out, err)
    check(took < 20, "it answers at once, not at its 100 s timeout", took)
    # `virsh destroy` SIGTERMs QEMU, which stops the vhost-user device at once: tether-vsock closes the agent's
    # connection, and libvirt reports STOPPED only when QEMU has exited (about 2 s later here). Whichever tetherd
    # sees first answers the waiter: usually the disconnect.
    check("destroyed" in out + err or "disconnected" in out + err,
          "the answer says the agent disconnected or libvirt destroyed the domain", out, err)
    m = h.wait_machine(MID, lambda m: m["state"] == "stopped", "the machine is stopped after the second destroy", 30)
    check(m["state_reason"] == "libvirt: domain stopped (destroyed)" and m["boots"] == 2,
          "stopped with libvirt's reason, two boots kept", m)
    seen = wait_event(h, "domain.stopped", 2, 10)
    log("second boot: the waiter answered %.2f s after `virsh destroy`: %s" % (took, (out + err).strip()))

    # libvirtd restarts: tetherd's connection closes, it reconnects with backoff, re-synchronises from the live
    # domain list (the machine is neither duplicated nor changed) and receives events on the new connection.
    lv.restart()
    deadline = time.monotonic() + 60
    while "again (re-synchronised)" not in open(h.path("tetherd.log")).read():
        check(time.monotonic() < deadline, "tetherd reconnects to the restarted libvirtd within 60 s")
        time.sleep(0.2)
    machines = [x for x in h.api.get_ok("/v1/machines")["machines"] if x.get("source_id") == m.get("source_id")]
    check(len(machines) == 1 and machines[0]["machine_id"] == MID and machines[0]["state"] == "stopped",
          "after the resync: one machine for the domain, still stopped", machines)
    lv.virsh("start", DOMAIN)
    wait_event(h, "domain.started", 3, 30)
    lv.virsh("destroy", DOMAIN)
    wait_event(h, "domain.stopped", 3, 30)
    log("libvirtd restarted: tetherd reconnected, re-synchronised, and follows the domain's events again")

    lv.virsh("undefine", DOMAIN)
    deadline = time.monotonic() + 10
    while h.api.get("/v1/machines/" + MID)[0] != 404:
        check(time.monotonic() < deadline, "`virsh undefine` deletes the machine")
        time.sleep(0.05)
    log("events: %s" % " ".join("%s%s" % (t, "(%s)" % r if r else "") for t, r in transitions(h)))


def main():
    require_vm_tools()
    require_libvirtd()
    image = Image().ensure()
    with Harness("vm-libvirt", start=False) as h:
        lv = Libvirtd(h)
        try:
            lv.start()
            h.tetherd_args = ["--libvirt-uri", lv.ro_uri]
            h.start_tetherd()
            scenario(h, lv, image)
        finally:
            lv.stop()


if __name__ == "__main__":
    run_test(main)
