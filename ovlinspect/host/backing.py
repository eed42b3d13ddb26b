"""What a mounted filesystem is made of: its source device and, for loop devices and
file-backed filesystems (erofs on a file), the image file behind it."""

from __future__ import annotations

import os
import stat

from ovlinspect.host.view import View
from ovlinspect.model import Backing
from ovlinspect.mounts.mountinfo import MountEntry

_SYS_BLOCK = "/sys/dev/block"


def _read_sys(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(8192).decode("utf-8", "surrogateescape").rstrip("\n")
    except OSError:
        return None


def _block_dev(source: str, dev: str) -> str | None:
    """``maj:min`` of the block device behind a mount, from its source node or its dev."""
    if source.startswith("/dev/"):
        try:
            st = os.stat(source)
        except OSError:
            st = None
        if st is not None and stat.S_ISBLK(st.st_mode):
            return f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if os.path.isdir(f"{_SYS_BLOCK}/{dev}"):
        return dev
    return None


def backing_of(mount: MountEntry, view: View | None = None) -> Backing:
    """The source, block device and backing file of ``mount``'s filesystem.

    ``backing_file`` is the loop device's file (``/sys/dev/block/M:N/loop/backing_file``), or the
    image itself for a filesystem mounted straight from a file (file-backed erofs shows the file
    as its source; it is looked up in ``view``, the namespace that mounted it).  Loop backing
    files are as the kernel prints them.
    """
    source = mount.source
    out = Backing(source=source or None)
    majmin = _block_dev(source, mount.dev)
    if majmin is not None:
        name = _read_sys(f"{_SYS_BLOCK}/{majmin}/uevent") or ""
        devname = next((line[8:] for line in name.splitlines() if line.startswith("DEVNAME=")),
                       None)
        out.device = f"/dev/{devname}" if devname else majmin
        out.backing_file = _read_sys(f"{_SYS_BLOCK}/{majmin}/loop/backing_file")
    elif source.startswith("/") and not source.startswith("/dev/") and view is not None:
        res = view.resolve(source)
        if res.fd is not None:
            try:
                if stat.S_ISREG(os.fstat(res.fd).st_mode):
                    out.backing_file = res.path
            finally:
                res.close()
    return out
