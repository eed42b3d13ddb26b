"""Second review of ``ovlinspect diff``: container-like histories against the naive oracle.

Each scenario builds an overlay in a private (bare) mount namespace, makes a long sequence of
changes through it as a container would, and mounts the lowers alone (read-only) for the
oracle.  Tests that pass assert the exact truth; ``xfail(strict=True)`` tests assert the truth
where the diff is wrong today (the reason names the cause).
"""

from __future__ import annotations

import os
import sys

import pytest
from engine_kit import quiet_snapshot
from oracle import content, naive
from test_diff import MARK, changes_of, check_against_oracle, diff_json

from scenario import run_cli, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

READY = 'echo "ready {\\"merged\\": \\"$T/m\\", \\"oracle\\": \\"$T/o\\"}"\nexec sleep 600\n'

# Three lowers (whiteout over a file in the middle one), then a container's history: create,
# modify, delete, recreate a name as another type, rename a file then modify it, rename a dir
# twice, move a merged dir into a new dir and write below it, delete a renamed dir, hard link
# across dirs, a symlink replaced by a dir, chmod of a dir, a fifo.
HISTORY = r"""
mkdir -p $T/l1 $T/l2 $T/l3 $T/u $T/w $T/m $T/o
cd $T/l3; mkdir -p a/b/c d1/x d2 hl sd; echo 3 > a/b/c/f; echo 3 > d1/x/f; echo 3 > file3
echo 3 > hl/h; echo 3 > typechg; ln -s file3 symd; echo 3 > sd/x; echo 3 > ww
cd $T/l2; mkdir -p a/b d2/y; echo 2 > a/b/g; echo 2 > d2/y/f; mknod ww c 0 0; echo 2 > file2
cd $T/l1; mkdir -p a; echo 1 > a/h; echo 1 > file1; echo 1 > rn
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2:$T/l3,upperdir=$T/u,workdir=$T/w@OPTS@ $T/m
mount -t overlay overlay -o ro,lowerdir=$T/l1:$T/l2:$T/l3 $T/o
cd $T/m
echo n > new; echo m >> file1; rm file2; rm file3; mkdir file3; echo z > file3/in
rm typechg; ln -s nowhere typechg
mv rn rn2; echo more >> rn2
mv d1 d1b; mv d1b d1c
mkdir nd; mv a nd/a2; echo q > nd/a2/b/new
mv d2 d2r; rm -rf d2r
ln hl/h hlink2; echo w >> hlink2
rm symd; mkdir symd; echo s > symd/s
chmod 700 sd
mknod ww2 p
cd /
""" + READY

# Expected marks whatever the options (renamed directories aside).
HISTORY_COMMON = {
    "/file1": "changed", "/file2": "deleted", "/file3": "changed", "/file3/in": "added",
    "/new": "added", "/rn": "deleted", "/rn2": "added", "/sd": "changed", "/symd": "changed",
    "/symd/s": "added", "/typechg": "changed", "/ww2": "added", "/hl": "changed",
    "/hlink2": "added", "/a": "deleted", "/d1": "deleted", "/d2": "deleted", "/nd": "added",
}


@pytest.mark.parametrize("opts", [",redirect_dir=on", "", ",metacopy=on",
                                  ",redirect_dir=on,index=on,xino=on"])
def test_container_history_matches_the_oracle(opts: str) -> None:
    with running(HISTORY.replace("@OPTS@", opts), bare=True) as sc:
        redirects = "redirect_dir=on" in opts or "metacopy=on" in opts
        renames = {"/d1c": "/d1", "/nd/a2": "/a"} if redirects else {}
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"], renames)
    kinds = {c["path"]: c["kind"] for c in changes}
    types = {c["path"]: c["type"] for c in changes}
    for path, kind in HISTORY_COMMON.items():
        assert kinds[path] == kind, (path, kinds.get(path))
    assert types["/file3"] == "dir" and types["/typechg"] == "symlink"
    assert types["/file2"] == "file" and types["/ww2"] == "other"
    assert "/ww" not in kinds  # the middle layer's whiteout: not a change of this container
    assert kinds["/hl/h"] == "changed"  # written through its other name
    if redirects:
        assert kinds["/d1c"] == kinds["/nd/a2"] == "renamed"
        assert kinds["/nd/a2/b"] == "changed" and kinds["/nd/a2/b/new"] == "added"
        assert "/d1c/x" not in kinds and "/nd/a2/h" not in kinds
    else:  # copied up whole: everything below is new
        assert kinds["/d1c"] == kinds["/d1c/x/f"] == kinds["/nd/a2/h"] == "added"


