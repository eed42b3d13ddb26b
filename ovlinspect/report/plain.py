"""The ``--plain`` report: a Rich tree for humans and bug reports.

Every string from the system goes through :func:`visible` into ``Text`` objects, never markup, so
nothing in a path or process name can inject styles or terminal escapes.  Colour is dropped
automatically when the output is not a terminal.
"""

from __future__ import annotations

import os

from rich.console import Console, Group
from rich.text import Text
from rich.tree import Tree

from ovlinspect.model import Hazard, Layer, Namespace, Overlay, Scan
from ovlinspect.report.badges import (
    VERIFIED_BADGE,
    VERIFIED_STYLE,
    severity_badge,
    severity_style,
)
from ovlinspect.report.textsafe import visible

PIPE_WIDTH = 160


def _t(text: str | None, style: str = "") -> Text:
    return Text(visible(text), style=style)


def _hazard_lines(hazards: list[Hazard]) -> list[Text]:
    return [
        Text.assemble((severity_badge(h.severity), severity_style(h.severity)), " ",
                      (h.code, "bold"), ": ", _t(h.message))
        for h in hazards
    ]


def _hints(scan: Scan) -> Tree | None:
    """Each hazard code's hint, once, for the codes this report shows."""
    seen: dict[str, Hazard] = {}
    for ns in scan.namespaces:
        for overlay in ns.overlays:
            for h in overlay.all_hazards():
                seen.setdefault(h.code, h)
    if not seen:
        return None
    tree = Tree(Text("hints", style="bold"))
    for code, h in sorted(seen.items()):
        tree.add(Text.assemble((code, "bold"), ": ", _t(h.hint)))
    return tree


def _layer_node(parent: Tree, layer: Layer) -> None:
    head = Text.assemble(
        (f"{layer.label:<9}", "bold"), " ", _t(layer.real_path or layer.path or layer.host_path
                                               or layer.declared),
        "  ", (VERIFIED_BADGE[layer.verified], VERIFIED_STYLE[layer.verified]))
    codes = [h.code for h in layer.hazards]
    if codes:
        head.append("  [" + ", ".join(codes) + "]", style=severity_style(
            max((h.severity for h in layer.hazards), key=lambda s: s.rank)))
    node = parent.add(head)
    facts = [("declared", layer.declared), ("resolved", layer.path),
             ("host path", layer.host_path), ("real path", layer.real_path)]
    for name, value in facts:
        if value is not None:
            node.add(Text.assemble((f"{name}: ", "dim"), _t(value)))
    for step in layer.symlinks:
        node.add(Text.assemble(("symlink: ", "dim"), _t(step.path), " -> ", _t(step.target)))
    if layer.dev is not None:
        handle = f"{layer.handle.type}:{layer.handle.hex}" if layer.handle else "none"
        node.add(Text.assemble(
            ("fs: ", "dim"), _t(f"{layer.fs_type or '?'} dev {layer.dev} ino {layer.ino} "
                                f"mount {layer.mount_id} uuid {layer.fs_uuid or 'none'}"),
            ("  handle: ", "dim"), _t(handle)))
    if layer.verify_note:
        node.add(Text.assemble(("verify: ", "dim"), _t(layer.verify_note)))
    for line in _hazard_lines(layer.hazards):
        node.add(line)


def overlay_tree(overlay: Overlay, parent: Tree | None = None) -> Tree:
    """One overlay mount and its layers."""
    worst = overlay.worst()
    head = Text.assemble(
        _t(overlay.mount_point, "bold"), "  ", (severity_badge(worst), severity_style(worst)),
        ("  " + visible(overlay.fs_type) + f" mount {overlay.mount_id}", "dim"))
    if overlay.unique_id is not None:
        head.append(f" (unique {overlay.unique_id:#x})", style="dim")
    node = parent.add(head) if parent is not None else Tree(head)
    node.add(Text.assemble(("options: ", "dim"), _t(overlay.super_options)))
    for line in _hazard_lines(overlay.hazards):
        node.add(line)
    for note in overlay.notes:
        node.add(Text.assemble(("note: ", "dim"), _t(note)))
    for layer in overlay.layers:
        _layer_node(node, layer)
    return node


def namespace_tree(ns: Namespace) -> Tree:
    """A mount namespace, its processes and its overlay mounts."""
    worst = ns.worst()
    procs = ", ".join(
        f"{p.pid} {p.comm}" + (f" [{p.container}]" if p.container else "")
        for p in ns.processes[:6])
    if len(ns.processes) > 6:
        procs += f", … {len(ns.processes) - 6} more"
    ident = f"mnt:[{ns.mnt_ns}]" if ns.mnt_ns is not None else "mnt:[?]"
    tree = Tree(Text.assemble(
        (ident, "bold"), "  ", (severity_badge(worst), severity_style(worst)),
        f"  {len(ns.overlays)} overlay(s)  ", ("pids: ", "dim"), _t(procs)))
    for note in ns.notes:
        tree.add(Text.assemble(("note: ", "dim"), _t(note)))
    for overlay in ns.overlays:
        overlay_tree(overlay, tree)
    return tree


def render(scan: Scan) -> Group:
    """The whole report as one renderable."""
    mounts = [o for ns in scan.namespaces for o in ns.overlays]
    bad = sum(1 for o in mounts if o.all_hazards())
    parts: list[Text | Tree] = [Text.assemble(
        ("ovlinspect", "bold"), f": {len(scan.namespaces)} namespace(s), {len(mounts)} overlay "
        f"mount(s), {bad} with hazards  ({visible(scan.source)})")]
    parts += [_t(f"! {p}", "yellow") for p in scan.privileges]
    parts += [_t(f"! {e}", "red") for e in scan.errors]
    parts += [namespace_tree(ns) for ns in scan.namespaces if ns.overlays or ns.notes]
    hints = _hints(scan)
    if hints is not None:
        parts.append(hints)
    return Group(*parts)


def print_scan(scan: Scan, console: Console | None = None) -> None:
    """Print the report; colour only on a terminal."""
    if console is None:
        console = Console(highlight=False, emoji=False)
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(highlight=False, emoji=False, width=PIPE_WIDTH)
    console.print(render(scan))
