"""MountWatcher on real private mount namespaces: which namespace changed, what came and went,
which appeared and which are gone; fanotify and the POLLPRI fallback (forced, or refused by the
kernel to an unprivileged process); a namespace that takes the inode of one that died; the
wake-up pipe after close; a loop that survives a bad event buffer or a failed listmount."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from ovlinspect.kernel import mntnotify as mn
from ovlinspect.tui import watch as watch_mod
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
        self.gate = threading.Event()  # cleared: the loop stops in its callback until set
        self.gate.set()
        self.held = threading.Event()  # the loop is stopped in its callback

    def add(self, batch: list[NsChange]) -> None:
        with self.lock:
            self.batches.append(batch)
        if not self.gate.is_set():
            self.held.set()
            self.gate.wait(20)

    @property
    def changes(self) -> list[NsChange]:
        with self.lock:
            return [c for batch in self.batches for c in batch]

    def wait(self, test: Callable[[list[NsChange]], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not test(self.changes):
            assert time.monotonic() < deadline, f"not seen in {timeout}s: {self.changes}"
            time.sleep(0.02)

    def idle(self, expect: set[int]) -> None:
        """Wait until the loop has applied set_pids: every namespace of ``expect`` still alive
        has its mark or its fd."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            alive = namespaces()
            if all(ns in self.watcher.backends or ns not in alive for ns in expect):
                return
            time.sleep(0.01)

    def clear(self) -> None:
        with self.lock:
            self.batches.clear()


