# SPDX-License-Identifier: MIT
"""Real microVMs for the `vm` suite: QEMU (TCG) + tether-vsock + tetherd, booting the image of images/.

A VM here is what a fleet runs: Debian's cloud kernel, an initramfs with tether-agent as /init, the agent's real
AF_VSOCK socket, a virtio-vsock device served by tether-vsock (vhost-user), which maps the guest's connection to
port 4817 onto the Unix socket `<uds_path>_4817` where tetherd listens for the registered machine. Each test's
workload is a shell script in an extra cpio archive appended to the image's initramfs (the kernel unpacks
concatenated archives in order), so one cached image serves every test.

Needs: qemu-system-x86_64, the image (built and cached by images/build-microvm on first use), tether-vsock,
tetherd, the CLI. Missing pieces skip (77) unless TETHER_REQUIRE_BINARIES=1.
"""

import fcntl
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from tetherlib import SKIP, Harness, TestFailure, binary, check, log, missing  # noqa: E402,F401

QEMU = "qemu-system-x86_64"
VSOCK_PORT = 4817


def _load_initrd_append():
    """images/initrd-append, the one implementation of appending files to an initramfs."""
    import importlib.machinery
    import importlib.util
    path = os.path.join(REPO, "images", "initrd-append")
    loader = importlib.machinery.SourceFileLoader("initrd_append", path)
    spec = importlib.util.spec_from_loader("initrd_append", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


initrd_append = _load_initrd_append()


class Image:
    """The cached microVM image: kernel, initramfs, and the kernel command line the recipe prints."""

    def __init__(self, flavour="tether"):
        self.dir = os.environ.get("TETHER_IMAGES") or os.path.join(REPO, "build-images")
        self.flavour = flavour

    def ensure(self):
        script = os.path.join(REPO, "images", "build-microvm")
        agent = binary("TETHER_AGENT", required=False)
        argv = [script, "--out", self.dir, "--flavour", self.flavour]
        if agent:
            argv += ["--agent", agent]
        os.makedirs(self.dir, exist_ok=True)
        # Tests run in parallel: one builds, the others wait for it and then find the cache.
        with open(os.path.join(self.dir, ".build-lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=1800)
        if p.returncode != 0:
            raise TestFailure("FAILED: images/build-microvm: exit %d\n%s" % (
                p.returncode, p.stdout.decode(errors="replace")[-4000:]))
        self.kernel = os.path.join(self.dir, "vmlinuz")
        self.initramfs = os.path.join(self.dir, "initramfs-%s.cpio.gz" % self.flavour)
        with open(os.path.join(self.dir, "initramfs-%s.cmdline" % self.flavour)) as f:
            self.cmdline = f.read().strip()
        microvm = os.path.join(self.dir, "initramfs-%s.microvm.cmdline" % self.flavour)
        self.microvm_cmdline = open(microvm).read().strip() if os.path.exists(microvm) else None
        return self


def start_backend(h, vhost_socket, uds_path, cid, name):
    """tether-vsock for one VM, once its vhost-user socket exists (QEMU must find it listening)."""
    backend = h.spawn([binary("TETHER_VSOCK"), "--socket", vhost_socket, "--uds-path", uds_path, "--cid", str(cid)],
                      "vsock-%s.log" % name)
    deadline = time.monotonic() + 10
    while not os.path.exists(vhost_socket):
        check(backend.poll() is None, "tether-vsock keeps running", backend.returncode)
        check(time.monotonic() < deadline, "tether-vsock creates its vhost-user socket")
        time.sleep(0.02)
    return backend


class QemuGuest:
    """What every QEMU guest of the tests has (VM here, SystemdVM in systemdvm.py): its tether-vsock's vhost-user
    socket, its serial console in a file, the QEMU process once started. kill() is the VM dying."""

    def __init__(self, h, image, machine_id, cid):
        self.h, self.image, self.id, self.cid = h, image, machine_id, cid
        self.vhost_socket = h.path("%s.vhost" % machine_id)
        self.console = h.path("console-%s.log" % machine_id)
        self.qemu = self.backend = None
        self.started_unix_ns = None

    def kill(self):
        self.qemu.kill()
        self.qemu.wait(timeout=10)

    def console_text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


class VM(QemuGuest):
    """One QEMU guest with its own tether-vsock. kill() is the VM dying; everything is reaped by the Harness."""

    def __init__(self, h, image, machine_id, cid, workload=None, mem_mb=256, append="", agent=True,
                 extra_files=None, ssh_port=None, machine="q35"):
        super().__init__(h, image, machine_id, cid)
        self.mem_mb = mem_mb
        self.append = append
        self.agent = agent
        self.workload = workload
        self.extra_files = extra_files or {}
        self.ssh_port = ssh_port  # user networking, host 127.0.0.1:ssh_port -> guest :22
        self.machine = machine    # q35 (vhost-user-vsock-pci) or microvm (vhost-user-vsock-device, virtio-mmio)

    def initrd(self):
        """The image's initramfs plus an archive with the test's workload (and extra files)."""
        files = dict(self.extra_files)
        files["/test"] = (0o40755, None)
        if self.workload is not None:
            files["/test/workload.sh"] = (0o100755, self.workload.encode())
        path = self.h.path("initrd-%s.img" % self.id)
        initrd_append.append(self.image.initramfs, path, files)
        return path

    def start(self):
        self.backend = start_backend(self.h, self.vhost_socket, self.h.uds_base(self.id), self.cid, self.id)

        microvm = self.machine == "microvm"
        cmdline = "console=ttyS0 panic=-1 " + (self.image.microvm_cmdline if microvm else self.image.cmdline)
        if self.agent:
            if self.workload is not None:
                cmdline += ' tether.exec="/bin/sh /test/workload.sh"'
        cmdline += " " + self.append
        argv = [QEMU, "-accel", "tcg", "-m", str(self.mem_mb), "-smp", "1",
                "-object", "memory-backend-memfd,id=mem,size=%dM,share=on" % self.mem_mb,
                # microvm under TCG needs the PIT (and PIC, RTC) or the kernel hangs calibrating the TSC.
                "-machine", ("microvm,acpi=on,pit=on,pic=on,rtc=on" if microvm else "q35") + ",memory-backend=mem",
                "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "file:" + self.console,
                "-chardev", "socket,id=vsock,path=" + self.vhost_socket,
                "-device", "vhost-user-vsock-%s,chardev=vsock" % ("device" if microvm else "pci"),
                "-kernel", self.image.kernel, "-initrd", self.initrd(), "-append", cmdline.strip()]
        if self.ssh_port:
            argv += ["-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22" % self.ssh_port,
                     "-device", "virtio-net-pci,netdev=net0,romfile="]
        self.started_unix_ns = time.time_ns()
        self.qemu = self.h.spawn(argv, "qemu-%s.log" % self.id)
        return self

    def wait_exit(self, timeout):
        try:
            return self.qemu.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("FAILED: VM %s powers off within %d s" % (self.id, timeout))


def require_vm_tools():
    if not shutil.which(QEMU):
        missing("%s is not installed (scripts/deps installs qemu-system-x86)" % QEMU)
    if not binary("TETHER_VSOCK", required=False):
        missing("TETHER_VSOCK (tether-vsock) is not built")
    if not binary("TETHER_AGENT", required=False) and not os.environ.get("TETHER_IMAGES"):
        missing("no static tether-agent to bake into the image (TETHER_AGENT)")
