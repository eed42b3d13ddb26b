"""SVG snapshots of the TUI on the fixture scan (update with ``pytest --snapshot-update``)."""

from __future__ import annotations

from typing import Any

from tuikit import make_app


async def _settled(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _source_detached_layer(pilot: Any) -> None:
    await _settled(pilot)
    pilot.app.mount_tree.focus()
    # mount #802 → expand → lower[1] (source-detached) → expand its facts
    await pilot.press("down", "right", "down", "down", "down", "down", "right")
    await pilot.pause()


async def _help(pilot: Any) -> None:
    await _settled(pilot)
    await pilot.press("question_mark")
    await pilot.pause()


def test_overview(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=_settled)


def test_overview_small_terminal(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_settled)


def test_layers_source_detached(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=_source_detached_layer)


def test_help(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=_help)