# Two commits: the first upper (with redirects, opaque dirs and whiteouts) becomes a lower of
# the next container, which renames a renamed dir again, moves one back, re-creates deleted
# names and rebuilds an opaque dir.
STACKED = r"""
mkdir -p $T/b $T/u1 $T/w1 $T/u2 $T/w2 $T/m $T/o
cd $T/b; mkdir -p a/b/c d1/x keep/k2 op/o2 gone z; echo b > a/b/c/f; echo b > a/top
echo b > d1/x/f; echo b > keep/k2/f; echo b > op/o2/f; echo b > op/f; echo b > gone/f
echo b > rmf; echo b > z/zf
mount -t overlay overlay -o lowerdir=$T/b,upperdir=$T/u1,workdir=$T/w1,redirect_dir=on $T/m
cd $T/m; mv a a2; mv d1 keep/d1m; rm -rf op; mkdir op; echo 1 > op/new; rm rmf; rm -rf gone
echo 1 > a2/b/c/f1; mkdir z/nz; echo 1 > z/nz/f
cd /; umount $T/m
mount -t overlay overlay -o lowerdir=$T/u1:$T/b,upperdir=$T/u2,workdir=$T/w2@OPTS@ $T/m
mount -t overlay overlay -o ro,lowerdir=$T/u1:$T/b $T/o
cd $T/m; mv a2 a3; echo 2 > a3/b/c/f2; rm a3/top; mv keep/d1m d1back; echo 2 > d1back/x/g
echo 2 > rmf; mkdir gone; echo 2 > gone/g; rm -rf op; mkdir op; echo 2 > op/o2; mv z z2
rm -rf z2/nz; mkdir -p z2/nz; echo 2 > z2/nz/g
cd /
""" + READY


def test_stacked_commit_with_redirects_in_the_lowers_matches_the_oracle() -> None:
    with running(STACKED.replace("@OPTS@", ",redirect_dir=on"), bare=True) as sc:
        renames = {"/a3": "/a2", "/d1back": "/keep/d1m", "/z2": "/z"}
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"], renames)
    assert [(c["path"], c["kind"][0].upper()) for c in changes] == [
        ("/a2", "D"), ("/a3", "R"), ("/a3/b", "C"), ("/a3/b/c", "C"), ("/a3/b/c/f2", "A"),
        ("/a3/top", "D"), ("/d1back", "R"), ("/d1back/x", "C"), ("/d1back/x/g", "A"),
        ("/gone", "A"), ("/gone/g", "A"), ("/keep", "C"), ("/keep/d1m", "D"), ("/op", "C"),
        ("/op/new", "D"), ("/op/o2", "A"), ("/rmf", "A"), ("/z", "D"), ("/z2", "R"),
        ("/z2/nz", "C"), ("/z2/nz/f", "D"), ("/z2/nz/g", "A")]


def test_stacked_commit_without_redirects_matches_the_oracle() -> None:
    with running(STACKED.replace("@OPTS@", ""), bare=True) as sc:
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    kinds = {c["path"]: c["kind"] for c in changes}
    assert kinds["/a3"] == kinds["/a3/b/c/f1"] == kinds["/z2/zf"] == "added"
    assert kinds["/keep/d1m"] == kinds["/z"] == kinds["/a2"] == "deleted"


# composefs-like: metacopy lowers whose data is in data-only layers (the second data layer
# holds one blob), then chown (metacopy copy-up), a write (full copy-up from the data layer),
# a renamed dir with a chmod inside, a moved metacopy file.
DATA_ONLY = r"""
mkdir -p $T/l0/d $T/l1 $T/d0/blobs $T/d1/blobs $T/u $T/w $T/m $T/o
cd $T
printf data1 > d0/blobs/b1; printf data3 > d0/blobs/b3; printf data2 > d1/blobs/b2
echo l1 > l1/plain
"$PY" - <<'PYEOF'
import os
from ovlinspect.kernel.mountapi import overlay_new_api
def mc(p, r):
    open(p, "w").close(); os.truncate(p, 5)
    os.setxattr(p, "trusted.overlay.metacopy", b""); os.setxattr(p, "trusted.overlay.redirect", r)
mc("l0/mc", b"/blobs/b1"); mc("l0/mc2", b"/blobs/b2"); mc("l0/d/mc3", b"/blobs/b3")
mc("l0/mc4", b"/blobs/b1")
t = os.getcwd()
overlay_new_api(f"{t}/m", lowers=[f"{t}/l0", f"{t}/l1"], datas=[f"{t}/d0", f"{t}/d1"],
                upper=f"{t}/u", work=f"{t}/w",
                strings={"metacopy": "on", "redirect_dir": "on"@IDX@})
overlay_new_api(f"{t}/o", lowers=[f"{t}/l0", f"{t}/l1"], datas=[f"{t}/d0", f"{t}/d1"],
                strings={"metacopy": "on", "redirect_dir": "follow"}, flags=["ro"])
PYEOF
cd $T/m
chown 1:1 mc; echo more >> mc2; mv d d2; chmod 600 d2/mc3; mv mc4 mc4b; chmod 600 mc4b
cd /
""" + READY


