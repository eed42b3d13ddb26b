"""The files view (``f``) on a real overlay built in a private mount namespace (see labkit)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from labkit import BIG, HOSTILE, Lab, lab_app, overlay_lab, select_lab_mount
from tuikit import SIZE, make_app, run, screen_text, settle, wait_for

from ovlinspect.tui.files import FilesScreen

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with overlay_lab() as scenario:
        yield scenario


def rows(screen: FilesScreen) -> dict[str, tuple[str, str, str]]:
    """name -> (layer, type, marks) of the rows shown (hidden rows keyed ``hidden:NAME``)."""
    out: dict[str, tuple[str, str, str]] = {}
    for i, (kind, item) in enumerate(screen.rows):
        if kind == "up":
            continue
        cells = [c.plain.strip() for c in screen.table.get_row_at(i)]
        out[("hidden:" if kind == "hidden" else "") + item.name] = (cells[0], cells[1], cells[2])
    return out


async def open_files(pilot: Any, lab: Lab) -> FilesScreen:
    await select_lab_mount(pilot, lab)
    await pilot.press("f")
    screen = pilot.app.screen
    assert isinstance(screen, FilesScreen)
    await wait_for(pilot, lambda: screen.cwd is not None and not screen.table.loading
                   and screen._page_wanted is None)
    return screen


def test_files_view_shows_layers_markers_and_hidden_names(lab: Lab) -> None:
    async def body() -> None:
        app = lab_app(lab)
        async with app.run_test(size=SIZE) as pilot:
            await select_lab_mount(pilot, lab)
            cursor = app.mount_tree.cursor_node
            fds = len(os.listdir("/proc/self/fd"))
            screen = await open_files(pilot, lab)
            assert len(os.listdir("/proc/self/fd")) > fds  # the layers are held open
            got = rows(screen)
            assert got["fu"] == ("upper", "file", "")
            assert got["new"] == ("upper", "file", "")
            assert got["f0"] == ("lower[0]", "file", "")
            assert got["f1"] == ("lower[1]", "file", "")
            assert got["cp"] == ("upper", "file", "↑ copied-up")
            assert got["own"] == ("upper", "file", "↑ copied-up  ◐ metacopy")
            assert got["opq"] == ("upper", "dir", "■ opaque")
            assert got["rd2"] == ("upper", "dir", "↑ copied-up  ↪ redirect rd  ⊕ merged 1")
            assert got["d"] == ("lower[0]", "dir", "⊕ merged 1")
            assert "gone" not in got and not any(k.startswith("hidden:") for k in got)
            text = screen_text(app)
            assert "layers upper  lower[0]  lower[1]" in text
            assert "↑ copied-up" in text and "■ opaque" in text and "✗ hidden" in text
            # the hostile name, literally: no markup, no emoji, escapes made visible
            assert "[bold]x[red]:smile:\\x1b[2J\\nend[@click=app.quit]q\\xff" in text
            assert HOSTILE not in text and "😄" not in text and "\x1b" not in text

            await pilot.press("H")  # what higher layers hide, on request
            await wait_for(pilot, lambda: "hidden:gone" in rows(screen))
            got = rows(screen)
            assert got["hidden:gone"] == ("lower[1]", "hidden", "✗ whiteout in upper")
            assert got["hidden:rd"] == ("lower[1]", "hidden", "✗ whiteout in upper")
            assert [k for k, _ in screen.rows[:3]] == ["hidden", "hidden", "entry"]  # on top
            assert "✗ whiteout in upper" in screen_text(app)

            # into the opaque directory: its own entry, and the lower one it hides
            index = next(i for i, (k, item) in enumerate(screen.rows)
                         if k == "entry" and item.name == "opq")
            screen.table.move_cursor(row=index)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.cwd == "opq" and "hidden:x" in rows(screen)
                           and "y" in rows(screen))
            assert rows(screen)["y"] == ("upper", "file", "")
            assert rows(screen)["hidden:x"] == ("lower[1]", "hidden", "✗ opaque in upper")
            assert "dir /opq" in screen_text(app)
            await pilot.press("backspace")  # back up, the cursor on the directory we left
            await wait_for(pilot, lambda: screen.cwd == "")
            kind, item = screen.rows[screen.table.cursor_row]
            assert (kind, item.name) == ("entry", "opq")

            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, FilesScreen)
            assert app.mount_tree.cursor_node is cursor and app.focused is app.mount_tree
            await app.workers.wait_for_complete()
            assert len(os.listdir("/proc/self/fd")) == fds  # and closed with the view
            await pilot.press("f")  # again, then quit from inside the view
            await wait_for(pilot, lambda: isinstance(app.screen, FilesScreen)
                           and app.screen.cwd is not None)
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    run(body)


def test_files_view_filters_by_layer(lab: Lab) -> None:
    async def body() -> None:
        app = lab_app(lab)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_files(pilot, lab)
            await pilot.press("l")  # upper
            assert screen.layer_filter == "upper"
            assert {v[0] for v in rows(screen).values()} == {"upper"}
            assert "cp" in rows(screen) and "f1" not in rows(screen)
            await pilot.press("l", "l")  # lower[0], lower[1]
            assert screen.layer_filter == "lower[1]"
            got = rows(screen)
            assert {v[0] for v in got.values()} == {"lower[1]"}
            assert {"f1", "big"} <= set(got) and "f0" not in got and "cp" not in got
            assert "layer filter: lower[1]" in screen_text(app)
            await pilot.press("H")  # hidden names pass the filter by the layer they are in
            await wait_for(pilot, lambda: "hidden:gone" in rows(screen))
            await pilot.press("l")  # back to all
            assert screen.layer_filter is None and "f0" in rows(screen)
            await pilot.press("escape")
            await app.workers.wait_for_complete()

    run(body)


def test_files_view_pages_a_big_directory_and_stays_responsive(
        lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    from ovlinspect.provenance import browse

    real = browse.list_dir
    slow = {"on": False}

    def list_dir(*args: Any, **kwargs: Any) -> Any:
        if slow["on"]:
            time.sleep(0.5)  # a slow disk: the worker is busy while keys arrive
        return real(*args, **kwargs)

    monkeypatch.setattr(browse, "list_dir", list_dir)

    async def body() -> None:
        app = lab_app(lab)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_files(pilot, lab)
            index = next(i for i, (k, item) in enumerate(screen.rows)
                         if k == "entry" and item.name == "big")
            screen.table.move_cursor(row=index)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.cwd == "big" and len(screen.rows) > 1
                           and screen._page_wanted is None)
            state = screen.dirs["big"]
            assert len(state.entries) == 500 and state.more  # only the first page
            assert screen.rows[1][1].name == "e00000"
            assert "500 entries loaded · more below" in screen_text(app)

            slow["on"] = True
            await pilot.press("end")  # the last row: the next page is asked for
            assert screen._page_wanted == ("big", "e00499")
            started = time.monotonic()
            await pilot.press("up", "up")  # handled while the worker still reads
            assert time.monotonic() - started < 0.4
            assert screen._page_wanted is not None and len(state.entries) == 500
            assert screen.table.cursor_row == len(screen.rows) - 3
            assert "loading…" in screen_text(app)
            await wait_for(pilot, lambda: len(state.entries) == 1000)
            slow["on"] = False

            started = time.monotonic()
            while state.more:  # page after page, as the cursor reaches the end
                await pilot.press("end")
                await wait_for(pilot, lambda: screen._page_wanted is None)
                assert time.monotonic() - started < 60
            assert len(screen.rows) == BIG + 1
            assert screen.rows[-1][1].name == f"e{BIG - 1:05d}"
            assert "5000 entries loaded · complete" in screen_text(app)
            await pilot.press("escape")
            await app.workers.wait_for_complete()

    run(body)


def test_files_view_says_a_saved_scan_needs_a_live_process() -> None:
    async def body() -> None:
        app = make_app()  # the fixture scan: source "fixture", no live process
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            app.mount_tree.focus()
            await pilot.press("down", "f")
            await pilot.pause()
            assert not isinstance(app.screen, FilesScreen)
            said = [n.message for n in app._notifications]
            assert any(m.startswith("The files view reads the layers through a live process")
                       and "saved scan (fixture)" in m for m in said), said
            assert "The files view reads" in screen_text(app)

    run(body)
