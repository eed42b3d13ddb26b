"""Every key of the TUI, listed once: the bindings, the footer, the help screen, the command
palette and the README's key table are all made from (or checked against) :data:`KEYS`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding

Scope = Literal["main", "panes", "files", "changes", "views", "help"]
"""Where a key acts: the main screen, inside a pane, the files/changes views, the help."""


@dataclass(frozen=True)
class Key:
    """One action and the keys that run it.

    ``keys`` are textual key names (the first is the one shown); ``footer`` is the short label
    (empty: not in the footer); ``palette`` is the command palette title (empty: not there).
    """

    keys: tuple[str, ...]
    action: str
    footer: str
    help: str
    scope: Scope = "main"
    palette: str = ""
    bound: bool = True
    per_key: tuple[str, ...] = ()
    """An action per key (``sort_by(-1)`` for ``<``), when the keys differ in their argument."""

    @property
    def shown(self) -> str:
        """The keys as the help screen and the README write them (``j / ↓``)."""
        return " / ".join(DISPLAY.get(k, k) for k in self.keys)


DISPLAY = {
    "slash": "/", "question_mark": "?", "escape": "esc", "less_than_sign": "<",
    "greater_than_sign": ">", "up": "↑", "down": "↓", "left": "←", "right": "→",
    "shift+left": "shift+←", "shift+right": "shift+→", "enter": "enter", "tab": "tab",
    "shift+tab": "shift+tab", "home": "home", "end": "end", "ctrl+c": "ctrl+c",
    "ctrl+p": "ctrl+p", "backspace": "backspace",
}

KEYS: tuple[Key, ...] = (
    # Footer order: the first ones survive a narrow terminal, so help and quit lead.
    Key(("question_mark", "f1"), "help", "Help", "this help: keys, badges, every hazard code",
        palette="Help"),
    Key(("q", "f10", "ctrl+c"), "quit", "Quit", "quit", palette="Quit"),
    Key(("n",), "next_problem", "Next", "next problem: the next mount that is not ok or info",
        palette="Next problem"),
    Key(("N",), "previous_problem", "", "previous problem", palette="Previous problem"),
    Key(("slash",), "filter", "Filter", "filter by path, pid, comm, container or hazard code "
        "(all words must match); enter keeps it, esc clears it", palette="Filter"),
    Key(("h",), "toggle_problems", "Problems", "show only problems: mounts in error, warn or "
        "unproven (toggle)", palette="Toggle problems only"),
    Key(("f",), "files", "Files", "files: the selected mount's merged tree and the layer that "
        "serves each entry", palette="Files"),
    Key(("c",), "changes", "Changes", "changes: the selected mount's changes since its image, "
        "marked A/C/M/D/R like ovlinspect diff", palette="Changes"),
    Key(("z",), "zoom", "Zoom", "zoom: the focused pane alone, full screen (toggle)",
        palette="Zoom the focused pane"),
    Key(("r", "f5"), "rescan", "Rescan", "rescan now (mount changes rescan by themselves)",
        palette="Rescan"),
    Key(("escape",), "clear_filter", "", "clear the filter (and close it)",
        palette="Clear filter"),
    Key(("tab",), "next_pane", "", "next pane: namespaces → mounts → details"),
    Key(("shift+tab",), "previous_pane", "", "previous pane"),
    Key(("less_than_sign", "greater_than_sign"), "sort_by(1)", "", "sort the focused list by "
        "the previous / next column (or click a column header); worst first by default",
        palette="Sort by the next column", per_key=("sort_by(-1)", "sort_by(1)")),
    Key(("s",), "save_svg", "", "save an SVG screenshot into --screenshot-dir",
        palette="Save SVG screenshot"),
    Key(("w",), "write_json", "", "write the selected mount's JSON into --screenshot-dir "
        "(one file per mount, rewritten on each press)", palette="Write mount JSON"),
    Key(("y",), "copy_json", "", "copy the selected mount's JSON (OSC 52: arrives only if the "
        "terminal allows it)", palette="Copy mount JSON"),
    Key(("p",), "copy_path", "", "copy the selected path alone: a mount point, a layer's "
        "real path (OSC 52)", palette="Copy the selected path"),
    Key(("ctrl+p",), "command_palette", "", "command palette: every action; jump to a pid or "
        "a mount point", bound=False),
    # Movement inside a pane (bound on the panes themselves).
    Key(("j", "down"), "cursor_down", "", "down", scope="panes"),
    Key(("k", "up"), "cursor_up", "", "up", scope="panes"),
    Key(("g", "home"), "first", "", "first row (scrolls to it)", scope="panes"),
    Key(("G", "end"), "last", "", "last row (scrolls to it)", scope="panes"),
    Key(("enter", "right"), "expand", "", "open a namespace's mounts; expand a mount or layer",
        scope="panes", bound=False),
    Key(("left",), "collapse", "", "collapse, or go to the parent", scope="panes", bound=False),
    Key(("shift+left", "shift+right"), "scroll_sideways", "", "scroll a long line sideways "
        "(also shift+mouse wheel)", scope="panes", bound=False),
    # The files and changes views.
    Key(("escape",), "close", "Back", "back to the mounts", scope="views"),
    Key(("backspace",), "parent", "Parent dir", "files: the parent directory", scope="files"),
    Key(("l",), "cycle_layer", "Layer filter", "files: only one layer's entries (cycles)",
        scope="files"),
    Key(("H",), "toggle_hidden", "Hidden", "files: add what a higher layer hides", scope="files"),
    Key(("m",), "cycle_mark", "Mark filter", "changes: only one mark (cycles)", scope="changes"),
    Key(("slash",), "filter", "Filter path", "changes: filter by path", scope="changes"),
    # The help screen.
    Key(("escape", "q", "question_mark"), "dismiss", "Close", "help: close it (f1 too)",
        scope="help"),
    Key(("j", "down", "k", "up"), "scroll_body(1)", "", "help: scroll a line", scope="help",
        per_key=("scroll_body(1)", "scroll_body(1)", "scroll_body(-1)", "scroll_body(-1)")),
)


PRIORITY = frozenset({"ctrl+c", "f1", "f5", "f10", "tab", "shift+tab"})
"""Keys the app sees before the focused widget.  F-keys and ctrl+c never type text, so they act
even in the filter.  Tab moves between the panes even where one pane fills the screen (the
screen's own Tab would skip the hidden ones)."""


def bindings(*scopes: Scope) -> list[Binding]:
    """The textual bindings of the keys in ``scopes``, one per key name."""
    out: list[Binding] = []
    for key in KEYS:
        if key.scope not in scopes or not key.bound:
            continue
        for i, name in enumerate(key.keys):
            action = key.per_key[i] if key.per_key else key.action
            out.append(Binding(name, action, key.footer or key.help,
                               show=bool(key.footer) and i == 0, priority=name in PRIORITY))
    return out


def by_action(action: str, scope: Scope = "main") -> Key:
    """The key that runs ``action`` in ``scope``."""
    for key in KEYS:
        if key.action == action and key.scope == scope:
            return key
    raise KeyError(action)
