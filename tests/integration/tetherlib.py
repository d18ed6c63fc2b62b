# SPDX-License-Identifier: MIT
"""Shared helpers for tether's integration tests and benchmarks (python3 stdlib only).

A test builds a `Harness` (context manager): it creates a private temp dir under /tmp, starts tetherd there
(--no-vsock, its own state dir and API socket), and kills every child it started when the block ends, even
on failure. Binary paths come from the environment: TETHERD, TETHER_AGENT, TETHER_CLI (meson sets them);
TETHER_AGENT_OVERRIDE wins over TETHER_AGENT (e.g. the ASan build reusing the static agent of a normal
build). A missing binary makes the test exit 77 (meson's "skipped") unless TETHER_REQUIRE_BINARIES=1.

TETHER_VALGRIND=1 runs tetherd and the tether CLI under valgrind's memcheck (TETHER_VALGRIND=tetherd or =cli
for one of them), each process writing its findings to DIR/valgrind-<what>-<pid>.log. When the harness ends,
pass or fail, a tetherd still running is stopped with SIGTERM (so that it frees everything and its leaks are
checked) and any memcheck error or definite leak in those files fails the test, with the files' contents. A
process a test SIGKILLed on purpose has no leak check, but the errors it made before are still reported. The
static musl agent is never wrapped: memcheck cannot follow a static binary's malloc, and it runs as PID 1 of a
new pid namespace.
"""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
DEFAULT_PORT = 4817

# memcheck marks each error (a definite leak included) with these lines in its log: counting them finds the
# errors of a process that never reached its exit (SIGKILLed), where the exit code says nothing.
VALGRIND_ERROR_BEGIN = "TETHER-VALGRIND-ERROR-BEGIN"
VALGRIND_ERROR_END = "TETHER-VALGRIND-ERROR-END"
VALGRIND_EXIT = 99
# Suppressions for third-party libraries only (each one says why); never for tether's own code.
VALGRIND_SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "valgrind.supp")
# How long a tetherd under valgrind may take to stop after SIGTERM at the end of a test (its leak check
# included): far more than it needs, but a tetherd that does not stop at all must not hang the test.
VALGRIND_STOP_TIMEOUT = 60


class TestFailure(AssertionError):
    pass


def check(cond, what, *details):
    """Asserts a behaviour; the message says what was expected and shows what was seen."""
    if not cond:
        msg = "FAILED: " + what
        for d in details:
            msg += "\n    " + (d if isinstance(d, str) else json.dumps(d, default=str)[:4000])
        raise TestFailure(msg)


def log(*args):
    print("[%8.3f]" % (time.monotonic() - _T0), *args, flush=True)


_T0 = time.monotonic()


def boottime_ns():
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def missing(what):
    """Something a test needs is not there: skip (exit 77), or fail under TETHER_REQUIRE_BINARIES=1 (CI, where
    scripts/deps installed everything)."""
    if os.environ.get("TETHER_REQUIRE_BINARIES") == "1":
        raise TestFailure("FAILED: " + what)
    print("SKIP: " + what, flush=True)
    sys.exit(SKIP)


def valgrind_targets():
    """The programs TETHER_VALGRIND asks to run under memcheck: "1" both tetherd and the CLI, else a comma
    separated list of "tetherd", "cli"; unset, empty or "0" none."""
    value = os.environ.get("TETHER_VALGRIND", "")
    if value in ("", "0"):
        return frozenset()
    if value == "1":
        return frozenset(("tetherd", "cli"))
    targets = frozenset(t.strip() for t in value.split(",") if t.strip())
    unknown = targets - {"tetherd", "cli"}
    if unknown:
        raise TestFailure("FAILED: TETHER_VALGRIND=%s: unknown %s (1, tetherd, cli)" % (value, sorted(unknown)))
    return targets


