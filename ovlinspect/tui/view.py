"""What the TUI shows of a scan: node keys, the filter and the counts (no textual here)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Set
from dataclasses import dataclass, field

from ovlinspect.model import Layer, Namespace, Overlay, Process, Scan, Severity, Status
from ovlinspect.report.badges import worst_status

ROLE_ORDER = {"upper": 0, "work": 1, "lower": 2, "data": 3}
PROBLEMS = frozenset({Status.ERROR, Status.WARNING, Status.UNVERIFIED})
"""What ``h`` keeps and ``n``/``N`` visit: not ok, and more than information."""


def is_problem(overlay: Overlay) -> bool:
    """True when ``overlay`` needs a human: in error, warn or unproven."""
    return overlay.status in PROBLEMS


def namespace_status(ns: Namespace) -> Status | None:
    """The most urgent status among the namespace's overlays."""
    return worst_status([o.status for o in ns.overlays])


def lead_process(ns: Namespace) -> Process | None:
    """The process that stands for ``ns``: its root pid's, else the first."""
    for process in ns.processes:
        if process.pid == ns.root_pid:
            return process
    return ns.processes[0] if ns.processes else None


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
    problems_only: bool = False

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self.query.lower().split())

    @property
    def active(self) -> bool:
        return bool(self.terms) or self.problems_only


def _process_matches(ns: Namespace, term: str) -> bool:
    if term.isdigit() and (int(term) in ns.pids or int(term) == ns.root_pid):
        return True
    for p in ns.processes:
        if term == str(p.pid) or term in p.comm.lower():
            return True
        if p.container and term in p.container.lower():
            return True
    return False


def _haystack(overlay: Overlay) -> str:
    """Everything a filter term may match in a mount, lower-cased, NUL-separated."""
    texts = [overlay.mount_point, overlay.source, str(overlay.mount_id)]
    for layer in overlay.layers:
        texts += [layer.declared, layer.path or "", layer.host_path or "", layer.real_path or ""]
    texts += [h.code for h in overlay.all_hazards()]
    return "\0".join(texts).lower()


def _mount_matches(overlay: Overlay, term: str, haystacks: dict[int, str] | None = None) -> bool:
    if haystacks is None:
        return term in _haystack(overlay)
    text = haystacks.get(id(overlay))
    if text is None:
        text = haystacks[id(overlay)] = _haystack(overlay)
    return term in text


@dataclass
class NamespaceView:
    """One namespace as shown: the overlays that pass the filter, its worst severity, and what
    the :class:`History` knows (gone since when, status before the last scan)."""

    ns: Namespace
    overlays: list[Overlay]
    worst: Severity | None = None
    gone_since: float | None = None
    was: Status | None = None
    pending: bool = False
    """Listed, not analysed yet (a scan that arrives in steps)."""
    mount_gone: dict[int, float] = field(default_factory=dict)
    mount_was: dict[int, Status] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return ns_key(self.ns)

    @property
    def status(self) -> Status | None:
        """The most urgent status of the namespace's live overlays."""
        return namespace_status(self.ns)

    @property
    def live_overlays(self) -> int:
        """How many of the shown mounts are live (not gone)."""
        return sum(1 for o in self.overlays if o.mount_id not in self.mount_gone)


NS_COLUMNS = ("status", "pid", "process", "ovl")
MOUNT_COLUMNS = ("status", "mount point", "id")


@dataclass(frozen=True)
class Sort:
    """A column and a direction; ``status`` sorts worst first, the others ascending."""

    column: str = "status"
    reverse: bool = False

    def step(self, columns: tuple[str, ...], by: int) -> Sort:
        """The next (``by`` = 1) or previous (-1) column of ``columns``."""
        i = columns.index(self.column) if self.column in columns else 0
        return Sort(columns[(i + by) % len(columns)])


def _rank(status: Status | None) -> int:
    return -1 if status is None else status.rank


def _lead_pid(ns: Namespace) -> int:
    if ns.root_pid is not None:
        return ns.root_pid
    return min(ns.pids, default=0)


def _lead_comm(ns: Namespace) -> str:
    lead = lead_process(ns)
    return lead.comm if lead is not None else ""


