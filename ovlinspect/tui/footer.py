"""The key footer, redrawn only when the keys it shows change.

Textual's ``Footer`` rebuilds all its key widgets whenever the focus moves (the active bindings
change with it), which costs a layout of the whole screen on every Tab.  Here the panes' own
keys are never shown, so the shown set rarely changes and the rebuild is skipped.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class StableFooter(Footer):
    """A ``Footer`` that recomposes only when the shown keys or their enabled state change."""

    _shown: tuple[tuple[str, str, str, bool], ...] | None = None

    def _signature(self, screen: Screen) -> tuple[tuple[str, str, str, bool], ...]:
        return tuple((binding.key, binding.action, binding.description, enabled)
                     for _, binding, enabled, _ in screen.active_bindings.values()
                     if binding.show)

    def bindings_changed(self, screen: Screen) -> None:
        """Rebuild only when what the footer shows changed."""
        if self.is_attached and screen is self.screen and screen.app.app_focus:
            shown = self._signature(screen)
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)
