# SPDX-License-Identifier: MIT
"""Full-distro systemd guests for the `systemd` suite and bench/readiness-full-distro.

The image is images/build-systemd-guest's (Debian trixie, systemd 257, sshd, qemu-guest-agent, tether-demo.service
on an ext4 disk; built once and cached in build-images/systemd-guest/, or $TETHER_IMAGES/systemd-guest/). A
SystemdVM boots it under QEMU TCG with the disk in snapshot mode (the image never changes), a tether-vsock backend
like tests/vm's microVMs, and optionally:

  agent=True     the static tether-agent in service mode as an early unit (images/tether-agent.service); it gets
                 READY=1 from tether-demo.service's last ExecStartPost, right after the console marker
  agent=PATH     the same with another agent binary (e.g. a systemd-integrated build); agent_unit=BYTES
                 installs another unit file as tether-agent.service (enabled in sysinit.target.wants/)
  append         kernel command line extras, e.g. systemd.set_credential=vmm.notify_socket:vsock-stream:2:PORT
  credentials    {name: value} passed as SMBIOS type 11 system credentials (io.systemd.credential:NAME=VALUE)
  qga=True       a virtio-serial port org.qemu.guest_agent.0 on a Unix socket (self.qga_socket), and QMP on
                 self.qmp_socket (its VSERPORT_CHANGE event is the moment the guest agent opens the channel)
  ssh_port       user networking, host 127.0.0.1:ssh_port -> guest :22 (loopback only)
  overlay        {guest path: (mode, bytes or None for a directory)} copied into the root before systemd starts
  setup          shell run by the initramfs with the root at $1 (e.g. enabling units: ln -s into *.wants/)

Files are added through the initramfs (images/initrd-append), never by changing the cached disk image.
"""

import json
import os
import socket
import stat
import subprocess
import threading
import time

from vmlib import QEMU, REPO, SKIP, TestFailure, binary, check, initrd_append, log, missing, start_backend  # noqa
from vmlib import QemuGuest  # noqa: E402

GUEST_AGENT_PATH = "/usr/local/sbin/tether-agent"
READY_MARKER = b"TETHER-DEMO-READY"  # tether-demo.service's ExecStartPost writes it to the serial console


class SystemdImage:
    """images/build-systemd-guest's output: kernel, initramfs, disk, command line, SSH client config."""

    def __init__(self):
        base = os.environ.get("TETHER_IMAGES") or os.path.join(REPO, "build-images")
        self.base = base
        self.dir = os.path.join(base, "systemd-guest")

    def ensure(self):
        script = os.path.join(REPO, "images", "build-systemd-guest")
        os.makedirs(self.base, exist_ok=True)
        if os.geteuid() != 0 and not os.path.exists(os.path.join(self.dir, "rootfs.img")):
            missing("no cached systemd guest image and not root (images/build-systemd-guest needs debootstrap)")
        # The script takes its own lock: parallel tests wait for one build and then find the cache.
        p = subprocess.run([script, "--out", self.base], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=1800)
        if p.returncode != 0:
            raise TestFailure("FAILED: images/build-systemd-guest: exit %d\n%s" % (
                p.returncode, p.stdout.decode(errors="replace")[-4000:]))
        self.build_log = p.stdout.decode(errors="replace")
        self.kernel = os.path.join(self.dir, "vmlinuz")
        self.initramfs = os.path.join(self.dir, "initramfs.cpio.gz")
        self.disk = os.path.join(self.dir, "rootfs.img")
        self.ssh_config = os.path.join(self.dir, "ssh", "ssh_config")
        with open(os.path.join(self.dir, "cmdline")) as f:
            self.cmdline = f.read().strip()
        return self


def default_agent_unit():
    with open(os.path.join(REPO, "images", "tether-agent.service"), "rb") as f:
        return f.read()


