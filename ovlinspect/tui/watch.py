"""Follow the mount tables of mount namespaces: which namespace changed, appeared or is gone.

Backends, per namespace (no textual imports; the loop runs in the caller's thread):

- ``fanotify`` (6.15+): one ``FAN_REPORT_MNT`` group, one ``FAN_MARK_MNTNS`` mark per namespace.
  Events carry unique mount ids but no namespace: a detached or moved id is found in the ids last
  listed per namespace; a new id by listing the watched namespaces again (listmount, a few µs
  each).  The mark does not pin the namespace; when it dies, its mounts are reported detached and
  listmount says ENOENT, so the namespace is reported gone at once.  An event buffer that cannot
  be parsed, or a read error, ends fanotify for the run (``auto``: every namespace goes to
  POLLPRI; ``fanotify``: a new group is made); a listmount error moves that namespace to POLLPRI.
  Either way the namespaces concerned are reported changed, inexactly.
- ``pollpri``: ``/proc/PID/mountinfo`` signals POLLPRI|POLLERR once per change of the namespace's
  mount table (fs/proc_namespace.c: mounts_poll), without saying what changed.  The open file
  holds a reference on the namespace (mounts_open_common), so it is closed as soon as the
  namespace has no process left.

A namespace is named by the inode of ``/proc/PID/ns/mnt``, but the kernel gives a freed inode
number to the next namespace made (four ``unshare -m`` in a row get the same one), and a fanotify
mark does not keep the namespace alive.  Its identity is therefore (inode, 64-bit ``mntns_id``,
never reused; NS_GET_MNTNS_ID, 6.12+).  The id is read when a namespace is first watched and when
the pid naming it changes (that pid died, or the caller named another); when it differs, the
namespace watched is reported ``gone`` and the new one ``appeared`` (in that order, in one batch)
and is watched afresh.  While the pid naming a namespace lives and stays in it, no id is read.

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

from ovlinspect.kernel.mntnotify import EventFormatError, MountNotifier, listmount, mntns_id

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
    something changed and the whole table must be read again.  A ``gone`` followed by an
    ``appeared`` of the same ``ns`` in one batch means that another namespace took the inode of
    the one that died.
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


def _nsid(proc: str, pid: int, ns: int) -> int | None:
    """The 64-bit id of the mount namespace of ``pid`` if its inode is still ``ns``; 0 when the
    id cannot be read (kernel before 6.12); None when ``pid`` is gone or in another namespace."""
    try:
        fd = os.open(f"{proc}/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_ino != ns:
            return None
        try:
            return mntns_id(fd)
        except OSError:
            return 0
    finally:
        os.close(fd)


@dataclass
class _Marked:
    nsid: int
    ids: set[int] = field(default_factory=set)


@dataclass
class _Batch:
    """What one read of the fanotify queue says."""

    changed: dict[int, tuple[set[int], set[int]]]  # ns -> (attached, detached)
    dead: set[int]  # namespaces that no longer exist
    overflow: bool  # events were lost: every namespace must be read again
    failed: dict[int, str]  # ns -> why listing it failed (not ENOENT)


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
        self._forget(ns)
        with contextlib.suppress(OSError):
            self.notifier.mark(fd, remove=True)
        return why

    def remove(self, ns: int, pid: int) -> None:
        """Stop watching ``ns``.  The mark goes by itself when the namespace dies; it is removed
        here only when ``pid`` is still in that very namespace (same inode and id), so that the
        mark of another namespace that took the inode is never touched."""
        mark = self._forget(ns)
        if mark is None:
            return
        with contextlib.suppress(OSError):
            fd = os.open(f"{self.proc}/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if os.fstat(fd).st_ino == ns and mntns_id(fd) == mark.nsid:
                    self.notifier.mark(fd, remove=True)
            finally:
                os.close(fd)

    def _forget(self, ns: int) -> _Marked | None:
        mark = self.marked.pop(ns, None)
        if mark is not None:
            for mnt in mark.ids:
                if self.owner.get(mnt) == ns:
                    del self.owner[mnt]
        return mark

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

    def read(self) -> _Batch:
        """Drain the queue.  Raises :class:`EventFormatError` (or ``OSError``) when the queue
        cannot be read: the events are lost then."""
        batch = _Batch({}, set(), False, {})
        unknown: list[int] = []
        for event in self.notifier.read():
            if event.overflow:
                batch.overflow = True
                continue
            ns = self.owner.get(event.mnt_id)
            if ns is None:
                unknown.append(event.mnt_id)
                continue
            attached, detached = batch.changed.setdefault(ns, (set(), set()))
            if event.detached:
                detached.add(event.mnt_id)
            if event.attached:
                attached.add(event.mnt_id)
        todo = list(self.marked) if unknown or batch.overflow else list(batch.changed)
        for ns in todo:
            try:
                new = self._relist(ns, self.marked[ns])
            except OSError as exc:
                batch.failed[ns] = exc.strerror or str(exc)
                batch.changed.pop(ns, None)
                continue
            if new is None:
                batch.dead.add(ns)
                batch.changed.pop(ns, None)
            elif new or ns in batch.changed:
                batch.changed.setdefault(ns, (set(), set()))[0].update(new)
        return batch

    def close(self) -> None:
        self.notifier.close()


class MountWatcher:
    """Watch a set of mount namespaces (named by any of their pids) and report changes.

    ``backend`` picks fanotify or POLLPRI (``auto``: fanotify where the kernel has it, POLLPRI
    for a namespace it cannot mark).  With ``follow_all``, every namespace on the host is watched
    and new ones are reported ``appeared``; namespaces given by :meth:`set_pids` before that are
    not.  ``discover`` is the period of the /proc scan (None: no scan, nothing is ever reported
    appeared, and gone only through fanotify).

    :meth:`close` releases the wake-up pipe; after it :meth:`set_pids` and :meth:`stop` do
    nothing and :meth:`follow` raises ``ValueError``.  Closing while :meth:`follow` runs in
    another thread stops it, and the pipe is released when it returns.
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
        self._closed = False
        self._running = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.backends: dict[int, str] = {}
        """Which backend watches each namespace (ns inode -> "fanotify" or "pollpri")."""
        self.fallback_reason: str | None = None
        """Why fanotify was not used, the last time it could not be (None: it always was)."""
        self.last_error: str | None = None
        """The last error the loop met: one it survived (a fanotify event buffer it could not
        parse, a failed listmount: the namespaces concerned were reported changed), or the one
        that ended :meth:`follow` (which then raised it)."""

    def set_pids(self, pids: Iterable[int]) -> None:
        """Watch the namespaces of these pids from now on (one mark per namespace); thread-safe.
        Does nothing once the watcher is closed."""
        chosen = sorted(set(pids))
        resolved = {pid: ns for pid in chosen if (ns := _ns_of(self._proc, pid)) is not None}
        with self._lock:
            if self._closed:
                return
            self._wanted = resolved
            self._generation += 1
            self._wake_locked()

    def stop(self) -> None:
        """Make :meth:`follow` return soon; thread-safe."""
        with self._lock:
            self._stopped = True
            self._wake_locked()

    def _wake_locked(self) -> None:
        """Wake the loop (the lock held: :meth:`close` cannot close the pipe meanwhile, and a
        closed pipe's fd, -1, is never written: its number may belong to another file now)."""
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):  # pipe full: already woken
                os.write(self._wake_w, b"x")

    def run(self, on_change: Callable[[list[int]], None],
            cancelled: Callable[[], bool] = lambda: False, timeout: float = 1.0) -> None:
        """Like :meth:`follow`, reporting only the pids of the namespaces that changed."""
        self.follow(lambda changes: on_change(sorted({c.pid for c in changes})), cancelled,
                    timeout)

    def follow(self, on_changes: Callable[[list[NsChange]], None],
               cancelled: Callable[[], bool] = lambda: False, timeout: float = 1.0) -> None:
        """Loop until :meth:`stop`, :meth:`close` or ``cancelled()``, calling ``on_changes`` once
        per batch.  An error the loop cannot survive is kept in :attr:`last_error` and raised."""
        with self._lock:
            if self._closed:
                raise ValueError("follow() on a closed MountWatcher")
            if self._running:
                raise RuntimeError("this MountWatcher is already following")
            self._running = True
        try:
            _Loop(self, on_changes, cancelled, timeout).run()
        except Exception as exc:
            self.last_error = f"the watch loop ended: {type(exc).__name__}: {exc}"
            raise
        finally:
            with self._lock:
                self._running = False
                release = self._closed
            if release:
                self._release()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 512):
                pass

    def close(self) -> None:
        """Release the wake-up pipe (at once, or when a running :meth:`follow` returns)."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._stopped = True
            if self._running:
                self._wake_locked()
                return
        self._release()

    def _release(self) -> None:
        with self._lock:
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
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
        self.nsids: dict[int, int] = {}  # ns -> mntns_id of the namespace watched (0: unknown)
        self.seen: set[int] | None = None  # namespaces known to the caller (follow_all)
        self.generation = -1
        self.next_discovery = 0.0

    def run(self) -> None:
        w = self.w
        self.poller.register(w._wake_r, select.POLLIN)
        if w._backend != "pollpri":
            try:
                self._start_fanotify()
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

    def _start_fanotify(self) -> None:
        self.fan = _Fanotify(self.w._proc)
        self.poller.register(self.fan.notifier.fd, select.POLLIN)

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
            for ns in [ns for ns in self.watched if ns not in target and not w._follow_all]:
                self._unwatch(ns)
            for ns, pid in target.items():
                old = self.watched.get(ns)
                if old is None:
                    self._watch(ns, pid)
                elif old != pid and (nsid := _nsid(w._proc, pid, ns)) is not None:
                    changes += self._repoint(ns, pid, nsid, wanted=True)
        if w._discover is not None and time.monotonic() >= self.next_discovery:
            self.next_discovery = time.monotonic() + w._discover
            changes += self._discover()
        return changes

    def _discover(self) -> list[NsChange]:
        proc = self.w._proc
        alive = namespaces(proc)
        changes: list[NsChange] = []
        gone: set[int] = set()
        for ns, pid in list(self.watched.items()):
            pids = alive.get(ns, [])
            if pid in pids:
                continue  # still named by a live pid of it: the same namespace
            # another pid of the namespace, if it has one: which namespace is it now?
            found = next(((p, nsid) for p in pids
                          if (nsid := _nsid(proc, p, ns)) is not None), None)
            if found is None:  # (its last pids exited since the scan: gone, not new)
                changes.append(NsChange(ns, pid, "gone"))
                self._forget(ns)
                gone.add(ns)
            else:
                changes += self._repoint(ns, *found, wanted=False)
        if self.w._follow_all and self.seen is not None:
            for ns, pids in alive.items():
                if ns not in self.seen and ns not in gone:
                    self.seen.add(ns)
                    changes.append(NsChange(ns, pids[0], "appeared"))
                    self._watch(ns, pids[0])
        return changes

    def _repoint(self, ns: int, pid: int, nsid: int, *, wanted: bool) -> list[NsChange]:
        """Name ``ns`` by ``pid`` from now on (its namespace has the id ``nsid``).  When that is
        not the namespace watched under this inode, the old one is gone: report it, and watch
        the new one and report it appeared (when followed: ``follow_all``, or ``wanted`` by the
        caller's set_pids), else forget the inode."""
        known = self.nsids.get(ns, 0)
        old_pid = self.watched[ns]
        if nsid and known and nsid != known:
            changes = [NsChange(ns, old_pid, "gone")]
            self._unwatch(ns)
            if wanted or self.w._follow_all:
                self._watch(ns, pid)
                changes.append(NsChange(ns, pid, "appeared"))
            elif self.seen is not None:
                self.seen.discard(ns)
            return changes
        self.watched[ns] = pid
        if ns not in self.w.backends:  # its first watch failed (its pid died meanwhile?)
            self._watch(ns, pid)
        elif nsid and not known:
            self.nsids[ns] = nsid
        return []

    def _watch(self, ns: int, pid: int, *, fanotify: bool = True) -> None:
        self.watched[ns] = pid
        if self.fan is not None and fanotify:
            why = self.fan.add(ns, pid)
            if why is None:
                self.w.backends[ns] = "fanotify"
                self.nsids[ns] = self.fan.marked[ns].nsid
                return
            self.w.fallback_reason = why
            if self.w._backend == "fanotify":
                self.nsids[ns] = _nsid(self.w._proc, pid, ns) or 0
                return
        fd = -1
        if len(self.fds) < self.w._max_fds:
            with contextlib.suppress(OSError):  # open first: the open file pins the namespace
                fd = os.open(f"{self.w._proc}/{pid}/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        nsid = _nsid(self.w._proc, pid, ns)
        self.nsids[ns] = nsid or 0
        if fd < 0:
            return
        if nsid is None:  # pid gone or moved: the file may show another namespace
            os.close(fd)
            return
        self.fds[ns], self.fd_ns[fd] = fd, ns
        self.poller.register(fd, CHANGE)
        self.w.backends[ns] = "pollpri"

    def _unwatch(self, ns: int) -> None:
        pid = self.watched.pop(ns)
        self.nsids.pop(ns, None)
        self.w.backends.pop(ns, None)
        if self.fan is not None:
            self.fan.remove(ns, pid)
        fd = self.fds.pop(ns, None)
        if fd is not None:
            del self.fd_ns[fd]
            self.poller.unregister(fd)
            os.close(fd)

    def _forget(self, ns: int) -> None:
        """A namespace reported gone: unwatched, and no longer known to the caller (another
        namespace may take its inode and must then be reported appeared)."""
        self._unwatch(ns)
        if self.seen is not None:
            self.seen.discard(ns)

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
        out: list[NsChange] = []
        if fan_ready and self.fan is not None:
            try:
                batch = self.fan.read()
            except (EventFormatError, OSError) as exc:
                out += self._fanotify_failed(f"fanotify: {exc}", changed)
            else:
                out += self._fanotify_batch(batch, changed)
        return out + list(changed.values())

    def _fanotify_batch(self, batch: _Batch, changed: dict[int, NsChange]) -> list[NsChange]:
        assert self.fan is not None
        for ns, (attached, detached) in batch.changed.items():
            if ns in self.watched:
                changed[ns] = NsChange(ns, self.watched[ns], "mounts", tuple(sorted(attached)),
                                       tuple(sorted(detached)), exact=not batch.overflow)
        gone: list[NsChange] = []
        for ns in batch.dead & self.watched.keys():
            changed.pop(ns, None)
            gone.append(NsChange(ns, self.watched[ns], "gone"))
            self._forget(ns)
        for ns, why in batch.failed.items():
            if ns not in self.watched:
                continue
            self.w.last_error = f"namespace {ns}: {why}"
            changed[ns] = NsChange(ns, self.watched[ns], "mounts")
            if self.w._backend == "fanotify":
                continue  # no fallback allowed: listed again at its next event
            self.w.fallback_reason = self.w.last_error
            self.fan.remove(ns, self.watched[ns])
            self.w.backends.pop(ns, None)
            self._watch(ns, self.watched[ns], fanotify=False)
        if batch.overflow:
            for ns in self.fan.marked.keys() - changed.keys():
                changed[ns] = NsChange(ns, self.watched[ns], "mounts")
        return gone

    def _fanotify_failed(self, why: str, changed: dict[int, NsChange]) -> list[NsChange]:
        """The fanotify queue could not be read: its events are lost.  Drop the group; watch its
        namespaces by POLLPRI (``auto``) or by a new group (``fanotify``), and report each
        changed (or gone and appeared, when another namespace took its inode meanwhile)."""
        assert self.fan is not None
        self.w.fallback_reason = self.w.last_error = why
        old, self.fan = self.fan, None
        self.poller.unregister(old.notifier.fd)
        old.close()
        if self.w._backend == "fanotify":
            self._start_fanotify()  # an OSError here ends the loop: nothing else may watch
        out: list[NsChange] = []
        for ns in list(old.marked):
            pid, known = self.watched[ns], self.nsids.get(ns, 0)
            changed.pop(ns, None)
            self.w.backends.pop(ns, None)
            self._watch(ns, pid)
            nsid = self.nsids.get(ns, 0)
            if nsid and known and nsid != known:
                out += [NsChange(ns, pid, "gone"), NsChange(ns, pid, "appeared")]
            else:
                out.append(NsChange(ns, pid, "mounts"))
        return out
