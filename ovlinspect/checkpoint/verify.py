"""``dump --verify``: rebuild each overlay in a throwaway namespace and compare the rebuilt merged
tree with the live one.

As root, a restorable overlay is rebuilt by :func:`ovlinspect.checkpoint.restore.restore` in a
forked child that unshares its mount namespace (and makes it private), so nothing it mounts is
ever seen by anyone else; the namespace dies with the child.  The live overlay keeps running
meanwhile, so the rebuild is read-only: the upper is stacked as the top lower and no workdir is
given (mounting a second overlay on the live upper/workdir would reset its work directory).  Each
layer is still checked by handle against the dump.  The live merged tree is opened before the
fork and only read, through a read-only (and where allowed noatime) clone of its mount
(``live``: ``quiet-clone``; see :mod:`ovlinspect.checkpoint.live`); never through the live mount
itself, whose reads (readlink, opens without ``O_NOATIME``) would update upper atimes.

Otherwise (not root, or layers that are only ``likely``) the same read-only rebuild is made as a
detached mount by :mod:`ovlinspect.checkpoint.rebuild`, in a user namespace when not root, and
compared by this process.  ``verified`` is true only when every layer was proven by handle in
the dump and the whole tree compared equal.  Each entry's ``reason`` says why not (the ``V_*``
codes of :mod:`ovlinspect.checkpoint.model`):

- ``likely-only``: rebuilt and compared (``tree`` says how it went), but some layer is tied to
  the overlay only by inode numbers (a rootless overlay gives no handles, even to root), so
  ``verified`` stays false;
- ``trusted-xattrs``: not root and the overlay is not ``userxattr``: a rebuild in a user
  namespace cannot read trusted.overlay.* (opaque, redirect, metacopy) and would build another
  tree, so none is attempted;
- ``no-user-namespace``: not root and the kernel refused a user namespace;
- ``unreadable``: no difference, but some entries could not be read as this user;
- ``upper-not-in-use``: the dumped upper is the upper of no mounted overlay
  (:mod:`ovlinspect.checkpoint.inuse`), so it is not this one's: the dump is wrong;
- ``needs-root``: not root, and the dump is not restorable only because layers are unproven for
  lack of privilege (``no-decode-privilege``, ``noatime-refused``, ``no-view``): nothing is
  rebuilt;
- ``live-not-quiet``: no read-only clone of the live mount could be made (a user without root
  where user namespaces are refused, or something is mounted inside the merged tree), so the
  live tree is not read at all;
- ``live-changed`` (``verified`` null): the live tree was written while it was compared (a
  name gone when read, or a difference whose live side changed meanwhile); ``changed`` says
  where;
- ``compare-failed`` (``verified`` null): reading a tree failed otherwise (EIO, ...);
- ``differs`` / ``rebuild-failed`` / ``bounded`` / ``not-restorable`` / ``live-unreachable``.
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
from ovlinspect.checkpoint.compare import Bounds, compare_trees, open_dir
from ovlinspect.checkpoint.live import NotQuiet, live_dir
from ovlinspect.checkpoint.rebuild import rebuild
from ovlinspect.host.quietlink import privileged
from ovlinspect.host.view import View
from ovlinspect.kernel import mountapi as api
from ovlinspect.model.reasons import Reason


def verify_dump(dump: m.Dump, bounds: Bounds) -> list[dict[str, Any]]:
    """One verification entry per overlay of ``dump``."""
    return [verify_overlay(ov, bounds) for ov in dump.overlays]


def _live_root(ov: m.DumpOverlay) -> tuple[int, str]:
    """The live overlay's root to read through, and how (see :mod:`.live`)."""
    pid = ov.pid or os.getpid()
    view = View(pid)
    try:
        fd, why = view.open_mount(ov.mount_point, ov.mount_id)
        if fd is None:
            raise OSError(2, why or "the live overlay is unreachable")
        try:
            return live_dir(fd, pid)
        finally:
            os.close(fd)
    finally:
        view.close()


def verify_overlay(ov: m.DumpOverlay, bounds: Bounds) -> dict[str, Any]:
    """Rebuild ``ov`` in a throwaway namespace and compare; ``verified`` True/False/None."""
    entry: dict[str, Any] = {"mount_point": m.text_to_wire(ov.mount_point),
                             "mount_id": ov.mount_id, "verified": None, "reason": None}
    codes = {r.code for r in ov.reasons}
    likely = bool(codes) and codes <= {m.R_LIKELY}
    root = privileged()
    if not ov.restorable and not likely:
        entry["skipped"] = [r.code for r in ov.reasons]
        if not root and _for_lack_of_privilege(ov):
            return _unproven(entry, m.V_NEEDS_ROOT, "some layer is unproven only because this "
                             "user may not decode handles, read it without changing atimes, "
                             "or look into the process")
        entry["reason"] = m.V_NOT_RESTORABLE
        return entry
    if not root and not ov.options.userxattr:
        return _unproven(entry, m.V_TRUSTED_XATTRS, "a rebuild in a user namespace cannot read "
                         "trusted.overlay.* xattrs; only root can rebuild this overlay")
    start = time.monotonic()
    try:
        live, entry["live"] = _live_root(ov)
    except NotQuiet as exc:
        return _unproven(entry, m.V_LIVE_NOT_QUIET, str(exc))
    except OSError as exc:
        return _unproven(entry, m.V_LIVE_UNREACHABLE,
                         f"cannot open the live overlay: {exc.strerror or exc}")
    try:
        if ov.restorable and root:
            target = tempfile.mkdtemp(prefix="ovlinspect-verify-")
            try:
                entry.update(_in_child(ov, live, target, bounds))
            finally:
                shutil.rmtree(target, ignore_errors=True)
        else:
            entry.update(_detached(ov, live, bounds, userns=not root))
    except OSError as exc:
        entry.update(_compare_failed(exc))
    finally:
        os.close(live)
    entry.update(_wire_paths(_verdict(entry, likely)))
    entry["seconds"] = round(time.monotonic() - start, 3)
    return entry