def valgrind_argv(log_path):
    """The memcheck command line a wrapped program follows: exit VALGRIND_EXIT on any error or definite leak;
    possibly lost and still reachable blocks (libraries' caches, memory of threads at exit) are not errors."""
    valgrind = shutil.which("valgrind")
    if not valgrind:
        missing("TETHER_VALGRIND is set but valgrind is not installed (scripts/deps installs it)")
    argv = [valgrind, "--tool=memcheck", "--quiet", "--error-exitcode=%d" % VALGRIND_EXIT,
            "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
            "--track-fds=no", "--num-callers=30",
            "--error-markers=%s,%s" % (VALGRIND_ERROR_BEGIN, VALGRIND_ERROR_END),
            "--log-file=" + log_path]
    if os.path.exists(VALGRIND_SUPPRESSIONS):
        argv.append("--suppressions=" + VALGRIND_SUPPRESSIONS)
    return argv


def binary(env_name, required=True):
    path = os.environ.get(env_name + "_OVERRIDE") or os.environ.get(env_name)
    if path and os.access(path, os.X_OK):
        return path
    if not required:
        return None
    missing("%s not set or not executable (%r)" % (env_name, path))


# ---------------------------------------------------------------------------------------------------------
# HTTP over a Unix socket

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Api:
    """Minimal client of tetherd's HTTP API (docs/api.md)."""

    def __init__(self, socket_path):
        self.socket_path = socket_path

    def request(self, method, path, body=None, timeout=30):
        """Returns (status, decoded JSON or None, raw body bytes)."""
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            doc = None
            if raw:
                try:
                    doc = json.loads(raw)
                except ValueError:
                    doc = None
            return resp.status, doc, raw
        finally:
            conn.close()

    def get(self, path, timeout=30):
        return self.request("GET", path, timeout=timeout)

    def get_ok(self, path, timeout=30):
        status, doc, raw = self.get(path, timeout=timeout)
        check(status == 200, "GET %s answers 200" % path, "status %d body %r" % (status, raw[:2000]))
        return doc

    def ndjson(self, path, timeout=30):
        """Non-follow NDJSON request: returns the list of decoded objects."""
        status, _, raw = self.request("GET", path, timeout=timeout)
        check(status == 200, "GET %s answers 200" % path, "status %d body %r" % (status, raw[:2000]))
        out = []
        for line in raw.split(b"\n"):
            if line.strip():
                out.append(json.loads(line))
        return out

    def stream(self, path, timeout=60):
        """Follow NDJSON: yields decoded objects as they arrive until the server ends the response."""
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            check(resp.status == 200, "GET %s answers 200" % path, "status %d" % resp.status)
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def register(self, machine_id, uds_path=None, cid=None, expect=201, **extra):
        body = {"machine_id": machine_id}
        if uds_path is not None:
            body["uds_path"] = uds_path
        if cid is not None:
            body["cid"] = cid
        body.update(extra)
        status, doc, raw = self.request("POST", "/v1/machines", body)
        check(status == expect, "registering %s answers %d" % (machine_id, expect),
              "status %d body %r" % (status, raw[:2000]))
        return doc

    def machine(self, machine_id):
        return self.get_ok("/v1/machines/%s" % machine_id)

    def spans(self, machine_id):
        return self.get_ok("/v1/machines/%s/spans" % machine_id)

    def logs(self, machine_id, stream=None, extra=""):
        q = "/v1/machines/%s/logs" % machine_id
        params = []
        if stream:
            params.append("stream=" + stream)
        if extra:
            params.append(extra)
        if params:
            q += "?" + "&".join(params)
        return self.ndjson(q)

    def events(self, machine_id=None):
        q = "/v1/events"
        if machine_id:
            q += "?machine_id=" + machine_id
        return self.ndjson(q)

    def ready(self, machine_id, timeout_s):
        return self.get("/v1/machines/%s/ready?timeout=%s" % (machine_id, timeout_s), timeout=timeout_s + 30)


# ---------------------------------------------------------------------------------------------------------
# Process harness

