"""Scan the host: processes grouped by mount namespace, each namespace's overlays analysed.

Each namespace's mount table is read once, from a process of it that is not chrooted.  Processes
and mounts that vanish mid-scan are skipped; a missing privilege becomes a note, not a failure.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ovlinspect.engine.analyse import analyse
from ovlinspect.engine.declared import parse_overlay
from ovlinspect.engine.rules import shared_uppers, status
from ovlinspect.engine.state import NamespaceContext, Outer
from ovlinspect.host.fsindex import FsIndex
from ovlinspect.host.processes import (
    CAP_DAC_READ_SEARCH,
    Group,
    ScanError,
    ancestors,
    container_name,
    effective_caps,
    group_by_namespace,
    is_overlay,
    missing_privileges,
    ns_inode,
    processes,
    read_text,
    root_is_ns_root,
    why_hidden,
)
from ovlinspect.host.view import View, ViewError
from ovlinspect.model import Namespace, Overlay, Scan
from ovlinspect.model.reasons import Reason
from ovlinspect.mounts.mountinfo import MountEntry, MountinfoError, parse, parse_lines


class _Views:
    """Opened views and indexes, shared by every namespace of one scan, closed at its end."""

    def __init__(self) -> None:
        self.by_pid: dict[int, tuple[View, FsIndex]] = {}

    def get(self, pid: int, mounts: list[MountEntry] | None = None,
            view: View | None = None) -> tuple[View, FsIndex]:
        """The view of ``pid`` (or ``view``, adopted) and the index of ``mounts`` in it."""
        if pid not in self.by_pid:
            if view is None:
                view = View(pid)
            if mounts is None:
                mounts, _ = parse(read_text(f"/proc/{pid}/mountinfo"))
            self.by_pid[pid] = (view, FsIndex(view, mounts))
        elif view is not None:
            view.close()
        return self.by_pid[pid]

    def close(self) -> None:
        for view, index in self.by_pid.values():
            index.close()
            view.close()


class Scanner:
    """One scan of live processes."""

    def __init__(self) -> None:
        self.caps = effective_caps()
        self.views = _Views()
        self.my_ns = ns_inode(os.getpid())

    def run(self, pids: list[int] | None) -> Scan:
        result = Scan(source="live", privileges=missing_privileges(self.caps))
        try:
            groups = group_by_namespace(processes(pids))
            if pids is not None:
                groups = self._whole_namespaces(groups)
            for group in sorted(groups, key=lambda g: min(p.pid for p in g.procs)):
                ns = self._namespace(group, result)
                if ns is not None:
                    result.namespaces.append(ns)
        finally:
            self.views.close()
        for pid in pids or []:
            if not any(pid in ns.pids for ns in result.namespaces):
                # It passed the first check and then exited before its mount table was read
                # (this raises ScanError), or its table was unreadable (result.errors says so).
                processes([pid])
        return result

    def _whole_namespaces(self, groups: list[Group]) -> list[Group]:
        """With --pid, list every process of the chosen namespaces, not only the given pids."""
        wanted = {g.mnt_ns for g in groups if g.mnt_ns is not None}
        if not wanted:
            return groups
        everyone = {g.key: g for g in group_by_namespace(processes(None), hash_unreadable=False)
                    if g.mnt_ns in wanted}
        return list(everyone.values()) + [g for g in groups if g.mnt_ns is None]

    def _namespace(self, group: Group, result: Scan) -> Namespace | None:
        procs = sorted(group.procs, key=lambda p: p.pid)
        ns = Namespace(mnt_ns=group.mnt_ns, pids=[p.pid for p in procs], processes=procs)
        root = next((p.pid for p in procs if root_is_ns_root(p.pid)), None)
        ns_view: View | None = None
        text: str | None = None
        if root is None:
            root = procs[0].pid
            if not group.unreadable:
                ns_view, text = self._namespace_root(root, ns)
        ns.root_pid = root
        try:
            if text is None:
                text = read_text(f"/proc/{root}/mountinfo")
            mounts, errors = parse(text)
        except OSError as exc:
            # ENOENT/ESRCH: gone; EINVAL: exiting (its namespaces are already released).
            if exc.errno in (errno.ENOENT, errno.ESRCH, errno.EINVAL):
                return None  # the namespace's processes exited mid-scan
            result.errors.append(f"pid {root}: cannot read mountinfo: {exc.strerror}")
            return None
        ns.notes += [f"mountinfo of pid {root}: {e}" for e in errors]
        overlays = [m for m in mounts if is_overlay(m)]
        if group.mnt_ns is not None and group.mnt_ns != self.my_ns:
            for proc in procs:
                proc.container = container_name(proc.pid)
        if not overlays:
            if ns_view is not None:
                ns_view.close()
            return ns
        ctx = self._context(group, root, mounts, ns, ns_view)
        analysed: list[tuple[str, Overlay]] = []
        for entry in overlays:
            try:
                overlay = analyse(entry, ctx)
            except OSError as exc:
                overlay = parse_overlay(entry)
                overlay.notes.append(f"analysis stopped: {exc.strerror or exc}")
                overlay.status = status(overlay)
            ns.overlays.append(overlay)
            analysed.append((entry.dev, overlay))
        shared_uppers(analysed)
        for _dev, overlay in analysed:
            overlay.status = status(overlay)
        return ns

    def _namespace_root(self, pid: int, ns: Namespace) -> tuple[View | None, str | None]:
        """Every process is chrooted: enter the namespace (setns in a forked child) for its own
        root and its whole mount table; else fall back to the chroot's view."""
        try:
            from ovlinspect.host.nsroot import open_namespace_root  # rare: sockets, fork

            fd, text = open_namespace_root(pid)
        except OSError as exc:
            ns.notes.append("every process of this namespace is chrooted, and its own root could "
                            f"not be entered ({exc.strerror or exc}); paths are resolved from pid "
                            f"{pid}'s root")
            return None, None
        ns.notes.append("every process of this namespace is chrooted; paths are resolved from "
                        "the namespace's own root (entered with setns)")
        return View(pid, root_fd=fd), text

    def _context(self, group: Group, root: int, mounts: list[MountEntry], ns: Namespace,
                 ns_view: View | None = None) -> NamespaceContext:
        ctx = NamespaceContext(view=None, index=None)
        if not self.caps >> CAP_DAC_READ_SEARCH & 1:
            ctx.can_decode = False
            ctx.decode_reason = "decoding handles needs CAP_DAC_READ_SEARCH"
        try:
            ctx.view, ctx.index = self.views.get(root, mounts, ns_view)
        except (ViewError, OSError) as exc:
            ctx.no_view_reason = (f"cannot look into pid {root}'s root: "
                                  + why_hidden(root, exc, self.caps))
            ns.notes.append(ctx.no_view_reason)
            return ctx
        try:
            ctx.cwd = os.readlink(f"/proc/{root}/cwd")
        except OSError:
            ctx.cwd = None
        ctx.outer_factory = lambda: self._outers(group, root)
        return ctx

    def _outers(self, group: Group, root: int) -> list[Outer]:
        """Views of the namespaces around this one: the nearest ancestor's, then pid 1's."""
        outers: list[Outer] = []
        seen = {group.mnt_ns}
        for pid in [*ancestors(root), 1]:
            ns = ns_inode(pid)
            if ns is None or ns in seen or not root_is_ns_root(pid):
                continue
            seen.add(ns)
            try:
                view, index = self.views.get(pid)
            except OSError:
                continue
            label = "the host (pid 1)" if pid == 1 else f"the namespace of ancestor pid {pid}"
            if (view, index) == self.views.by_pid.get(root):
                continue
            outers.append(Outer(view=view, index=index, label=label))
        return outers


