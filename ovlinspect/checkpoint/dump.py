"""Build the checkpoint dump from the engine's evidence.

Every fact comes from a scan (:func:`ovlinspect.engine.scan.scan`): which layers are proven, their
real paths and handles.  This module only finds each proven directory again in a view (the
inspected namespace, pid 1's, or the dumper's own), records the mount that holds it, and decides
whether the overlay can be rebuilt.  Nothing is written and nothing is mounted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ovlinspect.checkpoint import model as m
from ovlinspect.checkpoint.locate import Found, find_again, mount_fs_path, open_in
from ovlinspect.checkpoint.recipe import build_recipe
from ovlinspect.engine.scan import scan
from ovlinspect.host.processes import ancestors, ns_inode, read_text, root_is_ns_root
from ovlinspect.host.view import View
from ovlinspect.model import Layer, Overlay, Verified
from ovlinspect.model.reasons import Reason
from ovlinspect.mounts.mountinfo import MountEntry, parse

# Unverified for these reasons is all the kernel allows: the layer does not block a restore.
UNPROVABLE_REASONS = frozenset({Reason.WORK_SAME_FS.value, Reason.DATA_ONLY.value,
                                Reason.COVERED.value, Reason.EMPTY.value})
PROPAGATION_TAGS = ("shared:", "master:", "propagate_from:", "unbindable")
MOUNT_ATTR_NAMES = ("ro", "nosuid", "nodev", "noexec", "noatime", "relatime", "strictatime",
                    "nodiratime", "nosymfollow")


class _ViewSet:
    """The views a layer may be found in: the namespace's, pid 1's, the dumper's."""

    def __init__(self, pid: int) -> None:
        self.items: list[tuple[str, View, list[MountEntry]]] = []
        mine = ns_inode(os.getpid())
        host = ns_inode(1)
        seen: set[int | None] = set()
        order = [(m.VIEW_NAMESPACE, pid), *((m.VIEW_HOST, a) for a in ancestors(pid)),
                 (m.VIEW_HOST, 1), *((m.VIEW_HOST, a) for a in ancestors(os.getpid())),
                 (m.VIEW_DUMPER, os.getpid())]
        for label, who in order:
            ns = ns_inode(who)
            if ns is None or ns in seen or (label == m.VIEW_HOST and not root_is_ns_root(who)):
                continue
            try:
                view = View(who)
                mounts, _ = parse(read_text(f"/proc/{who}/mountinfo"))
            except OSError:
                continue
            seen.add(ns)
            if label == m.VIEW_HOST and ns not in (host, mine):
                label = m.VIEW_ANCESTOR
            elif label == m.VIEW_HOST and ns == mine and ns != host:
                label = m.VIEW_DUMPER
            self.items.append((label, view, mounts))
        self.dumper_index = next((i for i, (_, v, _) in enumerate(self.items)
                                  if ns_inode(v.pid) == mine), None)

    def dumper(self) -> tuple[View, list[MountEntry]] | None:
        if self.dumper_index is None:
            return None
        _, view, mounts = self.items[self.dumper_index]
        return view, mounts

    def close(self) -> None:
        for _, view, _ in self.items:
            view.close()


@contextmanager
def _views(pid: int) -> Iterator[_ViewSet]:
    views = _ViewSet(pid)
    try:
        yield views
    finally:
        views.close()


def build_dump(pid: int | None = None, mount_point: str | None = None) -> m.Dump:
    """Dump every overlay of ``pid``'s mount namespace (default: ours), or just one."""
    target = pid if pid is not None else os.getpid()
    result = scan([target])
    dump = m.Dump(dumper_mnt_ns=ns_inode(os.getpid()), errors=list(result.errors))
    for ns in result.namespaces:
        if target not in ns.pids:
            continue
        root_pid = ns.root_pid or target
        mounts, _ = parse(read_text(f"/proc/{root_pid}/mountinfo"))
        by_id = {e.mount_id: e for e in mounts}
        with _views(root_pid) as views:
            for overlay in ns.overlays:
                if mount_point is not None and overlay.mount_point != mount_point:
                    continue
                dump.overlays.append(_overlay(overlay, by_id.get(overlay.mount_id), views,
                                              ns.mnt_ns, root_pid))
    return dump


