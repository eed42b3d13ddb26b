"""Benchmark: how long a full scan takes on a namespace with many overlay mounts.

Builds N overlays (each with LOWERS tmpfs-backed lowers, an upper and a work dir) inside a private
mount namespace, then times ``scan(pids=[that pid])`` and the ``--json`` command end to end.
Prints figures; asserts nothing.  Run as root:  python bench/scan_many.py [N] [LOWERS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from ovlinspect.engine.scan import scan

from scenario import running


def build_script(count: int, lowers: int) -> str:
    """A shell script making ``count`` overlays with ``lowers`` lowers each."""
    return f"""
mount -t tmpfs lab $T
i=0
while [ $i -lt {count} ]; do
  d=$T/o$i; mkdir -p $d/u $d/w $d/m
  j=0; low=""
  while [ $j -lt {lowers} ]; do
    mkdir -p $d/l$j; echo x > $d/l$j/only$j; low="$low${{low:+:}}$d/l$j"; j=$((j+1))
  done
  mount -t overlay ov -o lowerdir=$low,upperdir=$d/u,workdir=$d/w $d/m
  i=$((i+1))
done
echo ready; exec sleep 600
"""


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    lowers = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with running(build_script(count, lowers), timeout=300) as sc:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            result = scan(pids=[sc.pid])
            times.append(time.perf_counter() - start)
        overlays = sum(len(ns.overlays) for ns in result.namespaces)
        matched = sum(1 for ns in result.namespaces for o in ns.overlays for layer in o.layers
                      if layer.verified.value == "match")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ovlinspect", "--pid", str(sc.pid), "--json"],
                       check=True, capture_output=True)
        cli = time.perf_counter() - start
    print(f"overlays: {overlays} x {lowers} lowers; layers proven (match): {matched}")
    print(f"scan(): median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms"
          f" ({statistics.median(times) / overlays * 1000:.2f} ms per overlay)")
    print(f"ovlinspect --pid --json end to end: {cli * 1000:.0f} ms")


if __name__ == "__main__":
    main()
