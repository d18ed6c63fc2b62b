#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A registration cannot steal or destroy files through its uds_path (issue #10, defect 3).

- Another spelling of a registered machine's path (//, /./, dir/../) is refused (400): the victim's socket
  stays bound to the victim, its guest still connects.
- A path through a symbolic link is refused (400) and nothing is created behind the link.
- A machine's socket replaced by somebody else's file: deleting the machine leaves that file alone.
- Another user's dead socket at the path is not replaced (400).
- With --uds-root DIR, only paths below DIR are accepted: /etc/passwd is a 400 and no /etc/passwd_4817 appears.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetherlib import Harness, check, log, run_test  # noqa: E402


def main():
    with Harness("uds-paths") as h:
        h.register("victim")
        base = h.uds_base("victim")
        d, name = os.path.split(base)
        for alias in ["/" + base, base.replace("/", "//", 2), os.path.join(d, ".", name),
                      os.path.join(d, "x", "..", name), base + "/"]:
            status, doc, raw = h.api.request("POST", "/v1/machines", {"machine_id": "thief", "uds_path": alias})
            check(status == 400, "an alias of the victim's path is refused: %s" % alias, (status, raw[:200]))
        st = os.lstat(h.guest_socket("victim"))
        agent = h.start_service("victim", h.path("notify.sock"))
        h.wait_connected("victim")
        check(os.lstat(h.guest_socket("victim")).st_ino == st.st_ino, "the victim's socket is untouched")
        agent.terminate()

        os.mkdir(h.path("real"))
        os.symlink(h.path("real"), h.path("link"))
        status, _, raw = h.api.request("POST", "/v1/machines", {"machine_id": "linked",
                                                                "uds_path": h.path("link", "sub", "v.sock")})
        check(status == 400 and b"symbolic link" in raw, "a path through a symbolic link is refused", (status, raw))
        check(not os.path.exists(h.path("real", "sub")), "nothing is created behind the link")

        h.register("replaced")
        sock = h.guest_socket("replaced")
        os.unlink(sock)
        with open(sock, "w") as f:
            f.write("somebody else's file\n")
        status, _, raw = h.api.request("DELETE", "/v1/machines/replaced")
        check(status == 204, "the machine is deleted", (status, raw))
        check(os.path.isfile(sock), "deleting it leaves the file that replaced its socket alone")

        h.register("theirs")
        sock = h.guest_socket("theirs")
        status, _, _ = h.api.request("DELETE", "/v1/machines/theirs")
        check(status == 204 and not os.path.exists(sock), "a machine's own socket goes with it")
        s = socket.socket(socket.AF_UNIX)
        s.bind(sock)
        s.close()  # a dead socket
        os.lchown(sock, 65534, 65534)
        status, _, raw = h.api.request("POST", "/v1/machines", {"machine_id": "theirs", "uds_path": h.uds_base("theirs")})
        check(status == 400, "another user's dead socket is not replaced", (status, raw))
        check(os.lstat(sock).st_uid == 65534, "it is still there, still theirs")
        log("aliases, links, replaced and foreign files all refused or left alone")

    with Harness("uds-roots", start=False) as h:
        h.tetherd_args = ["--uds-root", h.path("vms") + "/"]
        h.start_tetherd()
        doc = h.api.register("inside", uds_path=h.path("vms", "inside", "v.sock"))
        check(doc and doc.get("machine_id") == "inside", "a path below --uds-root is accepted", doc)
        for path in [h.path("vm-outside.vsock"), "/etc/passwd", h.path("vms"), h.path("vmsx", "v.sock")]:
            status, _, raw = h.api.request("POST", "/v1/machines", {"machine_id": "outside", "uds_path": path})
            check(status == 400 and b"--uds-root" in raw, "a path not below --uds-root is refused: %s" % path,
                  (status, raw[:200]))
        check(not os.path.exists("/etc/passwd_4817"), "no /etc/passwd_4817")


if __name__ == "__main__":
    run_test(main)
