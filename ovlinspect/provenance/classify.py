"""One merged object: the layer serving it, its real path, origin, data and proof.

The serving layer comes from looking the name up in the layers (:mod:`.walk`).  Where encoding
is safe (non-directories; directories whose parent is the overlay root), the object's overlay
handle confirms it: a handle with PATH_UPPER names the upper object; otherwise it names a lower
object, which for an object found in upper is its copy-up origin (KERNEL-NOTES).
"""

from __future__ import annotations

import functools
import os
import stat

from ovlinspect.engine.evidence import ino_agrees
from ovlinspect.host.processes import CAP_SYS_ADMIN, effective_caps
from ovlinspect.kernel.handles import OverlayFid, decode_overlay_handle
from ovlinspect.kernel.objects import lstat_at
from ovlinspect.kernel.syscalls import AT_EMPTY_PATH, AT_HANDLE_FID, name_to_handle_at
from ovlinspect.provenance.result import (
    UNREAD_DECODE,
    UNREAD_XATTRS,
    Method,
    ObjectRef,
    Provenance,
    Strength,
)
from ovlinspect.provenance.session import Session, same_handle
from ovlinspect.provenance.walk import Hit, Walk, data_of, walk
from ovlinspect.provenance.xattrs import examine

_KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"))


def kind_of(st: os.stat_result) -> str:
    """``file``, ``dir``, ``symlink`` or ``other``."""
    return next((name for test, name in _KINDS if test(st.st_mode)), "other")


@functools.cache
def _has_sys_admin() -> bool:
    return bool(effective_caps() >> CAP_SYS_ADMIN & 1)


def can_read_private(session: Session) -> bool:
    """Private xattrs are readable: userxattr, or CAP_SYS_ADMIN for ``trusted.*``."""
    return session.userxattr or _has_sys_admin()


def encodable(session: Session, rel: str, st: os.stat_result) -> bool:
    """Encoding this object's handle cannot copy anything up: a non-directory, or a directory
    whose parent is the overlay's root (always in upper) or the root itself."""
    return session.handles and (not stat.S_ISDIR(st.st_mode) or "/" not in rel)


def overlay_fid(fd: int) -> OverlayFid | None:
    """The overlay handle of the merged object behind ``fd`` (None without overlay handles)."""
    try:
        raw = name_to_handle_at(fd, "", AT_EMPTY_PATH | AT_HANDLE_FID)
    except OSError:
        return None
    return decode_overlay_handle(raw)


def locate(session: Session, uuid: bytes, handle_type: int, fid: bytes) -> ObjectRef | None:
    """Decode a real-fs handle and place it in a layer (role None when it is in none)."""
    if not session.ctx.can_decode:
        return None
    for index in session.ctx.indexes():
        found = index.decode(uuid, handle_type, fid)
        if found.path is None:
            continue
        where = session.by_real_path(found.path)
        if where is None:
            return ObjectRef(None, None, found.path)
        return where[0].ref(where[1])
    return None


def _find(session: Session, candidates: list[Hit], uuid: bytes, handle_type: int,
          fid: bytes) -> ObjectRef | None:
    for hit in candidates:
        if same_handle(hit.layer, hit.rel, handle_type, fid, uuid):
            return hit.layer.ref(hit.rel)
    return locate(session, uuid, handle_type, fid)


def classify(session: Session, rel: str, path: str, merged_fd: int | None,
             fid: OverlayFid | None = None) -> Provenance | None:
    """Provenance of the merged object at ``rel`` (below the overlay root), whose merged O_PATH
    fd is ``merged_fd`` (None when the name is absent: then only a whiteout is reported, and
    None is returned when there is none).  ``fid``: an overlay handle already known (a watch)."""
    entry = session.entry
    p = Provenance(path=path, mount_point=entry.mount_point, mount_id=entry.mount_id)
    w = walk(session, rel)
    if not session.ctx.can_decode:
        p.unread.append(UNREAD_DECODE)
    if not can_read_private(session):
        p.unread.append(UNREAD_XATTRS)
        p.note("trusted.overlay.* xattrs need CAP_SYS_ADMIN: origin, redirect, opaque, "
               "metacopy and xattr whiteouts could not be read")
    st = os.fstat(merged_fd) if merged_fd is not None else None
    if st is None:
        return _deleted(p, w)
    p.kind = kind_of(st)
    if not stat.S_ISDIR(st.st_mode):
        p.nlink = st.st_nlink
    if fid is None and encodable(session, rel, st):
        assert merged_fd is not None
        fid = overlay_fid(merged_fd)
    top = w.top
    if top is None:
        _unplaced(session, p, fid)
        return p
    p.layer = top.layer.ref(top.rel)
    if top.layer.note:
        p.note(top.layer.note)
    if _indexed(session, p, w, fid):
        return p
    _origin(session, p, w, fid)
    _proof(session, p, w, st, fid)
    _directory(p, w)
    _metacopy(session, p, w)
    _links(session, p, top)
    return p


