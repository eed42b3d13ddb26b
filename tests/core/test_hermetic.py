"""The helper that empties a test's private namespace of inherited overlays (tests/hermetic.py)."""

from __future__ import annotations

import os
import subprocess

import pytest
from hermetic import detach_inherited_sh

from scenario import running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

HOST = """
mount -t tmpfs host $T
mkdir -p $T/l1/d $T/l2 $T/m $T/n $T/keep
echo b > $T/l2/b
mount -t overlay inherited -o lowerdir=$T/l1:$T/l2 $T/m
mount -t tmpfs inside-it $T/m/d
mount -t overlay covered -o lowerdir=$T/l1:$T/l2 $T/n
mount -t tmpfs covering-it $T/n
mount -t tmpfs not-an-overlay $T/keep
echo ready; exec sleep 600
"""


def _mounts(pid: int) -> list[str]:
    """'fstype source' of every mount under the scenario's tmpfs, in the namespace of ``pid``."""
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8") as handle:
        return sorted(" ".join(line.split(" - ", 1)[1].split(" ")[:2]) for line in handle
                      if "/ovlinspect-test-" in line.split(" ")[4])


def test_detaches_inherited_overlays_and_what_is_on_them_only() -> None:
    with running(HOST) as sc:
        before = _mounts(sc.pid)
        assert {"overlay inherited", "overlay covered", "tmpfs covering-it"} <= set(before)
        # A further namespace, copied from the scenario's, as a test inside it would get.
        nested = (f"{detach_inherited_sh()} && echo done && "
                  "grep ovlinspect-test- /proc/self/mountinfo")
        done = subprocess.run(["nsenter", "-t", str(sc.pid), "-m", "unshare", "-m",
                               "--propagation", "private", "sh", "-c", nested],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        left = sorted(" ".join(ln.split(" - ", 1)[1].split(" ")[:2])
                      for ln in done.stdout.splitlines()[1:])
        assert left == ["tmpfs host", "tmpfs not-an-overlay"]
        assert _mounts(sc.pid) == before  # the namespace it was copied from keeps them all


def test_refuses_to_run_in_the_namespace_it_was_started_from() -> None:
    with running(HOST) as sc:
        before = _mounts(sc.pid)
        # The helper was built here, in the test's namespace; make it name the scenario's.
        own = os.readlink(f"/proc/{sc.pid}/ns/mnt")
        command = detach_inherited_sh().replace(os.readlink("/proc/self/ns/mnt"), own)
        done = subprocess.run(["nsenter", "-t", str(sc.pid), "-m", "sh", "-c", command],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0 and "refusing" in done.stderr
        assert _mounts(sc.pid) == before
