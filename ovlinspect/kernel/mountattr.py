"""mount_setattr(2) (5.12+): change the attributes of a mount, e.g. a detached clone.

Raises ``OSError`` with the kernel's errno, like the ``os`` module does.
"""

from __future__ import annotations

import ctypes
import os
import platform

SYS_MOUNT_SETATTR = 442  # x86_64
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR__ATIME = 0x70  # the atime field: relatime (0), noatime, strictatime

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MountAttr(ctypes.Structure):
    _fields_ = (("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64))


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0, path: str = "",
                  flags: int = AT_EMPTY_PATH) -> None:
    """Set ``attr_set`` and clear ``attr_clr`` on the mount at ``fd`` (and ``path``)."""
    if platform.machine() != "x86_64":
        raise OSError(38, "mount_setattr: the syscall number is only known for x86_64")
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    result = _libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(fd),
                           os.fsencode(path), ctypes.c_uint(flags), ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount_setattr: {os.strerror(err)}")


def quiet(fd: int) -> None:
    """Make the mount at ``fd`` read-only and noatime: reads through it change no atime."""
    mount_setattr(fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
