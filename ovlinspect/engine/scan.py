"""Scan the host: processes grouped by mount namespace, each namespace's overlays analysed.

Each namespace's mount table is read once, from a process of it that is not chrooted.  Processes
and mounts that vanish mid-scan are skipped; a missing privilege becomes a note, not a failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
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
from ovlinspect.mounts.mountinfo import (
    MountEntry,
    MountinfoError,
    errors_of,
    parse,
    parse_lines,
)

TYPE_CHECKING = False  # typing is only for type checkers (startup time, issue #9)
if TYPE_CHECKING:
    from typing import BinaryIO


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
            for group in self._groups(pids):
                ns = self._namespace(group, result)
                if ns is not None:
                    result.namespaces.append(ns)
        finally:
            self.views.close()
        _check_pids(pids, {pid for ns in result.namespaces for pid in ns.pids})
        return result

    def run_rendered(self, pids: list[int] | None, render: Callable[[Namespace], str],
                     jobs: int | None) -> tuple[Scan, Iterator[str]]:
        """Like :meth:`run`, but each namespace is rendered as soon as it is analysed and then
        dropped (see :func:`scan_rendered`)."""
        result = Scan(source="live", privileges=missing_privileges(self.caps))
        errors: list[tuple[int, str]] = []
        seen: set[int] = set()
        streams: list[_Records] = []
        helper: _Helper | None = None
        try:
            groups = list(enumerate(self._groups(pids)))
            if _jobs(jobs, groups) > 1:
                helper = _Helper.start(self, groups[1::2], render)
            mine = groups[0::2] if helper is not None else groups
            streams.append(self._render_share(mine, render, errors, seen))
            if helper is not None:
                done, helper = helper.finish(), None
                if done is None:  # the helper failed: do its share here, as if alone
                    done = self._render_share(groups[1::2], render, errors, seen), [], []
                streams.append(done[0])
                errors += done[1]
                seen.update(done[2])
        except BaseException:
            if helper is not None:
                helper.abandon()
            for stream in streams:
                stream.close()
            raise
        finally:
            self.views.close()
        errors.sort(key=lambda item: item[0])  # stable: a group's own errors stay in order
        result.errors = [text for _, text in errors]
        _check_pids(pids, seen)
        return result, _merged(streams)

    def _render_share(self, share: list[tuple[int, Group]], render: Callable[[Namespace], str],
                      errors: list[tuple[int, str]], seen: set[int],
                      out: _Records | None = None) -> _Records:
        """Analyse and render ``share`` (numbered groups) into ``out`` (a new record stream by
        default); its scan errors are added to ``errors`` with their group's number, the pids
        of its namespaces to ``seen``."""
        out = _Records() if out is None else out
        try:
            for number, group in share:
                scratch = Scan()
                ns = self._namespace(group, scratch)
                errors += [(number, text) for text in scratch.errors]
                if ns is not None:
                    seen.update(ns.pids)
                    out.add(number, render(ns))
        except BaseException:
            out.close()
            raise
        return out

    def plan(self, pids: list[int] | None) -> list[Group]:
        """The namespaces a scan of ``pids`` covers, in report order, not yet analysed (cheap:
        processes and namespace links only); for front ends that analyse them one by one."""
        return self._groups(pids)

    def analyse(self, group: Group, result: Scan) -> Namespace | None:
        """One namespace of :meth:`plan`, analysed (None when its processes exited); scan
        errors go to ``result``.  Call :meth:`close` when done."""
        return self._namespace(group, result)

    def close(self) -> None:
        """Release the views of the namespaces analysed so far."""
        self.views.close()

    @staticmethod
    def check_pids(pids: list[int] | None, seen: set[int]) -> None:
        """Raise ScanError for a pid of ``pids`` whose namespace was not analysed (it exited)."""
        _check_pids(pids, seen)

    def _groups(self, pids: list[int] | None) -> list[Group]:
        """The namespaces to scan, in report order (by their lowest pid)."""
        groups = group_by_namespace(processes(pids))
        if pids is not None:
            groups = self._whole_namespaces(groups)
        return sorted(groups, key=lambda g: min(p.pid for p in g.procs))

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
            if "overlay" in text or "\\" in text:
                mounts, errors = parse(text)
            else:  # no overlay can be in it (is_overlay): only malformed lines matter
                mounts, errors = [], errors_of(text)
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


def _check_pids(pids: list[int] | None, seen: set[int]) -> None:
    for pid in pids or []:
        if pid not in seen:
            # It passed the first check and then exited before its mount table was read
            # (this raises ScanError), or its table was unreadable (the scan's errors say so).
            processes([pid])


PARALLEL_MIN_GROUPS = 64
"""Below this many namespaces a second process does not pay for itself: most namespaces of a
quiet host (services' private mounts) hold no overlay and take a fraction of a millisecond."""


def _jobs(jobs: int | None, groups: list[tuple[int, Group]]) -> int:
    """How many processes analyse: 2 on a multi-core machine with many namespaces, else 1.
    ``OVLINSPECT_JOBS=1`` in the environment forces one."""
    if jobs is None:
        jobs = 1 if os.environ.get("OVLINSPECT_JOBS") == "1" else 2
        try:
            cores = len(os.sched_getaffinity(0))
        except OSError:
            cores = 1
        jobs = min(jobs, cores)
    threading = sys.modules.get("threading")  # not imported: no thread of its making runs
    if len(groups) < PARALLEL_MIN_GROUPS or (threading and threading.active_count() > 1):
        return 1  # fork() in a threaded process (the TUI) is unsafe
    return max(1, min(jobs, 2))


_STATUS = 0xFFFFFFFF
"""The number of a helper's last status record (no group has it)."""


class _Records:
    """Rendered namespaces, each tagged with its group's number, kept in an anonymous file
    (memfd) rather than in memory: a busy host's report is tens of megabytes."""

    _HEAD = struct.Struct("<IQ")

    def __init__(self) -> None:
        self.file = _anonymous_file()

    def add(self, number: int, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self.file.write(self._HEAD.pack(number, len(data)))
        self.file.write(data)

    def __iter__(self) -> Iterator[tuple[int, str]]:
        self.file.flush()
        self.file.seek(0)
        while head := self.file.read(self._HEAD.size):
            number, size = self._HEAD.unpack(head)
            yield number, self.file.read(size).decode("utf-8", "surrogatepass")

    def close(self) -> None:
        self.file.close()


def _anonymous_file() -> BinaryIO:
    try:
        fd = os.memfd_create("ovlinspect", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        import tempfile

        return tempfile.TemporaryFile()
    return open(fd, "w+b")


def _merged(streams: list[_Records]) -> Iterator[str]:
    """The rendered namespaces of every stream, in group order; the streams are closed after."""
    try:
        if len(streams) == 1:
            merged: Iterable[tuple[int, str]] = streams[0]
        else:
            import heapq

            merged = heapq.merge(*streams, key=lambda item: item[0])
        for _number, text in merged:
            yield text
    finally:
        for stream in streams:
            stream.close()


class _Helper:
    """A forked child that analyses and renders a share of the namespaces into its own record
    stream, then reports its scan errors and the pids it saw in a second one (each error
    numbered by its group, then one ``_STATUS`` record of the pids)."""

    def __init__(self, pid: int, records: _Records, status: _Records) -> None:
        self.pid = pid
        self.records = records
        self.status = status

    @classmethod
    def start(cls, scanner: Scanner, share: list[tuple[int, Group]],
              render: Callable[[Namespace], str]) -> _Helper | None:
        records, status = _Records(), _Records()
        try:
            pid = os.fork()
        except OSError:
            records.close()
            status.close()
            return None
        if pid == 0:  # the child: never returns
            code = 1
            try:
                errors: list[tuple[int, str]] = []
                seen: set[int] = set()
                scanner._render_share(share, render, errors, seen, records)
                records.file.flush()
                for number, text in errors:
                    status.add(number, text)
                status.add(_STATUS, " ".join(map(str, sorted(seen))))
                status.file.flush()
                code = 0
            finally:
                os._exit(code)
        return cls(pid, records, status)

    def finish(self) -> tuple[_Records, list[tuple[int, str]], list[int]] | None:
        """Wait for the child: its records, errors and pids, or None when it failed."""
        try:
            _, code = os.waitpid(self.pid, 0)
        except ChildProcessError:
            code = -1
        try:
            items = list(self.status) if code == 0 else []
        except (struct.error, UnicodeDecodeError):
            items = []
        finally:
            self.status.close()
        if not items or items[-1][0] != _STATUS:
            self.records.close()
            return None
        seen = [int(pid) for pid in items[-1][1].split()]
        return self.records, items[:-1], seen

    def abandon(self) -> None:
        """Stop the child (the scan was interrupted) and release its files."""
        import signal

        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.records.close()
        self.status.close()


def scan_rendered(pids: list[int] | None, render: Callable[[Namespace], str],
                  jobs: int | None = None) -> tuple[Scan, Iterator[str]]:
    """:func:`scan`, for a report written namespace by namespace: each namespace is passed to
    ``render`` as soon as it is analysed and only its text is kept (in an anonymous file, not
    in memory).  Returns the scan without its namespaces (its errors and privileges are
    complete) and the rendered namespaces in the order :func:`scan` lists them.

    On a machine with two cores or more and many namespaces, a forked child analyses every
    other namespace meanwhile; the result is the same as one process's, to the byte.
    """
    for pid in pids or []:
        if pid <= 0:
            raise ScanError(f"not a process id: {pid}")
    return Scanner().run_rendered(pids, render, jobs)


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
