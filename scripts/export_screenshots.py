"""Render the README screenshots from the fixture scan: ``screenshots/*.svg``.

Run: ``.venv/bin/python scripts/export_screenshots.py [--out DIR] [--scan FILE]``.  Every SVG
is generated here, never edited by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ovlinspect.model import Scan
from ovlinspect.tui.app import OvlInspectApp

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "tui" / "fixtures" / "scan.json"
SIZE = (120, 40)


async def _overview(pilot: Any) -> None:
    pass


async def _layers_source_detached(pilot: Any) -> None:
    pilot.app.mount_tree.focus()
    # mount #802 → expand → lower[1] (source-detached) → expand its facts
    await pilot.press("down", "right", "down", "down", "down", "down", "right")


async def _help(pilot: Any) -> None:
    await pilot.press("question_mark")


SCENES: dict[str, Callable[[Any], Awaitable[None]]] = {
    "overview": _overview,
    "layers-source-detached": _layers_source_detached,
    "help": _help,
}


async def render(scan: Scan, scene: Callable[[Any], Awaitable[None]]) -> str:
    """The app on ``scan`` after ``scene``'s keys, as SVG."""
    app = OvlInspectApp(lambda: copy.deepcopy(scan))
    app.animation_level = "none"
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await scene(pilot)
        await pilot.pause()
        return app.export_screenshot()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--scan", type=Path, default=FIXTURE, help="a scan JSON (--json output)")
    args = parser.parse_args()
    scan = Scan.from_dict(json.loads(args.scan.read_text(encoding="utf-8")))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, scene in SCENES.items():
        path = args.out / f"{name}.svg"
        path.write_text(asyncio.run(render(scan, scene)), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
