"""The overlay as its mountinfo line declares it: options parsed, layers listed, text hazards."""

from __future__ import annotations

from ovlinspect.engine.rules import text_hazards
from ovlinspect.model import Layer, Overlay, OverlayOptions
from ovlinspect.mounts.mountinfo import MountEntry, unescape
from ovlinspect.mounts.overlayopts import parse_overlay_options


def declared_layers(opts: OverlayOptions) -> list[Layer]:
    """The layers in the order the overlay uses them: upper, work, lowers top-first, data."""
    layers: list[Layer] = []
    if opts.upperdir is not None:
        layers.append(Layer(role="upper", index=0, declared=opts.upperdir))
    if opts.workdir is not None:
        layers.append(Layer(role="work", index=0, declared=opts.workdir))
    layers += [Layer(role="lower", index=i, declared=p) for i, p in enumerate(opts.lowerdir)]
    layers += [Layer(role="data", index=i, declared=p) for i, p in enumerate(opts.datadir)]
    return layers


def parse_overlay(entry: MountEntry) -> Overlay:
    """The overlay as the mountinfo line alone describes it."""
    opts, warnings = parse_overlay_options(entry.super_options)
    overlay = Overlay(
        mount_id=entry.mount_id,
        unique_id=None,
        mount_point=entry.mount_point,
        fs_type=entry.fs_type,
        source=entry.source,
        mount_options=entry.mount_options,
        super_options=unescape(entry.super_options),
        options=opts,
        root=entry.root,
        layers=[] if entry.fs_type.startswith("fuse.") else declared_layers(opts),
        notes=list(warnings),
    )
    text_hazards(overlay)
    return overlay
