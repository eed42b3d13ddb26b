"""Rich ``Text`` builders for every label the TUI shows: badges, rows, tree nodes.

Every string read from the system goes through :func:`~ovlinspect.report.textsafe.visible` and then
into ``Text(...)``; nothing here is ever parsed as markup.  Colour is never the only signal: each
badge carries a symbol and a word.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text

from ovlinspect.model import Hazard, Layer, Namespace, Overlay, Process, Severity, Status, Verified
from ovlinspect.report.badges import (
    STATUS_BADGE,
    STATUS_STYLE,
    VERIFIED_BADGE,
    VERIFIED_STYLE,
    severity_badge,
)
from ovlinspect.report.badges import severity_style as severity_style
from ovlinspect.report.textsafe import visible
from ovlinspect.tui.view import lead_process, namespace_status

BADGE_WIDTH = 10
ESCAPE_STYLE = "reverse"
"""How an escaped control character looks: a real newline shows as a reversed ``\\n``, so it
can be told from a name that holds a backslash and an ``n``."""
ELLIPSIS = "…"
VERDICT_WIDTH = 13


def put(text: Text, value: str | None, style: str = "") -> Text:
    """Append untrusted ``value`` to ``text``: control characters escaped and shown in
    :data:`ESCAPE_STYLE`, never parsed as markup.  Returns ``text``."""
    if not value:
        return text
    if value.isprintable():
        text.append(value, style=style)
        return text
    run: list[str] = []
    for ch in value:
        shown = visible(ch)
        if shown == ch:
            run.append(ch)
            continue
        if run:
            text.append("".join(run), style=style)
            run = []
        text.append(shown, style=f"{style} {ESCAPE_STYLE}".strip())
    if run:
        text.append("".join(run), style=style)
    return text


def safe(text: str | None, style: str = "") -> Text:
    """Untrusted ``text`` as a ``Text`` with control characters made visible (and styled)."""
    return put(Text(end=""), text, style)


def shorten(path: str, width: int) -> str:
    """``path`` in at most ``width`` cells, cut in the middle: the first component and as much
    of the tail as fits (the tail is what tells layers apart)."""
    if width <= 0:
        return ""
    if len(path) <= width:
        return path
    if width <= 2:
        return path[-width:]
    head_end = path.find("/", 1)
    head = path[: head_end] if 0 < head_end <= width // 4 and width >= 24 else ""
    tail_room = width - len(head) - 1
    tail = path[-tail_room:]
    cut = tail.find("/")
    if 0 < cut < len(tail) // 2:  # start the tail at a component when that costs little
        tail = tail[cut:]
    return f"{head}{ELLIPSIS}{tail}"


def badge(severity: Severity | None, *, pad: bool = True) -> Text:
    """The severity badge (symbol and word, e.g. ``✖ error``), padded to a fixed width."""
    label = severity_badge(severity)
    text = Text(end="")  # a styled span, not a base style: what is appended stays plain
    text.append(label, style=severity_style(severity))
    if pad:
        text.append(" " * (BADGE_WIDTH - len(label)))
    return text


def status_badge(status: Status | None, *, pad: bool = True) -> Text:
    """An overlay's (or namespace's) status: ``✔ ok`` only when every provable layer is
    proven; ``? unproven`` when something provable was not proven."""
    text = Text(end="")
    if status is None:
        label = "  -"
        text.append(label, style="dim")
    else:
        label = STATUS_BADGE[status]
        text.append(label, style=STATUS_STYLE[status])
    if pad:
        text.append(" " * (BADGE_WIDTH - len(label)))
    return text


GONE_STYLE = "dim strike"


def clock(when: float) -> str:
    """``14:03:07``: a local wall-clock time."""
    return time.strftime("%H:%M:%S", time.localtime(when))


def gone_badge(since: float, *, pad: bool = True) -> Text:
    """``⌀ gone`` (dim): a namespace or mount that a later scan no longer found."""
    label = "⌀ gone"
    text = Text(end="")
    text.append(label, style="dim bold")
    if pad:
        text.append(" " * (BADGE_WIDTH - len(label)))
    return text


def was(status: Status) -> Text:
    """``(was ✔ ok)``: the status before the last scan changed it."""
    text = Text("(was ", style="bold", end="")
    text.append(STATUS_BADGE[status], style=STATUS_STYLE[status])
    text.append(")", style="bold")
    return text


def symbol(severity: Severity | None) -> str:
    """The one-character symbol of ``severity``'s badge."""
    return severity_badge(severity).split()[0]


def word(severity: Severity | None) -> str:
    """The word of ``severity``'s badge: error, warn, info, ok."""
    return severity_badge(severity).split()[1]


def verified(value: Verified) -> Text:
    """The verification result as a symbol and a word."""
    text = Text(end="")
    text.append(VERIFIED_BADGE[value], style=VERIFIED_STYLE[value])
    return text


def hazard_codes(hazards: Iterable[Hazard]) -> Text:
    """``▲ relative-path ✖ stale-path``: each distinct code with its severity symbol."""
    text = Text(end="")
    first: dict[str, Severity] = {}
    for hazard in hazards:
        first.setdefault(hazard.code, hazard.severity)
    for code, severity in sorted(first.items(), key=lambda item: -item[1].rank):
        if text:
            text.append(" ")
        text.append(f"{symbol(severity)} ", style=severity_style(severity))
        put(text, code, severity_style(severity))
    return text


def process_label(process: Process) -> Text:
    """``nginx (web)``: a process's comm and, where known, its container."""
    text = safe(process.comm)
    if process.container:
        text.append(" (")
        put(text, process.container, "cyan")
        text.append(")")
    return text


