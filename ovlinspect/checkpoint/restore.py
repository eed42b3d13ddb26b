"""Restore one dumped overlay at a target directory, in the caller's mount namespace, and prove
the result by handle: each layer of the new overlay must be the same real directory (same fs
uuid and handle) as in the dump.  What was mounted is detached again when that proof fails.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ovlinspect.checkpoint import model as m
from ovlinspect.checkpoint.locate import Found, find_again
from ovlinspect.checkpoint.recipe import ReplayError, build_recipe, replay
from ovlinspect.engine.analyse import analyse
from ovlinspect.engine.state import NamespaceContext
from ovlinspect.host.fsindex import FsIndex
from ovlinspect.host.processes import read_text
from ovlinspect.host.view import View
from ovlinspect.kernel import mountapi as api
from ovlinspect.kernel.syscalls import fd_mount_id
from ovlinspect.model import Overlay, Verified
from ovlinspect.model.codec import text_to_wire
from ovlinspect.mounts.mountinfo import MountEntry, parse

# Outcomes (``result``).
VERIFIED = "verified"
REFUSED = "refused"          # the dump says this overlay is not restorable
NOT_FOUND = "layer-not-found"  # a layer's real directory is not reachable here
MOUNT_FAILED = "mount-failed"
MISMATCH = "verification-failed"


@dataclass
class LayerCheck:
    """One layer of the restored overlay against the dump."""

    label: str
    path: str | None
    ok: bool
    why: str = ""


@dataclass
class RestoreResult:
    """What a restore did and whether it holds."""

    result: str
    target: str
    mount_id: int | None = None
    unique_id: int | None = None
    unmounted: bool = False
    error: str = ""
    reasons: list[m.Reason] = field(default_factory=list)
    layers: list[LayerCheck] = field(default_factory=list)
    recipe: list[m.Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Mounted and verified."""
        return self.result == VERIFIED

    def to_wire(self) -> dict[str, Any]:
        """The JSON ``restore`` prints."""
        from ovlinspect.checkpoint.model import _step

        return {
            "schema": m.DUMP_SCHEMA, "result": self.result, "verified": self.ok,
            "target": text_to_wire(self.target), "mount_id": self.mount_id,
            "unique_id": self.unique_id, "unmounted": self.unmounted,
            "error": text_to_wire(self.error),
            "reasons": [{"code": r.code, "layer": r.layer, "message": text_to_wire(r.message)}
                        for r in self.reasons],
            "layers": [{"label": c.label, "path": None if c.path is None else text_to_wire(c.path),
                        "ok": c.ok, "why": text_to_wire(c.why)} for c in self.layers],
            "recipe": [_step(s) for s in self.recipe],
        }


def own_mounts() -> list[MountEntry]:
    """The caller's mount table."""
    mounts, _ = parse(read_text("/proc/self/mountinfo"))
    return mounts


def locate_layers(ov: m.DumpOverlay, view: View, mounts: list[MountEntry],
                  checks: list[LayerCheck]) -> dict[str, Found]:
    """Every layer's real directory in ``view``, checked by handle (fds owned by the caller)."""
    found: dict[str, Found] = {}
    for item in ov.layers:
        fs_path = item.path_in_mount
        dev = item.mount.dev if item.mount is not None else None
        got = find_again(view, mounts, [p for p in (item.restore_path, item.path) if p], dev,
                         fs_path, item.fs_uuid, item.handle, (item.dev, item.ino))
        if got is None:
            checks.append(LayerCheck(item.label, None, False, "not found with its dumped handle"))
            continue
        found[item.label] = got
    return found


def restore(ov: m.DumpOverlay, target: str, *, read_only_rebuild: bool = False) -> RestoreResult:
    """Rebuild ``ov`` at ``target`` and verify it; detach it again if verification fails.

    ``read_only_rebuild`` (used by ``dump --verify`` while the live overlay still runs) stacks
    the upper as the top lower, without workdir, so no layer is written.
    """
    result = RestoreResult(result=REFUSED, target=target)
    if not ov.restorable:
        result.reasons = list(ov.reasons)
        return result
    view = View(os.getpid())
    try:
        return _restore(ov, target, view, result, read_only_rebuild)
    finally:
        view.close()


