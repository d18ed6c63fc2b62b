#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A guest whose log is nothing but newlines, read back through the logs API by many clients.

Each empty line is one JSON object of ~200 bytes, so a 16 KiB record renders to ~3.5 MiB. tetherd renders a
response a chunk (64 KiB) at a time, also within one record: slow readers parked in the middle of such records
hold a chunk each, not a record's whole rendering (before the fix: 40 readers, ~150 MiB). Read whole, every
line is there exactly once, in seq order, each record's lines under its own seq.
"""

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, binary, check, log, run_test, valgrind_targets  # noqa: E402

# Under memcheck rendering is ~50 times slower: fewer records, the same shape.
RECORDS = 2 if "tetherd" in valgrind_targets() else 8
RECORD_BYTES = 16384
READERS = 40


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for pid %d" % pid)


def slow_reader(h, path):
    """Sends the request and reads the start of the answer, then reads no more."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(h.api.socket_path)
    s.sendall(("GET %s HTTP/1.1\r\nHost: tether\r\n\r\n" % path).encode())
    head = s.recv(4096)
    check(head.startswith(b"HTTP/1.1 200"), "a slow reader's request is answered", head[:200])
    return s


def main():
    fake = binary("FAKE_GUEST")
    with Harness("logs-lines") as h:
        h.register("lines")
        p = subprocess.run([fake, "--socket", h.guest_socket("lines"), "--scenario", "flood", "--newlines",
                            "--records", str(RECORDS), "--record-bytes", str(RECORD_BYTES),
                            "--timeout-ms", "60000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
        check(p.returncode == 0, "the guest's records are all acked", p.stdout, p.stderr)
        boot = h.api.machine("lines")["boot"]
        check(boot["last_seq"] == RECORDS and boot["log_bytes"] == RECORDS * RECORD_BYTES,
              "every record was received", boot)

        # Warm up: one whole read, so that what one response costs is already in tetherd's heap.
        path = "/v1/machines/lines/logs"
        started = time.monotonic()
        status, _, raw = h.api.request("GET", path, timeout=300)
        took = time.monotonic() - started
        check(status == 200, "the logs are served", status)
        objs = [json.loads(line) for line in raw.split(b"\n") if line]
        log("%d lines, %d bytes of NDJSON for %d bytes of log (%.0f x), in %.2f s" %
            (len(objs), len(raw), RECORDS * RECORD_BYTES, len(raw) / (RECORDS * RECORD_BYTES), took))
        check(len(objs) == RECORDS * RECORD_BYTES, "every empty line is one object", len(objs))
        check(all(o["line"] == "" and "partial" not in o for o in objs), "every line is empty and whole")
        seqs = [o["seq"] for o in objs]
        check(seqs == sorted(seqs), "lines come in seq order")
        for seq in range(1, RECORDS + 1):
            check(seqs.count(seq) == RECORD_BYTES, "record %d has its %d lines, once each" % (seq, RECORD_BYTES),
                  seqs.count(seq))
        del objs, raw, seqs

        if h.valgrind:
            log("under valgrind: the resident size is memcheck's, not tetherd's; its check is skipped")
            return
        before = rss_bytes(h.tetherd.pid)
        readers = [slow_reader(h, path) for _ in range(READERS)]
        time.sleep(1.0)  # every reader's response has filled its socket and is parked
        h.assert_tetherd_alive()
        after = rss_bytes(h.tetherd.pid)
        grown = after - before
        log("resident size %d KiB -> %d KiB with %d readers parked: %d KiB each" %
            (before // 1024, after // 1024, READERS, grown // 1024 // READERS))
        # A record's whole rendering is ~3.5 MiB; a chunk and the record's copy ~100 KiB.
        check(grown < READERS * 1024 * 1024, "a parked reader holds less than 1 MiB (not a record's rendering)",
              "%d KiB for %d readers" % (grown // 1024, READERS))
        for s in readers:
            s.close()
        h.assert_tetherd_alive()


if __name__ == "__main__":
    run_test(main)
