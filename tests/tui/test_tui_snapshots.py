"""SVG snapshots of the TUI on the fixture scan (update with ``pytest --snapshot-update``)."""

from __future__ import annotations

from typing import Any

from tuikit import load_scan, make_app


async def _settled(pilot: Any) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def _source_detached_layer(pilot: Any) -> None:
    await _settled(pilot)
    # mount #802 is selected and open on the first screen → lower[1] (source-detached) → facts
    await pilot.press("down", "down", "down", "down", "right")
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


def test_demo_at_80x24_worst_mount_open_with_its_code_and_layers(snap_compare: Any) -> None:
    """The live demo's scan (saved with ``ovlinspect demo --json``) on the smallest two-pane
    screen: the source-detached mount selected and open, its code and layer rows visible."""
    assert snap_compare(make_app(load_scan("demo.json")), terminal_size=(80, 24),
                        run_before=_settled)


def test_demo_at_60x20_one_pane(snap_compare: Any) -> None:
    assert snap_compare(make_app(load_scan("demo.json")), terminal_size=(60, 20),
                        run_before=_settled)
