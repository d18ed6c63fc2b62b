#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A second tetherd cannot take over the first one's state or sockets (issue #10, defect 7).

A first tetherd runs with a registered machine (its socket listening). A second one started on the same state
directory exits at once (the state directory's lock is held) and says so; one started with its own state
directory but the same API socket exits too (somebody listens there) and says so; so does a registration in a
third tetherd, with its own state dir and API socket, of a uds_path the first one listens on: 409. The first
tetherd still answers on its socket, its machine's socket is still its own, and its guest still connects.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Api, Harness, check, log, run_test  # noqa: E402


def run_second(h, args, what):
    argv = h.tetherd_command("--no-vsock", "--node-id", "second", "--log-level", "info", *args)
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    except subprocess.TimeoutExpired:
        check(False, "a second tetherd (%s) exits at once" % what)
    err = p.stderr.decode(errors="replace")
    check(p.returncode != 0, "a second tetherd (%s) exits with an error" % what, err[-1000:])
    return err


def main():
    with Harness("second-tetherd") as h:
        h.register("m1")
        err = run_second(h, ["--state-dir", h.state_dir, "--api-socket", h.path("api2.sock")], "same state dir")
        check("Another tetherd uses the state directory" in err, "it says the state directory is taken", err[-500:])

        err = run_second(h, ["--state-dir", h.path("state2"), "--api-socket", h.api_socket], "same API socket")
        check("serves the API socket" in err, "it says the API socket is taken", err[-500:])

        third = h.spawn(h.tetherd_command("--no-vsock", "--node-id", "third", "--state-dir", h.path("state3"),
                                          "--api-socket", h.path("api3.sock")), "tetherd3.log")
        api3 = Api(h.path("api3.sock"))
        deadline = time.monotonic() + 20
        while not (os.path.exists(h.path("api3.sock")) and api3.get("/healthz", timeout=5)[0] == 200):
            check(time.monotonic() < deadline and third.poll() is None, "the third tetherd answers")
            time.sleep(0.05)
        m1_base = h.uds_base("m1")
        status, doc, raw = api3.request("POST", "/v1/machines", {"machine_id": "thief", "uds_path": m1_base})
        check(status == 409, "registering a uds_path another tetherd listens on is a conflict (409)",
              "status %d %r" % (status, raw[:300]))
        third.terminate()
        third.wait(20)

        check(h.api.get("/healthz")[0] == 200, "the first tetherd still answers on its socket")
        check(os.path.exists(h.guest_socket("m1")), "the machine's socket is still there")
        agent = h.start_service("m1", h.path("notify.sock"))
        h.wait_connected("m1")
        log("the first tetherd's guest still connects")
        agent.terminate()


if __name__ == "__main__":
    run_test(main)
