#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`tether wait-ready` and GET /v1/machines/ID/ready when the machine never becomes ready:

  no-agent           nobody connects: 504 with agent_seen false ("no agent"), CLI exit 1 after the timeout
  exit-before-ready  the workload exits before any readiness: 409 state exited, CLI exit 2, answered at once
                     (well before the timeout), for a waiter that was already waiting
  agent-killed       the agent is SIGKILLed before ready: 409 state disconnected, CLI exit 2, at once
  ready-then-exit    READY=1 then an immediate exit: waiters (before and after the exit) get 200, CLI exit 0
  since              a machine that exited before ready is restarted: a waiter with ?since=T (CLI --since) is
                     not answered by the old "exited" but waits, and gets 200 when the new run is ready
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, Thread, binary, check, log, run_test, wait_proc  # noqa: E402

LONG_TIMEOUT = 30  # the waiters' timeout; "at once" means well before half of it


def start_waiters(h, mid):
    """An API long-poll and a CLI wait-ready, both waiting before anything happens."""
    t0 = time.monotonic()
    api_waiter = Thread(h.api.ready, mid, LONG_TIMEOUT)
    api_waiter.start()
    cli = subprocess.Popen(h.cli_argv("wait-ready", mid, "--timeout", str(LONG_TIMEOUT)), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    time.sleep(0.3)  # let both requests reach tetherd before the failure happens
    check(api_waiter.is_alive() and cli.poll() is None, "the waiters are still waiting before the failure")
    return t0, api_waiter, cli


def finish_waiters(h, mid, t0, api_waiter, cli, want_state):
    status, doc, raw = api_waiter.join_result(LONG_TIMEOUT + 20)
    api_elapsed = api_waiter.done_at - t0
    check(status == 409, "the ready long-poll answers 409 when the machine failed before ready",
          "status %d body %r" % (status, raw))
    check(doc.get("state") == want_state, "the 409 names state %r" % want_state, doc)
    check(isinstance(doc.get("answered_unix_ns"), int) and doc["answered_unix_ns"] > 0,
          "the 409 says when tetherd answered (answered_unix_ns)", doc)
    check(doc.get("error"), "the 409 has an error text", doc)
    check("reason" in doc, "the 409 has a reason", doc)
    check(api_elapsed < LONG_TIMEOUT / 2, "the long-poll answered at once, not at its %d s timeout" % LONG_TIMEOUT,
          "answered after %.1f s" % api_elapsed)

    rc = wait_proc(cli, LONG_TIMEOUT + 20, "`tether wait-ready` returns")
    cli_elapsed = time.monotonic() - t0
    out = cli.stdout.read().decode(errors="replace") + cli.stderr.read().decode(errors="replace")
    check(rc == 2, "`tether wait-ready` exits 2 (failed)", "exit %d output %r" % (rc, out))
    check(want_state in out, "wait-ready prints the state %r" % want_state, out)
    check(cli_elapsed < LONG_TIMEOUT / 2, "`tether wait-ready` returned at once, not at its timeout",
          "returned after %.1f s" % cli_elapsed)

    # A new waiter gets the same answer at once.
    status, doc, raw = h.api.ready(mid, 10)
    check(status == 409 and doc.get("state") == want_state, "a later long-poll is answered 409 at once",
          "status %d body %r" % (status, raw))
    h.cli("wait-ready", mid, "--timeout", "10", check_rc=2)
    return doc


def case_no_agent():
    with Harness("wait-no-agent") as h:
        mid = "lonely"
        h.register(mid)
        status, doc, raw = h.api.ready(mid, 1.5)
        check(status == 504, "the ready long-poll answers 504 when it times out", "status %d body %r" % (status, raw))
        check(doc.get("agent_seen") is False, "the 504 says no agent was seen (agent_seen false)", doc)
        check("no agent" in json.dumps(doc).lower(), "the 504 explains that no agent connected", doc)

        rc, out, err = h.cli("wait-ready", mid, "--timeout", "1.5")
        check(rc == 1, "`tether wait-ready` exits 1 on timeout", "exit %d out %r err %r" % (rc, out, err))
        check("no agent" in (out + err).lower(), "wait-ready prints the 'no agent' reason", out + err)

        status, _, _ = h.api.ready("nobody", 1)
        check(status == 404, "the ready long-poll of an unknown machine answers 404", status)
        rc, _, _ = h.cli("wait-ready", "nobody", "--timeout", "1")
        check(rc == 3, "`tether wait-ready` of an unknown machine exits 3", rc)
        h.assert_tetherd_alive()


def case_exit_before_ready():
    with Harness("wait-exit") as h:
        mid = "quitter"
        h.register(mid)
        t0, api_waiter, cli = start_waiters(h, mid)
        # No readiness mechanism fires: the workload only runs and exits.
        agent = h.start_init_shell(mid, "echo starting; sleep 0.5; echo giving up >&2; exit 5")
        doc = finish_waiters(h, mid, t0, api_waiter, cli, "exited")
        rc = wait_proc(agent, 20, "the agent exits")
        check(rc == 5, "the agent exits with the workload's 5", rc)
        m = h.api.machine(mid)
        check(m["state"] == "exited" and m["boot"]["exit"]["code"] == 5, "the machine is exited with code 5", m)
        check(m["boot"].get("ready") is None, "the boot never became ready", m)
        log("exit before ready OK: %s" % doc)


def case_agent_killed():
    with Harness("wait-killed") as h:
        mid = "victim"
        h.register(mid)
        t0, api_waiter, cli = start_waiters(h, mid)
        agent = h.start_service(mid, h.path("notify.sock"))
        h.wait_connected(mid)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        doc = finish_waiters(h, mid, t0, api_waiter, cli, "disconnected")
        m = h.api.machine(mid)
        check(m["state"] == "disconnected" and m["connected"] is False, "the machine is disconnected", m)
        log("agent killed OK: %s" % doc)


def case_ready_then_exit():
    """Ready, then exits at once: the boot did become ready, so waiters get 200, never 'exited before ready'."""
    with Harness("wait-ready-exit") as h:
        for i in range(3):
            mid = "brief-%d" % i
            h.register(mid)
            t0, api_waiter, cli = start_waiters(h, mid)
            agent = h.start_init_shell(mid, '"$TETHER_AGENT" notify READY=1 || exit 90; exit 0')
            status, doc, raw = api_waiter.join_result(LONG_TIMEOUT + 20)
            returned_unix_ns = time.time_ns()
            check(status == 200, "a waiter parked before READY=1 gets 200 even if the workload exits right after",
                  "status %d body %r" % (status, raw))
            # answered_unix_ns: when tetherd queued the answer, after it received the Ready, before the waiter
            # returned (host realtime on both sides; 1 ms of slack for the clock's steps).
            answered, delivered = doc.get("answered_unix_ns"), doc["ready"].get("delivered_unix_ns")
            check(isinstance(answered, int) and delivered and delivered <= answered <= returned_unix_ns + 10**6,
                  "the 200 says when tetherd answered: after it received the Ready, before the waiter returned",
                  doc, "waiter returned at %d" % returned_unix_ns)
            rc = wait_proc(cli, LONG_TIMEOUT + 20, "`tether wait-ready` returns")
            check(rc == 0, "`tether wait-ready` exits 0 for a machine that became ready", rc,
                  cli.stdout.read().decode(errors="replace") + cli.stderr.read().decode(errors="replace"))
            check(wait_proc(agent, 20, "the agent exits") == 0, "the workload exits 0")
            m = h.wait_exited(mid)
            check(m["boot"]["ready"] is not None, "the boot records its readiness", m)
            status, doc, raw = h.api.ready(mid, 5)
            check(status == 200 and doc.get("ready", {}).get("source") == "notify",
                  "a long-poll after the exit still answers 200: this boot became ready",
                  "status %d body %r" % (status, raw))
            h.cli("wait-ready", mid, "--timeout", "5", check_rc=0)
        log("ready then exit OK")


def case_since():
    with Harness("wait-since") as h:
        mid = "restarted"
        h.register(mid)
        # Two boots of one machine (two boot ids, as a restarted VM has), played by tether-fake-agent.
        fake = binary("FAKE_AGENT")
        addr = "unix:" + h.guest_socket(mid)
        subprocess.run([fake, "--boot-id", "11111111-1111-4111-8111-111111111111", addr, "milestone", "init.start",
                        "exit", "5", "wait-acks"], stdout=subprocess.DEVNULL, timeout=30, check=True)
        h.wait_exited(mid)
        status, doc, _ = h.api.ready(mid, 5)
        check(status == 409 and doc.get("state") == "exited", "without since the old run answers 409", doc)

        # The orchestrator notes the time, restarts the machine, then waits for what happens after that time.
        since = time.time_ns()
        path = "/v1/machines/%s/ready?timeout=%d&since=%d" % (mid, LONG_TIMEOUT, since)
        api_waiter = Thread(h.api.request, "GET", path, None, LONG_TIMEOUT + 10)
        api_waiter.start()
        cli = subprocess.Popen(h.cli_argv("wait-ready", mid, "--timeout", str(LONG_TIMEOUT), "--since",
                                          "%d.%09d" % (since // 10**9, since % 10**9)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)
        check(api_waiter.is_alive() and cli.poll() is None, "with since the old verdict does not answer")

        subprocess.run([fake, "--boot-id", "22222222-2222-4222-8222-222222222222", addr, "milestone", "init.start",
                        "ready", "notify", "wait-acks"], stdout=subprocess.DEVNULL, timeout=30, check=True)
        status, doc, raw = api_waiter.join_result(LONG_TIMEOUT + 20)
        check(status == 200 and doc.get("ready"), "the new run's readiness answers 200", status, raw)
        rc = wait_proc(cli, LONG_TIMEOUT + 20, "`tether wait-ready --since` returns")
        check(rc == 0, "`tether wait-ready --since` exits 0", rc, cli.stderr.read())
        check(doc["boot_id"].startswith("2222"), "the answer is the new boot's", doc)

        status, doc, _ = h.api.get("/v1/machines/%s/ready?since=-5" % mid)
        check(status == 400, "a malformed since is refused", status, doc)
        h.cli("wait-ready", mid, "--since", "yesterday", check_rc=3)
        log("since OK")


def main(case):
    {"no-agent": case_no_agent, "exit-before-ready": case_exit_before_ready,
     "agent-killed": case_agent_killed, "ready-then-exit": case_ready_then_exit, "since": case_since}[case]()


if __name__ == "__main__":
    run_test(main, sys.argv[1])
