"""What the TUI shows of a scan: node keys, the filter and the counts (no textual here)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ovlinspect.model import Layer, Namespace, Overlay, Scan, Severity, Status

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
    """One namespace as shown: the overlays that pass the filter, and its worst severity."""

    ns: Namespace
    overlays: list[Overlay]
    worst: Severity | None = None

    @property
    def key(self) -> str:
        return ns_key(self.ns)


def apply_filter(scan: Scan, flt: Filter, summary: Summary | None = None) -> list[NamespaceView]:
    """The namespaces and mounts that pass ``flt``, in scan order.

    A mount passes when every term matches one of its paths, its mount id, a hazard code, or a
    process of its namespace (pid exactly; comm or container as a substring).  A namespace is shown
    when one of its mounts passes, or (with no hazard toggle) when every term matches its processes.
    """
    terms = flt.terms
    summary = summary or Summary(scan)
    shown: list[NamespaceView] = []
    for ns in scan.namespaces:
        by_process = {t for t in terms if _process_matches(ns, t)}
        rest = [t for t in terms if t not in by_process]
        overlays = [
            o
            for o in ns.overlays
            if (not flt.hazards_only or summary.overlay(o) is not None)
            and all(_mount_matches(o, t) for t in rest)
        ]
        if overlays or (not rest and not flt.hazards_only):
            shown.append(NamespaceView(ns, overlays, summary.namespace(ns)))
    return shown


class Summary:
    """Worst severities and hazard counts of one scan, computed once (big hosts ask often)."""

    def __init__(self, scan: Scan) -> None:
        self._overlay: dict[int, Severity | None] = {}
        self._ns: dict[int, Severity | None] = {}
        self._codes: dict[int, Counter[str]] = {}
        self._code_severity: dict[str, Severity] = {}
        for ns in scan.namespaces:
            ns_rank, codes = -1, Counter[str]()
            for overlay in ns.overlays:
                rank = -1
                for hazards in (overlay.hazards, *(layer.hazards for layer in overlay.layers)):
                    for h in hazards:
                        rank = max(rank, h.severity.rank)
                        codes[h.code] += 1
                        self._code_severity.setdefault(h.code, h.severity)
                self._overlay[id(overlay)] = _BY_RANK.get(rank)
                ns_rank = max(ns_rank, rank)
            self._ns[id(ns)] = _BY_RANK.get(ns_rank)
            self._codes[id(ns)] = codes

    def overlay(self, overlay: Overlay) -> Severity | None:
        """The worst severity of ``overlay`` (computed now if it was not in the scan)."""
        try:
            return self._overlay[id(overlay)]
        except KeyError:
            return overlay.worst()

    def namespace(self, ns: Namespace) -> Severity | None:
        """The worst severity over all of ``ns``'s overlays."""
        try:
            return self._ns[id(ns)]
        except KeyError:
            return ns.worst()

    def codes(self, ns: Namespace) -> list[tuple[str, Severity, int]]:
        """Each hazard code found in ``ns``'s mounts with its severity and count, worst first."""
        counts = self._codes.get(id(ns), Counter())
        rows = [(code, self._code_severity[code], n) for code, n in counts.items()]
        return sorted(rows, key=lambda row: (-row[1].rank, row[0]))


_BY_RANK = {s.rank: s for s in Severity}


@dataclass
class Counts:
    """Totals for the status line."""

    namespaces: int = 0
    mounts: int = 0
    shown_namespaces: int = 0
    shown_mounts: int = 0
    severities: Counter[Severity] = field(default_factory=Counter)
    statuses: Counter[Status] = field(default_factory=Counter)


def count(scan: Scan, views: list[NamespaceView], summary: Summary | None = None) -> Counts:
    """Totals over the scan, and shown mounts by their worst severity."""
    summary = summary or Summary(scan)
    counts = Counts(
        namespaces=len(scan.namespaces),
        mounts=sum(len(ns.overlays) for ns in scan.namespaces),
        shown_namespaces=len(views),
        shown_mounts=sum(len(v.overlays) for v in views),
    )
    for view in views:
        for overlay in view.overlays:
            counts.statuses[overlay.status] += 1
            worst = summary.overlay(overlay)
            if worst is not None:
                counts.severities[worst] += 1
    return counts


def find_pid(scan: Scan, pid: int) -> Namespace | None:
    """The namespace that holds ``pid``."""
    for ns in scan.namespaces:
        if pid in ns.pids or pid == ns.root_pid or any(p.pid == pid for p in ns.processes):
            return ns
    return None
