"""``dump --verify``: a read-only rebuild in a throwaway namespace, compared with the live tree."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from ckkit import dump, dump_entered, only
from engine_kit import needs, quiet_snapshot, snapshot
from test_end_to_end import RICH
from test_verify_nonroot import BUSY, busy_verify

from ovlinspect.checkpoint import compare
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


def _pair(tmp_path: Path) -> tuple[int, int]:
    _tree(tmp_path / "a")
    _tree(tmp_path / "b")
    return (os.open(tmp_path / "a", os.O_RDONLY | os.O_DIRECTORY),
            os.open(tmp_path / "b", os.O_RDONLY | os.O_DIRECTORY))


@pytest.mark.parametrize("what", ["deleted", "rewritten"])
def test_a_tree_changed_under_the_comparison_is_changed_not_different(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    # A writer acting between the live and the rebuilt read of /g: deleted (ENOENT), or
    # rewritten (a difference whose live side changed meanwhile).
    real = compare._describe
    live_fd, new_fd = _pair(tmp_path)
    calls: list[str] = []

    def racing(dirfd: int, name: str, bounds: Bounds) -> Any:
        out = real(dirfd, name, bounds)
        calls.append(name)
        if calls.count("g") == 1 and name == "g":  # the live side is read first
            if what == "deleted":
                os.unlink(tmp_path / "a" / "g")
                os.unlink(tmp_path / "b" / "g")
            else:  # both trees read the same upper: the rebuilt one sees it too
                (tmp_path / "a" / "g").write_text("written meanwhile")
                (tmp_path / "b" / "g").write_text("written meanwhile")
        return out

    monkeypatch.setattr(compare, "_describe", racing)
    try:
        out = compare_trees(live_fd, new_fd, Bounds())
    finally:
        os.close(live_fd)
        os.close(new_fd)
    assert out["verified"] is None and out["difference"] is None
    assert out["changed"]["path"] == "/g"


def test_a_difference_in_a_still_tree_stays_a_difference(tmp_path: Path) -> None:
    live_fd, new_fd = _pair(tmp_path)
    (tmp_path / "b" / "g").write_text("other")
    try:
        out = compare_trees(live_fd, new_fd, Bounds())
    finally:
        os.close(live_fd)
        os.close(new_fd)
    assert out["verified"] is False and out["changed"] is None
    assert out["difference"]["path"] == "/g"


def test_a_read_error_is_compare_failed_not_a_traceback(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from ovlinspect.checkpoint import verify

    def broken(live: int, new: int, bounds: Bounds) -> Any:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(verify, "compare_trees", broken)
    live_fd, new_fd = _pair(tmp_path)
    try:
        out = verify._compare(live_fd, new_fd, Bounds())
    finally:
        os.close(live_fd)
        os.close(new_fd)
    assert (out["verified"], out["reason"]) == (None, "compare-failed")


# The live overlay seen by root from a process in a user+mount namespace of its own: the copy
# of the overlay's mount there has its atime flags locked (noatime is EPERM, even for root), so
# its clone can only be made read-only, which is enough.
LOCKED = r"""
mkdir -p $T/fs
mount -t tmpfs -o relatime revt $T/fs
F=$T/fs; mkdir -p $F/l1/d $F/u $F/w $F/m
echo a > $F/l1/d/a
mount -t overlay overlay -o lowerdir=$F/l1,upperdir=$F/u,workdir=$F/w $F/m
ln -s sometarget $F/m/ulink; echo x > $F/m/ufile; mkdir $F/m/udir
cd /
unshare -U -r -m --propagation private sleep 600 &
B=$!
sleep 0.3
echo "ready {\"B\": $B}"
wait
"""


@needs()
def test_verify_through_a_locked_namespace_reads_a_read_only_clone() -> None:
    with running(LOCKED, bare=True) as sc:
        upper = f"/proc/{sc.pid}/root{sc.tmp}/fs/u"
        old = time.time_ns() - 2 * 86400 * 10**9
        for name in os.listdir(upper):
            st = os.lstat(f"{upper}/{name}")
            os.utime(f"{upper}/{name}", ns=(old, st.st_mtime_ns), follow_symlinks=False)
        before = quiet_snapshot(upper)
        rc, doc = dump_entered(sc.pid, "--pid", str(sc.info["B"]), f"{sc.tmp}/fs/m", "--verify")
        check = doc["verify"][0]
        assert rc == 0, check
        assert (check["verified"], check["reason"]) == (True, None), check
        assert check["live"] == "quiet-clone"
        assert quiet_snapshot(upper) == before  # ulink's atime above all


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


@needs()
def test_a_tree_written_during_a_root_verify_is_live_changed() -> None:
    with running(BUSY) as sc:
        def run() -> tuple[int, Any]:
            rc, doc = dump_entered(sc.pid, f"{sc.tmp}/t/m", "--verify")
            return rc, doc["verify"][0]

        seen = busy_verify(run)
        assert seen[-1] == (3, None, "live-changed"), seen
