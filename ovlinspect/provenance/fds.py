"""A process's open fds on overlays, and its inotify/fanotify watches on overlay objects.

``/proc/PID/fd/N`` tells sockets, pipes and watch fds apart; ``/proc/PID/fdinfo/N`` gives a file
fd's mount id (only fds on overlays are looked at, grouped by mount) and one line per watch.  A
watch on an overlay object carries the overlay's own file handle (``fhandle-type:f8``), with
``wd``, ``fhandle-bytes``, ``ino`` and ``sdev`` in hex.  The kernel encodes that handle each time
the fdinfo is read, which copies directories up on ``nfs_export`` overlays: watches are not
read where that can happen (:func:`watch_risk`).  Each fd's object is opened through
``/proc/PID/fd/N`` with O_PATH, never for reading or writing.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from ovlinspect.host.fsindex import decoded_stat
from ovlinspect.host.processes import why_hidden
from ovlinspect.kernel.handles import OVL_FILEID_V1, OverlayFid, decode_overlay_handle
from ovlinspect.kernel.objects import lookup
from ovlinspect.kernel.syscalls import RawHandle
from ovlinspect.mounts.overlayopts import parse_overlay_options
from ovlinspect.provenance.classify import classify, encodable, kind_of, locate, overlay_fid
from ovlinspect.provenance.result import (
    FdRecord,
    FdsReport,
    Method,
    ObjectRef,
    Provenance,
    Strength,
    WatchRecord,
)
from ovlinspect.provenance.session import Session
from ovlinspect.provenance.which import Inspector, ProvenanceError, inspector

_FIELD = re.compile(rb"([a-z_-]+):(\S+)")


@dataclass(frozen=True)
class Watch:
    """One watch line of an fdinfo file."""

    kind: str
    wd: int | None
    mask: str
    sdev: str | None
    handle_type: int
    handle: bytes


def parse_fdinfo(text: bytes) -> tuple[int | None, list[Watch]]:
    """The fd's mount id and its watch lines (inotify or fanotify inode marks with a handle)."""
    mnt_id: int | None = None
    watches: list[Watch] = []
    for line in text.splitlines():
        if line.startswith(b"mnt_id:"):
            try:
                mnt_id = int(line.split()[1])
            except (IndexError, ValueError):
                mnt_id = None
            continue
        kind = line.split(b" ", 1)[0]
        if kind not in (b"inotify", b"fanotify") or b"f_handle:" not in line:
            continue
        fields = dict(_FIELD.findall(line))
        try:
            sdev = int(fields[b"sdev"], 16) if b"sdev" in fields else None
            watches.append(Watch(
                kind=kind.decode(),
                wd=int(fields[b"wd"], 16) if b"wd" in fields else None,  # hex, like ino
                mask=fields.get(b"mask", b"0").decode("ascii", "replace"),
                sdev=None if sdev is None else f"{sdev >> 20}:{sdev & 0xFFFFF}",
                handle_type=int(fields[b"fhandle-type"], 16),
                handle=bytes.fromhex(fields[b"f_handle"].decode("ascii")),
            ))
        except (KeyError, ValueError):
            continue
    return mnt_id, watches


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH):
            return None  # closed meanwhile
        raise


WATCH_LINKS = ("anon_inode:inotify", "anon_inode:[fanotify]")
_NOT_FILES = ("socket:", "pipe:", "anon_inode:")


def watch_risk(ins: Inspector) -> str | None:
    """Why reading watch fdinfo could write, or None.  To show a watch, the kernel encodes the
    watched object's handle; on an overlay with ``nfs_export=on`` (or an overlay stacked on
    another) that copies a lower directory chain up and writes index entries."""
    for entry in ins.by_id.values():
        if entry.fs_type != "overlay":
            continue
        flags, _ = parse_overlay_options(entry.super_options)
        if flags.flags.get("nfs_export") == "on":
            return (f"the overlay at {entry.mount_point} has nfs_export=on: reading a watch "
                    "makes the kernel encode the watched object's handle, which copies "
                    "directories up there")
        session = ins.session(entry.mount_id)
        for layer in session.layers() if session is not None else []:
            if layer.on_overlay:
                return (f"the overlay at {entry.mount_point} has a layer on another overlay: "
                        "reading a watch could copy directories up in it")
    return None