class SystemdVM(QemuGuest):
    """One systemd guest with its own tether-vsock; everything is reaped by the Harness."""

    def __init__(self, h, image, machine_id, cid, agent=False, append="", credentials=None, qga=False,
                 ssh_port=None, overlay=None, setup="", mem_mb=512, smp=1, agent_unit=None):
        super().__init__(h, image, machine_id, cid)
        self.agent, self.append, self.qga, self.ssh_port = agent, append, qga, ssh_port
        self.agent_unit = agent_unit
        self.credentials = credentials or {}
        self.overlay = dict(overlay or {})
        self.setup = setup
        self.mem_mb, self.smp = mem_mb, smp
        self.qga_socket = h.path("%s.qga" % machine_id) if qga else None
        self.qmp_socket = h.path("%s.qmp" % machine_id) if qga else None

    def initrd(self):
        files = {"/overlay": (stat.S_IFDIR | 0o755, None)}
        setup = self.setup
        if self.agent:
            path = binary("TETHER_AGENT") if self.agent is True else self.agent
            with open(path, "rb") as f:
                files["/overlay" + GUEST_AGENT_PATH] = (0o100755, f.read())
            unit = self.agent_unit or default_agent_unit()
            files["/overlay/etc/systemd/system/tether-agent.service"] = (0o100644, unit)
            setup += ("mkdir -p \"$1/etc/systemd/system/sysinit.target.wants\"\n"
                      "ln -sf ../tether-agent.service \"$1/etc/systemd/system/sysinit.target.wants/\"\n")
        for path, (mode, data) in self.overlay.items():
            files["/overlay/" + path.lstrip("/")] = (mode, data)
        if setup:
            files["/overlay-setup"] = (0o100755, ("#!/bin/sh\nset -e\n" + setup).encode())
        out = self.h.path("initrd-%s.img" % self.id)
        initrd_append.append(self.image.initramfs, out, files)
        return out

    def argv(self):
        cmdline = self.image.cmdline + " " + self.append
        argv = [QEMU, "-accel", "tcg", "-m", str(self.mem_mb), "-smp", str(self.smp),
                "-object", "memory-backend-memfd,id=mem,size=%dM,share=on" % self.mem_mb,
                "-machine", "q35,memory-backend=mem", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
                "-serial", "file:" + self.console,
                "-chardev", "socket,id=vsock,path=" + self.vhost_socket,
                "-device", "vhost-user-vsock-pci,chardev=vsock",
                "-kernel", self.image.kernel, "-initrd", self.initrd(), "-append", cmdline.strip(),
                "-drive", "file=%s,format=raw,if=virtio,snapshot=on" % self.image.disk]
        for name, value in sorted(self.credentials.items()):
            argv += ["-smbios", "type=11,value=io.systemd.credential:%s=%s" % (name, value)]
        if self.ssh_port:
            argv += ["-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22" % self.ssh_port,
                     "-device", "virtio-net-pci,netdev=net0,romfile="]
        if self.qga:
            argv += ["-chardev", "socket,id=qga0,path=%s,server=on,wait=off" % self.qga_socket,
                     "-device", "virtio-serial-pci,id=vser0",  # the port needs an id for VSERPORT_CHANGE
                     "-device", "virtserialport,bus=vser0.0,chardev=qga0,id=qga0,name=org.qemu.guest_agent.0",
                     "-qmp", "unix:%s,server=on,wait=off" % self.qmp_socket]
        return argv

    def start(self):
        self.backend = start_backend(self.h, self.vhost_socket, self.h.uds_base(self.id), self.cid, self.id)
        argv = self.argv()
        self.started_unix_ns = time.time_ns()
        self.qemu = self.h.spawn(argv, "qemu-%s.log" % self.id)
        return self

    def wait_console(self, marker, timeout, interval=0.005):
        """Host time (unix ns) at which marker (bytes) is first seen on the serial console, polled every
        interval; fails if QEMU exits or the timeout passes."""
        deadline = time.monotonic() + timeout
        offset = 0
        tail = b""
        while time.monotonic() < deadline:
            try:
                with open(self.console, "rb") as f:
                    f.seek(offset)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            if data:
                now = time.time_ns()
                offset += len(data)
                if marker in tail + data:
                    return now
                tail = (tail + data)[-len(marker):]
            check(self.qemu.poll() is None, "QEMU keeps running", self.qemu.returncode,
                  self.console_text()[-3000:])
            time.sleep(interval)
        raise TestFailure("FAILED: %r on %s's console within %d s; console:\n%s" % (
            marker, self.id, timeout, self.console_text()[-3000:]))

    def ssh_argv(self, command, connect_timeout=2):
        return ["ssh", "-F", self.image.ssh_config, "-o", "ConnectTimeout=%d" % connect_timeout,
                "-p", str(self.ssh_port), "root@127.0.0.1", command]

    def ssh(self, command, timeout=60):
        p = subprocess.run(self.ssh_argv(command), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def wait_ssh(self, timeout, interval=0.25):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            check(self.qemu.poll() is None, "QEMU keeps running", self.qemu.returncode)
            try:
                rc, out, err = self.ssh("true", timeout=10)
                if rc == 0:
                    return
                last = (rc, err)
            except subprocess.TimeoutExpired as e:
                last = e
            time.sleep(interval)
        raise TestFailure("FAILED: SSH to %s within %d s (last: %r)" % (self.id, timeout, last))


class NotifyWireListener:
    """A stand-in for a vmm.notify host on one vsock port: listens on the Unix socket tether-vsock maps guest
    connections to port P onto (<uds_path>_P), reads each connection's message to EOF (systemd shuts down its
    side after the message; tether-vsock propagates that) and closes at once. self.messages: [(host unix ns,
    {key: value})]. Only to see what systemd sends through tether-vsock; tetherd's own listener is the product."""

    def __init__(self, path):
        self.messages = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.bind(path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                data = b""
                try:
                    while len(data) < 65536:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
            fields = dict(line.split("=", 1) for line in data.decode(errors="replace").split("\n") if "=" in line)
            self.messages.append((time.time_ns(), fields))

    def close(self):
        self.sock.close()


def unix_connect(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(timeout)
    s.connect(path)
    return s


def read_json_line(s, buf):
    """One JSON object per line from s; returns (obj, rest of buf). Raises socket.timeout."""
    while b"\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    line = line.strip().lstrip(b"\xff")
    if not line:
        return read_json_line(s, rest)
    return json.loads(line), rest


def qmp_open(path, timeout=10):
    """A QMP connection in command mode: (socket, buffer)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            s = unix_connect(path, timeout)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    greeting, buf = read_json_line(s, b"")
    check("QMP" in greeting, "QMP greets", greeting)
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    while True:
        msg, buf = read_json_line(s, buf)
        if "return" in msg:
            return s, buf


def qga_command(path, cmd, timeout):
    """One qemu-guest-agent command (a dict) on a fresh connection to its channel: its "return" value, or None if
    nothing answered within timeout. guest-sync-delimited first, with a fresh id: the agent drops whatever it had
    half-read, and answers left over from an earlier connection are skipped until the one with that id."""
    try:
        s = unix_connect(path, timeout)
    except OSError:
        return None
    with s:
        try:
            sync_id = int.from_bytes(os.urandom(4), "little") & 0x7fffffff
            s.sendall(json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}).encode() + b"\n")
            buf = b""
            while True:
                msg, buf = read_json_line(s, buf)
                if msg.get("return") == sync_id:
                    break
            s.sendall(json.dumps(cmd).encode() + b"\n")
            msg, buf = read_json_line(s, buf)
            return msg.get("return")
        except (OSError, ValueError):
            return None


def qga_ping(path, timeout):
    """guest-ping over the guest agent's channel: True if answered within timeout."""
    return qga_command(path, {"execute": "guest-ping"}, timeout) == {}


def require_systemd_vm_tools():
    if not binary("TETHER_VSOCK", required=False):
        missing("TETHER_VSOCK (tether-vsock) is not built")
    for tool in (QEMU, "ssh"):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            missing("%s is not installed (scripts/deps)" % tool)