PRIVILEGE_REASONS = frozenset({Reason.NO_DECODE_PRIVILEGE.value, Reason.NOATIME_REFUSED.value,
                               Reason.NO_VIEW.value})


def _for_lack_of_privilege(ov: m.DumpOverlay) -> bool:
    """Every blocking reason is a layer only likely, or unverified for a reason that root would
    not meet; at least one of the latter."""
    def proof_reason(label: str | None) -> str | None:
        item = ov.layer(label) if label is not None else None
        return None if item is None else item.proof.get("reason")

    lacking = [r for r in ov.reasons if r.code == m.R_UNVERIFIED
               and proof_reason(r.layer) in PRIVILEGE_REASONS]
    rest = [r for r in ov.reasons if r.code != m.R_LIKELY and r not in lacking]
    return bool(lacking) and not rest


def _unproven(entry: dict[str, Any], reason: str, error: str) -> dict[str, Any]:
    entry.update(verified=False, reason=reason, error=error)
    return entry


def _compare_failed(exc: OSError) -> dict[str, Any]:
    return {"verified": None, "reason": m.V_COMPARE_FAILED,
            "error": f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")}


def _compare(live: int, new: int, bounds: Bounds) -> dict[str, Any]:
    """:func:`compare_trees`, with a read error as ``compare-failed`` (never raised)."""
    try:
        return compare_trees(live, new, bounds)
    except OSError as exc:
        return _compare_failed(exc)


def _detached(ov: m.DumpOverlay, live: int, bounds: Bounds, *, userns: bool) -> dict[str, Any]:
    """The rebuild as a detached mount (see :mod:`ovlinspect.checkpoint.rebuild`), compared
    here."""
    built = rebuild(ov, userns=userns, timeout=bounds.max_seconds + 60)
    out: dict[str, Any] = {"rebuild": built.mode, "layers": built.layers,
                           "upper_in_use": built.upper_in_use}
    if built.fd is None:
        out.update(verified=False, reason=built.reason, error=built.error)
        if built.reason == m.V_REBUILD_FAILED:
            out["difference"] = {"what": "restore", "why": built.error}
        return out
    try:
        new = open_dir(built.fd)
    except OSError as exc:
        out.update(_compare_failed(exc))
        return out
    finally:
        os.close(built.fd)
    try:
        out.update(_compare(live, new, bounds))
    finally:
        os.close(new)
    return out


def _verdict(out: dict[str, Any], likely: bool) -> dict[str, Any]:
    """``verified`` and ``reason`` from the comparison: true only for a complete, equal tree of
    proven layers, read in full."""
    if out.get("upper_in_use") is False and out.get("reason") == m.V_COMPARE_FAILED:
        out["verified"], out["reason"] = False, m.V_UPPER_NOT_IN_USE  # proven wrong anyway
    if out.get("reason") is not None:
        return out
    if "entries" not in out:  # the rebuild failed before any comparison
        out["verified"], out["reason"] = False, m.V_REBUILD_FAILED
        return out
    tree = "differs" if out["verified"] is False else (
        "changed" if out.get("changed") else
        "bounded" if out["verified"] is None else "same")
    out["tree"] = tree
    if out.get("upper_in_use") is False:
        out["verified"], out["reason"] = False, m.V_UPPER_NOT_IN_USE
    elif tree == "changed":
        out["verified"], out["reason"] = None, m.V_LIVE_CHANGED
    elif tree == "differs":
        out["reason"] = m.V_DIFFERS
    elif tree == "bounded":
        out["reason"] = m.V_BOUNDED
    elif out.get("unreadable"):
        out["verified"], out["reason"] = False, m.V_UNREADABLE
    elif likely:
        out["verified"], out["reason"] = False, m.V_LIKELY
    return out


def _wire_paths(out: dict[str, Any]) -> dict[str, Any]:
    """Paths from the tree walk as lossless wire text (non-UTF-8 names as base64)."""
    if isinstance(out.get("where"), str):
        out["where"] = m.text_to_wire(out["where"])
    if isinstance(out.get("first_unreadable"), str):
        out["first_unreadable"] = m.text_to_wire(out["first_unreadable"])
    changed = out.get("changed")
    if isinstance(changed, dict) and isinstance(changed.get("path"), str):
        changed["path"] = m.text_to_wire(changed["path"])
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
    new = open_dir(api.AT_FDCWD, target)
    try:
        out.update(_compare(live, new, bounds))
    finally:
        os.close(new)
    return out
