"""``which`` without overlay handles (a rootless overlay: inode evidence, weaker), and ``which``
/ ``fds`` on an ``nfs_export=on`` overlay, where encoding a directory's handle (also done by the
kernel to show a watch in fdinfo) would copy it up: the layers must stay unchanged."""

from __future__ import annotations

import sys

from engine_kit import needs, script, snapshot
from provkit import HOLDER, fds_json, proof, where, which_json

from scenario import running

ROOTLESS = r"""
mkdir -p $T/l1 $T/l2 $T/t $T/m
echo 1 > $T/l1/f1; echo 2 > $T/l2/f2; echo cp > $T/l2/cp
cat > $T/rootless.sh <<'EOF'
set -e
mount -t tmpfs t $T/t
mkdir -p $T/t/u $T/t/w
echo u > $T/t/u/fu
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/t/u,workdir=$T/t/w,userxattr $T/m
echo more >> $T/m/cp
cd /
echo ready
exec sleep 600
EOF
export T
exec unshare -U -r -m --propagation private sh $T/rootless.sh
"""


@needs("userns")
def test_rootless_overlay_is_placed_by_inode_numbers() -> None:
    with running(script(ROOTLESS)) as sc:
        t = str(sc.tmp)
        got = which_json(sc.pid, f"{t}/m/fu", f"{t}/m/f1", f"{t}/m/f2", f"{t}/m/cp")
        assert got["errors"] == []
        assert where(got[f"{t}/m/fu"]) == ("upper", 0, f"{t}/t/u/fu")
        assert where(got[f"{t}/m/f1"]) == ("lower", 0, f"{t}/l1/f1")
        assert where(got[f"{t}/m/f2"]) == ("lower", 1, f"{t}/l2/f2")
        assert where(got[f"{t}/m/cp"]) == ("upper", 0, f"{t}/t/u/cp")
        for name in ("fu", "f1", "f2"):
            assert proof(got[f"{t}/m/{name}"]) == ("inode", "likely")
        assert got[f"{t}/m/cp"]["origin"] is None


NFS = r"""
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
mkdir -p l1/a l2/a/b u w m
echo deep > l2/a/b/deep; echo f > l2/a/f
mount -t overlay ov -o lowerdir=$T/t/l1:$T/t/l2,upperdir=$T/t/u,workdir=$T/t/w,nfs_export=on $T/t/m
cd /
M=$T/t/m
""" + HOLDER + r"""
exec "$PY" $T/hold.py "$M/a/b/,$M/a/b/deep,$M/a/f" "$M/a/b,$M/a/f"
"""


@needs()
def test_which_and_fds_leave_an_nfs_export_overlay_unchanged() -> None:
    with running(script(f'PY="{sys.executable}"\n' + NFS)) as sc:
        t = f"{sc.tmp}/t"
        seen = f"/proc/{sc.pid}/root{t}"
        before = [snapshot(f"{seen}/u"), snapshot(f"{seen}/w")]
        got = which_json(sc.pid, f"{t}/m/a", f"{t}/m/a/b", f"{t}/m/a/b/deep", f"{t}/m/a/f")
        doc = fds_json(sc.pid)
        assert [snapshot(f"{seen}/u"), snapshot(f"{seen}/w")] == before, "inspection wrote"
        assert where(got[f"{t}/m/a"]) == ("lower", 0, f"{t}/l1/a")
        assert [m["real_path"] for m in got[f"{t}/m/a"]["merged"]] == [f"{t}/l2/a"]
        assert where(got[f"{t}/m/a/b"]) == ("lower", 1, f"{t}/l2/a/b")
        assert proof(got[f"{t}/m/a/b"]) == ("layer-lookup", "likely")
        assert where(got[f"{t}/m/a/b/deep"]) == ("lower", 1, f"{t}/l2/a/b/deep")
        assert proof(got[f"{t}/m/a/b/deep"]) == ("object-handle", "proven")
        fds = {r["fd"]: r for r in doc["fds"]}
        held = sc.info["fds"]
        assert where(fds[held[f"{t}/m/a/b"]]) == ("lower", 1, f"{t}/l2/a/b")
        assert where(fds[held[f"{t}/m/a/f"]]) == ("lower", 1, f"{t}/l2/a/f")
        # Showing a watch makes the kernel encode its handle, which would copy a/b up here.
        assert doc["watches"] == []
        assert doc["watches_skipped"]["fds"] == [sc.info["inotify"]]


NESTED = r"""
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
mkdir -p il1/a il2/a/b iu iw im ol ou ow om
echo deep > il2/a/b/deep; echo ol > ol/only_ol
mount -t overlay inner -o lowerdir=$T/t/il1:$T/t/il2,upperdir=$T/t/iu,workdir=$T/t/iw,\
nfs_export=on,index=on $T/t/im
mount -t overlay outer -o lowerdir=$T/t/ol:$T/t/im,upperdir=$T/t/ou,workdir=$T/t/ow $T/t/om
cd /
M=$T/t/om
""" + HOLDER + r"""
exec "$PY" $T/hold.py "$M/a/b/,$M/a/b/deep" "$M/a/b/deep"
"""


@needs()
def test_which_and_fds_through_an_outer_overlay_leave_the_inner_nfs_export_unchanged() -> None:
    # Encoding the OUTER overlay's a/b would copy a and a/b up into the INNER upper.
    with running(script(f'PY="{sys.executable}"\n' + NESTED)) as sc:
        t = f"{sc.tmp}/t"
        seen = f"/proc/{sc.pid}/root{t}"
        watched = [f"{seen}/{d}" for d in ("iu", "iw", "ou", "ow")]
        before = [snapshot(path) for path in watched]
        got = which_json(sc.pid, f"{t}/om/a", f"{t}/om/a/b", f"{t}/om/a/b/deep")
        doc = fds_json(sc.pid)
        assert [snapshot(path) for path in watched] == before, "inspection wrote"
        assert where(got[f"{t}/om/a"]) == ("lower", 1, f"{t}/im/a")
        assert where(got[f"{t}/om/a/b"]) == ("lower", 1, f"{t}/im/a/b")
        assert where(got[f"{t}/om/a/b/deep"]) == ("lower", 1, f"{t}/im/a/b/deep")
        assert proof(got[f"{t}/om/a/b/deep"]) == ("object-handle", "proven")
        fds = {r["fd"]: r for r in doc["fds"]}
        assert where(fds[sc.info["fds"][f"{t}/om/a/b"]]) == ("lower", 1, f"{t}/im/a/b")
        assert doc["watches_skipped"]["fds"] == [sc.info["inotify"]]
