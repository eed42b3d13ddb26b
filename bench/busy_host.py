"""Benchmark (issue #9): a busy host, measured side by side against a findmnt loop.

Builds, in private mount namespaces only, a Docker-like host: one storage root (``overlay2/``
with ``l/`` short-name symlinks) whose image layers are shared by every container, and NS
namespaces (default 300) that each mount OVERLAYS (7) container overlays of LOWERS (5) image
layers with relative paths, as Docker does after chdir into its root; every 10th namespace has a
second process.  Then, alternating the two in one run (these machines are noisy):

- ``ovlinspect --json`` of the whole host (and, unpaired, in one process), against
  ``for p in $(lsns -t mnt -n -o PID); do findmnt -J -t overlay -N $p; done``;
- ``ovlinspect --pid P --json`` on one namespace, on the busy host and on a quiet one;
- ``ovlinspect --json`` on a quiet host against ``python3 -c pass``;
- one overlay with 5 and with 500 lowers: the cost per layer.

Prints medians, peak RSS and ratios; asserts nothing.  Run as root:
``python bench/busy_host.py [NS] [OVERLAYS] [LOWERS] [ROUNDS]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "core"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from scenario import running

BUILD = r"""
import ctypes, json, os, sys, time
from ovlinspect.kernel import mountapi as m
NS, OVERLAYS, LOWERS = {ns}, {overlays}, {lowers}
libc = ctypes.CDLL(None, use_errno=True)
m.mount("busy", T, "tmpfs", 0, "mode=755")
root = f"{{T}}/overlay2"
os.makedirs(f"{{root}}/l")
images = 10
for img in range(images):
    for k in range(LOWERS):
        layer = f"img{{img:02d}}layer{{k}}"
        os.makedirs(f"{{root}}/{{layer}}/diff/etc")
        open(f"{{root}}/{{layer}}/diff/etc/{{layer}}", "w").write(layer)
        open(f"{{root}}/{{layer}}/diff/shared", "w").write(layer)
        os.symlink(f"../{{layer}}/diff", f"{{root}}/l/S{{img:02d}}{{k}}")
pids = []
for n in range(NS):
    for o in range(OVERLAYS):
        cid = f"c{{n:04d}}o{{o}}"
        for sub in ("diff", "work", "merged"):
            os.makedirs(f"{{root}}/{{cid}}/{{sub}}")
        open(f"{{root}}/{{cid}}/diff/only-{{cid}}", "w").write(cid)
    child = os.fork()
    if child == 0:
        try:
            if libc.unshare(0x00020000) != 0:
                os._exit(1)
            m.mount("none", "/", None, m.MS_REC | m.MS_PRIVATE, None)
            os.chdir(root)
            for o in range(OVERLAYS):
                cid = f"c{{n:04d}}o{{o}}"
                img = (n * OVERLAYS + o) % images
                low = ":".join(f"{{root}}/l/S{{img:02d}}{{k}}" for k in range(LOWERS))
                m.mount("overlay", f"{{cid}}/merged", "overlay", 0, f"lowerdir={{low}},"
                        f"upperdir={{root}}/{{cid}}/diff,workdir={{root}}/{{cid}}/work")
            os.chdir("/")
            if n % 10 == 0 and os.fork() == 0:
                os.execvp("sleep", ["sleep", "3600"])
            os.execvp("sleep", ["sleep", "3600"])
        except BaseException:
            os._exit(1)
    pids.append(child)
time.sleep(1.0)
print("ready" + json.dumps({{"pids": " ".join(map(str, pids))}}), flush=True)
time.sleep(3600)
"""

DEPTH = r"""
import os, time
from ovlinspect.kernel import mountapi as m
m.mount("depth", T, "tmpfs", 0, "mode=755")
for n in (5, 500):
    lows = []
    for k in range(n):
        d = f"{T}/d{n}/l{k}"
        os.makedirs(d)
        open(f"{d}/only{k}", "w").write("x")
        lows.append(f"l{k}")
    for sub in ("u", "w", "m"):
        os.makedirs(f"{T}/d{n}/{sub}")
    os.chdir(f"{T}/d{n}")
    m.overlay_new_api(f"{T}/d{n}/m", lowers=[f"{T}/d{n}/{x}" for x in lows],
                      upper=f"{T}/d{n}/u", work=f"{T}/d{n}/w")