def _overlay(ov: Overlay, entry: MountEntry | None, views: _ViewSet, mnt_ns: int | None,
             pid: int) -> m.DumpOverlay:
    optional = entry.optional if entry is not None else ()
    propagation = [tag for tag in optional if tag.startswith(PROPAGATION_TAGS)] or ["private"]
    attrs = [a for a in ov.mount_options.split(",") if a in MOUNT_ATTR_NAMES]
    out = m.DumpOverlay(
        mount_id=ov.mount_id, unique_id=ov.unique_id, mount_point=ov.mount_point, root=ov.root,
        fs_type=ov.fs_type, propagation=propagation, mount_attrs=attrs, mnt_ns=mnt_ns, pid=pid,
        options=typed_options(ov), syntax=ov.options.syntax, root_handle=ov.root_handle,
        super_options=ov.super_options)
    if ov.fs_type.startswith("fuse."):
        out.reasons.append(m.Reason(m.R_FUSE, None, "fuse-overlayfs: the kernel shows no layer "
                                    "paths and the overlay gives no handles"))
    elif not ov.layers:
        out.reasons.append(m.Reason(m.R_NO_LAYERS, None, "no layer is declared"))
    if ov.root != "/":
        out.reasons.append(m.Reason(m.R_SUBDIR, None, f"the mount shows the overlay's "
                                    f"subdirectory {ov.root}, not its root"))
    for layer in ov.layers:
        item, reason = _layer(layer, views)
        out.layers.append(item)
        if reason is not None:
            out.reasons.append(reason)
    out.restorable = not out.reasons
    if out.restorable:
        out.recipe = build_recipe(out, {item.label: item.restore_path or ""
                                        for item in out.layers})
    return out


def typed_options(ov: Overlay) -> m.OverlayOptions:
    """The non-path options the mount shows, typed."""
    flags = ov.options.flags
    opts = m.OverlayOptions()
    for name in m.BOOL_OPTIONS:
        if name in flags:
            setattr(opts, name, flags[name] != "off")
    for name in ("userxattr", "default_permissions"):
        if name in flags:
            setattr(opts, name, flags[name] != "off")
    for name in m.STRING_OPTIONS:
        if name in flags:
            setattr(opts, name, flags[name])
    if "volatile" in flags:
        opts.volatile = flags["volatile"] != "off"
    elif flags.get("fsync") == "volatile":
        opts.volatile = True
    opts.sb_readonly = "ro" in ov.options.other
    return opts


def _is_root_layer(layer: Layer) -> bool:
    return layer.role == "upper" or (layer.role == "lower" and layer.index == 0)


