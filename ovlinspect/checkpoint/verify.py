"""``dump --verify``: rebuild each restorable overlay in a throwaway private mount namespace and
compare the rebuilt merged tree with the live one.

The rebuild runs in a forked child that unshares its mount namespace (and makes it private), so
nothing it mounts is ever seen by anyone else; the namespace dies with the child.  The live
overlay keeps running meanwhile, so the rebuild is read-only: the upper is stacked as the top
lower and no workdir is given (mounting a second overlay on the live upper/workdir would reset
its work directory).  Each layer is still checked by handle against the dump.  The live merged
tree is opened before the fork and only read.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import tempfile
import time
from typing import Any

from ovlinspect.checkpoint import model as m
from ovlinspect.checkpoint.compare import Bounds, compare_trees
from ovlinspect.host.view import View
from ovlinspect.kernel import mountapi as api


def verify_dump(dump: m.Dump, bounds: Bounds) -> list[dict[str, Any]]:
    """One verification entry per overlay of ``dump``."""
    return [verify_overlay(ov, bounds) for ov in dump.overlays]


def _live_root(ov: m.DumpOverlay) -> int:
    view = View(ov.pid or os.getpid())
    try:
        fd, why = view.open_mount(ov.mount_point, ov.mount_id)
        if fd is None:
            raise OSError(2, why or "the live overlay is unreachable")
        try:
            return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
    finally:
        view.close()


def verify_overlay(ov: m.DumpOverlay, bounds: Bounds) -> dict[str, Any]:
    """Rebuild ``ov`` in a throwaway namespace and compare; ``verified`` True/False/None."""
    entry: dict[str, Any] = {"mount_point": m.text_to_wire(ov.mount_point),
                             "mount_id": ov.mount_id, "verified": None}
    if not ov.restorable:
        entry["skipped"] = [r.code for r in ov.reasons]
        return entry
    if os.geteuid() != 0:
        entry["error"] = "--verify needs root (mounting, and decoding handles)"
        return entry
    start = time.monotonic()
    try:
        live = _live_root(ov)
    except OSError as exc:
        entry["error"] = f"cannot open the live overlay: {exc.strerror or exc}"
        return entry
    target = tempfile.mkdtemp(prefix="ovlinspect-verify-")
    try:
        entry.update(_wire_paths(_in_child(ov, live, target, bounds)))
    finally:
        os.close(live)
        shutil.rmtree(target, ignore_errors=True)
    entry["seconds"] = round(time.monotonic() - start, 3)
    return entry


def _wire_paths(out: dict[str, Any]) -> dict[str, Any]:
    """Paths from the tree walk as lossless wire text (non-UTF-8 names as base64)."""
    if isinstance(out.get("where"), str):
        out["where"] = m.text_to_wire(out["where"])
    diff = out.get("difference")
    if isinstance(diff, dict) and isinstance(diff.get("path"), str):
        diff["path"] = m.text_to_wire(diff["path"])
    return out


def _in_child(ov: m.DumpOverlay, live: int, target: str, bounds: Bounds) -> dict[str, Any]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(rfd)
        code = 0
        try:
            out = _child(ov, live, target, bounds)
        except BaseException as exc:
            out = {"verified": False, "error": f"rebuild failed: {exc!r}"}
            code = 1
        try:
            os.write(wfd, json.dumps(out).encode())
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + bounds.max_seconds + 60
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                return {"verified": None, "error": "the rebuild did not finish in time"}
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {"verified": None, "error": "the rebuild child died"}


def _child(ov: m.DumpOverlay, live: int, target: str, bounds: Bounds) -> dict[str, Any]:
    from ovlinspect.checkpoint.restore import restore

    api.unshare(api.CLONE_NEWNS)
    api.make_rprivate("/")
    result = restore(ov, target, read_only_rebuild=True)
    out: dict[str, Any] = {"restore": result.result,
                           "layers": {c.label: c.ok for c in result.layers}}
    if not result.ok:
        out["verified"] = False
        out["difference"] = {"what": "restore", "why": result.error}
        return out
    new = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        out.update(compare_trees(live, new, bounds))
    finally:
        os.close(new)
    return out
