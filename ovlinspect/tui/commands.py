"""The command palette: every key's action, plus jumps to a pid or a mount point."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content

from ovlinspect.report.textsafe import visible
from ovlinspect.tui.keys import KEYS
from ovlinspect.tui.view import ns_key

if TYPE_CHECKING:
    from ovlinspect.tui.app import OvlInspectApp

def palette_actions() -> list[tuple[str, str, str]]:
    """(title, help, action) of every key with a palette title; help strings are ours."""
    return [(key.palette, f"{key.help[:1].upper()}{key.help[1:]} ({key.shown})", key.action)
            for key in KEYS if key.palette]


def bound(app: object, action: str) -> Callable[[], object]:
    """The app method that ``action`` (``name`` or ``name(int)``) names, ready to call."""
    name, _, arg = action.partition("(")
    method = getattr(app, f"action_{name}")
    return partial(method, int(arg.rstrip(")"))) if arg else method


ACTIONS: tuple[tuple[str, str, str], ...] = tuple(palette_actions())

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
        for title, help_text, action in ACTIONS:
            yield DiscoveryHit(title, bound(app, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self._app
        for title, help_text, action in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, highlight(matcher, title), bound(app, action), text=title,
                          help=help_text)
        scored = []
        for text, help_text, command in self._targets():
            score = matcher.match(text)
            if score > 0:
                scored.append((score, text, help_text, command))
        scored.sort(key=lambda item: -item[0])
        for score, text, help_text, command in scored[:MAX_HITS]:
            yield Hit(score, highlight(matcher, text), command, text=text, help=help_text)
