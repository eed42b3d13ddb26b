"""The ``--plain`` report: a Rich tree for humans and bug reports.

Every string from the system goes through :func:`visible` into ``Text`` objects, never markup, so
nothing in a path or process name can inject styles or terminal escapes.  Colour is dropped
automatically when the output is not a terminal.

A path is never broken, so it can be copied from a bug report: every label is a list of fields
(a path, ``declared: PATH``, a badge, a message), and lines only ever break between fields.  When
the output is not a terminal nothing wraps at all; on a terminal fields wrap at its width, and a
field wider than that stays on one line (the terminal folds it, without inserting a line break).
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.segment import Segments
from rich.text import Text
from rich.tree import Tree

from ovlinspect.model import Hazard, Layer, Namespace, Overlay, Scan, Status
from ovlinspect.report.badges import (
    STATUS_BADGE,
    STATUS_STYLE,
    VERIFIED_BADGE,
    VERIFIED_STYLE,
    severity_badge,
    severity_style,
    worst_status,
)
from ovlinspect.report.textsafe import visible

NO_WRAP = 1_000_000
"""The console width the tree is rendered at, so Rich itself never wraps or crops a line."""
GUIDE = 4
"""Cells a tree level indents by (``├── ``)."""
MIN_WIDTH = 20
FIELD_GAP = "  "


def _t(text: str | None, style: str = "") -> Text:
    return Text(visible(text), style=style)


def _fields(parts: list[Text | str], width: int | None, gap: str = FIELD_GAP) -> Text:
    """``parts`` joined by ``gap`` on one line, or, when ``width`` is given and they do not fit,
    on several lines broken only between parts (continuation lines indented by two spaces)."""
    pieces = [p if isinstance(p, Text) else Text(p) for p in parts if p]
    if width is None:
        return Text(gap).join(pieces)
    out = Text()
    used = 0
    for piece in pieces:
        size = piece.cell_len
        if used and used + len(gap) + size > width:
            out.append("\n  ")
            used = 2
        elif used:
            out.append(gap)
            used += len(gap)
        out.append_text(piece)
        used += size
    return out


def _fact(name: str, value: str | None) -> Text:
    return Text.assemble((f"{name}: ", "dim"), _t(value))


def _narrower(width: int | None) -> int | None:
    return None if width is None else max(width - GUIDE, MIN_WIDTH)


def _hazard_lines(hazards: list[Hazard], width: int | None) -> list[Text]:
    return [
        _fields([Text(severity_badge(h.severity), style=severity_style(h.severity)),
                 Text.assemble((h.code, "bold"), ":"), _t(h.message)], width, gap=" ")
        for h in hazards
    ]


def _hints(scan: Scan, width: int | None) -> Tree | None:
    """Each hazard code's hint, once, for the codes this report shows.

    Hints are the catalogue's prose (no paths), so they wrap between words."""
    seen: dict[str, Hazard] = {}
    for ns in scan.namespaces:
        for overlay in ns.overlays:
            for h in overlay.all_hazards():
                seen.setdefault(h.code, h)
    if not seen:
        return None
    tree = Tree(Text("hints", style="bold"))
    inner = _narrower(width)
    for code, h in sorted(seen.items()):
        words: list[Text | str] = [Text.assemble((code, "bold"), ":")]
        words += visible(h.hint).split(" ")
        tree.add(_fields(words, inner, gap=" "))
    return tree


def _layer_node(parent: Tree, layer: Layer, width: int | None) -> None:
    head: list[Text | str] = [
        Text.assemble((f"{layer.label:<9}", "bold"), " ",
                      _t(layer.real_path or layer.path or layer.host_path or layer.declared)),
        Text(VERIFIED_BADGE[layer.verified], style=VERIFIED_STYLE[layer.verified])]
    if layer.hazards:
        head.append(Text("[" + ", ".join(h.code for h in layer.hazards) + "]", style=severity_style(
            max((h.severity for h in layer.hazards), key=lambda s: s.rank))))
    node = parent.add(_fields(head, width))
    inner = _narrower(width)
    facts = [("declared", layer.declared), ("resolved", layer.path),
             ("host path", layer.host_path), ("real path", layer.real_path)]
    for name, value in facts:
        if value is not None:
            node.add(_fact(name, value))
    for step in layer.symlinks:
        node.add(_fields([_fact("symlink", step.path), Text("-> ") + _t(step.target)], inner,
                         gap=" "))
    if layer.dev is not None:
        handle = f"{layer.handle.type}:{layer.handle.hex}" if layer.handle else "none"
        node.add(_fields([
            _fact("fs", layer.fs_type or "?"), _t(f"dev {layer.dev}"), _t(f"ino {layer.ino}"),
            _t(f"mount {layer.mount_id}"), _t(f"uuid {layer.fs_uuid or 'none'}"),
            _fact("handle", handle)], inner, gap=" "))
    proof = layer.proof
    node.add(_fields([_fact("proof", proof.method.value),
                      _t(proof.strength.value if proof.strength else "no strength"),
                      _fact("reason", proof.reason)], inner, gap=" "))
    if layer.verify_note:
        node.add(_fact("verify", layer.verify_note))
    backing = layer.backing
    if backing is not None and (backing.device or backing.backing_file):
        node.add(_fields([_fact("backing", backing.device or backing.source),
                          _fact("file", backing.backing_file) if backing.backing_file else ""],
                         inner, gap=" "))
    for line in _hazard_lines(layer.hazards, inner):
        node.add(line)


