"""Result records of provenance queries and their JSON form (``"schema": 1``).

Every system string goes through :func:`ovlinspect.model.codec.text_to_wire`, so bytes that are
not UTF-8 stay lossless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ovlinspect.model.codec import text_to_wire

SCHEMA = 1


class Method(StrEnum):
    """How the serving layer of one object was found."""

    OBJECT_HANDLE = "object-handle"  # the object's overlay handle names this layer's object
    LAYER_LOOKUP = "layer-lookup"    # the name looked up in the layers, as overlayfs does
    INODE = "inode"                  # no handles: the merged inode number agrees
    NONE = "none"


UNREAD_XATTRS = "private-xattrs"
"""``unread`` code: trusted.overlay.* could not be read (no CAP_SYS_ADMIN), so origin, redirect,
opaque, metacopy and xattr whiteouts are unknown (their fields say false or null)."""
UNREAD_DECODE = "decode"
"""``unread`` code: handles could not be decoded into paths (no CAP_DAC_READ_SEARCH)."""


class Strength(StrEnum):
    """``proven`` by a handle on a proven layer; ``likely`` otherwise."""

    PROVEN = "proven"
    LIKELY = "likely"


@dataclass(frozen=True)
class ObjectRef:
    """A real object: the layer holding it (None when it lies in no known layer) and its path."""

    role: str | None
    index: int | None
    real_path: str | None

    @property
    def label(self) -> str:
        """``upper``, ``lower[i]``, ``data[j]`` or ``?``."""
        if self.role is None:
            return "?"
        return self.role if self.role == "upper" else f"{self.role}[{self.index}]"


@dataclass
class Provenance:
    """Where one merged object (or deleted name) really comes from."""

    path: str
    mount_point: str
    mount_id: int
    layer: ObjectRef | None = None
    kind: str = "missing"            # file | dir | symlink | other | whiteout | missing
    copied_up: bool = False
    origin: ObjectRef | None = None
    metacopy: bool = False
    data: ObjectRef | None = None
    redirect: str | None = None
    opaque: bool = False
    whiteout: bool = False
    hidden: list[ObjectRef] = field(default_factory=list)
    merged: list[ObjectRef] = field(default_factory=list)
    nlink: int | None = None
    index_entry: str | None = None
    method: Method = Method.NONE
    strength: Strength | None = None
    unread: list[str] = field(default_factory=list)  # codes: what could not be read
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """Add a note once."""
        if text not in self.notes:
            self.notes.append(text)


def _opt(text: str | None) -> Any:
    return None if text is None else text_to_wire(text)


def _ref(ref: ObjectRef | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"role": ref.role, "index": ref.index, "real_path": _opt(ref.real_path)}


def provenance_to_wire(p: Provenance) -> dict[str, Any]:
    """One result as the ``which`` JSON shows it."""
    return {
        "path": text_to_wire(p.path),
        "mount_point": text_to_wire(p.mount_point),
        "mount_id": p.mount_id,
        "kind": p.kind,
        "layer": None if p.layer is None else {"role": p.layer.role, "index": p.layer.index},
        "real_path": _opt(p.layer.real_path if p.layer is not None else None),
        "copied_up": p.copied_up,
        "origin": _ref(p.origin),
        "metacopy": p.metacopy,
        "data": _ref(p.data),
        "redirect": _opt(p.redirect),
        "opaque": p.opaque,
        "whiteout": p.whiteout,
        "hidden": [_ref(h) for h in p.hidden],
        "merged": [_ref(m) for m in p.merged],
        "nlink": p.nlink,
        "index_entry": _opt(p.index_entry),
        "proof": {"method": str(p.method),
                  "strength": None if p.strength is None else str(p.strength)},
        "unread": list(p.unread),
        "notes": [text_to_wire(n) for n in p.notes],
    }


@dataclass
class FdRecord:
    """One open fd of a process on an overlay, and where its object comes from."""

    fd: int
    provenance: Provenance


@dataclass
class WatchRecord:
    """One inotify or fanotify mark whose handle is an overlay handle (type 0xf8)."""

    fd: int
    kind: str              # inotify | fanotify
    wd: int | None
    mask: str
    provenance: Provenance


@dataclass
class FdsReport:
    """Everything ``fds`` found for one process."""

    pid: int
    fds: list[FdRecord] = field(default_factory=list)
    watches: list[WatchRecord] = field(default_factory=list)
    scanned: int = 0
    watches_skipped: list[int] = field(default_factory=list)
    skip_reason: str | None = None
    errors: list[str] = field(default_factory=list)


def which_to_wire(results: list[Provenance], errors: list[str]) -> dict[str, Any]:
    """The ``which --json`` document."""
    return {"schema": SCHEMA, "results": [provenance_to_wire(p) for p in results],
            "errors": [text_to_wire(e) for e in errors]}


def fds_to_wire(report: FdsReport) -> dict[str, Any]:
    """The ``fds --json`` document."""
    return {
        "schema": SCHEMA,
        "pid": report.pid,
        "scanned": report.scanned,
        "fds": [{"fd": r.fd, **provenance_to_wire(r.provenance)} for r in report.fds],
        "watches": [{"fd": w.fd, "watch": w.kind, "wd": w.wd, "mask": w.mask,
                     **provenance_to_wire(w.provenance)} for w in report.watches],
        "watches_skipped": {"fds": list(report.watches_skipped),
                            "reason": _opt(report.skip_reason)},
        "errors": [text_to_wire(e) for e in report.errors],
    }
