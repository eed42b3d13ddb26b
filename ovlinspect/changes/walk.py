"""Stream one overlay's changes from its upper layer, in path order.

Only the upper is walked.  Each upper entry costs an ``lstat``, one ``listxattr`` (directories and
regular files) and a lookup of that one path in the lowers (:class:`Lowers`), which tells an
added path from a changed one; a directory added where the lowers hold nothing is walked without
any lower lookup.  Only an opaque directory or a non-directory that replaces a lower directory
has that one lower directory listed, for the entries it hides.  In a bound subdirectory, a
directory moved in from outside it is added as a whole: its lower contents are listed too.
With ``index=on``, lower names served from an index entry (hard links copied up through another
name) are merged into the stream (:mod:`ovlinspect.changes.index`).  Memory follows the upper's
directories on the current path, never the image.

Paths are from the overlay's root (``/a/b``).  Order: depth first, siblings sorted by the bytes
of their names, a directory before its contents (``/a``, ``/a/b``, ``/a-b``).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from ovlinspect.changes.index import IndexLinks
from ovlinspect.changes.lowers import (
    Found,
    Lowers,
    Stack,
    is_chr_whiteout,
    join,
    kind_of,
    open_listing,
    read_xattrs,
)
from ovlinspect.changes.types import Change, Kind
from ovlinspect.kernel.objects import lookup, lstat_at

TYPE_CHECKING = False  # the source's type only: importing it imports the engine (start-up)
if TYPE_CHECKING:
    from ovlinspect.changes.source import OverlaySource


@dataclass
class _Dir:
    """An upper directory being walked (``fd`` -1: a directory only the lowers hold)."""

    fd: int          # O_PATH fd in the upper layer, or -1
    path: str        # merged path from the overlay root ("" for the root)
    lower: str       # its path in the lowers (differs from ``path`` below a renamed directory)
    stack: Stack     # the lower directories at that path (the lower-only view)
    opaque: bool
    items: Iterator[tuple[str, str | None]]  # (name, lower-only entry's type, or None: upper)
    added: bool = False  # new to this mount's view: lower-only entries are added, not deleted


def _sort_key(name: str) -> bytes:
    return os.fsencode(name)


def _path_key(change: Change) -> list[bytes]:
    """The walk's order: component by component, by bytes."""
    return [os.fsencode(part) for part in change.path.split("/")]


def _upper_names(fd: int) -> list[str]:
    dfd = open_listing(fd)
    try:
        with os.scandir(dfd) as entries:
            return [entry.name for entry in entries]
    finally:
        os.close(dfd)


