"""Benchmark (issue #9): latency from ``umount`` to the watcher's callback, and to the TUI.

A private mount namespace (``unshare -m``) holds a tmpfs with OVERLAYS overlays; on command it
unmounts (or mounts again) one of them and prints the CLOCK_MONOTONIC time just before the
syscall.  Measured, for the fanotify backend and the POLLPRI fallback:

- ``watcher``: umount -> ``MountWatcher.follow`` callback naming the namespace (ROUNDS times);
- ``refresh``: ``engine.rescan.refresh`` of that one namespace, against a full ``scan()``;
- ``tui``: umount -> ``OvlInspectApp`` (headless, ``run_test``) holding a scan without the
  overlay (only the changed namespace is rescanned and merged), then one ``pilot.pause()`` for
  the paint; the app showing the lab's namespace alone (``--pid``), and the whole host.

EXTRA idle namespaces (default 100) are watched alongside in a second watcher round: with
fanotify, a new mount id is attributed by listing every marked namespace again.

Prints median / p90 / max in ms; asserts nothing.  Run as root:
``.venv/bin/python bench/mount_events.py [ROUNDS] [OVERLAYS] [TUI_ROUNDS] [EXTRA]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ovlinspect.tui.watch import Backend, MountWatcher, NsChange, namespaces  # noqa: E402

LAB = r"""
import os, sys, time
from ovlinspect.kernel import mountapi as m
T, N = sys.argv[1], int(sys.argv[2])
m.mount("evbench", T, "tmpfs")
def mount(i):
    d = f"{T}/o{i}"
    m.mount("evbench", f"{d}/m", "overlay", 0,
            f"lowerdir={d}/l,upperdir={d}/u,workdir={d}/w")
for i in range(N):
    for sub in "lumw":
        os.makedirs(f"{T}/o{i}/{sub}")
    mount(i)
print("ready", flush=True)
for line in sys.stdin:
    op, i = line.split()
    t = time.monotonic()
    if op == "u":
        m.umount(f"{T}/o{i}/m", m.MNT_DETACH)  # others scanning the host may hold it busy
    else:
        mount(int(i))
    print(t, flush=True)
"""


class Lab:
    """The private namespace and its command pipe."""

    def __init__(self, proc: subprocess.Popen[str], root: str) -> None:
        self.proc, self.root = proc, root

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ns(self) -> int:
        return os.stat(f"/proc/{self.pid}/ns/mnt").st_ino

    def do(self, op: str, i: int = 0) -> float:
        """Unmount ("u") or mount ("m") overlay ``i``; the monotonic time just before it."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{op} {i}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())


@contextmanager
def lab(overlays: int) -> Iterator[Lab]:
    root = tempfile.mkdtemp(prefix="ovlinspect-bench-events-")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", LAB, root,
         str(overlays)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the lab namespace could not be built")
        yield Lab(proc, root)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def idle_namespaces(count: int) -> Iterator[list[int]]:
    """``count`` more private mount namespaces, each with one sleeping process."""
    procs = [subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "1000"],
                              start_new_session=True) for _ in range(count)]
    try:
        deadline = time.monotonic() + 10
        mine = os.stat("/proc/self/ns/mnt").st_ino
        for proc in procs:  # wait until each has unshared
            while os.stat(f"/proc/{proc.pid}/ns/mnt").st_ino == mine:
                if time.monotonic() > deadline:
                    raise RuntimeError("idle namespaces not ready")
                time.sleep(0.005)
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