def fds(pid: int) -> FdsReport:
    """Every fd of ``pid`` on an overlay, and every watch holding an overlay handle."""
    report = FdsReport(pid=pid)
    with inspector(pid) as ins:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError as exc:
            raise ProvenanceError(f"pid {pid}: cannot list its fds: {exc.strerror}") from None
        overlays = {m.mount_id for m in ins.by_id.values() if m.fs_type == "overlay"}
        on_overlay: list[tuple[int, int]] = []
        watch_fds: list[int] = []
        refused: list[str] = []
        for name in names:
            if not name.isdigit():
                continue
            try:
                link = os.readlink(f"/proc/{pid}/fd/{name}")
            except OSError as exc:
                if exc.errno not in (errno.ENOENT, errno.ESRCH):  # else closed meanwhile
                    refused.append(f"fd {name}: {exc.strerror}")
                continue
            report.scanned += 1
            if link in WATCH_LINKS:
                watch_fds.append(int(name))
                continue
            if link.startswith(_NOT_FILES):
                continue
            info = _read(f"/proc/{pid}/fdinfo/{name}")
            mnt_id = parse_fdinfo(info)[0] if info is not None else None
            if mnt_id in overlays:
                on_overlay.append((mnt_id, int(name)))
        if refused and not report.scanned:
            raise ProvenanceError(f"pid {pid}: its fds cannot be read ({refused[0]}; "
                                  f"{why_hidden(pid, PermissionError(errno.EACCES, ''))})")
        report.errors += refused[:10]
        cache: dict[tuple[int, str, int, int], Provenance] = {}
        for mnt_id, fd in sorted(on_overlay):
            try:
                found = _fd(ins, pid, fd, mnt_id, cache, report)
            except ProvenanceError as exc:
                report.errors.append(f"fd {fd}: {exc}")
                continue
            if found is not None:
                report.fds.append(FdRecord(fd=fd, provenance=found))
        report.fds.sort(key=lambda r: r.fd)
        _watches(ins, pid, sorted(watch_fds), report)
    return report


def _watches(ins: Inspector, pid: int, watch_fds: list[int], report: FdsReport) -> None:
    if not watch_fds:
        return
    risk = watch_risk(ins)
    if risk is not None:
        report.watches_skipped = watch_fds
        report.skip_reason = risk
        return
    for fd in watch_fds:
        info = _read(f"/proc/{pid}/fdinfo/{fd}")
        if info is None:
            continue
        for watch in parse_fdinfo(info)[1]:
            if watch.handle_type != OVL_FILEID_V1:
                continue
            found = _watch(ins, watch, report)
            if found is not None:
                report.watches.append(WatchRecord(fd=fd, kind=watch.kind, wd=watch.wd,
                                                  mask=watch.mask, provenance=found))
    report.watches.sort(key=lambda w: (w.fd, w.wd or 0))


def _fd(ins: Inspector, pid: int, fd: int, mnt_id: int,
        cache: dict[tuple[int, str, int, int], Provenance], report: FdsReport,
        ) -> Provenance | None:
    session = ins.session(mnt_id)
    if session is None:
        return None
    try:
        path = os.readlink(f"/proc/{pid}/fd/{fd}")
        obj = os.open(f"/proc/{pid}/fd/{fd}", os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ESRCH):
            report.errors.append(f"fd {fd}: {exc.strerror}")
        return None
    try:
        st = os.fstat(obj)
        rel = ins.rel_in(session, path)
        key = (mnt_id, rel or "", st.st_dev, st.st_ino)
        if rel is not None and key in cache:
            return dataclasses.replace(cache[key], path=path, notes=list(cache[key].notes))
        if rel is not None and _same(session, rel, st):
            found = classify(session, rel, path, obj)
            if found is not None:
                cache[key] = found
                return found
        fid = overlay_fid(obj) if not os.path.isdir(f"/proc/self/fd/{obj}") else None

        def same_fd(merged: int) -> bool:
            got = os.fstat(merged)
            return (got.st_dev, got.st_ino) == (st.st_dev, st.st_ino)

        found = by_origin(session, path, fid, same_fd, "the fd's path no longer names its object")
        found.kind = kind_of(st)
        if found.layer is None and found.origin is not None and st.st_nlink == 0:
            # The overlay never unlinks a lower object: a deleted object with a lower origin is
            # an upper copy (copied up, then deleted), still open through this fd.
            found.layer = ObjectRef("upper", 0, None)
            found.copied_up = True
            found.note("deleted: the upper copy, unlinked while open")
        elif found.layer is None and found.origin is not None and path.endswith(" (deleted)"):
            # Its name was deleted (a whiteout) while its inode is still linked: the lower
            # object itself, never copied up (a renamed copy would show its new name).
            # With index=on an upper copy keeps a link in work/index, so only without it is
            # this proven.
            indexed = parse_overlay_options(session.entry.super_options)[0].flags.get(
                "index") == "on"
            found.layer = found.origin
            found.method = Method.OBJECT_HANDLE
            found.strength = Strength.LIKELY if indexed else Strength.PROVEN
            found.note("its merged name was deleted; it is the lower object it names"
                       + (" (index=on: unless an upper copy is still linked in the index)"
                          if indexed else ""))
        return found
    finally:
        os.close(obj)


def _same(session: Session, rel: str, st: os.stat_result) -> bool:
    """The merged tree's object at ``rel`` is the one ``st`` describes."""
    if session.root_fd is None:
        return False
    inner = rel[len(session.prefix):].lstrip("/") if session.prefix else rel
    fd = lookup(session.root_fd, inner)
    if fd is None:
        return False
    try:
        got = os.fstat(fd)
    finally:
        os.close(fd)
    return (got.st_dev, got.st_ino) == (st.st_dev, st.st_ino)


