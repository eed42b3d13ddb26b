"""The command palette: every key's action, plus jumps to a pid or a mount point."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content

from ovlinspect.report.textsafe import visible
from ovlinspect.tui.view import ns_key

if TYPE_CHECKING:
    from ovlinspect.tui.app import OvlInspectApp

#: (title, help, app method); help strings are ours, so markup in them is safe.
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Filter", "Filter by path, pid, comm, container or hazard code (/)", "action_filter"),
    ("Clear filter", "Show everything again (esc)", "action_clear_filter"),
    ("Toggle hazards only", "Show only mounts with hazards (h)", "action_toggle_hazards"),
    ("Rescan", "Scan the mount namespaces again (r)", "action_rescan"),
    ("Save SVG screenshot", "Save the screen as an SVG file (s)", "action_save_svg"),
    ("Write mount JSON", "Write the selected mount as JSON to a file (j)", "action_write_json"),
    ("Copy mount JSON", "Copy the selected mount's JSON to the clipboard (y)",
     "action_copy_json"),
    ("Files", "The selected mount's merged tree and the layer serving each entry (f)",
     "action_files"),
    ("Changes", "The selected mount's changes since its image (c)", "action_changes"),
    ("Help", "Keys and hazard codes (?)", "action_help"),
    ("Quit", "Quit ovlinspect (q)", "action_quit"),
)

MAX_HITS = 50


def highlight(matcher: Matcher, candidate: str) -> Content:
    """Like ``Matcher.highlight`` but never parses ``candidate`` as markup."""
    content = Content(candidate)
    score, offsets = matcher.fuzzy_search.match(matcher.query, candidate)
    if score:
        for offset in offsets:
            if not candidate[offset].isspace():
                content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class OvlCommands(Provider):
    """Actions, ``pid N comm`` and ``mount /path`` entries of the current scan."""

    @property
    def _app(self) -> OvlInspectApp:
        return cast("OvlInspectApp", self.app)

    def _targets(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self._app
        out: list[tuple[str, str, Callable[[], object]]] = []
        scan = app.scan
        if scan is None:
            return out
        for ns in scan.namespaces:
            key = ns_key(ns)
            for process in ns.processes:
                who = visible(process.comm)
                if process.container:
                    who += f" ({visible(process.container)})"
                out.append((f"pid {process.pid} {who}", "Jump to this process's namespace",
                            partial(app.jump_to, key)))
            for overlay in ns.overlays:
                out.append((f"mount {visible(overlay.mount_point)} #{overlay.mount_id}",
                            f"Jump to this overlay mount (mount ns {ns.mnt_ns})",
                            partial(app.jump_to, key, overlay.mount_id)))
        return out

    async def discover(self) -> Hits:
        app = self._app
        for title, help_text, method in ACTIONS:
            yield DiscoveryHit(title, getattr(app, method), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self._app
        for title, help_text, method in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, highlight(matcher, title), getattr(app, method), text=title,
                          help=help_text)
        scored = []
        for text, help_text, command in self._targets():
            score = matcher.match(text)
            if score > 0:
                scored.append((score, text, help_text, command))
        scored.sort(key=lambda item: -item[0])
        for score, text, help_text, command in scored[:MAX_HITS]:
            yield Hit(score, highlight(matcher, text), command, text=text, help=help_text)
