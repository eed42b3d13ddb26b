"""The details pane: every fact of the selected namespace, mount or layer, hazards explained."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from ovlinspect.hazards import CATALOGUE
from ovlinspect.model import Handle, Hazard, Layer, Namespace, Overlay, Scan, worst
from ovlinspect.textsafe import visible
from ovlinspect.tui import labels
from ovlinspect.tui.view import ordered_layers

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
    """Each hazard: badge, code and layer, then its message, the catalogue meaning and a hint."""
    if not hazards:
        return Text.assemble(labels.badge(None, pad=False), " no hazards found")
    parts: list[RenderableType] = []
    for hazard in sorted(hazards, key=lambda h: -h.severity.rank):
        head = labels.badge(hazard.severity, pad=False)
        head.append(" ")
        head.append(visible(hazard.code), style="bold")
        if hazard.layer:
            head.append(f"  on {visible(hazard.layer)}", style="dim")
        grid = _grid()
        _row(grid, "  what", hazard.message)
        kind = CATALOGUE.get(hazard.code)
        if kind is not None and kind.meaning != hazard.message:
            grid.add_row("  means", Text(kind.meaning, style="dim"))
        _row(grid, "  do", hazard.hint)
        parts += [head, grid]
    return _group(*parts)


def namespace_details(ns: Namespace, scan: Scan | None = None) -> RenderableType:
    """A namespace: its id, processes, overlay counts, notes and the hazards of its mounts."""
    grid = _grid()
    _row(grid, "mount ns", None if ns.mnt_ns is None else f"mnt:[{ns.mnt_ns}]")
    _row(grid, "root pid", ns.root_pid)
    _row(grid, "overlays", len(ns.overlays))
    _row(grid, "worst", labels.badge(ns.worst(), pad=False))
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
    title = _title(labels.badge(ns.worst(), pad=False), "mount namespace ",
                   labels.process_label(lead) if lead else Text("?"))
    parts: list[RenderableType] = [title, grid, Text(), _heading("Processes"), procs]
    if len(ns.processes) > MAX_PROCESSES:
        parts.append(Text(f"… {len(ns.processes) - MAX_PROCESSES} more", style="dim"))
    hazards = [h for o in ns.overlays for h in o.all_hazards()]
    if hazards:
        counts: dict[str, int] = {}
        for h in hazards:
            counts[h.code] = counts.get(h.code, 0) + 1
        summary = Text(end="")
        for code, n in sorted(counts.items()):
            sev = next(h.severity for h in hazards if h.code == code)
            summary.append(f"{labels.symbol(sev)} {visible(code)}", labels.severity_style(sev))
            summary.append(f" x{n}  ")
        parts += [Text(), _heading("Hazards of its mounts"), summary]
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
            value.append(visible(layer.real_path))
        value.append("  ")
        value.append_text(labels.verified(layer.verified))
        if layer.hazards:
            value.append("  ")
            value.append_text(labels.hazard_codes(layer.hazards))
        layers.add_row(Text(layer.label, style="magenta"), value)
    title = _title(labels.badge(overlay.worst(), pad=False), "overlay ",
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
        result.append(visible(layer.verify_note))
    _row(grid, "verified", result)
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


class DetailsPane(VerticalScroll):
    """A scrollable pane that shows one renderable."""

    def compose(self) -> ComposeResult:
        yield Static(Text("Waiting for the scan…", style="dim"), id="details-body",
                     markup=False)

    def show(self, renderable: RenderableType, *, keep_scroll: bool = False) -> None:
        """Replace the content; scroll back to the top unless ``keep_scroll``."""
        self.query_one("#details-body", Static).update(renderable)
        if not keep_scroll:
            self.scroll_home(animate=False)
