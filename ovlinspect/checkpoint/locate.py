"""Find a dumped layer directory again, in a view, and check it is the same real directory.

A directory is named across namespaces by its filesystem (mountinfo ``dev``) and its path inside
that filesystem (the holding mount's root + the path below the mount point).  Any mount of that
filesystem whose root contains the path reaches it.  Whatever is found is accepted only when its
filesystem uuid and file handle equal the dumped ones.

Handles of directories on an overlay are never taken here (encoding can copy up on an
``nfs_export`` overlay, see KERNEL-NOTES): such a directory is compared by ``st_dev``/``st_ino``
with what the engine already recorded.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from dataclasses import dataclass

from ovlinspect.host.view import View
from ovlinspect.kernel.handles import format_uuid
from ovlinspect.kernel.objects import handle_of
from ovlinspect.kernel.syscalls import (
    AT_EMPTY_PATH,
    AT_HANDLE_FID,
    AT_HANDLE_MNT_ID_UNIQUE,
    fd_mount_id,
    get_fs_uuid,
    name_to_handle_at,
)
from ovlinspect.model.types import Handle
from ovlinspect.mounts.mountinfo import MountEntry


@dataclass
class Found:
    """An opened directory (O_PATH fd, owned by the caller) and what identifies it."""

    fd: int
    path: str
    dev: str
    ino: int
    mount: MountEntry | None
    unique_id: int | None
    uuid: str | None
    handle: Handle | None

    def close(self) -> None:
        """Release the fd."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def same(self, uuid: str | None, handle: Handle | None, dev: str | None = None,
             ino: int | None = None) -> bool:
        """The same real directory: equal handle and uuid, or, where no handle was taken
        (a directory on an overlay), equal device and inode."""
        if handle is not None and self.handle is not None:
            return (self.handle.type, self.handle.hex) == (handle.type, handle.hex) and (
                uuid is None or self.uuid is None or uuid == self.uuid)
        return dev is not None and ino is not None and (self.dev, self.ino) == (dev, ino)


def mount_fs_path(mount: MountEntry, path: str) -> str:
    """``path`` (inside ``mount``'s mount point) as a path inside its filesystem."""
    below = posixpath.relpath(path, mount.mount_point)
    return posixpath.normpath(posixpath.join(mount.root, below) if below != "." else mount.root)


def open_in(view: View, path: str, mounts: list[MountEntry]) -> Found | None:
    """Open the canonical ``path`` in ``view`` (no symlinks) and identify it; None if absent."""
    try:
        fd = view.open(path, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return None
    return identify(fd, path, {m.mount_id: m for m in mounts})


def identify(fd: int, path: str, by_id: dict[int, MountEntry]) -> Found:
    """Stat, mount, uuid and (off overlays) handle of the directory behind ``fd``."""
    st = os.fstat(fd)
    mount_id = fd_mount_id(fd)
    mount = by_id.get(mount_id) if mount_id is not None else None
    on_overlay = mount is None or mount.fs_type == "overlay"
    handle = unique = None
    if not on_overlay:
        raw = handle_of(fd)
        handle = None if raw is None else Handle(type=raw.type, hex=raw.data.hex())
        with contextlib.suppress(OSError):
            unique = name_to_handle_at(fd, "", AT_EMPTY_PATH | AT_HANDLE_FID
                                       | AT_HANDLE_MNT_ID_UNIQUE).mount_id
    uuid = None
    with contextlib.suppress(OSError):
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        try:
            uuid = format_uuid(get_fs_uuid(dfd))
        finally:
            os.close(dfd)
    return Found(fd=fd, path=path, dev=f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}",
                 ino=st.st_ino, mount=mount, unique_id=unique, uuid=uuid, handle=handle)


def translate(dev: str, fs_path: str, mounts: list[MountEntry]) -> list[str]:
    """Paths that reach ``fs_path`` of the filesystem ``dev`` through the given mounts,
    shortest mount root first (the widest mount is the likeliest to be uncovered)."""
    out: list[str] = []
    for mount in sorted((m for m in mounts if m.dev == dev), key=lambda m: len(m.root)):
        root = mount.root.rstrip("/")
        if fs_path != mount.root and not fs_path.startswith(root + "/"):
            continue
        rest = fs_path[len(root):].lstrip("/")
        path = posixpath.join(mount.mount_point, rest) if rest else mount.mount_point
        if path not in out:
            out.append(path)
    return out


def find_again(view: View, mounts: list[MountEntry], candidates: list[str], dev: str | None,
               fs_path: str | None, uuid: str | None, handle: Handle | None,
               st: tuple[str | None, int | None] = (None, None)) -> Found | None:
    """The first path (the translated ones first, then ``candidates``) that opens in ``view``
    onto the same real directory; the caller owns the returned fd."""
    paths = translate(dev, fs_path, mounts) if dev and fs_path else []
    paths += [p for p in candidates if p and p not in paths]
    by_id = {m.mount_id: m for m in mounts}
    for path in paths:
        try:
            fd = view.open(path, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            continue
        found = identify(fd, path, by_id)
        if found.same(uuid, handle, *st):
            return found
        found.close()
    return None
