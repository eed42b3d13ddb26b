"""The lab holds only its own mounts, even when started from a namespace full of overlays.

Each test starts the lab inside a private mount namespace (``unshare -m``) that already holds
overlays, as a container host's does: one with a tmpfs mounted inside it, one covered by a tmpfs.
As root the holder detaches them in its own namespace (never in its creator's); in a user
namespace they are locked, stay, are reported, and ``demo --check`` does not judge them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

INHERITED = """
set -e
mount -t tmpfs inherited-host "$T"
mkdir -p "$T/l1" "$T/l2" "$T/u" "$T/w" "$T/m" "$T/n"
echo a > "$T/l1/a"; echo b > "$T/l2/b"
mount -t overlay inherited-ov -o "lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w" "$T/m"
mkdir "$T/m/sub"
mount -t tmpfs inside-it "$T/m/sub"
mount -t overlay covered-ov -o "lowerdir=$T/l1:$T/l2" "$T/n"
mount -t tmpfs covering-it "$T/n"
exec "$@"
"""

LAB = r"""
import json, re, sys
from ovlinspect.lab import Lab

def mounts(pid, overlays=True):
    found = []
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            left, right = line.split(" - ", 1)
            fs_type, source = right.split(" ")[:2]
            if (fs_type in ("overlay", "fuse.fuse-overlayfs") if overlays
                    else source in ("inside-it", "covering-it")):
                found.append(re.sub(r"\\([0-7]{3})", lambda mo: chr(int(mo.group(1), 8)),
                                    left.split(" ")[4]))
    return found

before = mounts("self") + mounts("self", False)
with Lab(rootless=sys.argv[1] == "rootless") as lab:
    print(json.dumps({
        "before": before, "after": mounts("self") + mounts("self", False),
        "holder": lab.holder_pid, "container": lab.container_pid,
        "scenarios": lab.scenarios, "skipped": lab.skipped,
        "detached": lab.inherited_detached, "kept": lab.inherited_kept, "notes": lab.notes,
        "overlays": {str(pid): mounts(pid) for pid in lab.pids},
        "others": {str(pid): mounts(pid, False) for pid in lab.pids}}))
"""


@pytest.fixture
def tmp() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ovlinspect-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def with_inherited(tmp: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private namespace holding the overlays of :data:`INHERITED`."""
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", INHERITED,
                           "inherited", *argv], capture_output=True, text=True, timeout=120,
                          env={**ENV, "T": tmp}, cwd=REPO)


def start_lab(tmp: str, mode: str) -> dict[str, Any]:
    run = with_inherited(tmp, sys.executable, "-c", LAB, mode)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def own_points(report: dict[str, Any], pid: int) -> list[str]:
    return sorted(s["mount_point"] for s in report["scenarios"] if s["pid"] == pid)


def test_root_lab_detaches_what_it_inherited_and_only_in_its_own_namespace(tmp: str) -> None:
    report = start_lab(tmp, "root")
    assert report["skipped"] == [] and report["kept"] == [] and report["notes"] == []
    assert {f"{tmp}/m", f"{tmp}/n"} <= set(report["detached"])
    holder, container = str(report["holder"]), str(report["container"])
    assert sorted(report["overlays"][holder]) == own_points(report, report["holder"])
    assert report["overlays"][container] == ["/"] == own_points(report, report["container"])
    assert report["others"] == {holder: [], container: []}  # what was on or in them went too
    # The namespace the lab was started from keeps every one of its mounts.
    assert {f"{tmp}/m", f"{tmp}/m/sub", f"{tmp}/n"} <= set(report["before"])
    assert report["after"] == report["before"]


def test_rootless_lab_reports_the_locked_mounts_it_could_not_detach(tmp: str) -> None:
    report = start_lab(tmp, "rootless")
    kept = {k["mount_point"]: k for k in report["kept"]}
    assert {f"{tmp}/m", f"{tmp}/n"} <= set(kept)
    assert all(k["reason"].startswith("locked") for k in kept.values())
    assert len(report["notes"]) == len(kept)
    holder = report["holder"]
    assert set(report["overlays"][str(holder)]) == set(own_points(report, holder)) | set(kept)
    assert report["after"] == report["before"]


def test_demo_json_lists_exactly_the_labs_own_overlays(tmp: str) -> None:
    run = with_inherited(tmp, sys.executable, "-m", "ovlinspect", "demo", "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    lab = document["lab"]
    lab_pids = {lab["holder_pid"], lab["container_pid"]}
    found = sorted((pid, o["mount_point"]) for ns in document["namespaces"]
                   for pid in set(ns["pids"]) & lab_pids for o in ns["overlays"])
    assert found == sorted((s["pid"], s["mount_point"]) for s in lab["scenarios"])
    assert lab["inherited_kept"] == [] and {f"{tmp}/m", f"{tmp}/n"} <= set(
        lab["inherited_detached"])


def test_rootless_demo_check_judges_only_the_labs_scenarios(tmp: str) -> None:
    run = with_inherited(tmp, sys.executable, "-m", "ovlinspect", "demo", "--rootless",
                         "--check")
    assert run.returncode in (0, 1), run.stderr
    lines = run.stdout.splitlines()
    verdicts = [ln for ln in lines if ln.startswith(("ok ", "FAIL"))]
    skipped = [ln for ln in lines if ln.startswith("skip ")]
    assert len(verdicts) + len(skipped) == 9
    assert not any(tmp in ln for ln in verdicts)
    notes = [ln for ln in lines if ln.startswith("note ")]
    for point in (f"{tmp}/m", f"{tmp}/n"):
        assert any(ln.startswith(f"note {point}: ") for ln in notes), (point, notes)
    assert run.returncode == (1 if any(v.startswith("FAIL") for v in verdicts) else 0)
