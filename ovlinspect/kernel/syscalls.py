"""Thin ctypes wrappers for the syscalls ovlinspect reads with (no compiled extension).

Every wrapper raises ``OSError`` with the kernel's errno, like the ``os`` module does.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
import sys
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


_HOWS: dict[tuple[int, int, int], ctypes._CArgObject] = {}
"""``struct open_how`` by (flags, mode, resolve), built once: the kernel only reads it, and a
scan makes about fifty openat2 calls per overlay."""
_HOW_SIZE = ctypes.sizeof(_OpenHow)
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def _fsencode(path: str) -> bytes:
    """``os.fsencode``, without its checks for the usual case of a ``str``."""
    return path.encode(_FS_ENCODING, _FS_ERRORS) if type(path) is str else os.fsencode(path)


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open ``path`` relative to ``dirfd`` under the ``resolve`` restrictions."""
    key = (flags | os.O_CLOEXEC, mode, resolve)
    how = _HOWS.get(key)
    if how is None:
        how = _HOWS[key] = ctypes.byref(_OpenHow(*key))
    result = _libc.syscall(SYS_OPENAT2, dirfd, _fsencode(path), how, _HOW_SIZE)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"openat2: {os.strerror(err)}")
    return result


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


_HANDLE_HEAD = struct.Struct("=Ii")  # struct file_handle: handle_bytes, handle_type
_HANDLE_SIZE = ctypes.sizeof(_FileHandle)
_EMPTY_HANDLE = _HANDLE_HEAD.pack(MAX_HANDLE_SZ, 0) + bytes(MAX_HANDLE_SZ)
_HandleBuffer = ctypes.c_char * _HANDLE_SIZE


def name_to_handle_at(dirfd: int, path: str = "", flags: int = AT_EMPTY_PATH) -> RawHandle:
    """name_to_handle_at(2); with ``AT_HANDLE_FID`` it works on any overlay object (6.6+)."""
    fh = _HandleBuffer.from_buffer_copy(_EMPTY_HANDLE)
    mnt = ctypes.c_uint64(0)
    if _libc.name_to_handle_at(dirfd, _fsencode(path), fh, ctypes.byref(mnt), flags) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"name_to_handle_at: {os.strerror(err)}")
    size, handle_type = _HANDLE_HEAD.unpack_from(fh)
    head = _HANDLE_HEAD.size
    return RawHandle(handle_type, fh.raw[head: head + size], mnt.value)


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


STATX_MNT_ID = 0x1000
AT_STATX_DONT_SYNC = 0x4000
_StatxBuffer = ctypes.c_char * 256
_STATX_MASK = struct.Struct("=I")  # stx_mask, at the start of struct statx
_STATX_MNT_ID = struct.Struct("=Q")  # stx_mnt_id, at offset 0x90
_statx = getattr(_libc, "statx", None)


def fd_mount_id(fd: int) -> int | None:
    """The id of the mount ``fd`` lives on, as /proc/self/fdinfo reports it.

    Asked with statx(STATX_MNT_ID) first: the same number (both read the fd's mount), one
    syscall instead of reading a procfs file.  AT_STATX_DONT_SYNC keeps a network or FUSE
    filesystem's server out of it, as reading fdinfo does.
    """
    if _statx is not None:
        buf = _StatxBuffer()
        if _statx(fd, b"", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MNT_ID, buf) == 0 \
                and _STATX_MASK.unpack_from(buf)[0] & STATX_MNT_ID:
            return int(_STATX_MNT_ID.unpack_from(buf, 0x90)[0])
    return _fdinfo_mount_id(fd)


def _fdinfo_mount_id(fd: int) -> int | None:
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
