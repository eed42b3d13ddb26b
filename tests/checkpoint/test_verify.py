"""``dump --verify``: a read-only rebuild in a throwaway namespace, compared with the live tree."""

from __future__ import annotations

import os
from pathlib import Path

from ckkit import dump, only
from engine_kit import needs, quiet_snapshot, snapshot
from test_end_to_end import RICH

from ovlinspect.checkpoint.compare import Bounds, compare_trees

from scenario import running


@needs()
def test_verify_rebuilds_and_matches_without_writing() -> None:
    with running(RICH, bare=True) as sc:
        before = {d: quiet_snapshot(str(sc.tmp / d)) for d in ("u", "w", "l0", "l1")}
        doc = dump(sc.pid, "--verify")
        entry = only(doc, f"{sc.tmp}/m")
        check = next(v for v in doc["verify"] if v["mount_id"] == entry["mount_id"])
        assert check["verified"] is True, check
        assert check["restore"] == "verified" and check["live"] == "quiet-clone"
        assert check["entries"] > 10 and check["stopped"] is None
        after = {d: quiet_snapshot(str(sc.tmp / d)) for d in ("u", "w", "l0", "l1")}
        assert after == before  # atimes too


@needs()
def test_verify_is_bounded_and_says_where_it_stopped() -> None:
    with running(RICH, bare=True) as sc:
        doc = dump(sc.pid, f"{sc.tmp}/m", "--verify", "--max-entries", "3")
        check = doc["verify"][0]
        assert check["verified"] is None
        assert check["stopped"] == "entries" and check["entries"] == 3
        assert check["where"].startswith("/")


def _tree(root: Path, extra: str = "") -> None:
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("same")
    (root / "g").write_text("content" + extra)
    os.symlink("d/f", root / "s")


def test_compare_reports_the_first_difference(tmp_path: Path) -> None:
    _tree(tmp_path / "a")
    _tree(tmp_path / "b", extra="!")
    _tree(tmp_path / "c")
    fds = {k: os.open(tmp_path / k, os.O_RDONLY | os.O_DIRECTORY) for k in "abc"}
    try:
        same = compare_trees(fds["a"], fds["c"], Bounds())
        assert same["verified"] is True and same["entries"] == 4
        diff = compare_trees(fds["a"], fds["b"], Bounds())
        assert diff["verified"] is False
        assert diff["difference"]["path"] == "/g" and diff["difference"]["what"] == "size"
        small = compare_trees(fds["a"], fds["b"], Bounds(hash_limit=0))
        assert small["difference"]["what"] == "size"
        os.unlink(tmp_path / "c" / "s")
        names = compare_trees(fds["a"], fds["c"], Bounds())
        assert names["difference"] == {"path": "/s", "what": "names", "live": True,
                                       "rebuilt": False}
    finally:
        for fd in fds.values():
            os.close(fd)


NFS_EXPORT = """
mkdir -p l0/a l1/a/b u w m
echo 0 > l0/only_l0; echo 1 > l1/a/b/f; echo 2 > l0/a/g
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w,nfs_export=on m
echo ready; exec sleep 600
"""


@needs()
def test_dump_and_verify_never_write_an_nfs_export_overlay() -> None:
    # a/b lives only in the lower lower, under the merged directory a: encoding it would copy
    # it up.  Neither dump nor --verify may change the upper or work/index.
    with running(NFS_EXPORT, bare=True) as sc:
        before = {d: snapshot(str(sc.tmp / d)) for d in ("u", "w")}
        doc = dump(sc.pid, f"{sc.tmp}/m", "--verify")
        assert doc["overlays"][0]["options"]["nfs_export"] is True
        assert doc["verify"][0]["verified"] is True, doc["verify"][0]
        after = {d: snapshot(str(sc.tmp / d)) for d in ("u", "w")}
        assert after == before
