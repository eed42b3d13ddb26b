"""The live overlay, for reading only: a detached, read-only clone of its mount, or nothing.

Reading a merged tree can write atimes.  overlayfs passes ``O_NOATIME`` on to the layer files
and directories it opens, but readlink(2) has no such flag, a plain open (where ``O_NOATIME`` is
refused: files of other owners) neither, and an atime update on a merged object is copied to
its upper inode (``ovl_update_time``): comparing a symlink or another user's file that lives in
the upper would touch the upper.  A clone of the live mount made read-only (and noatime where
the kernel allows) stops every atime update at the VFS (touch_atime gives up on a read-only or
noatime mount), whatever is read through it.  The live mount itself is never read: when no such
clone can be made, :func:`live_dir` raises :class:`NotQuiet` and ``dump --verify`` says
``live-not-quiet``.

Two ways to a clone, the first that works:

1. :func:`ovlinspect.host.quietlink.quiet_clone` (the one symlinks are read through):
   open_tree(OPEN_TREE_CLONE) here, or in a forked child that joins the overlay's namespaces
   (its user namespace first when not root: its owner may);
2. a forked child that joins the overlay's mount namespace where it may, makes the overlay's
   root its working directory, and unshares a new user and mount namespace.  The copy of the
   mount namespace carries the working directory over to the copy of the overlay's mount,
   which the child may clone (it has CAP_SYS_ADMIN over the new namespace): this is how a user
   without root clones an overlay that root mounted.  Mounts copied into a namespace of a less
   privileged user namespace have their atime flags locked (noatime is EPERM) and their child
   mounts locked (a non-recursive clone of a mount with anything mounted inside it is EINVAL);
   read-only is still allowed, and enough.

The clone is sent back to the parent (SCM_RIGHTS).  It is not recursive: what is mounted inside
the merged tree is left out, as it is from a rebuild.
"""

from __future__ import annotations

import errno
import os

from ovlinspect.checkpoint.compare import open_dir
from ovlinspect.host.quietlink import clone_here, clone_in_child, is_quiet, quiet_clone, same_ns
from ovlinspect.kernel import mountapi as api
from ovlinspect.kernel.syscalls import setns

QUIET = "quiet-clone"  # read through a read-only (and, where allowed, noatime) clone


class NotQuiet(Exception):
    """No clone of the live mount that reads change no atime through could be made."""


def live_dir(mount_fd: int, pid: int, *, timeout: float = 30.0) -> tuple[int, str]:
    """A directory fd to read the live overlay through (owned by the caller), and how
    (:data:`QUIET`).  ``mount_fd`` is an O_PATH fd on the overlay's root in pid's view.
    :class:`NotQuiet` when no quiet clone of it can be made: the live mount is never read."""
    clone = _checked(quiet_clone(mount_fd, pid, timeout), mount_fd)
    if clone is None:
        clone = _checked(_clone_in_new_userns(mount_fd, pid, timeout), mount_fd)
    if clone is None:
        raise NotQuiet("no read-only clone of the live overlay's mount could be made")
    try:
        return open_dir(clone), QUIET
    finally:
        os.close(clone)


def _checked(clone: int | None, mount_fd: int) -> int | None:
    """``clone`` when it is quiet and has the live overlay's root at its root, else None."""
    if clone is None:
        return None
    try:
        mine, live = os.fstat(clone), os.fstat(mount_fd)
        if is_quiet(clone) and (mine.st_dev, mine.st_ino) == (live.st_dev, live.st_ino):
            return clone
    except OSError:
        pass
    os.close(clone)
    return None


def _clone_in_new_userns(mount_fd: int, pid: int, timeout: float) -> int | None:
    """Way 2 of the module docstring; None when the kernel or our privileges refuse it."""
    return clone_in_child(pid, lambda ns, root: _clone_of_overlay(mount_fd, ns, root), timeout)


def _clone_of_overlay(mount_fd: int, ns: list[int],
                      root: bool) -> int:  # pragma: no cover - runs in the child
    user, mnt = ns
    if not same_ns(mnt, "mnt"):  # the overlay's mount must be in our mount namespace
        if not root and not same_ns(user, "user"):
            setns(user, api.CLONE_NEWUSER)
        setns(mnt, api.CLONE_NEWNS)
    os.fchdir(mount_fd)
    try:
        return clone_here(api.AT_FDCWD, ".")
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise
        # The copy of the mount namespace takes the working directory to the copy of the
        # overlay's mount (copy_mnt_ns), where we hold CAP_SYS_ADMIN.
        api.unshare(api.CLONE_NEWUSER | api.CLONE_NEWNS)
        return clone_here(api.AT_FDCWD, ".")
