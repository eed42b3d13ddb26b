"""Paths as a process sees them: the overlay serving each, and where the object comes from."""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager

from ovlinspect.engine.scan import context_for
from ovlinspect.engine.state import NamespaceContext
from ovlinspect.host.processes import OVERLAY_TYPES
from ovlinspect.host.view import View
from ovlinspect.kernel.syscalls import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, fd_mount_id, openat2
from ovlinspect.mounts.mountinfo import MountEntry
from ovlinspect.provenance.classify import classify
from ovlinspect.provenance.result import Provenance
from ovlinspect.provenance.session import Session, open_session


class ProvenanceError(Exception):
    """A path or process that cannot be answered for; the message is for the user."""


class Inspector:
    """One process's view and mount table; overlays are analysed once, on first use."""

    def __init__(self, pid: int, ctx: NamespaceContext, mounts: list[MountEntry]) -> None:
        self.pid = pid
        self.ctx = ctx
        self.by_id = {m.mount_id: m for m in mounts}
        self.sessions: dict[int, Session] = {}

    @property
    def view(self) -> View:
        """The process's view (its root)."""
        if self.ctx.view is None:
            raise ProvenanceError(self.ctx.no_view_reason or f"cannot look into pid {self.pid}")
        return self.ctx.view

    def session(self, mount_id: int) -> Session | None:
        """The analysed overlay mount ``mount_id`` (None when it is not an overlay)."""
        if mount_id in self.sessions:
            return self.sessions[mount_id]
        entry = self.by_id.get(mount_id)
        if entry is None or entry.fs_type != "overlay":
            return None
        try:
            self.sessions[mount_id] = open_session(entry, self.ctx)
        except OSError as exc:
            raise ProvenanceError(f"the overlay at {entry.mount_point} could not be analysed: "
                                  f"{exc.strerror or exc}") from None
        return self.sessions[mount_id]

    def close(self) -> None:
        """Close every session."""
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()

    def rel_in(self, session: Session, path: str) -> str | None:
        """``path`` (canonical, in the view) below the overlay root; None if outside the mount."""
        point = session.entry.mount_point
        if path == point:
            inner = ""
        elif path.startswith(point.rstrip("/") + "/"):
            inner = path[len(point.rstrip("/")) + 1:]
        else:
            return None
        if not session.prefix:
            return inner
        return posixpath.join(session.prefix, inner) if inner else session.prefix

    def which(self, path: str) -> Provenance:
        """Provenance of ``path`` (relative ones from the process's cwd); the final component
        is not followed if it is a symlink."""
        base = self.ctx.cwd or "/"
        parent, name = posixpath.split(path.rstrip("/") or "/")
        if name in ("", ".", ".."):
            parent, name = path, ""
        res = self.view.resolve(parent or ".", base)
        if res.fd is None:
            raise ProvenanceError(f"{path}: {res.error}")
        try:
            assert res.path is not None
            fd = self._final(res.fd, name)
            full = posixpath.join(res.path, name) if name else res.path
            try:
                return self._place(path, full, fd, res.fd, name)
            finally:
                if fd is not None:
                    os.close(fd)
        finally:
            res.close()

    def _final(self, parent_fd: int, name: str) -> int | None:
        """The final component, not followed; None when absent."""
        if not name:
            return os.dup(parent_fd)
        try:
            return openat2(parent_fd, name, os.O_PATH | os.O_NOFOLLOW,
                           RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise ProvenanceError(f"{name}: {exc.strerror}") from None
            return None

    def _place(self, shown: str, full: str, fd: int | None, parent_fd: int,
               name: str) -> Provenance:
        mount_id = fd_mount_id(fd if fd is not None else parent_fd)
        entry = self.by_id.get(mount_id) if mount_id is not None else None
        if entry is None or entry.fs_type not in OVERLAY_TYPES:
            what = f"{entry.fs_type} mount {entry.mount_point}" if entry else "an unknown mount"
            raise ProvenanceError(f"{shown}: not on an overlay (it is on {what})")
        session = self.session(entry.mount_id)
        if session is None:
            raise ProvenanceError(f"{shown}: on {entry.fs_type} at {entry.mount_point}, which "
                                  "carries no layer information")
        rel = self.rel_in(session, full)
        if rel is None:
            raise ProvenanceError(f"{shown}: resolves to {full}, outside its mount point "
                                  f"{entry.mount_point}")
        found = classify(session, rel, full, fd)
        if found is None:
            raise ProvenanceError(f"{shown}: no such file or directory (and no whiteout)")
        return found


@contextmanager
def inspector(pid: int) -> Iterator[Inspector]:
    """An :class:`Inspector` of ``pid`` (raises ScanError when the process is gone)."""
    with context_for(pid) as (ctx, mounts, _ns):
        ins = Inspector(pid, ctx, mounts)
        try:
            yield ins
        finally:
            ins.close()


def which(pid: int, paths: list[str]) -> tuple[list[Provenance], list[str]]:
    """Provenance of each path as ``pid`` sees it, and an error message per path that failed."""
    results: list[Provenance] = []
    errors: list[str] = []
    with inspector(pid) as ins:
        for path in paths:
            try:
                results.append(ins.which(path))
            except ProvenanceError as exc:
                errors.append(str(exc))
            except OSError as exc:  # the process or a layer changed under us
                errors.append(f"{path}: {exc.strerror or exc}")
    return results, errors
