"""Follow the mount tables of mount namespaces: which namespace changed, appeared or is gone.

Backends, per namespace (no textual imports; the loop runs in the caller's thread):

- ``fanotify`` (6.15+): one ``FAN_REPORT_MNT`` group, one ``FAN_MARK_MNTNS`` mark per namespace.
  Events carry unique mount ids but no namespace: a detached or moved id is found in the ids last
  listed per namespace; a new id by listing the watched namespaces again (listmount, a few µs
  each).  The mark does not pin the namespace; when it dies, its mounts are reported detached and
  listmount says ENOENT, so the namespace is reported gone at once.
- ``pollpri``: ``/proc/PID/mountinfo`` signals POLLPRI|POLLERR once per change of the namespace's
  mount table (fs/proc_namespace.c: mounts_poll), without saying what changed.  The open file
  holds a reference on the namespace (mounts_open_common), so it is closed as soon as the
  namespace has no process left.

The kernel has no event for a new mount namespace: a cheap scan of ``/proc/*/ns/mnt`` every
``discover`` seconds finds new namespaces and namespaces whose processes are all gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from ovlinspect.kernel.mntnotify import MountNotifier, listmount, mntns_id

CHANGE = select.POLLPRI | select.POLLERR
MAX_FDS = 512
DISCOVER = 1.0

Backend = Literal["auto", "fanotify", "pollpri"]
Kind = Literal["mounts", "appeared", "gone"]


@dataclass(frozen=True)
class NsChange:
    """What happened to one mount namespace.

    ``ns`` is the inode of ``/proc/PID/ns/mnt`` (``Namespace.mnt_ns``); ``pid`` a process of it
    to scan from (for ``gone``, the last one known).  With ``exact`` (fanotify), ``attached`` and
    ``detached`` list every unique mount id that came or went (a move is in both); without it,
    something changed and the whole table must be read again.
    """

    ns: int
    pid: int
    kind: Kind
    attached: tuple[int, ...] = ()
    detached: tuple[int, ...] = ()
    exact: bool = False


def namespaces(proc: str = "/proc") -> dict[int, list[int]]:
    """Every mount namespace with live processes: ns inode -> its pids, ascending."""
    out: dict[int, list[int]] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            try:
                ns = os.stat(f"{proc}/{name}/ns/mnt").st_ino
            except OSError:
                continue  # gone, a zombie, or hidden from us
            out.setdefault(ns, []).append(int(name))
    for pids in out.values():
        pids.sort()
    return out


def _ns_of(proc: str, pid: int) -> int | None:
    try:
        return os.stat(f"{proc}/{pid}/ns/mnt").st_ino
    except OSError:
        return None


@dataclass
class _Marked:
    nsid: int
    ids: set[int] = field(default_factory=set)


class _Fanotify:
    """One fanotify group; per namespace its 64-bit id and the mount ids listed last."""

    def __init__(self, proc: str) -> None:
        self.proc = proc
        self.notifier = MountNotifier()
        self.marked: dict[int, _Marked] = {}  # ns inode -> mark
        self.owner: dict[int, int] = {}  # mount id -> ns inode

    def add(self, ns: int, pid: int) -> str | None:
        """Mark ``ns`` through ``pid``; why that cannot be done (use the fallback), or None."""
        try:
            fd = os.open(f"{self.proc}/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            return f"pid {pid}: {exc.strerror}"
        try:
            if os.fstat(fd).st_ino != ns:
                return f"pid {pid} left the namespace"
            return self._mark(ns, fd)
        finally:
            os.close(fd)  # the mark must not keep the namespace alive

    def _mark(self, ns: int, fd: int) -> str | None:
        try:
            self.notifier.mark(fd)
        except OSError as exc:
            return exc.strerror or str(exc)
        try:
            mark = _Marked(mntns_id(fd))
            self.marked[ns] = mark
            if self._relist(ns, mark) is not None:
                return None
            why = "the namespace is gone"
        except OSError as exc:
            why = exc.strerror or str(exc)
        self.marked.pop(ns, None)
        with contextlib.suppress(OSError):
            self.notifier.mark(fd, remove=True)
        return why

    def remove(self, ns: int, pid: int) -> None:
        """Stop watching ``ns`` (the mark goes by itself when the namespace dies)."""
        mark = self.marked.pop(ns, None)
        if mark is None:
            return
        for mnt in mark.ids:
            self.owner.pop(mnt, None)
        with contextlib.suppress(OSError):
            fd = os.open(f"{self.proc}/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if os.fstat(fd).st_ino == ns:
                    self.notifier.mark(fd, remove=True)
            finally:
                os.close(fd)

    def _relist(self, ns: int, mark: _Marked) -> set[int] | None:
        """List ``ns`` again; the new ids, or None when the namespace no longer exists."""
        try:
            ids = set(listmount(mark.nsid))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        for mnt in mark.ids - ids:
            self.owner.pop(mnt, None)
        for mnt in ids:
            self.owner[mnt] = ns
        new = ids - mark.ids
        mark.ids = ids
        return new

    def read(self) -> tuple[dict[int, tuple[set[int], set[int]]], set[int], bool]:
        """Drain the queue: ns -> (attached, detached), namespaces that died, and whether the
        queue overflowed (every namespace must then be read again)."""
        changed: dict[int, tuple[set[int], set[int]]] = {}
        unknown: list[int] = []
        overflow = False
        for event in self.notifier.read():
            if event.overflow:
                overflow = True
                continue
            ns = self.owner.get(event.mnt_id)
            if ns is None:
                unknown.append(event.mnt_id)
                continue
            attached, detached = changed.setdefault(ns, (set(), set()))
            if event.detached:
                detached.add(event.mnt_id)
            if event.attached:
                attached.add(event.mnt_id)
        dead: set[int] = set()
        todo = list(self.marked) if unknown or overflow else list(changed)
        for ns in todo:
            new = self._relist(ns, self.marked[ns])
            if new is None:
                dead.add(ns)
            elif new or ns in changed:
                changed.setdefault(ns, (set(), set()))[0].update(new)
        return changed, dead, overflow

    def close(self) -> None:
        self.notifier.close()


class MountWatcher:
    """Watch a set of mount namespaces (named by any of their pids) and report changes.

    ``backend`` picks fanotify or POLLPRI (``auto``: fanotify where the kernel has it, POLLPRI
    for a namespace it cannot mark).  With ``follow_all``, every namespace on the host is watched
    and new ones are reported ``appeared``; namespaces given by :meth:`set_pids` before that are
    not.  ``discover`` is the period of the /proc scan (None: no scan, nothing is ever reported
    appeared or gone).
    """

    def __init__(self, proc: str = "/proc", max_fds: int = MAX_FDS, *, backend: Backend = "auto",
                 follow_all: bool = False, discover: float | None = DISCOVER) -> None:
        self._proc = proc
        self._max_fds = max_fds
        self._backend = backend
        self._follow_all = follow_all
        self._discover = discover
        self._lock = threading.Lock()
        self._wanted: dict[int, int] | None = None  # pid -> ns, None before set_pids
        self._generation = 0
        self._stopped = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.backends: dict[int, str] = {}
        """Which backend watches each namespace (ns inode -> "fanotify" or "pollpri")."""
        self.fallback_reason: str | None = None
        """Why fanotify was not used, the last time it could not be (None: it always was)."""

    def set_pids(self, pids: Iterable[int]) -> None:
        """Watch the namespaces of these pids from now on (one mark per namespace); thread-safe."""
        chosen = sorted(set(pids))
        resolved = {pid: ns for pid in chosen if (ns := _ns_of(self._proc, pid)) is not None}
        with self._lock:
            self._wanted = resolved
            self._generation += 1
        self._wake()

    def stop(self) -> None:
        """Make :meth:`run` return soon; thread-safe."""
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # pipe full (already woken) or closed (stopped)
            os.write(self._wake_w, b"x")

    def run(self, on_change: Callable[[list[int]], None],
            cancelled: Callable[[], bool] = lambda: False, timeout: float = 1.0) -> None:
        """Like :meth:`follow`, reporting only the pids of the namespaces that changed."""
        self.follow(lambda changes: on_change(sorted({c.pid for c in changes})), cancelled,
                    timeout)

    def follow(self, on_changes: Callable[[list[NsChange]], None],
               cancelled: Callable[[], bool] = lambda: False, timeout: float = 1.0) -> None:
        """Loop until :meth:`stop` or ``cancelled()``, calling ``on_changes`` once per batch."""
        _Loop(self, on_changes, cancelled, timeout).run()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 512):
                pass

    def close(self) -> None:
        """Release the wake-up pipe (after :meth:`run` has returned)."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Loop:
    """One run of a watcher: its fds, marks and the namespaces it knows."""

    def __init__(self, watcher: MountWatcher, on_changes: Callable[[list[NsChange]], None],
                 cancelled: Callable[[], bool], timeout: float) -> None:
        self.w = watcher
        self.on_changes = on_changes
        self.cancelled = cancelled
        self.timeout = timeout
        self.poller = select.poll()
        self.fan: _Fanotify | None = None
        self.fds: dict[int, int] = {}  # ns -> mountinfo fd (pollpri)
        self.fd_ns: dict[int, int] = {}  # mountinfo fd -> ns
        self.watched: dict[int, int] = {}  # ns -> pid
        self.seen: set[int] | None = None  # namespaces known to the caller (follow_all)
        self.generation = -1
        self.next_discovery = 0.0

    def run(self) -> None:
        w = self.w
        self.poller.register(w._wake_r, select.POLLIN)
        if w._backend != "pollpri":
            try:
                self.fan = _Fanotify(w._proc)
                self.poller.register(self.fan.notifier.fd, select.POLLIN)
            except OSError as exc:
                w.fallback_reason = exc.strerror or str(exc)
                if w._backend == "fanotify":
                    raise
        try:
            while not self._done():
                changes = self._sync()
                changes += self._wait()
                if changes and not self._done():
                    self.on_changes(changes)
        finally:
            for fd in self.fds.values():
                os.close(fd)
            if self.fan is not None:
                self.fan.close()
            w.backends.clear()

    def _done(self) -> bool:
        return self.w._stopped or self.cancelled()

    def _sync(self) -> list[NsChange]:
        """Apply a new set_pids, and the periodic discovery of namespaces."""
        w = self.w
        with w._lock:
            wanted, generation = w._wanted, w._generation
        if wanted is None:
            return []
        changes: list[NsChange] = []
        if generation != self.generation:
            self.generation = generation
            target = {ns: pid for pid, ns in sorted(wanted.items(), reverse=True)}
            if self.seen is None:
                self.seen = set(target)
            else:
                self.seen |= set(target)
            if w._follow_all:
                target = {**self.watched, **target}
            self._retarget(target)
        if w._discover is not None and time.monotonic() >= self.next_discovery:
            self.next_discovery = time.monotonic() + w._discover
            changes += self._discover()
        return changes

    def _discover(self) -> list[NsChange]:
        alive = namespaces(self.w._proc)
        changes = [NsChange(ns, pid, "gone") for ns, pid in self.watched.items()
                   if ns not in alive]
        # a namespace keeps being named by a live pid of it (its first one may have exited)
        target = {ns: pid if pid in alive[ns] else alive[ns][0]
                  for ns, pid in self.watched.items() if ns in alive}
        if self.w._follow_all and self.seen is not None:
            for ns, pids in alive.items():
                if ns not in self.seen:
                    self.seen.add(ns)
                    changes.append(NsChange(ns, pids[0], "appeared"))
                    target[ns] = pids[0]
        self._retarget(target)
        return changes

    def _retarget(self, target: dict[int, int]) -> None:
        for ns in [ns for ns in self.watched if ns not in target]:
            self._unwatch(ns)
        for ns, pid in target.items():
            if ns not in self.watched:
                self._watch(ns, pid)
            self.watched[ns] = pid

    def _watch(self, ns: int, pid: int) -> None:
        if self.fan is not None:
            why = self.fan.add(ns, pid)
            if why is None:
                self.w.backends[ns] = "fanotify"
                return
            self.w.fallback_reason = why
            if self.w._backend == "fanotify":
                return
        if len(self.fds) >= self.w._max_fds:
            return
        try:
            fd = os.open(f"{self.w._proc}/{pid}/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        self.fds[ns], self.fd_ns[fd] = fd, ns
        self.poller.register(fd, CHANGE)
        self.w.backends[ns] = "pollpri"

    def _unwatch(self, ns: int) -> None:
        pid = self.watched.pop(ns)
        self.w.backends.pop(ns, None)
        if self.fan is not None:
            self.fan.remove(ns, pid)
        fd = self.fds.pop(ns, None)
        if fd is not None:
            del self.fd_ns[fd]
            self.poller.unregister(fd)
            os.close(fd)

    def _wait(self) -> list[NsChange]:
        wait = self.timeout
        if self.w._discover is not None and self.seen is not None:  # not before set_pids
            wait = max(0.0, min(wait, self.next_discovery - time.monotonic()))
        changed: dict[int, NsChange] = {}
        fan_ready = False
        for fd, events in self.poller.poll(wait * 1000):
            if fd == self.w._wake_r:
                self.w._drain()
            elif self.fan is not None and fd == self.fan.notifier.fd:
                fan_ready = True
            elif events & CHANGE and fd in self.fd_ns:
                ns = self.fd_ns[fd]
                changed[ns] = NsChange(ns, self.watched[ns], "mounts")
        if fan_ready and self.fan is not None:
            by_ns, dead, overflow = self.fan.read()
            for ns, (attached, detached) in by_ns.items():
                if ns in self.watched and ns not in dead:
                    changed[ns] = NsChange(ns, self.watched[ns], "mounts", tuple(sorted(attached)),
                                           tuple(sorted(detached)), exact=not overflow)
            for ns in dead & self.watched.keys():
                changed[ns] = NsChange(ns, self.watched[ns], "gone")
                self._unwatch(ns)
            if overflow:
                for ns in self.fan.marked.keys() - changed.keys():
                    changed[ns] = NsChange(ns, self.watched[ns], "mounts")
        return list(changed.values())