class Harness:
    """Temp dir + tetherd + every child process; everything is killed in __exit__."""

    def __init__(self, name, start=True, tetherd_args=(), keep_env="TETHER_KEEP_TMP"):
        self.name = name
        self.tetherd_bin = binary("TETHERD")
        self.agent_bin = None
        self.cli_bin = None
        self.tetherd_args = list(tetherd_args)
        self.dir = tempfile.mkdtemp(prefix="tether-%s-" % name, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.state_dir = os.path.join(self.dir, "state")
        self.api_socket = os.path.join(self.dir, "api.sock")
        self.api = Api(self.api_socket)
        self.children = []
        self.tetherd = None
        self.tetherd_starts = 0
        self._start = start
        self._keep = os.environ.get(keep_env) == "1"
        self.valgrind = valgrind_targets()
        self._valgrind_procs = []  # children running under valgrind (Popen), see wrap()

    # -- lifecycle --
    def __enter__(self):
        try:
            if self._start:
                self.start_tetherd()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        # Under valgrind a tetherd still running is stopped with SIGTERM, after everything else is gone, so
        # that it frees what it holds and memcheck checks for leaks; everything else is SIGKILLed as always.
        graceful = [p for p in self._valgrind_procs if p in self.children and p.poll() is None and
                    getattr(p, "tether_stop_gracefully", False)]
        for p in reversed(self.children):
            if p not in graceful:
                kill_tree(p)
        not_stopped = [p for p in graceful if not stop_gracefully(p, VALGRIND_STOP_TIMEOUT)]
        valgrind_failure = self.valgrind_findings(not_stopped)
        failed = exc_type is not None and exc_type not in (SystemExit,)
        if failed:
            if isinstance(exc, TestFailure) and not getattr(exc, "printed", False):
                print(str(exc), flush=True)
                exc.printed = True
            self.dump_logs()
            if valgrind_failure:
                print(valgrind_failure, flush=True)
        elif valgrind_failure:
            self.dump_logs()
        if not self._keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log("kept", self.dir)
        if valgrind_failure and not failed:
            e = TestFailure(valgrind_failure)
            e.printed = True
            print(valgrind_failure, flush=True)
            raise e
        return False

    def valgrind_findings(self, not_stopped=()):
        """The failure message for what memcheck found in this harness's processes (every DIR/valgrind-*.log,
        the exit codes of the wrapped processes), or None when it found nothing."""
        if not self.valgrind:
            return None
        problems = []
        for p in not_stopped:
            problems.append("%s (pid %d) did not exit within %d s of SIGTERM" %
                            (p.tether_program, p.pid, VALGRIND_STOP_TIMEOUT))
        for p in self._valgrind_procs:
            if p.returncode == VALGRIND_EXIT:
                problems.append("%s (pid %d) exited %d: memcheck found errors" %
                                (p.tether_program, p.pid, VALGRIND_EXIT))
        reports = []
        for fn in sorted(os.listdir(self.dir)):
            if not (fn.startswith("valgrind-") and fn.endswith(".log")):
                continue
            try:
                with open(self.path(fn), errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            n = text.count(VALGRIND_ERROR_BEGIN)
            if n:
                problems.append("%s: %d memcheck error%s" % (fn, n, "" if n == 1 else "s"))
                reports.append("----- %s -----\n%s" % (fn, text[:60000]))
        if not problems:
            return None
        # The logs first, the summary last: meson --print-errorlogs shows a long output's last 100 lines.
        return "\n".join(reports + ["FAILED: memcheck found no error and no definite leak in tetherd or the CLI"] +
                         ["    " + p for p in problems])

    def dump_logs(self, tail=60):
        for fn in sorted(os.listdir(self.dir)):
            # memcheck's logs are empty unless it found something, and then valgrind_findings() shows them whole.
            if not fn.endswith(".log") or fn.startswith("valgrind-"):
                continue
            path = os.path.join(self.dir, fn)
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            print("----- %s (last %d of %d lines) -----" % (fn, min(tail, len(lines)), len(lines)))
            for line in lines[-tail:]:
                print("  " + line[:400])
        sys.stdout.flush()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, argv, log_name, stdin=subprocess.DEVNULL, stdout=None, env=None, **kw):
        """Starts a child in its own process group, stderr (and stdout unless given) to DIR/log_name."""
        logf = open(self.path(log_name), "ab")
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout if stdout is not None else logf, stderr=logf,
                             start_new_session=True, env=env, **kw)
        logf.close()
        self.children.append(p)
        self.track_valgrind(p)
        return p

    # -- valgrind --
    def wrap(self, program, argv):
        """argv run under memcheck when TETHER_VALGRIND names program ("tetherd", "cli"), else argv itself."""
        if program not in self.valgrind:
            return list(argv)
        return valgrind_argv(self.path("valgrind-%s-%%p.log" % program)) + list(argv)

    def track_valgrind(self, p):
        """Remembers a child started from a wrap()ped argv (found by its argv) for the checks at the end: a
        tetherd is then stopped with SIGTERM rather than SIGKILL, so that its leaks are checked."""
        argv = p.args if isinstance(p.args, (list, tuple)) else []
        if "--error-markers=%s,%s" % (VALGRIND_ERROR_BEGIN, VALGRIND_ERROR_END) not in argv:
            return p
        p.tether_stop_gracefully = self.tetherd_bin in argv
        p.tether_program = "tetherd" if p.tether_stop_gracefully else "the CLI"
        if p not in self._valgrind_procs:
            self._valgrind_procs.append(p)
        return p

    # -- tetherd --
    def tetherd_command(self, *args):
        """argv running tetherd with these arguments (under memcheck with TETHER_VALGRIND)."""
        return self.wrap("tetherd", [self.tetherd_bin] + list(args))

    def tetherd_argv(self):
        return self.tetherd_command("--no-vsock", "--state-dir", self.state_dir, "--api-socket", self.api_socket,
                                    "--node-id", "itest-node", "--log-level", "debug", *self.tetherd_args)

    def start_tetherd(self, timeout=20):
        self.tetherd_starts += 1
        self.tetherd = self.spawn(self.tetherd_argv(), "tetherd.log")
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            check(self.tetherd.poll() is None, "tetherd keeps running after start",
                  "exited with %s" % self.tetherd.returncode)
            if os.path.exists(self.api_socket):
                try:
                    status, doc, _ = self.api.get("/healthz", timeout=5)
                    if status == 200:
                        return self.tetherd
                    last = status
                except OSError as e:
                    last = e
            time.sleep(0.02)
        raise TestFailure("tetherd did not answer /healthz within %d s (last: %r)" % (timeout, last))

    def kill_tetherd(self, sig=signal.SIGKILL):
        p = self.tetherd
        p.send_signal(sig)
        p.wait(timeout=20)
        self.children.remove(p)
        self.tetherd = None
        return p.returncode

    def assert_tetherd_alive(self):
        check(self.tetherd is not None and self.tetherd.poll() is None, "tetherd is still running",
              "returncode %r" % (self.tetherd.returncode if self.tetherd else None))
        status, doc, raw = self.api.get("/healthz", timeout=10)
        check(status == 200 and doc and doc.get("status") == "ok", "tetherd answers /healthz",
              "status %d body %r" % (status, raw))

    # -- machines --
    def uds_base(self, machine_id):
        return self.path("vm-%s.vsock" % machine_id)

    def guest_socket(self, machine_id, port=DEFAULT_PORT):
        return "%s_%d" % (self.uds_base(machine_id), port)

    def register(self, machine_id, **extra):
        return self.api.register(machine_id, uds_path=self.uds_base(machine_id), **extra)

    def wait_machine(self, machine_id, pred, what, timeout=30, interval=0.05):
        deadline = time.monotonic() + timeout
        m = None
        while time.monotonic() < deadline:
            status, m, _ = self.api.get("/v1/machines/%s" % machine_id)
            if status == 200 and pred(m):
                return m
            time.sleep(interval)
        raise TestFailure("FAILED: %s within %d s; machine is:\n    %s" % (what, timeout, json.dumps(m)[:4000]))

    def wait_exited(self, machine_id, timeout=60):
        return self.wait_machine(machine_id, lambda m: (m.get("boot") or {}).get("exit") is not None,
                                 "machine %s reports its exit" % machine_id, timeout)

    def wait_connected(self, machine_id, timeout=30):
        return self.wait_machine(machine_id, lambda m: m.get("connected") is True and m.get("boot"),
                                 "machine %s has a connected agent" % machine_id, timeout)

    # -- agent --
    def agent(self):
        if not self.agent_bin:
            self.agent_bin = binary("TETHER_AGENT")
        return self.agent_bin

    def init_argv(self, machine_id, command, ready=None, extra=(), notify_socket=None):
        """argv running the agent as PID 1 of a new pid+mount namespace, workload = command (a list)."""
        argv = ["unshare", "--pid", "--mount", "--fork", "--kill-child", self.agent(), "--mode=init",
                "--shutdown=exit", "--transport=unix:" + self.guest_socket(machine_id), "--no-kmsg"]
        if ready:
            argv.append("--ready=" + ready)
        if notify_socket:
            argv.append("--notify-socket=" + notify_socket)
        argv += list(extra)
        argv.append("--")
        argv += list(command)
        return argv

    def start_init(self, machine_id, command, ready=None, extra=(), notify_socket=None, env=None):
        e = dict(os.environ if env is None else env)
        e["TETHER_AGENT"] = self.agent()
        return self.spawn(self.init_argv(machine_id, command, ready, extra, notify_socket),
                          "agent-%s.log" % machine_id, env=e)

    def start_init_shell(self, machine_id, script, **kw):
        return self.start_init(machine_id, ["/bin/sh", "-c", script], **kw)

    def start_service(self, machine_id, notify_socket, extra=(), command=None):
        argv = [self.agent(), "--mode=service", "--transport=unix:" + self.guest_socket(machine_id),
                "--notify-socket=" + notify_socket] + list(extra)
        if command:
            argv += ["--"] + list(command)
        return self.spawn(argv, "agent-%s.log" % machine_id)

    # -- CLI --
    def cli(self, *args, timeout=120, check_rc=None, json_out=False, env_extra=None):
        if not self.cli_bin:
            self.cli_bin = binary("TETHER_CLI")
        argv = [self.cli_bin, "--socket", self.api_socket]
        if json_out:
            argv.append("--json")
        argv = self.wrap("cli", argv + list(args))
        env = dict(os.environ, **env_extra) if env_extra else None
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
        out = p.stdout.decode(errors="replace")
        err = p.stderr.decode(errors="replace")
        if check_rc is not None:
            check(p.returncode == check_rc, "`tether %s` exits %d" % (" ".join(args), check_rc),
                  "exit %d" % p.returncode, "stdout: " + out[:3000], "stderr: " + err[:3000])
        return p.returncode, out, err

    def cli_argv(self, *args):
        if not self.cli_bin:
            self.cli_bin = binary("TETHER_CLI")
        return self.wrap("cli", [self.cli_bin, "--socket", self.api_socket] + list(args))