def namespace_cells(ns: Namespace, overlays: int, worst: Severity | None, *,
                    gone_since: float | None = None, before: Status | None = None,
                    pending: bool = False) -> tuple[Text, Text, Text, Text]:
    """The cells of a namespace row: badge, pid, process (+ others), overlays shown.  A gone
    namespace is dim with ``⌀ gone``; a changed one is marked ``•`` after its badge."""
    lead = lead_process(ns)
    pid = lead.pid if lead else ns.root_pid
    who = process_label(lead) if lead else Text("?", style="dim")
    others = max(len(ns.processes), len(ns.pids)) - (1 if lead else 0)
    if others > 0:
        who.append(f" +{others}", style="dim")
    if gone_since is not None:
        badge_cell = gone_badge(gone_since)
        who = Text(f"since {clock(gone_since)} {who.plain}", style=GONE_STYLE, end="")
    elif pending:
        badge_cell = Text("⋯ scanning", style="dim", end="")
    else:
        badge_cell = status_badge(namespace_status(ns), pad=False)
        if before is not None:
            badge_cell.append(" •", style="bold reverse")
        badge_cell.pad_right(BADGE_WIDTH - badge_cell.cell_len)
    return (
        badge_cell,
        Text("" if pid is None else str(pid), justify="right"),
        who,
        Text("" if pending else str(overlays), justify="right"),
    )


def _fit(text: Text, path: str, width: int | None, style: str = "") -> None:
    """Append ``path`` to ``text``, cut in the middle to what is left of ``width`` (nothing when
    less than two cells are left: the badge and codes before it matter more)."""
    if width is not None:
        room = width - text.cell_len
        if room < 2:
            return
        path = shorten(path, room)
    put(text, path, style)


def mount_label(overlay: Overlay, worst: Severity | None, width: int | None = None, *,
                gone_since: float | None = None, before: Status | None = None) -> Text:
    """A mount row: badge, hazard codes, then the mount point (cut in the middle to fit
    ``width``) and the mount id.  What decides, the badge and the codes, comes first."""
    if gone_since is not None:
        text = gone_badge(gone_since)
        text.append(" ")
        _fit(text, overlay.mount_point, None if width is None else width - 18, GONE_STYLE)
        text.append(f" #{overlay.mount_id} since {clock(gone_since)}", style="dim")
        return text
    text = status_badge(overlay.status)
    if before is not None:
        text.append_text(was(before))
        text.append(" ")
    codes = hazard_codes(overlay.all_hazards()) if worst is not None else None
    if codes:
        text.append_text(codes)
        text.append("  ")
    tail = f" #{overlay.mount_id}"
    if width is not None and width - text.cell_len - len(tail) < 24:
        tail = ""  # the path tells more than the id (which the details show)
    _fit(text, overlay.mount_point, None if width is None else width - len(tail), "bold")
    text.append(tail, style="dim")
    return text


def layer_label(layer: Layer, width: int | None = None) -> Text:
    """A layer row: role, verdict, the layer's hazard codes, then the declared path (cut in the
    middle to fit ``width``)."""
    text = Text(end="")
    text.append(f"{layer.label:<8} ", style="bold magenta")
    verdict = verified(layer.verified)
    text.append_text(verdict)
    text.append(" " * max(1, VERDICT_WIDTH - verdict.cell_len))
    codes = hazard_codes(layer.hazards)
    if codes:
        text.append_text(codes)
        text.append(" ")
    text.append(" ")
    _fit(text, layer.declared, width)
    return text


def hazard_label(hazard: Hazard) -> Text:
    """A hazard row: badge, code and message."""
    text = badge(hazard.severity)
    text.append(" ")
    put(text, hazard.code, "bold")
    text.append(": ")
    put(text, hazard.message)
    return text


def fact_label(name: str, value: Text | str | None) -> Text:
    """A ``name  value`` row under a layer; ``value`` strings are untrusted."""
    text = Text(end="")
    text.append(f"{name:<10} ", style="dim")
    if isinstance(value, Text):
        text.append_text(value)
    elif value is None:
        text.append("—", style="dim")
    else:
        put(text, value)
    return text


LOWER_STYLES = ("cyan", "yellow", "bright_blue", "bright_green", "bright_cyan", "bright_yellow")


def layer_style(label: str) -> str:
    """The colour of a layer label (``upper``, ``lower[i]``, ``data[j]``); always shown with
    the label itself, never alone."""
    if label == "upper":
        return "bold green"
    if label.startswith("lower[") and label[6:-1].isdigit():
        return LOWER_STYLES[int(label[6:-1]) % len(LOWER_STYLES)]
    if label.startswith("data["):
        return "magenta"
    return "dim"


def layer_tag(label: str, *, width: int = 9, hidden: bool = False) -> Text:
    """A layer label in its colour, padded (struck through for a hidden object)."""
    style = layer_style(label) + (" strike dim" if hidden else "")
    text = Text(end="")
    text.append(label, style=style)
    text.append(" " * max(0, width - len(label)))
    return text


MARK_STYLE = {"A": "bold green", "C": "bold yellow", "M": "bold cyan", "D": "bold red",
              "R": "bold magenta"}
MARK_WORD = {"A": "added", "C": "changed", "M": "metadata", "D": "deleted", "R": "renamed"}


def change_mark(mark: str) -> Text:
    """``A added``: the diff's letter and its word, coloured."""
    return Text(f"{mark} {MARK_WORD.get(mark, '?')}", style=MARK_STYLE.get(mark, ""), end="")
