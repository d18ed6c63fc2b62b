#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A machine's socket for a VMM that is not root (issue #10, defect 13).

A registration with socket_uid/socket_gid/socket_mode: the socket <uds_path>_<port> has that owner, group and
mode, a process running as that user (nobody) can connect to it, the machine object says so, and after a
restart of tetherd the socket is made the same way again. Without them the socket is as before (tetherd's user,
the umask). Invalid values are a 400.
"""

import os
import socket
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, run_test  # noqa: E402

NOBODY = 65534


def connects_as(uid, gid, path):
    """True when a process with uid/gid can connect to the socket at path."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            os._exit(0)
        except BaseException as e:
            os.write(2, ("connect as %d:%d failed: %r\n" % (uid, gid, e)).encode())
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def check_socket(h, path):
    st = os.lstat(path)
    check(stat.S_ISSOCK(st.st_mode) and st.st_uid == NOBODY and st.st_gid == NOBODY and
          stat.S_IMODE(st.st_mode) == 0o600, "the socket has the owner, group and mode asked for",
          (st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))))
    check(connects_as(NOBODY, NOBODY, path), "a VMM running as that user can connect")


def main():
    with Harness("socket-owner") as h:
        os.chmod(h.dir, 0o755)
        doc = h.register("jailed", socket_uid=NOBODY, socket_gid=NOBODY, socket_mode="0600")
        check(doc.get("socket_uid") == NOBODY and doc.get("socket_gid") == NOBODY and
              doc.get("socket_mode") == "0600", "the machine object shows them", doc)
        path = h.guest_socket("jailed")
        check_socket(h, path)

        h.register("plain")
        st = os.lstat(h.guest_socket("plain"))
        check(st.st_uid == os.geteuid(), "without them the socket is tetherd's", st.st_uid)
        check(not connects_as(NOBODY, NOBODY, h.guest_socket("plain")) or
              stat.S_IMODE(st.st_mode) & 0o002, "... and nobody cannot connect to it unless the umask allows",
              oct(stat.S_IMODE(st.st_mode)))

        for bad in [{"socket_mode": "0999"}, {"socket_mode": "abc"}, {"socket_mode": "01777"},
                    {"socket_mode": 600}, {"socket_uid": -1}, {"socket_gid": "kvm"}]:
            status, _, raw = h.api.request("POST", "/v1/machines", dict(
                {"machine_id": "bad", "uds_path": h.uds_base("bad")}, **bad))
            check(status == 400, "%s is refused" % bad, (status, raw[:200]))
        status, _, raw = h.api.request("POST", "/v1/machines", {"machine_id": "bad", "cid": 77, "socket_mode": "0600"})
        check(status == 400, "socket_mode without a uds_path is refused", (status, raw[:200]))

        h.kill_tetherd()
        h.start_tetherd()
        check_socket(h, path)
        m = h.api.machine("jailed")
        check(m.get("socket_mode") == "0600", "the registration kept them across the restart", m)
        log("socket owner, group and mode applied, kept across a restart")


if __name__ == "__main__":
    run_test(main)