def kill_tree(p):
    """SIGKILLs the process group of a child started with start_new_session, then reaps it."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            p.kill()
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def stop_gracefully(p, timeout):
    """SIGTERMs a child (and SIGCONTs it, in case a test left it stopped), waits for its exit; SIGKILLs its
    group if it is still running after timeout s. Returns whether it exited by itself."""
    try:
        p.send_signal(signal.SIGTERM)
        p.send_signal(signal.SIGCONT)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        kill_tree(p)
        return False


def wait_proc(p, timeout, what):
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure("FAILED: %s within %d s (still running)" % (what, timeout))


def root_span(spans_doc):
    spans = spans_doc.get("spans") or []
    check(len(spans) > 0, "the spans API returns spans", spans_doc)
    return spans[0]


def milestone_events(spans_doc):
    """(name, time_unix_ns) of the root span's events, which are the boot's milestones."""
    return [(e.get("name"), e.get("time_unix_ns")) for e in root_span(spans_doc).get("events") or []]


def is_container_boot(spans_doc):
    """True when the agent said it runs in a container (a non-initial pid namespace, as in these tests): it then
    marks init.start with container=1 and claims no kernel.start, because boottime 0 is the host's boot."""
    for e in root_span(spans_doc).get("events") or []:
        if e.get("name") == "init.start":
            return (e.get("attributes") or {}).get("container") == "1"
    return False


