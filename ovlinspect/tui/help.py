"""The ``?`` screen: keys, badges, and every hazard code's meaning from the catalogue."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ovlinspect.model import Severity, Verified
from ovlinspect.model.hazards import CATALOGUE
from ovlinspect.tui import labels

KEYS: tuple[tuple[str, str], ...] = (
    ("/", "filter by path, pid, comm, container or hazard code (all words must match)"),
    ("esc", "clear the filter"),
    ("h", "show only mounts with hazards (toggle)"),
    ("r", "rescan now"),
    ("tab", "next pane: namespaces → mounts → details"),
    ("enter / →", "open a namespace's mounts; expand a mount or layer"),
    ("←", "collapse, or go to the parent"),
    ("home / end", "first / last row"),
    ("s", "save an SVG screenshot"),
    ("j", "write the selected mount as JSON to a file"),
    ("y", "copy the selected mount's JSON to the clipboard"),
    ("f", "files: the selected mount's merged tree, the layer serving each entry and its marks "
          "(enter opens a directory, backspace goes up, l filters by layer, H shows what "
          "higher layers hide, esc goes back)"),
    ("c", "changes: the selected mount's changes since its image, marked A/C/M/D/R like "
          "ovlinspect diff (m filters by mark, / by path, esc goes back)"),
    ("ctrl+p", "command palette: every action, jump to a pid or a mount point"),
    ("?", "this help"),
    ("q", "quit (here: close this help)"),
)


def help_renderable() -> RenderableType:
    """Keys, the badge legend, and the hazard catalogue."""
    keys = Table.grid(padding=(0, 2))
    keys.add_column(style="bold cyan", no_wrap=True)
    keys.add_column()
    for key, what in KEYS:
        keys.add_row(key, what)

    legend = Text()
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO, None):
        legend.append_text(labels.badge(severity, pad=False))
        legend.append("   ")
    legend.append("│  ")
    for value in Verified:
        legend.append_text(labels.verified(value))
        legend.append("   ")

    codes = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold", expand=True)
    codes.add_column("severity", no_wrap=True)
    codes.add_column("code", style="bold", no_wrap=True)
    codes.add_column("meaning and what to do", ratio=1)
    order = sorted(CATALOGUE.values(), key=lambda k: (-k.severity.rank, k.code))
    for kind in order:
        text = Text(kind.meaning, end="")
        text.append("\n→ ", style="bold")
        text.append(kind.hint, style="dim")
        codes.add_row(labels.badge(kind.severity), Text(kind.code), text)

    heading = "bold underline"
    return Group(
        Text("Keys", style=heading), keys, Text(),
        Text("Badges", style=heading), legend, Text(),
        Text("Hazard codes", style=heading), codes,
    )


class HelpScreen(ModalScreen[None]):
    """A scrollable modal over the app; any of esc, q, ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "ovlinspect help — esc closes"
            yield Static(help_renderable(), markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()
