#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The HTTP API under clients that hold, trickle or hoard connections (issue #10, defect 1).

  limit      --api-max-connections 40: 40 parked ready long-polls fill the API. A 41st client is answered 503
             at once (not left hanging in the backlog), counted in api_connections_refused. The 40 clients go
             away: the API answers again (it used to stop for good: libmicrohttpd took its listening socket out
             of its epoll set at the limit and nothing ran it again).
  slowloris  --api-request-timeout-ms 1000, --api-max-connections 30. 15 clients send a request's headers a
             byte every 200 ms and 5 connect and send nothing: each is disconnected about a second after it
             connected (api_connections_timed_out). Then 30 + 10 such clients, reconnecting as fast as they are
             cut off: a client that sends its request whole still gets its answer, each time (the oldest
             connection still waiting for its request makes room, api_connections_evicted). A request that
             arrives whole in time is answered as usual.
  paths      a NUL (%00) in a machine id or an argument is a 400, never another machine's answer:
             /v1/machines/victim%00x used to answer for "victim" (libmicrohttpd's decoder cut the string there).
  watchdog   tetherd under a systemd watchdog (WATCHDOG_USEC=2 s, NOTIFY_SOCKET a socket of the test's): it
             pings while its own probes of the API (GET /healthz, counted in api_requests) are answered. The
             API socket is then unlinked, so nobody can reach the API any more: the pings stop within the
             watchdog period and tetherd says why, so that systemd restarts it.
"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, run_test  # noqa: E402


def connect(h):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(h.api.socket_path)
    return s


def read_status(s):
    """The status line of the answer on s, or None when the server closed without one."""
    data = b""
    while b"\r\n" not in data:
        d = s.recv(4096)
        if not d:
            return None
        data += d
    return data.split(b"\r\n")[0].decode()


def stats(h):
    return h.api.get_ok("/v1/stats")


def wait_until(what, fn, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        check(time.monotonic() < deadline, what)
        time.sleep(0.1)


def open_poll(h):
    s = connect(h)
    s.sendall(b"GET /v1/machines/m1/ready?timeout=120 HTTP/1.1\r\nHost: t\r\n\r\n")
    return s


def closed_by_server(s):
    """True when tetherd closed s (without reading from it otherwise)."""
    s.setblocking(False)  # a socket with a timeout would wait for data first
    try:
        return s.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.settimeout(20)


def test_limit():
    limit = 40
    with Harness("api-limit", tetherd_args=["--api-max-connections", str(limit)]) as h:
        h.register("m1")
        polls = [open_poll(h) for _ in range(limit)]
        # Full. A newcomer cuts off a connection whose request tetherd has not read yet, if any: a long-poll
        # not parked yet (opened again here), or the registration's, closed by the client but not yet by
        # tetherd. Once every one is parked, a newcomer is refused.
        deadline = time.monotonic() + 60
        while True:
            status = connect_status(h)
            if status == "HTTP/1.1 503 Service Unavailable":
                break
            check(status == "HTTP/1.1 200 OK" and time.monotonic() < deadline,
                  "at the limit a newcomer is answered (room made) or refused, never left hanging", status)
            for i, s in enumerate(polls):
                if closed_by_server(s):
                    s.close()
                    polls[i] = open_poll(h)

        extra = connect(h)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        status = read_status(extra)  # socket timeout 20 s: a client left hanging fails here
        extra.close()
        check(status == "HTTP/1.1 503 Service Unavailable", "with every connection parked, a client beyond the "
              "limit is answered 503 at once", status)
        check(not any(closed_by_server(s) for s in polls), "refusing cuts off no parked long-poll")

        for s in polls:
            s.close()
        # Suspended long-polls whose clients left are found within the 5 s sweep.
        wait_until("the API answers again once the long-polls' clients are gone",
                   lambda: connect_status(h) == "HTTP/1.1 200 OK", timeout=30)
        st = stats(h)
        check(st["api_connections_refused"] >= 2, "refusals are counted", st.get("api_connections_refused"))
        # And it keeps answering: the limit can be reached and left again.
        for _ in range(3):
            check(h.api.get("/healthz", timeout=10)[0] == 200, "healthz answers 200 after the limit")


def connect_status(h, delay=0):
    """The status line of a GET /healthz, its request written whole delay seconds after the connect."""
    try:
        s = connect(h)
        s.settimeout(5)
        time.sleep(delay)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status = read_status(s)
        s.close()
        return status
    except OSError as e:
        return "error %s" % e


def trickler(h, idle, stop, closes):
    """A client that sends a request a byte every 200 ms (never its end), or nothing (idle), and reconnects
    each time tetherd closes it."""
    request = b"GET /v1/stats HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    while not stop.is_set():
        try:
            s = connect(h)
        except OSError:
            time.sleep(0.05)
            continue
        s.settimeout(0.2)
        i = 0
        while not stop.is_set():
            try:
                if not idle and i < len(request) - 4:
                    s.send(request[i:i + 1])
                    i += 1
                d = s.recv(4096)
                if not d or b" 503 " in d:
                    closes.append(time.monotonic())
                    break
            except socket.timeout:
                continue
            except OSError:
                closes.append(time.monotonic())
                break
        s.close()


def with_tricklers(h, n_slow, n_idle, fn):
    stop = threading.Event()
    closes = []
    threads = [threading.Thread(target=trickler, args=(h, i >= n_slow, stop, closes), daemon=True)
               for i in range(n_slow + n_idle)]
    for t in threads:
        t.start()
    try:
        return fn(closes)
    finally:
        stop.set()
        for t in threads:
            t.join(10)


def test_slowloris():
    limit = 30
    with Harness("api-slowloris", tetherd_args=["--api-max-connections", str(limit),
                                                "--api-request-timeout-ms", "1000"]) as h:
        # Fewer than the limit: each is cut off by the request timeout, about a second after it connected.
        def below(closes):
            wait_until("slow and idle clients are disconnected once their request is late",
                       lambda: len(closes) >= 40, timeout=60)
            check(connect_status(h) == "HTTP/1.1 200 OK", "a normal client is answered meanwhile")
            st = stats(h)
            log("below the limit: timed out %d, evicted %d" % (st["api_connections_timed_out"],
                                                               st["api_connections_evicted"]))
            check(st["api_connections_timed_out"] >= 40, "late requests are cut off and counted",
                  st.get("api_connections_timed_out"))
        with_tricklers(h, 15, 5, below)

        # More than the limit, reconnecting as fast as they are cut off: a client that sends its request
        # whole still gets its answer, every time.
        def above(closes):
            wait_until("the slow clients fill the API", lambda: len(closes) >= 20, timeout=60)
            for i in range(10):
                # Answered, or told to retry (503 while as many cut-off connections wait to be closed as the
                # limit allows); never left without an answer, and a retry gets through. Every other client
                # writes 50 ms after its connect (a client descheduled on a loaded host): its new connection is
                # not taken from it meanwhile.
                for _ in range(20):
                    status = connect_status(h, delay=0.05 * (i % 2))
                    if status != "HTTP/1.1 503 Service Unavailable":
                        break
                    time.sleep(0.05)
                check(status == "HTTP/1.1 200 OK", "a normal client is answered while %d slow clients hold "
                      "every connection (try %d)" % (limit + 10, i + 1), status)
            st = stats(h)
            log("above the limit: timed out %d, evicted %d" % (st["api_connections_timed_out"],
                                                               st["api_connections_evicted"]))
            check(st["api_connections_evicted"] >= 5, "connections cut off to make room are counted",
                  st.get("api_connections_evicted"))
        with_tricklers(h, limit, 10, above)
        # A POST that arrives whole is unaffected by the timeout.
        h.register("m2")


def test_watchdog():
    with Harness("api-watchdog", start=False) as h:
        notify_path = h.path("notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(0.1)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="2000000")
        env.pop("WATCHDOG_PID", None)
        h.tetherd = h.spawn(h.tetherd_argv(), "tetherd.log", env=env)

        pings = []

        def collect(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    msg = notify.recv(4096).decode()
                except socket.timeout:
                    continue
                if "WATCHDOG=1" in msg.split("\n"):
                    pings.append(time.monotonic())

        # Counted from tetherd's first ping, not from its start: under valgrind it takes seconds to start.
        deadline = time.monotonic() + 30
        while not pings and h.tetherd.poll() is None and time.monotonic() < deadline:
            collect(0.1)
        check(pings, "tetherd starts feeding the watchdog once it runs")
        collect(3.5)
        check(h.tetherd.poll() is None, "tetherd runs")
        check(len(pings) >= 4, "tetherd feeds the watchdog (every 0.5 s of a 2 s period) while its API answers",
              len(pings))
        st = h.api.get_ok("/v1/stats")
        check(st["api_requests"] >= 4, "the pings follow tetherd's own probes of the API", st["api_requests"])

        os.unlink(h.api_socket)
        cut = time.monotonic()
        collect(3.5)
        late = [t - cut for t in pings if t > cut + 1.8]  # stops after 1.0 s, plus room for a slow reader
        check(not late, "no ping once the API has not answered for half the watchdog period",
              ["%.2f s after the socket went" % t for t in late])
        with open(h.path("tetherd.log")) as f:
            text = f.read()
        check("has not answered tetherd's own probe" in text, "tetherd says why it stopped feeding the watchdog")


def test_paths():
    with Harness("api-paths") as h:
        h.register("victim")
        for path, want in [("/v1/machines/victim", 200), ("/v1/machines/vic%74im", 200),
                           ("/v1/machines/victim%00x", 400), ("/v1/machines/victim%00", 400),
                           ("/v1/machines/victim%00x/logs", 400), ("/v1/machines/victim%00/ready?timeout=1", 400),
                           ("/v1/machines/victim/ready?timeout=0.1%00", 400), ("/v1/machines/vi%01ctim", 400),
                           ("/v1/events?machine_id=victim%00x", 400)]:
            status, doc, raw = h.api.get(path, timeout=10)
            check(status == want, "GET %s answers %d" % (path, want), "status %d body %r" % (status, raw[:300]))
            if want == 400:
                check("victim" not in (doc or {}).get("machine_id", ""), "no machine's data in the answer", doc)
        status, _, raw = h.api.request("DELETE", "/v1/machines/victim%00x")
        check(status == 400, "DELETE of victim%00x is refused, not a delete of victim", (status, raw))
        h.api.get_ok("/v1/machines/victim")


def main():
    which = sys.argv[1]
    {"limit": test_limit, "slowloris": test_slowloris, "watchdog": test_watchdog, "paths": test_paths}[which]()


if __name__ == "__main__":
    run_test(main)
