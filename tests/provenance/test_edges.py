"""Edge cases of ``which`` and ``fds``: an overlay bound from a subdirectory, a lower-only
overlay, a symlink named as the final component, and an open fd whose file was deleted."""

from __future__ import annotations

import sys

from engine_kit import needs, script
from provkit import HOLDER, fds_json, proof, ref, where, which_json

from scenario import running

pytestmark = needs()

BODY = r"""
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
mkdir -p l0/sub/inner l1/sub u w m lo b
echo a > l0/sub/inner/a; echo b > l1/sub/b; ln -s /etc/passwd l0/sub/link; echo del > l1/sub/del
mount -t overlay ov -o lowerdir=$T/t/l0:$T/t/l1,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
mount -t overlay lo -o lowerdir=$T/t/l0:$T/t/l1 $T/t/lo
mount --bind $T/t/m/sub $T/t/b
exec 7<$T/t/m/sub/del
rm $T/t/m/sub/del
cd /
""" + HOLDER + r"""
exec "$PY" $T/hold.py "$T/t/b/inner/a" ""
"""


def test_bound_subdirectory_lower_only_symlink_and_deleted_fd() -> None:
    with running(script(f'PY="{sys.executable}"\n' + BODY)) as sc:
        t = f"{sc.tmp}/t"
        got = which_json(sc.pid, f"{t}/b/inner/a", f"{t}/b", f"{t}/lo/sub/b", f"{t}/lo",
                         f"{t}/m/sub/link")
        assert got["errors"] == []
        assert where(got[f"{t}/b/inner/a"]) == ("lower", 0, f"{t}/l0/sub/inner/a")
        assert proof(got[f"{t}/b/inner/a"]) == ("object-handle", "proven")
        sub = got[f"{t}/b"]
        assert where(sub) == ("upper", 0, f"{t}/u/sub")  # copied up by the rm below it
        assert ref(sub["origin"]) == ("lower", 0, f"{t}/l0/sub")
        assert [ref(m) for m in sub["merged"]] == [("lower", 0, f"{t}/l0/sub"),
                                                   ("lower", 1, f"{t}/l1/sub")]
        assert where(got[f"{t}/lo/sub/b"]) == ("lower", 1, f"{t}/l1/sub/b")
        assert where(got[f"{t}/lo"]) == ("lower", 0, f"{t}/l0")
        link = got[f"{t}/m/sub/link"]
        assert (link["kind"], where(link)) == ("symlink", ("lower", 0, f"{t}/l0/sub/link"))
        fds = {r["fd"]: r for r in fds_json(sc.pid)["fds"]}
        deleted = fds[7]
        assert deleted["path"] == f"{t}/m/sub/del (deleted)"
        assert where(deleted) == ("lower", 1, f"{t}/l1/sub/del")
        assert proof(deleted) == ("object-handle", "proven")
        bound = fds[sc.info["fds"][f"{t}/b/inner/a"]]
        assert (bound["mount_point"], where(bound)) == (
            f"{t}/b", ("lower", 0, f"{t}/l0/sub/inner/a"))
