"""Lower hard links served from the index (``index=on``): names only the lowers hold, whose
object the kernel serves from an index entry in ``work/index`` (an upper inode), because another
name of the same lower inode was copied up.  Their content or metadata changed with it.

An index entry of a non-directory is named by, and carries as ``overlay.origin``, the handle of
its lower inode; ``overlay.nlink`` (``U+n`` / ``L+n``) gives how many names the overlay shows for
it, so the names served from the index number that minus the upper names (the entry's own link
count less one).  Nothing is read when that is zero.  Otherwise the lower inode is decoded from
its handle (needs CAP_DAC_READ_SEARCH) and its names are found by one walk of the lower layers on
its filesystem, comparing the inode numbers the directory listings give, and stopping once every
name of every such inode is found.  A name counts only where the merged tree shows it, from that
very object: at its own path (no upper entry at it, no upper parent opaque or redirected), or,
failing that, below a renamed directory (one more walk of the upper's directories, only then,
finds where each redirected directory takes its lowers from).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ovlinspect.changes.lowers import Lowers, is_chr_whiteout, join, kind_of, open_listing
from ovlinspect.changes.lowers import read_xattrs as _xattrs
from ovlinspect.changes.types import Kind
from ovlinspect.kernel.objects import lookup, lstat_at
from ovlinspect.kernel.syscalls import open_by_handle_at

_FB_HEADER = 21


@dataclass(frozen=True)
class Served:
    """A lower-only name served from an index entry (``rel``: its merged path, from the
    overlay's root)."""

    rel: str
    kind: Kind  # CHANGED, or METADATA when the entry is a metacopy (data still the lower's)
    type: str


@dataclass
class _Inode:
    """A lower inode with an index entry, and how many of its names are still to be found."""

    kind: Kind
    missing: int  # names on its filesystem not yet seen (its link count at first)


def fb_handle(raw: bytes | None) -> tuple[int, bytes] | None:
    """(handle type, fid) of a stored ``ovl_fb`` (``overlay.origin``, ``overlay.upper``)."""
    if raw is None or len(raw) < _FB_HEADER or raw[:2] != b"\x00\xfb":
        return None
    length = raw[2]
    if length < _FB_HEADER or length > len(raw):
        return None
    return raw[4], bytes(raw[_FB_HEADER:length])


def _overlay_nlink(raw: bytes | None, upper: int, lower: int) -> int:
    """The link count the overlay shows (fs/overlayfs/inode.c ``ovl_get_nlink``)."""
    if raw is None or len(raw) < 2 or raw[:1] not in (b"U", b"L"):
        return lower  # no record: every lower name may still be served
    try:
        rel = int(raw[1:])
    except ValueError:
        return lower
    return (upper if raw[:1] == b"U" else lower) + rel


class IndexLinks:
    """The index entries of one overlay, and the lower names they serve."""

    def __init__(self, index_fd: int, upper_fd: int, lowers: Lowers) -> None:
        self.index_fd = index_fd
        self.upper_fd = upper_fd
        self.lowers = lowers
        self.devs = [os.fstat(fd).st_dev for fd in lowers.fds]
        self.undecoded = 0  # index entries whose lower inode could not be decoded

    def _decode(self, handle_type: int, fid: bytes) -> os.stat_result | None:
        for j, fd in enumerate(self.lowers.fds):
            try:
                # the mount fd may not be O_PATH (EBADF): the layer root, opened to read
                mount_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except OSError:
                continue
            try:
                obj = open_by_handle_at(mount_fd, handle_type, fid)
            except OSError:
                continue
            finally:
                os.close(mount_fd)
            try:
                st = os.fstat(obj)
            finally:
                os.close(obj)
            if st.st_dev == self.devs[j]:
                return st
        return None

    def _inodes(self) -> dict[tuple[int, int], _Inode]:
        dfd = open_listing(self.index_fd)
        try:
            with os.scandir(dfd) as entries:
                names = [entry.name for entry in entries]
        finally:
            os.close(dfd)
        out: dict[tuple[int, int], _Inode] = {}
        for name in names:
            st = lstat_at(self.index_fd, name)
            if st is None or stat.S_ISDIR(st.st_mode) or is_chr_whiteout(st):
                continue
            xs = _xattrs(f"/proc/self/fd/{self.index_fd}/{name}", self.lowers.xattr)
            origin = fb_handle(xs.get("origin"))
            if origin is None:
                continue
            lower = self._decode(*origin)
            if lower is None:
                self.undecoded += 1
                continue
            served = _overlay_nlink(xs.get("nlink"), st.st_nlink, lower.st_nlink) - (
                st.st_nlink - 1)
            if served > 0:
                kind = Kind.METADATA if "metacopy" in xs else Kind.CHANGED
                out[(lower.st_dev, lower.st_ino)] = _Inode(kind, lower.st_nlink)
        return out

    def served(self) -> list[Served]:
        """Every lower-only name served from an index entry, in no particular order."""
        inodes = self._inodes()
        found: list[tuple[str, os.stat_result]] = []
        for j, fd in enumerate(self.lowers.fds):
            if any(dev == self.devs[j] and n.missing > 0 for (dev, _), n in inodes.items()):
                found += self._names(fd, self.devs[j], inodes)
        out: list[Served] = []
        moved: list[tuple[str, os.stat_result]] = []
        for rel, st in found:
            if self._shows("", "", rel, st):
                out.append(Served(rel, inodes[(st.st_dev, st.st_ino)].kind, kind_of(st.st_mode)))
            else:
                moved.append((rel, st))
        if moved:
            # not at its own path: maybe below a renamed directory (whose old path holds a
            # whiteout), found by where each redirected upper directory takes its lowers from
            redirects = sorted(self._redirects().items(), key=lambda kv: -len(kv[0]))
            for rel, st in moved:
                for lower, merged in redirects:
                    if rel.startswith(lower + "/"):
                        rest = rel[len(lower) + 1:]
                        if self._shows(merged, lower, rest, st):
                            out.append(Served(join(merged, rest),
                                              inodes[(st.st_dev, st.st_ino)].kind,
                                              kind_of(st.st_mode)))
                        break
        return out

    def _redirects(self) -> dict[str, str]:
        """lower path -> merged path of every redirected upper directory (one walk of the
        upper's directories, as the diff's walker resolves redirects)."""
        out: dict[str, str] = {}
        todo = [("", "")]
        while todo:
            rel, lower = todo.pop()
            for name in self._subdirs(rel):
                path = join(rel, name)
                raw = _xattrs(f"/proc/self/fd/{self.upper_fd}/{path}",
                              self.lowers.xattr).get("redirect")
                target = os.fsdecode(raw) if raw else ""
                if target:
                    below = target.strip("/") if target.startswith("/") else join(lower, target)
                    out.setdefault(below, path)
                else:
                    below = join(lower, name)
                todo.append((path, below))
        return out

    def _subdirs(self, rel: str) -> list[str]:
        fd = lookup(self.upper_fd, rel)
        if fd is None:
            return []
        try:
            dfd = open_listing(fd)
        finally:
            os.close(fd)
        try:
            with os.scandir(dfd) as entries:
                return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        finally:
            os.close(dfd)

    def _names(self, layer_fd: int, dev: int,
               inodes: dict[tuple[int, int], _Inode]) -> list[tuple[str, os.stat_result]]:
        """The names below ``layer_fd`` of the wanted inodes: directory listings' inode numbers,
        confirmed by lstat; the walk stops once no name is missing."""
        found: list[tuple[str, os.stat_result]] = []
        todo = [""]
        while todo and any(n.missing > 0 for n in inodes.values()):
            rel = todo.pop()
            fd = lookup(layer_fd, rel)
            if fd is None:
                continue
            try:
                dfd = open_listing(fd)
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                with os.scandir(dfd) as entries:
                    for entry in entries:
                        path = join(rel, entry.name)
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(path)
                        elif (dev, entry.inode()) in inodes:
                            st = entry.stat(follow_symlinks=False)
                            node = inodes.get((st.st_dev, st.st_ino))
                            if node is not None:
                                node.missing -= 1
                                found.append((path, st))
            finally:
                os.close(dfd)
        return found

    def _shows(self, merged: str, lower: str, rest: str, st: os.stat_result) -> bool:
        """The merged tree shows the lower object ``st`` at ``merged/rest``, where the merged
        directory ``merged`` takes its lowers from ``lower``: no upper entry at that name, no
        opaque or redirected upper directory between, and the lowers serve that very object."""
        upper_rel = merged
        parts = rest.split("/")
        for part in parts[:-1]:
            upper_rel = join(upper_rel, part)
            ust = lstat_at(self.upper_fd, upper_rel)
            if ust is None:
                break  # the rest of the path is the lowers' alone
            if not stat.S_ISDIR(ust.st_mode):
                return False
            xs = _xattrs(f"/proc/self/fd/{self.upper_fd}/{upper_rel}", self.lowers.xattr)
            if xs.get("opaque") == b"y" or xs.get("redirect"):
                return False
        else:
            if lstat_at(self.upper_fd, join(merged, rest)) is not None:
                return False
        if merged and _xattrs(f"/proc/self/fd/{self.upper_fd}/{merged}",
                              self.lowers.xattr).get("opaque") == b"y":
            return False
        stack = self.lowers.root()
        if lower:
            at = self.lowers.at(lower)
            stack = at.dirs if at is not None else []
        obj = None
        for part in parts:
            obj = self.lowers.child(stack, part) if stack else None
            if obj is None:
                return False
            stack = obj.dirs
        return obj is not None and (obj.st.st_dev, obj.st.st_ino) == (st.st_dev, st.st_ino)
