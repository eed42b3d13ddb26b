"""Names from the system are shown literally: no markup, no emoji codes, no control bytes."""

from __future__ import annotations

from pathlib import Path

from tuikit import SIZE, load_scan, make_app, palette_shows, run, screen_text, settle, wait_for

from ovlinspect.model import Scan

EVIL = "[bold]x[/]:smile:\x1b[2J\nend[@click=app.quit]q[/]"


def hostile_scan() -> Scan:
    scan = load_scan()
    ns = scan.namespaces[1]  # the "web" container
    ns.processes[0].comm = f"[bold]evil{EVIL}"
    ns.processes[0].container = f"[/]{EVIL}"
    overlay = ns.overlays[0]
    overlay.mount_point = f"/m/{EVIL}"
    overlay.layers[0].declared = f"up{EVIL}"
    overlay.layers[0].real_path = f"/real/{EVIL}"
    overlay.layers[0].symlinks = [type(overlay.layers[2].symlinks[0])(EVIL, EVIL)]
    overlay.hazards[:0] = [type(overlay.layers[0].hazards[0])(
        "stale-path", overlay.layers[0].hazards[0].severity, None, EVIL, EVIL)]
    return scan


def test_hostile_names_are_shown_literally(tmp_path: Path) -> None:
    out = tmp_path / "[bold]dir[@click=app.quit]q:smile:"
    out.mkdir()

    async def body() -> None:
        app = make_app(hostile_scan(), screenshot_dir=str(out))
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await settle(pilot)
            app.jump_to("mnt:4026530002")  # the web namespace
            await pilot.pause()
            text = screen_text(app)
            assert "[bold]evil[bold]x[/]:smile:\\x1b[2J\\nend" in text
            app.mount_tree.focus()
            await pilot.press("right", "down", "right", "down", "down")
            await pilot.pause()
            text = screen_text(app)
            for literal in ("[bold]x[/]", "[/]", ":smile:", "\\x1b[2J", "\\n", "[@click=app.quit]"):
                assert literal in text
            assert "😄" not in text and "\x1b" not in text
            await pilot.press("w", "s")  # notifications name a directory with markup in it
            await pilot.pause()
            assert app.is_running
            assert len(list(out.iterdir())) == 2
            assert "[bold]dir[@click=app.quit]q:smile:" in screen_text(app)
            await pilot.press("slash", *"[/]")  # typed markup is a plain filter term
            await pilot.pause()
            assert app.ns_table.row_keys == ["mnt:4026530002"]
            await pilot.press("escape", "ctrl+p", *"evil")
            await wait_for(pilot, palette_shows(app, "[bold]evil"))
            assert "[bold]evil" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            assert app.is_running

    run(body)
