"""The details pane: every fact of the selected namespace, mount or layer, hazards explained."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import BindingType
from textual.widgets import RichLog

from ovlinspect.model import Handle, Hazard, Layer, Namespace, Overlay, Scan, worst
from ovlinspect.model.hazards import CATALOGUE
from ovlinspect.report.textsafe import visible
from ovlinspect.tui import labels
from ovlinspect.tui.keys import bindings
from ovlinspect.tui.view import Summary, ordered_layers

MAX_PROCESSES = 200


def _grid() -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def _row(grid: Table, name: str, value: Text | str | int | None) -> None:
    if value is None or value == "":
        grid.add_row(name, Text("—", style="dim"))
    elif isinstance(value, Text):
        grid.add_row(name, value)
    else:
        grid.add_row(name, labels.safe(str(value)))


def _heading(text: str) -> Text:
    return Text(text, style="bold underline")


def _group(*parts: RenderableType) -> Group:
    """A vertical stack; every Text in it ends its line."""
    for part in parts:
        if isinstance(part, Text):
            part.end = "\n"
    return Group(*parts)


def _handle(handle: Handle | None) -> Text | None:
    if handle is None:
        return None
    return Text(f"type 0x{handle.type:x}  {visible(handle.hex)}", end="")


def hazard_block(hazards: list[Hazard]) -> RenderableType:
    """Hazards grouped by code, worst first: where, each message, the meaning, what to do.

    One grid for all of them: a mount with a dozen ``symlink`` findings shows the hint once.
    """
    if not hazards:
        return Text.assemble(labels.badge(None, pad=False), " no hazards found")
    by_code: dict[str, list[Hazard]] = {}
    for hazard in hazards:
        by_code.setdefault(hazard.code, []).append(hazard)
    grid = _grid()
    groups = sorted(by_code.values(), key=lambda hs: -hs[0].severity.rank)
    for n, group in enumerate(groups):
        first = group[0]
        head = labels.safe(first.code, "bold")
        where = [visible(h.layer) if h.layer else "mount" for h in group]
        head.append(f"  on {', '.join(dict.fromkeys(where))}", style="dim")
        if n:
            grid.add_row("", "")
        grid.add_row(labels.badge(first.severity, pad=False), head)
        for message in dict.fromkeys(h.message for h in group):
            _row(grid, "  what", message)
        kind = CATALOGUE.get(first.code)
        if kind is not None and kind.meaning not in (h.message for h in group):
            grid.add_row("  means", Text(kind.meaning, style="dim"))
        for hint in dict.fromkeys(h.hint for h in group):
            _row(grid, "  do", hint)
    return grid


def namespace_details(ns: Namespace, scan: Scan | None = None,
                      summary: Summary | None = None) -> RenderableType:
    """A namespace: its id, processes, overlay counts, notes and the hazards of its mounts."""
    summary = summary or Summary(Scan(namespaces=[ns]))
    worst = summary.namespace(ns)
    grid = _grid()
    _row(grid, "mount ns", None if ns.mnt_ns is None else f"mnt:[{ns.mnt_ns}]")
    _row(grid, "root pid", ns.root_pid)
    _row(grid, "overlays", len(ns.overlays))
    _row(grid, "worst", labels.badge(worst, pad=False))
    for note in ns.notes:
        _row(grid, "note", note)
    procs = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    procs.add_column("pid", justify="right")
    procs.add_column("comm")
    procs.add_column("container", overflow="fold")
    for process in ns.processes[:MAX_PROCESSES]:
        procs.add_row(str(process.pid), labels.safe(process.comm),
                      labels.safe(process.container or ""))
    lead = labels.lead_process(ns)
    title = _title(labels.badge(worst, pad=False), "mount namespace ",
                   labels.process_label(lead) if lead else Text("?"))
    parts: list[RenderableType] = [title, grid, Text(), _heading("Processes"), procs]
    if len(ns.processes) > MAX_PROCESSES:
        parts.append(Text(f"… {len(ns.processes) - MAX_PROCESSES} more", style="dim"))
    codes = summary.codes(ns)
    if codes:
        line = Text(end="")
        for code, severity, n in codes:
            line.append(f"{labels.symbol(severity)} {visible(code)}",
                        labels.severity_style(severity))
            line.append(f" x{n}  ")
        parts += [Text(), _heading("Hazards of its mounts"), line]
    if scan is not None and (scan.errors or scan.privileges):
        parts += [Text(), _heading("Scan")]
        scan_grid = _grid()
        _row(scan_grid, "source", scan.source)
        for priv in scan.privileges:
            _row(scan_grid, "privilege", priv)
        for err in scan.errors:
            _row(scan_grid, "error", err)
        parts.append(scan_grid)
    return _group(*parts)


def _title(severity_text: Text, *rest: Text | str) -> Text:
    title = Text.assemble(severity_text, " ")
    for part in rest:
        title.append(part) if isinstance(part, str) else title.append_text(part)
    title.stylize("bold", len(severity_text) + 1)
    return title


def overlay_details(overlay: Overlay) -> RenderableType:
    """A mount: hazards first, then its layers in order, identity and raw options."""
    grid = _grid()
    _row(grid, "mount point", overlay.mount_point)
    _row(grid, "fs type", overlay.fs_type)
    _row(grid, "source", overlay.source)
    _row(grid, "mount id", overlay.mount_id)
    _row(grid, "unique id", overlay.unique_id)
    _row(grid, "root handle", _handle(overlay.root_handle))
    _row(grid, "mount opts", overlay.mount_options)
    _row(grid, "super opts", overlay.super_options)
    opts = overlay.options
    _row(grid, "syntax", opts.syntax)
    if opts.legacy_length:
        _row(grid, "legacy len", f"{opts.legacy_length} bytes (mount(2) limit 4096)")
    for name, value in sorted(opts.flags.items()):
        _row(grid, "flag", f"{name}={value}" if value else name)
    for other in opts.other:
        _row(grid, "other opt", other)
    for note in overlay.notes:
        _row(grid, "note", note)
    layers = _grid()
    for layer in ordered_layers(overlay):
        value = labels.safe(layer.declared)
        if layer.real_path and layer.real_path != layer.declared:
            value.append("  → ", style="dim")
            labels.put(value, layer.real_path)
        value.append("  ")
        value.append_text(labels.verified(layer.verified))
        if layer.hazards:
            value.append("  ")
            value.append_text(labels.hazard_codes(layer.hazards))
        layers.add_row(Text(layer.label, style="magenta"), value)
    title = _title(labels.status_badge(overlay.status, pad=False), "overlay ",
                   labels.safe(overlay.mount_point))
    return _group(title, hazard_block(overlay.all_hazards()), Text(),
                  _heading("Layers (declared → real_path)"), layers, Text(),
                  _heading("Mount"), grid)


def layer_details(overlay: Overlay, layer: Layer) -> RenderableType:
    """A layer: hazards first, then declared vs resolved vs host vs real path, identity."""
    grid = _grid()
    _row(grid, "declared", layer.declared)
    _row(grid, "path", layer.path)
    _row(grid, "host_path", layer.host_path)
    _row(grid, "real_path", layer.real_path)
    for step in layer.symlinks:
        _row(grid, "symlink", Text.assemble(labels.safe(step.path), " → ",
                                            labels.safe(step.target)))
    result = labels.verified(layer.verified)
    if layer.verify_note:
        result.append("  ")
        labels.put(result, layer.verify_note)
    _row(grid, "verified", result)
    proof = layer.proof
    _row(grid, "proof", f"{proof.method.value}, "
         f"{proof.strength.value if proof.strength else 'no strength'} ({proof.reason})")
    if layer.backing is not None:
        _row(grid, "backing", " ".join(x for x in (layer.backing.device or layer.backing.source,
                                                   layer.backing.backing_file) if x) or None)
    _row(grid, "dev / ino", None if layer.dev is None and layer.ino is None
         else f"{layer.dev or '?'} / {'?' if layer.ino is None else layer.ino}")
    _row(grid, "fs type", layer.fs_type)
    _row(grid, "fs uuid", layer.fs_uuid)
    _row(grid, "mount id", layer.mount_id)
    _row(grid, "handle", _handle(layer.handle))
    _row(grid, "of mount", Text.assemble(labels.safe(overlay.mount_point),
                                         (f"  #{overlay.mount_id}", "dim")))
    title = _title(labels.badge(worst(layer.hazards), pad=False), f"{layer.label} layer  ",
                   labels.verified(layer.verified))
    return _group(title, hazard_block(layer.hazards), Text(), grid)


class DetailsPane(RichLog):
    """A scrollable pane that shows one renderable, rendered once per width (not per paint)."""

    BINDINGS: ClassVar[list[BindingType]] = bindings("panes")

    def action_cursor_down(self) -> None:
        """j / ↓: scroll a line down."""
        self.scroll_down(animate=False)

    def action_cursor_up(self) -> None:
        """k / ↑: scroll a line up."""
        self.scroll_up(animate=False)

    def action_first(self) -> None:
        """g / home: the top."""
        self.scroll_home(animate=False)

    def action_last(self) -> None:
        """G / end: the bottom."""
        self.scroll_end(animate=False)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False, highlight=False, auto_scroll=False,
                         min_width=10)
        self.renderable: RenderableType = Text("Waiting for the scan…", style="dim")
        self._width = 0
        self._source: tuple[object, ...] | None = None

    def show(self, renderable: RenderableType, *, keep_scroll: bool = False,
             source: tuple[object, ...] | None = None) -> None:
        """Replace the content; scroll back to the top unless ``keep_scroll``.  When ``source``
        (what the renderable was made from) is the one shown, nothing is redrawn."""
        if self.shows(source):
            return
        self._source = source
        self.renderable = renderable
        self._render(keep_scroll)

    def shows(self, source: tuple[object, ...] | None) -> bool:
        """True when what is shown was made from ``source`` (the same objects)."""
        old = self._source
        return (source is not None and old is not None and len(source) == len(old)
                and all(a is b for a, b in zip(source, old, strict=True)))

    def _render(self, keep_scroll: bool) -> None:
        y = self.scroll_y
        self._width = self.scrollable_content_region.width
        self.clear()
        self.write(self.renderable, width=max(self._width, self.min_width), scroll_end=False)
        if keep_scroll:
            self.scroll_to(y=y, animate=False)
        else:
            self.scroll_home(animate=False)

    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._render(keep_scroll=True)
