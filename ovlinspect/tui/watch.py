"""Wake up when a mount namespace's mount table changes, as ``findmnt --poll`` does.

``/proc/PID/mountinfo`` signals POLLPRI|POLLERR once per change of the mount table of PID's
namespace (fs/proc_namespace.c: mounts_poll).  :class:`MountWatcher` keeps one fd per watched
process and runs its loop in a thread; it has no textual imports.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterable

CHANGE = select.POLLPRI | select.POLLERR
MAX_FDS = 512


class MountWatcher:
    """Poll the mountinfo of a changing set of pids and report which ones changed."""

    def __init__(self, proc: str = "/proc", max_fds: int = MAX_FDS) -> None:
        self._proc = proc
        self._max_fds = max_fds
        self._lock = threading.Lock()
        self._wanted: frozenset[int] = frozenset()
        self._stopped = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def set_pids(self, pids: Iterable[int]) -> None:
        """Watch these pids from now on (one per namespace is enough); thread-safe."""
        with self._lock:
            self._wanted = frozenset(sorted(set(pids))[: self._max_fds])
        self._wake()

    def stop(self) -> None:
        """Make :meth:`run` return soon; thread-safe."""
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # pipe full (already woken) or closed (stopped)
            os.write(self._wake_w, b"x")

    def run(
        self,
        on_change: Callable[[list[int]], None],
        cancelled: Callable[[], bool] = lambda: False,
        timeout: float = 1.0,
    ) -> None:
        """Loop until :meth:`stop` or ``cancelled()``, calling ``on_change(pids)`` per change."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        fds: dict[int, int] = {}  # pid -> fd
        pids: dict[int, int] = {}  # fd -> pid
        try:
            while not (self._stopped or cancelled()):
                with self._lock:
                    wanted = self._wanted
                for pid in [p for p in fds if p not in wanted]:
                    fd = fds.pop(pid)
                    del pids[fd]
                    poller.unregister(fd)
                    os.close(fd)
                for pid in wanted - fds.keys():
                    try:
                        fd = os.open(f"{self._proc}/{pid}/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
                    except OSError:
                        continue
                    fds[pid], pids[fd] = fd, pid
                    poller.register(fd, CHANGE)
                changed: list[int] = []
                for fd, events in poller.poll(timeout * 1000):
                    if fd == self._wake_r:
                        self._drain()
                    elif events & CHANGE and fd in pids:
                        changed.append(pids[fd])
                if changed and not (self._stopped or cancelled()):
                    on_change(sorted(changed))
        finally:
            for fd in fds.values():
                os.close(fd)

    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 512):
                pass

    def close(self) -> None:
        """Release the wake-up pipe (after :meth:`run` has returned)."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
