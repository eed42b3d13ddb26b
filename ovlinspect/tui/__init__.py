"""The interactive TUI (the only part of ovlinspect that imports textual).

:func:`run_app` runs it in the terminal; :func:`save_screenshot` renders it headless to an SVG.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator

from ovlinspect.model import Scan
from ovlinspect.tui.app import OvlInspectApp, Scanner


def live_scanner(pids: list[int] | None) -> Scanner:
    """A scanner of the live system (``ovlinspect.engine.scan``), imported when first used.

    When processes of ``pids`` have exited since the first scan, the others are scanned (none
    left: an empty scan) rather than the scan failing: the TUI then shows the namespaces of the
    exited ones as gone.  A bad pid still fails the first scan."""
    seen: set[int] = set()

    def run() -> Scan:
        from ovlinspect.engine.scan import ScanError, scan

        try:
            result = scan(pids=pids)
        except ScanError:
            if not (pids and seen):
                raise  # a bad pid in the first scan is the user's error
            alive = [p for p in pids if _alive(p)]
            if not alive:
                return Scan()
            if alive == pids:
                raise
            result = scan(pids=alive)  # the namespaces of the exited ones show as gone
        seen.update(pids or [])
        return result

    def steps(first: Callable[[], int | None]) -> Iterator[object]:
        """The first scan in steps (see :func:`ovlinspect.engine.progressive.scan_steps`)."""
        from ovlinspect.engine.progressive import scan_steps

        seen.update(pids or [])
        return scan_steps(pids, first)

    run.steps = steps  # type: ignore[attr-defined]
    return run


def _alive(pid: int) -> bool:
    """False for a pid that is gone or a zombie (as ``processes`` judges it for a scan)."""
    from ovlinspect.host.processes import ScanError, processes

    try:
        processes([pid])
    except ScanError:
        return False
    return True


def build_app(pids: list[int] | None = None, scan_result: Scan | None = None,
              screenshot_dir: str = ".", watch: float | None = None,
              watch_mounts: bool | None = None, select: str | None = None,
              expand: bool = False) -> OvlInspectApp:
    """The app for the CLI's arguments: a fixed scan result, or live scans; ``select`` (a mount
    point or id) and ``expand`` choose what the first screen opens."""
    if scan_result is not None:
        result = scan_result
        scanner: Scanner = lambda: result  # noqa: E731
    else:
        scanner = live_scanner(pids)
    if watch_mounts is None:
        watch_mounts = scan_result is None
    return OvlInspectApp(scanner, focus_pids=pids, screenshot_dir=screenshot_dir, watch=watch,
                         watch_mounts=watch_mounts, select=select, expand=expand)


def _keyboard_from_terminal() -> str | None:
    """Make fd 0 the terminal when stdin is redirected (``</dev/null``, a pipe, ``--from-file -``):
    keys are then read from ``/dev/tty``.  Returns why the TUI cannot run, or None."""
    stdin = sys.__stdin__
    if stdin is not None and stdin.isatty():
        return None
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        return (f"the TUI needs a terminal to read keys from, and /dev/tty cannot be opened "
                f"({exc.strerror}); use --plain, --json or --check")
    os.dup2(fd, 0)  # dup2 clears O_CLOEXEC on fd 0
    os.close(fd)
    if stdin is None:
        sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    return None


def run_app(pids: list[int] | None = None, scan_result: Scan | None = None,
            screenshot_dir: str = ".", watch: float | None = None, select: str | None = None,
            expand: bool = False) -> int:
    """Run the TUI until the user quits; the exit status (2 when there is no terminal)."""
    problem = _keyboard_from_terminal()
    if problem is not None:
        print(f"ovlinspect: {problem}", file=sys.stderr)
        return 2  # the CLI's usage / bad-input status
    app = build_app(pids, scan_result, screenshot_dir, watch, select=select, expand=expand)
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
        while app.mount_tree.filling or app.ns_table.restoring:
            await pilot.pause()
        await pilot.pause()
        if app.select_missing:
            from ovlinspect.engine.scan import ScanError

            raise ScanError(f"--select {app.select}: no such mount point or mount id in this "
                            "scan")
        svg = app.export_screenshot()
    return svg


def save_screenshot(path: str, size: tuple[int, int] = (120, 40), pids: list[int] | None = None,
                    scan_result: Scan | None = None, select: str | None = None,
                    expand: bool = False) -> None:
    """Render the TUI headless (after the scan) into the SVG file ``path``: the worst mount
    selected, or ``select``'s; ``expand`` opens it and its layers."""
    import asyncio

    app = build_app(pids, scan_result, watch_mounts=False, select=select, expand=expand)
    svg = asyncio.run(render_svg(app, size))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(svg)


__all__ = ["OvlInspectApp", "build_app", "live_scanner", "render_svg", "run_app",
           "save_screenshot"]
