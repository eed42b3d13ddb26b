"""The changes view (``c``) on a real overlay built in a private mount namespace (see labkit)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from labkit import Lab, lab_app, overlay_lab, select_lab_mount
from tuikit import SIZE, make_app, run, screen_text, settle, wait_for

from ovlinspect.tui.changes import ChangesScreen

EVIL = "/new-[bold]x[red]:smile:\\x1b[2J\\nend[@click=app.quit]q\\xff"
"""The hostile name (labkit.HOSTILE) as the view shows it: literal, escapes made visible."""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with overlay_lab() as scenario:
        yield scenario


def lines(screen: ChangesScreen) -> list[str]:
    """The rows shown, as ``MARK TYPE PATH``."""
    out = []
    for i in range(screen.table.row_count):
        mark, kind, path = (c.plain for c in screen.table.get_row_at(i))
        out.append(f"{mark.split()[0]} {kind} {path}")
    return out


async def open_changes(pilot: Any, lab: Lab) -> ChangesScreen:
    await select_lab_mount(pilot, lab)
    await pilot.press("c")
    screen = pilot.app.screen
    assert isinstance(screen, ChangesScreen)
    await wait_for(pilot, lambda: screen.done or screen.error is not None)
    assert screen.error is None
    return screen


def test_changes_view_marks_added_changed_deleted_and_filters(lab: Lab) -> None:
    async def body() -> None:
        app = lab_app(lab)
        async with app.run_test(size=SIZE) as pilot:
            await select_lab_mount(pilot, lab)
            cursor = app.mount_tree.cursor_node
            screen = await open_changes(pilot, lab)
            assert lines(screen) == [
                "C file /cp", "A file /fu", "D file /gone", "A file /new", f"A file {EVIL}",
                "C dir /opq", "D file /opq/x", "A file /opq/y", "M file /own", "D dir /rd",
                "R dir /rd2  ← from /rd"]
            text = screen_text(app)
            assert "A added" in text and "C changed" in text and "D deleted" in text
            assert "11 changes" in text and "complete" in text
            assert EVIL in text and "😄" not in text and "\x1b" not in text
            await pilot.press("m")  # A only
            assert lines(screen) == ["A file /fu", "A file /new", f"A file {EVIL}",
                                     "A file /opq/y"]
            await pilot.press("m", "m", "m")  # C, M, D
            assert lines(screen) == ["D file /gone", "D file /opq/x", "D dir /rd"]
            assert "3 shown" in screen_text(app)
            await pilot.press("slash", *"opq")  # path filter, with the mark filter
            await pilot.pause()
            assert lines(screen) == ["D file /opq/x"]
            await pilot.press("enter", "m", "m")  # R, then all marks; the path filter stays
            assert lines(screen) == ["C dir /opq", "D file /opq/x", "A file /opq/y"]
            await pilot.press("slash", "escape")  # esc in the filter clears it
            await pilot.pause()
            assert len(lines(screen)) == 11 and isinstance(app.screen, ChangesScreen)
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, ChangesScreen)
            assert app.mount_tree.cursor_node is cursor and app.focused is app.mount_tree
            await app.workers.wait_for_complete()

    run(body)


def test_changes_view_says_a_saved_scan_needs_a_live_process() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            app.mount_tree.focus()
            await pilot.press("down", "c")
            await pilot.pause()
            assert not isinstance(app.screen, ChangesScreen)
            said = [n.message for n in app._notifications]
            assert any(m.startswith("The changes view reads the layers through a live process")
                       and "saved scan (fixture)" in m for m in said), said

    run(body)


def test_a_burst_in_the_changes_filter_is_typed_not_run(lab: Lab) -> None:
    from test_tui_first_screen import burst

    async def body() -> None:
        app = lab_app(lab)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_changes(pilot, lab)
            await burst(pilot, "/quota")  # q would quit, if run as a key
            assert app.is_running and isinstance(app.screen, ChangesScreen)
            assert screen.filter_box.value == "quota"

    run(body)