def stats(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (f"median {statistics.median(ms):7.2f} ms  p90 {p90:7.2f} ms  max {ms[-1]:7.2f} ms"
            f"  (n={len(ms)})")


def watcher_latency(the_lab: Lab, backend: Backend, rounds: int,
                    others: list[int]) -> tuple[list[float], str]:
    """umount -> callback, ``rounds`` times (each followed by a mount again), while the
    namespaces of ``others`` are watched too."""
    got: list[tuple[float, list[NsChange]]] = []
    cond = threading.Condition()

    def on_changes(changes: list[NsChange]) -> None:
        with cond:
            got.append((time.monotonic(), changes))
            cond.notify_all()

    def wait_for(count: int) -> float:
        with cond:
            if not cond.wait_for(lambda: len(got) >= count, timeout=5):
                raise RuntimeError(f"no change reported within 5 s ({backend})")
            return got[count - 1][0]

    watcher = MountWatcher(backend=backend, discover=None)
    watcher.set_pids([the_lab.pid, *others])
    thread = threading.Thread(target=watcher.follow, args=(on_changes,), kwargs={"timeout": 1})
    thread.start()
    out: list[float] = []
    try:
        deadline = time.monotonic() + 5
        while len(watcher.backends) <= len(others) and time.monotonic() < deadline:
            time.sleep(0.005)
        used = ",".join(sorted(set(watcher.backends.values())))
        used += f", {len(watcher.backends)} namespaces"
        for _ in range(rounds):
            with cond:
                del got[:]
            start = the_lab.do("u")
            out.append(wait_for(1) - start)
            time.sleep(0.01)
            with cond:
                del got[:]
            the_lab.do("m")
            wait_for(1)
            time.sleep(0.01)
    finally:
        watcher.stop()
        thread.join(5)
        watcher.close()
    return out, used


def refresh_costs(the_lab: Lab, rounds: int) -> tuple[list[float], list[float]]:
    from ovlinspect.engine.rescan import refresh
    from ovlinspect.engine.scan import scan

    full = scan()
    one, whole = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        refresh(full, {the_lab.ns: the_lab.pid})
        one.append(time.perf_counter() - t)
        t = time.perf_counter()
        scan()
        whole.append(time.perf_counter() - t)
    return one, whole


async def tui_latency(the_lab: Lab, backend: Backend, rounds: int,
                      whole_host: bool = False) -> tuple[list[float], list[float]]:
    """umount -> the app holding a scan without that overlay (the changed namespace rescanned
    and merged); and -> after one more paint."""
    from ovlinspect.engine.scan import scan
    from ovlinspect.tui.app import OvlInspectApp

    pids = None if whole_host else [the_lab.pid]
    app = OvlInspectApp(lambda: scan(pids=pids), watch_mounts=True,
                        focus_pids=None if whole_host else [the_lab.pid])
    app.animation_level = "none"
    if backend != "auto":  # the app makes its own watcher; give it the forced one
        app._watcher = MountWatcher(backend=backend, follow_all=whole_host)
    target = f"{the_lab.root}/o0/m"

    def listed() -> bool:
        """Whether the scan the app shows has the overlay (the app may keep a gone mount on
        screen, dimmed: what changes is the scan behind it)."""
        shown = app.scan
        return shown is not None and any(o.mount_point == target for ns in shown.namespaces
                                         for o in ns.overlays)

    async def until(test: bool) -> None:
        deadline = time.monotonic() + 10
        while listed() != test:
            if time.monotonic() > deadline:
                raise RuntimeError("the TUI did not follow the mount table within 10 s")
            await asyncio.sleep(0.001)

    out: list[float] = []
    held: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await until(True)
        await asyncio.sleep(0.3)  # the watcher thread has made its marks
        for _ in range(rounds):
            start = await asyncio.to_thread(the_lab.do, "u")
            await until(False)
            held.append(time.monotonic() - start)
            await pilot.pause()
            out.append(time.monotonic() - start)
            await asyncio.to_thread(the_lab.do, "m")
            await until(True)
            await asyncio.sleep(0.05)
        app.exit()
    return held, out


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("run as root: the lab mounts overlays in a private mount namespace")
    args = [int(a) for a in sys.argv[1:5]]
    rounds, overlays, tui_rounds, extra = args + [50, 5, 10, 100][len(args):]
    with lab(overlays) as the_lab, idle_namespaces(extra) as others:
        print(f"lab: pid {the_lab.pid}, {overlays} overlays; kernel {os.uname().release}")
        for backend in ("fanotify", "pollpri"):
            for watched in ([], others):
                samples, used = watcher_latency(the_lab, backend, rounds,  # type: ignore[arg-type]
                                                watched)
                print(f"umount -> watcher callback, {backend:8} ({used}): {stats(samples)}")
        t = time.perf_counter()
        found = namespaces()
        print(f"/proc discovery of namespaces: {(time.perf_counter() - t) * 1000:.1f} ms "
              f"({len(found)} namespaces, {sum(map(len, found.values()))} processes)")
        one, whole = refresh_costs(the_lab, max(3, tui_rounds // 2))
        print(f"refresh of the changed namespace:            {stats(one)}")
        print(f"full scan() of the host (for comparison):    {stats(whole)}")
        for whole, what in ((False, "only the lab's namespace (--pid)"),
                            (True, "the whole host")):
            print(f"umount -> the TUI, which shows {what}; the changed namespace rescanned:")
            for backend in ("fanotify", "pollpri"):
                held, shown = asyncio.run(tui_latency(the_lab, backend, tui_rounds,  # type: ignore[arg-type]
                                                      whole_host=whole))
                print(f"  {backend:8} scan held: {stats(held)}")
                print(f"  {backend:8} painted:   {stats(shown)}")


if __name__ == "__main__":
    main()