def overlay_tree(overlay: Overlay, parent: Tree | None = None,
                 width: int | None = None) -> Tree:
    """One overlay mount and its layers; ``width`` is what its own label may use (None: no
    wrapping)."""
    head: list[Text | str] = [
        _t(overlay.mount_point, "bold"),
        Text(STATUS_BADGE[overlay.status], style=STATUS_STYLE[overlay.status]),
        Text(visible(overlay.fs_type) + f" mount {overlay.mount_id}", style="dim")]
    if overlay.unique_id is not None:
        head.append(Text(f"(unique {overlay.unique_id:#x})", style="dim"))
    node = parent.add(_fields(head, width)) if parent is not None else Tree(_fields(head, width))
    inner = _narrower(width)
    node.add(_fact("options", overlay.super_options))
    for line in _hazard_lines(overlay.hazards, inner):
        node.add(line)
    for note in overlay.notes:
        node.add(_fact("note", note))
    for layer in overlay.layers:
        _layer_node(node, layer, inner)
    return node


def namespace_tree(ns: Namespace, width: int | None = None) -> Tree:
    """A mount namespace, its processes and its overlay mounts."""
    status = worst_status([o.status for o in ns.overlays])
    procs = ", ".join(
        f"{p.pid} {p.comm}" + (f" [{p.container}]" if p.container else "")
        for p in ns.processes[:6])
    if len(ns.processes) > 6:
        procs += f", … {len(ns.processes) - 6} more"
    ident = f"mnt:[{ns.mnt_ns}]" if ns.mnt_ns is not None else "mnt:[?]"
    head = _fields([
        Text(ident, style="bold"),
        Text(STATUS_BADGE[status], style=STATUS_STYLE[status]) if status else "",
        f"{len(ns.overlays)} overlay(s)", _fact("pids", procs) if procs else ""], width)
    tree = Tree(head)
    inner = _narrower(width)
    for note in ns.notes:
        tree.add(_fact("note", note))
    for overlay in ns.overlays:
        overlay_tree(overlay, tree, inner)
    return tree


def render(scan: Scan, width: int | None = None) -> Group:
    """The whole report as one renderable; ``width`` is where fields wrap (None: never)."""
    mounts = [o for ns in scan.namespaces for o in ns.overlays]
    bad = sum(1 for o in mounts if o.all_hazards())
    by_status = ", ".join(f"{n} {s.value}" for s in Status
                          if (n := sum(1 for o in mounts if o.status is s)))
    parts: list[Text | Tree] = [_fields([
        Text("ovlinspect:", style="bold"), f"{len(scan.namespaces)} namespace(s),",
        f"{len(mounts)} overlay mount(s),", f"{bad} with hazards",
        f"[{by_status}]" if by_status else "", f"({visible(scan.source)})"],
        width, gap=" ")]
    parts += [_t(f"! {p}", "yellow") for p in scan.privileges]
    parts += [_t(f"! {e}", "red") for e in scan.errors]
    parts += [namespace_tree(ns, width) for ns in scan.namespaces if ns.overlays or ns.notes]
    hints = _hints(scan, width)
    if hints is not None:
        parts.append(hints)
    return Group(*parts)


def print_scan(scan: Scan, console: Console | None = None) -> None:
    """Print the report; colour only on a terminal.

    Fields wrap at the width of a terminal (or of a ``console`` given by the caller); otherwise
    nothing wraps.  A path is never broken either way.
    """
    if console is None:
        console = Console(highlight=False, emoji=False)
        width = console.width if console.is_terminal else None
    else:
        width = console.width
    # Rich wraps and crops at the console width: render wider than any line, print uncropped.
    lines = console.render(render(scan, width), console.options.update(width=NO_WRAP))
    console.print(Segments(lines), crop=False)
