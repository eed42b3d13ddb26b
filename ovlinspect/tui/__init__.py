"""The interactive TUI (the only part of ovlinspect that imports textual).

:func:`run_app` runs it in the terminal; :func:`save_screenshot` renders it headless to an SVG.
"""

from __future__ import annotations

from ovlinspect.model import Scan
from ovlinspect.tui.app import OvlInspectApp, Scanner


def live_scanner(pids: list[int] | None) -> Scanner:
    """A scanner of the live system (``ovlinspect.engine.scan``), imported when first used."""

    def run() -> Scan:
        from ovlinspect.engine.scan import scan

        return scan(pids=pids)

    return run


def build_app(pids: list[int] | None = None, scan_result: Scan | None = None,
              screenshot_dir: str = ".", watch: float | None = None,
              watch_mounts: bool | None = None) -> OvlInspectApp:
    """The app for the CLI's arguments: a fixed scan result, or live scans."""
    if scan_result is not None:
        result = scan_result
        scanner: Scanner = lambda: result  # noqa: E731
    else:
        scanner = live_scanner(pids)
    if watch_mounts is None:
        watch_mounts = scan_result is None
    return OvlInspectApp(scanner, focus_pids=pids, screenshot_dir=screenshot_dir, watch=watch,
                         watch_mounts=watch_mounts)


def run_app(pids: list[int] | None = None, scan_result: Scan | None = None,
            screenshot_dir: str = ".", watch: float | None = None) -> int:
    """Run the TUI until the user quits; the exit status."""
    app = build_app(pids, scan_result, screenshot_dir, watch)
    app.run()
    return app.return_code or 0


async def render_svg(app: OvlInspectApp, size: tuple[int, int] = (120, 40)) -> str:
    """Run ``app`` headless until its first scan is shown; the screen as SVG.

    A scan that fails before anything was shown raises its error (a ``ScanError`` for the CLI).
    """
    svg = ""
    async with app.run_test(size=size) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        if app.scan is None and app.scan_error is not None:
            raise app.scan_error
        svg = app.export_screenshot()
    return svg


def save_screenshot(path: str, size: tuple[int, int] = (120, 40), pids: list[int] | None = None,
                    scan_result: Scan | None = None) -> None:
    """Render the TUI headless (after the scan) into the SVG file ``path``."""
    import asyncio

    app = build_app(pids, scan_result, watch_mounts=False)
    svg = asyncio.run(render_svg(app, size))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(svg)


__all__ = ["OvlInspectApp", "build_app", "live_scanner", "render_svg", "run_app",
           "save_screenshot"]
