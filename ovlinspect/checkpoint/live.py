"""The live overlay, for reading only: a detached, read-only, noatime clone of its mount.

Reading a merged tree can write atimes.  overlayfs passes ``O_NOATIME`` on to the layer files
and directories it opens, but readlink(2) has no such flag, and an atime update on a merged
object is copied to its upper inode (``ovl_update_time``): comparing a symlink that lives in the
upper would touch the upper.  A clone of the live mount with MOUNT_ATTR_RDONLY|NOATIME stops
every atime update at the VFS, whatever is read through it.

The clone is :func:`ovlinspect.host.quietlink.quiet_clone`'s (the one symlinks are read
through): open_tree(OPEN_TREE_CLONE) clones only a mount of the caller's own mount namespace,
so for another one a forked child joins the overlay's namespaces (its user namespace first when
not root: its owner may), clones the mount and sends the clone back (SCM_RIGHTS).  The
clone is not recursive: what is mounted inside the merged tree is left out, as it is from a
rebuild.
"""

from __future__ import annotations

import os

from ovlinspect.checkpoint.compare import open_dir
from ovlinspect.host.quietlink import quiet_clone

QUIET = "quiet-clone"  # read through a read-only, noatime clone of the live mount
DIRECT = "direct"      # read through the live mount itself (readlink may touch upper atimes)


def live_dir(mount_fd: int, pid: int, *, timeout: float = 30.0) -> tuple[int, str]:
    """A directory fd to read the live overlay through (owned by the caller), and how: through
    a quiet clone when the kernel allows it, else through ``mount_fd`` itself (an O_PATH fd on
    the overlay's root in pid's view)."""
    clone = quiet_clone(mount_fd, pid, timeout)
    if clone is None:
        return open_dir(mount_fd), DIRECT
    try:
        return open_dir(clone), QUIET
    finally:
        os.close(clone)
