"""What the TUI shows of a scan: node keys, the filter and the counts (no textual here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ovlinspect.model import Layer, Namespace, Overlay, Scan, Severity

ROLE_ORDER = {"upper": 0, "work": 1, "lower": 2, "data": 3}


def ns_key(ns: Namespace) -> str:
    """A key that survives rescans: the namespace inode, else its root pid."""
    if ns.mnt_ns is not None:
        return f"mnt:{ns.mnt_ns}"
    pid = ns.root_pid if ns.root_pid is not None else (ns.pids[0] if ns.pids else None)
    return f"pid:{pid}"


def ordered_layers(overlay: Overlay) -> list[Layer]:
    """Upper, work, lowers top-first, then data-only lowers."""
    return sorted(overlay.layers, key=lambda layer: (ROLE_ORDER.get(layer.role, 9), layer.index))


@dataclass(frozen=True)
class Filter:
    """The ``/`` query (whitespace-separated terms, all must match) and the ``h`` toggle."""

    query: str = ""
    hazards_only: bool = False

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self.query.lower().split())

    @property
    def active(self) -> bool:
        return bool(self.terms) or self.hazards_only


def _process_matches(ns: Namespace, term: str) -> bool:
    if term.isdigit() and (int(term) in ns.pids or int(term) == ns.root_pid):
        return True
    for p in ns.processes:
        if term == str(p.pid) or term in p.comm.lower():
            return True
        if p.container and term in p.container.lower():
            return True
    return False


def _mount_matches(overlay: Overlay, term: str) -> bool:
    texts = [overlay.mount_point, overlay.source, str(overlay.mount_id)]
    for layer in overlay.layers:
        texts += [layer.declared, layer.path or "", layer.host_path or "", layer.real_path or ""]
    texts += [h.code for h in overlay.all_hazards()]
    return any(term in t.lower() for t in texts)


@dataclass
class NamespaceView:
    """One namespace as shown: the namespace and its overlays that pass the filter."""

    ns: Namespace
    overlays: list[Overlay]

    @property
    def key(self) -> str:
        return ns_key(self.ns)


def apply_filter(scan: Scan, flt: Filter) -> list[NamespaceView]:
    """The namespaces and mounts that pass ``flt``, in scan order.

    A mount passes when every term matches one of its paths, its mount id, a hazard code, or a
    process of its namespace (pid exactly; comm or container as a substring).  A namespace is shown
    when one of its mounts passes, or (with no hazard toggle) when every term matches its processes.
    """
    terms = flt.terms
    shown: list[NamespaceView] = []
    for ns in scan.namespaces:
        by_process = {t for t in terms if _process_matches(ns, t)}
        rest = [t for t in terms if t not in by_process]
        overlays = [
            o
            for o in ns.overlays
            if (not flt.hazards_only or o.all_hazards())
            and all(_mount_matches(o, t) for t in rest)
        ]
        if overlays or (not rest and not flt.hazards_only):
            shown.append(NamespaceView(ns, overlays))
    return shown


@dataclass
class Counts:
    """Totals for the status line."""

    namespaces: int = 0
    mounts: int = 0
    shown_namespaces: int = 0
    shown_mounts: int = 0
    severities: Counter[Severity] = field(default_factory=Counter)


def count(scan: Scan, views: list[NamespaceView]) -> Counts:
    """Totals over the scan, and hazards by worst severity over the shown mounts."""
    counts = Counts(
        namespaces=len(scan.namespaces),
        mounts=sum(len(ns.overlays) for ns in scan.namespaces),
        shown_namespaces=len(views),
        shown_mounts=sum(len(v.overlays) for v in views),
    )
    for view in views:
        for overlay in view.overlays:
            worst = overlay.worst()
            if worst is not None:
                counts.severities[worst] += 1
    return counts


def find_pid(scan: Scan, pid: int) -> Namespace | None:
    """The namespace that holds ``pid``."""
    for ns in scan.namespaces:
        if pid in ns.pids or pid == ns.root_pid or any(p.pid == pid for p in ns.processes):
            return ns
    return None
