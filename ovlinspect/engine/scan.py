"""Scan the host: processes grouped by mount namespace, each namespace's overlays analysed.

Each namespace's mount table is read once, from a process of it that is not chrooted.  Processes
and mounts that vanish mid-scan are skipped; a missing privilege becomes a note, not a failure.
"""

from __future__ import annotations

import errno
import os

from ovlinspect.engine.analyse import NamespaceContext, Outer, analyse, parse_overlay
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
)
from ovlinspect.host.view import View, ViewError
from ovlinspect.model import Namespace, Scan
from ovlinspect.mounts.mountinfo import MountEntry, parse


class _Views:
    """Opened views and indexes, shared by every namespace of one scan, closed at its end."""

    def __init__(self) -> None:
        self.by_pid: dict[int, tuple[View, FsIndex]] = {}

    def get(self, pid: int, mounts: list[MountEntry] | None = None) -> tuple[View, FsIndex]:
        if pid not in self.by_pid:
            view = View(pid)
            if mounts is None:
                mounts, _ = parse(read_text(f"/proc/{pid}/mountinfo"))
            self.by_pid[pid] = (view, FsIndex(view, mounts))
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
        if root is None:
            root = procs[0].pid
            if not group.unreadable:
                ns.notes.append("every process of this namespace is chrooted; paths are resolved "
                                f"from pid {root}'s root")
        ns.root_pid = root
        try:
            mounts, errors = parse(read_text(f"/proc/{root}/mountinfo"))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return None  # the namespace's processes exited mid-scan
            result.errors.append(f"pid {root}: cannot read mountinfo: {exc.strerror}")
            return None
        ns.notes += [f"mountinfo of pid {root}: {e}" for e in errors]
        overlays = [m for m in mounts if is_overlay(m)]
        if group.mnt_ns is not None and group.mnt_ns != self.my_ns:
            for proc in procs:
                proc.container = container_name(proc.pid)
        if not overlays:
            return ns
        ctx = self._context(group, root, mounts, ns)
        for entry in overlays:
            try:
                ns.overlays.append(analyse(entry, ctx))
            except OSError as exc:
                overlay = parse_overlay(entry)
                overlay.notes.append(f"analysis stopped: {exc.strerror or exc}")
                ns.overlays.append(overlay)
        return ns

    def _context(self, group: Group, root: int, mounts: list[MountEntry],
                 ns: Namespace) -> NamespaceContext:
        ctx = NamespaceContext(view=None, index=None)
        if not self.caps >> CAP_DAC_READ_SEARCH & 1:
            ctx.can_decode = False
            ctx.decode_reason = "decoding handles needs CAP_DAC_READ_SEARCH"
        try:
            ctx.view, ctx.index = self.views.get(root, mounts)
        except (ViewError, OSError) as exc:
            need = "CAP_SYS_PTRACE" if exc.errno in (errno.EACCES, errno.EPERM) else None
            ctx.no_view_reason = (f"cannot look into pid {root}'s root"
                                  + (f": needs {need}" if need else f": {exc.strerror}"))
            ns.notes.append(ctx.no_view_reason)
            return ctx
        try:
            ctx.cwd = os.readlink(f"/proc/{root}/cwd")
        except OSError:
            ctx.cwd = None
        ctx.outers = self._outers(group, root)
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
            outers.append(Outer(view=view, index=index, label=label))
        return outers


def scan(pids: list[int] | None = None) -> Scan:
    """Scan live processes (only the namespaces of ``pids`` when given)."""
    for pid in pids or []:
        if pid <= 0:
            raise ScanError(f"not a process id: {pid}")
    return Scanner().run(pids)


def scan_text(text: str, source: str = "-") -> Scan:
    """Analyse a saved mountinfo: everything the text allows, with resolution unavailable."""
    mounts, errors = parse(text)
    if not mounts and errors:
        raise ScanError(f"{source}: not a mountinfo file ({errors[0]})")
    ns = Namespace(mnt_ns=None, notes=[f"line {e}" if not e.startswith("line") else e
                                       for e in errors])
    reason = "offline analysis of a saved mountinfo: resolution unavailable"
    for entry in mounts:
        if is_overlay(entry):
            overlay = parse_overlay(entry)
            for layer in overlay.layers:
                layer.verify_note = reason
            ns.overlays.append(overlay)
    return Scan(namespaces=[ns], source=f"file:{source}")
