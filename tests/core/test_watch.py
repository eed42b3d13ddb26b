"""MountWatcher on real private mount namespaces: which namespace changed, what came and went,
which appeared and which are gone; fanotify and the POLLPRI fallback (forced, or refused by the
kernel to an unprivileged process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from ovlinspect.kernel import mntnotify as mn
from ovlinspect.tui.watch import Backend, MountWatcher, NsChange, namespaces

from scenario import REPO, Scenario, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mounts and fanotify")
WAIT = "mkdir -p $T/a\necho ready\nexec sleep 1000"


class Seen:
    """Changes reported by a watcher running in a thread."""

    def __init__(self, watcher: MountWatcher) -> None:
        self.watcher = watcher
        self.batches: list[list[NsChange]] = []
        self.lock = threading.Lock()

    def add(self, batch: list[NsChange]) -> None:
        with self.lock:
            self.batches.append(batch)

    @property
    def changes(self) -> list[NsChange]:
        with self.lock:
            return [c for batch in self.batches for c in batch]

    def wait(self, test: Callable[[list[NsChange]], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not test(self.changes):
            assert time.monotonic() < deadline, f"not seen in {timeout}s: {self.changes}"
            time.sleep(0.02)

    def idle(self) -> None:
        """Wait until the loop has applied set_pids (marks made, fds open)."""
        deadline = time.monotonic() + 5
        while not self.watcher.backends and time.monotonic() < deadline:
            time.sleep(0.01)

    def clear(self) -> None:
        with self.lock:
            self.batches.clear()


@contextmanager
def watching(pids: list[int], backend: Backend = "auto", **kw: object) -> Iterator[Seen]:
    watcher = MountWatcher(backend=backend, **kw)  # type: ignore[arg-type]
    seen = Seen(watcher)
    watcher.set_pids(pids)
    thread = threading.Thread(target=watcher.follow, args=(seen.add,), kwargs={"timeout": 0.1})
    thread.start()
    try:
        seen.idle()
        yield seen
    finally:
        watcher.stop()
        thread.join(5)
        watcher.close()
        assert not thread.is_alive()


def ns_of(sc: Scenario) -> int:
    return os.stat(f"/proc/{sc.pid}/ns/mnt").st_ino


def nsenter(pid: int, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-m", *argv], check=True, timeout=10)


def nsid_of(sc: Scenario) -> int:
    fd = os.open(f"/proc/{sc.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return mn.mntns_id(fd)
    finally:
        os.close(fd)


def fanotify_marks() -> list[str]:
    """The mount-namespace marks of this process's fanotify groups (fdinfo), sorted."""
    marks = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:[fanotify]":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                marks += [ln.split()[1] for ln in info if ln.startswith("fanotify mnt_ns:")]
        except OSError:
            continue
    return sorted(marks)


