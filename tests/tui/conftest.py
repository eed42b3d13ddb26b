"""Pins for the TUI tests: terminal, locale, time zone, no input cursor blink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ovlinspect.tui.app import OvlInspectApp


@pytest.fixture(autouse=True)
def _pinned_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Same terminal, locale and time zone on every machine; no input cursor blink."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL", raising=False)
    monkeypatch.setattr(OvlInspectApp, "CURSOR_BLINK", False)
    yield
