"""Facts about one real directory: device, inode, fs uuid, mount id, file handle."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ovlinspect.kernel.syscalls import (
    AT_EMPTY_PATH,
    AT_HANDLE_FID,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    RawHandle,
    fd_mount_id,
    get_fs_uuid,
    name_to_handle_at,
    openat2,
)


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class DirFacts:
    """What one O_PATH fd points at."""

    dev: str
    ino: int
    st: os.stat_result
    is_dir: bool
    mount_id: int | None
    uuid: bytes | None
    handle: RawHandle | None

    def __init__(
        self,
        dev: str,
        ino: int,
        st: os.stat_result,
        is_dir: bool,
        mount_id: int | None,
        uuid: bytes | None,
        handle: RawHandle | None,
    ) -> None:
        self.dev = dev
        self.ino = ino
        self.st = st
        self.is_dir = is_dir
        self.mount_id = mount_id
        self.uuid = uuid
        self.handle = handle


def handle_of(dirfd: int, name: str = "") -> RawHandle | None:
    """The real filesystem's handle for ``name`` under ``dirfd`` (or ``dirfd`` itself)."""
    flags = AT_EMPTY_PATH if not name else 0
    for extra in (0, AT_HANDLE_FID):
        try:
            return name_to_handle_at(dirfd, name, flags | extra)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EOVERFLOW):
                return None
    return None


def facts(fd: int) -> DirFacts:
    """Stat, uuid, mount id and handle of the object behind ``fd``."""
    st = os.fstat(fd)
    is_dir = stat.S_ISDIR(st.st_mode)
    uuid = None
    if is_dir:
        with contextlib.suppress(OSError):
            dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            try:
                uuid = get_fs_uuid(dfd)
            finally:
                os.close(dfd)
    handle = handle_of(fd)
    return DirFacts(
        dev=f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}",
        ino=st.st_ino,
        st=st,
        is_dir=is_dir,
        # name_to_handle_at reports the mount id too: no need to read fdinfo then.
        mount_id=handle.mount_id if handle is not None else fd_mount_id(fd),
        uuid=uuid,
        handle=handle,
    )


class NoAtimeRefused(PermissionError):
    """The directory cannot be read without changing its atime (O_NOATIME needs CAP_FOWNER)."""


def list_names(fd: int, limit: int) -> list[str]:
    """Up to ``limit`` entry names of the directory ``fd``, read without touching its atime.

    Raises :class:`NoAtimeRefused` rather than read a directory in a way that changes it.
    """
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOATIME, dir_fd=fd)
    except PermissionError:
        raise NoAtimeRefused(errno.EPERM, "O_NOATIME refused") from None
    except OSError:
        return []
    names: list[str] = []
    try:
        with os.scandir(dfd) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) >= limit:
                    break
    except OSError:
        pass
    finally:
        os.close(dfd)
    names.sort()
    return names


def _lstat_nofollow(dirfd: int, name: str) -> os.stat_result | None:
    """lstat of ``name`` below ``dirfd``, following no symlink anywhere on the way; None when
    absent, or when a component before the last is a symlink.

    ``fstatat(AT_SYMLINK_NOFOLLOW)`` spares only the last component: in ``s/t`` a symlink ``s``
    is followed (out of the layer when it is absolute), and following it updates its atime
    (pick_link -> touch_atime).  A single name is safe with it; a longer path goes through
    openat2(RESOLVE_NO_SYMLINKS), which stops with ELOOP before touching the symlink.  A layer
    whose ``s`` is not a directory holds nothing below ``s``, which is what None says."""
    if "/" not in name:
        try:
            return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except OSError:
            return None
    try:
        fd = openat2(dirfd, name, os.O_PATH | os.O_NOFOLLOW,
                     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    except OSError:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def is_whiteout(dirfd: int, name: str) -> bool:
    """A kernel whiteout: a 0:0 character device."""
    st = _lstat_nofollow(dirfd, name)
    return st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def exists(dirfd: int, name: str) -> bool:
    """``name`` exists under ``dirfd``, no symlink followed on the way (nor its atime touched)."""
    return _lstat_nofollow(dirfd, name) is not None


def get_xattr(fd: int, name: str) -> bytes | None:
    """An xattr of the directory behind O_PATH ``fd``; None when absent or unreadable."""
    try:
        return os.getxattr(f"/proc/self/fd/{fd}", name)
    except OSError:
        return None


_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV


def lookup(dirfd: int, rel: str) -> int | None:
    """An O_PATH fd of ``rel`` below ``dirfd``, never leaving that directory or its mount and
    never following a symlink (a final symlink is opened as itself); None when absent."""
    if not rel:
        try:
            return os.dup(dirfd)
        except OSError:
            return None
    try:
        return openat2(dirfd, rel, os.O_PATH | os.O_NOFOLLOW, _BENEATH)
    except OSError:
        return None


def lstat_at(dirfd: int, rel: str) -> os.stat_result | None:
    """lstat of ``rel`` below ``dirfd`` (same rules as :func:`lookup`); None when absent."""
    fd = lookup(dirfd, rel)
    if fd is None:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def present(dirfd: int, rel: str) -> bool | None:
    """Whether ``rel`` exists below ``dirfd``, crossing mounts (a volume mounted on a name is
    still that name): True, False (ENOENT/ENOTDIR), or None when the lookup failed otherwise."""
    try:
        fd = openat2(dirfd, rel, os.O_PATH | os.O_NOFOLLOW,
                     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
    except OSError as exc:
        return False if exc.errno in (errno.ENOENT, errno.ENOTDIR) else None
    os.close(fd)
    return True