def _deleted(p: Provenance, w: Walk) -> Provenance | None:
    if w.whiteout is None:
        return None
    p.kind = "whiteout"
    p.whiteout = True
    p.layer = w.whiteout.layer.ref(w.whiteout.rel)
    p.hidden = [h.layer.ref(h.rel) for h in w.hidden]
    p.method, p.strength = Method.LAYER_LOOKUP, Strength.LIKELY
    if not w.hidden:
        p.note("no lower layer holds this name: the whiteout hides nothing")
    return p


def _unplaced(session: Session, p: Provenance, fid: OverlayFid | None) -> None:
    """The merged object exists but no reachable layer holds its name (a layer unreachable or
    changed): the handle alone can still place it."""
    if fid is not None:
        ref = locate(session, fid.uuid, fid.type, fid.fid)
        if ref is not None:
            p.layer = ref
            p.method, p.strength = Method.OBJECT_HANDLE, Strength.PROVEN
            p.note("found by decoding the object's handle: no reachable layer holds its name")
            return
    p.note("no reachable layer holds this name")


def _origin(session: Session, p: Provenance, w: Walk, fid: OverlayFid | None) -> None:
    top = w.top
    assert top is not None
    if top.layer.role != "upper":
        return
    fb = top.private.origin
    lower = w.hits[1:] + w.below + w.hidden
    if fb is not None:
        p.copied_up = True
        p.origin = _find(session, lower, fb.uuid, fb.type, fb.fid)
        if p.origin is None:
            p.origin = ObjectRef(None, None, None)
            p.note("the copy-up origin could not be placed in a layer or decoded")
    elif fid is not None and not fid.upper:
        p.copied_up = True
        p.origin = _find(session, lower, fid.uuid, fid.type, fid.fid)
    elif w.below and not session.handles:
        below = w.below[0]
        p.note(f"{below.layer.label} holds this name too: copied up or replaced, which cannot "
               "be told without a copy-up origin (no overlay handles)")


def _proof(session: Session, p: Provenance, w: Walk, st: os.stat_result,
           fid: OverlayFid | None) -> None:
    top = w.top
    assert top is not None
    strength = Strength.PROVEN if top.layer.proven else Strength.LIKELY
    if fid is not None:
        if fid.upper:
            ok = top.layer.role == "upper" and same_handle(top.layer, top.rel, fid.type, fid.fid,
                                                           fid.uuid)
        elif top.layer.role == "upper":
            fb = top.private.origin
            ok = fb is not None and (fb.type, fb.fid) == (fid.type, fid.fid)
            if fb is None:
                # The handle names a lower object while the name is in upper: copied up, but
                # its origin xattr could not confirm it.
                ok, strength = True, Strength.LIKELY
        else:
            ok = same_handle(top.layer, top.rel, fid.type, fid.fid, fid.uuid)
        if ok:
            p.method, p.strength = Method.OBJECT_HANDLE, strength
            return
        found = locate(session, fid.uuid, fid.type, fid.fid)
        p.note(f"the object's handle does not name {top.layer.label}'s object at this name"
               + (f"; it decodes to {found.real_path}" if found is not None else ""))
        if found is not None and found.role is not None:
            p.layer = found
            p.method, p.strength = Method.OBJECT_HANDLE, strength
        return
    if not session.handles and ino_agrees(st, top.st):
        p.method, p.strength = Method.INODE, Strength.LIKELY
        p.note("no overlay handles: the layer is inferred from inode numbers (weaker)")
        return
    p.method, p.strength = Method.LAYER_LOOKUP, Strength.LIKELY
    if session.handles and stat.S_ISDIR(st.st_mode):
        p.note("a directory below the overlay root: its handle is not encoded (that could copy "
               "it up on nfs_export overlays); found by lookup in the layers")