@pytest.mark.parametrize("index", ["", ', "index": "on"'])
def test_data_only_layers_after_chown_write_and_renames(index: str) -> None:
    body = f'PY="{sys.executable}"\n' + DATA_ONLY.replace("@IDX@", index)
    with running(body, bare=True) as sc:
        changes = changes_of(diff_json(sc.pid, sc.info["merged"]))
        root = f"/proc/{sc.pid}/root"
        want = naive(root + sc.info["merged"], root + sc.info["oracle"], {"/d2": "/d"})
        want.pop("/d2")
        assert {c["path"]: MARK[c["kind"]] for c in changes if c["kind"] != "renamed"} == want
        for new, old in (("/mc", "/mc"), ("/d2/mc3", "/d/mc3")):  # M: the data is the lower's
            assert content(root + sc.info["merged"] + new) == content(
                root + sc.info["oracle"] + old)
    assert [(c["path"], c["kind"], c["from"]) for c in changes] == [
        ("/d", "deleted", None), ("/d2", "renamed", "/d"), ("/d2/mc3", "metadata", None),
        ("/mc", "metadata", None), ("/mc2", "changed", None), ("/mc4", "deleted", None),
        ("/mc4b", "added", None)]


def test_diff_reads_nothing_it_should_not_change() -> None:
    body = f'PY="{sys.executable}"\n' + DATA_ONLY.replace("@IDX@", ', "index": "on"')
    with running(body, bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}"
        dirs = ("l0", "l1", "d0", "d1", "u", "w")
        before = {d: quiet_snapshot(f"{seen}/{d}") for d in dirs}
        diff_json(sc.pid, sc.info["merged"])
        run_cli("diff", "--pid", str(sc.pid))
        run_cli("which", "--pid", str(sc.pid), f"{sc.tmp}/m/d2/mc3", f"{sc.tmp}/m/mc",
                f"{sc.tmp}/m/mc2", f"{sc.tmp}/m/d", "--json", check_rc=None)
        assert {d: quiet_snapshot(f"{seen}/{d}") for d in dirs} == before


# ``rm -rf d && mkdir -p d/a/b`` (a Dockerfile classic): the upper ``d`` is opaque, but the new
# ``d/a`` and ``d/a/b`` below it are not; the lower ``d/a`` is hidden by ``d``'s opacity, so
# everything the lower ``d/a`` held is deleted.
OPAQUE_PARENT = r"""
mkdir -p $T/l/d/a/b $T/u $T/w $T/m $T/o
echo k > $T/l/d/a/keep; echo f > $T/l/d/a/b/f; echo x > $T/l/d/x
mount -t overlay overlay -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w@OPTS@ $T/m
mkdir $T/o2; mount -t overlay overlay -o ro,lowerdir=$T/l:$T/o2 $T/o
cd $T/m; rm -rf d; mkdir -p d/a/b; echo g > d/a/b/g
cd /
""" + READY


@pytest.mark.parametrize("opts", ["", ",redirect_dir=on"])
def test_plain_dir_below_an_opaque_dir_hides_the_lower_contents(opts: str) -> None:
    with running(OPAQUE_PARENT.replace("@OPTS@", opts), bare=True) as sc:
        root = f"/proc/{sc.pid}/root{sc.info['merged']}"
        assert sorted(os.listdir(f"{root}/d/a")) == ["b"]  # the kernel hides keep
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    assert [(c["path"], c["kind"]) for c in changes] == [
        ("/d", "changed"), ("/d/a", "changed"), ("/d/a/b", "changed"), ("/d/a/b/f", "deleted"),
        ("/d/a/b/g", "added"), ("/d/a/keep", "deleted"), ("/d/x", "deleted")]


