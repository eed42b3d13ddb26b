"""Read a symlink's target without changing its atime.

readlink(2) updates the link's atime (do_readlinkat -> touch_atime; O_NOATIME does not apply
to it, and ``readlinkat(O_PATH fd, "")`` does the same), and so does a path walk that follows the
link (pick_link).  Nothing a reader passes avoids that; the mount the link is reached through
does: touch_atime gives up on a noatime or read-only mount.  So a link is read

1. directly when the kernel would not update its atime anyway: the mount is noatime or read-only,
   or relatime and the atime is newer than mtime and ctime and younger than 23 hours (the kernel
   updates at 24; overlay inodes are never predicted: their cached atime is not the one shown);
2. else through a private, detached clone of its directory's mount made read-only, and noatime
   where the kernel allows (open_tree(OPEN_TREE_CLONE) + mount_setattr): in this process for a
   mount of its own mount namespace, else in a forked child that joins the view's namespaces
   (open_tree clones only mounts of the caller's namespace).  Read-only alone is enough:
   touch_atime needs write access to the mount, which a read-only mount refuses.  It is all a
   mount copied into a namespace of a less privileged user namespace allows (rootless podman's,
   ``unshare -U -r -m``): its atime flags are locked, and mount_setattr refuses noatime there
   with EPERM, even to root.  A detached clone is in no namespace and is gone once its fd is
   closed;
3. else not at all: ``OSError(EPERM)`` says why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import socket
import stat
import time
from collections.abc import Callable

from ovlinspect.kernel import mountapi as api
from ovlinspect.kernel.mountattr import AT_EMPTY_PATH, quiet
from ovlinspect.kernel.syscalls import (
    PROC_SUPER_MAGIC,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    fd_mount_id,
    fs_magic,
    openat2,
    setns,
)

OVERLAYFS_SUPER_MAGIC = 0x794C7630
RELATIME_MARGIN_NS = 23 * 3600 * 10**9  # the kernel's relatime window is 24 hours
_ONE = os.O_PATH | os.O_NOFOLLOW
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


def atime_would_change(fd: int, st: os.stat_result) -> bool:
    """Whether reading the symlink behind O_PATH ``fd`` (``st`` its fstat) could update its
    atime (fs/inode.c: atime_needs_update, relatime_need_update), erring towards yes."""
    flags = os.fstatvfs(fd).f_flag
    if flags & (os.ST_RDONLY | os.ST_NOATIME):
        return False
    if fs_magic(fd) == OVERLAYFS_SUPER_MAGIC or not flags & os.ST_RELATIME:
        return True
    atime = st.st_atime_ns
    return (st.st_mtime_ns >= atime or st.st_ctime_ns >= atime
            or time.time_ns() - atime >= RELATIME_MARGIN_NS)


class QuietLinks:
    """Reads symlink targets in one process's view; holds the clones it made until closed."""

    def __init__(self, pid: int, timeout: float = 10.0) -> None:
        self.pid = pid
        self.timeout = timeout
        self._clones: dict[tuple[int | None, int, int], int | None] = {}

    def close(self) -> None:
        """Release every clone (each detached mount goes away with its last fd)."""
        for fd in self._clones.values():
            if fd is not None:
                os.close(fd)
        self._clones.clear()

    def read(self, dirfd: int, name: str) -> str:
        """The target of symlink ``name`` in directory ``dirfd``, read without changing any
        atime.  ``OSError(EINVAL)`` when ``name`` is not a symlink (as readlink says), EPERM when
        it cannot be read without changing its atime, other errors from the lookup."""
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)  # one name: follows nothing
        if not stat.S_ISLNK(st.st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if fs_magic(dirfd) == PROC_SUPER_MAGIC:  # /proc links: in-memory inodes, nothing stored
            return os.readlink(name, dir_fd=dirfd)
        fd = openat2(dirfd, name, _ONE, _BENEATH)
        try:
            st = os.fstat(fd)
            if not stat.S_ISLNK(st.st_mode):  # replaced since
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            if not atime_would_change(fd, st):
                return os.readlink("", dir_fd=fd)
        finally:
            os.close(fd)
        clone = self._clone_of(dirfd)
        if clone is None:
            raise OSError(errno.EPERM, "reading this symlink would update its atime, and no "
                          "read-only clone of its mount could be made")
        fd = openat2(clone, name, _ONE, _BENEATH)
        try:
            again = os.fstat(fd)
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino):
                raise OSError(errno.ESTALE, "the symlink was replaced while being read")
            return os.readlink("", dir_fd=fd)  # through the read-only clone: no atime update
        finally:
            os.close(fd)

    def _clone_of(self, dirfd: int) -> int | None:
        st = os.fstat(dirfd)
        key = (fd_mount_id(dirfd), st.st_dev, st.st_ino)
        if key not in self._clones:
            self._clones[key] = quiet_clone(dirfd, self.pid, self.timeout)
        return self._clones[key]


