"""Which mounted filesystem has a given uuid, and turning a file handle back into a path.

An overlay handle names the real filesystem only by its uuid.  :class:`FsIndex` asks
FS_IOC_GETFSUUID of every mounted filesystem in one view (once per superblock, lazily) and then
decodes handles with open_by_handle_at on a mount of the matching filesystem.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ovlinspect.host.view import View
from ovlinspect.kernel.syscalls import fd_path, get_fs_uuid, open_by_handle_at
from ovlinspect.mounts.mountinfo import MountEntry

# Filesystems that never back an overlay layer and have no uuid ioctl; skipping them keeps the
# index cheap and never touches a network or FUSE server that could hang.
PSEUDO_FS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "binfmt_misc", "autofs", "nsfs", "rpc_pipefs",
    "efivarfs", "selinuxfs", "hugetlbfs", "devtmpfs", "ramfs", "nfs", "nfs4", "cifs", "smb3",
    "ceph", "9p",
})


@dataclass
class Decoded:
    """A handle decoded in one view: the path, or why there is none."""

    path: str | None
    mount: MountEntry | None
    note: str


class FsIndex:
    """Mounted filesystems of one view, keyed by fs uuid."""

    def __init__(self, view: View, mounts: list[MountEntry]) -> None:
        self.view = view
        self.mounts = mounts
        self.by_id = {m.mount_id: m for m in mounts}
        self._by_uuid: dict[bytes, list[tuple[MountEntry, int]]] | None = None
        self._fds: list[int] = []

    def close(self) -> None:
        """Close every mount fd the index opened."""
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._by_uuid = None

    def _build(self) -> dict[bytes, list[tuple[MountEntry, int]]]:
        by_uuid: dict[bytes, list[tuple[MountEntry, int]]] = {}
        seen_dev: set[str] = set()
        for mount in self.mounts:
            if mount.fs_type in PSEUDO_FS or mount.fs_type.startswith("fuse") or (
                mount.dev in seen_dev
            ):
                continue
            fd, _why = self.view.open_mount(mount.mount_point, mount.mount_id)
            if fd is None:
                continue
            try:
                # open_by_handle_at refuses O_PATH mount fds: keep a real directory fd.
                dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                raw = get_fs_uuid(dfd)
            except OSError:
                raw = None
            if raw is None:
                os.close(dfd)
                continue
            self._fds.append(dfd)
            seen_dev.add(mount.dev)
            by_uuid.setdefault(raw, []).append((mount, dfd))
        return by_uuid

    def candidates(self, uuid: bytes) -> list[tuple[MountEntry, int]]:
        """Mounts whose filesystem reports ``uuid`` (several when the uuid is null or shared)."""
        if self._by_uuid is None:
            self._by_uuid = self._build()
        return self._by_uuid.get(uuid, [])

    def known(self, uuid: bytes) -> bool:
        """True when some visible mount has this filesystem uuid."""
        return bool(self.candidates(uuid))

    def decode(self, uuid: bytes, handle_type: int, fid: bytes) -> Decoded:
        """The path of the object a real-fs handle names, via a mount with that uuid."""
        cands = self.candidates(uuid)
        if not cands:
            return Decoded(None, None, "no visible mount has this filesystem uuid")
        last = ""
        for mount, mfd in cands:
            found = decode_with(mfd, handle_type, fid)
            if found is None:
                last = "handle does not decode on this filesystem"
                continue
            if isinstance(found, OSError):
                if found.errno == errno.EPERM:
                    return Decoded(None, mount, "decoding handles needs CAP_DAC_READ_SEARCH")
                last = f"open_by_handle_at: {found.strerror}"
                continue
            if (found == "/" and mount.mount_point != "/") or not found.startswith("/"):
                last = "handle decoded disconnected (cold non-directory)"
                continue
            return Decoded(found, mount, f"decoded on mount {mount.mount_id} ({mount.mount_point})")
        return Decoded(None, None, last)


def decode_with(mount_fd: int, handle_type: int, fid: bytes) -> str | OSError | None:
    """Decode on the filesystem of ``mount_fd``: a path, an OSError, or None (stale handle)."""
    try:
        fd = open_by_handle_at(mount_fd, handle_type, fid)
    except OSError as exc:
        if exc.errno in (errno.ESTALE, errno.ENOENT, errno.EINVAL):
            return None
        return exc
    try:
        return fd_path(fd)
    finally:
        os.close(fd)