def _directory(p: Provenance, w: Walk) -> None:
    top = w.top
    assert top is not None
    if not top.is_dir:
        return
    p.redirect = top.private.redirect
    p.merged = [h.layer.ref(h.rel) for h in w.hits[1:]]
    p.opaque = top.private.opaque == b"y"
    p.hidden = [h.layer.ref(h.rel) for h in w.hidden]
    if p.opaque and not w.hidden:
        p.note("opaque, but no lower directory of this name exists: nothing is hidden")
    if w.opaque_at is not None and w.opaque_at is not top:
        p.note(f"{w.opaque_at.layer.label} holds an opaque directory here: layers below it are "
               "hidden")


def _metacopy(session: Session, p: Provenance, w: Walk) -> None:
    top = w.top
    assert top is not None
    if top.is_dir or not top.private.metacopy:
        return
    p.metacopy = True
    p.redirect = top.private.redirect
    _data(p, data_of(session, top, w.below))


def _data(p: Provenance, data: Hit | None) -> None:
    """Record where a metacopy file's data is."""
    if data is None:
        p.note("metacopy: the layer holding the data was not found")
        return
    p.data = data.layer.ref(data.rel)
    if data.layer.role == "data":
        p.note("data-only layers have no identity of their own: the data's layer is found by "
               "the metacopy redirect (likely)")


def fb_hex(fid: OverlayFid) -> str:
    """The ``ovl_fb`` an overlay handle carries, in hex: how index entries are named."""
    body = bytes([0, 0xFB, 21 + len(fid.fid), fid.flags, fid.type]) + fid.uuid + fid.fid
    return body.hex()


def _indexed(session: Session, p: Provenance, w: Walk, fid: OverlayFid | None) -> bool:
    """A lower hard link another name of which was copied up (``index=on``): the kernel serves
    it from the index entry in the work dir, an upper inode, although its name is only in a
    lower layer."""
    top = w.top
    assert top is not None
    if (top.is_dir or top.layer.role == "upper" or fid is None or fid.upper
            or session.index_dir is None or session.index_path is None):
        return False
    name = fb_hex(fid)
    found = lstat_at(session.index_dir, name)
    if found is None or (stat.S_ISCHR(found.st_mode) and found.st_rdev == 0):
        return False
    upper = session.upper
    if not same_handle(top.layer, top.rel, fid.type, fid.fid, fid.uuid) or upper is None:
        return False
    p.index_entry = f"{session.index_path}/{name}"
    p.layer = ObjectRef("upper", upper.index, p.index_entry)
    p.copied_up = True
    p.origin = top.layer.ref(top.rel)
    p.method = Method.OBJECT_HANDLE
    p.strength = Strength.PROVEN if top.layer.proven else Strength.LIKELY
    p.note("a hard link copied up through another name: served from the index entry (the "
           "upper inode every name shares), not from the lower")
    _index_metacopy(session, p, w, name)
    return True


def _index_metacopy(session: Session, p: Provenance, w: Walk, name: str) -> None:
    """An index entry copied up with ``metacopy=on`` holds only metadata: its data is still its
    origin's, the lower object this name finds (proven by the handle), or, when that is a
    metacopy file itself, wherever that one's data is.  The xattrs are the index entry's own
    (the name's lower object carries none of them)."""
    assert session.index_dir is not None
    top = w.top
    assert top is not None
    examined = examine(session.index_dir, name, session.xattr_prefix)
    if examined is None or not examined[1].metacopy:
        return
    p.metacopy = True
    _data(p, data_of(session, top, w.below) if top.private.metacopy else top)


def _links(session: Session, p: Provenance, top: Hit) -> None:
    if top.is_dir:
        return
    if top.private.nlink is not None:
        p.note(f"overlay.nlink on the upper object: {top.private.nlink!r}")
    fb = top.private.origin
    if fb is None or session.index_dir is None or session.index_path is None:
        return
    name = fb.raw.hex()
    if lstat_at(session.index_dir, name) is not None:
        p.index_entry = f"{session.index_path}/{name}"
