"""mount_setattr(2) (5.12+): change the attributes of a mount, e.g. a detached clone.

Raises ``OSError`` with the kernel's errno, like the ``os`` module does.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

# Syscalls from 424 on (pidfd_send_signal) have one number on every architecture
# (include/uapi/asm-generic/unistd.h, arch/*/syscall.tbl), except alpha, which numbers them
# 110 higher, and mips, whose o32/n64/n32 tables add 4000/5000/6000 (an ABI that
# ``platform.machine()`` cannot tell).
SYS_MOUNT_SETATTR = 442
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR__ATIME = 0x70  # the atime field: relatime (0), noatime, strictatime

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def unified_number(number: int, what: str, machine: str | None = None) -> int:
    """The number of a syscall from the unified range (424 and up) on this architecture;
    ``OSError(ENOSYS)`` where it is not the common one and cannot be worked out."""
    arch = platform.machine() if machine is None else machine
    if arch.startswith("alpha"):
        return number + 110
    if arch.startswith("mips"):
        raise OSError(errno.ENOSYS, f"{what}: the syscall number depends on the mips ABI")
    return number


class _MountAttr(ctypes.Structure):
    _fields_ = (("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64))


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0, path: str = "",
                  flags: int = AT_EMPTY_PATH) -> None:
    """Set ``attr_set`` and clear ``attr_clr`` on the mount at ``fd`` (and ``path``)."""
    number = unified_number(SYS_MOUNT_SETATTR, "mount_setattr")
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    result = _libc.syscall(ctypes.c_long(number), ctypes.c_int(fd),
                           os.fsencode(path), ctypes.c_uint(flags), ctypes.byref(attr),
                           ctypes.c_size_t(ctypes.sizeof(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount_setattr: {os.strerror(err)}")


def quiet(fd: int) -> int:
    """Make the mount at ``fd`` read-only, and noatime where the kernel allows: reads through
    it change no atime either way (touch_atime gives up on a read-only mount: it cannot get
    write access).  Returns the attributes set.

    A mount copied into a mount namespace owned by a less privileged user namespace (rootless
    podman's, ``unshare -U -r -m``) has its atime flags locked (MNT_LOCK_ATIME): every change
    of the atime field is EPERM there, even for root.  Setting read-only is allowed on any
    mount (only clearing a locked read-only is not), so read-only alone is the fallback.
    """
    try:
        mount_setattr(fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise
    else:
        return MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME
    mount_setattr(fd, MOUNT_ATTR_RDONLY)
    return MOUNT_ATTR_RDONLY
