"""Typed ctypes wrappers for the mount syscalls the lab (and integration tests) need.

Every wrapper raises ``OSError(errno, message)`` on failure, with the message naming the call
and its main argument.  Nothing here mounts anything by itself; callers must already be in a
private mount namespace (see :func:`unshare` and :func:`make_rprivate`).

Example: an overlay built with the new mount API, one ``lowerdir+=`` per layer::

    fd = fsopen("overlay")
    try:
        for path in lowers:
            fsconfig_set_string(fd, "lowerdir+", path)
        fsconfig_set_string(fd, "datadir+", data_only)
        fsconfig_set_string(fd, "metacopy", "on")   # data-only layers require it
        fsconfig_create(fd)
        mnt = fsmount(fd)
    finally:
        os.close(fd)
    move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)
    os.close(mnt)

The calls libc may lack are made by number: the new mount API (428-432) from the unified range
every architecture shares (alpha and mips aside, see :func:`mountattr.unified_number`), and
pivot_root, whose number differs per architecture (:data:`PIVOT_ROOT`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Sequence

from ovlinspect.kernel.mountattr import unified_number

# unshare(2) / clone(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20

# umount2(2) flags
MNT_FORCE = 0x1
MNT_DETACH = 0x2

# fsopen / fsconfig / fsmount / move_mount / open_tree
FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_BINARY = 2
FSCONFIG_SET_PATH = 3
FSCONFIG_SET_PATH_EMPTY = 4
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOVE_MOUNT_F_SYMLINKS = 0x1
MOVE_MOUNT_F_AUTOMOUNTS = 0x2
MOVE_MOUNT_F_EMPTY_PATH = 0x4
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15

# pivot_root predates the unified numbering: arch/*/syscall.tbl, asm-generic/unistd.h (41).
PIVOT_ROOT = {"x86_64": 155, "i386": 217, "i486": 217, "i586": 217, "i686": 217,
              "aarch64": 41, "arm64": 41, "riscv64": 41, "riscv32": 41, "loongarch64": 41,
              "armv6l": 218, "armv7l": 218, "armv8l": 218, "ppc64le": 203, "ppc64": 203,
              "ppc": 203, "s390x": 217}
# The unified range (424 and up): the same number on every architecture but alpha and mips.
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_FSOPEN = 430
SYS_FSCONFIG = 431
SYS_FSMOUNT = 432

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]

Pathish = str | bytes | os.PathLike[str] | None


def _b(value: Pathish) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return os.fsencode(value)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _syscall(number: int, *args: object, what: str) -> int:
    """A syscall of the unified range (424 and up) by its common number."""
    return _check(_libc.syscall(ctypes.c_long(unified_number(number, what)), *args), what)


def pivot_root_number(machine: str | None = None) -> int:
    """pivot_root's number on this architecture; ``OSError(ENOSYS)`` when it is not known."""
    arch = platform.machine() if machine is None else machine
    try:
        return PIVOT_ROOT[arch]
    except KeyError:
        raise OSError(errno.ENOSYS, f"pivot_root: no syscall number known for {arch}") from None


def unshare(flags: int) -> None:
    """unshare(2); the caller must be single-threaded for CLONE_NEWUSER."""
    _check(_libc.unshare(flags), f"unshare({flags:#x})")


def mount(source: Pathish, target: Pathish, fstype: str | None = None, flags: int = 0,
          data: str | bytes | None = None) -> None:
    """mount(2).  ``data`` is the filesystem's option string (at most one page)."""
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
           f"mount({fstype or 'flags ' + hex(flags)} on {os.fsdecode(_b(target) or b'')!r})")


def umount(target: Pathish, flags: int = 0) -> None:
    """umount2(2); pass ``MNT_DETACH`` for a lazy unmount."""
    _check(_libc.umount2(_b(target), flags), f"umount({os.fsdecode(_b(target) or b'')!r})")


def make_rprivate(path: Pathish = "/") -> None:
    """Stop mount propagation in both directions for every mount under ``path``."""
    mount(None, path, None, MS_REC | MS_PRIVATE, None)


def pivot_root(new_root: Pathish, put_old: Pathish) -> None:
    """pivot_root(2).  ``pivot_root(".", ".")`` after chdir(new_root) needs no put_old dir."""
    what = f"pivot_root({new_root!r})"
    _check(_libc.syscall(ctypes.c_long(pivot_root_number()), _b(new_root), _b(put_old)), what)


