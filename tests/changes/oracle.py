"""The oracle: a naive diff of the merged tree against a view of the lowers alone.

Both trees are walked in full (through ``/proc/PID/root``, so inside the scenario's namespace).
A path only in the merged tree is ``A``, only in the lowers ``D`` (a deleted directory stands for
its subtree), in both with different facts ``C``; a directory holding a change is ``C`` too (as
docker and podman report parents).  ``renames`` (new -> old) compares a renamed directory's
contents with the lower directory it came from.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any

Facts = tuple[Any, ...]


def tree(root: str) -> dict[str, Facts]:
    """Every path below ``root`` (``/a/b``) with what a naive diff compares."""
    out: dict[str, Facts] = {}
    todo = [""]
    while todo:
        rel = todo.pop()
        with os.scandir(root + rel if rel else root) as entries:
            for entry in entries:
                path = f"{rel}/{entry.name}"
                st = entry.stat(follow_symlinks=False)
                out[path] = facts(root + path, st)
                if stat.S_ISDIR(st.st_mode):
                    todo.append(path)
    return out


def facts(full: str, st: os.stat_result) -> Facts:
    is_dir = stat.S_ISDIR(st.st_mode)
    extra: Any = None
    if stat.S_ISREG(st.st_mode):
        with open(full, "rb") as handle:
            extra = hashlib.sha256(handle.read()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        extra = os.readlink(full)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_rdev,
            None if is_dir else st.st_size, None if is_dir else st.st_nlink, extra)


def naive(merged: str, lowers: str, renames: dict[str, str] | None = None) -> dict[str, str]:
    """path -> A | C | D."""
    renames = renames or {}
    new_tree, old_tree = tree(merged), tree(lowers)

    def counterpart(path: str) -> str:
        for new in sorted(renames, key=len, reverse=True):
            if path == new or path.startswith(new + "/"):
                return renames[new] + path[len(new):]
        return path

    out: dict[str, str] = {}
    for path, now in new_tree.items():
        then = old_tree.get(counterpart(path))
        if then is None:
            out[path] = "A"
        elif then != now:
            out[path] = "C"
    for path in old_tree:
        if path not in new_tree:
            out[path] = "D"
        for new, old in renames.items():  # gone from inside a renamed directory
            moved = new + path[len(old):]
            if path.startswith(old + "/") and moved not in new_tree:
                out[moved] = "D"
    for path in list(out):
        parent = path.rsplit("/", 1)[0]
        while parent:
            if parent in new_tree and counterpart(parent) in old_tree and parent not in out:
                out[parent] = "C"
            parent = parent.rsplit("/", 1)[0]
    return {p: m for p, m in out.items()
            if not (m == "D" and out.get(p.rsplit("/", 1)[0]) == "D")}


def content(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
