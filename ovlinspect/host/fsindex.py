"""Which mounted filesystem an overlay handle names, and turning a handle back into a path.

An overlay handle names the real filesystem only by its uuid (``sb->s_uuid``).  :class:`FsIndex`
learns, once per superblock and lazily, the uuids each mounted filesystem of one view can appear
under: FS_IOC_GETFSUUID (ext4, xfs, erofs, tmpfs), or the btrfs fsid (btrfs answers ENOTTY to
FS_IOC_GETFSUUID).  Filesystems with no uuid ioctl at all (squashfs) or with a null uuid are
ambiguous: a handle is then tried on each of them, and ESTALE tells them apart.
"""

from __future__ import annotations

import bisect
import errno
import os

from ovlinspect.host.view import View
from ovlinspect.kernel.syscalls import btrfs_fsids, fd_path, get_fs_uuid, open_by_handle_at
from ovlinspect.mounts.mountinfo import MountEntry

# Filesystems that never back an overlay layer and have no uuid ioctl; skipping them keeps the
# index cheap and never touches a network or FUSE server that could hang.
PSEUDO_FS = frozenset({
    "proc", "sysfs", "cgroup", "cgroup2", "devpts", "mqueue", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "binfmt_misc", "autofs", "nsfs", "rpc_pipefs",
    "efivarfs", "selinuxfs", "hugetlbfs", "devtmpfs", "ramfs", "nfs", "nfs4", "cifs", "smb3",
    "ceph", "9p",
})
NULL_UUID = bytes(16)


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Filesystem:
    """One mounted superblock of a view: its mounts, and the uuids handles may name it by.

    ``keys`` is empty when the filesystem reports no uuid (no ioctl) and holds the null uuid when
    it reports zeros: both are ambiguous and are confirmed by decoding.
    """

    dev: str
    fs_type: str
    mounts: list[MountEntry]
    fd: int
    keys: list[bytes]

    def __init__(
        self,
        dev: str,
        fs_type: str,
        mounts: list[MountEntry],
        fd: int,
        keys: list[bytes] | None = None,
    ) -> None:
        self.dev = dev
        self.fs_type = fs_type
        self.mounts = mounts
        self.fd = fd
        self.keys = [] if keys is None else keys

    @property
    def ambiguous(self) -> bool:
        """No uuid names this filesystem alone."""
        return not self.keys or NULL_UUID in self.keys


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Decoded:
    """A handle decoded in one view: the path, or why there is none.

    ``stale`` is True when every candidate filesystem answered ESTALE: the object is on none of
    them.  ``fs`` is the filesystem that decoded it (or that refused for lack of privilege).
    """

    path: str | None
    fs: Filesystem | None
    note: str
    stale: bool = False
    mount: MountEntry | None = None

    def __init__(
        self,
        path: str | None,
        fs: Filesystem | None,
        note: str,
        stale: bool = False,
        mount: MountEntry | None = None,
    ) -> None:
        self.path = path
        self.fs = fs
        self.note = note
        self.stale = stale
        self.mount = mount