class Walker:
    """The changes of one overlay (its :class:`OverlaySource` stays owned by the caller)."""

    def __init__(self, source: OverlaySource) -> None:
        self.src = source
        self.lowers = Lowers(source.lowers, source.xattr)
        self.prefix = source.prefix

        self.base = ""  # the lower path of the mount's root (set by ``_root``)

    def _shown(self, rel: str) -> str | None:
        """A lower path as a path from the mount's root; None when it lies outside the lower
        directory of the mount's root (a bound subdirectory): this mount never showed it."""
        if not self.base:
            return "/" + rel
        if rel == self.base:
            return "/"
        if rel.startswith(self.base + "/"):
            return "/" + rel[len(self.base) + 1:]
        return None

    def _in_mount(self, rel: str) -> str | None:
        """A merged path from the overlay's root as a path from the mount's root (None: the
        mount's root itself, or outside it)."""
        if not self.prefix:
            return "/" + rel
        if rel.startswith(self.prefix + "/"):
            return "/" + rel[len(self.prefix) + 1:]
        return None

    def _open(self, fd: int, path: str, lower: str, stack: Stack, opaque: bool,
              added: bool = False) -> _Dir:
        names = _upper_names(fd)
        items: list[tuple[str, str | None]] = [(n, None) for n in names]
        if added and not opaque and stack:
            # every merged entry is new to this view: the lower-only ones too (a whiteout
            # hides its lower name, an upper entry serves it)
            items += [(n, t) for n, t in self.lowers.names(stack).items() if n not in names]
        elif opaque and stack and not added:
            here = set()
            for name in names:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while we read
                if not self._is_whiteout(fd, name, st):
                    here.add(name)
            items += [(n, t) for n, t in self.lowers.names(stack).items() if n not in here]
        items.sort(key=lambda item: _sort_key(item[0]))
        return _Dir(fd=fd, path=path, lower=lower, stack=stack, opaque=opaque, items=iter(items),
                    added=added)

    def _lower_only(self, path: str, lower: str, stack: Stack, added: bool) -> _Dir:
        """A directory only the lowers hold (``stack``): its entries, all added (a directory
        new to this view) or all deleted (hidden by a non-directory in the upper)."""
        items = sorted(self.lowers.names(stack).items(), key=lambda item: _sort_key(item[0]))
        return _Dir(fd=-1, path=path, lower=lower, stack=stack, opaque=False,
                    items=iter(items), added=added)

    def _is_whiteout(self, fd: int, name: str, st: os.stat_result,
                     xs: dict[str, bytes] | None = None) -> bool:
        if is_chr_whiteout(st):
            return True
        if not stat.S_ISREG(st.st_mode) or st.st_size:
            return False
        if xs is None:
            xs = read_xattrs(f"/proc/self/fd/{fd}/{name}", self.src.xattr)
        return "whiteout" in xs

    @staticmethod
    def _redirected(frame: _Dir, target: str) -> str:
        """A redirect's lower path: absolute from the layer root, or a name in the parent's."""
        return target.strip("/") if target.startswith("/") else join(frame.lower, target)

    def _root(self) -> _Dir | None:
        """The mount's root in the upper (None: a bound subdirectory the upper lacks, so
        nothing below it changed)."""
        self.base = self.prefix
        fd = lookup(self.src.upper, self.prefix)
        if fd is None:
            if self.prefix:
                return None
            raise FileNotFoundError(2, "the upper's root cannot be opened")
        lower, stack, opaque = self._prefix_lowers() if self.prefix else (
            "", self.lowers.root(), False)
        self.base = lower
        try:
            return self._open(fd, "", lower, stack, opaque)
        except BaseException:
            os.close(fd)
            raise

    def _prefix_lowers(self) -> tuple[str, Stack, bool]:
        """Where the lowers of a bound subdirectory are, as the kernel finds them: component by
        component through the upper, following its redirects and stopping at opaque dirs."""
        frame = _Dir(fd=-1, path="", lower="", stack=self.lowers.root(), opaque=False,
                     items=iter(()))
        upper_rel = ""
        for part in [p for p in self.prefix.split("/") if p]:
            xs = read_xattrs(f"/proc/self/fd/{self.src.upper}/{join(upper_rel, part)}"
                             if upper_rel else f"/proc/self/fd/{self.src.upper}/{part}",
                             self.src.xattr)
            upper_rel = join(upper_rel, part)
            redirect = xs.get("redirect")
            if frame.opaque:
                lower, found = join(frame.lower, part), None
            elif redirect:
                lower = self._redirected(frame, os.fsdecode(redirect))
                found = self.lowers.at(lower)
            else:
                lower = join(frame.lower, part)
                found = self.lowers.child(frame.stack, part) if frame.stack else None
            frame = _Dir(fd=-1, path="", lower=lower, stack=found.dirs if found else [],
                         opaque=frame.opaque or xs.get("opaque") == b"y", items=iter(()))
        return frame.lower, frame.stack, frame.opaque

    def changes(self) -> Iterator[Change]:
        """Every change, in path order.  Raises OSError when the upper cannot be read."""
        root = self._root()
        served = self._index_served()
        if not served:
            yield from self._walk(root)
            return
        yield from heapq.merge(self._walk(root), served, key=_path_key)

    def _index_served(self) -> list[Change]:
        """Lower-only names served from index entries (``index=on``), and their parents that
        the upper lacks (a directory holding a change is changed), sorted by path."""
        if self.src.index < 0:
            return []
        links = IndexLinks(self.src.index, self.src.upper, self.lowers)
        out: dict[str, Change] = {}
        for item in links.served():
            shown = self._in_mount(item.rel)
            if shown is None:
                continue
            out[shown] = Change(path=shown, kind=item.kind, type=item.type)
            parent = item.rel.rpartition("/")[0]
            while parent and lstat_at(self.src.upper, parent) is None:
                above = self._in_mount(parent)
                if above is None:
                    break
                out[above] = Change(path=above, kind=Kind.CHANGED, type="dir")
                parent = parent.rpartition("/")[0]
        if links.undecoded:
            self.src.notes.append(
                f"{links.undecoded} index entries name a lower inode that could not be decoded "
                "(needs CAP_DAC_READ_SEARCH): the lower names they serve are not listed")
        return sorted(out.values(), key=_path_key)

    def _walk(self, root: _Dir | None) -> Iterator[Change]:
        """The upper's changes from ``root``, in path order."""
        frames = [root] if root is not None else []
        try:
            while frames:
                frame = frames[-1]
                item = next(frame.items, None)
                if item is None:
                    done = frames.pop()
                    if done.fd >= 0:
                        os.close(done.fd)
                    continue
                name, lower_type = item
                path = f"{frame.path}/{name}"
                if lower_type is not None:
                    change, child = self._lower_entry(frame, name, path, lower_type)
                else:
                    change, child = self._entry(frame, name, path)
                if change is not None:
                    yield change
                if child is not None:
                    frames.append(child)
        finally:
            for frame in frames:
                if frame.fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(frame.fd)

    def _lower_entry(self, frame: _Dir, name: str, path: str,
                     kind: str) -> tuple[Change | None, _Dir | None]:
        """An entry only the lowers hold: deleted (hidden), or added with a directory's whole
        lower subtree when its parent is new to this view."""
        if not frame.added:
            return Change(path=path, kind=Kind.DELETED, type=kind), None
        change = Change(path=path, kind=Kind.ADDED, type=kind)
        if kind != "dir":
            return change, None
        found = self.lowers.child(frame.stack, name)
        if found is None or not found.dirs:
            return change, None  # gone from the lowers while we read
        return change, self._lower_only(path, join(frame.lower, name), found.dirs, True)

    def _entry(self, frame: _Dir, name: str, path: str) -> tuple[Change | None, _Dir | None]:
        fd = frame.fd
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, None  # removed while we read: not a change any more
        is_dir = stat.S_ISDIR(st.st_mode)
        xs = (read_xattrs(f"/proc/self/fd/{fd}/{name}", self.src.xattr)
              if is_dir or stat.S_ISREG(st.st_mode) else {})
        if self._is_whiteout(fd, name, st, xs):
            if frame.opaque or frame.added or not frame.stack:
                return None, None
            gone = self.lowers.child(frame.stack, name)
            if gone is None:
                return None, None
            return Change(path=path, kind=Kind.DELETED, type=kind_of(gone.st.st_mode)), None
        redirect = xs.get("redirect")
        here = join(frame.lower, name)
        found: Found | None
        added = frame.added
        if redirect and is_dir:
            lower = self._redirected(frame, os.fsdecode(redirect))
            found = self.lowers.at(lower)
            came_from = self._shown(lower)
            if came_from is None:
                # moved in from outside this mount's subtree: new to this view, contents too
                added = True
                change = Change(path=path, kind=Kind.ADDED, type="dir")
            else:
                added = False
                change = Change(path=path, kind=Kind.RENAMED, type="dir", from_path=came_from)
        else:
            # A metacopy file's redirect says where its data is (a moved or hard-linked file):
            # the mark still follows what the lowers hold at this path.
            lower = here
            found = self.lowers.child(frame.stack, name) if frame.stack else None
            same_data = not redirect or self._redirected(frame, os.fsdecode(redirect)) == here
            if found is None or added:
                kind = Kind.ADDED
            elif stat.S_ISREG(st.st_mode) and "metacopy" in xs and same_data:
                kind = Kind.METADATA
            else:
                kind = Kind.CHANGED
            change = Change(path=path, kind=kind, type=kind_of(st.st_mode))
        if not is_dir:
            if found is not None and found.dirs and not added:
                # a non-directory over a lower directory: what that directory held is deleted
                return change, self._lower_only(path, lower, found.dirs, False)
            return change, None
        child_fd = lookup(fd, name)
        if child_fd is None:
            return change, None  # another filesystem mounted on it, or gone: not the upper's
        stack = found.dirs if found is not None else []
        try:
            # Below an opaque directory the kernel looks nothing up in the lowers: every
            # directory there is opaque too, and what the lowers hold below it is deleted;
            # except a redirected one, which is looked up afresh at its redirect's target.
            inherited = frame.opaque and not (redirect and is_dir)
            child = self._open(child_fd, path, lower, stack,
                               inherited or xs.get("opaque") == b"y", added)
        except BaseException:
            os.close(child_fd)
            raise
        return change, child


def iter_changes(source: OverlaySource) -> Iterator[Change]:
    """One overlay's changes, streamed in path order (see the module docstring)."""
    return Walker(source).changes()


def collect(source: OverlaySource, limit: int | None = None) -> tuple[list[Change], bool]:
    """Up to ``limit`` changes, and whether there were more (for a paged view)."""
    out: list[Change] = []
    for change in iter_changes(source):
        if limit is not None and len(out) >= limit:
            return out, True
        out.append(change)
    return out, False
