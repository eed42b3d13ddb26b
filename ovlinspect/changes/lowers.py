"""The lowers alone, as a lower-only overlay would show them: one path at a time.

The overlay's own lookup, emulated on the lower layers: whiteouts (0:0 character devices, or the
xattr form) end a name, a non-directory ends the stack below it, an opaque directory (``y``) ends
the merge, and a redirect (a relative name or an absolute path from the layer root) moves the
lookup in the layers below.  Each call costs a few ``lstat`` per layer, never a directory walk.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from ovlinspect.kernel.objects import NoAtimeRefused, lookup, lstat_at

Stack = list[tuple[int, str]]  # (lower index, path inside that layer), top first


@dataclass
class Found:
    """What the lowers hold at one path: the top object, and for a directory its merged stack."""

    st: os.stat_result
    path: str  # the path in the layer that serves the top object
    dirs: Stack = field(default_factory=list)


def kind_of(mode: int) -> str:
    """file | dir | symlink | other."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def read_xattrs(path: str, prefix: str, follow: bool = False) -> dict[str, bytes]:
    """The ``prefix`` xattrs (``trusted.overlay.``) of ``path`` (not followed), prefix dropped."""
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith(prefix):
            try:
                out[name[len(prefix):]] = os.getxattr(path, name, follow_symlinks=follow)
            except OSError:
                continue
    return out


def is_chr_whiteout(st: os.stat_result) -> bool:
    """A kernel whiteout: a 0:0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def join(parent: str, name: str) -> str:
    """``parent/name`` for layer-relative paths (``""`` is the layer root)."""
    return f"{parent}/{name}" if parent else name


def open_listing(fd: int) -> int:
    """A readable fd of the directory behind O_PATH ``fd``, opened without touching atime."""
    try:
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOATIME,
                       dir_fd=fd)
    except PermissionError:
        raise NoAtimeRefused(1, "O_NOATIME refused (needs CAP_FOWNER or ownership)") from None


class Lowers:
    """The lower layers (O_PATH root fds, top first) of one overlay."""

    def __init__(self, fds: list[int], xattr: str) -> None:
        self.fds = fds
        self.xattr = xattr

    def root(self) -> Stack:
        """The stack of the layer roots."""
        return [(j, "") for j in range(len(self.fds))]

    def _xattrs(self, j: int, rel: str) -> dict[str, bytes]:
        parent, _, name = rel.rpartition("/")
        if not name:  # the layer root (a directory: following the fd's magic link is safe)
            return read_xattrs(f"/proc/self/fd/{self.fds[j]}", self.xattr, follow=True)
        fd = lookup(self.fds[j], parent)
        if fd is None:
            return {}
        try:  # the parent's magic link, then the name itself, not followed
            return read_xattrs(f"/proc/self/fd/{fd}/{name}", self.xattr)
        finally:
            os.close(fd)

    def _hides(self, j: int, rel: str, st: os.stat_result) -> bool:
        if is_chr_whiteout(st):
            return True
        return (stat.S_ISREG(st.st_mode) and st.st_size == 0
                and "whiteout" in self._xattrs(j, rel))

    def child(self, parent: Stack, name: str) -> Found | None:
        """``name`` (a name, or a relative path) looked up in the directory stack ``parent``."""
        todo = [(j, join(rel, name)) for j, rel in parent]
        top: Found | None = None
        k = 0
        while k < len(todo):
            j, rel = todo[k]
            k += 1
            st = lstat_at(self.fds[j], rel)
            if st is None:
                continue
            if self._hides(j, rel, st):
                break
            is_dir = stat.S_ISDIR(st.st_mode)
            if top is None:
                top = Found(st=st, path=rel)
                if not is_dir:
                    break
            elif not is_dir:
                break
            top.dirs.append((j, rel))
            xs = self._xattrs(j, rel)
            if xs.get("opaque") == b"y":
                break
            redirect = xs.get("redirect")
            if redirect:
                target = os.fsdecode(redirect)
                if target.startswith("/"):
                    below = [(i, target.strip("/")) for i in range(j + 1, len(self.fds))]
                else:
                    below = [(i, join(os.path.dirname(r), target)) for i, r in todo[k:]]
                todo = todo[:k] + below
        return top

    def at(self, rel: str) -> Found | None:
        """The object at ``rel`` from the layer roots, component by component."""
        found: Found | None = None
        stack = self.root()
        for part in [p for p in rel.split("/") if p]:
            found = self.child(stack, part) if stack else None
            if found is None:
                return None
            stack = found.dirs
        return found

    def names(self, stack: Stack) -> dict[str, str]:
        """The visible entries of a merged lower directory: name -> type."""
        seen: dict[str, str | None] = {}
        for j, rel in stack:
            fd = lookup(self.fds[j], rel)
            if fd is None:
                continue
            try:
                xwhiteouts = self._xattrs(j, rel).get("opaque") == b"x"
                dfd = open_listing(fd)
            finally:
                os.close(fd)
            try:
                with os.scandir(dfd) as entries:
                    for entry in entries:
                        if entry.name in seen:
                            continue
                        st = entry.stat(follow_symlinks=False)
                        hidden = is_chr_whiteout(st) or (
                            xwhiteouts and self._hides(j, join(rel, entry.name), st))
                        seen[entry.name] = None if hidden else kind_of(st.st_mode)
            finally:
                os.close(dfd)
        return {name: kind for name, kind in seen.items() if kind is not None}
