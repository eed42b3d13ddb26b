"""One overlay mount, analysed once: its layers' real directories held open (O_PATH).

The engine proves each layer (``analyse``); a layer is used at its proven real path, else at the
path its declaration resolved to (then everything found in it is at most ``likely``).
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from typing import Any

from ovlinspect.engine.analyse import analyse
from ovlinspect.engine.state import NamespaceContext
from ovlinspect.kernel.handles import OVL_FILEID_V1, is_null_uuid
from ovlinspect.kernel.objects import handle_of, lookup, lstat_at
from ovlinspect.kernel.syscalls import (
    AT_EMPTY_PATH,
    AT_HANDLE_FID,
    fs_magic,
    get_fs_uuid,
    name_to_handle_at,
)
from ovlinspect.model import Overlay, Verified
from ovlinspect.mounts.mountinfo import MountEntry
from ovlinspect.provenance.result import ObjectRef

OVERLAYFS_SUPER_MAGIC = 0x794C7630


@dataclass
class LayerDir:
    """One upper, lower or data-only layer: its real directory, open, and how sure we are."""

    role: str
    index: int
    fd: int | None
    real_path: str | None
    proven: bool
    uuid: bytes | None = None
    on_overlay: bool = False
    note: str = ""

    @property
    def label(self) -> str:
        """``upper``, ``lower[i]``, ``data[j]``."""
        return self.role if self.role == "upper" else f"{self.role}[{self.index}]"

    def ref(self, rel: str) -> ObjectRef:
        """The object at ``rel`` (below the layer root) in this layer."""
        path = None
        if self.real_path is not None:
            path = posixpath.join(self.real_path, rel) if rel else self.real_path
        return ObjectRef(self.role, self.index, path)


@dataclass
class Session:
    """An overlay mount of one view, with its layers open; close it when done."""

    entry: MountEntry
    overlay: Overlay
    ctx: NamespaceContext
    root_fd: int | None
    positions: list[LayerDir] = field(default_factory=list)  # upper, then lowers top-first
    data: list[LayerDir] = field(default_factory=list)
    handles: bool = False
    userxattr: bool = False
    follow_redirects: bool = True
    index_dir: int | None = None
    index_path: str | None = None
    stacks: dict[str, Any] = field(default_factory=dict)  # walk.dir_stack cache, by rel

    @property
    def prefix(self) -> str:
        """The mount's root below the overlay's root (``""`` unless a subdirectory is bound)."""
        return self.entry.root.strip("/")

    @property
    def xattr_prefix(self) -> str:
        """``user.overlay.`` with userxattr, else ``trusted.overlay.``."""
        return "user.overlay." if self.userxattr else "trusted.overlay."

    @property
    def upper(self) -> LayerDir | None:
        """The upper layer, if any."""
        return next((p for p in self.positions if p.role == "upper"), None)

    def layers(self) -> list[LayerDir]:
        """Positions then data-only layers."""
        return self.positions + self.data

    def by_real_path(self, path: str) -> tuple[LayerDir, str] | None:
        """The layer whose real directory holds ``path``, and the path below it (deepest
        layer root wins)."""
        best: tuple[LayerDir, str] | None = None
        for layer in self.layers():
            root = layer.real_path
            if root is None:
                continue
            if path == root:
                rel = ""
            elif path.startswith(root.rstrip("/") + "/"):
                rel = path[len(root.rstrip("/")) + 1:]
            else:
                continue
            if best is None or len(root) > len(best[0].real_path or ""):
                best = (layer, rel)
        return best

    def close(self) -> None:
        """Close every fd."""
        for layer in self.layers():
            if layer.fd is not None:
                os.close(layer.fd)
                layer.fd = None
        for fd in (self.root_fd, self.index_dir):
            if fd is not None:
                os.close(fd)
        self.root_fd = self.index_dir = None


def _open_in(ctx: NamespaceContext, path: str) -> int | None:
    """A directory path (canonical) opened O_PATH in the view, else in an outer view."""
    views = ([ctx.view] if ctx.view is not None else []) + [o.view for o in ctx.outers]
    for view in views:
        try:
            return view.open(path, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            continue
    return None


def _uuid(fd: int) -> bytes | None:
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    except OSError:
        return None
    try:
        return get_fs_uuid(dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)


def open_session(entry: MountEntry, ctx: NamespaceContext) -> Session:
    """Analyse ``entry`` with the engine and open its layers' real directories."""
    overlay = analyse(entry, ctx)
    root_fd = None
    if ctx.view is not None:
        root_fd, _why = ctx.view.open_mount(entry.mount_point, entry.mount_id)
    flags = overlay.options.flags
    session = Session(entry=entry, overlay=overlay, ctx=ctx, root_fd=root_fd,
                      userxattr="userxattr" in flags,
                      follow_redirects=flags.get("redirect_dir") not in ("off", "nofollow"))
    if root_fd is not None:
        try:
            raw = name_to_handle_at(root_fd, "", AT_EMPTY_PATH | AT_HANDLE_FID)
            session.handles = raw.type == OVL_FILEID_V1
        except OSError:
            session.handles = False
    for layer in overlay.layers:
        if layer.role == "work":
            continue
        path = layer.real_path
        proven = layer.verified == Verified.MATCH and path is not None
        note = ""
        if path is None and layer.verified != Verified.MISMATCH:
            path = layer.path or layer.host_path
            note = (f"{layer.label} is not proven ({layer.proof.reason}): its declared "
                    "directory is used, so what it holds is at most likely")
        fd = _open_in(ctx, path) if path is not None else None
        if fd is None:
            note = f"{layer.label}: its real directory is unknown or unreachable"
        item = LayerDir(role=layer.role, index=layer.index, fd=fd, real_path=path,
                        proven=proven and fd is not None, note=note)
        if fd is not None:
            item.on_overlay = fs_magic(fd) == OVERLAYFS_SUPER_MAGIC
            item.uuid = _uuid(fd)
            if is_null_uuid(item.uuid):
                item.uuid = None
        (session.data if layer.role == "data" else session.positions).append(item)
    work = next((x for x in overlay.layers if x.role == "work"), None)
    if work is not None and flags.get("index") == "on":
        wpath = work.real_path or work.path or work.host_path
        wfd = _open_in(ctx, wpath) if wpath else None
        if wfd is not None and wpath is not None:
            session.index_dir = lookup(wfd, "index")
            session.index_path = posixpath.join(wpath, "index")
            os.close(wfd)
    return session


def same_handle(layer: LayerDir, rel: str, fid_type: int, fid: bytes, uuid: bytes) -> bool:
    """The layer's object at ``rel`` is the one (uuid, type, fid) names."""
    if layer.fd is None:
        return False
    if layer.on_overlay and "/" in rel:
        # The layer is itself an overlay: encoding a directory below its top level could copy
        # it up there (nfs_export).  Only non-directories are compared.
        st = lstat_at(layer.fd, rel)
        if st is None or stat.S_ISDIR(st.st_mode):
            return False
    handle = handle_of(layer.fd, rel) if rel else handle_of(layer.fd)
    if handle is None or handle.type != fid_type or handle.data != fid:
        return False
    return layer.uuid is None or is_null_uuid(uuid) or layer.uuid == uuid
