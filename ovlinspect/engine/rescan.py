"""Re-read only the mount namespaces that changed, and merge them into an existing scan.

Each changed namespace is scanned whole (``scan(pids=[pid])``: every process of it, every overlay),
since any mount change can change an overlay's verdict (a mount over a layer path, a layer source
unmounted).  The other namespaces are kept as they were.

Scanning (:func:`rescan_namespaces`, slow: run it in a thread) is apart from merging
(:func:`merge`, cheap and pure): a front end merges into the scan it holds *when the rescan is
done*, so a full scan or another rescan that finished meanwhile is not overwritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ovlinspect.engine.scan import scan
from ovlinspect.host.processes import ScanError
from ovlinspect.model import Namespace, Scan


@dataclass
class Rescanned:
    """Fresh scans of some namespaces, and the namespaces found gone."""

    namespaces: dict[int, Namespace] = field(default_factory=dict)
    """ns inode -> its new entry."""
    gone: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


@dataclass
class Refresh:
    """A scan with some namespaces re-read: which ones were, and which are gone."""

    scan: Scan
    updated: list[int] = field(default_factory=list)
    """ns inodes re-read (already in the scan, or new: see ``added``)."""
    added: list[int] = field(default_factory=list)
    """ns inodes that were not in the old scan."""
    gone: list[Namespace] = field(default_factory=list)
    """The old entries of namespaces whose processes have all exited (no longer in ``scan``)."""


def rescan_namespaces(changed: Mapping[int, int], gone: Iterable[int] = ()) -> Rescanned:
    """Scan each namespace in ``changed`` (ns inode -> a pid of it) again.

    A namespace whose pid exited before it was read counts as gone (the caller may retry with
    another pid of it).  When the pid has left the namespace (setns, unshare), the namespace is
    neither re-read nor gone.
    """
    out = Rescanned(gone=set(gone))
    for ns_id, pid in changed.items():
        if ns_id in out.gone:
            continue
        try:
            part = scan(pids=[pid])
        except ScanError:
            out.gone.add(ns_id)  # the pid exited before its namespace was read
            continue
        out.errors += part.errors
        match = [ns for ns in part.namespaces if ns.mnt_ns == ns_id]
        if match:
            out.namespaces[ns_id] = match[0]
        elif not part.namespaces:
            out.gone.add(ns_id)  # its processes exited mid-scan
    return out


def _order(ns: Namespace) -> int:
    return min(ns.pids) if ns.pids else 0


def merge(old: Scan, part: Rescanned) -> Refresh:
    """``old`` with ``part``'s namespaces replacing (or added to) its own, and the gone ones
    removed.  ``old`` is not modified; the namespaces kept are the same objects."""
    by_ns = {ns.mnt_ns: ns for ns in old.namespaces if ns.mnt_ns is not None}
    fresh = part.namespaces
    kept = [fresh.get(ns.mnt_ns, ns) if ns.mnt_ns is not None else ns for ns in old.namespaces
            if ns.mnt_ns not in part.gone]
    added = [ns_id for ns_id in fresh if ns_id not in by_ns]
    merged = Scan(namespaces=sorted(kept + [fresh[n] for n in added], key=_order),
                  source=old.source, privileges=list(old.privileges),
                  errors=list(dict.fromkeys(old.errors + part.errors)))
    return Refresh(scan=merged, updated=list(fresh), added=added,
                   gone=[by_ns[ns_id] for ns_id in sorted(part.gone) if ns_id in by_ns])


def refresh(old: Scan, changed: Mapping[int, int], gone: Iterable[int] = ()) -> Refresh:
    """:func:`rescan_namespaces` then :func:`merge` into ``old`` (for callers with one thread)."""
    return merge(old, rescan_namespaces(changed, gone))