# A lower directory replaced by a non-directory (``rm -rf d; echo > d``): the upper ``d`` is a
# plain file, and what the lower ``d`` held is deleted, as below an opaque directory.
DIR_TO_FILE = r"""
mkdir -p $T/l1/d/sub/deeper $T/l2/d $T/l1/s $T/u $T/w $T/m $T/o
echo a > $T/l1/d/a; echo b > $T/l1/d/sub/deeper/b; echo c > $T/l2/d/c; echo w > $T/l2/d/wh
mknod $T/l1/d/wh c 0 0; echo t > $T/l1/s/t
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w@OPTS@ $T/m
mount -t overlay overlay -o ro,lowerdir=$T/l1:$T/l2 $T/o
cd $T/m; rm -rf d; echo f > d; rm -rf s; ln -s nowhere s
cd /
""" + READY


@pytest.mark.parametrize("opts", ["", ",redirect_dir=on", ",metacopy=on,index=on"])
def test_lower_dir_replaced_by_a_non_directory(opts: str) -> None:
    with running(DIR_TO_FILE.replace("@OPTS@", opts), bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}"
        # The engine's scan (not the diff) updates the upper symlink's atime once (relatime,
        # a first access after creation): the layers are compared around a second run.
        run_cli("diff", "--pid", str(sc.pid), sc.info["merged"])
        before = {d: quiet_snapshot(f"{seen}/{d}") for d in ("l1", "l2", "u", "w")}
        run_cli("diff", "--pid", str(sc.pid), sc.info["merged"])
        assert {d: quiet_snapshot(f"{seen}/{d}") for d in ("l1", "l2", "u", "w")} == before
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    assert [(c["path"], c["kind"], c["type"]) for c in changes] == [
        ("/d", "changed", "file"), ("/d/a", "deleted", "file"), ("/d/c", "deleted", "file"),
        ("/d/sub", "deleted", "dir"), ("/s", "changed", "symlink"),
        ("/s/t", "deleted", "file")]


# index=on: a hard link's other name is served from the index entry (work/index), an upper
# inode, so writing through one name changes what the other name reads.  ``b/y`` is such a name
# in a directory the upper lacks; ``c/z``, a third name of the same inode, was deleted.
INDEX_LINK = r"""
mkdir -p $T/l/a $T/l/b $T/l/c $T/u $T/w $T/m $T/o
echo l > $T/l/h1; ln $T/l/h1 $T/l/h2; echo x > $T/l/a/x; ln $T/l/a/x $T/l/b/y
ln $T/l/a/x $T/l/c/z; echo s > $T/l/solo
mount -t overlay overlay -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w,index=on@OPTS@ $T/m
mkdir $T/o2; mount -t overlay overlay -o ro,lowerdir=$T/l:$T/o2 $T/o
echo more >> $T/m/h1; chmod 600 $T/m/a/x; rm $T/m/c/z; chmod 600 $T/m/solo
""" + READY


@pytest.mark.parametrize("opts", ["", ",metacopy=on"])
def test_hard_link_served_from_the_index_is_changed(opts: str) -> None:
    with running(INDEX_LINK.replace("@OPTS@", opts), bare=True) as sc:
        root = f"/proc/{sc.pid}/root{sc.info['merged']}"
        with open(f"{root}/h2", "rb") as handle:
            assert handle.read() == b"l\nmore\n"  # the other name changed too
        assert os.stat(f"{root}/b/y").st_mode & 0o777 == 0o600
        seen = f"/proc/{sc.pid}/root{sc.tmp}"
        run_cli("diff", "--pid", str(sc.pid), sc.info["merged"])  # the scan's relatime touch
        before = {d: quiet_snapshot(f"{seen}/{d}") for d in ("l", "u", "w")}
        doc = diff_json(sc.pid, sc.info["merged"])
        assert {d: quiet_snapshot(f"{seen}/{d}") for d in ("l", "u", "w")} == before
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    assert doc["mounts"][0]["notes"] == []
    meta = "metadata" if opts else "changed"
    assert [(c["path"], c["kind"]) for c in changes] == [
        ("/a", "changed"), ("/a/x", meta), ("/b", "changed"), ("/b/y", meta),
        ("/c", "changed"), ("/c/z", "deleted"), ("/h1", "changed"), ("/h2", "changed"),
        ("/solo", meta)]