def _layer(layer: Layer, views: _ViewSet) -> tuple[m.DumpLayer, m.Reason | None]:
    item = m.DumpLayer(role=layer.role, index=layer.index, declared=layer.declared,
                       verified=str(layer.verified), note=layer.verify_note,
                       proof={"method": str(layer.proof.method),
                              "strength": None if layer.proof.strength is None
                              else str(layer.proof.strength),
                              "reason": layer.proof.reason})
    label = layer.label
    codes = {str(h.code) for h in layer.hazards}
    reason = layer.proof.reason
    if "source-detached" in codes or reason == Reason.FS_DETACHED.value:
        return item, m.Reason(m.R_DETACHED, label, "its filesystem is mounted nowhere visible: "
                              "the data is reachable only through the overlay")
    if layer.role == "work" and reason == Reason.WORK_OTHER_FS.value:
        return item, m.Reason(m.R_WORK, label, "the workdir is not on the upper's filesystem")
    decoded = layer.real_path is not None and (
        layer.verified == Verified.MISMATCH or _is_root_layer(layer))
    if layer.verified == Verified.MATCH or decoded:
        status, path, same_as_engine = m.PROVEN, layer.real_path, layer.verified == Verified.MATCH
    elif layer.verified == Verified.UNVERIFIED and reason in UNPROVABLE_REASONS:
        status, path, same_as_engine = m.UNPROVABLE, layer.host_path or layer.path, True
    elif layer.verified == Verified.UNVERIFIED and reason == Reason.INODE_CONSISTENT.value:
        # No handles (a rootless overlay): found, so that --verify can rebuild and compare it,
        # but only likely (see R_LIKELY), so it blocks a restore.
        status, path, same_as_engine = m.LIKELY, layer.host_path or layer.path, True
    elif layer.verified == Verified.MISMATCH:
        return item, m.Reason(m.R_COVERED, label, "the declared path is not the layer in use "
                              "and its real directory is reached by no visible mount")
    else:
        return item, m.Reason(m.R_UNVERIFIED, label, f"not proven ({reason})")
    if path is None:
        return item, m.Reason(m.R_UNVERIFIED, label, "no real path is known")
    found, where = _find(path, layer, views, same_as_engine)
    if found is None:
        return item, m.Reason(m.R_OUTSIDE, label, f"{path} is in no visible mount")
    try:
        item.status = status
        item.path, item.view = path, views.items[where][0]
        item.fs_uuid = found.uuid or (layer.fs_uuid if same_as_engine else None)
        item.handle = found.handle or (layer.handle if same_as_engine else None)
        item.dev, item.ino = found.dev, found.ino
        if found.mount is not None:
            mnt = found.mount
            item.mount = m.HolderMount(mount_id=mnt.mount_id, unique_id=found.unique_id,
                                       mount_point=mnt.mount_point, root=mnt.root, dev=mnt.dev,
                                       fs_type=mnt.fs_type)
            item.path_in_mount = mount_fs_path(mnt, path)
        item.restore_path = _dumper_path(item, found, where, views)
    finally:
        found.close()
    if item.restore_path is None:
        if _covered_for_dumper(path, views):
            return item, m.Reason(m.R_COVERED, label, f"{path} is covered in the dumper's "
                                  "namespace (another directory is there) and no other mount "
                                  "of its filesystem reaches it")
        return item, m.Reason(m.R_OUTSIDE, label, "not reachable from the dumper's namespace")
    if status == m.LIKELY:
        return item, m.Reason(m.R_LIKELY, label, "only inode numbers tie this directory to the "
                              "layer in use (the overlay gives no handles): a copy or snapshot "
                              "with the same inode numbers would look the same")
    return item, None


def _covered_for_dumper(path: str, views: _ViewSet) -> bool:
    """Something else answers at ``path`` in the dumper's namespace."""
    mine = views.dumper()
    if mine is None:
        return False
    found = open_in(mine[0], path, mine[1])
    if found is None:
        return False
    found.close()
    return True


def _find(path: str, layer: Layer, views: _ViewSet,
          same_as_engine: bool) -> tuple[Found | None, int]:
    """Open ``path`` in the first view where it is the directory the engine looked at;
    returns it and the view's index."""
    for number, (_label, view, mounts) in enumerate(views.items):
        found = open_in(view, path, mounts)
        if found is None:
            continue
        here = (found.dev, found.ino)
        if same_as_engine and (layer.dev, layer.ino) in (here, (None, None)):
            return found, number
        if not same_as_engine and (layer.verified != Verified.MISMATCH
                                   or here != (layer.dev, layer.ino)):
            # A disproved declared path's own directory is never the real one (a decoy
            # mounted over the declared path is found there first).
            return found, number
        found.close()
    return None, -1


def _dumper_path(item: m.DumpLayer, found: Found, where: int,
                 views: _ViewSet) -> str | None:
    """The same directory in the dumper's own namespace (the recipe's path)."""
    mine = views.dumper()
    if mine is None:
        return None
    view, mounts = mine
    if views.dumper_index == where and item.path is not None:
        return item.path
    fs_path = item.path_in_mount
    again = find_again(view, mounts, [item.path or ""], item.mount.dev if item.mount else None,
                       fs_path, item.fs_uuid, item.handle, (found.dev, found.ino))
    if again is None:
        return None
    again.close()
    return again.path