def test_fanotify_names_the_namespace_and_the_mounts_that_came_and_went() -> None:
    with running(WAIT, bare=True) as one, running(WAIT, bare=True) as two, \
            watching([one.pid, two.pid], discover=None) as seen:
        ns1, ns2 = ns_of(one), ns_of(two)
        assert seen.watcher.backends == {ns1: "fanotify", ns2: "fanotify"}
        assert fanotify_marks() == sorted([f"mnt_ns:{ns1}", f"mnt_ns:{ns2}"])
        before = set(mn.listmount(nsid_of(two)))
        nsenter(two.pid, "mount", "-t", "tmpfs", "w", f"{two.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 1)
        (mnt,) = set(mn.listmount(nsid_of(two))) - before
        assert seen.changes == [NsChange(ns2, two.pid, "mounts", attached=(mnt,), exact=True)]
        seen.clear()
        nsenter(two.pid, "umount", f"{two.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 1)
        time.sleep(0.2)
        assert seen.changes == [NsChange(ns2, two.pid, "mounts", detached=(mnt,), exact=True)]
    assert fanotify_marks() == []  # the group was closed


def test_one_mark_per_namespace_whatever_the_number_of_pids() -> None:
    script = "mkdir -p $T/a\nsleep 1000 &\necho \"ready {\\\"child\\\": \\\"$!\\\"}\"\nwait"
    with running(script, bare=True) as sc:
        child = int(sc.info["child"])
        with watching([sc.pid, child], discover=None) as seen:
            assert seen.watcher.backends == {ns_of(sc): "fanotify"}
            assert fanotify_marks() == [f"mnt_ns:{ns_of(sc)}"]
            nsenter(sc.pid, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
            seen.wait(lambda cs: len(cs) >= 1)
            time.sleep(0.2)
            assert [(c.ns, c.pid, c.kind) for c in seen.changes] == [
                (ns_of(sc), min(sc.pid, child), "mounts")]


def test_forced_pollpri_fallback_reports_the_namespace_without_mount_ids() -> None:
    with running(WAIT, bare=True) as sc, \
            watching([sc.pid], backend="pollpri", discover=None) as seen:
        ns = ns_of(sc)
        assert seen.watcher.backends == {ns: "pollpri"}
        assert fanotify_marks() == []
        nsenter(sc.pid, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 1)
        assert seen.changes == [NsChange(ns, sc.pid, "mounts", exact=False)]


@pytest.mark.parametrize("backend", ["fanotify", "pollpri"])
def test_a_namespace_whose_processes_exit_is_reported_gone(backend: Backend) -> None:
    # fanotify: the kernel's detach events tell it at once (no /proc scan: discover=None)
    discover = None if backend == "fanotify" else 0.1
    with running(WAIT, bare=True) as sc, \
            watching([sc.pid], backend=backend, discover=discover) as seen:
        ns = ns_of(sc)
        os.killpg(sc.pid, 9)
        seen.wait(lambda cs: any(c.kind == "gone" for c in cs))
        assert [c for c in seen.changes if c.kind == "gone"] == [NsChange(ns, sc.pid, "gone")]
        assert seen.watcher.backends == {}


def test_follow_all_reports_a_new_namespace_and_watches_it() -> None:
    everyone = [pids[0] for pids in namespaces().values()]
    with watching(everyone, follow_all=True, discover=0.1) as seen:
        with running(WAIT, bare=True) as sc:
            ns = ns_of(sc)
            seen.wait(lambda cs: any(c.ns == ns for c in cs))
            appeared = [c for c in seen.changes if c.ns == ns and c.kind == "appeared"]
            assert [(c.kind, c.pid) for c in appeared] == [("appeared", sc.pid)]
            assert seen.watcher.backends[ns] == "fanotify"
            nsenter(sc.pid, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
            seen.wait(lambda cs: any(c.ns == ns and c.kind == "mounts" for c in cs))
        seen.wait(lambda cs: any(c.ns == ns and c.kind == "gone" for c in cs))
        kinds = [c.kind for c in seen.changes if c.ns == ns]
        # the scenario may still be detaching inherited overlays when it is first seen
        assert (kinds[0], set(kinds[1:-1]), kinds[-1]) == ("appeared", {"mounts"}, "gone")


def test_unprivileged_auto_falls_back_to_pollpri_on_the_kernels_refusal() -> None:
    code = """if True:
        import json, os, threading, time
        from ovlinspect.tui.watch import MountWatcher
        w = MountWatcher(discover=None)
        w.set_pids([os.getpid()])
        t = threading.Thread(target=w.follow, args=(print,), kwargs={"timeout": 0.05})
        t.start()
        time.sleep(0.3)
        used = list(w.backends.values())
        w.stop(); t.join(); w.close()
        print(json.dumps([used, w.fallback_reason, w.backends]))
    """
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [
        ["pollpri"], "fanotify_mark(FAN_MARK_MNTNS): Operation not permitted", {}]


def test_legacy_run_reports_pids() -> None:
    with running(WAIT, bare=True) as sc:
        watcher = MountWatcher(discover=None)
        got: list[list[int]] = []
        watcher.set_pids([sc.pid])
        thread = threading.Thread(target=watcher.run, args=(got.append,),
                                  kwargs={"timeout": 0.1})
        thread.start()
        try:
            deadline = time.monotonic() + 5
            while not watcher.backends and time.monotonic() < deadline:
                time.sleep(0.01)
            nsenter(sc.pid, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
            while not got and time.monotonic() < deadline:
                time.sleep(0.02)
            assert got == [[sc.pid]]
        finally:
            watcher.stop()
            thread.join(5)
            watcher.close()


@pytest.mark.parametrize("backend", ["fanotify", "pollpri"])
def test_a_namespace_outliving_its_first_pid_is_named_by_a_live_one(backend: Backend) -> None:
    script = "mkdir -p $T/a\nsleep 1000 &\necho \"ready {\\\"child\\\": \\\"$!\\\"}\"\nwait"
    with running(script, bare=True) as sc:
        child, ns = int(sc.info["child"]), ns_of(sc)
        with watching([sc.pid], backend=backend, discover=0.05) as seen:
            os.kill(sc.pid, 9)  # the shell; its child keeps the namespace
            time.sleep(0.3)  # a discovery pass or more
            nsenter(child, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
            seen.wait(lambda cs: len(cs) >= 1)
            assert [(c.ns, c.pid, c.kind) for c in seen.changes] == [(ns, child, "mounts")]


@pytest.mark.parametrize("backend", ["fanotify", "pollpri"])
def test_waiting_for_the_first_pids_does_not_spin(backend: Backend) -> None:
    """Until ``set_pids`` (the first scan is still running), the loop sleeps: a busy loop here
    took the GIL from the scan and made the TUI's first scan three times slower."""
    watcher = MountWatcher(backend=backend, follow_all=True)
    used: list[float] = []

    def follow() -> None:
        start = time.thread_time()
        watcher.follow(lambda changes: None, timeout=0.2)
        used.append(time.thread_time() - start)

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(1.0)
    watcher.stop()
    thread.join(5)
    watcher.close()
    assert used and used[0] < 0.1, used