def numbered_lines_script(word, n, pause_every, after=""):
    """A workload that says READY=1, then writes "WORD 0" .. "WORD n-1" on stdout, sleeping 0.1 s after every
    pause_every lines, then runs the shell lines in after."""
    return r'''
"$TETHER_AGENT" notify READY=1
i=0
while [ $i -lt %d ]; do
    echo "%s $i"
    i=$((i + 1))
    if [ $((i %% %d)) -eq 0 ]; then sleep 0.1; fi
done
%s''' % (n, word, pause_every, after)


def joined_lines(objs, stream):
    """Line texts of one stream with partial lines (`"partial": true`: written without their newline before a
    pause) joined to the line that continues them, as `tether logs` prints them."""
    out, pending = [], None
    for o in objs:
        if "line" not in o or o.get("stream") != stream:
            continue
        text = (pending or "") + o["line"].rstrip("\n")
        if o.get("partial"):
            pending = text
        else:
            out.append(text)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def log_lines(objs, stream):
    """Line texts of one stream from logs NDJSON objects (dropped markers excluded)."""
    return [o["line"].rstrip("\n") for o in objs if "line" in o and o.get("stream") == stream]


def free_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_test(fn, *args):
    """Entry point of a test script: prints PASS/FAIL and exits 0/1 (77 to skip)."""
    try:
        fn(*args)
    except TestFailure as e:
        if not getattr(e, "printed", False):
            print(str(e), flush=True)
        print("FAIL", flush=True)
        sys.exit(1)
    except subprocess.TimeoutExpired as e:
        print("FAILED: command timed out: %s" % e, flush=True)
        sys.exit(1)
    print("PASS", flush=True)
    sys.exit(0)


