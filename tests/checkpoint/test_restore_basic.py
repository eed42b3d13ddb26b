"""Dump an overlay built in a private namespace, restore it in another, verify it by handle."""

from __future__ import annotations

from pathlib import Path

from ckkit import dump, live_tree, only, reasons, restore, save
from engine_kit import needs, script

from scenario import running

RELATIVE = script("""
mkdir -p l0 l1 u w m r sub
fill l0 l0; fill l1 l1; fill u u; echo x > l1/gone
mkdir -p l0/dir && echo deep > l0/dir/f
cd sub
mount -t overlay ov -o lowerdir=../l0:../sub/../l1,upperdir=../u,workdir=../w ../m
echo new > ../m/written && rm ../m/gone
ready
exec sleep 600
""")


@needs()
def test_relative_paths_restore_and_verify(tmp_path: Path) -> None:
    with running(RELATIVE, bare=True) as sc:
        doc = dump(sc.pid)
        assert doc["schema"] == 1
        entry = only(doc, f"{sc.tmp}/m")
        assert entry["restorable"] is True, entry["reasons"]
        assert [layer["status"] for layer in entry["layers"]] == ["proven", "unprovable",
                                                                 "proven", "proven"]
        lower1 = entry["layers"][3]
        assert lower1["path"] == f"{sc.tmp}/l1"
        assert lower1["mount"]["mount_point"] and lower1["path_in_mount"].endswith("/l1")
        assert lower1["handle"]["hex"] and lower1["fs_uuid"] is not None
        keys = [(s.get("cmd"), s.get("key")) for s in entry["recipe"] if s["call"] == "fsconfig"]
        assert ("FSCONFIG_SET_STRING", "lowerdir+") in keys
        assert ("FSCONFIG_SET_STRING", "lowerdir") not in keys
        assert entry["recipe"][0] == {"call": "fsopen", "value": "overlay"}
        want = live_tree(sc.pid, f"{sc.tmp}/m")
        # Restore while the original is still mounted (index=off: the kernel only warns).
        rc, out, got = restore(save(doc, tmp_path / "d.json"), sc.tmp / "r")
        assert rc == 0, out
        assert out["result"] == "verified" and out["verified"] is True
        assert {c["label"] for c in out["layers"]} == {"upper", "work", "lower[0]", "lower[1]"}
        assert all(c["ok"] for c in out["layers"])
        assert got == want


@needs()
def test_restore_refuses_unrestorable(tmp_path: Path) -> None:
    body = script("""
mkdir -p l0 src u w m r
mount -t tmpfs t src && fill src/l1 l1 && fill l0 l0
mount -t overlay ov -o lowerdir=l0:src/l1,upperdir=u,workdir=w m
umount -l src
ready
exec sleep 600
""")
    with running(body, bare=True) as sc:
        doc = dump(sc.pid)
        entry = only(doc, f"{sc.tmp}/m")
        assert entry["restorable"] is False
        assert "source-detached" in reasons(entry)
        assert entry["recipe"] == []
        rc, out, _ = restore(save(doc, tmp_path / "d.json"), sc.tmp / "r", tree=False)
        assert rc == 1, out
        assert out["result"] == "refused"
        assert "source-detached" in {r["code"] for r in out["reasons"]}
