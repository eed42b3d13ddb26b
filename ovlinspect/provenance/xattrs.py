"""The overlay's private xattrs, read on a layer's real object (they are hidden through the
overlay): ``trusted.overlay.*``, or ``user.overlay.*`` with userxattr.

Reading ``trusted.*`` needs CAP_SYS_ADMIN; without it the kernel answers as if there were none,
so callers say what could not be read instead of concluding "absent".
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ovlinspect.kernel.handles import OVL_FH_MAGIC
from ovlinspect.kernel.objects import get_xattr, lookup

_HEADER = 21


@dataclass(frozen=True)
class Fb:
    """An ``ovl_fb`` as stored in ``overlay.origin`` / ``overlay.upper`` (no padding)."""

    flags: int
    type: int
    uuid: bytes
    fid: bytes
    raw: bytes


def parse_fb(raw: bytes | None) -> Fb | None:
    """Parse a stored ``ovl_fb``: version 0, magic 0xfb, len, flags, type, uuid(16), fid."""
    if raw is None or len(raw) < _HEADER or raw[0] != 0 or raw[1] != OVL_FH_MAGIC:
        return None
    length = raw[2]
    if length < _HEADER or length > len(raw):
        return None
    return Fb(flags=raw[3], type=raw[4], uuid=bytes(raw[5:21]), fid=bytes(raw[_HEADER:length]),
              raw=bytes(raw[:length]))


@dataclass
class Private:
    """The private xattrs of one layer object that provenance cares about."""

    origin: Fb | None = None
    redirect: str | None = None
    opaque: bytes | None = None
    metacopy: bool = False
    whiteout: bool = False
    nlink: bytes | None = None


def examine(layer_fd: int, rel: str, prefix: str) -> tuple[os.stat_result, Private] | None:
    """lstat and private xattrs of the object at ``rel`` below ``layer_fd`` (``prefix`` is
    ``trusted.overlay.`` or ``user.overlay.``); None when there is none."""
    fd = lookup(layer_fd, rel)
    if fd is None:
        return None
    out = Private()
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode) or stat.S_ISCHR(st.st_mode):
            return st, out  # a symlink's xattrs cannot be read through /proc/self/fd
        out.origin = parse_fb(get_xattr(fd, prefix + "origin"))
        raw = get_xattr(fd, prefix + "redirect")
        out.redirect = None if raw is None else os.fsdecode(raw)
        out.opaque = get_xattr(fd, prefix + "opaque") if stat.S_ISDIR(st.st_mode) else None
        if stat.S_ISREG(st.st_mode):
            out.metacopy = get_xattr(fd, prefix + "metacopy") is not None
            out.whiteout = st.st_size == 0 and get_xattr(fd, prefix + "whiteout") is not None
            out.nlink = get_xattr(fd, prefix + "nlink")
    finally:
        os.close(fd)
    return st, out


def is_whiteout(st: os.stat_result, private: Private | None) -> bool:
    """A kernel whiteout (0:0 character device) or an xattr whiteout."""
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return private is not None and private.whiteout
