"""Benchmark (issue #9): ``ovlinspect --json`` on a quiet host against a bare ``python3 -c pass``.

Compiles the package's bytecode first (as an installed package has it; this environment may set
PYTHONDONTWRITEBYTECODE), then alternates the commands in one run (these machines are noisy) and
prints medians and their ratio (goal: at most 5x).  Both ``python -m ovlinspect`` and the console
script's own entry (``from ovlinspect.cli.main import main``, no runpy) are measured.  The host is
whatever this machine has now; the number of namespaces and overlays scanned is printed, so that a
busy machine is not mistaken for a quiet one.  Asserts nothing.  Run as root:
``python bench/startup.py [ROUNDS]``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY = "import sys; from ovlinspect.cli.main import main; sys.exit(main())"


def wall(cmd: list[str]) -> float:
    """Seconds ``cmd`` takes, its output discarded."""
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "ovlinspect")],
                   check=True, capture_output=True)
    commands = {
        "python -m ovlinspect --json": [sys.executable, "-m", "ovlinspect", "--json"],
        "console script --json": [sys.executable, "-c", ENTRY, "--json"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    report = json.loads(subprocess.run(commands["python -m ovlinspect --json"],
                                       capture_output=True, text=True, check=True).stdout)
    overlays = sum(len(ns["overlays"]) for ns in report["namespaces"])
    for cmd in commands.values():  # warm the page cache
        wall(cmd)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(wall(cmd))
    bare = statistics.median(times["python -c pass"])
    print(f"host: {len(report['namespaces'])} namespaces, {overlays} overlays; "
          f"{rounds} paired rounds, medians")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"  {name:30s} {med * 1000:6.1f} ms  {med / bare:4.1f}x python -c pass")
    print("goal: --json at most 5.0x python -c pass")


if __name__ == "__main__":
    main()
