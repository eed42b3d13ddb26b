"""Inspecting never writes: not data, not xattrs, not index entries, not even atimes.

The layers sit on a ``strictatime`` tmpfs, so any read without O_NOATIME would show.  The overlay
has ``nfs_export=on``, with the bait KERNEL-NOTES describes: ``a`` is merged from two lowers and
``a/b`` lives only in the lower one, so encoding ``a/b``'s handle would copy ``a`` and ``a/b`` up
and write index entries.  The snapshots themselves read with O_NOATIME.
"""

from __future__ import annotations

import os

import pytest
from engine_kit import quiet_snapshot, script

from scenario import overlay_at, run_cli, running, scan_json

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

def test_inspecting_an_nfs_export_overlay_changes_nothing() -> None:
    body = """
mkdir -p $T/t
mount -t tmpfs -o strictatime t $T/t
cd $T/t
mkdir -p l1/a l2/a/b/c u w m
echo 1 > l1/a/one; echo 2 > l2/a/b/two; echo 3 > l2/a/b/c/three
echo u > u/onlyu; echo x > l1/onlyl1
# lower[1] serves nothing at the top: the engine must look one level down, past the a/b bait
mount -t overlay ov -o nfs_export=on,index=on \
  -o lowerdir=$T/t/l1:$T/t/l2,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        root = f"/proc/{sc.pid}/root{sc.tmp}/t"
        before = {d: quiet_snapshot(f"{root}/{d}") for d in ("u", "w", "l1", "l2")}
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/t/m")
        run_cli("--pid", str(sc.pid), "--plain")
        run_cli("--pid", str(sc.pid), "--check", check_rc=None)
        after = {d: quiet_snapshot(f"{root}/{d}") for d in ("u", "w", "l1", "l2")}
        for d in before:
            assert after[d] == before[d], d
        verdicts = {(x["role"], x["index"]): x["verified"] for x in ov["layers"]}
        assert verdicts[("upper", 0)] == "match"
        assert verdicts[("lower", 0)] == "match"
        # Only a/b is its own: the directory is never encoded, the file below it is.
        assert verdicts[("lower", 1)] == "match"
        proofs = {(x["role"], x["index"]): x["proof"] for x in ov["layers"]}
        assert proofs[("lower", 1)] == {"method": "probe-handle", "strength": "proven",
                                        "reason": "probe-match"}
        assert verdicts[("work", 0)] == "match"  # index=on: trusted.overlay.upper names the upper
        assert ov["status"] == "ok"
