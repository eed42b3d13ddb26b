"""Thin ctypes wrappers for the syscalls ovlinspect reads with (no compiled extension).

Every wrapper raises ``OSError`` with the kernel's errno, like the ``os`` module does.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from dataclasses import dataclass

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPENAT2 = 437
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_HANDLE_FID = 0x200
AT_HANDLE_MNT_ID_UNIQUE = 0x001
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
FS_IOC_GETFSUUID = 0x80111500
MAX_HANDLE_SZ = 128
PROC_SUPER_MAGIC = 0x9FA0


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under the ``resolve`` restrictions."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    raw = os.fsencode(path)
    return _check(
        _libc.syscall(SYS_OPENAT2, dirfd, raw, ctypes.byref(how), ctypes.sizeof(how)), "openat2"
    )


class _FileHandle(ctypes.Structure):
    _fields_ = (
        ("handle_bytes", ctypes.c_uint),
        ("handle_type", ctypes.c_int),
        ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ),
    )


@dataclass(frozen=True)
class RawHandle:
    """A file handle: its type, its opaque bytes, and the mount id the kernel reported."""

    type: int
    data: bytes
    mount_id: int


def name_to_handle_at(dirfd: int, path: str = "", flags: int = AT_EMPTY_PATH) -> RawHandle:
    """name_to_handle_at(2); with ``AT_HANDLE_FID`` it works on any overlay object (6.6+)."""
    fh = _FileHandle()
    fh.handle_bytes = MAX_HANDLE_SZ
    mnt = ctypes.c_uint64(0)
    _check(
        _libc.name_to_handle_at(dirfd, os.fsencode(path), ctypes.byref(fh), ctypes.byref(mnt),
                                flags),
        "name_to_handle_at",
    )
    return RawHandle(fh.handle_type, bytes(fh.f_handle[: fh.handle_bytes]), mnt.value)


def open_by_handle_at(mount_fd: int, handle_type: int, data: bytes,
                      flags: int = os.O_PATH) -> int:
    """open_by_handle_at(2); needs CAP_DAC_READ_SEARCH."""
    if len(data) > MAX_HANDLE_SZ:
        raise OSError(22, "handle too long")
    fh = _FileHandle()
    fh.handle_bytes = len(data)
    fh.handle_type = handle_type
    ctypes.memmove(fh.f_handle, data, len(data))
    return _check(
        _libc.open_by_handle_at(mount_fd, ctypes.byref(fh), flags | os.O_CLOEXEC),
        "open_by_handle_at",
    )


def get_fs_uuid(fd: int) -> bytes | None:
    """FS_IOC_GETFSUUID on ``fd`` (a non-O_PATH fd); None when the filesystem has no uuid ioctl."""
    buf = bytearray(17)
    try:
        fcntl.ioctl(fd, FS_IOC_GETFSUUID, buf)
    except OSError as exc:
        if exc.errno in (25, 95, 22):  # ENOTTY, EOPNOTSUPP, EINVAL
            return None
        raise
    return bytes(buf[1 : 1 + min(buf[0], 16)])


class _Statfs(ctypes.Structure):
    _fields_ = (("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112))


def fs_magic(fd: int) -> int:
    """The filesystem magic number (statfs f_type) of the file behind ``fd``."""
    buf = _Statfs()
    _check(_libc.fstatfs(fd, ctypes.byref(buf)), "fstatfs")
    return buf.f_type & 0xFFFFFFFF


def fd_mount_id(fd: int) -> int | None:
    """The id of the mount ``fd`` lives on, as /proc/self/fdinfo reports it."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as info:
            for line in info:
                if line.startswith(b"mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def fd_path(fd: int) -> str:
    """readlink(/proc/self/fd/N): the kernel's d_path for ``fd``."""
    return os.readlink(f"/proc/self/fd/{fd}")


BTRFS_IOC_FS_INFO = 0x8400941F  # _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args), 1024 bytes
CLONE_NEWNS = 0x00020000


def btrfs_fsids(fd: int) -> list[bytes]:
    """The btrfs fsid and metadata uuid of the filesystem behind ``fd`` (a non-O_PATH fd).

    FS_IOC_GETFSUUID gives ENOTTY on btrfs, yet overlay handles from btrfs carry its fsid.
    Returns [] when ``fd`` is not on btrfs.
    """
    buf = bytearray(1024)
    buf[48] = 1 << 2  # flags in: BTRFS_FS_INFO_FLAG_METADATA_UUID
    try:
        fcntl.ioctl(fd, BTRFS_IOC_FS_INFO, buf)
    except OSError:
        return []
    fsid = bytes(buf[16:32])
    # struct btrfs_ioctl_fs_info_args: max_id(8) num_devices(8) fsid(16) nodesize(4)
    # sectorsize(4) clone_alignment(4) csum_type(2) csum_size(2) flags(8) generation(8)
    # metadata_uuid(16)
    metadata = bytes(buf[64:80])
    return [fsid] if metadata in (fsid, bytes(16)) else [fsid, metadata]


def setns(fd: int, nstype: int) -> None:
    """setns(2): join the namespace behind ``fd`` (only safe in a single-threaded process)."""
    _check(_libc.setns(fd, nstype), "setns")
