"""A scan must not change any atime on the layers, symlinks included.

Two ways a plain ``ovlinspect --pid P`` updated a symlink's atime (checked on 6.18; a symlink's
atime is updated by readlink(2) and by every path walk that follows it, O_NOATIME or not):

* the engine's deeper probe asked whether a higher layer holds ``s/t`` with
  ``fstatat(layer, "s/t", AT_SYMLINK_NOFOLLOW)`` (``kernel.objects.exists``): the flag spares only
  the last component, so where the higher layer replaced the lower directory ``s`` by a symlink,
  the walk followed it (out of the layer when it is absolute) and touched its atime;
* resolving a declared layer path that goes through a symlink (Docker's ``l/XYZ -> ../id/diff``)
  read it with readlinkat, which touches its atime whenever relatime allows (the first read
  after a change, then once a day).

Every symlink's atime is aged two days before the scan, so that relatime would update it on any
read (the kernel's rule is deterministic then, whatever the clock tick).  The fixes:
``kernel.objects.exists`` walks a longer path with openat2(RESOLVE_NO_SYMLINKS), and
``host.quietlink`` reads a symlink through a read-only, noatime clone of its mount when a direct
read would update its atime.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from engine_kit import quiet_snapshot

from scenario import run_cli, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

TWO_DAYS_NS = 2 * 86400 * 10**9

READY = 'cd /\necho ready\nexec sleep 600\n'

# A lower directory ``s`` replaced by a symlink in a higher layer; the lower ``s`` holds ``t``
# (and ``etc``, which exists on the host: an absolute ``/`` target led the walk there).  The
# layer below holds nothing else, so the engine probes deeper, below ``s``.
IN_UPPER = r"""
mkdir -p $T/l1/s/etc $T/u $T/w $T/m
echo t > $T/l1/s/t; echo x > $T/l1/s/etc/x
mount -t overlay overlay -o lowerdir=$T/l1,upperdir=$T/u,workdir=$T/w $T/m
cd $T/m; rm -rf s; ln -s @TARGET@ s; mkdir d; echo b > d/b
""" + READY

# The same, the symlink being in the top lower layer (a host directory, in Docker) over a
# directory in the layer below it.
IN_LOWER = r"""
mkdir -p $T/l1/d $T/l2/s/etc $T/u $T/w $T/m
ln -s @TARGET@ $T/l1/s; echo a > $T/l1/d/a
echo t > $T/l2/s/t; echo x > $T/l2/s/etc/x
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
""" + READY

# Docker's overlay2 layout: short names in l/ link to each layer, and the mount options use them,
# relative to overlay2/ (the mounting process's cwd).
DOCKER = r"""
O=$T/overlay2; mkdir -p $O/l $O/id1/diff/etc $O/id2/diff/usr $O/c/diff $O/c/work $O/c/merged
echo a > $O/id1/diff/etc/a; echo b > $O/id2/diff/usr/b
ln -s ../id1/diff $O/l/AAAA; ln -s ../id2/diff $O/l/BBBB; ln -s ../c/diff $O/l/CCCC
cd $O
mount -t overlay overlay -o lowerdir=l/AAAA:l/BBBB,upperdir=$O/c/diff,workdir=$O/c/work $O/c/merged
""" + READY

def _age_symlinks(root: str) -> None:
    """Set every symlink's atime two days back (mtime kept): any read would update it now."""
    old = time.time_ns() - TWO_DAYS_NS
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                os.utime(path, ns=(old, st.st_mtime_ns), follow_symlinks=False)
    time.sleep(0.05)  # past the coarse clock tick


def _changed(before: dict, after: dict) -> list[str]:
    """Paths whose mode, size, times or xattrs differ, naming the atime changes."""
    out = []
    for rel in sorted(set(before) | set(after)):
        a, b = before.get(rel), after.get(rel)
        if a != b:
            what = "atime" if a and b and a[:2] + a[3:] == b[:2] + b[3:] else "entry"
            out.append(f"{rel}: {what} changed")
    return out


def _scan_leaves_alone(script: str, dirs: tuple[str, ...]) -> dict:
    with running(script, bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}"
        for d in dirs:
            _age_symlinks(f"{seen}/{d}")
        before = {d: quiet_snapshot(f"{seen}/{d}") for d in dirs}
        done = run_cli("--pid", str(sc.pid), "--json", check_rc=None)
        assert "Traceback" not in done.stderr, done.stderr
        after = {d: quiet_snapshot(f"{seen}/{d}") for d in dirs}
        problems = [f"{d}/{p}" for d in dirs for p in _changed(before[d], after[d])]
        assert not problems, "the scan changed: " + ", ".join(problems)
        return json.loads(done.stdout)


@pytest.mark.parametrize("target", ["nowhere", "/", "d"])
def test_symlink_over_a_lower_dir_in_the_upper_keeps_its_atime(target: str) -> None:
    _scan_leaves_alone(IN_UPPER.replace("@TARGET@", target), ("l1", "u", "w"))


@pytest.mark.parametrize("target", ["nowhere", "/"])
def test_symlink_over_a_lower_dir_in_a_lower_keeps_its_atime(target: str) -> None:
    _scan_leaves_alone(IN_LOWER.replace("@TARGET@", target), ("l1", "l2", "u", "w"))


def test_docker_short_name_symlinks_keep_their_atime() -> None:
    report = _scan_leaves_alone(DOCKER, ("overlay2",))
    lowers = [layer for ns in report["namespaces"] for ov in ns["overlays"]
              for layer in ov["layers"] if layer["role"] == "lower"]
    # the symlinks were still followed and recorded, only without touching them
    assert [[s["target"] for s in layer["symlinks"]] for layer in lowers] == [
        ["../id1/diff"], ["../id2/diff"]]