def by_handle(session: Session, path: str, fid: OverlayFid | None, why: str) -> Provenance:
    """Place an object by its overlay handle alone (decoded into a layer)."""
    entry = session.entry
    p = Provenance(path=path, mount_point=entry.mount_point, mount_id=entry.mount_id,
                   kind="other")
    p.note(why)
    if fid is None:
        p.note("no overlay handle to decode")
        return p
    ref = locate(session, fid.uuid, fid.type, fid.fid)
    if ref is None:
        p.note("the handle could not be decoded (needs CAP_DAC_READ_SEARCH, or the object is "
               "disconnected)")
        return p
    p.layer = ref
    p.method, p.strength = Method.OBJECT_HANDLE, Strength.PROVEN
    return p


def by_origin(session: Session, path: str, fid: OverlayFid | None,
              same: Callable[[int], bool], why: str,
              ref: ObjectRef | None = None, dirs_safe: bool = False) -> Provenance:
    """Place an object known only by its overlay handle.  A copied-up object's handle names its
    lower origin (KERNEL-NOTES), so the handle alone cannot tell the lower object from an upper
    copy of it: the merged object at the origin's path is classified only when ``same`` proves
    it is this very object; otherwise the layer is unknown and the origin is said."""
    if fid is None or fid.upper:
        return by_handle(session, path, fid, why)
    ref = ref or locate(session, fid.uuid, fid.type, fid.fid)
    if ref is None or ref.role is None or ref.real_path is None:
        return by_handle(session, path, fid, why)
    layer_root = next((x.real_path for x in session.layers()
                       if (x.role, x.index) == (ref.role, ref.index)), None)
    if layer_root is None:
        return by_handle(session, path, fid, why)
    rel = ref.real_path[len(layer_root):].lstrip("/")
    shown = _shown(session, rel)
    inner = rel[len(session.prefix):].lstrip("/") if session.prefix else rel
    merged = lookup(session.root_fd, inner) if session.root_fd is not None and shown else None
    try:
        if merged is not None and (dirs_safe or encodable_merged(session, rel, merged)) \
                and same(merged):
            found = classify(session, rel, shown or ref.real_path, merged, fid=fid)
            if found is not None and found.kind != "whiteout":
                return found
    finally:
        if merged is not None:
            os.close(merged)
    entry = session.entry
    p = Provenance(path=path, mount_point=entry.mount_point, mount_id=entry.mount_id,
                   kind=_origin_kind(session, fid))
    p.origin = ref
    p.note(f"{why}: its handle names {ref.label} {ref.real_path}, which it is, or was copied up "
           "from (then renamed, replaced or deleted); the merged tree no longer shows it there, "
           "so its layer is not known")
    return p


def _origin_kind(session: Session, fid: OverlayFid) -> str:
    """The file type of the object the handle names (a copy keeps its origin's type)."""
    for index in session.ctx.indexes():
        for fs in index.candidates(fid.uuid):
            st = decoded_stat(fs.fd, fid.type, fid.fid)
            if st is not None:
                return kind_of(st)
    return "other"


def encodable_merged(session: Session, rel: str, merged: int) -> bool:
    """The merged object may be encoded (never a directory below the overlay's root)."""
    return encodable(session, rel, os.fstat(merged))


def _watch(ins: Inspector, watch: Watch, report: FdsReport) -> Provenance | None:
    """A watch: its overlay (by ``sdev``), then its handle decoded into a layer; when the merged
    tree still serves that name, the full classification (copied up or not)."""
    fid = decode_overlay_handle(RawHandle(watch.handle_type, watch.handle, 0))
    entries = sorted((m for m in ins.by_id.values()
                      if m.fs_type == "overlay" and m.dev == watch.sdev),
                     key=lambda m: len(m.root))  # the overlay's own root first
    if fid is None or not entries:
        report.errors.append(f"a {watch.kind} watch on device {watch.sdev}: no overlay mount of "
                             "the process has that device")
        return None
    session = ins.session(entries[0].mount_id)
    assert session is not None
    ref = locate(session, fid.uuid, fid.type, fid.fid)
    if ref is None or ref.role is None or ref.real_path is None:
        return by_handle(session, entries[0].mount_point, fid, "watched object")

    def same_watch(merged: int) -> bool:
        got = overlay_fid(merged)
        return got is not None and got == fid

    # Watches are only read on overlays where encoding a directory cannot copy it up (no
    # nfs_export, no overlay layer: see the caller), so merged directories may be compared.
    return by_origin(session, entries[0].mount_point, fid, same_watch, "watched object",
                     ref=ref, dirs_safe=True)


def _shown(session: Session, rel: str) -> str | None:
    """The merged path of ``rel`` under the mount point (None when outside the mount's root)."""
    prefix = session.prefix
    if prefix and not (rel == prefix or rel.startswith(prefix + "/")):
        return None
    inner = rel[len(prefix):].lstrip("/") if prefix else rel
    point = session.entry.mount_point
    return point if not inner else f"{point.rstrip('/')}/{inner}"
