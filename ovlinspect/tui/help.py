"""The ``?`` screen: keys (from :data:`~ovlinspect.tui.keys.KEYS`), badges, and every hazard
code's meaning from the catalogue."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ovlinspect.model import Severity, Status, Verified
from ovlinspect.model.hazards import CATALOGUE
from ovlinspect.tui import labels
from ovlinspect.tui.keys import KEYS, bindings


def key_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for the help screen, in :data:`~ovlinspect.tui.keys.KEYS` order."""
    return [(key.shown, key.help) for key in KEYS]


def help_renderable() -> RenderableType:
    """Keys, the badge legend, and the hazard catalogue."""
    keys = Table.grid(padding=(0, 2))
    keys.add_column(style="bold cyan", no_wrap=True)
    keys.add_column()
    for shown, what in key_rows():
        keys.add_row(shown, what)

    legend = Text()
    for severity in (Severity.ERROR, Severity.WARNING, Severity.INFO, None):
        legend.append_text(labels.badge(severity, pad=False))
        legend.append("   ")
    legend.append("│  ")
    for value in Verified:
        legend.append_text(labels.verified(value))
        legend.append("   ")
    legend.append("\n")
    legend.append_text(labels.gone_badge(0, pad=False))
    legend.append(" no longer found by the last scan (kept 10 minutes, dimmed)   ")
    legend.append_text(labels.was(Status.WARNING))
    legend.append(" / ")
    legend.append("•", style="bold reverse")
    legend.append(" status changed with the last scan   ")
    legend.append("⋯ scanning", style="dim")
    legend.append(" not analysed yet   ")
    legend.append_text(labels.safe("\n"))
    legend.append(" a control character in a name (a literal backslash-n is plain)")

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

    BINDINGS: ClassVar[list[BindingType]] = bindings("help")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body") as body:
            body.border_title = "ovlinspect help — esc closes"
            yield Static(help_renderable(), markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_scroll_body(self, by: int) -> None:
        """j / k: scroll the help a line."""
        self.query_one("#help-body").scroll_relative(y=by, animate=False)
