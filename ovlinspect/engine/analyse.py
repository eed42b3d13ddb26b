"""Analyse one overlay mount: resolve its declared layers, gather evidence from the merged tree,
reconcile the two, then apply the hazard rules and set the status.

Nothing here writes: directories are read with O_NOATIME and lookups use O_PATH.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from ovlinspect.engine.declared import parse_overlay
from ovlinspect.engine.evidence import Evidence, gather
from ovlinspect.engine.reconcile import Outcome, Reconciler
from ovlinspect.engine.resolution import resolve_layers
from ovlinspect.engine.rules import (
    ambiguous_detached,
    hidden_submounts,
    no_handles,
    path_hazards,
    status,
)
from ovlinspect.engine.state import LayerState, NamespaceContext, Outer, close_all
from ovlinspect.host.backing import backing_of
from ovlinspect.host.view import View
from ovlinspect.model import HazardCode, Overlay, Verified
from ovlinspect.model.hazards import hazard
from ovlinspect.model.reasons import Reason
from ovlinspect.mounts.mountinfo import MountEntry

__all__ = ["NamespaceContext", "Outer", "analyse", "parse_overlay"]


def analyse(entry: MountEntry, ctx: NamespaceContext) -> Overlay:
    """Parse, resolve and verify one overlay mount in its namespace."""
    overlay = parse_overlay(entry)
    if overlay.layers and ctx.view is None:
        for layer in overlay.layers:
            layer.verify_note = ctx.no_view_reason
            layer.proof.reason = Reason.NO_VIEW.value
        overlay.hazards.append(hazard(HazardCode.UNREADABLE, None, ctx.no_view_reason))
    elif overlay.layers:
        with _open_root(ctx.view, entry, overlay) as root_fd:
            _verify(overlay, entry, ctx, root_fd)
    overlay.status = status(overlay)
    return overlay


def _verify(overlay: Overlay, entry: MountEntry, ctx: NamespaceContext,
            root_fd: int | None) -> None:
    opts = overlay.options
    has_upper = opts.upperdir is not None
    if root_fd is not None:
        ev = gather(root_fd, entry.mount_point, entry.root, has_upper)
    else:
        ev = Evidence(mount_point=entry.mount_point, prefix=entry.root.strip("/"),
                      has_upper=has_upper)
    ev.mount_id = entry.mount_id
    overlay.notes += ev.notes
    overlay.unique_id = ev.unique_id
    overlay.root_handle = ev.root_handle
    states = [LayerState(layer) for layer in overlay.layers]
    try:
        resolve_layers(states, ctx, ev)
        outcome = Reconciler(states, ev, ctx, root_fd, opts.flags).run()
        _backing(states, ctx)
        _findings(overlay, states, ev, outcome, ctx)
    finally:
        close_all(states)


def _findings(overlay: Overlay, states: list[LayerState], ev: Evidence, outcome: Outcome,
              ctx: NamespaceContext) -> None:
    path_hazards(states, outcome)
    ambiguous_detached(overlay, outcome)
    hidden_submounts(states)
    if not ev.handles_available:
        no_handles(overlay, ev.no_handles_type)
    if ev.listing_refused:
        overlay.notes.append("the merged tree was not sampled: O_NOATIME refused (needs "
                             "CAP_FOWNER), and reading it otherwise would change atimes")
    for orphan in outcome.orphans:
        if orphan.kind == "path" and not any(s.layer.real_path == orphan.root for s in states):
            overlay.notes.append(f"merged entries come from {orphan.root}, which no declared "
                                 "layer could be matched with")
    if not ctx.can_decode and any(s.layer.verified != Verified.MATCH for s in states):
        overlay.notes.append(f"real paths of unproven layers unknown: {ctx.decode_reason}")


def _backing(states: list[LayerState], ctx: NamespaceContext) -> None:
    for state in states:
        if state.index is None or state.layer.mount_id is None:
            continue
        mount = state.index.by_id.get(state.layer.mount_id)
        if mount is not None:
            state.layer.backing = backing_of(mount, state.index.view)


@contextmanager
def _open_root(view: View, entry: MountEntry, overlay: Overlay) -> Iterator[int | None]:
    fd, why = view.open_mount(entry.mount_point, entry.mount_id)
    if fd is None and why and "covered" in why:
        overlay.hazards.append(hazard(HazardCode.SHADOWED_MOUNT, None, why))
    elif fd is None:
        overlay.notes.append(why or "overlay root unreachable")
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)
