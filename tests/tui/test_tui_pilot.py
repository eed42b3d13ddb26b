"""Pilot tests of the TUI on fixture data (tests/tui/fixtures/scan.json)."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tuikit import (
    SIZE,
    find_node,
    load_scan,
    make_app,
    palette_shows,
    run,
    screen_text,
    settle,
    tree_labels,
    wait_for,
)

from ovlinspect.model import Scan
from ovlinspect.model.hazards import CATALOGUE
from ovlinspect.tui.help import HelpScreen

HOST, WEB, CI, APP = "mnt:4026530001", "mnt:4026530002", "mnt:4026530003", "mnt:4026530004"


def test_badges_on_namespace_and_mount_rows() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            table = app.ns_table
            assert table.row_keys == [HOST, CI, WEB, APP]  # worst first
            badges = [table.get_cell(key, "badge").plain.strip() for key in table.row_keys]
            assert badges == ["✖ error", "▲ warn", "ℹ info", "✔ ok"]  # noqa: RUF001
            labels = tree_labels(app)
            # badge and code before the path, visible without expanding
            assert labels[0].startswith("✖ error   ✖ source-detached  /srv/build/merged #802")
            text = screen_text(app)
            assert "✖ error     4200" in text and "✔ ok        4400" in text

    run(body)


def test_slash_filters_by_code_pid_and_path() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("slash", *"relative-path")
            await pilot.pause()
            assert app.ns_table.row_keys == [CI]
            assert [n.data.overlay.mount_id for n in app.mount_tree.root.children] == [1301]
            await pilot.press("enter")
            assert "filter: relative-path" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert len(app.ns_table.row_keys) == 4
            await pilot.press("slash", *"4242")
            await pilot.pause()
            assert app.ns_table.row_keys == [WEB]
            await pilot.press("escape", "slash", *"cache/layer2")
            await pilot.pause()
            assert app.ns_table.row_keys == [HOST]
            assert [n.data.overlay.mount_id for n in app.mount_tree.root.children] == [802]
            await pilot.press("escape", "slash", *"nginx web")  # comm and container together
            await pilot.pause()
            assert app.ns_table.row_keys == [WEB]
            await pilot.press("escape", "slash", *"no-such-thing")
            await pilot.pause()
            assert app.ns_table.row_keys == []
            assert "(no namespace matches)" in tree_labels(app)

    run(body)


def test_expanding_a_mount_shows_its_layers_in_order() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert len(find_node(app, HOST, "801").children) == 0  # built lazily
            mount = find_node(app, HOST, "802")
            assert mount.is_expanded  # the worst mount is opened on the first screen
            assert app.focused is app.mount_tree and app.mount_tree.cursor_node is mount
            roles = [child.label.plain.split()[0] for child in mount.children]
            assert roles == ["upper", "work", "lower[0]", "lower[1]"]
            lower1 = mount.children[3].label.plain
            assert "/mnt/cache/layer2" in lower1 and "✖ mismatch" in lower1
            assert "✖ source-detached" in lower1
            await pilot.press("down", "down", "down", "down", "right")
            await pilot.pause()
            facts = [child.label.plain for child in mount.children[3].children]
            assert facts[0].startswith("✖ error    source-detached: lower[1] lives on")
            assert any(f.startswith("real_path") for f in facts)

    run(body)


def test_details_pane_shows_verified_paths() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.mount_tree.move_cursor(find_node(app, HOST, "801"))
            await pilot.press("right", "down", "down", "down")  # 801 → upper, work, lower[0]
            await pilot.pause()
            assert app.mount_tree.cursor_node.data.key == (HOST, "801", "lower[0]")
            text = screen_text(app)
            assert "lower[0] layer  ✔ match" in text
            assert "real_path /var/lib/docker/overlay2/0a7d21/diff" in text
            assert "symlink   /var/lib/docker/overlay2/l/QX7ANJ2K → ../0a7d21/diff" in text

    run(body)


def test_s_saves_an_svg_and_names_it(tmp_path: Path) -> None:
    async def body() -> None:
        app = make_app(screenshot_dir=str(tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("s", "s")
            await pilot.pause()
            files = sorted(tmp_path.glob("*.svg"))
            assert len(files) == 2  # never overwritten
            for svg in files:
                assert ET.parse(svg).getroot().tag.endswith("svg")
            messages = [n.message for n in app._notifications]
            assert any(str(files[0]) in m for m in messages)

    run(body)


def test_q_exits() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("q")
            await pilot.pause()
            assert not app.is_running
        assert app.return_code == 0

    run(body)


def test_h_hides_healthy_mounts() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("h")
            await pilot.pause()
            assert app.ns_table.row_keys == [HOST, CI]  # WEB has only info, APP is ok
            assert [o.mount_id for o in app.views_by_key[HOST].overlays] == [802]
            assert [o.mount_id for o in app.views_by_key[CI].overlays] == [1302]
            assert "problems only" in screen_text(app)
            await pilot.press("h")
            await pilot.pause()
            assert len(app.ns_table.row_keys) == 4

    run(body)


def test_question_mark_shows_every_hazard_code() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            text = ""
            for _ in range(6):  # what a user sees paging through it
                text += "".join(screen_text(app).split())
                await pilot.press("pagedown")
                await pilot.pause()
            assert "Hazardcodes" in text
            for code, kind in CATALOGUE.items():
                assert code in text
                assert "".join(kind.meaning.split())[:40] in text
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, HelpScreen)

    run(body)


def test_w_writes_one_file_per_mount_and_y_copies_it(tmp_path: Path) -> None:
    async def body() -> None:
        app = make_app(screenshot_dir=str(tmp_path))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            await pilot.press("w", "w", "down", "w", "y")
            await pilot.pause()
            assert [p.name for p in tmp_path.iterdir()] == ["ovlinspect-mount-802.json"]
            messages = [n.message for n in app._notifications]
            assert sum(m.startswith("Rewrote ") for m in messages) == 2
            assert any("arrives only if the terminal allows OSC 52" in m for m in messages)
            written = json.loads((tmp_path / "ovlinspect-mount-802.json").read_text())
            assert written["mount_id"] == 802
            assert written["layers"][3]["hazards"][0]["severity"] == "error"
            assert json.loads(app.clipboard)["mount_point"] == "/srv/build/merged"

    run(body)


def test_rescan_keeps_cursor_and_expansion_and_shows_new_data() -> None:
    first = load_scan()
    second = copy.deepcopy(first)
    layer = second.namespaces[0].overlays[1].layers[3]
    layer.real_path = "/mnt/cache-moved/layer2"
    scans = iter([first, second])

    async def body() -> None:
        app = make_app(lambda: next(scans))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("down", "down", "down", "down", "right")  # 802 is open already
            await pilot.pause()
            assert app.mount_tree.cursor_node.data.key == (HOST, "802", "lower[1]")
            await pilot.press("r")
            await settle(pilot)
            assert app.scan is not None and app.scan.namespaces[0].overlays[1].layers[3] == layer
            assert app.mount_tree.cursor_node.data.key == (HOST, "802", "lower[1]")
            assert find_node(app, HOST, "802").is_expanded
            assert find_node(app, HOST, "802", "lower[1]").is_expanded
            assert "/mnt/cache-moved/layer2" in screen_text(app)

    run(body)


def test_failed_scan_is_shown_not_fatal() -> None:
    from ovlinspect.engine.scan import ScanError

    def scanner() -> Scan:
        raise ScanError("no such process: 99999")

    async def body() -> None:
        app = make_app(scanner)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.is_running
            text = screen_text(app)
            assert "Scan failed: no such process: 99999" in text
            assert "last scan failed" in text

    run(body)


def test_pid_opens_on_that_namespace_with_mounts_focused() -> None:
    async def body() -> None:
        app = make_app(focus_pids=[4300])
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.ns_table.current_key == CI
            assert app.focused is app.mount_tree
            assert app.mount_tree.cursor_node.data.key == (CI, "1302")  # its worst mount

    run(body)


def test_command_palette_jumps_to_a_pid_and_a_mount() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+p", *"pid 4300 make")
            await wait_for(pilot, palette_shows(app, "pid 4300 make"))
            await pilot.press("enter")
            await pilot.pause()
            assert app.ns_table.current_key == CI
            await pilot.press("ctrl+p", *"mount /opt/app")
            await wait_for(pilot, palette_shows(app, "mount /opt/app #1401"))
            await pilot.press("enter")
            await pilot.pause()
            assert app.ns_table.current_key == APP
            assert app.focused is app.mount_tree
            assert app.mount_tree.cursor_node.data.key == (APP, "1401")
            await pilot.press("ctrl+p", *"problems only")
            await wait_for(pilot, palette_shows(app, "Toggle problems only"))
            await pilot.press("enter")
            await pilot.pause()
            assert app.filter.problems_only

    run(body)


def test_periodic_watch_rescans() -> None:
    calls: list[int] = []
    scan = load_scan()

    def scanner() -> Scan:
        calls.append(1)
        return copy.deepcopy(scan)

    async def body() -> None:
        app = make_app(scanner, watch=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: len(calls) >= 3)
            assert "every 0.05s" in screen_text(app)

    run(body)
