"""Compare two merged trees, bounded: names, types, modes, owners, sizes, symlink targets,
device numbers, and content hashes of regular files up to a size bound.

Whiteouts and opaque directories are not visible in a merged tree as such: what they do (a name
hidden, a lower directory's content hidden) shows as names missing or present, which is what is
compared.  Only reads: every file and directory is opened with ``O_NOATIME`` (falling back to a
plain open only where the kernel refuses it), symlinks are never followed.

As a user without CAP_DAC_READ_SEARCH some files and directories cannot be read (a rootless
container's files owned by its subordinate uids): they are compared by their metadata only,
counted in ``unreadable``, and never descended into.

The live tree may be written while it is compared (the rebuild reads the same layers, a little
later).  A name that is gone when it is read (ENOENT, ESTALE), or a difference whose live side
changed while it was compared (the entry's or its directory's inode, size, mtime or ctime), is
not a difference: the walk stops and says ``changed`` (``verified`` null).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
GONE = frozenset({errno.ENOENT, errno.ESTALE})  # a name read a moment ago is not there now


class LiveChanged(Exception):
    """The live tree changed under the comparison at ``path``."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


@dataclass
class Bounds:
    """How far a comparison goes."""

    max_entries: int = 100_000
    max_seconds: float = 30.0
    hash_limit: int = 1 << 20


def open_dir(dirfd: int, name: str = ".") -> int:
    """A directory opened for reading with ``O_NOATIME`` where allowed: overlayfs passes the
    flag on to the layer directories it reads (without it, listing a merged directory updates
    a layer directory's atime)."""
    return _open(dirfd, name, _DIR_FLAGS)


def _open(dirfd: int, name: str, flags: int) -> int:
    try:
        return os.open(name, flags | os.O_NOATIME, dir_fd=dirfd)
    except PermissionError:
        return os.open(name, flags, dir_fd=dirfd)


def _digest(dirfd: int, name: str) -> str:
    fd = _open(dirfd, name, _FILE_FLAGS)
    try:
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 16):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def _describe(dirfd: int, name: str,
              bounds: Bounds) -> tuple[dict[str, Any], os.stat_result]:
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    kind = stat.S_IFMT(st.st_mode)
    out: dict[str, Any] = {"type": oct(kind), "mode": oct(stat.S_IMODE(st.st_mode)),
                           "uid": st.st_uid, "gid": st.st_gid}
    if stat.S_ISREG(kind):
        out["size"] = st.st_size
        if st.st_size <= bounds.hash_limit:
            try:
                out["sha256"] = _digest(dirfd, name)
            except PermissionError:
                out["unreadable"] = True
    elif stat.S_ISLNK(kind):
        out["target"] = os.fsencode(os.readlink(name, dir_fd=dirfd)).hex()
    elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
        out["rdev"] = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return out, st


def _sig(st: os.stat_result) -> tuple[int, ...]:
    """What changes when an entry is written, replaced, or (a directory) gains or loses names."""
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_nlink, st.st_mtime_ns,
            st.st_ctime_ns)


def _still(dirfd: int, name: str | None, seen: tuple[int, ...]) -> bool:
    """Whether ``name`` in ``dirfd`` (``dirfd`` itself for None) is as ``seen``."""
    try:
        st = os.fstat(dirfd) if name is None else os.stat(name, dir_fd=dirfd,
                                                           follow_symlinks=False)
    except OSError:
        return False
    return _sig(st) == seen


def _names(fd: int) -> list[str]:
    return sorted(os.listdir(fd))