class FsIndex:
    """Mounted filesystems of one view, keyed by the uuid their overlay handles carry."""

    def __init__(self, view: View, mounts: list[MountEntry]) -> None:
        self.view = view
        self.mounts = mounts
        self.by_id = {m.mount_id: m for m in mounts}
        self._filesystems: list[Filesystem] | None = None
        self._by_key: dict[bytes, list[Filesystem]] = {}
        self._by_dev: dict[str, Filesystem] = {}
        self._points: list[str] | None = None

    def close(self) -> None:
        """Close every fd the index opened."""
        for fs in self._filesystems or []:
            os.close(fs.fd)
        self._filesystems = None
        self._by_key.clear()
        self._by_dev.clear()

    @property
    def filesystems(self) -> list[Filesystem]:
        """Every non-pseudo filesystem mounted in the view (opened on first use)."""
        if self._filesystems is None:
            self._filesystems = self._build()
        return self._filesystems

    def _build(self) -> list[Filesystem]:
        by_dev: dict[str, list[MountEntry]] = {}
        for mount in self.mounts:
            if mount.fs_type in PSEUDO_FS or mount.fs_type.startswith("fuse"):
                continue
            by_dev.setdefault(mount.dev, []).append(mount)
        out: list[Filesystem] = []
        for dev, mounts in by_dev.items():
            fd = self._open_any(mounts)
            if fd is None:
                continue
            keys: list[bytes] = []
            try:
                raw = get_fs_uuid(fd)
            except OSError:
                raw = None
            if raw is not None:
                keys.append(raw)
            else:
                keys += btrfs_fsids(fd)
            fs = Filesystem(dev=dev, fs_type=mounts[0].fs_type, mounts=mounts, fd=fd, keys=keys)
            out.append(fs)
            self._by_dev[dev] = fs
            for key in keys:
                self._by_key.setdefault(key, []).append(fs)
        return out

    def _open_any(self, mounts: list[MountEntry]) -> int | None:
        for mount in mounts:
            fd, _why = self.view.open_mount(mount.mount_point, mount.mount_id)
            if fd is None:
                continue
            try:
                # open_by_handle_at refuses O_PATH mount fds: keep a real directory fd.
                return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue
            finally:
                os.close(fd)
        return None

    def mounts_below(self, path: str) -> list[str]:
        """Mount points strictly below the directory ``path`` (sorted; bisected, not scanned)."""
        if self._points is None:
            self._points = sorted({m.mount_point for m in self.mounts})
        prefix = path.rstrip("/") + "/"
        start = bisect.bisect_left(self._points, prefix)
        out = []
        for point in self._points[start:]:
            if not point.startswith(prefix):
                break
            out.append(point)
        return out

    def by_mount_id(self, mount_id: int | None) -> Filesystem | None:
        """The filesystem of the mount with this id, if it is in the view."""
        mount = self.by_id.get(mount_id) if mount_id is not None else None
        if mount is None:
            return None
        _ = self.filesystems
        return self._by_dev.get(mount.dev)

    def named(self, uuid: bytes) -> list[Filesystem]:
        """Filesystems that report exactly ``uuid`` (none for the null uuid)."""
        if uuid == NULL_UUID:
            return []
        _ = self.filesystems
        return list(self._by_key.get(uuid, []))

    def candidates(self, uuid: bytes) -> list[Filesystem]:
        """Filesystems a handle with ``uuid`` may come from: those named by it, else every
        ambiguous one (null uuid, or no uuid ioctl), to be confirmed by decoding."""
        named = self.named(uuid)
        if named:
            return named
        ambiguous = [fs for fs in self.filesystems if fs.ambiguous]
        if uuid != NULL_UUID:
            return ambiguous
        # uuid=off zeroes the uuid of handles from any filesystem: try them all, the
        # ambiguous ones first (decoding on a wrong one gives ESTALE, or is checked by type).
        return ambiguous + [fs for fs in self.filesystems if not fs.ambiguous]

    def known(self, uuid: bytes) -> bool:
        """Some filesystem of the view reports this (non-null) uuid."""
        return bool(self.named(uuid))

    def decode(self, uuid: bytes, handle_type: int, fid: bytes) -> Decoded:
        """The path of the object a real-fs handle names, via a filesystem that holds it."""
        cands = self.candidates(uuid)
        if not cands:
            return Decoded(None, None, "no visible filesystem can hold this handle", stale=True)
        stale = 0
        last = ""
        for fs in cands:
            found = decode_with(fs.fd, handle_type, fid)
            if found is None:
                stale += 1
                last = "handle does not decode on this filesystem"
                continue
            if isinstance(found, OSError):
                if found.errno == errno.EPERM:
                    return Decoded(None, fs, "decoding handles needs CAP_DAC_READ_SEARCH")
                last = f"open_by_handle_at: {found.strerror}"
                continue
            path, mount = self._in_a_mount(fs, found, handle_type, fid)
            if path is None:
                last = "handle decoded disconnected or outside every mount of its filesystem"
                continue
            return Decoded(path, fs, f"decoded on mount {mount.mount_id if mount else '?'}",
                           mount=mount)
        return Decoded(None, None, last, stale=stale == len(cands))

    def _in_a_mount(self, fs: Filesystem, found: str, handle_type: int,
                    fid: bytes) -> tuple[str | None, MountEntry | None]:
        """A decoded path that lies inside a mount of ``fs`` (the index keeps one mount fd per
        filesystem; a path outside that mount is retried through the others)."""
        for mount in sorted(fs.mounts, key=lambda m: len(m.root)):
            if _inside(found, mount.mount_point):
                return found, mount
        for mount in fs.mounts:
            fd, _why = self.view.open_mount(mount.mount_point, mount.mount_id)
            if fd is None:
                continue
            try:
                dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                again = decode_with(dfd, handle_type, fid)
            finally:
                os.close(dfd)
            if isinstance(again, str) and _inside(again, mount.mount_point):
                return again, mount
        return None, None


def _inside(path: str, mount_point: str) -> bool:
    if not path.startswith("/") or (path == "/" and mount_point != "/"):
        return False
    base = mount_point.rstrip("/")
    return path == mount_point or path.startswith(base + "/")


_STALE = (errno.ESTALE, errno.ENOENT, errno.EINVAL, errno.EOPNOTSUPP)


def _decoded(mount_fd: int, handle_type: int, fid: bytes) -> tuple[str, os.stat_result] | OSError:
    """The path and stat of what the handle names on ``mount_fd``'s filesystem, or the error
    (errno in ``_STALE``: the object is not on this filesystem)."""
    try:
        fd = open_by_handle_at(mount_fd, handle_type, fid)
    except OSError as exc:
        return exc
    try:
        return fd_path(fd), os.fstat(fd)
    finally:
        os.close(fd)


def decode_with(mount_fd: int, handle_type: int, fid: bytes) -> str | OSError | None:
    """Decode on the filesystem of ``mount_fd``: a path, an OSError, or None (stale handle)."""
    found = _decoded(mount_fd, handle_type, fid)
    if isinstance(found, OSError):
        return None if found.errno in _STALE else found
    return found[0]


def decoded_stat(mount_fd: int, handle_type: int, fid: bytes) -> os.stat_result | None:
    """fstat of what the handle decodes to on ``mount_fd``'s filesystem, or None."""
    found = _decoded(mount_fd, handle_type, fid)
    return None if isinstance(found, OSError) else found[1]


def same_object(mount_fd: int, handle_type: int, fid: bytes, st: os.stat_result) -> bool | None:
    """Does the handle decode, on ``mount_fd``'s filesystem, to the inode ``st`` describes?

    True or False when it was decoded (or is stale there), None when decoding is not allowed.
    """
    found = _decoded(mount_fd, handle_type, fid)
    if isinstance(found, OSError):
        return False if found.errno in _STALE else None
    return found[1].st_dev == st.st_dev and found[1].st_ino == st.st_ino
