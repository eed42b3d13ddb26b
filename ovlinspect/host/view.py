"""Resolve paths inside a process's view of the filesystem, never escaping its root.

A :class:`View` holds ``/proc/PID/root`` open.  Paths are walked one component at a time with
openat2 (``RESOLVE_BENEATH``/``RESOLVE_IN_ROOT``, no magic links), so an absolute symlink inside a
container leads back into the container's root, never to a host file, and every symlink met on the
way is recorded.
"""

from __future__ import annotations

import errno
import os
import re
from collections import deque

from ovlinspect.host.quietlink import QuietLinks
from ovlinspect.kernel.syscalls import (
    PROC_SUPER_MAGIC,
    RESOLVE_BENEATH,
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    fd_mount_id,
    fs_magic,
    openat2,
)
from ovlinspect.model import SymlinkStep

MAX_SYMLINKS = 40
PREFIX_CACHE = 65536
_STRICT = RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS
FD_PATH = re.compile(r"^/proc/(self|thread-self|\d+)(/task/\d+)?/fd/\d+/*$")


class ViewError(OSError):
    """A process's root cannot be opened (it exited, or we lack the right to look)."""


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Resolution:
    """Where a declared path leads in one view.  ``fd`` (O_PATH) belongs to the caller."""

    path: str | None = None
    fd: int | None = None
    symlinks: list[SymlinkStep]
    error: str | None = None
    errno: int | None = None

    def __init__(
        self,
        path: str | None = None,
        fd: int | None = None,
        symlinks: list[SymlinkStep] | None = None,
        error: str | None = None,
        errno: int | None = None,
    ) -> None:
        self.path = path
        self.fd = fd
        self.symlinks = [] if symlinks is None else symlinks
        self.error = error
        self.errno = errno

    def close(self) -> None:
        """Release the fd, if any."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def is_fd_path(path: str) -> bool:
    """A layer given by file descriptor (``/proc/self/fd/N``) or a detached mount's ``/``."""
    return path == "/" or bool(FD_PATH.match(path))