@contextmanager
def context_for(pid: int) -> Iterator[tuple[NamespaceContext, list[MountEntry], Namespace]]:
    """The analysis context of ``pid``'s own view (its root, its mount table), for per-object
    work such as provenance; the views are closed when the block ends.  Raises
    :class:`ScanError` when the process is gone or its mount table is unreadable."""
    if pid <= 0:
        raise ScanError(f"not a process id: {pid}")
    groups = group_by_namespace(processes([pid]))
    if not groups:
        raise ScanError(f"process {pid} has exited (no mount table left to inspect)")
    group = groups[0]
    scanner = Scanner()
    try:
        mounts, _ = parse(read_text(f"/proc/{pid}/mountinfo"))
    except OSError as exc:
        processes([pid])  # exited meanwhile: ScanError
        raise ScanError(f"pid {pid}: cannot read mountinfo: {exc.strerror}") from None
    ns = Namespace(mnt_ns=group.mnt_ns, pids=[pid], root_pid=pid)
    try:
        yield scanner._context(group, pid, mounts, ns), mounts, ns
    finally:
        scanner.views.close()


def scan(pids: list[int] | None = None) -> Scan:
    """Scan live processes (only the namespaces of ``pids`` when given)."""
    for pid in pids or []:
        if pid <= 0:
            raise ScanError(f"not a process id: {pid}")
    return Scanner().run(pids)


def scan_text(text: str | Iterable[str], source: str = "-") -> Scan:
    """Analyse a saved mountinfo: everything the text allows, with resolution unavailable.

    ``text`` is a string or its lines (as ``read_lines`` streams them): only overlay lines are
    kept and only the first malformed lines are noted, so memory follows the overlays, not the
    input.  Raises :class:`ScanError` when the input is refused or holds no mount line.
    """
    try:
        parsed = parse_lines(text.split("\n") if isinstance(text, str) else text, is_overlay)
    except MountinfoError as exc:
        raise ScanError(f"{source}: {exc}") from None
    if not parsed.mount_count:
        first = f" ({parsed.errors[0]})" if parsed.errors else ""
        raise ScanError(f"{source}: no mount lines{first}")
    more = parsed.error_count - len(parsed.errors)
    ns = Namespace(mnt_ns=None, notes=parsed.errors + (
        [f"{more} more malformed line(s) not shown"] if more else []))
    reason = "offline analysis of a saved mountinfo: resolution unavailable"
    for entry in parsed.entries:
        if is_overlay(entry):
            overlay = parse_overlay(entry)
            for layer in overlay.layers:
                layer.verify_note = reason
                layer.proof.reason = Reason.OFFLINE.value
            overlay.status = status(overlay)
            ns.overlays.append(overlay)
    return Scan(namespaces=[ns], source=f"file:{source}")
