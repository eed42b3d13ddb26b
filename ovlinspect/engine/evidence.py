"""Evidence from the merged tree: the overlay root's handle and a bounded sample of merged
entries, each with its overlay handle (which names the real object serving it) and its inode.

Nothing here writes.  Directories are read with O_NOATIME (which overlayfs passes to the layers,
so no layer's atime changes), lookups use O_PATH.  On an overlay with an upper layer and
``nfs_export=on``, encoding a handle of a lower-only directory below a merged directory that is not
in upper copies it up (KERNEL-NOTES), and so does encoding one through an outer overlay whose lower
is such an overlay: directories are only encoded where their parent is the overlay's root, which is
always in upper.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass

from ovlinspect.engine.state import LayerState, NamespaceContext
from ovlinspect.kernel.handles import OverlayFid, decode_overlay_handle, to_model
from ovlinspect.kernel.objects import NoAtimeRefused, list_names, lookup
from ovlinspect.kernel.syscalls import (
    AT_EMPTY_PATH,
    AT_HANDLE_FID,
    AT_HANDLE_MNT_ID_UNIQUE,
    RawHandle,
    name_to_handle_at,
)
from ovlinspect.model import Handle

SAMPLE_LIMIT = 256
XINO_MIN_SHIFT = 32  # xino puts the layer fs index in the top bits


@dataclass(frozen=True)
class Sample:
    """One merged object: its path below the overlay's own root, its lstat, its overlay handle."""

    rel: str
    st: os.stat_result
    fid: OverlayFid | None

    @property
    def is_dir(self) -> bool:
        """A directory (merged directories never name a single layer's object reliably)."""
        return stat.S_ISDIR(self.st.st_mode)


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Evidence:
    """What the merged tree says, independently of what the options declare."""

    mount_point: str
    prefix: str
    has_upper: bool
    mount_id: int | None = None
    root: Sample | None = None
    root_handle: Handle | None = None
    unique_id: int | None = None
    handles_available: bool = False
    no_handles_type: int | None = None
    samples: list[Sample]
    notes: list[str]
    listing_refused: bool = False
    nfs_guard: bool = False

    def __init__(
        self,
        mount_point: str,
        prefix: str,
        has_upper: bool,
        mount_id: int | None = None,
        root: Sample | None = None,
        root_handle: Handle | None = None,
        unique_id: int | None = None,
        handles_available: bool = False,
        no_handles_type: int | None = None,
        samples: list[Sample] | None = None,
        notes: list[str] | None = None,
        listing_refused: bool = False,
        nfs_guard: bool = False,
    ) -> None:
        self.mount_point = mount_point
        self.prefix = prefix
        self.has_upper = has_upper
        self.mount_id = mount_id
        self.root = root
        self.root_handle = root_handle
        self.unique_id = unique_id
        self.handles_available = handles_available
        self.no_handles_type = no_handles_type
        self.samples = [] if samples is None else samples
        self.notes = [] if notes is None else notes
        self.listing_refused = listing_refused
        self.nfs_guard = nfs_guard

    def is_root_layer(self, state: LayerState) -> bool:
        """The layer the overlay's root handle names: the upper, or a lower-only mount's top."""
        layer = state.layer
        if self.has_upper:
            return layer.role == "upper"
        return layer.role == "lower" and layer.index == 0

    def dir_inodes_persistent(self) -> bool | None:
        """Directory inode numbers are the real ones (all layers on one filesystem, or xino):
        then merged non-directories share the overlay's st_dev.  With layers on several
        filesystems and no xino, they carry a per-filesystem pseudo device instead, and
        directories get overlay-private inode numbers (fs/overlayfs/inode.c, ovl_map_dev_ino).
        None when no merged file was sampled."""
        if self.root is None:
            return False
        files = [s for s in self.samples if not s.is_dir]
        if not files:
            return None
        return all(s.st.st_dev == self.root.st.st_dev for s in files)

    def decoded_root_path(self, ctx: NamespaceContext) -> str | None:
        """The real path of the root layer from the root handle (only when the mount's root is
        the overlay's root: a bind of a subdirectory names the subdirectory)."""
        if self.root is None or self.root.fid is None or self.prefix or not ctx.can_decode:
            return None
        fid = self.root.fid
        for index in ctx.indexes():
            found = index.decode(fid.uuid, fid.type, fid.fid)
            if found.path is not None:
                return found.path
        return None


