"""How the TUI copes with a big host: a synthetic scan of 300 namespaces x 20 overlays.

Run: ``.venv/bin/python bench/tui_big.py [NAMESPACES] [OVERLAYS]``.  Prints wall-clock times of
app start to first paint with data, moving between namespaces, expanding a mount and a layer,
a rescan, and a filter.  Goals (on the 2-core reference machine; nothing asserts them):
scan shown < 1 s, namespace switch < 100 ms, expand < 200 ms, rescan < 500 ms.  Key presses go
through Pilot, which adds its own ~50-100 ms of waiting per key.
"""

from __future__ import annotations

import asyncio
import copy
import sys
import time
from typing import Any

from ovlinspect.model import (
    Handle,
    Layer,
    Namespace,
    Overlay,
    OverlayOptions,
    Process,
    Scan,
    Status,
)
from ovlinspect.model.hazards import hazard
from ovlinspect.tui.app import OvlInspectApp

D = "/var/lib/docker/overlay2"


def synthetic_scan(namespaces: int = 300, overlays: int = 20) -> Scan:
    """``namespaces`` container-like namespaces, each with ``overlays`` docker-style mounts."""
    scan = Scan(source="synthetic")
    mount_id = 1000
    for n in range(namespaces):
        pid = 10_000 + n * 10
        ns = Namespace(mnt_ns=4_026_600_000 + n, root_pid=pid, pids=[pid, pid + 1],
                       processes=[Process(pid, "containerd-shim", f"ctr-{n:03d}"),
                                  Process(pid + 1, "app", f"ctr-{n:03d}")])
        for o in range(overlays):
            mount_id += 1
            top = f"{n:04x}{o:04x}"
            lowers = [f"{D}/l/{top}{i:02d}" for i in range(8)]
            layers = [Layer("upper", 0, f"{D}/{top}/diff", path=f"{D}/{top}/diff",
                            real_path=f"{D}/{top}/diff", dev="0:40", ino=mount_id,
                            handle=Handle(1, f"{mount_id:016x}")),
                      Layer("work", 0, f"{D}/{top}/work", path=f"{D}/{top}/work")]
            layers += [Layer("lower", i, p, path=p, real_path=p, symlinks=[],
                             hazards=[hazard("symlink", f"lower[{i}]", f"{p} is a symlink")])
                       for i, p in enumerate(lowers)]
            overlay = Overlay(mount_id, None, f"{D}/{top}/merged", "overlay", "overlay",
                              "rw,relatime", "rw,lowerdir=" + ":".join(lowers),
                              OverlayOptions(lowerdir=lowers), layers=layers)
            overlay.status = Status.INFO
            if o % 7 == 3:
                overlay.hazards.append(hazard("volatile", None, "volatile upper"))
                overlay.status = Status.WARNING
            ns.overlays.append(overlay)
        scan.namespaces.append(ns)
    return scan


async def measure(scan: Scan) -> dict[str, float]:
    """Seconds for each step, measured through Pilot like a user at the keyboard."""
    scans = [scan, copy.deepcopy(scan)]
    app = OvlInspectApp(lambda: scans.pop(0) if len(scans) > 1 else scans[0])
    app.animation_level = "none"
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        while app.scan is None:  # the scan result has been handled: the next frame shows it
            await asyncio.sleep(0.002)
        out["start to scan shown (first rows and mounts)"] = time.perf_counter() - t0
        while app.ns_table.restoring or app.mount_tree.filling:  # batches, one per refresh
            await asyncio.sleep(0.002)
        out["all rows and mounts listed (batches done)"] = time.perf_counter() - t0
        await pilot.pause()
        t = time.perf_counter()
        await pilot.press("end")
        out["jump to the last namespace (tree rebuilt)"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("tab")
        out["tab to the mounts pane (details redrawn)"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("right")
        out["expand a mount (10 layers)"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("down", "right")
        out["move + expand a layer"] = time.perf_counter() - t
        t = time.perf_counter()
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        out["rescan (state kept)"] = time.perf_counter() - t
        t = time.perf_counter()
        app.filter_box.value = "volatile"
        await pilot.pause()
        out["filter 'volatile' over all mounts"] = time.perf_counter() - t
    return out


def main(argv: list[str]) -> None:
    namespaces = int(argv[0]) if argv else 300
    overlays = int(argv[1]) if len(argv) > 1 else 20
    t = time.perf_counter()
    scan = synthetic_scan(namespaces, overlays)
    build = time.perf_counter() - t
    print(f"synthetic scan: {namespaces} namespaces x {overlays} overlays "
          f"({namespaces * overlays} mounts) built in {build:.2f}s")
    results: dict[str, Any] = asyncio.run(measure(scan))
    for name, seconds in results.items():
        print(f"  {name:<44} {seconds * 1000:8.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