os.chdir("/")
print("ready", flush=True)
time.sleep(3600)
"""

FINDMNT = ("for p in $(lsns -t mnt -n -o PID); do findmnt -J -t overlay -N $p; done "
           ">/dev/null 2>&1")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``cmd``, from /usr/bin/time (for a command that forks
    a helper, the larger of the two processes' peaks: wait4 reports the maximum, not the sum)."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True,
                          text=True, check=False, env=env)
    wall = time.perf_counter() - start
    return wall, int(done.stderr.strip().splitlines()[-1])


def ovl(*args: str) -> list[str]:
    return [sys.executable, "-m", "ovlinspect", *args]


def paired(a: list[str], b: list[str], rounds: int) -> tuple[list[tuple[float, int]], ...]:
    ra, rb = [], []
    for _ in range(rounds):
        ra.append(timed(a))
        rb.append(timed(b))
    return ra, rb


def med(samples: list[tuple[float, int]]) -> tuple[float, int]:
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def depth_costs(pid: int, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds to analyse the 5-lower and the 500-lower overlay, each alone, ``rounds`` times."""
    from ovlinspect.engine.analyse import analyse
    from ovlinspect.engine.scan import context_for

    shallow: list[float] = []
    deep: list[float] = []
    with context_for(pid) as (ctx, mounts, _ns):
        entries = {n: next(m for m in mounts if m.mount_point.endswith(f"/d{n}/m"))
                   for n in (5, 500)}
        for n in (5, 500):
            analyse(entries[n], ctx)  # warm the filesystem index
        for _ in range(rounds):
            for n, out in ((5, shallow), (500, deep)):
                start = time.perf_counter()
                analyse(entries[n], ctx)
                out.append(time.perf_counter() - start)
    return shallow, deep


def main() -> None:
    # Measure as an installed package runs: with its bytecode compiled (this environment may set
    # PYTHONDONTWRITEBYTECODE, which would make every run compile the package again).
    package = Path(__file__).resolve().parents[1] / "ovlinspect"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True,
                   capture_output=True)
    given = sys.argv[1:4]
    ns, overlays, lowers = (int(x) for x in given + ["300", "7", "5"][len(given):])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    quiet_script = BUILD.format(ns=1, overlays=overlays, lowers=lowers)
    with running(quiet_script, python=True, timeout=120, bare=True) as quiet:
        pid = quiet.info["pids"].split()[0]
        pid_quiet = [timed(ovl("--pid", pid, "--json")) for _ in range(rounds)]
        json_quiet, bare = paired(ovl("--json"), [sys.executable, "-c", "pass"], rounds)
    with running(BUILD.format(ns=ns, overlays=overlays, lowers=lowers), python=True,
                 timeout=900, bare=True) as busy:
        pids = busy.info["pids"].split()
        report = json.loads(subprocess.run(ovl("--json"), capture_output=True, text=True,
                                           check=True).stdout)
        mine = [o for n in report["namespaces"] if set(map(int, pids)) & set(n["pids"])
                for o in n["overlays"]]
        proven = sum(1 for o in mine for x in o["layers"] if x["verified"] == "match")
        statuses: dict[str, int] = {}
        for o in mine:
            statuses[o["status"]] = statuses.get(o["status"], 0) + 1
        full, loop = paired(ovl("--json"), ["sh", "-c", FINDMNT], rounds)
        alone = [timed(ovl("--json"), env={**os.environ, "OVLINSPECT_JOBS": "1"})
                 for _ in range(rounds)]
        pid_busy = [timed(ovl("--pid", pids[len(pids) // 2], "--json")) for _ in range(rounds)]
    with running(DEPTH, python=True, timeout=300, bare=True) as depth:
        shallow, deep = depth_costs(depth.pid, rounds)
    f_wall, f_rss = med(full)
    l_wall, l_rss = med(loop)
    pq, pb = med(pid_quiet)[0], med(pid_busy)[0]
    jq, bq = med(json_quiet)[0], med(bare)[0]
    per5, per500 = statistics.median(shallow) / 5, statistics.median(deep) / 500
    print(f"busy host: {len(pids)} namespaces x {overlays} overlays x {lowers} lowers "
          f"({len(mine)} overlays; {proven} layers proven; statuses {statuses})")
    print(f"  ovlinspect --json:  median {f_wall:.2f} s, peak RSS {f_rss / 1024:.0f} MiB")
    a_wall, a_rss = med(alone)
    print(f"  ... one process:    median {a_wall:.2f} s, peak RSS {a_rss / 1024:.0f} MiB "
          "(OVLINSPECT_JOBS=1; not paired)")
    print(f"  findmnt loop:       median {l_wall:.2f} s, peak RSS {l_rss / 1024:.0f} MiB")
    print(f"  ratio ovlinspect/findmnt: {f_wall / l_wall:.2f}x (goal <= 1.0), "
          f"RSS goal <= 100 MiB")
    print(f"--pid on one namespace: busy {pb * 1000:.0f} ms, quiet {pq * 1000:.0f} ms, "
          f"ratio {pb / pq:.2f}x (goal <= 1.2)")
    print(f"quiet host --json {jq * 1000:.0f} ms vs python3 -c pass {bq * 1000:.0f} ms: "
          f"{jq / bq:.1f}x (goal <= 5)")
    print(f"depth: per layer {per5 * 1e6:.0f} us at 5 lowers, {per500 * 1e6:.0f} us at 500: "
          f"{per500 / per5:.2f}x (goal <= 2)")


if __name__ == "__main__":
    main()