_NS_KEYS: dict[str, Callable[[NamespaceView], tuple[object, ...]]] = {
    "status": lambda v: (v.gone_since is not None, v.pending, -_rank(v.status), _lead_pid(v.ns)),
    "pid": lambda v: (_lead_pid(v.ns),),
    "process": lambda v: (_lead_comm(v.ns).lower(), _lead_pid(v.ns)),
    "ovl": lambda v: (-len(v.overlays), _lead_pid(v.ns)),
}


def sort_overlays(overlays: list[Overlay], order: Sort,
                  gone: dict[int, float] | None = None) -> list[Overlay]:
    """``overlays`` in ``order``; by status, gone ones last and the rest in mountinfo order."""
    gone = gone or {}
    if order.column == "mount point":
        out = sorted(overlays, key=lambda o: (o.mount_point, o.mount_id))
    elif order.column == "id":
        out = sorted(overlays, key=lambda o: o.mount_id)
    else:
        out = sorted(overlays, key=lambda o: (o.mount_id in gone, -o.status.rank))
    return out[::-1] if order.reverse else out


def sort_views(views: list[NamespaceView], ns_order: Sort, mount_order: Sort) -> None:
    """Sort ``views`` and each view's overlays in place."""
    views.sort(key=_NS_KEYS.get(ns_order.column, _NS_KEYS["status"]), reverse=ns_order.reverse)
    for view in views:
        view.overlays = sort_overlays(view.overlays, mount_order, view.mount_gone)


def apply_filter(scan: Scan, flt: Filter, summary: Summary | None = None,
                 history: History | None = None,
                 pending: Set[str] = frozenset()) -> list[NamespaceView]:
    """The namespaces and mounts that pass ``flt``, in scan order, then gone namespaces.

    A mount passes when every term matches one of its paths, its mount id, a hazard code, or a
    process of its namespace (pid exactly; comm or container as a substring).  A namespace is shown
    when one of its mounts passes, or (with no problems toggle) when every term matches its
    processes.  With a :class:`History`, mounts and namespaces gone since an earlier scan are
    kept (marked with when they went).
    """
    terms = flt.terms
    summary = summary or Summary(scan)
    shown: list[NamespaceView] = []
    live = [(ns, None) for ns in scan.namespaces]
    gone = history.gone_namespaces() if history is not None else []
    for ns, since in [*live, *gone]:
        key = ns_key(ns)
        mount_gone = history.gone_mounts(key) if history is not None and since is None else {}
        candidates = list(ns.overlays) + [o for o, _ in mount_gone.values()]
        by_process = {t for t in terms if _process_matches(ns, t)}
        rest = [t for t in terms if t not in by_process]
        overlays = [
            o
            for o in candidates
            if (not flt.problems_only or is_problem(o))
            and all(_mount_matches(o, t, summary.haystacks) for t in rest)
        ]
        waiting = key in pending
        if overlays or (not rest and not flt.problems_only) or waiting:
            view = NamespaceView(ns, overlays, summary.namespace(ns), gone_since=since,
                                 pending=waiting)
            view.mount_gone = {mid: when for mid, (_, when) in mount_gone.items()}
            if since is not None:  # every mount of a gone namespace went with it
                view.mount_gone = {o.mount_id: since for o in overlays}
            if history is not None:
                view.was = history.was_namespace(key)
                view.mount_was = history.was_mounts(key)
            shown.append(view)
    return shown


GONE_KEEP = 600.0
"""Seconds a gone namespace or mount stays on screen."""
GONE_MAX = 200


