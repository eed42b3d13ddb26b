"""Resolve each declared layer path to an open directory, in the process's own view first and
outside it (an ancestor's or the host's view) second; relative paths against the cwd that the
overlay's own root handle proves.

A path that could not be followed for a reason other than a missing name (EPERM, EACCES, ELOOP,
ESTALE: a symlink that cannot be read without changing its atime, a directory this process may
not search, a loop) is recorded in ``LayerState.resolve_errno``: where it leads is unknown, so
reconcile never calls it disproved (:func:`unfollowed`).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable

from ovlinspect.engine.evidence import Evidence, ino_agrees
from ovlinspect.engine.state import LayerState, NamespaceContext
from ovlinspect.host.fsindex import FsIndex
from ovlinspect.host.view import Resolution, is_fd_path
from ovlinspect.kernel.handles import format_uuid, to_model
from ovlinspect.kernel.objects import facts, handle_of, lstat_at

Prover = Callable[[LayerState, int], bool]

MISSING = frozenset({errno.ENOENT, errno.ENOTDIR})
"""Errnos that say the path leads nowhere: a name is missing, or is not a directory."""


def unfollowed(state: LayerState) -> bool:
    """Following the declared path failed somewhere for a reason other than a missing name:
    the path may well lead to the layer in use, so no evidence can disprove it."""
    return state.resolve_errno is not None and state.resolve_errno not in MISSING


def cwd_unknown(state: LayerState) -> bool:
    """A relative declared path found under none of the plausible cwds: it may hold the layer
    from the cwd it was really typed in, which nobody recorded."""
    return (state.fd is None and not state.self_covered
            and not state.layer.declared.startswith("/") and state.layer.path is None)


def _odd_failure(res: Resolution, where: str) -> tuple[int, str] | None:
    """(errno, text) when ``res`` failed for a reason other than a missing name."""
    if res.fd is None and res.errno is not None and res.errno not in MISSING:
        return res.errno, f"{where}: {res.error}"
    return None


def _record(state: LayerState, failure: tuple[int, str] | None) -> None:
    """Keep the first odd failure met while resolving ``state`` (errno and note)."""
    if failure is None or state.resolve_errno is not None:
        return
    number, text = failure
    state.resolve_errno = number
    name = errno.errorcode.get(number, str(number))
    state.base_note = "; ".join(n for n in (state.base_note, f"could not be followed {text} "
                                            f"({name})") if n)


def resolve_layers(states: list[LayerState], ctx: NamespaceContext, ev: Evidence) -> None:
    """Resolve every declared path; the root layer first, so that it can fix a relative cwd."""
    assert ctx.view is not None
    bases = _relative_bases(states, ctx, ev)
    proven_base: list[tuple[str, str]] = []
    for state in sorted(states, key=lambda s: not ev.is_root_layer(s)):
        declared = state.layer.declared
        if is_fd_path(declared):
            continue
        if declared.startswith("/"):
            _resolve_absolute(state, ctx, ev.root.st.st_dev if ev.root else None)
        else:
            _resolve_relative(state, ctx, ev, bases, proven_base)


def _relative_bases(states: list[LayerState], ctx: NamespaceContext, ev: Evidence) -> list[str]:
    """Plausible cwds of the mounter, most telling first.

    The ancestors of the root layer's real path (decoded from the overlay's own handle) come
    first: one of them is the cwd the relative path was typed in.  Then the process's cwd and the
    mount point's ancestors.  Whichever is used is proven, or the note says it is a guess.
    """
    if all(s.layer.declared.startswith("/") for s in states):
        return []
    bases: list[str] = []
    anchors = [ev.decoded_root_path(ctx), ctx.cwd, ev.mount_point]
    for anchor in anchors:
        if not anchor or not anchor.startswith("/"):
            continue
        path = anchor if anchor is ctx.cwd else posixpath.dirname(anchor)
        while path not in bases:
            bases.append(path)
            path = posixpath.dirname(path)
    return bases


def _adopt(state: LayerState, res: Resolution, index: FsIndex | None) -> None:
    state.fd, res.fd = res.fd, None
    state.index = index
    state.layer.symlinks = res.symlinks
    assert state.fd is not None
    f = state.facts = facts(state.fd)
    layer = state.layer
    layer.dev, layer.ino = f.dev, f.ino
    layer.mount_id = f.mount_id
    layer.handle = to_model(f.handle)
    state.fs = index.by_mount_id(f.mount_id) if index is not None else None
    uuid = f.uuid
    if uuid is None and state.fs is not None and state.fs.keys:
        uuid = state.fs.keys[0]
    layer.fs_type = mount.fs_type if (mount := index.by_id.get(f.mount_id) if index and
                                      f.mount_id is not None else None) else None
    layer.fs_uuid = format_uuid(uuid)


def _inside_overlay(fd: int, own_dev: int | None) -> bool:
    """``fd`` is a directory of this very overlay (any mount of its superblock, binds too):
    directories of an overlay always carry the overlay's own st_dev."""
    if own_dev is None:
        return False
    st = os.fstat(fd)
    return stat.S_ISDIR(st.st_mode) and st.st_dev == own_dev