class Thread(threading.Thread):
    """A thread that keeps its target's result or exception for the joiner."""

    def __init__(self, target, *args, **kwargs):
        super().__init__(daemon=True)
        self._target_fn = target
        self._args = args
        self._kwargs = kwargs
        self.result = None
        self.error = None
        self.done_at = None

    def run(self):
        try:
            self.result = self._target_fn(*self._args, **self._kwargs)
        except BaseException as e:  # reported by join_result
            self.error = e
        self.done_at = time.monotonic()

    def join_result(self, timeout):
        self.join(timeout)
        if self.is_alive():
            raise TestFailure("FAILED: background call did not finish within %d s" % timeout)
        if self.error:
            raise self.error
        return self.result


# ---------------------------------------------------------------------------------------------------------
# OTLP: what tetherd exported, against what its API shows

def otlp_attrs(o):
    """An OTLP object's attributes (OTLP/JSON or receiver.js' decoding) as a dict of plain values."""
    out = {}
    for kv in o.get("attributes", []):
        v = kv.get("value", {})
        out[kv["key"]] = v.get("stringValue", v.get("intValue", v.get("boolValue", v.get("doubleValue"))))
    return out


def otlp_body(rec):
    return rec.get("body", {}).get("stringValue")


def otlp_file_bodies(path):
    """The requests of an OTLP/JSON lines file (tetherd's --otlp-file, and its rotated PATH.1 first)."""
    out = []
    for p in (path + ".1", path):
        if os.path.exists(p):
            with open(p) as f:
                lines = f.read().split("\n")
            # The last piece is empty, or a line being written now.
            out += [json.loads(line) for line in lines[:-1] if line.strip()]
    return out


def otlp_settled_bodies(h, fetch, mids, timeout=30):
    """The exported bodies once every machine's API view is in them (spans, lines, events), then a little more
    (anything exported twice would show)."""
    def want():
        n = 0
        for mid in mids:
            n += len(h.api.spans(mid)["spans"]) + len([o for o in h.api.logs(mid) if "line" in o])
            n += len([e for e in h.api.events(mid) if e.get("transition") not in ("milestone", "phase")])
        return n

    def ours(r):
        return otlp_attrs(r.get("resource", {})).get("tether.machine.id") in mids

    def count(bodies):
        n = 0
        for body in bodies:
            n += sum(len(ss.get("spans", [])) for rs in body.get("resourceSpans", []) if ours(rs)
                     for ss in rs.get("scopeSpans", []))
            n += sum(len(sl.get("logRecords", [])) for rl in body.get("resourceLogs", []) if ours(rl)
                     for sl in rl.get("scopeLogs", []))
        return n
    target = want()
    deadline = time.monotonic() + timeout
    while count(fetch()) < target:
        check(time.monotonic() < deadline, "everything of %s is exported within %d s" % (", ".join(mids), timeout),
              count(fetch()), target)
        time.sleep(0.1)
    time.sleep(0.5)
    return fetch()