def quiet_clone(dirfd: int, pid: int, timeout: float = 10.0) -> int | None:
    """A detached clone of the mount at directory ``dirfd`` (a bind of that directory), made
    read-only (and noatime where allowed): nothing read through it changes an atime.  None when
    the kernel or our privileges do not allow it."""
    try:
        return clone_here(dirfd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EPERM):  # EINVAL: another mount namespace
            return None
    return clone_in_child(pid, lambda ns, root: _clone_joined(dirfd, ns, root), timeout)


def clone_here(dirfd: int, path: str = "") -> int:
    """A quiet (read-only) detached clone of the mount at ``path`` below ``dirfd`` (``dirfd``
    itself when empty), in this process's mount namespace; OSError when it cannot be made."""
    flags = api.OPEN_TREE_CLONE | api.OPEN_TREE_CLOEXEC | (AT_EMPTY_PATH if not path else 0)
    clone = api.open_tree(dirfd, path, flags)
    try:
        quiet(clone)
        if not is_quiet(clone):
            raise OSError(errno.EPERM, "the clone is not read-only")
    except BaseException:
        os.close(clone)
        raise
    return clone


def is_quiet(fd: int) -> bool:
    """Reads through the mount at ``fd`` change no atime: it is read-only (noatime or not;
    touch_atime skips a mount it cannot get write access to)."""
    return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)


def privileged() -> bool:
    """Root in the initial user namespace.  Uid 0 inside a user namespace (a rootless
    container, ``nsenter -U``) may mount there but cannot read trusted.* xattrs or decode
    handles; a child that clones a mount for it joins the view's user namespace first."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/self/uid_map", encoding="ascii") as handle:
            return handle.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return False


Build = Callable[[list[int], bool], int]
"""Run in the forked child: (fds of pid's user and mount namespaces, privileged) -> a clone fd."""


def clone_in_child(pid: int, build: Build, timeout: float) -> int | None:
    """The clone that ``build`` makes in a forked child (which may setns into pid's
    namespaces: open_tree clones only mounts of the caller's own), received over SCM_RIGHTS;
    None when the child could not make one in ``timeout`` seconds."""
    try:
        ns = [os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
              for name in ("user", "mnt")]
    except OSError:
        return None
    root = privileged()
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        kid = os.fork()
        if kid == 0:  # pragma: no cover - runs in the child
            parent.close()
            try:
                clone = -1
                with contextlib.suppress(OSError):
                    clone = build(ns, root)
                socket.send_fds(child, [b"."], [clone] if clone >= 0 else [])
            finally:
                os._exit(0)
        child.close()
        try:
            if not select.select([parent], [], [], timeout)[0]:
                os.kill(kid, signal.SIGKILL)
                return None
            _data, fds, _flags, _addr = socket.recv_fds(parent, 64, 1)
            return fds[0] if fds else None
        finally:
            os.waitpid(kid, 0)
    finally:
        parent.close()
        for fd in ns:
            os.close(fd)


def same_ns(fd: int, name: str) -> bool:
    """Whether namespace fd ``fd`` is this process's own ``name`` namespace."""
    return os.fstat(fd).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino


def _clone_joined(dirfd: int, ns: list[int], root: bool) -> int:  # pragma: no cover - child
    user, mnt = ns
    if not root and not same_ns(user, "user"):
        setns(user, api.CLONE_NEWUSER)
    if not same_ns(mnt, "mnt"):
        setns(mnt, api.CLONE_NEWNS)
    return clone_here(dirfd)
