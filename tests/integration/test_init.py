#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Init mode: tether-agent as PID 1 of a pid+mount namespace running a real workload.

  logs      milestones kernel.start/init.start/mounts.done/workload.exec/ready/workload.exit in boottime order
            (no kernel.start when the agent reports it runs in a container, as here in a pid namespace);
            20000 numbered stdout lines and interleaved stderr lines arrive complete, once each, in order,
            through both the API and `tether logs`.
  partial   a line written in two pieces with a pause between them (the agent flushes the first piece after
            50 ms): the API marks the first piece "partial", `tether logs` prints one line
  exit-N    the workload's exit status is the agent's exit status and the API's exit object:
            0, 3, 127 (command not found), 126 (not executable), 137 (the workload SIGKILLs itself).
  stop-group     SIGTERM to the agent reaches every process of the workload (its own process group), not only
                 the one it started: a child's TERM trap runs (issue #10, defect 14).
  stop-escalate  a workload that ignores SIGTERM is SIGKILLed --stop-timeout-ms (1 s) after it, with every
                 other process, and the machine shuts down (exit signal 9) instead of running forever.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import (Harness, check, is_container_boot, joined_lines, log, log_lines,  # noqa: E402
                       milestone_events, run_test, wait_proc)

N_OUT = 20000
ERR_EVERY = 7

BOOT_MILESTONES = ["kernel.start", "init.start", "mounts.done", "workload.exec", "ready", "workload.exit"]


def case_logs():
    # The workload signals readiness through the agent's notify socket, then writes stdout and stderr.
    script = r'''
"$TETHER_AGENT" notify READY=1 || exit 90
i=0
while [ $i -lt %d ]; do
    echo "out $i"
    if [ $((i %% %d)) -eq 0 ]; then echo "err $i" >&2; fi
    i=$((i + 1))
done
echo "err end" >&2
printf 'partial'
''' % (N_OUT, ERR_EVERY)
    expect_out = ["out %d" % i for i in range(N_OUT)] + ["partial"]
    expect_err = ["err %d" % i for i in range(0, N_OUT, ERR_EVERY)] + ["err end"]

    with Harness("init-logs") as h:
        mid = "init-logs"
        h.register(mid)
        agent = h.start_init_shell(mid, script)
        rc = wait_proc(agent, 90, "the init-mode agent exits when its workload does")
        check(rc == 0, "the agent exits with the workload's status 0", rc)
        m = h.wait_exited(mid)
        boot = m["boot"]
        check(boot["exit"]["code"] == 0, "the API reports exit code 0", boot)
        check(boot.get("agent_mode") == "init", "the boot reports agent_mode init", boot)
        check(boot.get("ready") and boot["ready"].get("source"), "the boot became ready", boot)
        check(boot.get("logs_dropped", 0) == 0, "no log records were dropped", boot)
        check(boot.get("protocol_errors", 0) == 0, "no protocol errors", boot)

        # Milestones, in boottime order. As PID 1 of a pid namespace the agent knows it is in a container:
        # boottime 0 is the host's boot, so it claims no kernel.start (a VM's agent does).
        spans = h.api.spans(mid)
        events = milestone_events(spans)
        names = [n for n, _ in events]
        container = is_container_boot(spans)
        expected = BOOT_MILESTONES[1:] if container else BOOT_MILESTONES
        for want in expected:
            check(names.count(want) == 1, "milestone %s appears exactly once" % want, names)
        pos = [names.index(n) for n in expected]
        times = [events[p][1] for p in pos]
        check(pos == sorted(pos), "milestones are listed in boot order %s" % expected, names)
        check(times == sorted(times), "milestone times increase in boot order", list(zip(expected, times)))
        if container:
            check("kernel.start" not in names and boot.get("kernel_start_unix_ns") is None,
                  "in a container there is no kernel.start (boottime 0 is the host's boot)", names, boot)
        else:
            # Both are the same guest instant (boottime 0) mapped to host time; allow for a refined offset.
            check(abs(times[0] - (boot.get("kernel_start_unix_ns") or 0)) <= 5000000,
                  "kernel.start is at the boot's kernel start", times[0], boot.get("kernel_start_unix_ns"))

        # Logs via the API: each stream complete, exactly once, in order; seq increasing.
        objs = h.api.logs(mid)
        got_out = log_lines(objs, "stdout")
        got_err = log_lines(objs, "stderr")
        compare_lines("API stdout", got_out, expect_out)
        compare_lines("API stderr", got_err, expect_err)
        seqs = [o["seq"] for o in objs if "line" in o]
        check(all(a <= b for a, b in zip(seqs, seqs[1:])), "log lines come in seq order")
        for o in objs[:3]:
            check(o.get("machine_id") == mid and o.get("trace_id") and o.get("boot_id") == boot["boot_id"],
                  "log lines carry machine id, boot id and trace id", o)
        check(any("dropped" in o for o in objs) is False, "no dropped markers in the stream")

        only_err = log_lines(h.api.logs(mid, stream="stderr"), "stderr")
        compare_lines("API ?stream=stderr", only_err, expect_err)

        # The same through the CLI, one stream at a time (the raw line text).
        _, out, _ = h.cli("logs", "--stream", "stdout", mid, check_rc=0)
        compare_lines("`tether logs --stream stdout`", out.splitlines(), expect_out)
        _, out, _ = h.cli("logs", "--stream", "stderr", mid, check_rc=0)
        cli_err = [strip_stderr_prefix(x) for x in out.splitlines()]
        compare_lines("`tether logs --stream stderr`", cli_err, expect_err)
        log("init logs OK: %d stdout, %d stderr lines" % (len(got_out), len(got_err)))