# index=on with two lowers, seen from the root and from a bound subdirectory: a name of the
# copied-up inode in a directory renamed since (its old path holds a whiteout), one hidden by
# the upper lower's whiteout (the overlay's link count still counts it), and a lower directory
# replaced by a file.
INDEX_BOUND = r"""
mkdir -p $T/l1/sub $T/l2/sub/d/in $T/l2/sub/hl $T/l2/sub/rn $T/u $T/w $T/m $T/o $T/b
echo a > $T/l2/sub/d/in/a; echo h > $T/l2/sub/h1; ln $T/l2/sub/h1 $T/l2/sub/hl/h2
ln $T/l2/sub/h1 $T/l2/sub/rn/h3; ln $T/l2/sub/h1 $T/l2/sub/hw; mknod $T/l1/sub/hw c 0 0
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w,index=on,\
redirect_dir=on $T/m
mount -t overlay overlay -o ro,lowerdir=$T/l1:$T/l2 $T/o
cd $T/m/sub; rm -rf d; echo f > d; echo more >> h1; mv rn rn2
mount --bind $T/m/sub $T/b
cd /
echo "ready {\"merged\": \"$T/m\", \"bound\": \"$T/b\", \"oracle\": \"$T/o\"}"
exec sleep 600
"""


def test_index_links_below_a_renamed_dir_and_in_a_bound_subdirectory() -> None:
    with running(INDEX_BOUND, bare=True) as sc:
        whole = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"],
                                     renames={"/sub/rn2": "/sub/rn"})
        bound = check_against_oracle(sc.pid, sc.info["bound"], f"{sc.info['oracle']}/sub",
                                     renames={"/rn2": "/rn"})
        notes = [diff_json(sc.pid, m)["mounts"][0]["notes"]
                 for m in (sc.info["merged"], sc.info["bound"])]
    assert notes == [[], []]
    inside = [("/d", "changed"), ("/d/in", "deleted"), ("/h1", "changed"),
              ("/hl", "changed"), ("/hl/h2", "changed"), ("/rn", "deleted"),
              ("/rn2", "renamed"), ("/rn2/h3", "changed")]
    assert [(c["path"], c["kind"]) for c in bound] == inside
    assert [(c["path"], c["kind"]) for c in whole] == [("/sub", "changed")] + [
        ("/sub" + p, k) for p, k in inside]


def test_text_and_json_agree_on_the_history() -> None:
    with running(HISTORY.replace("@OPTS@", ",redirect_dir=on"), bare=True) as sc:
        doc = changes_of(diff_json(sc.pid, sc.info["merged"]))
        text = run_cli("diff", "--pid", str(sc.pid), sc.info["merged"]).stdout.splitlines()
    want = [f"R {c['from']} -> {c['path']}" if c["kind"] == "renamed"
            else f"{c['kind'][0].upper()} {c['path']}" for c in doc]
    assert text == want


# A subdirectory of an overlay bound elsewhere (its own mount, root ``/sub``): a directory moved
# into it from outside the bound subtree has an absolute redirect to ``/x``, which is not a
# path of this mount.  The oracle of the bound mount is ``/sub`` of the lowers alone (``$T/o``).
BOUND = r"""
mkdir -p $T/l/sub/in $T/l/x/xx $T/u $T/w $T/m $T/b $T/o $T/o2
echo s > $T/l/sub/in/f; echo x > $T/l/x/xx/f; echo y > $T/l/x/y; echo k > $T/l/sub/k
mount -t overlay overlay -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w,redirect_dir=on $T/m
mount -t overlay overlay -o ro,lowerdir=$T/l:$T/o2 $T/o
mv $T/m/x $T/m/sub/x2; mv $T/m/sub/in $T/m/sub/in2; rm $T/m/sub/k; echo n > $T/m/sub/new
echo z > $T/m/sub/x2/z; rm $T/m/sub/x2/y
mount --bind $T/m/sub $T/b
echo "ready {\"merged\": \"$T/m\", \"bound\": \"$T/b\", \"oracle\": \"$T/o\"}"
exec sleep 600
"""


def test_overlay_root_and_bound_subdirectory() -> None:
    with running(BOUND, bare=True) as sc:
        whole = changes_of(diff_json(sc.pid, sc.info["merged"]))
        bound = changes_of(diff_json(sc.pid, sc.info["bound"]))
    assert [(c["path"], c["kind"], c["from"]) for c in whole] == [
        ("/sub", "changed", None), ("/sub/in", "deleted", None),
        ("/sub/in2", "renamed", "/sub/in"), ("/sub/k", "deleted", None),
        ("/sub/new", "added", None), ("/sub/x2", "renamed", "/x"),
        ("/sub/x2/y", "deleted", None), ("/sub/x2/z", "added", None), ("/x", "deleted", None)]
    inside = [(c["path"], c["kind"], c["from"]) for c in bound
              if not c["path"].startswith("/x2")]
    assert inside == [("/in", "deleted", None), ("/in2", "renamed", "/in"),
                      ("/k", "deleted", None), ("/new", "added", None)]