def compare_trees(live_fd: int, new_fd: int, bounds: Bounds) -> dict[str, Any]:
    """Walk both trees breadth-first in name order; stop at the first difference or a bound.

    Returns ``verified`` (True, False at a difference, None when a bound stopped it first),
    ``entries`` compared, ``stopped`` (null, ``"entries"`` or ``"time"``), ``where`` (the last
    path reached), ``difference`` (``{"path", "what", "live", "rebuilt"}``) and ``changed``
    (null, or ``{"path", "why"}`` when the live tree changed under the walk: ``verified`` null).
    Other ``OSError`` (EIO, ...) is raised.
    """
    start = time.monotonic()
    queue: deque[tuple[str, int, int]] = deque([("", os.dup(live_fd), os.dup(new_fd))])
    count = 0
    result: dict[str, Any] = {"verified": True, "entries": 0, "stopped": None, "where": "/",
                              "difference": None, "changed": None, "unreadable": 0,
                              "first_unreadable": None}
    try:
        while queue:
            rel, lfd, nfd = queue.popleft()
            try:
                diff = _compare_dir(rel, lfd, nfd, bounds, queue, result, start, count)
            except LiveChanged as exc:
                result["verified"] = None
                result["changed"] = {"path": exc.path, "why": exc.why}
                return result
            finally:
                os.close(lfd)
                os.close(nfd)
            count = result["entries"]
            if diff is not None:
                result["verified"] = False
                result["difference"] = diff
                return result
            if result["stopped"]:
                result["verified"] = None
                return result
    finally:
        for _rel, lfd, nfd in queue:
            os.close(lfd)
            os.close(nfd)
    result["seconds"] = round(time.monotonic() - start, 3)
    return result


def _compare_dir(rel: str, lfd: int, nfd: int, bounds: Bounds,
                 queue: deque[tuple[str, int, int]], result: dict[str, Any], start: float,
                 count: int) -> dict[str, Any] | None:
    here = f"/{rel}"
    try:
        seen = _sig(os.fstat(lfd))
        live, new = _names(lfd), _names(nfd)
    except OSError as exc:
        if exc.errno in GONE:
            raise LiveChanged(here, exc.strerror or str(exc)) from None
        raise
    if live != new:
        if not _still(lfd, None, seen):
            raise LiveChanged(here, "names changed while compared")
        only_live = sorted(set(live) - set(new))
        only_new = sorted(set(new) - set(live))
        name = (only_live or only_new)[0]
        return {"path": f"/{rel}{name}" if not rel else f"/{rel}/{name}", "what": "names",
                "live": name in only_live, "rebuilt": name in only_new}
    for name in live:
        path = f"/{rel}/{name}" if rel else f"/{name}"
        if count >= bounds.max_entries:
            result["stopped"], result["where"] = "entries", path
            return None
        if time.monotonic() - start > bounds.max_seconds:
            result["stopped"], result["where"] = "time", path
            return None
        count += 1
        result["entries"] = count
        result["where"] = path
        st = None
        try:
            a, st = _describe(lfd, name, bounds)
            b, _ = _describe(nfd, name, bounds)
            if a != b:
                if not (_still(lfd, name, _sig(st)) and _still(lfd, None, seen)):
                    raise LiveChanged(path, "changed while compared")
                what = next(k for k in ("type", "mode", "uid", "gid", "size", "target", "rdev",
                                        "sha256", "unreadable") if a.get(k) != b.get(k))
                return {"path": path, "what": what, "live": a.get(what),
                        "rebuilt": b.get(what)}
            if a.get("unreadable"):
                _unreadable(result, path)
            if a["type"] == oct(stat.S_IFDIR):
                pair = _open_pair(lfd, nfd, name)
                if pair is None:
                    _unreadable(result, path)
                else:
                    queue.append((path.lstrip("/"), *pair))
        except OSError as exc:
            if exc.errno in GONE or not _still(lfd, None, seen) or (
                    st is not None and not _still(lfd, name, _sig(st))):
                raise LiveChanged(path, exc.strerror or str(exc)) from None
            raise
    return None


def _unreadable(result: dict[str, Any], path: str) -> None:
    result["unreadable"] += 1
    if result["first_unreadable"] is None:
        result["first_unreadable"] = path


def _open_pair(lfd: int, nfd: int, name: str) -> tuple[int, int] | None:
    """Both subdirectories, or None when this user may not read the live one."""
    try:
        sub_l = _open(lfd, name, _DIR_FLAGS)
    except PermissionError:
        return None
    try:
        return sub_l, _open(nfd, name, _DIR_FLAGS)
    except OSError:
        os.close(sub_l)
        raise