@contextmanager
def watching(pids: list[int], backend: Backend = "auto", **kw: object) -> Iterator[Seen]:
    watcher = MountWatcher(backend=backend, **kw)  # type: ignore[arg-type]
    seen = Seen(watcher)
    expect = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            expect.add(os.stat(f"/proc/{pid}/ns/mnt").st_ino)
    watcher.set_pids(pids)
    thread = threading.Thread(target=watcher.follow, args=(seen.add,), kwargs={"timeout": 0.1})
    thread.start()
    try:
        seen.idle(expect)
        yield seen
    finally:
        seen.gate.set()
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
        try:
            with watching([sc.pid], backend=backend, discover=0.05) as seen:
                os.kill(sc.pid, 9)  # the shell; its child keeps the namespace
                time.sleep(0.3)  # a discovery pass or more
                nsenter(child, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
                seen.wait(lambda cs: len(cs) >= 1)
                assert [(c.ns, c.pid, c.kind) for c in seen.changes] == [(ns, child, "mounts")]
        finally:
            os.kill(child, 9)  # running() kills the process group only while the shell lives


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


# ---- a namespace that takes the inode of one that died ----------------------------------------
# The kernel gives a freed namespace inode to the next namespace made (the lowest free number),
# and a fanotify mark does not keep its namespace alive.

@contextmanager
def taking_inode(ns: int, tries: int = 6) -> Iterator[Scenario | None]:
    """A new scenario whose namespace got the inode ``ns`` (freed just before), or None when
    another namespace of the host took it first.  Scenarios that got a lower free inode are kept
    until the end, so that the next one made gets the next free number."""
    with ExitStack() as stack:
        found = None
        for _ in range(tries):
            sc = stack.enter_context(running(WAIT, bare=True))
            if ns_of(sc) >= ns:
                found = sc if ns_of(sc) == ns else None
                break
        yield found


def of(ns: int, changes: list[NsChange]) -> list[tuple[str, int]]:
    return [(c.kind, c.pid) for c in changes if c.ns == ns]


NOT_REUSED = "another namespace of this host took the freed inode first, three times"


@pytest.mark.parametrize("backend", ["fanotify", "pollpri"])
def test_a_namespace_taking_the_inode_of_a_gone_one_is_reported_appeared_and_followed(
        backend: Backend) -> None:
    """A dies and is reported gone; B gets A's inode: B is reported appeared and its mounts are
    followed.  (POLLPRI: A's open mountinfo pins it, so the inode is free only once A is
    reported gone and the file closed.)"""
    everyone = [pids[0] for pids in namespaces().values()]
    with watching(everyone, backend=backend, follow_all=True, discover=0.05) as seen:
        for _ in range(3):
            with running(WAIT, bare=True) as a:
                ns = ns_of(a)
                seen.wait(lambda cs: ("appeared", a.pid) in of(ns, cs))  # noqa: B023
            seen.wait(lambda cs: ("gone", a.pid) in of(ns, cs))  # noqa: B023
            seen.clear()
            with taking_inode(ns) as b:
                if b is None:
                    continue
                seen.wait(lambda cs: of(ns, cs)[:1] == [("appeared", b.pid)])  # noqa: B023
                assert seen.watcher.backends[ns] == backend
                nsenter(b.pid, "mount", "-t", "tmpfs", "w", f"{b.tmp}/a")
                seen.wait(lambda cs: any(c.ns == ns and c.kind == "mounts" and c.pid == b.pid  # noqa: B023
                                         and (c.attached or backend == "pollpri") for c in cs))
                assert ("gone", b.pid) not in of(ns, seen.changes)
                return
        pytest.skip(NOT_REUSED)


def test_discovery_finding_another_namespace_under_a_watched_inode_says_gone_then_appeared(
        ) -> None:
    """The /proc scan sees B under A's inode before the fanotify events of A's death are read
    (the loop was busy): A is reported gone, B appeared, in that order, and B is marked."""
    everyone = [pids[0] for pids in namespaces().values()]
    for _ in range(3):
        with ExitStack() as stack:
            a_ctx = ExitStack()
            a = a_ctx.enter_context(running(WAIT, bare=True))
            stack.callback(a_ctx.close)
            ns, a_pid = ns_of(a), a.pid
            seen = stack.enter_context(watching([*everyone, a.pid], follow_all=True,
                                                discover=0.05))
            assert seen.watcher.backends[ns] == "fanotify"
            seen.gate.clear()  # the loop stops in its next callback
            nsenter(a.pid, "mount", "-t", "tmpfs", "w", f"{a.tmp}/a")
            assert seen.held.wait(5)
            a_ctx.close()  # A dies while the loop is held
            b = stack.enter_context(taking_inode(ns))
            if b is None:
                continue
            seen.clear()
            seen.gate.set()
            seen.wait(lambda cs: len(of(ns, cs)) >= 2)  # noqa: B023
            assert of(ns, seen.changes)[:2] == [("gone", a_pid), ("appeared", b.pid)]
            assert seen.watcher.backends[ns] == "fanotify"
            assert fanotify_marks().count(f"mnt_ns:{ns}") == 1
            before = set(mn.listmount(nsid_of(b)))
            nsenter(b.pid, "mount", "-t", "tmpfs", "w", f"{b.tmp}/a")
            seen.wait(lambda cs: any(c.ns == ns and c.attached for c in cs))  # noqa: B023
            (mnt,) = set(mn.listmount(nsid_of(b))) - before
            assert [c for c in seen.changes if c.ns == ns][2:] == [
                NsChange(ns, b.pid, "mounts", attached=(mnt,), exact=True)]
            return
    pytest.skip(NOT_REUSED)


def test_set_pids_naming_another_namespace_under_a_watched_inode_says_gone_then_appeared(
        ) -> None:
    """The caller names B (which took A's inode) before the loop has read A's death: A is
    reported gone and B appeared, and B, not A, is the namespace whose mounts are followed."""
    for _ in range(3):
        with ExitStack() as stack:
            a_ctx = ExitStack()
            a = a_ctx.enter_context(running(WAIT, bare=True))
            stack.callback(a_ctx.close)
            ns, a_pid = ns_of(a), a.pid
            seen = stack.enter_context(watching([a.pid], discover=None))
            seen.gate.clear()
            nsenter(a.pid, "mount", "-t", "tmpfs", "w", f"{a.tmp}/a")
            assert seen.held.wait(5)
            a_ctx.close()
            b = stack.enter_context(taking_inode(ns))
            if b is None:
                continue
            seen.watcher.set_pids([b.pid])
            seen.clear()
            seen.gate.set()
            seen.wait(lambda cs: len(of(ns, cs)) >= 2)  # noqa: B023
            assert of(ns, seen.changes)[:2] == [("gone", a_pid), ("appeared", b.pid)]
            assert seen.watcher.backends == {ns: "fanotify"}
            nsenter(b.pid, "mount", "-t", "tmpfs", "w", f"{b.tmp}/a")
            seen.wait(lambda cs: any(c.ns == ns and c.attached for c in cs))  # noqa: B023
            assert [c.kind for c in seen.changes] == ["gone", "appeared", "mounts"]
            return
    pytest.skip(NOT_REUSED)


# ---- the wake-up pipe after close --------------------------------------------------------------

def pipe_fds() -> set[int]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                out.add(int(fd))
    return out


def test_set_pids_after_close_writes_nothing_into_a_file_that_took_the_pipes_fd(
        tmp_path: Path) -> None:
    """As the TUI does: the loop ends, the watcher is closed, a later scan calls set_pids.  The
    pipe's fd numbers now belong to other files, which must not receive a byte."""
    with running(WAIT, bare=True) as sc:
        before = pipe_fds()
        with watching([sc.pid], discover=None) as seen:
            watcher = seen.watcher
            pipe = sorted(pipe_fds() - before)
            assert len(pipe) == 2
        assert pipe_fds() == before  # closed
        victims = [tmp_path / f"victim{fd}" for fd in pipe]
        for fd, path in zip(pipe, victims, strict=True):
            new = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if new != fd:  # (the lowest free number may be this very one)
                os.dup2(new, fd)
                os.close(new)
        try:
            watcher.set_pids([sc.pid])
            watcher.stop()
            watcher.close()  # a second close must not close the files either
            assert [path.read_bytes() for path in victims] == [b"", b""]
            assert [os.readlink(f"/proc/self/fd/{fd}") for fd in pipe] == [str(path)
                                                                           for path in victims]
            with pytest.raises(ValueError, match="closed"):
                watcher.follow(lambda changes: None)
        finally:
            for fd in pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)


