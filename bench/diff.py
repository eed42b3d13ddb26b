"""Benchmark (issue #11): ``ovlinspect diff`` against a naive diff of both trees, side by side.

Builds, in a private mount namespace only, a lower of FILES files (default 100000, in
directories of 100) on a tmpfs, and an overlay whose upper holds CHANGES changes (a third
rewritten files, a third new files, a third deleted files), for each CHANGES given (default 100
and 10000).  Then, alternating the two ROUNDS times:

- ``ovlinspect diff --pid P MERGED --json`` (a process: the engine's proof of the layers, then
  the upper walk);
- the naive diff, as docker's and podman's fallback differ does it: walk the merged tree and the
  lowers in full, lstat every entry, compare (a process running :func:`naive`).

Prints medians, each one's peak RSS, the ratio, and the in-process cost of the change walk alone
(time, and tracemalloc peak: memory follows the changes, not the image).  Asserts nothing.
Run as root: ``python bench/diff.py [FILES] [ROUNDS] [CHANGES...]``.
"""

from __future__ import annotations

import json
import os
import stat
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "core"))
sys.path.insert(0, str(REPO))

from scenario import running  # noqa: E402

BUILD = r"""
import os, subprocess
FILES, CHANGES = {files}, {changes}
sh = lambda c: subprocess.run(["sh", "-c", c], check=True)
sh(f"mount -t tmpfs bench {{T}} && mkdir {{T}}/l {{T}}/u {{T}}/w {{T}}/m")
for d in range(FILES // 100):
    os.mkdir(f"{{T}}/l/d{{d}}")
    for f in range(100):
        with open(f"{{T}}/l/d{{d}}/f{{f}}", "w") as out:
            out.write("x")
sh(f"mount -t overlay overlay -o lowerdir={{T}}/l,upperdir={{T}}/u,workdir={{T}}/w {{T}}/m")
dirs = FILES // 100
for i in range(CHANGES):
    d, f = (i * 7919) % dirs, (i // dirs) % 100
    where = f"{{T}}/m/d{{d}}"
    if i % 3 == 0:
        with open(f"{{where}}/f{{f}}", "a") as out:
            out.write("y")
    elif i % 3 == 1:
        with open(f"{{where}}/new{{i}}", "w") as out:
            out.write("n")
    else:
        try:
            os.unlink(f"{{where}}/f{{f}}")
        except FileNotFoundError:
            open(f"{{where}}/new{{i}}", "w").close()
info = {{"merged": f"{{T}}/m", "lower": f"{{T}}/l"}}
print("ready " + __import__("json").dumps(info), flush=True)
__import__("time").sleep(3600)
"""


def naive(merged: str, lower: str) -> int:
    """The naive differ: walk both trees in full, lstat everything, compare; the change count."""
    def walk(root: str) -> dict[str, tuple[int, int, int, int, int]]:
        out = {}
        todo = [""]
        while todo:
            rel = todo.pop()
            with os.scandir(root + rel) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    path = f"{rel}/{entry.name}"
                    out[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
                    if stat.S_ISDIR(st.st_mode):
                        todo.append(path)
        return out
    new, old = walk(merged), walk(lower)
    changed = [p for p, f in new.items() if old.get(p) != f]
    return len(changed) + sum(1 for p in old if p not in new)


def _timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env={**os.environ,
                                                                  "PYTHONPATH": str(REPO)})
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}")
    return took, usage.ru_maxrss


def _in_process(pid: int, merged: str, lower: str) -> dict[str, float]:
    """Seconds of the engine's proof, of the change walk alone and of the naive walk alone (no
    process start), and the walk's tracemalloc peak in bytes (a separate, traced run)."""
    from ovlinspect.changes.source import open_targets
    from ovlinspect.changes.walk import collect

    def walk() -> tuple[int, float]:
        (target,) = open_targets(pid, merged)
        assert target.source is not None
        start = time.perf_counter()
        try:
            return len(collect(target.source)[0]), time.perf_counter() - start
        finally:
            target.source.close()

    start = time.perf_counter()
    open_targets(pid, merged)[0].source.close()
    proof = time.perf_counter() - start
    count, walk_s = min(walk() for _ in range(3))
    root = f"/proc/{pid}/root"
    start = time.perf_counter()
    naive(root + merged, root + lower)
    naive_s = time.perf_counter() - start
    tracemalloc.start()
    walk()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"proof": proof, "walk": walk_s, "naive": naive_s, "peak": peak, "count": count}


def bench(files: int, changes: int, rounds: int) -> None:
    with running(BUILD.format(files=files, changes=changes), python=True, timeout=900) as sc:
        merged, lower = sc.info["merged"], sc.info["lower"]
        root = f"/proc/{sc.pid}/root"
        ours_cmd = [sys.executable, "-m", "ovlinspect", "diff", "--pid", str(sc.pid), merged,
                    "--json"]
        naive_cmd = [sys.executable, __file__, "--naive", root + merged, root + lower]
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(_timed(ours_cmd))
            theirs.append(_timed(naive_cmd))
        # In a child of its own: a big parent would pass its peak RSS on to later children.
        alone = json.loads(subprocess.run(
            [sys.executable, __file__, "--alone", str(sc.pid), merged, lower],
            check=True, capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}).stdout)
    o_t = statistics.median(t for t, _ in ours)
    n_t = statistics.median(t for t, _ in theirs)
    print(f"lower {files} files, {alone['count']} changes listed ({changes} made), "
          f"{rounds} rounds:")
    print(f"  ovlinspect diff (process): median {o_t * 1000:8.1f} ms, "
          f"peak RSS {max(r for _, r in ours) / 1024:6.1f} MiB")
    print(f"  naive diff (process):      median {n_t * 1000:8.1f} ms, "
          f"peak RSS {max(r for _, r in theirs) / 1024:6.1f} MiB")
    print(f"  ratio naive / ovlinspect:  {n_t / o_t:8.1f}x (processes, start-up included)")
    print(f"  in process: engine proof {alone['proof'] * 1000:.1f} ms; change walk "
          f"{alone['walk'] * 1000:.1f} ms against naive walk {alone['naive'] * 1000:.1f} ms "
          f"({alone['naive'] / alone['walk']:.0f}x); walk tracemalloc peak "
          f"{alone['peak'] / 1024:.0f} KiB")


def main() -> None:
    if sys.argv[1:2] == ["--naive"]:
        print(naive(sys.argv[2], sys.argv[3]))
        return
    if sys.argv[1:2] == ["--alone"]:
        print(json.dumps(_in_process(int(sys.argv[2]), sys.argv[3], sys.argv[4])))
        return
    args = [int(a) for a in sys.argv[1:]]
    files = args[0] if args else 100_000
    rounds = args[1] if len(args) > 1 else 3
    for changes in args[2:] or [100, 10_000]:
        bench(files, changes, rounds)


if __name__ == "__main__":
    main()
