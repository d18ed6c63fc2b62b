#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A hostile guest (tests/integration/fake-guest) next to a healthy one, one scenario per test case.

For each bad input: tetherd stays up, closes the hostile connection, counts the protocol error under its
stable reason (events stream `protocol_error` with the reason; the boot's protocol_errors), keeps what the
hostile guest sent correctly before, and the healthy machine registered at the same time keeps exactly its
own data, stays connected and still becomes ready.
For `flood` (valid but heavy): everything is acked, the log bytes held in memory stay within
--max-log-bytes-per-boot, and the healthy machine becomes ready during the flood. With a state directory the
boot file is the log store: nothing is lost, every line reads back. `flood-memory` is the same without a state
directory: the oldest lines are evicted, counted, and reported in the log stream.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, Thread, binary, check, log, log_lines, milestone_events, run_test  # noqa: E402

REASONS = {
    "oversized-header": "frame_too_large",
    "zero-length": "frame_empty",
    "garbage": "decode_failed",
    "invalid-utf8": "invalid_utf8",
    "huge-log-dropped": "invalid_field",
    "too-many-attributes": "too_many_attributes",
    "seq-regression": "seq_regression",
    "unknown-message": "unknown_message",
    "before-hello": "unexpected_message",
}

MAX_LOG_BYTES = 1024 * 1024
FLOOD_RECORDS = 2000
FLOOD_RECORD_BYTES = 8192

HEALTHY_LINES = ["healthy line %d" % i for i in range(3)]


def run_guest(h, fake, mid, scenario, *extra, timeout=60):
    argv = [fake, "--socket", h.guest_socket(mid), "--scenario", scenario, "--timeout-ms", "15000"] + list(extra)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode(errors="replace").strip().splitlines()
    summary = json.loads(out[-1]) if out else {}
    return p.returncode, summary, p.stderr.decode(errors="replace")


def main(scenario):
    fake = binary("FAKE_GUEST")
    flood = scenario in ("flood", "flood-memory")
    memory_only = scenario == "flood-memory"
    args = ["--max-log-bytes-per-boot", str(MAX_LOG_BYTES)] if flood else []
    if memory_only:
        args += ["--state-dir", ""]
    with Harness("hostile-" + scenario, tetherd_args=args) as h:
        h.register("healthy")
        h.register("hostile")

        ready_file = h.path("healthy-go")
        # The healthy guest holds its connection until the harness kills it: an hour is longer than any run of
        # the test (the flood's reading back takes ~2 min under valgrind, past the old 120 s hold).
        healthy = h.spawn([fake, "--socket", h.guest_socket("healthy"), "--scenario", "healthy", "--ready-file",
                           ready_file, "--hold-ms", "3600000"], "fake-healthy.log", stdout=subprocess.PIPE)
        h.wait_machine("healthy", lambda m: (m.get("boot") or {}).get("records", 0) >= 4,
                       "the healthy guest's first records are stored")
        healthy_before = h.api.machine("healthy")

        if flood:
            flooder = Thread(run_guest, h, fake, "hostile", "flood", "--records", str(FLOOD_RECORDS),
                             "--record-bytes", str(FLOOD_RECORD_BYTES), timeout=110)
            flooder.start()
            h.wait_machine("hostile", lambda m: (m.get("boot") or {}).get("records", 0) >= 50,
                           "the flood is being stored", timeout=60, interval=0.01)
            # The healthy machine is served while the flood goes on.
            open(ready_file, "w").close()
            status, doc, raw = h.api.ready("healthy", 60)
            check(status == 200, "the healthy machine becomes ready during the flood",
                  "status %d body %r" % (status, raw))
            flood_running = flooder.is_alive()
            rc, summary, err = flooder.join_result(115)
            log("flood summary %s (still flooding when healthy became ready: %s)" % (summary, flood_running))
            check(rc == 0, "the flooding guest got every record acked", "exit %d %s %s" % (rc, summary, err))
            check(summary.get("acked_seq") == FLOOD_RECORDS, "the ack covers all %d records" % FLOOD_RECORDS, summary)
        else:
            rc, summary, err = run_guest(h, fake, "hostile", scenario)
            log("hostile summary %s" % summary)
            check(rc == 0 and summary.get("closed_by_peer") is True,
                  "tetherd closes the connection after %s" % scenario, "exit %d %s %s" % (rc, summary, err))

        h.assert_tetherd_alive()
        hostile = h.api.machine("hostile")
        hostile_events = h.api.events("hostile")

        if flood:
            boot = hostile["boot"]
            check(boot.get("protocol_errors", 0) == 0, "a valid flood is no protocol error", boot)
            check(boot.get("last_seq") == FLOOD_RECORDS, "every flood record was received", boot)
            check(boot["log_memory_bytes"] <= MAX_LOG_BYTES, "log bytes in memory stay within "
                  "--max-log-bytes-per-boot", boot)
            check(boot.get("log_bytes", 0) == FLOOD_RECORDS * (FLOOD_RECORD_BYTES // 64) * 64,
                  "every received log byte is accounted for", boot)
            objs = h.api.logs("hostile")
            dropped = [o for o in objs if "dropped" in o]
            lines = log_lines(objs, "stdout")
            check(lines and lines[-1].startswith("flood %012d " % (FLOOD_RECORDS - 1)),
                  "the newest lines are kept", lines[-1:] if lines else None)
            check(len(lines) == len(set(lines)), "no stored line is duplicated")
            if memory_only:
                check(boot["log_bytes_stored"] <= MAX_LOG_BYTES, "stored log bytes stay within "
                      "--max-log-bytes-per-boot", boot)
                check(boot["logs_evicted"] > 0, "the eviction is counted", boot)
                check(dropped, "the eviction of old lines shows as a dropped marker in the log stream",
                      objs[:2])
            else:
                check(boot["logs_evicted"] == 0 and boot["log_bytes_stored"] == boot["log_bytes"],
                      "with a state dir nothing is lost: the boot file holds what memory does not", boot)
                check(not dropped, "no dropped marker in the log stream", dropped[:2])
                check(len(lines) == FLOOD_RECORDS * (FLOOD_RECORD_BYTES // 64) and lines[0].startswith("flood %012d " % 0),
                      "every flood line reads back, from the file and from memory", len(lines), lines[:1])
        else:
            reason = REASONS[scenario]
            pe = [e for e in hostile_events if e.get("transition") == "protocol_error"]
            check(pe, "the events stream has a protocol_error transition for the hostile machine",
                  [e.get("transition") for e in hostile_events])
            check(any(reason in json.dumps(e) for e in pe), "the protocol_error event names the reason %r" % reason,
                  pe)
            if scenario != "before-hello":
                boot = hostile["boot"]
                check(boot and boot.get("protocol_errors", 0) >= 1, "the hostile boot counts the protocol error",
                      hostile)
                names = [n for n, _ in milestone_events(h.api.spans("hostile"))]
                check("hostile.marker" in names, "the valid record sent before the bad frame is kept", names)
                for bad in ("many.attributes", "seq.two.again"):
                    check(bad not in names, "the refused record %s is not stored" % bad, names)
            check(hostile.get("connected") is False, "the hostile machine is no longer connected", hostile)
            if scenario == "huge-log-dropped":
                st = h.api.get_ok("/v1/stats")
                check(st["dropped_records"].get("agent_buffer", 0) == 0 and
                      st["dropped_bytes"].get("agent_buffer", 0) == 0,
                      "a LogDropped no host could have seen does not reach the node's counters",
                      st["dropped_records"], st["dropped_bytes"])
                check((hostile.get("boot") or {}).get("logs_dropped", 0) == 0, "nor the boot's", hostile.get("boot"))

        # The healthy machine: untouched, still connected, and it can become ready.
        if not flood:
            open(ready_file, "w").close()
            status, doc, raw = h.api.ready("healthy", 30)
            check(status == 200, "the healthy machine still becomes ready", "status %d body %r" % (status, raw))
        m = h.api.machine("healthy")
        check(m["connected"] is True and healthy.poll() is None, "the healthy guest is still connected", m)
        check(m["boot"]["boot_id"] == healthy_before["boot"]["boot_id"] and m.get("boots") == 1,
              "the healthy machine kept its boot", healthy_before, m)
        check(m["boot"].get("protocol_errors", 0) == 0, "no protocol error is counted on the healthy machine", m)
        check(m["boot"]["ready"]["source"] == "notify", "the healthy machine's readiness is its own", m)
        hl = h.api.logs("healthy")
        check(log_lines(hl, "stdout") == HEALTHY_LINES and not any("dropped" in o for o in hl),
              "the healthy machine's logs are exactly its own lines", hl)
        names = [n for n, _ in milestone_events(h.api.spans("healthy"))]
        check("healthy.start" in names, "the healthy milestone is there", names)
        for foreign in ("hostile.marker", "before.hello", "seq.two", "seq.three"):
            check(foreign not in names, "no hostile milestone leaked into the healthy machine", names)
        hev = h.api.events("healthy")
        check(not any(e.get("transition") in ("protocol_error", "disconnected") for e in hev),
              "the healthy machine had no protocol error or disconnect", [e.get("transition") for e in hev])
        check(all(e.get("machine_id") == "healthy" for e in hev), "events filtered by machine are only its own")
        h.assert_tetherd_alive()
        log("%s OK" % scenario)


if __name__ == "__main__":
    run_test(main, sys.argv[1])
