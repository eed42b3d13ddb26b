"""What the user sees after each key on a big host: key sent → last frame written, p50/p90/max.

Run: ``.venv/bin/python bench/tui_keys.py [NAMESPACES] [OVERLAYS] [REPEATS]`` (default 300 20
20).  The app runs headless on ``bench/tui_big.py``'s synthetic scan; each key is sent the way
the terminal driver sends it, and the time runs until the last frame that key caused has been
written (``App._display``), so Pilot's own waiting is not counted.  Goal (issue #9): every key's
p90 at most 50 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from typing import Any

from textual import events
from tui_big import synthetic_scan

from ovlinspect.tui.app import OvlInspectApp

# (what, keys sent before each sample to set the scene, the key measured)
STEPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("j (tree down)", (), "j"),
    ("k (tree up)", (), "k"),
    ("n (next problem, across namespaces)", (), "n"),
    ("N (previous problem)", (), "N"),
    ("tab (next pane)", (), "tab"),
    ("right (expand a mount)", ("left",), "right"),
    ("left (collapse)", ("right",), "left"),
    ("down in namespaces (tree rebuilt)", ("shift+tab", "shift+tab"), "down"),
    ("end in namespaces", ("shift+tab", "shift+tab"), "end"),
    ("/ (open filter)", ("escape",), "slash"),
    ("a typed in the filter (all mounts)", ("escape", "slash"), "a"),
    ("esc (clear filter)", ("slash", "x"), "escape"),
    ("h (problems only)", (), "h"),
    ("> (sort by next column)", (), "greater_than_sign"),
    ("z (zoom)", (), "z"),
)


async def _send(app: OvlInspectApp, key: str) -> None:
    char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)  # type: ignore[union-attr]


async def _quiet(app: OvlInspectApp, frames: list[float]) -> None:
    """Wait until no frame has been written for 60 ms."""
    await asyncio.sleep(0.01)
    while True:
        seen = len(frames)
        await asyncio.sleep(0.06)
        if len(frames) == seen and not app.mount_tree.filling and not app.ns_table.restoring:
            return


async def measure(namespaces: int, overlays: int,
                  repeats: int) -> dict[str, list[tuple[float, float]]]:
    scan = synthetic_scan(namespaces, overlays)
    app = OvlInspectApp(lambda: scan)
    app.animation_level = "none"
    frames: list[float] = []
    display = app._display

    def recording(screen: Any, renderable: Any) -> None:
        display(screen, renderable)
        frames.append(time.perf_counter())

    app._display = recording  # type: ignore[method-assign]
    out: dict[str, list[tuple[float, float]]] = {}
    async with app.run_test(size=(120, 40)):
        while app.scan is None:
            await asyncio.sleep(0.005)
        await _quiet(app, frames)
        for name, scene, key in STEPS:
            samples = []
            for _ in range(repeats):
                for k in scene:
                    await _send(app, k)
                await _quiet(app, frames)
                start = time.perf_counter()
                await _send(app, key)
                await _quiet(app, frames)
                after = [f - start for f in frames if f > start]
                if after:  # (first frame, last frame) after the key
                    samples.append((after[0], after[-1]))
            out[name] = samples
            for k in ("escape",):  # leave the scene as it was
                await _send(app, k)
            await _quiet(app, frames)
    return out


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main(argv: list[str]) -> None:
    namespaces = int(argv[0]) if argv else 300
    overlays = int(argv[1]) if len(argv) > 1 else 20
    repeats = int(argv[2]) if len(argv) > 2 else 20
    print(f"synthetic host: {namespaces} namespaces x {overlays} overlays; {repeats} samples "
          "per key; ms from the key to the first frame it causes and to the last")
    results = asyncio.run(measure(namespaces, overlays, repeats))
    print(f"  {'key':<40} {'first p50':>9} {'first p90':>9} {'last p50':>9} {'last p90':>9}")
    worst_first = worst_last = 0.0
    for name, samples in results.items():
        if not samples:
            print(f"  {name:<40} (no frame: nothing changed)")
            continue
        first = [a for a, _ in samples]
        last = [b for _, b in samples]
        worst_first, worst_last = max(worst_first, _p90(first)), max(worst_last, _p90(last))
        print(f"  {name:<40} {statistics.median(first) * 1000:8.1f} {_p90(first) * 1000:9.1f} "
              f"{statistics.median(last) * 1000:9.1f} {_p90(last) * 1000:9.1f}")
    print(f"worst p90: first frame {worst_first * 1000:.1f} ms, last frame "
          f"{worst_last * 1000:.1f} ms (goal: 50 ms)")


if __name__ == "__main__":
    main(sys.argv[1:])