def strip_stderr_prefix(line):
    # The CLI may mark stderr lines with "stderr: " (docs/cli.md); the text after the marker must be the line.
    return line[len("stderr: "):] if line.startswith("stderr: ") else line


def compare_lines(what, got, expect):
    if got == expect:
        return
    seen = {}
    for x in got:
        seen[x] = seen.get(x, 0) + 1
    missing = [x for x in expect if x not in seen]
    dups = [x for x, n in seen.items() if n > 1]
    extra = [x for x in seen if x not in set(expect)]
    first_diff = next((i for i, (a, b) in enumerate(zip(got, expect)) if a != b), min(len(got), len(expect)))
    check(False, "%s: every line exactly once, in order" % what,
          "got %d lines, expected %d" % (len(got), len(expect)),
          "missing %d (first: %r)" % (len(missing), missing[:5]),
          "duplicated %d (first: %r)" % (len(dups), dups[:5]),
          "unexpected %d (first: %r)" % (len(extra), extra[:5]),
          "first difference at index %d: got %r expected %r" % (
              first_diff, got[first_diff:first_diff + 3], expect[first_diff:first_diff + 3]))


def case_partial():
    script = r'''
printf 'abc'; sleep 0.3; printf 'def\n'
printf 'x'; sleep 0.3; echo 'err line' >&2; sleep 0.3; echo 'y'
printf 'no newline at the end'
'''
    with Harness("init-partial") as h:
        mid = "init-partial"
        h.register(mid)
        agent = h.start_init_shell(mid, script)
        check(wait_proc(agent, 60, "the agent exits") == 0, "exit 0")
        h.wait_exited(mid)
        objs = [o for o in h.api.logs(mid) if "line" in o]
        out = [(o["line"], o.get("partial", False)) for o in objs if o["stream"] == "stdout"]
        check(out == [("abc", True), ("def", False), ("x", True), ("y", False), ("no newline at the end", True)],
              "pieces written with a pause are lines marked partial until the newline comes", out)
        check(joined_lines(objs, "stdout") == ["abcdef", "xy", "no newline at the end"], "joined lines")
        check(log_lines(objs, "stderr") == ["err line"], "the other stream is not part of the join", objs)
        _, cli_out, _ = h.cli("logs", "--stream", "stdout", mid, check_rc=0)
        check(cli_out.splitlines() == ["abcdef", "xy", "no newline at the end"],
              "`tether logs` prints each line once, joined", cli_out)
        _, cli_all, _ = h.cli("logs", mid, check_rc=0)
        check("abcdef" in cli_all.splitlines() and "xy" in cli_all.splitlines(),
              "joined with stderr interleaved too", cli_all)


