"""The first screen and the conventions (issue: the broken overlay and its cause on the first
screen, at 80x24, with the keys people's fingers already know).  Fixture scans; each test is
written against a defect the walkthrough found."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events
from tuikit import (
    SIZE,
    big_scan,
    find_node,
    load_scan,
    make_app,
    run,
    screen_text,
    settle,
    tree_labels,
    wait_for,
)

from ovlinspect.model import Scan, Status
from ovlinspect.tui import labels
from ovlinspect.tui.app import OvlInspectApp
from ovlinspect.tui.commands import ACTIONS
from ovlinspect.tui.help import HelpScreen, key_rows
from ovlinspect.tui.keys import KEYS

HOST, WEB, CI, APP = "mnt:4026530001", "mnt:4026530002", "mnt:4026530003", "mnt:4026530004"
ROOT = Path(__file__).resolve().parents[2]


async def burst(pilot: Any, text: str | list[str]) -> None:
    """Send ``text`` (characters, or key names) as a fast typist over SSH does: every key queued
    before any is handled."""
    app = pilot.app
    for ch in text:
        key = {"/": "slash", "?": "question_mark", " ": "space"}.get(ch, ch)
        event = events.Key(key, ch if len(ch) == 1 else None)
        event.set_sender(app)
        app._driver.send_message(event)  # no pause between keys
    await pilot.pause()
    await pilot.pause()


def _notes(app: OvlInspectApp) -> list[str]:
    return [n.message for n in app._notifications]


# ---- 1. typed text never leaks into commands ----------------------------------------------------

def test_a_burst_after_slash_lands_in_the_filter(tmp_path: Path) -> None:
    async def body() -> None:
        app = make_app(screenshot_dir=str(tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await burst(pilot, "/quota")
            assert app.is_running  # q did not quit
            assert app.filter_box.value == "quota" and app.filter.query == "quota"
            await pilot.press("escape")
            await burst(pilot, "/shy")
            assert app.filter_box.value == "shy"
            assert list(tmp_path.iterdir()) == []  # s saved no SVG
            assert not app.filter.problems_only  # h did not toggle
            assert app.clipboard == ""  # y copied nothing

    run(body)


def test_a_burst_runs_in_the_order_typed() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await burst(pilot, ["slash", "x", "escape", "slash", "y"])  # esc closes, / reopens
            assert app.focused is app.filter_box and app.filter_box.value == "y"
            await pilot.press("escape")
            await pilot.pause()
            app.jump_to(HOST, 802)
            await pilot.pause()
            await burst(pilot, "jjn")  # two rows down in 802, then the next problem
            assert app.mount_tree.cursor_node.data.key == (CI, "1302")
            await burst(pilot, "nj")  # back to 802, then one row down
            assert app.mount_tree.cursor_node.data.key == (HOST, "802", "upper")

    run(body)


def test_a_burst_on_a_busy_host_keeps_its_first_letter() -> None:
    async def body() -> None:
        app = make_app(big_scan(300, 20))
        async with app.run_test(size=SIZE) as pilot:
            await burst(pilot, "/app")  # while the scan and the batches are still coming
            await settle(pilot)
            assert app.is_running and app.filter_box.value == "app"

    run(body)


# ---- 2. the errors lead ----------------------------------------------------------------------

def test_worst_first_and_the_worst_mount_is_selected_and_opened() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.ns_table.row_keys == [HOST, CI, WEB, APP]
            assert [o.mount_id for o in app.views_by_key[CI].overlays] == [1302, 1301]
            assert app.focused is app.mount_tree
            node = app.mount_tree.cursor_node
            assert node.data.key == (HOST, "802") and node.is_expanded
            assert "source-detached" in screen_text(app)

    run(body)


def test_n_and_shift_n_walk_the_problems_and_wrap() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            where = []
            for key in ("n", "n", "N", "N"):
                await pilot.press(key)
                await pilot.pause()
                where.append(app.mount_tree.cursor_node.data.key)
            assert where == [(CI, "1302"), (HOST, "802"), (CI, "1302"), (HOST, "802")]
            assert app.focused is app.mount_tree

    run(body)


def test_h_hides_info_level_mounts_too() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("h")
            await pilot.pause()
            shown = {v.key: [o.mount_id for o in v.overlays] for v in app.views}
            assert shown == {HOST: [802], CI: [1302]}
            statuses = {o.status for v in app.views for o in v.overlays}
            assert statuses <= {Status.ERROR, Status.WARNING, Status.UNVERIFIED}

    run(body)


# ---- 3. the fact that matters is not cut off -------------------------------------------------

def test_badge_verdict_and_codes_come_before_the_path_and_are_never_cut() -> None:
    async def body() -> None:
        app = make_app(load_scan("demo.json"))
        for size in ((80, 24), (120, 40)):
            async with app.run_test(size=size) as pilot:
                await settle(pilot)
                text = screen_text(app)
                assert "✖ error   ✖ source-detached" in text
                assert "lower[1] ✖ mismatch   ✖ source-detached" in text
                assert "upper    ✔ match" in text
                for line in text.splitlines():  # a cut path keeps its tail
                    assert "…" not in line or re.search(r"…[^ ]*[a-z0-9]", line)
            app = make_app(load_scan("demo.json"))

    run(body)


def test_shorten_cuts_in_the_middle_and_keeps_the_tail() -> None:
    path = "/tmp/ovlinspect-demo/.layers/3-detached-lower/l1"
    assert labels.shorten(path, 100) == path
    for width in (8, 12, 20, 30, 40):
        cut = labels.shorten(path, width)
        assert len(cut) <= width and "…" in cut
        assert cut.endswith("/l1")
    assert labels.shorten(path, 30).startswith("/tmp…")


def test_below_80x24_one_pane_fills_the_screen_and_tab_switches() -> None:
    async def body() -> None:
        for size in ((60, 20), (40, 10)):
            app = make_app()
            async with app.run_test(size=size) as pilot:
                await settle(pilot)
                shown = [p for p in app.panes if p.display]
                assert shown == [app.mount_tree]
                assert app.mount_tree.size.width >= size[0] - 2  # the whole width, not a border
                assert app.mount_tree.size.height >= 3
                await pilot.press("tab")
                await pilot.pause()
                assert [p for p in app.panes if p.display] == [app.details_pane]
                assert app.focused is app.details_pane
                await pilot.press("tab")
                await pilot.pause()
                assert [p for p in app.panes if p.display] == [app.ns_table]
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            assert all(p.display for p in app.panes)

    run(body)


def test_the_footer_keeps_help_and_quit_at_60_columns() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(60, 20)) as pilot:
            await settle(pilot)
            footer = screen_text(app).splitlines()[-1]
            assert "? Help" in footer and "q Quit" in footer

    run(body)


# ---- 4. stale data does not look live --------------------------------------------------------

def _without(scan: Scan, ns_index: int | None = None, mount_id: int | None = None) -> Scan:
    out = copy.deepcopy(scan)
    if ns_index is not None:
        del out.namespaces[ns_index]
    for ns in out.namespaces:
        ns.overlays = [o for o in ns.overlays if o.mount_id != mount_id]
    return out


def test_gone_namespaces_and_mounts_are_marked_with_since_when() -> None:
    first = load_scan()
    first.source = "live"
    second = _without(first, ns_index=1, mount_id=802)  # WEB's processes died; 802 unmounted
    third = copy.deepcopy(second)
    third.namespaces[1].overlays[1].status = Status.ERROR  # CI's 1302 was warn
    scans = iter([first, second, third])

    async def body() -> None:
        app = make_app(lambda: next(scans))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            assert app.mount_tree.cursor_node.data.key == (HOST, "802")
            assert re.search(r"scanned \d\d:\d\d:\d\d", screen_text(app))
            await pilot.press("r")
            await settle(pilot)
            # the selected mount stays, dimmed and marked, and the user is told
            node = app.mount_tree.cursor_node
            assert node.data.key == (HOST, "802") and node.data.gone_since is not None
            assert node.label.plain.startswith("⌀ gone")
            assert any(n.startswith("Mount #802 is gone (since ") for n in _notes(app))
            assert app.ns_table.get_cell(WEB, "badge").plain.strip() == "⌀ gone"
            assert app.ns_table.get_cell(WEB, "process").plain.startswith("since ")
            assert app.ns_table.row_keys[-1] == WEB  # gone ones sort last
            assert Text.from_markup(app.ns_table.border_title).plain == "Namespaces 3/3 +1 gone"
            assert "3/3 ns · 4/4 mounts  ⌀ gone 1 ns, 2 mounts" in screen_text(app)
            await pilot.press("r")
            await settle(pilot)
            assert app.ns_table.get_cell(CI, "badge").plain.strip() == "✖ error •"
            await pilot.press("n")  # gone mounts are not problems to visit
            await pilot.pause()
            node = app.mount_tree.cursor_node
            assert node.data.key == (CI, "1302") and "(was ▲ warn)" in node.label.plain

    run(body)


def test_a_pid_whose_process_exited_shows_its_namespace_gone() -> None:
    import subprocess

    from ovlinspect.tui import build_app

    child = subprocess.Popen(["sleep", "600"])
    try:
        app = build_app([child.pid], watch_mounts=False)
        app.animation_level = "none"

        async def body() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                assert app.scan is not None and app.scan_error is None
                key = app.ns_table.row_keys[0]
                child.kill()
                child.wait()
                await pilot.press("r")
                await settle(pilot)
                assert app.scan_error is None
                assert app.ns_table.get_cell(key, "badge").plain.strip() == "⌀ gone"
                assert "last scan failed" not in screen_text(app)

        run(body)
    finally:
        child.kill()
        child.wait()


# ---- 5. home and end scroll ------------------------------------------------------------------

def test_end_and_home_in_the_tree_scroll_the_cursor_into_view() -> None:
    async def body() -> None:
        app = make_app(big_scan(1, 300))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            while app.mount_tree.filling:
                await pilot.pause()
            tree = app.mount_tree
            for key, line in (("end", None), ("home", 0), ("G", None), ("g", 0)):
                await pilot.press(key)
                await pilot.pause()
                want = tree.last_line if line is None else line
                assert tree.cursor_line == want
                top = tree.scroll_offset.y
                assert top <= want < top + tree.scrollable_content_region.height

    run(body)


# ---- 6. copy and write keys ------------------------------------------------------------------

def test_p_copies_the_selected_path_alone() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("p")
            assert app.clipboard == "/srv/build/merged"
            await pilot.press("down", "p")  # 802's upper layer
            assert app.clipboard == find_node(app, HOST, "802", "upper").data.layer.real_path
            assert all("may" in n or "only if" in n for n in _notes(app) if "clipboard" in n)

    run(body)


# ---- 7. the filter has no side effects -------------------------------------------------------

def test_the_details_never_show_a_mount_the_filter_hides() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert "/srv/build/merged" in _details(app)
            await pilot.press("slash", *"4f1c9e")  # hides 802, keeps 801
            await pilot.pause()
            assert "/srv/build/merged" not in _details(app)
            assert "/var/lib/docker/overlay2/4f1c9e/merged" in _details(app)

    run(body)


def test_clearing_the_filter_keeps_what_was_expanded() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("down", "right")  # 802 open, and its upper layer too
            await pilot.pause()
            await pilot.press("slash", *"4f1c9e", "escape")
            await pilot.pause()
            assert find_node(app, HOST, "802").is_expanded
            assert find_node(app, HOST, "802", "upper").is_expanded

    run(body)


def _details(app: OvlInspectApp) -> str:
    pane = app.details_pane
    return "\n".join(strip.text for strip in pane.lines)


# ---- 8. control characters look different from their escapes ---------------------------------

def test_a_real_newline_and_a_literal_backslash_n_are_told_apart() -> None:
    real, literal = labels.safe("a\nb"), labels.safe("a\\nb")
    assert real.plain == literal.plain == "a\\nb"  # same characters…
    assert _styles(real) == [labels.ESCAPE_STYLE] and _styles(literal) == []  # …not the same look
    esc = labels.safe("x\x1b[2Jy", "bold")
    assert esc.plain == "x\\x1b[2Jy" and _styles(esc) == [f"bold {labels.ESCAPE_STYLE}"]


def _styles(text: Text) -> list[str]:
    return [str(span.style) for span in text.spans if labels.ESCAPE_STYLE in str(span.style)]


# ---- 9. quitting, and the keys people already know -------------------------------------------

def test_ctrl_c_and_f10_quit_even_from_the_filter() -> None:
    async def body() -> None:
        for keys in (("ctrl+c",), ("slash", "ctrl+c"), ("f10",)):
            app = make_app()
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                await pilot.press(*keys)
                await pilot.pause()
                assert not app.is_running, keys
            assert app.return_code == 0

    run(body)


def test_f1_helps_f5_rescans_and_vim_keys_move() -> None:
    calls: list[int] = []
    scan = load_scan()

    def scanner() -> Scan:
        calls.append(1)
        return copy.deepcopy(scan)

    async def body() -> None:
        app = make_app(scanner)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("j", "j")
            assert app.mount_tree.cursor_node.data.key == (HOST, "802", "work")
            await pilot.press("k")
            assert app.mount_tree.cursor_node.data.key == (HOST, "802", "upper")
            await pilot.press("f5")
            await wait_for(pilot, lambda: len(calls) == 2)
            await pilot.press("f1")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)

    run(body)


def test_sort_by_column_with_angle_brackets_and_header_clicks() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.ns_table.focus()
            await pilot.pause()
            await pilot.press("greater_than_sign")  # status → pid
            await pilot.pause()
            assert app.ns_sort.column == "pid"
            assert app.ns_table.row_keys == [HOST, WEB, CI, APP]
            await pilot.click("#namespaces", offset=(3, 1))  # the status header
            await pilot.pause()
            assert app.ns_sort.column == "status"
            assert app.ns_table.row_keys == [HOST, CI, WEB, APP]
            app.mount_tree.focus()
            await pilot.pause()
            await pilot.press("greater_than_sign")
            await pilot.pause()
            assert app.mount_sort.column == "mount point"
            assert [o.mount_id for o in app.views_by_key[HOST].overlays] == [802, 801]

    run(body)


def test_z_zooms_the_focused_pane() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("z")
            await pilot.pause()
            assert [p for p in app.panes if p.display] == [app.mount_tree]
            await pilot.press("z")
            await pilot.pause()
            assert all(p.display for p in app.panes)

    run(body)


# ---- one list of keys -------------------------------------------------------------------------

def test_footer_help_palette_and_readme_come_from_one_list() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(200, 50)) as pilot:
            await settle(pilot)
            footer = screen_text(app).splitlines()[-1]
            for key in KEYS:
                if key.footer and key.scope == "main":
                    assert f"{key.shown.split(' / ')[0]} {key.footer}" in footer

    run(body)
    assert key_rows() == [(k.shown, k.help) for k in KEYS]
    assert [title for title, _, _ in ACTIONS] == [k.palette for k in KEYS if k.palette]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = readme[readme.index("<!-- keys:"):readme.index("<!-- /keys -->")]
    rows = re.findall(r"^\| `([^|]+)` \| ([^|]+) \|$", readme, re.MULTILINE)
    assert rows == [(k.shown.replace(" / ", "` / `"), k.help) for k in KEYS]


# ---- screenshots for bug reports -------------------------------------------------------------

def test_select_and_expand_open_a_chosen_mount_with_its_layers() -> None:
    async def body() -> None:
        app = make_app(select="/work/ci/merged", expand=True)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.mount_tree.cursor_node.data.key == (CI, "1301")
            node = find_node(app, CI, "1301")
            assert node.is_expanded and all(c.is_expanded for c in node.children
                                            if c.data.kind == "layer")
            assert any(lbl.startswith("path") for lbl in tree_labels(app))

    run(body)


# ---- a first scan in steps (issue #9: every namespace at once, the selected one first) -------

def test_the_first_scan_lists_every_namespace_at_once_then_fills_in() -> None:
    import threading

    from ovlinspect.engine.progressive import Analysed, Finished, Listed
    from ovlinspect.model import Namespace

    full = load_scan()
    go = threading.Event()
    asked: list[int | None] = []

    def steps(first: Any) -> Any:
        listed = Scan(namespaces=[Namespace(mnt_ns=ns.mnt_ns, pids=ns.pids,
                                            processes=ns.processes) for ns in full.namespaces])
        yield Listed(listed)
        go.wait(10)
        todo = list(full.namespaces)
        while todo:
            asked.append(first())
            pick = next((ns for ns in todo if ns.mnt_ns == asked[-1]), todo[0])
            todo.remove(pick)
            yield Analysed([pick])
        yield Finished(full)

    def scanner() -> Scan:
        return copy.deepcopy(full)

    scanner.steps = steps  # type: ignore[attr-defined]

    async def body() -> None:
        app = make_app(scanner)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.pending)
            await pilot.pause()
            assert len(app.ns_table.row_keys) == 4  # every namespace, before any analysis
            badges = {app.ns_table.get_cell(k, "badge").plain for k in app.ns_table.row_keys}
            assert badges == {"⋯ scanning"}
            assert "(analysing this namespace…)" in tree_labels(app)
            app.ns_table.focus()
            await pilot.pause()
            await pilot.press("end")  # the user looks at APP (the last row): analysed first
            await pilot.pause()
            assert app.selected_ns == APP
            go.set()
            await settle(pilot)
            assert asked[0] == 4026530004
            assert app.pending == set() and app.scan is not None
            assert app.selected_ns == APP  # the user moved: the first screen stays with them
            assert app.ns_table.get_cell(HOST, "badge").plain.strip() == "✖ error"

    run(body)


# ---- found by a second reviewer in tmux -------------------------------------------------------

def test_the_layout_follows_each_resize() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            for size, single in (((60, 20), True), ((40, 10), True), ((80, 24), False),
                                 ((60, 20), True), ((120, 40), False)):
                await pilot.resize_terminal(*size)
                await pilot.pause()
                assert app.screen.has_class("one-pane") is single, size
                assert all(p.display for p in app.panes) is not single, size

    run(body)


def test_tab_from_the_filter_keeps_it_and_closes_the_box() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await burst(pilot, ["slash", "s", "r", "v", "tab", "y"])
            assert not app.filter_box.display and app.filter.query == "srv"
            assert app.focused is not app.filter_box
            assert app.clipboard  # y ran as a key once the box was closed

    run(body)


def test_esc_then_slash_read_as_alt_slash_reopens_the_filter() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await burst(pilot, "/quota")
            await burst(pilot, ["alt+slash", "s"])  # a terminal's "esc /" in one read
            assert app.filter_box.value == "s" and app.focused is app.filter_box

    run(body)


def test_after_esc_the_selected_mount_is_on_screen() -> None:
    async def body() -> None:
        app = make_app(big_scan(1, 300))
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            app.jump_to("mnt:5000", 350)  # far down
            await pilot.pause()
            await burst(pilot, ["slash", "3", "5", "0", "enter", "escape"])
            await settle(pilot)
            tree = app.mount_tree
            assert tree.cursor_node.data.key == ("mnt:5000", "350")
            top = tree.scroll_offset.y
            assert top <= tree.cursor_line < top + tree.scrollable_content_region.height

    run(body)


def test_the_palette_lists_only_our_commands() -> None:
    from ovlinspect.tui.app import OvlInspectApp

    assert len(OvlInspectApp.COMMANDS) == 1  # Textual's own (Quit, Maximize, Theme…) are out


def test_the_sort_arrow_follows_the_sort() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            labels_now = lambda: [str(c.label) for c in app.ns_table.columns.values()]  # noqa: E731
            assert labels_now()[0] == "status▼"
            await pilot.click("#namespaces", offset=(16, 1))  # the pid header
            await pilot.pause()
            assert app.ns_sort.column == "pid" and labels_now()[:2] == ["status", "pid▼"]

    run(body)


def test_mount_counts_keep_gone_mounts_apart() -> None:
    first = load_scan()
    second = _without(first, mount_id=801)
    scans = iter([first, second])

    async def body() -> None:
        app = make_app(lambda: next(scans))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("r")
            await settle(pilot)
            title = Text.from_markup(app.mount_tree.border_title).plain
            assert title.startswith("Overlay mounts 1/1 +1 gone")
            assert app.ns_table.get_cell(HOST, "ovl").plain == "1"

    run(body)


def test_screenshot_of_a_mount_that_is_not_there_fails(tmp_path: Path) -> None:
    import pytest

    from ovlinspect.host.processes import ScanError
    from ovlinspect.tui import save_screenshot

    with pytest.raises(ScanError, match="--select /nope"):
        save_screenshot(str(tmp_path / "x.svg"), scan_result=load_scan(), select="/nope")
    assert not (tmp_path / "x.svg").exists()


def test_notifications_tell_a_newline_from_a_backslash_n() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            app.say("a\nb")
            app.say("a\\nb")
            await pilot.pause()
            assert _notes(app)[-2:] == ["a\\nb", "a\\\\nb"]

    run(body)


def test_p_on_the_namespaces_pane_copies_nothing() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            app.ns_table.focus()
            await pilot.pause()
            await pilot.press("p")
            assert app.clipboard == ""

    run(body)


def test_one_of_several_pids_exiting_does_not_fail_the_rescans() -> None:
    import subprocess

    from ovlinspect.tui import build_app

    kids = [subprocess.Popen(["sleep", "600"]) for _ in range(2)]
    try:
        app = build_app([k.pid for k in kids], watch_mounts=False)
        app.animation_level = "none"

        async def body() -> None:
            async with app.run_test(size=SIZE) as pilot:
                await settle(pilot)
                kids[1].kill()
                kids[1].wait()
                await pilot.press("f5")
                await settle(pilot)
                assert app.scan_error is None and app.scan is not None
                assert "last scan failed" not in screen_text(app)

        run(body)
    finally:
        for kid in kids:
            kid.kill()
            kid.wait()
