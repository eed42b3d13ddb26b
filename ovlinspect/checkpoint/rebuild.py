"""A read-only rebuild of a dumped overlay as a detached mount (``dump --verify`` without root,
and for overlays whose layers are only likely).

A forked child enters a new mount namespace and, when not root, a new user namespace that maps
only the caller's uid and gid.  There it finds every layer again (by the directory's own handle
and fs uuid, or device and inode), asks whether the upper is in use by a mounted overlay
(:mod:`ovlinspect.checkpoint.inuse`), and replays the read-only recipe (the upper as the top
lower, no workdir, ``ro``) with every layer passed as FSCONFIG_SET_FD (as paths before 6.13),
up to ``fsmount``.  The mount is never attached anywhere: its fd goes back to the parent over a
socket (SCM_RIGHTS), and the overlay goes away with the last fd.  The parent then compares trees
with its own credentials, so owners the user namespace does not map still show as they are.

Layer fds are opened in the child, after unshare: overlayfs refuses a layer fd whose mount
belongs to another mount namespace ("failed to clone lowerpath", EINVAL).
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
from dataclasses import dataclass, field
from typing import Any

from ovlinspect.checkpoint import model as m
from ovlinspect.checkpoint.recipe import ReplayError, build_recipe, by_fd, replay_detached
from ovlinspect.kernel import mountapi as api

USER_NAMESPACE = "user-namespace"
MOUNT_NAMESPACE = "mount-namespace"


@dataclass
class Rebuilt:
    """What the child built: a detached mount fd (owned by the caller) or why not."""

    mode: str
    fd: int | None = None
    reason: str | None = None
    error: str = ""
    layers: dict[str, bool] = field(default_factory=dict)
    upper_in_use: bool | None = None  # see :mod:`ovlinspect.checkpoint.inuse`


def rebuild(ov: m.DumpOverlay, *, userns: bool, timeout: float = 60.0) -> Rebuilt:
    """Rebuild ``ov`` read-only in a throwaway namespace; see the module docstring."""
    mode = USER_NAMESPACE if userns else MOUNT_NAMESPACE
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        parent.close()
        try:
            _child(ov, userns, child)
        finally:
            os._exit(0)
    child.close()
    try:
        return _receive(parent, pid, mode, timeout)
    finally:
        parent.close()
        os.waitpid(pid, 0)


def _receive(sock: socket.socket, pid: int, mode: str, timeout: float) -> Rebuilt:
    if not select.select([sock], [], [], timeout)[0]:
        os.kill(pid, signal.SIGKILL)
        return Rebuilt(mode, reason=m.V_REBUILD_FAILED, error="the rebuild did not finish in time")
    data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 1)
    try:
        out: dict[str, Any] = json.loads(data or b"{}")
    except ValueError:
        out = {}
    result = Rebuilt(mode, fd=fds[0] if fds else None, reason=out.get("reason"),
                     error=str(out.get("error", "")), layers=dict(out.get("layers") or {}),
                     upper_in_use=out.get("upper_in_use"))
    if result.fd is None and result.reason is None:
        result.reason, result.error = m.V_REBUILD_FAILED, result.error or "the rebuild child died"
    return result


def _send(sock: socket.socket, out: dict[str, Any], fd: int | None = None) -> None:
    socket.send_fds(sock, [json.dumps(out).encode()], [] if fd is None else [fd])


def _enter(userns: bool) -> None:
    """A new mount namespace; with ``userns`` a new user namespace mapping only our ids."""
    uid, gid = os.geteuid(), os.getegid()
    api.unshare(api.CLONE_NEWNS | (api.CLONE_NEWUSER if userns else 0))
    if userns:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
                handle.write(text)


def _in_use(fd: int) -> bool | None:  # pragma: no cover - runs in the child
    from ovlinspect.checkpoint.inuse import in_use

    try:
        return in_use(fd)
    except OSError:
        return None


def _child(ov: m.DumpOverlay, userns: bool, sock: socket.socket) -> None:  # pragma: no cover
    from ovlinspect.checkpoint.restore import locate_layers, own_mounts
    from ovlinspect.host.view import View

    try:
        _enter(userns)
    except OSError as exc:
        _send(sock, {"reason": m.V_NO_USERNS if userns else m.V_REBUILD_FAILED,
                     "error": f"{exc.strerror or exc}"})
        return
    try:
        needed = dataclasses.replace(ov, layers=[i for i in ov.layers if i.role != "work"])
        checks: list[Any] = []
        view = View(os.getpid())
        try:
            found = locate_layers(needed, view, own_mounts(), checks)
        finally:
            view.close()
        layers = {i.label: i.label in found for i in needed.layers}
        upper = found.get("upper")
        in_use = _in_use(upper.fd) if upper is not None else None
        try:
            if checks:
                _send(sock, {"reason": m.V_REBUILD_FAILED, "layers": layers,
                             "error": f"{checks[0].label}: {checks[0].why}"})
                return
            paths = {label: f.path for label, f in found.items()}
            steps = build_recipe(needed, paths, read_only_rebuild=True)
            fds = {label: f.fd for label, f in found.items()}
            try:
                mnt = replay_detached(by_fd(steps), fds)
            except ReplayError:  # before 6.13 overlayfs takes no layer fds: paths, then
                mnt = replay_detached(steps, fds)
        finally:
            for item in found.values():
                item.close()
        _send(sock, {"layers": layers, "upper_in_use": in_use}, mnt)
    except BaseException as exc:
        _send(sock, {"reason": m.V_REBUILD_FAILED, "error": f"{exc!r}"})
