"""Benchmark: how long the demo lab takes to start (holder up, every scenario built) and stop.

Starts and stops ``Lab()`` N times as root and N times rootless (a user namespace; as root too,
when run as root), and prints the median and max of each phase.  Prints figures; asserts nothing.
Run:  python bench/lab_start.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ovlinspect.lab import Lab, LabError


def measure(rootless: bool, runs: int) -> dict[str, list[float]] | str:
    """Per-run seconds of each phase, or why the lab could not start."""
    phases: dict[str, list[float]] = {"start": [], "build (in the holder)": [], "stop": []}
    for _ in range(runs):
        lab = Lab(rootless=rootless)
        try:
            lab.start()
        except LabError as exc:
            return str(exc)
        began = time.monotonic()
        lab.stop()
        phases["stop"].append(time.monotonic() - began)
        phases["start"].append(lab.start_seconds or 0.0)
        phases["build (in the holder)"].append(lab.build_seconds or 0.0)
    return phases


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    modes = [("root", False), ("rootless", True)] if os.geteuid() == 0 else [("rootless", True)]
    print(f"lab start/stop, {runs} runs each (uid {os.geteuid()}, kernel {os.uname().release})")
    for name, rootless in modes:
        figures = measure(rootless, runs)
        if isinstance(figures, str):
            print(f"{name:>9}: cannot start: {figures}")
            continue
        for phase, times in figures.items():
            print(f"{name:>9}  {phase:<22} median {statistics.median(times) * 1000:7.1f} ms"
                  f"   max {max(times) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