def case_exit(code):
    with Harness("init-exit-%d" % code) as h:
        mid = "exit-%d" % code
        h.register(mid)
        signal_expected = 0
        if code in (0, 3):
            cmd = ["/bin/sh", "-c", "echo running; exit %d" % code]
        elif code == 127:
            cmd = [h.path("no-such-command")]
        elif code == 126:
            path = h.path("not-executable")
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho should not run\n")
            os.chmod(path, 0o644)
            cmd = [path]
        elif code == 137:
            cmd = ["/bin/sh", "-c", "echo dying; kill -9 $$"]
            signal_expected = 9
        else:
            raise ValueError(code)

        agent = h.start_init(mid, cmd)
        rc = wait_proc(agent, 45, "the init-mode agent exits when its workload does")
        check(rc == code, "the agent (PID 1) exits with the workload's status %d" % code, "got %d" % rc)
        m = h.wait_exited(mid)
        ex = m["boot"]["exit"]
        check(ex.get("code") == code, "the API's exit.code is %d" % code, ex)
        check(ex.get("signal", 0) == signal_expected, "the API's exit.signal is %d" % signal_expected, ex)
        check(ex.get("oom_killed") is False, "exit.oom_killed is false", ex)
        if code in (126, 127):
            check(ex.get("reason"), "a failed exec gives a reason", ex)
        check(m["state"] in ("exited", "crashed"), "machine state is exited or crashed", m)
        if code in (126, 127):
            names = [n for n, _ in milestone_events(h.api.spans(mid))]
            check("workload.exec" not in names, "no workload.exec milestone when exec failed", names)
        h.assert_tetherd_alive()
        log("exit %d OK: %s" % (code, ex))


def agent_pid(unshare_proc):
    """The agent: the child unshare --fork started (PID 1 of the namespace)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (unshare_proc.pid, unshare_proc.pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.05)
    check(False, "the agent process is found")


def case_stop(kind):
    with Harness("init-" + kind) as h:
        mid = kind
        h.register(mid)
        started, trapped = h.path("started"), h.path("child-term")
        if kind == "stop-group":
            # The child says it started once its trap is set; the shell waits for the child's trap to finish
            # before it exits, so that the agent (PID 1 of the namespace) cannot end the child first.
            script = ('trap "wait; exit 0" TERM; '
                      '(trap "echo term > %s; exit 0" TERM; touch %s; sleep 1000 & wait) & wait'
                      % (trapped, started))
            extra = []
        else:
            script = 'trap "" TERM; touch %s; while :; do sleep 1; done' % started
            extra = ["--stop-timeout-ms=1000"]
        agent = h.start_init_shell(mid, script, extra=extra)
        deadline = time.monotonic() + 30
        while not os.path.exists(started):
            check(time.monotonic() < deadline and agent.poll() is None, "the workload starts")
            time.sleep(0.05)
        os.kill(agent_pid(agent), signal.SIGTERM)
        rc = wait_proc(agent, 30, "the init-mode agent exits after SIGTERM")
        m = h.wait_exited(mid)
        ex = m["boot"]["exit"]
        if kind == "stop-group":
            check(os.path.exists(trapped), "SIGTERM reached the workload's child (its TERM trap ran)")
            check(ex.get("signal") == signal.SIGTERM or ex.get("code") in (0, 143),
                  "the workload ended by SIGTERM", ex)
        else:
            check(ex.get("signal") == signal.SIGKILL, "a workload ignoring SIGTERM is SIGKILLed", ex, rc)
            with open(h.path("agent-%s.log" % mid), errors="replace") as f:
                text = f.read()
            check("did not stop within 1000 ms" in text, "the agent says why it sent SIGKILL", text[-1500:])
        log("%s OK: %s (agent exit %d)" % (kind, ex, rc))


def main(case):
    if case == "logs":
        case_logs()
    elif case == "partial":
        case_partial()
    elif case.startswith("exit-"):
        case_exit(int(case[5:]))
    elif case.startswith("stop-"):
        case_stop(case)
    else:
        raise SystemExit("unknown case " + case)


if __name__ == "__main__":
    run_test(main, sys.argv[1])
