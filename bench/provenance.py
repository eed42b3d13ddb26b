"""Benchmark: ``which`` on many paths, and ``fds`` on a process with many open fds.

Builds one overlay (an upper and three lowers; PATHS files spread over the layers and over
DIRS directories, a tenth of them copied up) in a private mount namespace, and a holder
process there that keeps FDS fds open on those files (each file opened several times) plus an
inotify watch on every hundredth file.  Times the in-process API and the CLI end to end.
Prints figures; asserts nothing.  Run as root:  python bench/provenance.py [PATHS] [FDS] [DIRS]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))

from ovlinspect.provenance.fds import fds
from ovlinspect.provenance.which import which

from scenario import running

HOLD = r"""
import ctypes, os, resource, sys, time
files, count = open(sys.argv[1]).read().split(), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (count + 1000, count + 1000))
libc = ctypes.CDLL(None, use_errno=True)
ifd = libc.inotify_init1(0)
for i, path in enumerate(files):
    if i % 100 == 0:
        libc.inotify_add_watch(ifd, path.encode(), 0x2)
for i in range(count):
    os.open(files[i % len(files)], os.O_RDONLY)
print("ready", flush=True)
time.sleep(600)
"""


def build_script(paths: int, fds_wanted: int, dirs: int) -> str:
    """The scenario: files d<j>/f<i> spread over upper and lowers, a tenth copied up."""
    return f"""
mount -t tmpfs lab $T
cd $T; mkdir -p u w m l0 l1 l2
"{sys.executable}" - <<'PYEOF'
import os
layers = ["u", "l0", "l1", "l2"]
for i in range({paths}):
    d = f"{{layers[i % 4]}}/d{{i % {dirs}}}"
    os.makedirs(d, exist_ok=True)
    with open(f"{{d}}/f{{i}}", "w") as out:
        out.write("x")
PYEOF
mount -t overlay ov -o lowerdir=l0:l1:l2,upperdir=u,workdir=w $T/m
i=1; while [ $i -lt {paths} ]; do echo y >> m/d$((i % {dirs}))/f$i; i=$((i + 40)); done
find $T/m -type f | sort > $T/files
cat > $T/hold.py <<'PYEOF'
{HOLD}
PYEOF
cd /
exec "{sys.executable}" $T/hold.py $T/files {fds_wanted}
"""


def _timed(fn, runs: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    paths = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    fds_wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    dirs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with running(build_script(paths, fds_wanted, dirs), timeout=300) as sc:
        files = Path(f"/proc/{sc.pid}/root{sc.tmp}/files").read_text().split()
        took, (results, errors) = _timed(lambda: which(sc.pid, files))
        layers: dict[str, int] = {}
        for r in results:
            layers[r.layer.label if r.layer else "?"] = layers.get(
                r.layer.label if r.layer else "?", 0) + 1
        print(f"which(): {len(files)} paths in {took * 1000:.0f} ms "
              f"({took / len(files) * 1e6:.0f} us per path); by layer {layers}; "
              f"copied up {sum(r.copied_up for r in results)}; errors {len(errors)}")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ovlinspect", "which", "--pid",
                               str(sc.pid), "--json", *files], capture_output=True, text=True)
        cli = time.perf_counter() - start
        print(f"ovlinspect which --json, {len(files)} paths, end to end: {cli * 1000:.0f} ms "
              f"(rc {done.returncode})")
        took, report = _timed(lambda: fds(sc.pid))
        print(f"fds(): {report.scanned} fds scanned, {len(report.fds)} on the overlay, "
              f"{len(report.watches)} watches, in {took * 1000:.0f} ms")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ovlinspect", "fds", "--pid", str(sc.pid),
                               "--json"], capture_output=True, text=True)
        cli = time.perf_counter() - start
        doc = json.loads(done.stdout) if done.returncode == 0 else {"fds": []}
        print(f"ovlinspect fds --json end to end: {cli * 1000:.0f} ms "
              f"({len(doc['fds'])} fds, rc {done.returncode})")


if __name__ == "__main__":
    main()