def _restore(ov: m.DumpOverlay, target: str, view: View, result: RestoreResult,
             read_only_rebuild: bool) -> RestoreResult:
    mounts = own_mounts()
    found = locate_layers(ov, view, mounts, result.layers)
    try:
        if result.layers:
            result.result = NOT_FOUND
            result.error = "a layer's real directory is not reachable in this namespace"
            return result
        paths = {label: f.path for label, f in found.items()}
        result.recipe = build_recipe(ov, paths, read_only_rebuild=read_only_rebuild)
        try:
            replay(result.recipe, target, {label: f.fd for label, f in found.items()})
        except ReplayError as exc:
            result.result = MOUNT_FAILED
            result.error = str(exc)
            return result
    finally:
        for item in found.values():
            item.close()
    _verify(ov, target, result, read_only_rebuild)
    if not result.ok:
        _detach(target, result)
    return result


def _new_mount(target: str) -> MountEntry | None:
    fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        mount_id = fd_mount_id(fd)
    finally:
        os.close(fd)
    return next((e for e in own_mounts() if e.mount_id == mount_id
                 and e.fs_type == "overlay"), None)


def _verify(ov: m.DumpOverlay, target: str, result: RestoreResult,
            read_only_rebuild: bool) -> None:
    entry = _new_mount(target)
    if entry is None:
        result.result, result.error = MISMATCH, "no overlay is mounted at the target"
        return
    result.mount_id = entry.mount_id
    new = _analyse(entry)
    result.unique_id = new.unique_id
    result.layers = compare_layers(ov, new, read_only_rebuild)
    if not read_only_rebuild and ov.root_handle is not None and ov.root == "/" and (
            new.root_handle is None or new.root_handle.hex != ov.root_handle.hex):
        result.layers.append(LayerCheck("root", target, False,
                                        "the new overlay's root handle differs from the dump"))
    bad = [c for c in result.layers if not c.ok]
    result.result = VERIFIED if not bad else MISMATCH
    if bad:
        result.error = f"{bad[0].label}: {bad[0].why}"


def _analyse(entry: MountEntry) -> Overlay:
    """The engine's verdicts on the new mount, from the caller's own view."""
    view = View(os.getpid())
    mounts = own_mounts()
    index = FsIndex(view, mounts)
    try:
        return analyse(entry, NamespaceContext(view=view, index=index))
    finally:
        index.close()
        view.close()


def compare_layers(ov: m.DumpOverlay, new: Overlay, read_only_rebuild: bool) -> list[LayerCheck]:
    """Each dumped layer against the new overlay's layer at the same position."""
    by_label = {layer.label: layer for layer in new.layers}
    if read_only_rebuild:
        # The upper became lower[0], each lower moved down one.
        moved = {}
        for layer in new.layers:
            if layer.role == "lower":
                moved["upper" if layer.index == 0 and ov.layer("upper") else
                      f"lower[{layer.index - (1 if ov.layer('upper') else 0)}]"] = layer
            elif layer.role == "data":
                moved[layer.label] = layer
        by_label = moved
    checks: list[LayerCheck] = []
    for item in ov.layers:
        if read_only_rebuild and item.role == "work":
            continue
        got = by_label.get(item.label)
        if got is None:
            checks.append(LayerCheck(item.label, None, False, "missing from the new overlay"))
            continue
        path = got.real_path or got.host_path or got.path
        same = got.handle is not None and item.handle is not None and (
            got.handle.type, got.handle.hex) == (item.handle.type, item.handle.hex) and (
            item.fs_uuid is None or got.fs_uuid == item.fs_uuid)
        if not same and item.handle is None:
            same = (got.dev, got.ino) == (item.dev, item.ino)
        if not same:
            checks.append(LayerCheck(item.label, path, False, "a different directory"))
        elif item.status == m.PROVEN and got.verified != Verified.MATCH:
            checks.append(LayerCheck(item.label, path, False,
                                     f"not proven in the new overlay ({got.proof.reason})"))
        else:
            checks.append(LayerCheck(item.label, path, True))
    return checks


def _detach(target: str, result: RestoreResult) -> None:
    """Unmount what this restore mounted (only if it is still the top mount at ``target``)."""
    if result.mount_id is None:
        return
    entry = _new_mount(target)
    if entry is not None and entry.mount_id == result.mount_id:
        try:
            api.umount(target, api.MNT_DETACH)
            result.unmounted = True
        except OSError as exc:
            result.error += f"; unmounting failed: {exc.strerror or exc}"
