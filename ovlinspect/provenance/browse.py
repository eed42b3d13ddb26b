"""One merged directory at a time, for a lazy browser: its entries with the layer serving each
and their markers, and the names that higher layers hide (whiteouts, opaque directories).

Each call is bounded: at most ``limit`` entries, in name order after ``after``; each layer's
directory is read with O_NOATIME and at most :data:`SCAN_LIMIT` names.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from ovlinspect.kernel.objects import NoAtimeRefused, list_names, lookup
from ovlinspect.provenance.classify import kind_of
from ovlinspect.provenance.result import ObjectRef
from ovlinspect.provenance.session import Session
from ovlinspect.provenance.walk import Hit, child, dir_stack, walk

SCAN_LIMIT = 65536


@dataclass
class Entry:
    """One merged name: its kind, the layer serving it, and its markers."""

    name: str
    kind: str
    layer: ObjectRef
    copied_up: bool = False
    metacopy: bool = False
    redirect: str | None = None
    opaque: bool = False
    merged: int = 0  # lower directories merged below it


@dataclass
class Hidden:
    """A lower object no longer visible, and what hides it."""

    name: str
    hidden: ObjectRef
    by: ObjectRef
    reason: str  # whiteout | opaque


@dataclass
class Page:
    """One bounded slice of a directory; ``more`` when names after ``next_after`` remain."""

    entries: list[Entry] = field(default_factory=list)
    hidden: list[Hidden] = field(default_factory=list)
    more: bool = False
    next_after: str | None = None
    notes: list[str] = field(default_factory=list)


def _names(hit: Hit, notes: list[str]) -> set[str]:
    if hit.layer.fd is None:
        return set()
    fd = lookup(hit.layer.fd, hit.rel)
    if fd is None:
        return set()
    try:
        names = list_names(fd, SCAN_LIMIT)
    except NoAtimeRefused:
        notes.append(f"{hit.layer.label}: not read (O_NOATIME refused: needs CAP_FOWNER)")
        return set()
    finally:
        os.close(fd)
    if len(names) >= SCAN_LIMIT:
        notes.append(f"{hit.layer.label}: only the first {SCAN_LIMIT} names were read")
    return set(names)


def _slice(names: set[str], after: str | None, limit: int) -> tuple[list[str], bool]:
    ordered = sorted(n for n in names if after is None or n > after)
    return ordered[:limit], len(ordered) > limit


def list_dir(session: Session, rel: str, limit: int = 200, after: str | None = None) -> Page:
    """Up to ``limit`` entries of the merged directory ``rel`` (below the overlay root), each
    with its serving layer and markers; whiteouts are left out (see :func:`hidden_entries`)."""
    page = Page()
    stack = dir_stack(session, rel)
    if stack is None:
        page.notes.append("not a merged directory")
        return page
    names: set[str] = set()
    for hit in stack:
        names |= _names(hit, page.notes)
    chosen, page.more = _slice(names, after, limit)
    for name in chosen:
        found = child(session, stack, name)
        top = found.top
        if top is None:
            continue
        page.entries.append(Entry(
            name=name, kind=kind_of(top.st), layer=top.layer.ref(top.rel),
            copied_up=top.layer.role == "upper" and top.private.origin is not None,
            metacopy=top.private.metacopy, redirect=top.private.redirect,
            opaque=top.private.opaque == b"y", merged=len(found.hits) - 1))
    page.next_after = chosen[-1] if chosen else None
    return page


def hidden_entries(session: Session, rel: str, limit: int = 200,
                   after: str | None = None) -> Page:
    """Up to ``limit`` lower objects of the directory ``rel`` that higher layers hide: names a
    whiteout deletes, and the contents of lower directories an opaque directory covers."""
    page = Page()
    here = walk(session, rel)
    stack = here.hits if here.top is not None and here.top.is_dir else None
    if stack is None:
        page.notes.append("not a merged directory")
        return page
    candidates: dict[str, None] = {}
    for hit in stack:
        for name in _names(hit, page.notes):
            candidates.setdefault(name)
    chosen, more = _slice(set(candidates), after, limit)
    for name in chosen:
        found = child(session, stack, name)
        if found.whiteout is not None:
            by = found.whiteout.layer.ref(found.whiteout.rel)
            page.hidden += [Hidden(name, h.layer.ref(h.rel), by, "whiteout")
                            for h in found.hidden]
    if here.opaque_at is not None:
        by = here.opaque_at.layer.ref(here.opaque_at.rel)
        for lower in here.hidden:
            for name in sorted(_names(lower, page.notes))[:limit]:
                page.hidden.append(Hidden(name, lower.layer.ref(posixpath.join(lower.rel, name)),
                                          by, "opaque"))
    page.more = more
    page.next_after = chosen[-1] if chosen else None
    return page