def test_dir_moved_into_a_bound_subdirectory_from_outside_it() -> None:
    # From the bound mount, /x2 is new (its old path /x is outside the mount): added, with
    # every entry it shows, those still served by the lowers included (xx, xx/f), and
    # nothing of what was deleted in it (y).
    with running(BOUND, bare=True) as sc:
        changes = check_against_oracle(sc.pid, sc.info["bound"], f"{sc.info['oracle']}/sub",
                                       renames={"/in2": "/in"})
    moved = [(c["path"], c["kind"], c["type"]) for c in changes if c["path"].startswith("/x2")]
    assert moved == [("/x2", "added", "dir"), ("/x2/xx", "added", "dir"),
                     ("/x2/xx/f", "added", "file"), ("/x2/z", "added", "file")]


# A renamed directory bound elsewhere: the bound mount's root is /sub2 of the overlay, an upper
# directory whose redirect says its lower contents are at /sub.
BOUND_RENAMED = r"""
mkdir -p $T/l/sub/in $T/u $T/w $T/m $T/b
echo s > $T/l/sub/in/f; echo k > $T/l/sub/k; echo c > $T/l/sub/c
mount -t overlay overlay -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w,redirect_dir=on $T/m
mv $T/m/sub $T/m/sub2; rm $T/m/sub2/k; echo more >> $T/m/sub2/c; echo n > $T/m/sub2/new
mount --bind $T/m/sub2 $T/b
echo "ready {\"merged\": \"$T/m\", \"bound\": \"$T/b\"}"
exec sleep 600
"""


def test_renamed_directory_seen_from_the_overlay_root() -> None:
    with running(BOUND_RENAMED, bare=True) as sc:
        whole = changes_of(diff_json(sc.pid, sc.info["merged"]))
    assert [(c["path"], c["kind"], c["from"]) for c in whole] == [
        ("/sub", "deleted", None), ("/sub2", "renamed", "/sub"), ("/sub2/c", "changed", None),
        ("/sub2/k", "deleted", None), ("/sub2/new", "added", None)]


def test_bound_renamed_directory() -> None:
    with running(BOUND_RENAMED, bare=True) as sc:
        bound = changes_of(diff_json(sc.pid, sc.info["bound"]))
    assert [(c["path"], c["kind"]) for c in bound] == [
        ("/c", "changed"), ("/k", "deleted"), ("/new", "added")]


# nfs_export=on: encoding the handle of a lower-only directory below a merged one would copy it
# up (KERNEL-NOTES); the diff, which, and fds must leave upper and work/index as they were.
NFS = r"""
mkdir -p $T/l1/a $T/l2/a/b/c $T/u $T/w $T/m $T/o
echo deep > $T/l2/a/b/c/deep; echo f > $T/l2/a/f; echo g > $T/l1/a/g; echo r > $T/l1/r
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w,nfs_export=on $T/m
mount -t overlay overlay -o ro,lowerdir=$T/l1:$T/l2 $T/o
echo more >> $T/m/r; rm $T/m/a/f
""" + READY


def test_nfs_export_overlay_is_diffed_without_a_write() -> None:
    with running(NFS, bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}"
        dirs = ("l1", "l2", "u", "w")
        before = {d: quiet_snapshot(f"{seen}/{d}") for d in dirs}
        changes = changes_of(diff_json(sc.pid, sc.info["merged"]))
        run_cli("diff", "--pid", str(sc.pid))
        m = sc.info["merged"]
        run_cli("which", "--pid", str(sc.pid), f"{m}/a/b", f"{m}/a/b/c", f"{m}/a/b/c/deep",
                f"{m}/a/f", "--json")
        run_cli("fds", "--pid", str(sc.pid), "--json")
        assert {d: quiet_snapshot(f"{seen}/{d}") for d in dirs} == before
        check_against_oracle(sc.pid, m, sc.info["oracle"])
    assert [(c["path"], c["kind"]) for c in changes] == [
        ("/a", "changed"), ("/a/f", "deleted"), ("/r", "changed")]
