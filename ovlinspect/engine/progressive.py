"""A scan in steps, for a front end that paints at once: first every namespace (processes only),
then the namespaces analysed one by one, the one the user looks at first, then the whole scan.

The verdicts are those of :func:`~ovlinspect.engine.scan.scan`: the same :class:`Scanner`
analyses the same namespaces; only the order of the work differs, and the final
:class:`~ovlinspect.model.Scan` is in report order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ovlinspect.engine.scan import Scanner
from ovlinspect.host.processes import ScanError, missing_privileges
from ovlinspect.model import Namespace, Process, Scan


@dataclass
class Listed:
    """Every namespace the scan covers, not analysed yet (no overlays, no root pid)."""

    scan: Scan


@dataclass
class Analysed:
    """Namespaces analysed since the last step (each replaces its listed entry, by ``mnt_ns``),
    and those whose processes exited before they could be (by ``mnt_ns``)."""

    namespaces: list[Namespace] = field(default_factory=list)
    vanished: list[int | None] = field(default_factory=list)


@dataclass
class Finished:
    """The whole scan, exactly as :func:`~ovlinspect.engine.scan.scan` returns it."""

    scan: Scan


Step = Listed | Analysed | Finished


def scan_steps(pids: list[int] | None = None, first: Callable[[], int | None] = lambda: None,
               every: float = 0.25) -> Iterator[Step]:
    """:class:`Listed`, then :class:`Analysed` batches (at most one per ``every`` seconds),
    then :class:`Finished`.  Before each namespace, ``first()`` may name (by its inode) the one
    to analyse next.  Raises :class:`~ovlinspect.host.processes.ScanError` as ``scan`` does."""
    for pid in pids or []:
        if pid <= 0:
            raise ScanError(f"not a process id: {pid}")
    scanner = Scanner()
    try:
        groups = scanner.plan(pids)
        yield Listed(Scan(namespaces=[_listed(g.mnt_ns, g.procs) for g in groups],
                          privileges=missing_privileges(scanner.caps)))
        result = Scan(source="live", privileges=missing_privileges(scanner.caps))
        done: dict[int, Namespace | None] = {}
        errors: dict[int, list[str]] = {}  # by group: the final scan lists them in report order
        pending = list(range(len(groups)))
        batch, since = Analysed(), time.monotonic()
        while pending:
            wanted = first()
            pick = next((i for i in pending if groups[i].mnt_ns == wanted), pending[0])
            pending.remove(pick)
            scratch = Scan()
            ns = scanner.analyse(groups[pick], scratch)
            done[pick], errors[pick] = ns, scratch.errors
            if ns is None:
                batch.vanished.append(groups[pick].mnt_ns)
            else:
                batch.namespaces.append(ns)
            if time.monotonic() - since >= every or not pending:
                yield batch
                batch, since = Analysed(), time.monotonic()
    finally:
        scanner.close()
    result.namespaces = [ns for i in range(len(groups)) if (ns := done.get(i)) is not None]
    result.errors = [text for i in range(len(groups)) for text in errors.get(i, [])]
    scanner.check_pids(pids, {pid for ns in result.namespaces for pid in ns.pids})
    yield Finished(result)


def _listed(mnt_ns: int | None, procs: list[Process]) -> Namespace:
    ordered = sorted(procs, key=lambda p: p.pid)
    return Namespace(mnt_ns=mnt_ns, pids=[p.pid for p in ordered], processes=ordered)