def test_close_while_following_stops_the_loop_and_then_releases_the_pipe() -> None:
    with running(WAIT, bare=True) as sc:
        before = pipe_fds()
        watcher = MountWatcher(discover=None)
        watcher.set_pids([sc.pid])
        thread = threading.Thread(target=watcher.follow, args=(lambda changes: None,))
        thread.start()
        deadline = time.monotonic() + 5
        while not watcher.backends and time.monotonic() < deadline:
            time.sleep(0.01)
        watcher.close()
        thread.join(5)
        assert not thread.is_alive()
        assert pipe_fds() == before


# ---- the loop survives what it cannot read ------------------------------------------------------

@pytest.mark.parametrize("backend", ["auto", "fanotify"])
def test_an_event_buffer_that_cannot_be_parsed_does_not_end_the_loop(
        backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto``: the namespace goes to POLLPRI; ``fanotify``: a new group marks it again.  Either
    way it is reported changed (inexactly: the events are lost) and followed on."""
    real, broken = mn.parse_events, threading.Event()

    def parse(buf: bytes) -> list[mn.MountEvent]:
        if not broken.is_set():
            broken.set()
            raise mn.EventFormatError("fanotify metadata version 9, expected 3")
        return real(buf)

    with running(WAIT, bare=True) as sc, \
            watching([sc.pid], backend=backend, discover=None) as seen:
        ns, watcher = ns_of(sc), seen.watcher
        assert watcher.backends == {ns: "fanotify"}
        monkeypatch.setattr(mn, "parse_events", parse)
        nsenter(sc.pid, "mount", "-t", "tmpfs", "w", f"{sc.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 1)
        assert seen.changes == [NsChange(ns, sc.pid, "mounts")]
        assert watcher.last_error == "fanotify: fanotify metadata version 9, expected 3"
        assert watcher.fallback_reason == watcher.last_error
        after = "pollpri" if backend == "auto" else "fanotify"
        assert watcher.backends == {ns: after}
        assert fanotify_marks() == ([] if after == "pollpri" else [f"mnt_ns:{ns}"])
        seen.clear()
        nsenter(sc.pid, "umount", f"{sc.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 1)
        time.sleep(0.1)
        assert [(c.ns, c.kind, bool(c.detached)) for c in seen.changes] == [
            (ns, "mounts", after == "fanotify")]


def test_a_failed_listmount_moves_only_that_namespace_to_pollpri(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with running(WAIT, bare=True) as one, running(WAIT, bare=True) as two, \
            watching([one.pid, two.pid], discover=None) as seen:
        ns1, ns2, bad = ns_of(one), ns_of(two), nsid_of(one)
        real = watch_mod.listmount

        def listmount(ns_id: int = 0, *args: int) -> list[int]:
            if ns_id == bad:
                raise OSError(errno.EIO, f"listmount(ns {ns_id}): Input/output error")
            return real(ns_id, *args)

        monkeypatch.setattr(watch_mod, "listmount", listmount)
        nsenter(one.pid, "mount", "-t", "tmpfs", "w", f"{one.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 1)
        assert seen.changes == [NsChange(ns1, one.pid, "mounts")]
        assert seen.watcher.backends == {ns1: "pollpri", ns2: "fanotify"}
        assert seen.watcher.last_error == (
            f"namespace {ns1}: listmount(ns {bad}): Input/output error")
        assert fanotify_marks() == [f"mnt_ns:{ns2}"]
        seen.clear()
        nsenter(one.pid, "umount", f"{one.tmp}/a")
        nsenter(two.pid, "mount", "-t", "tmpfs", "w", f"{two.tmp}/a")
        seen.wait(lambda cs: len(cs) >= 2)
        assert sorted((c.ns, c.kind, c.exact) for c in seen.changes) == sorted(
            [(ns1, "mounts", False), (ns2, "mounts", True)])