class History:
    """What changed between scans: namespaces and mounts that went away (and when), and the
    statuses that changed with the last scan."""

    def __init__(self) -> None:
        self._last: dict[str, Namespace] = {}
        self._gone_ns: dict[str, tuple[Namespace, float]] = {}
        self._gone_mounts: dict[str, dict[int, tuple[Overlay, float]]] = {}
        self._ns_was: dict[str, Status | None] = {}
        self._mount_was: dict[str, dict[int, Status]] = {}

    def update(self, scan: Scan, now: float, *, complete: bool = True) -> None:
        """Take in a new scan made at ``now``.  Namespaces missing from an incomplete scan (one
        limited by ``--pid``) are not declared gone."""
        current = {ns_key(ns): ns for ns in scan.namespaces}
        self._ns_was, self._mount_was = {}, {}
        for key, ns in current.items():
            self._gone_ns.pop(key, None)
            old = self._last.get(key)
            gone = self._gone_mounts.setdefault(key, {})
            if old is None:
                continue
            before = namespace_status(old)
            if before is not None and before != namespace_status(ns):
                self._ns_was[key] = before
            now_ids = {o.mount_id: o for o in ns.overlays}
            for overlay in old.overlays:
                new = now_ids.get(overlay.mount_id)
                if new is None:
                    gone.setdefault(overlay.mount_id, (overlay, now))
                elif new.status != overlay.status:
                    self._mount_was.setdefault(key, {})[overlay.mount_id] = overlay.status
            for mount_id in now_ids:
                gone.pop(mount_id, None)
        if complete:
            for key, ns in self._last.items():
                if key not in current:
                    self._gone_ns.setdefault(key, (ns, now))
        for key in [k for k in self._gone_mounts if k not in current]:
            del self._gone_mounts[key]
        self._last = {**(self._last if not complete else {}), **current}
        self.expire(now)

    def lose(self, now: float) -> None:
        """Everything last seen is gone (the ``--pid`` process and its namespace vanished)."""
        for key, ns in self._last.items():
            self._gone_ns.setdefault(key, (ns, now))
        self._last = {}
        self._gone_mounts = {}
        self._ns_was, self._mount_was = {}, {}

    def expire(self, now: float) -> None:
        """Forget what went more than :data:`GONE_KEEP` seconds ago (and keep at most
        :data:`GONE_MAX` namespaces)."""
        keep = sorted(((k, v) for k, v in self._gone_ns.items() if now - v[1] <= GONE_KEEP),
                      key=lambda kv: -kv[1][1])[:GONE_MAX]
        self._gone_ns = dict(keep)
        for key, mounts in self._gone_mounts.items():
            self._gone_mounts[key] = {m: v for m, v in mounts.items() if now - v[1] <= GONE_KEEP}

    def gone_namespaces(self) -> list[tuple[Namespace, float]]:
        """Gone namespaces and since when, most recent first."""
        return sorted(self._gone_ns.values(), key=lambda v: -v[1])

    def gone_mounts(self, key: str) -> dict[int, tuple[Overlay, float]]:
        """The mounts of live namespace ``key`` that went away, by mount id."""
        return dict(self._gone_mounts.get(key, {}))

    def was_namespace(self, key: str) -> Status | None:
        """The namespace's status before the last scan, if the last scan changed it."""
        return self._ns_was.get(key)

    def was_mounts(self, key: str) -> dict[int, Status]:
        """Mount id → status before the last scan, for mounts whose status changed."""
        return dict(self._mount_was.get(key, {}))


class Summary:
    """Worst severities and hazard counts of one scan, computed once (big hosts ask often)."""

    def __init__(self, scan: Scan) -> None:
        self.haystacks: dict[int, str] = {}
        """id(overlay) -> what the filter matches, built on first use."""
        self._overlay: dict[int, Severity | None] = {}
        self._ns: dict[int, Severity | None] = {}
        self._codes: dict[int, Counter[str]] = {}
        self._code_severity: dict[str, Severity] = {}
        for ns in scan.namespaces:
            self.add(ns)

    def add(self, ns: Namespace) -> None:
        """Take in one namespace (of a scan that arrives in steps)."""
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
    """Totals for the status line: live namespaces and mounts (shown / in the scan), and those
    kept on screen although gone."""

    namespaces: int = 0
    mounts: int = 0
    shown_namespaces: int = 0
    shown_mounts: int = 0
    gone_namespaces: int = 0
    gone_mounts: int = 0
    severities: Counter[Severity] = field(default_factory=Counter)
    statuses: Counter[Status] = field(default_factory=Counter)


def count(scan: Scan, views: list[NamespaceView], summary: Summary | None = None) -> Counts:
    """Totals over the scan, and live shown mounts by status and worst severity."""
    summary = summary or Summary(scan)
    counts = Counts(
        namespaces=len(scan.namespaces),
        mounts=sum(len(ns.overlays) for ns in scan.namespaces),
    )
    for view in views:
        if view.gone_since is not None:
            counts.gone_namespaces += 1
            counts.gone_mounts += len(view.overlays)
            continue
        counts.shown_namespaces += 1
        for overlay in view.overlays:
            if overlay.mount_id in view.mount_gone:
                counts.gone_mounts += 1
                continue
            counts.shown_mounts += 1
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
