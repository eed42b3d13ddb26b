"""Rich ``Text`` builders for every label the TUI shows: badges, rows, tree nodes.

Every string read from the system goes through :func:`~ovlinspect.report.textsafe.visible` and then
into ``Text(...)``; nothing here is ever parsed as markup.  Colour is never the only signal: each
badge carries a symbol and a word.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from ovlinspect.model import Hazard, Layer, Namespace, Overlay, Process, Severity, Status, Verified
from ovlinspect.report.badges import (
    STATUS_BADGE,
    STATUS_STYLE,
    VERIFIED_BADGE,
    VERIFIED_STYLE,
    severity_badge,
    worst_status,
)
from ovlinspect.report.badges import severity_style as severity_style
from ovlinspect.report.textsafe import visible

BADGE_WIDTH = 10


def safe(text: str | None, style: str = "") -> Text:
    """Untrusted ``text`` as a ``Text`` with control characters made visible."""
    return Text(visible(text), style=style, end="")


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


def namespace_status(ns: Namespace) -> Status | None:
    """The most urgent status among the namespace's overlays."""
    return worst_status([o.status for o in ns.overlays])


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
        text.append(visible(code), style=severity_style(severity))
    return text


def process_label(process: Process) -> Text:
    """``nginx (web)``: a process's comm and, where known, its container."""
    text = safe(process.comm)
    if process.container:
        text.append(" (")
        text.append(visible(process.container), style="cyan")
        text.append(")")
    return text


def lead_process(ns: Namespace) -> Process | None:
    """The process that stands for ``ns``: its root pid's, else the first."""
    for process in ns.processes:
        if process.pid == ns.root_pid:
            return process
    return ns.processes[0] if ns.processes else None


def namespace_cells(ns: Namespace, overlays: int,
                    worst: Severity | None) -> tuple[Text, Text, Text, Text]:
    """The cells of a namespace row: badge, pid, process (+ others), overlays shown."""
    lead = lead_process(ns)
    pid = lead.pid if lead else ns.root_pid
    who = process_label(lead) if lead else Text("?", style="dim")
    others = max(len(ns.processes), len(ns.pids)) - (1 if lead else 0)
    if others > 0:
        who.append(f" +{others}", style="dim")
    return (
        status_badge(namespace_status(ns)),
        Text("" if pid is None else str(pid), justify="right"),
        who,
        Text(str(overlays), justify="right"),
    )


def mount_label(overlay: Overlay, worst: Severity | None) -> Text:
    """A mount row: badge, mount point, fs type, mount id and the distinct hazard codes."""
    text = status_badge(overlay.status)
    text.append(" ")
    text.append(visible(overlay.mount_point), style="bold")
    text.append(f"  {visible(overlay.fs_type)} #{overlay.mount_id}", style="dim")
    codes = hazard_codes(overlay.all_hazards()) if worst is not None else None
    if codes:
        text.append("  ")
        text.append_text(codes)
    return text


def layer_label(layer: Layer) -> Text:
    """A layer row: role, declared path, verification and the layer's hazard codes."""
    text = Text(end="")
    text.append(f"{layer.label:<8} ", style="bold magenta")
    text.append(visible(layer.declared))
    text.append("  ")
    text.append_text(verified(layer.verified))
    codes = hazard_codes(layer.hazards)
    if codes:
        text.append("  ")
        text.append_text(codes)
    return text


def hazard_label(hazard: Hazard) -> Text:
    """A hazard row: badge, code and message."""
    text = badge(hazard.severity)
    text.append(" ")
    text.append(visible(hazard.code), style="bold")
    text.append(": ")
    text.append(visible(hazard.message))
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
        text.append(visible(value))
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
