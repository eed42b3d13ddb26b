"""Rescanning only the namespaces that changed (ovlinspect.engine.rescan), on real overlays in
private mount namespaces, driven by what MountWatcher reports."""

from __future__ import annotations

import os
import subprocess

import pytest

from ovlinspect.engine.rescan import refresh
from ovlinspect.engine.scan import scan

from scenario import Scenario, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

SCRIPT = """mount -t tmpfs rescan $T
mkdir -p $T/l $T/u $T/w $T/m $T/l2 $T/u2 $T/w2 $T/m2
echo a > $T/l/a
mount -t overlay first -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w $T/m
echo ready
exec sleep 1000"""


def ns_of(sc: Scenario) -> int:
    return os.stat(f"/proc/{sc.pid}/ns/mnt").st_ino


def points(ns: object) -> list[str]:
    return sorted(o.mount_point for o in ns.overlays)  # type: ignore[attr-defined]


def test_refresh_rereads_only_the_changed_namespace() -> None:
    with running(SCRIPT, bare=True) as one, running(SCRIPT, bare=True) as two:
        old = scan(pids=[one.pid, two.pid])
        by_ns = {ns.mnt_ns: ns for ns in old.namespaces}
        ns1, ns2 = ns_of(one), ns_of(two)
        assert sorted(by_ns) == sorted([ns1, ns2])
        assert points(by_ns[ns2]) == [f"{two.tmp}/m"]
        t = two.tmp
        subprocess.run(["nsenter", "-t", str(two.pid), "-m", "mount", "-t", "overlay", "second",
                        "-o", f"lowerdir={t}/l2,upperdir={t}/u2,workdir={t}/w2", f"{t}/m2"],
                       check=True, timeout=10)
        done = refresh(old, {ns2: two.pid})
        assert (done.updated, done.added, done.gone) == ([ns2], [], [])
        new = {ns.mnt_ns: ns for ns in done.scan.namespaces}
        assert points(new[ns2]) == [f"{t}/m", f"{t}/m2"]
        assert new[ns1] is by_ns[ns1]  # not scanned again
        assert [ns.mnt_ns for ns in done.scan.namespaces] == [ns.mnt_ns for ns in old.namespaces]
        assert points(by_ns[ns2]) == [f"{t}/m"]  # the old scan is left alone

        os.killpg(two.pid, 9)
        os.waitpid(two.pid, 0)
        gone = refresh(done.scan, {ns2: two.pid})
        assert (gone.updated, gone.added, [g.mnt_ns for g in gone.gone]) == ([], [], [ns2])
        assert [ns.mnt_ns for ns in gone.scan.namespaces] == [ns1]


def test_refresh_adds_a_namespace_that_appeared_and_drops_one_reported_gone() -> None:
    with running(SCRIPT, bare=True) as one:
        old = scan(pids=[one.pid])
        with running(SCRIPT, bare=True) as two:
            ns1, ns2 = ns_of(one), ns_of(two)
            done = refresh(old, {ns2: two.pid})
            assert (done.updated, done.added, done.gone) == ([ns2], [ns2], [])
            assert sorted(ns.mnt_ns for ns in done.scan.namespaces) == sorted([ns1, ns2])
            dropped = refresh(done.scan, {}, gone=[ns1])
            assert [ns.mnt_ns for ns in dropped.scan.namespaces] == [ns2]
            assert [g.mnt_ns for g in dropped.gone] == [ns1]


def test_merge_goes_into_the_scan_held_now_not_the_one_rescanned_from() -> None:
    from ovlinspect.engine.rescan import Rescanned, merge
    from ovlinspect.model import Namespace, Scan

    a_old, a_new = Namespace(mnt_ns=1, pids=[10]), Namespace(mnt_ns=1, pids=[10, 11])
    b_new, c_new = Namespace(mnt_ns=2, pids=[20]), Namespace(mnt_ns=3, pids=[5])
    gone = Namespace(mnt_ns=4, pids=[40])
    held = Scan(namespaces=[a_new, Namespace(mnt_ns=2, pids=[20, 21]), gone], errors=["e1"])
    part = Rescanned(namespaces={2: b_new, 3: c_new}, gone={4}, errors=["e2", "e1"])
    done = merge(held, part)
    assert [ns for ns in done.scan.namespaces] == [c_new, a_new, b_new]  # by lowest pid
    assert a_old not in done.scan.namespaces
    assert (done.updated, done.added, done.gone) == ([2, 3], [3], [gone])
    assert done.scan.errors == ["e1", "e2"]
    assert [ns.mnt_ns for ns in held.namespaces] == [1, 2, 4]  # untouched