def fsopen(fstype: str, flags: int = FSOPEN_CLOEXEC) -> int:
    """Open a filesystem context (new mount API, 5.2+); returns its fd."""
    return _syscall(SYS_FSOPEN, _b(fstype), ctypes.c_uint(flags), what=f"fsopen({fstype!r})")


def _fsconfig(fd: int, cmd: int, key: bytes | None, value: bytes | None, aux: int,
              what: str) -> None:
    _syscall(SYS_FSCONFIG, ctypes.c_int(fd), ctypes.c_uint(cmd), key, value, ctypes.c_int(aux),
             what=what)


def fsconfig_set_string(fd: int, key: str, value: str | bytes) -> None:
    """FSCONFIG_SET_STRING: ``key=value``, taken verbatim (no comma or colon splitting).

    For overlay, ``lowerdir+`` and ``datadir+`` append one layer each (6.8+).
    """
    _fsconfig(fd, FSCONFIG_SET_STRING, _b(key), _b(value), 0,
              f"fsconfig({key}={os.fsdecode(_b(value) or b'')!r})")


def fsconfig_set_flag(fd: int, key: str) -> None:
    """FSCONFIG_SET_FLAG: a valueless option such as ``volatile`` or ``userxattr``."""
    _fsconfig(fd, FSCONFIG_SET_FLAG, _b(key), None, 0, f"fsconfig({key})")


def fsconfig_set_fd(fd: int, key: str, value_fd: int) -> None:
    """FSCONFIG_SET_FD: give a layer as an open directory fd (overlay: 6.13+)."""
    _fsconfig(fd, FSCONFIG_SET_FD, _b(key), None, value_fd, f"fsconfig({key}=fd {value_fd})")


def fsconfig_create(fd: int) -> None:
    """FSCONFIG_CMD_CREATE: create the superblock; option errors surface here."""
    _fsconfig(fd, FSCONFIG_CMD_CREATE, None, None, 0, "fsconfig(create)")


def fsmount(fd: int, flags: int = FSMOUNT_CLOEXEC, attr_flags: int = 0) -> int:
    """Turn a created context into a detached mount; returns the mount fd."""
    return _syscall(SYS_FSMOUNT, ctypes.c_int(fd), ctypes.c_uint(flags),
                    ctypes.c_uint(attr_flags), what="fsmount")


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: Pathish,
               flags: int = MOVE_MOUNT_F_EMPTY_PATH) -> None:
    """Attach (or move) a mount; with the default flags ``from_fd`` is a mount fd."""
    _syscall(SYS_MOVE_MOUNT, ctypes.c_int(from_fd), _b(from_path), ctypes.c_int(to_fd),
             _b(to_path), ctypes.c_uint(flags), what=f"move_mount(to {to_path!r})")


def open_tree(dirfd: int, path: Pathish, flags: int = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC) -> int:
    """open_tree(2); with OPEN_TREE_CLONE returns a detached copy of the mount at ``path``."""
    return _syscall(SYS_OPEN_TREE, ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
                    what=f"open_tree({path!r})")


def set_pdeathsig(sig: int) -> None:
    """Have the kernel send ``sig`` to this process when its parent thread exits."""
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def set_comm(name: str) -> None:
    """Set this thread's comm (what ps and /proc/PID/comm show), truncated to 15 bytes."""
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(PR_SET_NAME, ctypes.addressof(buf), 0, 0, 0), "prctl(PR_SET_NAME)")


def overlay_new_api(target: Pathish, *, lowers: Sequence[str] = (), datas: Sequence[str] = (),
                    upper: str | None = None, work: str | None = None,
                    strings: dict[str, str] | None = None, flags: Sequence[str] = ()) -> None:
    """Mount an overlay at ``target`` with fsopen/fsconfig: one ``lowerdir+=`` per lower, one
    ``datadir+=`` per data-only layer, then ``strings`` (key=value) and ``flags`` (valueless)."""
    fd = fsopen("overlay")
    try:
        for path in lowers:
            fsconfig_set_string(fd, "lowerdir+", path)
        for path in datas:
            fsconfig_set_string(fd, "datadir+", path)
        if upper is not None:
            fsconfig_set_string(fd, "upperdir", upper)
        if work is not None:
            fsconfig_set_string(fd, "workdir", work)
        for key, value in (strings or {}).items():
            fsconfig_set_string(fd, key, value)
        for flag in flags:
            fsconfig_set_flag(fd, flag)
        fsconfig_create(fd)
        mnt = fsmount(fd)
    finally:
        os.close(fd)
    try:
        move_mount(mnt, "", AT_FDCWD, target)
    finally:
        os.close(mnt)