def _split(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


class View:
    """The filesystem as process ``pid`` sees it, reached through ``/proc/PID/root``."""

    def __init__(self, pid: int, root_fd: int | None = None) -> None:
        """The view of ``pid`` from ``/proc/PID/root``, or from ``root_fd`` (which it takes)."""
        self.pid = pid
        self._links = QuietLinks(pid)  # symlinks are read without changing their atime
        self._prefixes: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[SymlinkStep, ...]]] = {}
        if root_fd is not None:
            self.root_fd = root_fd
            return
        try:
            self.root_fd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise ViewError(exc.errno, f"cannot open /proc/{pid}/root: {exc.strerror}") from None

    def close(self) -> None:
        """Release the root fd and the read-only clones made to read symlinks."""
        self._links.close()
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def open(self, path: str, flags: int = os.O_PATH) -> int:
        """Open a canonical path (no symlinks allowed on the way) inside the view."""
        rel = path.lstrip("/") or "."
        return openat2(self.root_fd, rel, flags, RESOLVE_IN_ROOT | _STRICT)

    def open_mount(self, mount_point: str, mount_id: int) -> tuple[int | None, str | None]:
        """The root of mount ``mount_id``, or (None, why) when it is covered or unreachable."""
        try:
            fd = self.open(mount_point, os.O_PATH)
        except OSError as exc:
            return None, f"cannot open {mount_point}: {exc.strerror}"
        found = fd_mount_id(fd)
        if found != mount_id:
            os.close(fd)
            return None, f"mount {mount_id} is covered by mount {found} at this path"
        return fd, None

    def resolve(self, path: str, base: str = "/") -> Resolution:
        """Follow ``path`` (relative ones from ``base``) to an O_PATH fd, recording symlinks.

        Directory prefixes already resolved in this view are reused (one openat2 of their
        canonical path instead of a walk): layers of many overlays share long prefixes.
        """
        start = path if path.startswith("/") else f"{base.rstrip('/')}/{path}"
        parts = _split(start)
        done_upto, cur, links, fd = self._cached_prefix(parts)
        # Each pending part carries its index in the input, or -1 when a symlink put it there.
        todo: deque[tuple[str, int]] = deque(zip(parts[done_upto:],
                                                 range(done_upto, len(parts)), strict=True))
        batch = True  # the next run of plain names is tried in one openat2
        try:
            while todo:
                if batch:
                    nxt = self._plain_run(todo, fd, parts, cur, links)
                    if nxt is not None and nxt >= 0:
                        os.close(fd)
                        fd = nxt
                        continue
                    batch = nxt is None  # after a failed try, walk until the next symlink
                part, origin = todo.popleft()
                if part == "..":
                    if cur:
                        cur.pop()
                        os.close(fd)
                        fd = self.open("/".join(cur))
                    self._remember(parts, origin, todo, cur, links)
                    continue
                try:
                    # not os.readlink: readlinkat updates the link's atime (Docker's l/ names)
                    target = self._links.read(fd, part)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        return self._failed([*cur, part], exc, links)
                    nxt = openat2(fd, part, os.O_PATH, RESOLVE_BENEATH | _STRICT)
                    os.close(fd)
                    fd = nxt
                    cur.append(part)
                    self._remember(parts, origin, todo, cur, links)
                    continue
                here = "/" + "/".join([*cur, part])
                if fs_magic(fd) == PROC_SUPER_MAGIC:
                    return Resolution(symlinks=links, errno=errno.ELOOP,
                                      error=f"{here} is a /proc link that means nothing here")
                links.append(SymlinkStep(path=here, target=target))
                if len(links) > MAX_SYMLINKS:
                    return Resolution(symlinks=links, errno=errno.ELOOP,
                                      error="too many levels of symbolic links")
                if target.startswith("/"):
                    cur = []
                    os.close(fd)
                    fd = os.dup(self.root_fd)
                todo.extendleft(reversed([(p, -1) for p in _split(target)]))
                batch = True
                if not todo or todo[0][1] != -1:
                    self._remember(parts, origin, todo, cur, links)
            result = Resolution(path="/" + "/".join(cur), fd=fd, symlinks=links)
            fd = -1
            return result
        except OSError as exc:
            return self._failed(cur, exc, links)
        finally:
            if fd >= 0:
                os.close(fd)

    def _plain_run(self, todo: deque[tuple[str, int]], fd: int, parts: list[str],
                   cur: list[str], links: list[SymlinkStep]) -> int | None:
        """Open the pending names up to the next ``..`` in one openat2 that refuses symlinks:
        when none of them is a symlink (the usual case), that is the walk below in one syscall,
        and the same parts are consumed and cached.  Returns the fd of the run's end; None when
        fewer than two names are pending, -1 when the openat2 failed (a symlink or an error on
        the way, which the walk then meets part by part); nothing is consumed in either case."""
        run = 0
        for part, _origin in todo:
            if part == "..":
                break
            run += 1
        if run < 2:
            return None
        names = [todo[k][0] for k in range(run)]
        try:
            nxt = openat2(fd, "/".join(names), os.O_PATH, RESOLVE_BENEATH | _STRICT)
        except OSError:
            return -1
        for _ in range(run):
            part, origin = todo.popleft()
            cur.append(part)
            self._remember(parts, origin, todo, cur, links)
        return nxt

    def _cached_prefix(self, parts: list[str]) -> tuple[int, list[str], list[SymlinkStep], int]:
        """The longest resolved prefix of ``parts``: how many parts it covers, its canonical
        components, the symlinks met, and an fd of it (the root when nothing is cached)."""
        for n in range(len(parts) - 1, 0, -1):
            hit = self._prefixes.get(tuple(parts[:n]))
            if hit is None:
                continue
            canonical, links = hit
            try:
                fd = self.open("/".join(canonical))
            except OSError:
                break  # changed since: walk from the root
            return n, list(canonical), list(links), fd
        return 0, [], [], os.dup(self.root_fd)

    def _remember(self, parts: list[str], origin: int, todo: deque[tuple[str, int]],
                  cur: list[str], links: list[SymlinkStep]) -> None:
        """Input part ``origin`` is fully resolved (no symlink expansion pending): cache it."""
        if origin < 0 or (todo and todo[0][1] == -1):
            return
        if len(self._prefixes) < PREFIX_CACHE:
            self._prefixes[tuple(parts[: origin + 1])] = (tuple(cur), tuple(links))

    @staticmethod
    def _failed(parts: list[str], exc: OSError,
                links: list[SymlinkStep] | None = None) -> Resolution:
        where = "/" + "/".join(parts)
        return Resolution(symlinks=links or [], errno=exc.errno,
                          error=f"{where}: {exc.strerror or exc}")