def _overlay_handle(fd: int) -> RawHandle | None:
    try:
        return name_to_handle_at(fd, "", AT_EMPTY_PATH | AT_HANDLE_FID)
    except OSError:
        return None


def gather(root_fd: int, mount_point: str, root: str, has_upper: bool) -> Evidence:
    """The overlay root's handle and a sample of top-level merged entries."""
    ev = Evidence(mount_point=mount_point, prefix=root.strip("/"), has_upper=has_upper)
    # Encoding a directory below a merged directory that is not in upper copies it up on an
    # nfs_export overlay, and also inside an nfs_export overlay used as a lower of this one
    # (which nothing in our options reveals): only directories whose parent is the overlay's
    # root are ever encoded.
    ev.nfs_guard = True
    if "/" in ev.prefix:
        ev.notes.append("the mount's root is a nested directory of the overlay: its handle is not "
                        "taken, because encoding it could copy it up (nfs_export)")
        return ev
    try:
        raw = name_to_handle_at(root_fd, "", AT_EMPTY_PATH | AT_HANDLE_FID
                                | AT_HANDLE_MNT_ID_UNIQUE)
    except OSError as exc:
        ev.notes.append(f"overlay root handle: {exc.strerror}")
        return ev
    ev.unique_id = raw.mount_id
    ev.root_handle = to_model(raw)
    fid = decode_overlay_handle(raw)
    ev.handles_available = fid is not None
    if fid is None:
        ev.no_handles_type = raw.type
    ev.root = Sample(rel=ev.prefix, st=os.fstat(root_fd), fid=fid)
    try:
        names = list_names(root_fd, SAMPLE_LIMIT)
    except NoAtimeRefused:
        ev.listing_refused = True
        names = []
    for name in names:
        sample = probe(root_fd, ev, posixpath.join(ev.prefix, name) if ev.prefix else name)
        if sample is not None:
            ev.samples.append(sample)
    return ev


def probe(root_fd: int, ev: Evidence, rel: str) -> Sample | None:
    """Look ``rel`` (a path below the overlay's own root) up in the merged tree and sample it.

    Only directories whose parent is the overlay's root (always in upper) are encoded: encoding
    others could copy them up on an nfs_export overlay, or inside a nested one.
    """
    prefix = ev.prefix
    if prefix and not (rel == prefix or rel.startswith(prefix + "/")):
        return None
    fd = lookup(root_fd, rel[len(prefix):].lstrip("/") if prefix else rel)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        fid = None
        dir_ok = not ev.nfs_guard or "/" not in rel
        if ev.handles_available and (dir_ok or not stat.S_ISDIR(st.st_mode)):
            raw = _overlay_handle(fd)
            fid = decode_overlay_handle(raw) if raw is not None else None
        return Sample(rel=rel, st=st, fid=fid)
    finally:
        os.close(fd)


def ino_agrees(merged: os.stat_result, real: os.stat_result) -> bool:
    """Could overlayfs report ``real``'s inode as ``merged``'s (fs/overlayfs/inode.c)?

    Same filesystem for every layer: the real inode number.  xino: the real number with the
    layer's fs index in the high bits.  The file type must agree as well.
    """
    if stat.S_IFMT(merged.st_mode) != stat.S_IFMT(real.st_mode):
        return False
    if merged.st_ino == real.st_ino:
        return True
    extra = merged.st_ino ^ real.st_ino
    lowest = (extra & -extra).bit_length() - 1
    return lowest >= XINO_MIN_SHIFT and real.st_ino >> lowest == 0 and extra & real.st_ino == 0
