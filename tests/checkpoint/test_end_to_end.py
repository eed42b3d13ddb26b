"""The issue's end-to-end test, and the refusals.

1. dump a scenario; 2. kill its holder (the namespace and the overlay die, the layer directories
stay); 3. restore from the dump in a new private namespace; 4. the merged tree is the one dumped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ckkit import dump, dump_inside, kill_holder, live_tree, only, reasons, restore, save
from engine_kit import needs, script

from scenario import running

RICH = script("""
mkdir -p l0 l1 u w m
fill l0 l0; fill l1 l1; fill u u
mkdir -p l1/dir/sub l0/dir && echo one > l1/dir/sub/f && echo two > l0/dir/g
mkdir -p l1/hidden && echo h > l1/hidden/x && ln -s ../only_l0 l1/link
echo big > l1/gone && head -c 100000 /dev/urandom > l1/blob
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w,redirect_dir=on m
rm m/gone                                   # a whiteout
rm -r m/hidden && mkdir m/hidden && echo new > m/hidden/y   # an opaque directory
mv m/dir m/moved                            # a redirect
echo appended >> m/blob                     # a copy-up
chmod 700 m/moved/sub && ln -s /nowhere m/dangling
ready
exec sleep 600
""")


@needs()
def test_dump_kill_restore_same_tree(tmp_path: Path) -> None:
    with running(RICH, bare=True) as sc:
        doc = dump(sc.pid)
        entry = only(doc, f"{sc.tmp}/m")
        assert entry["restorable"] is True, entry["reasons"]
        assert entry["options"]["redirect_dir"] == "on"
        want = live_tree(sc.pid, f"{sc.tmp}/m")
        kill_holder(sc.pid)
        rc, out, got = restore(save(doc, tmp_path / "dump.json"), sc.tmp / "m")
        assert rc == 0, out
        assert out["result"] == "verified"
        assert got == want


@needs()
def test_unverified_layer_is_refused(tmp_path: Path) -> None:
    # Relative paths typed in a cwd the process has left: nothing proves where they were.
    body = script("""
mkdir -p l0 l1 u w m sub
fill l0 l0; fill l1 l1; fill u u
cd sub && mount -t overlay ov -o lowerdir=../l0:../l1,upperdir=../u,workdir=../w ../m && cd /
ready
exec sleep 600
""")
    with running(body, bare=True) as sc:
        entry = only(dump(sc.pid), f"{sc.tmp}/m")
        assert entry["restorable"] is False
        assert "unverified" in reasons(entry)
        rc, out, _ = restore(save({"schema": 1, "kind": "ovlinspect-checkpoint",
                                   "overlays": [entry]}, tmp_path / "d.json"),
                             sc.tmp / "m", tree=False)
        assert rc == 1 and out["result"] == "refused"
        assert "unverified" in {r["code"] for r in out["reasons"]}


@needs()
@pytest.mark.skipif(shutil.which("fuse-overlayfs") is None, reason="no fuse-overlayfs")
def test_fuse_overlayfs_is_refused(tmp_path: Path) -> None:
    body = script("""
