"""Helpers shared by the TUI tests: fixture scans, an app factory, the screen as text."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console

from ovlinspect.model import Scan
from ovlinspect.tui.app import OvlInspectApp

FIXTURES = Path(__file__).parent / "fixtures"


def load_scan(name: str = "scan.json") -> Scan:
    """A fixture scan (hand-made, fake pids/inodes/uuids)."""
    return Scan.from_dict(json.loads((FIXTURES / name).read_text(encoding="utf-8")))


def make_app(scan: Scan | Callable[[], Scan] | None = None, **kwargs: object) -> OvlInspectApp:
    """An app on fixture data: no mount watching, no animation, no cursor blink."""
    if scan is None:
        scan = load_scan()
    scanner = scan if callable(scan) else (lambda: copy.deepcopy(scan))
    app = OvlInspectApp(scanner, **kwargs)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app


def screen_text(app: OvlInspectApp) -> str:
    """The screen as plain text, as a terminal would show it."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False)
    console.print(app.screen._compositor.render_update(full=True,
                                                       screen_stack=app._background_screens))
    return console.export_text()


async def settle(pilot: Any) -> None:
    """Wait for the scan worker and for every message it caused."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


SIZE = (120, 40)


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run an async test body (the suite has no asyncio plugin)."""
    asyncio.run(body())


def tree_labels(app: OvlInspectApp) -> list[str]:
    """The plain labels of every built node of the mount tree, depth first."""
    return [node.label.plain for node in app.mount_tree.walk()]


def find_node(app: OvlInspectApp, *key: str) -> Any:
    """The tree node keyed ``key`` (namespace key, mount id, layer label, …)."""
    for node in app.mount_tree.walk():
        if node.data is not None and node.data.key == key:
            return node
    raise AssertionError(f"no node {key}; have {[n.data.key for n in app.mount_tree.walk()]}")


def big_scan(namespaces: int, overlays: int) -> Scan:
    """A synthetic host: ``namespaces`` x ``overlays`` mounts, every 5th with a hazard."""
    from ovlinspect.model import (
        Layer,
        Namespace,
        Overlay,
        OverlayOptions,
        Process,
        Status,
        Verified,
    )
    from ovlinspect.model.hazards import hazard

    scan = Scan(source="synthetic")
    mount_id = 100
    for n in range(namespaces):
        ns = Namespace(mnt_ns=5000 + n, root_pid=10_000 + n, pids=[10_000 + n],
                       processes=[Process(10_000 + n, "app", f"c{n}")])
        for o in range(overlays):
            mount_id += 1
            lower = f"/big/{n}/{o}/lower"
            overlay = Overlay(mount_id, None, f"/big/{n}/{o}/merged", "overlay", "overlay", "rw",
                              f"rw,lowerdir={lower}", OverlayOptions(lowerdir=[lower]),
                              layers=[Layer("lower", 0, lower, path=lower,
                                            verified=Verified.MATCH)], status=Status.OK)
            if o % 5 == 0:
                overlay.layers[0].hazards.append(hazard("stale-path", "lower[0]", "covered"))
                overlay.status = Status.ERROR
            ns.overlays.append(overlay)
        scan.namespaces.append(ns)
    return scan


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Pause until ``condition()`` holds (robust on a loaded machine); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        await pilot.pause(0.05)


def palette_shows(app: OvlInspectApp, text: str) -> Callable[[], bool]:
    """A condition: the command palette's first hit contains ``text``."""

    def check() -> bool:
        lists = app.screen.query("CommandList")
        if not lists or not lists.first().option_count:
            return False
        return text in str(lists.first().get_option_at_index(0).prompt)

    return check
