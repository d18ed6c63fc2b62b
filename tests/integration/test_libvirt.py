#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The real tetherd with --libvirt-uri on libvirt's test driver, from a node XML file (test:///PATH).

The test driver runs inside tetherd's process (no libvirtd), so this script cannot change its domains: it checks
the initial re-synchronisation from the file — a running domain with a <vsock> CID, a shut-off domain whose tether
metadata gives id, request id and a uds_path (hybrid vsock: how a QEMU command-line vhost-user-vsock is reached),
a domain with neither is left out — then a fake agent on the metadata's uds_path stitched into a trace, and a
restart with the same state directory that neither duplicates nor loses machines and leaves an API
registration alone. Live events (started, suspended, destroyed, metadata changes, reconnection) are covered by
tests/integration/libvirt-driver-test.c, in one process with the driver.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, binary, check, log, run_test  # noqa: E402

NS = "https://tether.dev/xmlns/libvirt/1"
RUNNING_UUID = "aaaaaaaa-0000-0000-0000-000000000001"
OFF_UUID = "aaaaaaaa-0000-0000-0000-000000000002"
PLAIN_UUID = "aaaaaaaa-0000-0000-0000-000000000003"


def node_xml(uds_base):
    return """<node>
  <domain type='test'>
    <name>run-1</name>
    <uuid>%(run)s</uuid>
    <memory>8192</memory>
    <os><type>hvm</type></os>
    <devices><vsock model='virtio'><cid auto='no' address='41'/></vsock></devices>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test'>
    <name>off-1</name>
    <uuid>%(off)s</uuid>
    <memory>8192</memory>
    <os><type>hvm</type></os>
    <metadata>
      <tether:machine xmlns:tether='%(ns)s' id='passthrough-1' request-id='req-lv' service='lv-svc'
                      ready='any' uds-path='%(uds)s'/>
    </metadata>
    <devices/>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='test'>
    <name>plain</name>
    <uuid>%(plain)s</uuid>
    <memory>8192</memory>
    <os><type>hvm</type></os>
  </domain>
</node>
""" % {"run": RUNNING_UUID, "off": OFF_UUID, "plain": PLAIN_UUID, "ns": NS, "uds": uds_base}


def libvirt_machines(h):
    ms = h.api.get_ok("/v1/machines")["machines"]
    return {m["machine_id"]: m for m in ms}


def main():
    fake = binary("FAKE_GUEST")
    with Harness("libvirt", start=False) as h:
        uds = h.uds_base("passthrough-1")
        node = h.path("node.xml")
        with open(node, "w") as f:
            f.write(node_xml(uds))
        h.tetherd_args = ["--libvirt-uri", "test://" + node]
        h.start_tetherd()

        ms = libvirt_machines(h)
        log("machines after the first resync: %s" % sorted(ms))
        check(set(ms) == {RUNNING_UUID, "passthrough-1"},
              "the running vsock domain (by UUID) and the metadata domain (by its id) are registered, the plain "
              "domain is not", sorted(ms))
        run = ms[RUNNING_UUID]
        check(run["source"] == "libvirt" and run["source_id"] == RUNNING_UUID, "source libvirt, its UUID", run)
        check(run["cid"] == 41, "a running domain holds its vsock CID", run)
        check(run["attributes"].get("libvirt.domain.name") == "run-1", "the domain name is an attribute", run)
        off = ms["passthrough-1"]
        check(off["source_id"] == OFF_UUID and off["cid"] is None and off["uds_path"] == uds,
              "the metadata's uds_path, no CID", off)
        check(off["request_id"] == "req-lv" and off["service_name"] == "lv-svc", "the metadata's request id and "
              "service", off)

        # A fake agent on the metadata's hybrid-vsock socket: the same path as a Firecracker-style VMM.
        ready_file = h.path("go")
        open(ready_file, "w").close()
        guest = h.spawn([fake, "--socket", h.guest_socket("passthrough-1"), "--scenario", "healthy",
                         "--ready-file", ready_file, "--hold-ms", "60000"], "fake-guest.log",
                        stdout=subprocess.PIPE)
        status, doc, raw = h.api.ready("passthrough-1", 30)
        check(status == 200, "the metadata machine becomes ready", "status %d body %r" % (status, raw))
        spans = h.api.spans("passthrough-1")
        check(spans["spans"][0]["name"] == "machine.boot", "a stitched trace", spans)
        check(spans["spans"][0]["attributes"].get("service.name") == "lv-svc", "the metadata's service name", spans)
        guest.kill()

        # An API registration next to them.
        h.register("api-vm", request_id="req-api")

        # Restarted with the same state directory: reloaded, re-synchronised, nothing duplicated or lost.
        h.kill_tetherd()
        h.start_tetherd()
        ms = libvirt_machines(h)
        check(set(ms) == {RUNNING_UUID, "passthrough-1", "api-vm"}, "the same machines after a restart", sorted(ms))
        check(ms["api-vm"]["source"] == "api", "the API machine is left alone", ms["api-vm"])
        check(ms["passthrough-1"]["source"] == "libvirt", "the source survived the restart", ms["passthrough-1"])
        check(ms["passthrough-1"]["boots"] == 1, "the metadata machine kept its boot", ms["passthrough-1"])

        # The node file no longer has the running domain: the next start removes its machine (stale), and keeps
        # the others.
        with open(node, "w") as f:
            f.write(node_xml(uds).replace(RUNNING_UUID, "aaaaaaaa-0000-0000-0000-0000000000ff"))
        h.kill_tetherd()
        h.start_tetherd()
        ms = libvirt_machines(h)
        check(set(ms) == {"aaaaaaaa-0000-0000-0000-0000000000ff", "passthrough-1", "api-vm"},
              "a machine whose domain is gone is removed, a new domain added", sorted(ms))
        h.assert_tetherd_alive()


if __name__ == "__main__":
    run_test(main)