mkdir -p l0 u w m
fill l0 l0
fuse-overlayfs -o lowerdir=$T/l0,upperdir=$T/u,workdir=$T/w m
ready
exec sleep 600
""")
    with running(body, bare=True) as sc:
        doc = dump(sc.pid)
        entry = only(doc, f"{sc.tmp}/m")
        assert entry["fs_type"] == "fuse.fuse-overlayfs"
        assert entry["restorable"] is False and "fuse-overlayfs" in reasons(entry)
        rc, out, _ = restore(save(doc, tmp_path / "d.json"), sc.tmp / "m", "--mount",
                             str(entry["mount_id"]), tree=False)
        assert rc == 1 and out["result"] == "refused"


def test_restore_bad_dump_is_usage_error(tmp_path: Path) -> None:
    from scenario import run_cli

    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 1}')
    done = run_cli("restore", str(bad), "--target", str(tmp_path), check_rc=2)
    assert "Traceback" not in done.stderr
    run_cli("restore", str(tmp_path / "missing.json"), "--target", str(tmp_path), check_rc=2)
    run_cli("dump", "--pid", "999999999", check_rc=2)
    run_cli("dump", str(tmp_path / "not-an-overlay"), check_rc=2)
    run_cli("restore", str(bad), check_rc=2)  # no --target
    assert run_cli("dump", "-o", str(tmp_path / "no" / "such" / "dir"), check_rc=2).stdout == ""


@needs()
def test_failed_verification_unmounts_and_missing_layer_mounts_nothing(tmp_path: Path) -> None:
    with running(RICH, bare=True) as sc:
        doc = dump(sc.pid)
        entry = only(doc, f"{sc.tmp}/m")
        tampered = json.loads(json.dumps(doc))
        only(tampered, f"{sc.tmp}/m")["root_handle"]["hex"] = "00" * 12
        rc, out, _ = restore(save(tampered, tmp_path / "t.json"), sc.tmp / "m", tree=False)
        assert rc == 1 and out["result"] == "verification-failed"
        assert {c["label"] for c in out["layers"] if not c["ok"]} == {"root"}
        assert out["unmounted"] is True and out["_target_mounted_after"] is False
        lost = json.loads(json.dumps(doc))
        only(lost, f"{sc.tmp}/m")["layers"][2]["handle"]["hex"] = "ff" * 8
        rc, out, _ = restore(save(lost, tmp_path / "l.json"), sc.tmp / "m", tree=False)
        assert rc == 1 and out["result"] == "layer-not-found"
        assert out["mount_id"] is None and out["_target_mounted_after"] is False
        assert entry["restorable"] is True
        # The good dump still restores.
        rc, out, _ = restore(save(doc, tmp_path / "d.json"), sc.tmp / "m", tree=False)
        assert rc == 0 and out["_target_mounted_after"] is True


@needs()
def test_covered_layer_no_other_mount_reaches_is_refused(tmp_path: Path) -> None:
    body = script("""
mkdir -p a/l1 l2 u w m
fill a/l1 l1; fill l2 l2; fill u u
mount -t overlay ov -o lowerdir=$T/a/l1:$T/l2,upperdir=$T/u,workdir=$T/w m
mount -t tmpfs cover a && mkdir a/l1 && echo decoy > a/l1/decoy
ready
exec sleep 600
""")
    with running(body, bare=True) as sc:
        entry = only(dump_inside(sc.pid), f"{sc.tmp}/m")
        assert entry["restorable"] is False
        assert {(r["code"], r["layer"]) for r in entry["reasons"]} == {
            ("covered-unreachable", "lower[0]")}


@needs()
def test_layers_only_inside_the_namespace_are_outside_the_dumpers_mounts(tmp_path: Path) -> None:
    # Layers on a tmpfs mounted only in the scenario's namespace: proven there, but no mount of
    # the dumper's (the host's) namespace reaches them.  Dumped from inside, they restore.
    body = script("""
mkdir -p t m
mount -t tmpfs lab t && mkdir -p t/l0 t/u t/w && fill t/l0 l0 && fill t/u u
mount -t overlay ov -o lowerdir=$T/t/l0,upperdir=$T/t/u,workdir=$T/t/w m
ready
exec sleep 600
""")
    with running(body, bare=True) as sc:
        entry = only(dump(sc.pid), f"{sc.tmp}/m")
        assert entry["restorable"] is False
        assert {r["code"] for r in entry["reasons"]} == {"outside-mounts"}
        assert entry["layers"][0]["status"] == "proven" and entry["layers"][0]["view"]
        inside = only(dump_inside(sc.pid), f"{sc.tmp}/m")
        assert inside["restorable"] is True, inside["reasons"]
