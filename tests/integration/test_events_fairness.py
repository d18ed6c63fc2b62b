#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One guest's reconnect flood does not erase another machine's events (issue #10, defects 2 and 4).

tetherd --max-events 64: a healthy machine boots and becomes ready (its events: registered, booting, the
milestone, ready). A hostile guest then connects 150 times, each time sending garbage after a valid milestone:
every round adds booting / milestone / protocol_error / disconnected events for the hostile machine, far more
than the log holds. The healthy machine's events are all still listed in /v1/events: the machine holding the
most gives up its oldest events first; the evictions are counted (events_evicted). tetherd's own log has at
most 20 lines per 10 s about the hostile machine, and says how many it suppressed (issue #10, defect 9).
"""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, binary, check, log, run_test  # noqa: E402

MAX_EVENTS = 64
ROUNDS = 150


def main():
    fake = binary("FAKE_GUEST")
    with Harness("events-fairness", tetherd_args=["--max-events", str(MAX_EVENTS)]) as h:
        h.register("healthy")
        h.register("hostile")
        ready_file = h.path("healthy-go")
        open(ready_file, "w").close()
        h.spawn([fake, "--socket", h.guest_socket("healthy"), "--scenario", "healthy", "--ready-file", ready_file,
                 "--hold-ms", "120000"], "fake-healthy.log", stdout=subprocess.PIPE)
        status, _, raw = h.api.ready("healthy", 30)
        check(status == 200, "the healthy machine becomes ready", raw)
        # The long-poll is answered first, the ready event is added right after (docs/api.md): wait for it.
        deadline = time.monotonic() + 30
        while True:
            before = [e for e in h.api.events("healthy")]
            transitions = [e.get("transition") for e in before]
            if "ready" in transitions or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        check("ready" in transitions and "registered" in transitions, "the healthy machine's events are listed",
              transitions)

        start = time.monotonic()
        for i in range(ROUNDS):
            p = subprocess.run([fake, "--socket", h.guest_socket("hostile"), "--scenario", "garbage",
                                "--timeout-ms", "15000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            check(p.returncode == 0, "round %d: tetherd closes the hostile connection" % i, p.stderr[-500:])

        elapsed = time.monotonic() - start
        h.assert_tetherd_alive()

        # tetherd's own log: the hostile guest's lines go through its machine's limiter (20 per 10 s), the rest
        # counted in a "Suppressed N log lines" line; the healthy machine's lines are unaffected.
        with open(h.path("tetherd.log")) as f:
            lines = [json.loads(line) for line in f if line.startswith("{")]
        about = [o for o in lines if o.get("machine_id") == "hostile"]
        windows = int(elapsed // 10) + 2
        log("%d log lines about the hostile machine in %.1f s of %d reconnects" % (len(about), elapsed, ROUNDS))
        check(len(about) <= windows * 21, "a reconnecting guest's lines in tetherd's log are rate-limited",
              len(about), [o.get("msg") for o in about[-3:]])
        check(any(o.get("msg", "").startswith("Suppressed ") for o in about),
              "the suppressed lines are counted in the log", [o.get("msg") for o in about[-3:]])
        check(any(o.get("machine_id") == "healthy" and o.get("transition") == "ready" for o in lines),
              "the healthy machine's lines are logged")

        after = h.api.events("healthy")
        key = lambda e: (e.get("transition"), e.get("time_unix_ns"))  # noqa: E731
        check([key(e) for e in after] == [key(e) for e in before],
              "every event of the healthy machine is still listed after %d hostile reconnects" % ROUNDS,
              [e.get("transition") for e in after])
        everything = h.api.events(None)
        check(len(everything) <= MAX_EVENTS, "the event log holds at most --max-events", len(everything))
        hostile = [e for e in everything if e.get("machine_id") == "hostile"]
        check(hostile and hostile[-1].get("transition") in ("disconnected", "protocol_error"),
              "the hostile machine's newest events are the ones kept", hostile[-2:])
        st = h.api.get_ok("/v1/stats")
        log("events evicted %d, listed %d (hostile %d)" % (st["events_evicted"], len(everything), len(hostile)))
        check(st["events_evicted"] >= ROUNDS, "the evictions are counted", st["events_evicted"])


if __name__ == "__main__":
    run_test(main)
