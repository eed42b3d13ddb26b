"""Open the layers a diff reads: the upper the engine proved, and the lowers, in the right view.

The engine (:func:`ovlinspect.engine.scan.scan`) says which directory each layer really is and in
which view (``path``: the process's own; ``host_path``: a view outside its namespace).  Each is
reopened here with openat2 ``RESOLVE_IN_ROOT`` in that view and checked to be the very object
the engine looked at (device and inode, and the handle; a mismatched upper's real directory by
the overlay root's ``PATH_UPPER`` handle), never by a raw host path string.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from ovlinspect.changes.index import fb_handle
from ovlinspect.changes.lowers import read_xattrs
from ovlinspect.changes.types import DiffError, MountChanges
from ovlinspect.engine.scan import scan
from ovlinspect.host.processes import (
    CAP_SYS_ADMIN,
    ScanError,
    ancestors,
    effective_caps,
    ns_inode,
    root_is_ns_root,
)
from ovlinspect.host.view import View, ViewError
from ovlinspect.kernel.handles import decode_overlay_handle
from ovlinspect.kernel.objects import handle_of, lookup
from ovlinspect.kernel.syscalls import RawHandle
from ovlinspect.model import Layer, Namespace, Overlay, Verified


@dataclass
class OverlaySource:
    """One overlay's upper and lowers (top first), open as O_PATH directory fds."""

    mount_point: str
    mount_id: int
    upper: int
    lowers: list[int]
    prefix: str = ""                  # the mount's root inside the layers (a bound subdirectory)
    xattr: str = "trusted.overlay."   # or ``user.overlay.`` with ``userxattr``
    notes: list[str] = field(default_factory=list)
    index: int = -1                   # work/index (``index=on``, a proven workdir), or -1

    def close(self) -> None:
        """Close every fd."""
        for fd in [self.upper, *self.lowers, *([self.index] if self.index >= 0 else [])]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.upper, self.lowers, self.index = -1, [], -1


@dataclass
class Target:
    """A mount to diff: its result record, and its source when the layers could be opened."""

    result: MountChanges
    source: OverlaySource | None = None


def open_targets(pid: int | None, mount_point: str | None) -> list[Target]:
    """The overlays of ``pid``'s namespace (the caller's by default), or the one at
    ``mount_point``; each with its layers open, or an ``error`` saying why not.

    Raises :class:`DiffError` for a bad pid or a mount point that is not an overlay there.
    """
    pid = os.getpid() if pid is None else pid
    try:
        report = scan([pid])
    except ScanError as exc:
        raise DiffError(str(exc)) from None
    ns = next((n for n in report.namespaces if pid in n.pids), None)
    if ns is None:
        why = "; ".join(report.errors) or "its mount namespace could not be read"
        raise DiffError(f"pid {pid}: {why}")
    overlays = ns.overlays
    if mount_point is not None:
        wanted = os.path.normpath(mount_point)
        overlays = [o for o in overlays if o.mount_point == wanted][-1:]
        if not overlays:
            raise DiffError(f"{mount_point}: no overlay is mounted there in pid {pid}'s "
                            "mount namespace")
    views = _Views(ns)
    try:
        return [_target(overlay, views) for overlay in overlays]
    finally:
        views.close()


class _Views:
    """The namespace's own view, then the views around it (as the engine's resolution used)."""

    def __init__(self, ns: Namespace) -> None:
        self.own: View | None = None
        self.outer: list[View] = []
        self.error = ""
        root = ns.root_pid if ns.root_pid is not None else ns.pids[0]
        try:
            self.own = View(root)
        except ViewError as exc:
            self.error = str(exc)
        seen = {ns.mnt_ns}
        for other in [*ancestors(root), 1]:
            inode = ns_inode(other)
            if inode is None or inode in seen or not root_is_ns_root(other):
                continue
            seen.add(inode)
            with contextlib.suppress(ViewError):
                self.outer.append(View(other))

    def close(self) -> None:
        for view in [self.own, *self.outer]:
            if view is not None:
                view.close()


def _target(overlay: Overlay, views: _Views) -> Target:
    result = MountChanges(mount_point=overlay.mount_point, mount_id=overlay.mount_id)
    if overlay.fs_type != "overlay":
        result.error = (f"{overlay.fs_type}: the mount carries no layer paths, so its upper "
                        "layer cannot be found")
        return Target(result)
    upper = next((la for la in overlay.layers if la.role == "upper"), None)
    if upper is None:
        result.notes.append("no upper layer: a read-only overlay has no changes")
        return Target(result)
    userxattr = "userxattr" in overlay.options.flags
    if not userxattr and not effective_caps() >> CAP_SYS_ADMIN & 1:
        result.error = ("cannot read the upper's trusted.overlay.* xattrs (whiteouts in xattr "
                        "form, opaque directories, redirects): CAP_SYS_ADMIN is missing")
        return Target(result)
    if views.own is None:
        result.error = f"cannot look into the namespace: {views.error}"
        return Target(result)
    fds: list[int] = []
    try:
        fd, note = _open_upper(overlay, upper, views)
        fds.append(fd)
        result.notes += [note] if note else []
        for layer in (la for la in overlay.layers if la.role == "lower"):
            fd, note = _open_lower(layer, views)
            fds.append(fd)
            result.notes += [note] if note else []
    except _Refused as exc:
        for fd in fds:
            os.close(fd)
        result.error = str(exc)
        return Target(result)
    source = OverlaySource(mount_point=overlay.mount_point, mount_id=overlay.mount_id,
                           upper=fds[0], lowers=fds[1:], prefix=overlay.root.strip("/"),
                           xattr="user.overlay." if userxattr else "trusted.overlay.",
                           notes=result.notes)
    if overlay.options.flags.get("index") == "on":
        source.index = _open_index(overlay, views, source)
    return Target(result, source)