def _self_covered(state: LayerState, path: str) -> None:
    """The overlay is mounted over its own layer, or over a parent of it (systemd-sysext mounts
    on /usr with /usr as its bottom lower; an overlay on /app with /app/ro and /app/rw as its
    layers): the path now leads into the overlay; the layer is the directory underneath, which
    only the overlay's handles reach."""
    state.self_covered = True
    state.layer.path = path
    state.base_note = "this path is covered by the overlay itself (mounted over its own layer)"


def _resolve_absolute(state: LayerState, ctx: NamespaceContext, own_dev: int | None) -> None:
    assert ctx.view is not None
    res = ctx.view.resolve(state.layer.declared)
    if res.fd is not None and not _inside_overlay(res.fd, own_dev):
        state.layer.path = res.path
        _adopt(state, res, ctx.index)
        return
    failure = _odd_failure(res, "in the process's view")
    inside = res.path if res.fd is not None else None
    res.close()
    for outer in ctx.outers:
        found = outer.view.resolve(state.layer.declared)
        if found.fd is not None and not _inside_overlay(found.fd, own_dev):
            state.layer.host_path = found.path
            state.base_note = f"found outside the namespace, in {outer.label}"
            _adopt(state, found, outer.index)
            _record(state, failure)  # the process's own view may lead elsewhere
            return
        failure = failure or _odd_failure(found, f"in {outer.label}")
        found.close()
    covered = inside or _through_overlay(ctx, state.layer.declared, own_dev)
    if covered is not None:
        _self_covered(state, covered)
        _record(state, failure)
        return
    state.layer.symlinks = res.symlinks
    state.base_note = (f"does not resolve: {res.error}" if failure is None else
                       "could not be followed to its end")
    _record(state, failure)


def _through_overlay(ctx: NamespaceContext, path: str, own_dev: int | None) -> str | None:
    """The path, when its nearest existing ancestor is inside this overlay: the overlay is
    mounted over a parent of the layer."""
    assert ctx.view is not None
    parent = posixpath.dirname(posixpath.normpath(path))
    while parent and parent != "/":
        res = ctx.view.resolve(parent)
        if res.fd is not None:
            inside = _inside_overlay(res.fd, own_dev)
            rest = posixpath.relpath(posixpath.normpath(path), parent)
            found = posixpath.join(res.path or parent, rest)
            res.close()
            return found if inside else None
        parent = posixpath.dirname(parent)
    return None


def _resolve_relative(state: LayerState, ctx: NamespaceContext, ev: Evidence, bases: list[str],
                      proven_base: list[tuple[str, str]]) -> None:
    """Try each plausible cwd; keep the one the overlay's evidence proves, else the first."""
    assert ctx.view is not None
    failure: tuple[int, str] | None = None
    if proven_base:
        base, by = proven_base[0]
        res = ctx.view.resolve(state.layer.declared, base)
        if res.fd is not None:
            state.layer.path = res.path
            state.base_note = f"relative to {base} (the cwd proven for {by})"
            _adopt(state, res, ctx.index)
            return
        failure = _odd_failure(res, f"from {base}")
    first: tuple[str, Resolution] | None = None
    for base in bases:
        res = ctx.view.resolve(state.layer.declared, base)
        if res.fd is None:
            failure = failure or _odd_failure(res, f"from {base}")
            continue
        how = _proves_root(state, res.fd, ev)
        if how:
            if first is not None:
                first[1].close()
            state.layer.path = res.path
            state.base_note = f"relative to {base} ({how})"
            proven_base.append((base, state.label))
            _adopt(state, res, ctx.index)
            return
        if first is None:
            first = (base, res)
        else:
            res.close()
    if first is None:
        state.base_note = (f"relative to an unknown cwd: found under none of {len(bases)} "
                           "candidate directories")
        _record(state, failure)
        return
    base, res = first
    state.layer.path = res.path
    state.base_note = f"relative to {base} (a guess: the mounter's cwd was not recorded)"
    _adopt(state, res, ctx.index)
    _record(state, failure)  # the cwd that could not be followed may be the real one


def _proves_root(state: LayerState, fd: int, ev: Evidence) -> str:
    """How this candidate for the root layer is confirmed by the overlay root, or ''."""
    if not ev.is_root_layer(state) or ev.root is None:
        return ""
    fid = ev.root.fid
    if fid is not None:
        handle = handle_of(fd, ev.prefix) if ev.prefix else handle_of(fd)
        return "proven by the overlay root handle" if handle and fid.matches(handle) else ""
    if ev.handles_available:
        return ""
    st = lstat_at(fd, ev.prefix) if ev.prefix else os.fstat(fd)
    if st is not None and ino_agrees(ev.root.st, st):
        return "the likely cwd: its inode numbers agree with the overlay root (no handles)"
    return ""
