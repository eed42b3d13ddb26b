"""Overlay file handles: decode the ``ovl_fb`` that AT_HANDLE_FID returns on an overlay object.

Layout (fs/overlayfs/overlayfs.h): 3 padding bytes, then version(u8)=0, magic(u8)=0xfb, len(u8),
flags(u8), type(u8) = the real fs's handle type, uuid(16) = the real fs's s_uuid, then the real
fs's own handle bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovlinspect.kernel.syscalls import RawHandle
from ovlinspect.model import Handle

OVL_FILEID_V1 = 0xF8
OVL_FH_MAGIC = 0xFB
OVL_FH_FLAG_PATH_UPPER = 4
_PAD = 3
_HEADER = 21


@dataclass(frozen=True)
class OverlayFid:
    """What an overlay handle says: which real filesystem and which real object."""

    flags: int
    type: int
    uuid: bytes
    fid: bytes

    @property
    def upper(self) -> bool:
        """The encoded object is on the upper layer."""
        return bool(self.flags & OVL_FH_FLAG_PATH_UPPER)

    def matches(self, handle: RawHandle) -> bool:
        """True when ``handle`` (taken on a real layer) names the same object."""
        return handle.type == self.type and handle.data == self.fid


def decode_overlay_handle(handle: RawHandle) -> OverlayFid | None:
    """Parse an overlay handle; None when it is not an OVL_FILEID_V1 handle."""
    data = handle.data
    if handle.type != OVL_FILEID_V1 or len(data) < _PAD + _HEADER:
        return None
    body = data[_PAD:]
    version, magic, length, flags, real_type = body[0], body[1], body[2], body[3], body[4]
    if version != 0 or magic != OVL_FH_MAGIC or length < _HEADER or length > len(body):
        return None
    return OverlayFid(flags=flags, type=real_type, uuid=bytes(body[5:21]),
                      fid=bytes(body[_HEADER:length]))


def to_model(handle: RawHandle | None) -> Handle | None:
    """The JSON/TUI form of a handle."""
    return None if handle is None else Handle(type=handle.type, hex=handle.data.hex())


def format_uuid(raw: bytes | None) -> str | None:
    """A uuid as text; None when unknown.  A null uuid prints as all zeros."""
    if raw is None or len(raw) != 16:
        return None if raw is None else raw.hex()
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_null_uuid(raw: bytes | None) -> bool:
    """True for a missing or all-zero uuid (ambiguous: cannot name one filesystem)."""
    return not raw or not any(raw)
