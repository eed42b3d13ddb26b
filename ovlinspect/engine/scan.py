"""Scan the host: processes grouped by mount namespace, each namespace's overlays analysed.

Each namespace's mount table is read once, from a process of it that is not chrooted.  Processes
and mounts that vanish mid-scan are skipped; a missing privilege becomes a note, not a failure.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

from ovlinspect.engine.analyse import NamespaceContext, Outer, analyse, parse_overlay
from ovlinspect.host.fsindex import FsIndex
from ovlinspect.host.view import View, ViewError
from ovlinspect.model import Namespace, Process, Scan
from ovlinspect.mounts.mountinfo import MountEntry, parse

OVERLAY_TYPES = ("overlay", "fuse.fuse-overlayfs", "fuse-overlayfs")
CAP_DAC_READ_SEARCH = 2
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
_CONTAINER_ID = re.compile(
    r"(?:docker|libpod|crio|cri-containerd|containerd)[-/:]([0-9a-f]{12,64})|/docker/([0-9a-f]{64})"
)


class ScanError(Exception):
    """A scan that cannot start: bad --pid, unreadable input.  The message is for the user."""


def is_overlay(entry: MountEntry) -> bool:
    """Overlay mounts, including fuse-overlayfs."""
    return entry.fs_type in OVERLAY_TYPES


def effective_caps() -> int:
    """This process's effective capability mask."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def missing_privileges(caps: int) -> list[str]:
    """One sentence per missing capability, saying what it costs."""
    out = []
    if not caps >> CAP_SYS_PTRACE & 1:
        out.append("CAP_SYS_PTRACE missing: other users' /proc/PID/root and ns/mnt are hidden, "
                   "so their layers cannot be resolved")
    if not caps >> CAP_DAC_READ_SEARCH & 1:
        out.append("CAP_DAC_READ_SEARCH missing: file handles cannot be decoded into real paths "
                   "(open_by_handle_at)")
    if not caps >> CAP_SYS_ADMIN & 1:
        out.append("CAP_SYS_ADMIN missing: trusted.overlay.* xattrs cannot be read")
    return out


def _read_text(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


def _ns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def _root_is_ns_root(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/root") == "/"
    except OSError:
        return False


def _container_name(pid: int) -> str | None:
    """A container id from the cgroup path (docker, podman, CRI-O, containerd), if any."""
    try:
        text = _read_text(f"/proc/{pid}/cgroup")
    except OSError:
        return None
    match = _CONTAINER_ID.search(text)
    if match:
        return (match.group(1) or match.group(2))[:12]
    return None


@dataclass
class _Group:
    key: tuple[str, int | str]
    mnt_ns: int | None
    procs: list[Process] = field(default_factory=list)
    unreadable: bool = False


def _processes(pids: Iterable[int] | None) -> list[psutil.Process]:
    if pids is None:
        return list(psutil.process_iter(["pid", "name"]))
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            raise ScanError(f"no such process: {pid}") from None
        except psutil.Error as exc:
            raise ScanError(f"cannot inspect process {pid}: {exc}") from None
    return procs


def _group(procs: list[psutil.Process], *, hash_unreadable: bool = True) -> list[_Group]:
    """Processes by mount namespace; unreadable ones by mountinfo hash (or dropped)."""
    groups: dict[tuple[str, int | str], _Group] = {}
    for proc in procs:
        try:
            pid, name = proc.pid, proc.name()
        except psutil.Error:
            continue  # exited mid-scan
        ns = _ns_inode(pid)
        if ns is not None:
            key: tuple[str, int | str] = ("ns", ns)
        elif not hash_unreadable:
            continue
        else:
            # ns/mnt needs ptrace access; processes with identical mount tables share one.
            try:
                digest = hashlib.sha1(_read_text(f"/proc/{pid}/mountinfo").encode(
                    "utf-8", "surrogateescape")).hexdigest()[:16]
            except OSError:
                continue
            key = ("mountinfo", digest)
        group = groups.setdefault(key, _Group(key, ns, unreadable=ns is None))
        group.procs.append(Process(pid=pid, comm=name))
    return list(groups.values())


class _Views:
    """Opened views and indexes, shared by every namespace of one scan, closed at its end."""

    def __init__(self) -> None:
        self.by_pid: dict[int, tuple[View, FsIndex]] = {}

    def get(self, pid: int, mounts: list[MountEntry] | None = None) -> tuple[View, FsIndex]:
        if pid not in self.by_pid:
            view = View(pid)
            if mounts is None:
                mounts, _ = parse(_read_text(f"/proc/{pid}/mountinfo"))
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
        self.my_ns = _ns_inode(os.getpid())

    def run(self, pids: list[int] | None) -> Scan:
        result = Scan(source="live", privileges=missing_privileges(self.caps))
        try:
            groups = _group(_processes(pids))
            if pids is not None:
                groups = self._whole_namespaces(groups)
            for group in sorted(groups, key=lambda g: min(p.pid for p in g.procs)):
                ns = self._namespace(group, result)
                if ns is not None:
                    result.namespaces.append(ns)
        finally:
            self.views.close()
        return result

    def _whole_namespaces(self, groups: list[_Group]) -> list[_Group]:
        """With --pid, list every process of the chosen namespaces, not only the given pids."""
        wanted = {g.mnt_ns for g in groups if g.mnt_ns is not None}
        if not wanted:
            return groups
        everyone = {g.key: g for g in _group(_processes(None), hash_unreadable=False)
                    if g.mnt_ns in wanted}
        return list(everyone.values()) + [g for g in groups if g.mnt_ns is None]

    def _namespace(self, group: _Group, result: Scan) -> Namespace | None:
        procs = sorted(group.procs, key=lambda p: p.pid)
        ns = Namespace(mnt_ns=group.mnt_ns, pids=[p.pid for p in procs], processes=procs)
        root = next((p.pid for p in procs if _root_is_ns_root(p.pid)), None)
        if root is None:
            root = procs[0].pid
            if not group.unreadable:
                ns.notes.append("every process of this namespace is chrooted; paths are resolved "
                                f"from pid {root}'s root")
        ns.root_pid = root
        try:
            mounts, errors = parse(_read_text(f"/proc/{root}/mountinfo"))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return None  # the namespace's processes exited mid-scan
            result.errors.append(f"pid {root}: cannot read mountinfo: {exc.strerror}")
            return None
        ns.notes += [f"mountinfo of pid {root}: {e}" for e in errors]
        overlays = [m for m in mounts if is_overlay(m)]
        if group.mnt_ns is not None and group.mnt_ns != self.my_ns:
            for proc in procs:
                proc.container = _container_name(proc.pid)
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

    def _context(self, group: _Group, root: int, mounts: list[MountEntry],
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

    def _outers(self, group: _Group, root: int) -> list[Outer]:
        """Views of the namespaces around this one: the nearest ancestor's, then pid 1's."""
        outers: list[Outer] = []
        seen = {group.mnt_ns}
        for pid in [*_ancestors(root), 1]:
            ns = _ns_inode(pid)
            if ns is None or ns in seen or not _root_is_ns_root(pid):
                continue
            seen.add(ns)
            try:
                view, index = self.views.get(pid)
            except OSError:
                continue
            label = "the host (pid 1)" if pid == 1 else f"the namespace of ancestor pid {pid}"
            outers.append(Outer(view=view, index=index, label=label))
        return outers


def _ancestors(pid: int) -> list[int]:
    out = []
    try:
        proc = psutil.Process(pid)
        for parent in proc.parents():
            out.append(parent.pid)
    except psutil.Error:
        pass
    return out


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
