"""Render the README screenshots from the live ``ovlinspect demo`` lab: ``screenshots/*.svg``.

Run as root (or where user namespaces are allowed): ``.venv/bin/python
scripts/export_screenshots.py [--out DIR]``.  The lab is built in its own private mount
namespace, exactly as ``ovlinspect demo`` builds it, and each scene is the TUI on it, headless,
after the scene's keys.  Every SVG is generated here, never edited by hand (pids, mount ids and
uuids are the lab's of the day).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ovlinspect.lab import Lab
from ovlinspect.tui import build_app

ROOT = Path(__file__).resolve().parents[1]
DETACHED = "/tmp/ovlinspect-demo/3-detached-lower"


@dataclass(frozen=True)
class Scene:
    """One screenshot: the terminal size, what is selected and opened, the keys pressed."""

    size: tuple[int, int]
    select: str | None = None
    expand: bool = False
    keys: Sequence[str] = ()


SCENES = {
    "overview": Scene((120, 40)),
    "overview-80x24": Scene((80, 24)),
    "layers-source-detached": Scene((120, 40), select=DETACHED, expand=True),
    "one-pane-60x20": Scene((60, 20)),
    "help": Scene((120, 40), keys=("question_mark",)),
}


async def render(pids: list[int], scene: Scene) -> str:
    """The TUI on the lab after ``scene``'s keys, as SVG."""
    app = build_app(pids, watch_mounts=False, select=scene.select, expand=scene.expand)
    app.animation_level = "none"
    async with app.run_test(size=scene.size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        while app.mount_tree.filling or app.ns_table.restoring:
            await pilot.pause()
        if scene.keys:
            await pilot.press(*scene.keys)
        await pilot.pause()
        return app.export_screenshot()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    lab = Lab()
    lab.start()
    try:
        for name, scene in SCENES.items():
            path = args.out / f"{name}.svg"
            path.write_text(asyncio.run(render(lab.pids, scene)), encoding="utf-8")
            print(path)
    finally:
        lab.stop()


if __name__ == "__main__":
    main()
