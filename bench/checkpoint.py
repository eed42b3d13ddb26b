"""Benchmark: ``ovlinspect dump`` and ``dump --verify``, per overlay.

Builds N overlays (LOWERS lowers each, FILES files per layer, plus an upper with a whiteout and a
copy-up) inside a private mount namespace, with the layer directories on the host's temp dir.
Then times, per overlay, the dump of just that mount point (engine scan + dump) and the
``--verify`` rebuild-and-compare, and the whole ``dump --pid`` / ``dump --pid --verify``
commands end to end.  Prints figures; asserts nothing.  Run as root:
    python bench/checkpoint.py [N] [LOWERS] [FILES]
(overlays are mounted with mount(2): LOWERS is bounded by the 4096-byte options page, ~100.)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from ovlinspect.checkpoint.compare import Bounds
from ovlinspect.checkpoint.dump import build_dump
from ovlinspect.checkpoint.verify import verify_overlay

from scenario import running


def build_script(count: int, lowers: int, files: int) -> str:
    """A shell script making ``count`` overlays."""
    return f"""
i=0
while [ $i -lt {count} ]; do
  d=$T/o$i; mkdir -p $d/u $d/w $d/m
  j=0; low=""
  while [ $j -lt {lowers} ]; do
    mkdir -p $d/l$j/sub; echo x > $d/l$j/only$j
    k=0; while [ $k -lt {files} ]; do echo "$i $j $k" > $d/l$j/sub/f$j-$k; k=$((k+1)); done
    low="$low${{low:+:}}$d/l$j"; j=$((j+1))
  done
  mount -t overlay ov -o lowerdir=$low,upperdir=$d/u,workdir=$d/w $d/m
  rm $d/m/sub/f0-0; echo more >> $d/m/sub/f1-1
  i=$((i+1))
done
echo ready; exec sleep 600
"""


def _cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ovlinspect", "dump", *args], check=False,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    lowers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    files = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    print(f"{count} overlays, {lowers} lowers, {files} files per lower")
    with running(build_script(count, lowers, files), timeout=300) as sc:
        print(f"{'overlay':>8} {'dump s':>8} {'verify s':>9} {'entries':>8} verified")
        for i in range(count):
            point = f"{sc.tmp}/o{i}/m"
            start = time.perf_counter()
            dump = build_dump(sc.pid, point)
            took = time.perf_counter() - start
            ov = dump.overlays[0]
            start = time.perf_counter()
            check = verify_overlay(ov, Bounds())
            vtook = time.perf_counter() - start
            print(f"{i:>8} {took:>8.3f} {vtook:>9.3f} {check.get('entries', '-'):>8} "
                  f"{check.get('verified')}")
        print(f"dump --pid (all {count}, CLI end to end): {_cli('--pid', str(sc.pid)):.3f} s")
        print(f"dump --pid --verify (CLI end to end): "
              f"{_cli('--pid', str(sc.pid), '--verify'):.3f} s")


if __name__ == "__main__":
    main()
