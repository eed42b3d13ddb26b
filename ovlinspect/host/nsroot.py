"""Open a mount namespace's own root, for namespaces whose every process is chrooted.

``/proc/PID/root`` of a chrooted process is its chroot, and its mountinfo lists only what is
below it, so the layers of a container whose processes are all chrooted into the overlay cannot be
resolved from any of them.  A forked child joins the namespace with setns(2), which sets its root
to the namespace's root, opens ``/`` and reads its mountinfo, and hands both back over a socket.
The child is single-threaded (fork copies only the calling thread) and does nothing else.
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import struct

from ovlinspect.kernel.syscalls import CLONE_NEWNS, setns

MAX_MOUNTINFO = 64 << 20


class NamespaceRootError(OSError):
    """The namespace's root could not be opened (no privilege, or the process is gone)."""


def open_namespace_root(pid: int) -> tuple[int, str]:
    """An O_PATH fd of the root of ``pid``'s mount namespace, and that namespace's mountinfo."""
    ns_fd = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        child_pid = os.fork()
        if child_pid == 0:  # pragma: no cover - runs in the child
            _child(ns_fd, child)
        child.close()
        os.close(ns_fd)
        ns_fd = -1
        return _receive(parent, child_pid)
    finally:
        if ns_fd >= 0:
            os.close(ns_fd)
        parent.close()
        if child.fileno() >= 0:
            child.close()


def _child(ns_fd: int, sock: socket.socket) -> None:  # pragma: no cover - runs in the child
    status = 1
    try:
        setns(ns_fd, CLONE_NEWNS)
        root = os.open("/", os.O_PATH | os.O_DIRECTORY)
        with open("/proc/thread-self/mountinfo", "rb") as handle:
            text = handle.read(MAX_MOUNTINFO)
        header = struct.pack("=iQ", 0, len(text))
        sock.sendmsg([header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [root]))])
        sock.sendall(text)
        status = 0
    except OSError as exc:
        with contextlib.suppress(OSError):
            sock.sendall(struct.pack("=iQ", exc.errno or 1, 0))
    finally:
        os._exit(status)


def _receive(sock: socket.socket, child_pid: int) -> tuple[int, str]:
    fds: list[int] = []
    try:
        size = struct.calcsize("=iQ")
        msg, ancdata, _flags, _addr = sock.recvmsg(size, socket.CMSG_SPACE(4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", data[: len(data) - len(data) % 4]).tolist()
        if len(msg) < size:
            raise NamespaceRootError(0, "the namespace helper exited early")
        err, length = struct.unpack("=iQ", msg)
        if err or not fds:
            raise NamespaceRootError(err, f"cannot enter the mount namespace: {os.strerror(err)}")
        chunks = []
        remaining = length
        while remaining > 0:
            chunk = sock.recv(min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        root = fds.pop(0)
        return root, b"".join(chunks).decode("utf-8", "surrogateescape")
    finally:
        for fd in fds:
            os.close(fd)
        os.waitpid(child_pid, 0)
