"""Is a directory the upper (or work) directory of some mounted overlay?  A test any user can
make in its own user and mount namespace, without handles.

overlayfs marks the upper and work directories of every mounted overlay in use (I_OVL_INUSE, a
flag on the in-memory inode, whatever namespace the overlay is in).  Creating an overlay with
``upperdir=DIR``, ``index=on`` and a workdir on another mount stops at the first of two checks
(fs/overlayfs/super.c, ``ovl_get_upper`` then ``ovl_get_workdir``): EBUSY when DIR is in use,
else EINVAL ("workdir and upperdir must reside under the same mount").  Nothing is written to
DIR (checked on 6.18); the kernel logs one line.  It proves that *some* overlay uses DIR, not
which one, so a yes keeps a layer ``likely``; a no disproves it.

Must run where the caller may mount (the child of :mod:`ovlinspect.checkpoint.rebuild`).
"""

from __future__ import annotations

import errno
import os

from ovlinspect.kernel import mountapi as api


def in_use(dir_fd: int) -> bool | None:
    """True: a mounted overlay uses the directory behind ``dir_fd`` as upper or work; False:
    none does; None: cannot tell (a read-only mount, a kernel without layer fds, …)."""
    if os.fstatvfs(dir_fd).f_flag & os.ST_RDONLY:
        return None  # "upper fs is r/o" would come first, also as EINVAL
    scratch = _scratch()
    fds: list[int] = []
    ctx = -1
    try:
        fds = [os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=scratch)
               for name in ("lower", "work")]
        ctx = api.fsopen("overlay")
        try:
            api.fsconfig_set_fd(ctx, "lowerdir+", fds[0])
            api.fsconfig_set_fd(ctx, "upperdir", dir_fd)
            api.fsconfig_set_fd(ctx, "workdir", fds[1])
            api.fsconfig_set_string(ctx, "index", "on")
        except OSError:
            return None
        try:
            api.fsconfig_create(ctx)
        except OSError as exc:
            return {errno.EBUSY: True, errno.EINVAL: False}.get(exc.errno or 0)
        return None  # created: cannot happen with the workdir on another mount
    finally:
        for fd in (*fds, ctx, scratch):
            if fd >= 0:
                os.close(fd)


def _scratch() -> int:
    """A detached, empty tmpfs with two directories, ``lower`` and ``work``."""
    ctx = api.fsopen("tmpfs")
    try:
        api.fsconfig_create(ctx)
        mnt = api.fsmount(ctx)
    finally:
        os.close(ctx)
    try:
        for name in ("lower", "work"):
            os.mkdir(name, 0o700, dir_fd=mnt)
    except OSError:
        os.close(mnt)
        raise
    return mnt