def _open_index(overlay: Overlay, views: _Views, source: OverlaySource) -> int:
    """``work/index`` (where lower hard links copied up through another name are served from),
    or -1 with a note.  A workdir the engine left unproven (a bound subdirectory's mount has no
    root handle naming the upper) is proven here the same way: ``overlay.upper`` on its index
    names the proven upper root."""
    work = next((la for la in overlay.layers if la.role == "work"), None)
    fd = (_reopen(work, views) if work is not None and work.verified != Verified.MISMATCH
          else None)
    index = lookup(fd, "index") if fd is not None else None
    if fd is not None:
        os.close(fd)
    if index is not None and work is not None and work.verified != Verified.MATCH and not (
            _names_upper(index, source)):
        os.close(index)
        index = None
    if index is None:
        source.notes.append("index=on, but the workdir's index is not proven: lower hard links "
                            "served from an index entry (copied up through another name) are "
                            "not listed")
        return -1
    return index


def _names_upper(index: int, source: OverlaySource) -> bool:
    """``overlay.upper`` on ``index`` is the handle of the upper root ``source`` reads."""
    stored = fb_handle(read_xattrs(f"/proc/self/fd/{index}", source.xattr,
                                   follow=True).get("upper"))
    handle = handle_of(source.upper)
    return stored is not None and handle is not None and stored == (handle.type, handle.data)


class _Refused(Exception):
    """A layer that cannot be read as proven; the message says why."""


def _same(fd: int, layer: Layer) -> bool:
    """``fd`` is the object the engine recorded for ``layer`` (device, inode and handle)."""
    st = os.fstat(fd)
    if f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" != layer.dev or st.st_ino != layer.ino:
        return False
    if layer.handle is None:
        return True
    handle = handle_of(fd)
    return handle is not None and handle.data.hex() == layer.handle.hex


def _open_in(view: View, path: str) -> int | None:
    try:
        return view.open(path, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return None


def _reopen(layer: Layer, views: _Views) -> int | None:
    """The declared layer's directory again, in the view the engine resolved it in."""
    tries: list[tuple[View, str]] = []
    if layer.path is not None and views.own is not None:
        tries.append((views.own, layer.path))
    if layer.host_path is not None:
        tries += [(view, layer.host_path) for view in views.outer]
    for view, path in tries:
        fd = _open_in(view, path)
        if fd is not None and _same(fd, layer):
            return fd
        if fd is not None:
            os.close(fd)
    return None


def _all_views(views: _Views) -> list[View]:
    return [v for v in [views.own, *views.outer] if v is not None]


def _open_upper(overlay: Overlay, layer: Layer, views: _Views) -> tuple[int, str]:
    if layer.verified == Verified.MATCH:
        fd = _reopen(layer, views)
        if fd is None:
            raise _Refused("the proven upper directory changed or vanished since it was "
                           "checked; run again")
        return fd, ""
    if layer.verified == Verified.MISMATCH and layer.real_path and overlay.root_handle:
        fid = decode_overlay_handle(RawHandle(overlay.root_handle.type,
                                              bytes.fromhex(overlay.root_handle.hex), 0))
        for view in _all_views(views):
            fd = _open_in(view, layer.real_path)
            if fd is None:
                continue
            handle = handle_of(fd)
            if (fid is not None and fid.upper and handle is not None and fid.matches(handle)
                    and overlay.root == "/"):
                return fd, (f"the declared upper {layer.declared} is not the one in use; this "
                            f"diff reads the real upper, {layer.real_path}")
            os.close(fd)
    raise _Refused(f"the upper layer is not proven ({layer.verified}: {layer.proof.reason}), "
                   "so its changes cannot be trusted")


def _open_lower(layer: Layer, views: _Views) -> tuple[int, str]:
    if layer.verified == Verified.MISMATCH:
        for view in _all_views(views) if layer.real_path else []:
            fd = _open_in(view, layer.real_path or "")
            if fd is not None:
                return fd, (f"{layer.label}: the declared {layer.declared} is not the layer in "
                            f"use; the marks use the real one, {layer.real_path}")
        raise _Refused(f"{layer.label} is not the layer in use and its real directory is "
                       "unknown, so added and changed paths cannot be told apart")
    fd = _reopen(layer, views)
    if fd is None:
        raise _Refused(f"{layer.label} ({layer.declared}) cannot be opened by path in any "
                       "view (covered, e.g. by the overlay itself, or gone), so added and "
                       "changed paths cannot be told apart")
    if layer.verified != Verified.MATCH:
        return fd, (f"{layer.label} is unverified ({layer.proof.reason}): the marks read its "
                    "declared directory")
    return fd, ""
