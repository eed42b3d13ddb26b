"""Every hazard rule, as functions of the model and the engine's findings, and the status.

The rules never make a syscall: they read what the evidence and reconcile stages recorded.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from ovlinspect.engine.reconcile import Outcome
from ovlinspect.engine.resolution import unfollowed
from ovlinspect.engine.state import LayerState
from ovlinspect.host.view import is_fd_path
from ovlinspect.kernel.handles import format_uuid
from ovlinspect.model import HazardCode, Layer, Overlay, Severity, Status, Strength, Verified
from ovlinspect.model.hazards import hazard
from ovlinspect.model.reasons import FINAL, Reason
from ovlinspect.mounts.overlayopts import MAX_LOWERS, is_volatile

LEGACY_LIMIT = 4096


def text_hazards(overlay: Overlay) -> None:
    """Hazards the options string alone shows (used live and for --from-file)."""
    opts = overlay.options
    if overlay.fs_type.startswith("fuse."):
        overlay.hazards.append(hazard(
            HazardCode.NO_LAYER_INFO, None,
            f"{overlay.fs_type} mounts list no layers in mountinfo"))
        return
    if opts.declared_lowers > MAX_LOWERS:
        overlay.hazards.append(hazard(
            HazardCode.TOO_MANY_LOWERS, None,
            f"{opts.declared_lowers} lower layers declared, the kernel allows {MAX_LOWERS}: "
            f"only the first {MAX_LOWERS} are listed"))
    if opts.legacy_length >= LEGACY_LIMIT:
        overlay.hazards.append(hazard(
            HazardCode.OPTIONS_NEAR_LIMIT, None,
            f"replaying these options with mount(2) needs {opts.legacy_length} bytes "
            f"(limit {LEGACY_LIMIT})"))
    for layer in overlay.layers:
        if is_fd_path(layer.declared):
            what = "a detached mount ('/')" if layer.declared == "/" else "a file descriptor"
            layer.hazards.append(hazard(
                HazardCode.FD_PATH, layer.label,
                f"{layer.label} was given as {what}: {layer.declared}"))
        elif not layer.declared.startswith("/"):
            layer.hazards.append(hazard(
                HazardCode.RELATIVE_PATH, layer.label,
                f"{layer.label} path {layer.declared!r} is relative to an unrecorded cwd"))
    upper = next((layer for layer in overlay.layers if layer.role == "upper"), None)
    if upper is not None and is_volatile(opts):
        upper.hazards.append(hazard(
            HazardCode.VOLATILE, "upper",
            "upper layer is volatile: no sync, discard after a crash"))


def _codes(layer: Layer) -> set[HazardCode]:
    return {h.code for h in layer.hazards}


def path_hazards(states: list[LayerState], outcome: Outcome) -> None:
    """Symlinks, foreign paths, detached sources, paths that resolve nowhere or to the wrong
    directory."""
    for state in states:
        layer = state.layer
        if layer.symlinks:
            chain = " -> ".join(f"{s.path} -> {s.target}" for s in layer.symlinks[:3])
            layer.hazards.append(hazard(HazardCode.SYMLINK, layer.label,
                                        f"{layer.label} goes through symlinks: {chain}"))
        if layer.host_path is not None:
            layer.hazards.append(hazard(
                HazardCode.FOREIGN_PATH, layer.label,
                f"{layer.declared} is not in the process's namespace; outside it resolves to "
                f"{layer.host_path} ({layer.verified.value})"))
        uuid = outcome.detached.get(layer.label)
        if uuid is not None:
            layer.hazards.append(hazard(
                HazardCode.SOURCE_DETACHED, layer.label,
                f"{layer.label}: its filesystem ({format_uuid(uuid)}) is mounted nowhere "
                "visible; only the overlay keeps it alive"))
        codes = _codes(layer)
        if HazardCode.FD_PATH in codes or HazardCode.SOURCE_DETACHED in codes:
            continue
        if state.fd is None and not state.self_covered and unfollowed(state):
            where = f"; the layer in use is {layer.real_path}" if layer.real_path else ""
            layer.hazards.append(hazard(
                HazardCode.UNREADABLE, layer.label,
                f"{layer.declared} could not be followed "
                f"({errno.errorcode.get(state.resolve_errno or 0, state.resolve_errno)}){where}"))
        elif state.fd is None and not state.self_covered:
            if not layer.declared.startswith("/"):
                continue  # the cwd is unknown, not the path: relative-path says so
            where = f"; really {layer.real_path}" if layer.real_path else ""
            layer.hazards.append(hazard(
                HazardCode.NOT_FOUND, layer.label, f"{layer.declared} resolves nowhere{where}"))
        elif _likely_stale(layer):
            layer.hazards.append(hazard(
                HazardCode.STALE_PATH, layer.label,
                f"{layer.path or layer.host_path} is likely not the {layer.role} layer in use "
                f"({layer.verify_note}; no overlay handles, so not proven)"))
        elif layer.verified == Verified.MISMATCH:
            where = f"; the layer in use is {layer.real_path}" if layer.real_path else ""
            if layer.real_path and layer.real_path in (layer.path, layer.host_path):
                where = (f"; the layer in use is the directory underneath, now covered by mount "
                         f"{layer.mount_id}")
            layer.hazards.append(hazard(
                HazardCode.STALE_PATH, layer.label,
                f"{layer.path or layer.host_path} is not the {layer.role} layer in use{where}"))


def _likely_stale(layer: Layer) -> bool:
    proof = layer.proof
    return (layer.verified == Verified.UNVERIFIED and proof.strength is Strength.LIKELY
            and proof.reason in (Reason.ELIMINATION, Reason.NAME_ABSENT, Reason.INODE_DIFFERS))


def ambiguous_detached(overlay: Overlay, outcome: Outcome) -> None:
    """A detached filesystem that serves one of several unproven layers: a mount-level hazard."""
    for labels, orphan in outcome.ambiguous_detached:
        sample = ", ".join(repr(n) for n in orphan.names[:3])
        which = ", ".join(labels) or "a lower"
        overlay.hazards.append(hazard(
            HazardCode.SOURCE_DETACHED, None,
            f"one of {which}: fs {format_uuid(orphan.uuid)} serves {sample} but is mounted "
            "nowhere visible"))


def hidden_submounts(states: list[LayerState]) -> None:
    """A mount below a layer directory: the overlay does not see it (it does not cross mounts
    inside a layer), though users often expect it to."""
    for state in states:
        layer = state.layer
        if state.fd is None or state.index is None or layer.role == "work":
            continue
        base = layer.path if layer.path is not None else layer.host_path
        if not base or base == "/":
            continue
        below = state.index.mounts_below(base)
        if below:
            shown = ", ".join(below[:3]) + (f" and {len(below) - 3} more" if len(below) > 3 else "")
            layer.hazards.append(hazard(
                HazardCode.HIDDEN_SUBMOUNT, layer.label,
                f"{len(below)} mount(s) below {base} are not part of the layer: {shown}"))


def no_handles(overlay: Overlay, raw_type: int | None) -> None:
    """The overlay gives no overlay file handles: say so, and the likely reason."""
    if raw_type is None:
        return
    lowers = [layer.fs_type for layer in overlay.layers if layer.role in ("lower", "data")]
    if "userxattr" in overlay.options.flags:
        why = "it was mounted in a user namespace (rootless, userxattr)"
    elif "squashfs" in lowers:
        why = "a squashfs lower cannot decode handles (built with -no-exports?)"
    elif "overlay" in lowers:
        why = "an overlay lower without nfs_export=on cannot decode handles"
    else:
        why = ("it was mounted without CAP_DAC_READ_SEARCH in the initial user namespace, or a "
               "lower cannot decode handles")
    overlay.hazards.append(hazard(
        HazardCode.NO_HANDLES, None,
        f"the overlay gives no overlay file handles (type {raw_type:#x}, not 0xf8): {why}; "
        "layers are compared by inode number only (likely, not proven)"))


def shared_uppers(overlays: Iterable[tuple[str, Overlay]]) -> None:
    """Two overlay superblocks (different mountinfo devs) on one upper directory."""
    by_upper: dict[tuple[str, int], list[tuple[str, Overlay]]] = {}
    for dev, overlay in overlays:
        upper = next((x for x in overlay.layers if x.role == "upper"), None)
        if upper is None or upper.dev is None or upper.ino is None:
            continue
        if upper.verified != Verified.MATCH:
            continue
        by_upper.setdefault((upper.dev, upper.ino), []).append((dev, overlay))
    for group in by_upper.values():
        devs = {dev for dev, _ in group}
        if len(devs) < 2:
            continue
        for _dev, overlay in group:
            others = sorted({o.mount_point for _, o in group if o is not overlay})
            upper = next(x for x in overlay.layers if x.role == "upper")
            upper.hazards.append(hazard(
                HazardCode.SHARED_UPPER, "upper",
                f"{upper.real_path} is also the upper of {', '.join(others[:3])}"))


def status(overlay: Overlay) -> Status:
    """error > warning > unverified (something provable was not proven) > info > ok."""
    worst = overlay.worst()
    if worst is Severity.ERROR:
        return Status.ERROR
    if worst is Severity.WARNING:
        return Status.WARNING
    for layer in overlay.layers:
        if layer.verified == Verified.MATCH:
            continue
        if layer.verified == Verified.MISMATCH or layer.proof.reason not in FINAL:
            return Status.UNVERIFIED
    if not overlay.layers and not overlay.fs_type.startswith("fuse."):
        return Status.UNVERIFIED
    return Status.INFO if worst is Severity.INFO else Status.OK