def check_exported_times(h, mid, bodies):
    """Every timestamp exported for machine mid, a machine with one boot that ended (OTLP requests: the OTLP/JSON
    file's, or receiver.js' decoding of protobuf ones), equals the API's, to the nanosecond, and nothing the API
    shows is missing: log records (time = the line's time_unix_ns, in order per record), spans (start, end =
    /spans) and their events (milestones on the root), lifecycle events (time and *_unix_ns attributes =
    /v1/events). Returns the number of timestamps compared."""
    m = h.api.machine(mid)
    boot = m["boot"]
    check(m.get("boots") == 1 and boot.get("exit") is not None, "%s has one boot, and it ended" % mid, m)
    check(boot.get("clock_fixed") is True, "the boot's clock mapping is fixed", boot)
    spans_doc = h.api.spans(mid)
    api_spans = {s["span_id"]: s for s in spans_doc["spans"]}
    api_lines = [o for o in h.api.logs(mid) if "line" in o]
    api_events = [e for e in h.api.events(mid) if e.get("transition") not in ("milestone", "phase")]

    spans, recs = [], []
    for body in bodies:
        for rs in body.get("resourceSpans", []):
            if otlp_attrs(rs.get("resource", {})).get("tether.machine.id") == mid:
                spans += [s for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]
        for rl in body.get("resourceLogs", []):
            if otlp_attrs(rl.get("resource", {})).get("tether.machine.id") == mid:
                recs += [r for sl in rl.get("scopeLogs", []) for r in sl.get("logRecords", [])]
    compared = 0

    # Spans: all closed (the boot became ready and exited), each exported once, with the API's times.
    check(sorted(s["spanId"] for s in spans) == sorted(api_spans), "every span of /spans exported once",
          sorted(s["spanId"] for s in spans), sorted(api_spans))
    for s in spans:
        a = api_spans[s["spanId"]]
        check((int(s["startTimeUnixNano"]), int(s["endTimeUnixNano"])) == (a["start_unix_ns"], a["end_unix_ns"]),
              "span %s: exported start/end = the API's" % a["name"], s, a)
        compared += 2
        api_ev = {}
        for e in a.get("events") or []:
            api_ev.setdefault(e["name"], []).append(e["time_unix_ns"])
        for e in s.get("events", []):
            check(int(e["timeUnixNano"]) in api_ev.get(e["name"], []),
                  "span event %s of %s: exported time = the API's" % (e["name"], a["name"]), e, a.get("events"))
            compared += 1

    # Log records: one per line, in order per record (tether.log.seq), each at the API's time_unix_ns.
    exported = {}
    for r in recs:
        if otlp_attrs(r).get("event.name"):
            continue
        exported.setdefault(int(otlp_attrs(r)["tether.log.seq"]), []).append((otlp_body(r), int(r["timeUnixNano"])))
    api = {}
    for o in api_lines:
        api.setdefault(o["seq"], []).append((o["line"], o["time_unix_ns"]))
    check(sorted(exported) == sorted(api), "every log record of the API is exported, once",
          sorted(set(api) ^ set(exported)))
    for seq, lines in api.items():
        check(exported[seq] == lines, "log record seq %d: exported lines and times = the API's" % seq,
              exported[seq], lines)
        compared += len(lines)

    # Lifecycle events: time and every *_unix_ns member.
    ev_exported = [r for r in recs if otlp_attrs(r).get("event.name")]
    check(len(ev_exported) == len(api_events), "every lifecycle event exported once",
          [otlp_attrs(r)["event.name"] for r in ev_exported], [e["transition"] for e in api_events])
    for r, e in zip(ev_exported, api_events):
        a = otlp_attrs(r)
        check(a["event.name"] == "tether.machine." + e["transition"], "events in the API's order", a, e)
        check(int(r["timeUnixNano"]) == e["time_unix_ns"], "event %s: exported time = the API's" % e["transition"],
              r, e)
        compared += 1
        for k, v in e.items():
            if k.endswith("_unix_ns") and k != "time_unix_ns" and isinstance(v, int):
                check(int(a.get(k, -1)) == v, "event %s: %s = the API's" % (e["transition"], k), a, e)
                compared += 1
    log("%s: %d exported timestamps equal the API's (%d spans, %d log lines, %d events)" %
        (mid, compared, len(spans), len(api_lines), len(api_events)))
    return compared
