"""Look a merged path up in the layers the way overlayfs does (fs/overlayfs/namei.c).

Top-down through the parent directory's layer stack: the first object found serves the name; a
whiteout deletes it; a non-directory ends the lookup; a directory merges with the directories of
the same name below it, unless it is opaque; a redirect (``redirect_dir=on``) makes the layers
below look under another name (relative) or path (absolute, from each layer's root).
Merged directories' stacks are cached per session.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field

from ovlinspect.provenance.session import LayerDir, Session
from ovlinspect.provenance.xattrs import Private, examine, is_whiteout

CACHE_LIMIT = 4096


@dataclass
class Hit:
    """An object found in one layer: the layer, its path below the layer root, what it is."""

    layer: LayerDir
    rel: str
    st: os.stat_result
    private: Private

    @property
    def is_dir(self) -> bool:
        """A directory."""
        return stat.S_ISDIR(self.st.st_mode)


@dataclass
class Walk:
    """What a lookup of one merged name found."""

    hits: list[Hit] = field(default_factory=list)   # serving object first; merged dirs below
    whiteout: Hit | None = None                     # the whiteout deleting the name
    opaque_at: Hit | None = None                    # the opaque directory ending a merge
    hidden: list[Hit] = field(default_factory=list)  # below a whiteout or an opaque dir
    below: list[Hit] = field(default_factory=list)   # same name below a non-directory
    parent_missing: bool = False

    @property
    def top(self) -> Hit | None:
        """The object serving the name."""
        return self.hits[0] if self.hits else None


def _root(session: Session) -> list[Hit]:
    out = []
    for layer in session.positions:
        if layer.fd is not None:
            out.append(Hit(layer, "", os.fstat(layer.fd), Private()))
    return out


def dir_stack(session: Session, rel: str) -> list[Hit] | None:
    """The layer directories merged at ``rel`` (below the overlay root), top first; None when
    ``rel`` is not a merged directory."""
    cache = session.stacks
    if rel in cache:
        return cache[rel]
    if not rel:
        stack: list[Hit] | None = _root(session)
    else:
        found = walk(session, rel)
        stack = found.hits if found.top is not None and found.top.is_dir else None
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[rel] = stack
    return stack


def walk(session: Session, rel: str) -> Walk:
    """Look ``rel`` (below the overlay root) up through the layers."""
    if not rel:
        return Walk(hits=_root(session))
    parent, name = posixpath.split(rel)
    stack = dir_stack(session, parent)
    if stack is None:
        return Walk(parent_missing=True)
    return child(session, stack, name)


def child(session: Session, parent: list[Hit], name: str) -> Walk:
    """Look ``name`` up in the merged directory whose layer stack is ``parent``."""
    prefix = session.xattr_prefix
    cands: list[tuple[LayerDir, str]] = [(h.layer, h.rel) for h in parent]
    out = Walk()
    absolute: str | None = None
    rename = name
    ended = False  # whiteout, opaque dir, or a non-directory: the rest is hidden or below
    i = 0
    while i < len(cands):
        layer, pdir = cands[i]
        i += 1
        if layer.fd is None:
            continue
        path = absolute if absolute is not None else posixpath.join(pdir, rename)
        found = examine(layer.fd, path, prefix)
        if found is None:
            continue
        hit = Hit(layer, path, *found)
        white = is_whiteout(hit.st, hit.private)
        if ended:
            if white:
                break
            (out.below if out.top is not None and not out.top.is_dir else out.hidden).append(hit)
            continue
        if white:
            if out.top is None:
                out.whiteout = hit
            ended = True
            continue
        if not hit.is_dir:
            if out.top is None:
                out.hits.append(hit)
            else:
                out.hidden.append(hit)
            ended = True
            continue
        if out.top is not None and not out.top.is_dir:
            out.below.append(hit)
            ended = True
            continue
        out.hits.append(hit)
        redirect = hit.private.redirect
        if redirect and session.follow_redirects:
            if redirect.startswith("/"):
                absolute = redirect.strip("/")
                order = session.positions
                cands = cands[:i] + [(lay, "") for lay in order[order.index(layer) + 1:]]
            elif absolute is not None:
                absolute = posixpath.join(posixpath.dirname(absolute), redirect)
            else:
                rename = redirect
        if hit.private.opaque == b"y":
            out.opaque_at = hit
            ended = True
    return out


def data_of(session: Session, start: Hit, below: list[Hit]) -> Hit | None:
    """Where a metacopy file's data is: the next object below by name (or by its redirect),
    following metacopy files down; an absolute redirect also reaches data-only layers."""
    prefix = session.xattr_prefix
    cur = start
    nxt: Hit | None = below[0] if below and not cur.private.redirect else None
    for _ in range(len(session.layers()) + 1):
        if not cur.private.metacopy:
            return None if cur is start else cur
        if nxt is None:
            nxt = _next_by_redirect(session, cur, prefix)
        if nxt is None:
            return None
        cur, nxt = nxt, None
    return None


def _lower_dir(layer: LayerDir, rel_dir: str, prefix: str) -> str:
    """Where the directory ``rel_dir`` of ``layer`` takes its lower contents from: its path with
    each component's redirect applied (absolute from the layer root, or a name in the parent's
    lower directory)."""
    lower = ""
    upper = ""
    for part in [p for p in rel_dir.split("/") if p]:
        upper = posixpath.join(upper, part)
        found = examine(layer.fd, upper, prefix) if layer.fd is not None else None
        redirect = found[1].redirect if found is not None else None
        if redirect and redirect.startswith("/"):
            lower = redirect.strip("/")
        else:
            lower = posixpath.join(lower, redirect or part)
    return lower


def _next_by_redirect(session: Session, cur: Hit, prefix: str) -> Hit | None:
    redirect = cur.private.redirect
    if redirect and redirect.startswith("/"):
        path = redirect.strip("/")
        layers = session.layers()
    else:
        # A relative redirect is a name in the parent's LOWER directory, which a renamed parent
        # (its own redirect) moves away from the parent's upper path.
        parent = _lower_dir(cur.layer, posixpath.dirname(cur.rel), prefix)
        path = posixpath.join(parent, redirect) if redirect else cur.rel
        layers = list(session.positions)
    if cur.layer not in layers:
        return None
    for layer in layers[layers.index(cur.layer) + 1:]:
        if layer.fd is None:
            continue
        found = examine(layer.fd, path, prefix)
        if found is None:
            continue
        hit = Hit(layer, path, *found)
        if is_whiteout(hit.st, hit.private) or hit.is_dir:
            return None
        return hit
    return None
