"""Second review of ``which`` and ``fds``: container-like histories, metacopy with index,
data-only layers, non-UTF-8 names, and fds/watches whose objects moved, were copied up or
deleted after they were opened.  Each scenario runs in a private (bare) mount namespace; the
commands run as a user would.  Passing tests assert the exact truth; ``xfail(strict=True)``
tests assert the truth where the answer is wrong today (the reason names the cause)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from engine_kit import quiet_snapshot
from provkit import fds_json, proof, ref, where, which_json

from ovlinspect.model.codec import text_from_wire

from scenario import REPO, Scenario, run_cli, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _all_paths(sc: Scenario, merged: str) -> list[str]:
    root = f"/proc/{sc.pid}/root"
    out = []
    for top, dirs, files in os.walk(root + merged):
        out += [os.path.join(top, n)[len(root):] for n in dirs + files]
    return sorted(out)


def _served_content_agrees(sc: Scenario, result: dict) -> bool:
    """A file's bytes through the overlay equal those of the object named as serving it (the
    data's object for a metacopy file)."""
    source = result["data"]["real_path"] if result["metacopy"] else result["real_path"]
    root = f"/proc/{sc.pid}/root"
    return _digest(root + result["path"]) == _digest(root + source)


# Three lowers, then a container's history (see tests/changes/test_review.py).
HISTORY = r"""
mkdir -p $T/l1 $T/l2 $T/l3 $T/u $T/w $T/m
cd $T/l3; mkdir -p a/b/c d1/x d2 hl sd; echo 3c > a/b/c/f; echo 3x > d1/x/f; echo 3 > file3
echo 3h > hl/h; echo 3 > typechg; ln -s file3 symd; echo 3sd > sd/x; echo 3 > ww
cd $T/l2; mkdir -p a/b d2/y; echo 2g > a/b/g; echo 2 > d2/y/f; mknod ww c 0 0; echo 2 > file2
cd $T/l1; mkdir -p a; echo 1h > a/h; echo 1 > file1; echo 1 > rn
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2:$T/l3,upperdir=$T/u,workdir=$T/w,redirect_dir=on \
    $T/m
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
rm -rf deep; mkdir -p deep/o1
cd /
echo "ready {\"merged\": \"$T/m\"}"
exec sleep 600
"""


@pytest.fixture(scope="module")
def history() -> Iterator[Scenario]:
    with running(HISTORY, bare=True) as scenario:
        yield scenario


def test_every_path_of_a_history_is_served_by_the_layer_named(history: Scenario) -> None:
    sc, t = history, str(history.tmp)
    paths = _all_paths(sc, f"{t}/m")
    got = which_json(sc.pid, *paths)
    assert got["errors"] == []
    for path in paths:
        if got[path]["kind"] == "file":
            assert _served_content_agrees(sc, got[path]), path
    m = f"{t}/m"
    assert where(got[f"{m}/d1c"]) == ("upper", 0, f"{t}/u/d1c")
    assert got[f"{m}/d1c"]["redirect"] == "d1"
    assert [ref(x) for x in got[f"{m}/d1c"]["merged"]] == [("lower", 2, f"{t}/l3/d1")]
    assert where(got[f"{m}/d1c/x/f"]) == ("lower", 2, f"{t}/l3/d1/x/f")
    a2 = got[f"{m}/nd/a2"]
    assert (a2["redirect"], ref(a2["origin"])) == ("/a", ("lower", 0, f"{t}/l1/a"))
    assert [ref(x) for x in a2["merged"]] == [("lower", 0, f"{t}/l1/a"),
                                              ("lower", 1, f"{t}/l2/a"),
                                              ("lower", 2, f"{t}/l3/a")]
    assert where(got[f"{m}/nd/a2/h"]) == ("lower", 0, f"{t}/l1/a/h")
    assert where(got[f"{m}/nd/a2/b/g"]) == ("lower", 1, f"{t}/l2/a/b/g")
    assert where(got[f"{m}/nd/a2/b/c/f"]) == ("lower", 2, f"{t}/l3/a/b/c/f")
    assert ref(got[f"{m}/nd/a2/b"]["origin"]) == ("lower", 1, f"{t}/l2/a/b")
    assert ref(got[f"{m}/hlink2"]["origin"]) == ("lower", 2, f"{t}/l3/hl/h")
    assert ref(got[f"{m}/hl/h"]["origin"]) == ("lower", 2, f"{t}/l3/hl/h")
    assert ref(got[f"{m}/rn2"]["origin"]) == ("lower", 0, f"{t}/l1/rn")
    file3 = got[f"{m}/file3"]
    assert (file3["kind"], file3["opaque"]) == ("dir", True)
    assert [ref(x) for x in file3["hidden"]] == [("lower", 2, f"{t}/l3/file3")]
    assert (got[f"{m}/typechg"]["kind"], where(got[f"{m}/typechg"])) == (
        "symlink", ("upper", 0, f"{t}/u/typechg"))
    sd = got[f"{m}/sd"]
    assert ref(sd["origin"]) == ("lower", 2, f"{t}/l3/sd") and not sd["opaque"]
    assert where(got[f"{m}/sd/x"]) == ("lower", 2, f"{t}/l3/sd/x")
    assert where(got[f"{m}/deep/o1"]) == ("upper", 0, f"{t}/u/deep/o1")
    assert got[f"{m}/deep/o1"]["merged"] == []


def test_whiteouts_of_a_history_name_what_they_hide(history: Scenario) -> None:
    sc, t = history, str(history.tmp)
    m = f"{t}/m"
    got = which_json(sc.pid, f"{m}/a", f"{m}/d1", f"{m}/d2", f"{m}/rn", f"{m}/file2",
                     f"{m}/ww")
    assert got["errors"] == []
    hidden = {p: [ref(x) for x in got[p]["hidden"]] for p in got if p != "errors"}
    assert all(got[p]["kind"] == "whiteout" and got[p]["whiteout"] for p in hidden)
    assert {p: where(got[p])[:2] for p in hidden} == {
        **{p: ("upper", 0) for p in hidden if p != f"{m}/ww"}, f"{m}/ww": ("lower", 1)}
    assert hidden == {
        f"{m}/a": [("lower", 0, f"{t}/l1/a"), ("lower", 1, f"{t}/l2/a"),
                   ("lower", 2, f"{t}/l3/a")],
        f"{m}/d1": [("lower", 2, f"{t}/l3/d1")],
        f"{m}/d2": [("lower", 1, f"{t}/l2/d2"), ("lower", 2, f"{t}/l3/d2")],
        f"{m}/rn": [("lower", 0, f"{t}/l1/rn")],
        f"{m}/file2": [("lower", 1, f"{t}/l2/file2")],
        f"{m}/ww": [("lower", 2, f"{t}/l3/ww")],  # the middle layer's own whiteout
    }


# metacopy + index: chmod/chown (metadata copy-up), a later write (full copy-up), renamed
# files, a hard link copied up through one name, a renamed dir with a chmod and a write inside.
META = r"""
mkdir -p $T/l1 $T/l2 $T/u $T/w $T/m
cd $T/l2; mkdir -p dm sub/deeper; echo l2-mc1 > mc1; echo l2-mc2 > mc2; echo l2-mc3 > mc3
echo l2-mv > mvf; echo l2-h > h1; ln h1 h2; echo l2-dmf > dm/f; echo l2-dmg > dm/g
echo l2-s > sub/deeper/s; echo l2-w > mcw; echo l2-x > mcx; echo l2-y > dm/y
cd $T/l1; mkdir -p sub; echo l1-top > top; echo l1-s2 > sub/s2
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w,\
metacopy=on,index=on,redirect_dir=on $T/m
cd $T/m
chmod 600 mc1; chown 2:2 mc2; chmod 600 mc3; echo more >> mc3
mv mvf mvf2; chmod 640 mvf2
chmod 600 h1
chmod 600 mcw; mv mcw mcw2; mv mcw2 mcw
mv dm dm2; chmod 600 dm2/f; mv dm2/g dm2/g2; chmod 600 dm2/y; echo zz >> dm2/y
chmod 700 sub/deeper/s
touch top
mv mcx sub/mcx
cd /
echo "ready {\"merged\": \"$T/m\"}"
exec sleep 600
"""


@pytest.fixture(scope="module")
def meta() -> Iterator[Scenario]:
    with running(META, bare=True) as scenario:
        yield scenario


def test_metacopy_files_name_their_metadata_and_data(meta: Scenario) -> None:
    sc, t = meta, str(meta.tmp)
    m = f"{t}/m"
    names = ["mc1", "mc2", "mc3", "mvf2", "h1", "mcw", "dm2/f", "dm2/y", "sub/deeper/s",
             "sub/mcx", "top", "sub/s2"]
    got = which_json(sc.pid, *[f"{m}/{n}" for n in names])
    assert got["errors"] == []

    def facts(name: str) -> tuple:
        r = got[f"{m}/{name}"]
        return (where(r), r["metacopy"], ref(r["data"]), ref(r["origin"]), r["redirect"])

    up, l2 = f"{t}/u", f"{t}/l2"
    assert facts("mc1") == (("upper", 0, f"{up}/mc1"), True, ("lower", 1, f"{l2}/mc1"),
                            ("lower", 1, f"{l2}/mc1"), None)
    assert facts("mc2") == (("upper", 0, f"{up}/mc2"), True, ("lower", 1, f"{l2}/mc2"),
                            ("lower", 1, f"{l2}/mc2"), None)
    assert facts("mc3") == (("upper", 0, f"{up}/mc3"), False, None,
                            ("lower", 1, f"{l2}/mc3"), None)
    assert facts("mvf2") == (("upper", 0, f"{up}/mvf2"), True, ("lower", 1, f"{l2}/mvf"),
                             ("lower", 1, f"{l2}/mvf"), "mvf")
    assert facts("mcw") == (("upper", 0, f"{up}/mcw"), True, ("lower", 1, f"{l2}/mcw"),
                            ("lower", 1, f"{l2}/mcw"), "mcw")
    assert facts("dm2/f") == (("upper", 0, f"{up}/dm2/f"), True, ("lower", 1, f"{l2}/dm/f"),
                              ("lower", 1, f"{l2}/dm/f"), None)
    assert facts("dm2/y") == (("upper", 0, f"{up}/dm2/y"), False, None,
                              ("lower", 1, f"{l2}/dm/y"), None)
    assert facts("sub/mcx") == (("upper", 0, f"{up}/sub/mcx"), True, ("lower", 1, f"{l2}/mcx"),
                                ("lower", 1, f"{l2}/mcx"), "/mcx")
    assert facts("sub/deeper/s")[:3] == (("upper", 0, f"{up}/sub/deeper/s"), True,
                                         ("lower", 1, f"{l2}/sub/deeper/s"))
    assert facts("top") == (("upper", 0, f"{up}/top"), False, None,
                            ("lower", 0, f"{t}/l1/top"), None)
    assert where(got[f"{m}/sub/s2"]) == ("lower", 0, f"{t}/l1/sub/s2")
    for name in names:
        assert _served_content_agrees(sc, got[f"{m}/{name}"]), name
        assert proof(got[f"{m}/{name}"]) == ("object-handle", "proven"), name


def test_hard_link_served_from_a_metacopy_index_entry(meta: Scenario) -> None:
    sc, t = meta, str(meta.tmp)
    h2 = which_json(sc.pid, f"{t}/m/h2")[f"{t}/m/h2"]
    assert h2["layer"]["role"] == "upper" and h2["index_entry"] == h2["real_path"]
    assert h2["real_path"].startswith(f"{t}/w/index/")
    assert ref(h2["origin"]) == ("lower", 1, f"{t}/l2/h2")
    assert h2["metacopy"] is True
    assert ref(h2["data"]) == ("lower", 1, f"{t}/l2/h2")
    assert _served_content_agrees(sc, h2)


def test_metacopy_file_renamed_inside_a_renamed_dir_finds_its_data(meta: Scenario) -> None:
    sc, t = meta, str(meta.tmp)
    g2 = which_json(sc.pid, f"{t}/m/dm2/g2")[f"{t}/m/dm2/g2"]
    assert (where(g2), g2["metacopy"], g2["redirect"]) == (
        ("upper", 0, f"{t}/u/dm2/g2"), True, "g")
    assert ref(g2["data"]) == ("lower", 1, f"{t}/l2/dm/g")


def test_inspection_changes_nothing_on_any_layer(meta: Scenario) -> None:
    sc, t = meta, str(meta.tmp)
    seen = f"/proc/{sc.pid}/root{t}"
    paths = _all_paths(sc, f"{t}/m")  # reading the merged dirs may touch atimes: before
    before = {d: quiet_snapshot(f"{seen}/{d}") for d in ("l1", "l2", "u", "w")}
    which_json(sc.pid, *paths)
    fds_json(sc.pid)
    run_cli("which", "--pid", str(sc.pid), *paths)
    assert {d: quiet_snapshot(f"{seen}/{d}") for d in ("l1", "l2", "u", "w")} == before


NAMES = r"""
mkdir -p $T/l1 $T/l2 $T/u $T/w $T/m
cd $T/l2; mkdir -p "$(printf 'd\377ir')" realdir; echo x > "$(printf 'd\377ir/f\nl')"
ln -s realdir sdir; echo r > realdir/r; ln -s /etc/passwd abs
cd $T/l1; echo 1 > "$(printf 'n\377')"
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
cd $T/m; echo y >> "$(printf 'd\377ir/f\nl')"; rm sdir; mkdir sdir; echo s > sdir/s
cd /
echo "ready {\"merged\": \"$T/m\"}"
exec sleep 600
"""


def test_non_utf8_names_symlinks_and_a_symlink_replaced_by_a_dir() -> None:
    with running(NAMES, bare=True) as sc:
        t = str(sc.tmp)
        m = f"{t}/m"
        paths = [f"{m}/d\udcffir/f\nl", f"{m}/n\udcff", f"{m}/abs", f"{m}/sdir",
                 f"{m}/realdir/../realdir/r"]
        done = subprocess.run(
            [sys.executable, "-m", "ovlinspect", "which", "--pid", str(sc.pid), *paths,
             "--json"], capture_output=True, cwd="/", timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    doc = json.loads(done.stdout)
    assert doc["errors"] == []
    got = {text_from_wire(r["path"]): r for r in doc["results"]}

    def placed(path: str) -> tuple:
        r = got[path]
        return (r["kind"], r["layer"]["role"], r["layer"]["index"], text_from_wire(r["real_path"]))

    assert placed(f"{m}/d\udcffir/f\nl") == ("file", "upper", 0, f"{t}/u/d\udcffir/f\nl")
    origin = got[f"{m}/d\udcffir/f\nl"]["origin"]
    assert text_from_wire(origin["real_path"]) == f"{t}/l2/d\udcffir/f\nl"
    assert placed(f"{m}/n\udcff") == ("file", "lower", 0, f"{t}/l1/n\udcff")
    assert placed(f"{m}/abs") == ("symlink", "lower", 1, f"{t}/l2/abs")  # not followed
    assert placed(f"{m}/sdir") == ("dir", "upper", 0, f"{t}/u/sdir")
    assert got[f"{m}/sdir"]["opaque"] is True
    assert [ref(x) for x in got[f"{m}/sdir"]["hidden"]] == [("lower", 1, f"{t}/l2/sdir")]
    assert placed(f"{m}/realdir/r") == ("file", "lower", 1, f"{t}/l2/realdir/r")


# A holder that opens fds and watches, then changes the objects behind them: a file copied up
# after it was opened read-only, a file copied up then deleted, a lower file deleted, an O_PATH
# fd, a renamed file, directory fds, memfd/pipe/socket, many fds on one file; inotify watches
# on files later copied up, renamed, on a directory below the root, on a renamed directory.
FDS = r"""
mkdir -p $T/l $T/u $T/w $T/m
cd $T/l; mkdir -p d/x dd; for f in a b c e g wr wc dd/f; do echo l-$f > $f; done
mount -t overlay overlay -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w,redirect_dir=on $T/m
cat > $T/hold.py <<'PYEOF'
import ctypes, json, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
M = sys.argv[1]
f = {}
f["a"] = os.open(M + "/a", os.O_RDONLY)
with open(M + "/a", "a") as out:
    out.write("more\n")
with open(M + "/b", "w") as out:
    out.write("upper copy\n")
f["b"] = os.open(M + "/b", os.O_RDONLY)
os.unlink(M + "/b")
f["c"] = os.open(M + "/c", os.O_RDONLY)
os.unlink(M + "/c")
f["e"] = os.open(M + "/e", os.O_PATH)
f["g"] = os.open(M + "/g", os.O_RDONLY)
os.rename(M + "/g", M + "/g2")
f["d"] = os.open(M + "/d", os.O_RDONLY | os.O_DIRECTORY)
f["dx"] = os.open(M + "/d/x", os.O_PATH)
f["many"] = [os.open(M + "/e", os.O_RDONLY) for _ in range(300)]
mem = os.memfd_create("m"); pipe = os.pipe(); sock = socket.socket()
f["other"] = [mem, *pipe, sock.fileno()]
ifd = libc.inotify_init1(0)
f["inotify"] = ifd
names = ("wr", "wc", "d/x", "dd")
f["wd"] = {n: libc.inotify_add_watch(ifd, (M + "/" + n).encode(), 2) for n in names}
os.rename(M + "/wr", M + "/wr2")
os.rename(M + "/dd", M + "/dd2")
with open(M + "/wc", "a") as out:
    out.write("x\n")
print("ready " + json.dumps(f), flush=True)
time.sleep(600)
PYEOF
cd /
exec "$PY" $T/hold.py $T/m
"""


@pytest.fixture(scope="module")
def held() -> Iterator[Scenario]:
    with running(f'PY="{sys.executable}"\n' + FDS, bare=True) as scenario:
        yield scenario


def test_fds_whose_objects_changed_after_open(held: Scenario) -> None:
    sc, t = held, str(held.tmp)
    doc = fds_json(sc.pid)
    fds = {r["fd"]: r for r in doc["fds"]}
    info = sc.info
    assert doc["errors"] == []
    assert set(fds) == {info[k] for k in ("a", "b", "c", "e", "g", "d", "dx")} | set(info["many"])
    assert not set(info["other"]) & set(fds)
    a = fds[info["a"]]  # opened before the copy-up: reads now go to the upper copy
    assert (where(a), ref(a["origin"])) == (("upper", 0, f"{t}/u/a"), ("lower", 0, f"{t}/l/a"))
    c = fds[info["c"]]  # deleted, never copied up: still the lower file
    assert (c["path"], where(c)) == (f"{t}/m/c (deleted)", ("lower", 0, f"{t}/l/c"))
    assert where(fds[info["e"]]) == ("lower", 0, f"{t}/l/e")
    g = fds[info["g"]]  # renamed: copied up under its new name
    assert (g["path"], where(g)) == (f"{t}/m/g2", ("upper", 0, f"{t}/u/g2"))
    assert ref(g["origin"]) == ("lower", 0, f"{t}/l/g")
    assert (fds[info["d"]]["kind"], where(fds[info["d"]])) == ("dir", ("lower", 0, f"{t}/l/d"))
    assert where(fds[info["dx"]]) == ("lower", 0, f"{t}/l/d/x")
    assert {where(fds[fd]) for fd in info["many"]} == {("lower", 0, f"{t}/l/e")}
    watches = {w["wd"]: w for w in doc["watches"]}
    wc = watches[info["wd"]["wc"]]
    assert (wc["path"], where(wc)) == (f"{t}/m/wc", ("upper", 0, f"{t}/u/wc"))
    assert ref(wc["origin"]) == ("lower", 0, f"{t}/l/wc")
    dx = watches[info["wd"]["d/x"]]
    assert (dx["kind"], where(dx)) == ("dir", ("lower", 0, f"{t}/l/d/x"))


def test_fd_on_a_copied_up_then_deleted_file_is_not_the_lower(held: Scenario) -> None:
    sc, t = held, str(held.tmp)
    b = {r["fd"]: r for r in fds_json(sc.pid)["fds"]}[sc.info["b"]]
    with open(f"/proc/{sc.pid}/fd/{sc.info['b']}", "rb") as handle:
        assert handle.read() == b"upper copy\n"  # not the lower's l-b
    assert b["path"] == f"{t}/m/b (deleted)"
    assert b["layer"] is None or b["layer"]["role"] == "upper", where(b)


def test_watch_on_a_renamed_file_is_its_upper_copy(held: Scenario) -> None:
    sc, t = held, str(held.tmp)
    watches = {w["wd"]: w for w in fds_json(sc.pid)["watches"]}
    wr = watches[sc.info["wd"]["wr"]]
    assert wr["kind"] == "file"
    assert wr["layer"] is None or where(wr) == ("upper", 0, f"{t}/u/wr2"), where(wr)


def test_watch_on_a_renamed_directory_is_the_merged_dir(held: Scenario) -> None:
    sc, t = held, str(held.tmp)
    watches = {w["wd"]: w for w in fds_json(sc.pid)["watches"]}
    dd = watches[sc.info["wd"]["dd"]]
    assert dd["kind"] == "dir"
    assert dd["layer"] is None or where(dd) == ("upper", 0, f"{t}/u/dd2"), where(dd)


# An editor's save (vim's default "backupcopy"): rename the file to a backup, write a new file
# under the old name.  An inotify watch follows the inode, i.e. the backup.
SAVE = r"""
mkdir -p $T/l $T/u $T/w $T/m
echo l-v > $T/l/v; echo l-z > $T/l/z
mount -t overlay overlay -o lowerdir=$T/l,upperdir=$T/u,workdir=$T/w $T/m
cat > $T/h.py <<'PYEOF'
import ctypes, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
M = sys.argv[1]
ifd = libc.inotify_init1(0)
wd = {n: libc.inotify_add_watch(ifd, (M + "/" + n).encode(), 2) for n in ("v", "z")}
with open(M + "/z", "a") as out:
    out.write("more\n")  # z is copied up before the save
for n in ("v", "z"):
    os.rename(M + "/" + n, M + "/" + n + "~")
    with open(M + "/" + n, "w") as out:
        out.write("new\n")
print("ready " + json.dumps({"inotify": ifd, "wd": wd}), flush=True)
time.sleep(600)
PYEOF
cd /
exec "$PY" $T/h.py $T/m
"""


def test_watch_after_an_editor_save_names_the_backup() -> None:
    with running(f'PY="{sys.executable}"\n' + SAVE, bare=True) as sc:
        t = str(sc.tmp)
        watches = {w["wd"]: w for w in fds_json(sc.pid)["watches"]}
    v, z = watches[sc.info["wd"]["v"]], watches[sc.info["wd"]["z"]]
    # the watched inodes are v~ (copied up by the rename) and z~ (copied up by the write)
    assert v["layer"] is None or where(v) == ("upper", 0, f"{t}/u/v~"), where(v)
    assert z["layer"] is None or where(z) == ("upper", 0, f"{t}/u/z~"), where(z)
    assert not (v["path"] == f"{t}/m/v" and v["copied_up"])  # the new v is no copy of l/v


# A process chrooted into an overlay (build roots, rescue shells): same mount namespace, its root
# is the merged dir.  /proc/PID/fd/N then reads as the HOST path of the object.
CHROOT = r"""
mkdir -p $T/l1/etc $T/l1/usr $T/l1/proc $T/l1/data $T/l1/tmp $T/u $T/w $T/m
for d in bin lib lib64 sbin; do [ -e /$d ] && ln -s usr/$d $T/l1/$d; done
echo a > $T/l1/etc/conf; echo d > $T/l1/data/f
mount -t overlay overlay -o lowerdir=$T/l1,upperdir=$T/u,workdir=$T/w $T/m
echo changed > $T/m/etc/conf
mount --rbind /usr $T/m/usr
cat > $T/m/tmp/h.py <<'PYEOF'
import json, os, time
f = {"conf": os.open("/etc/conf", os.O_RDONLY), "data": os.open("/data/f", os.O_RDONLY)}
print("ready " + json.dumps(f), flush=True)
time.sleep(600)
PYEOF
cd /
exec chroot $T/m /usr/bin/python3 /tmp/h.py
"""


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_chrooted_process_which_by_its_own_paths() -> None:
    with running(CHROOT, bare=True) as sc:
        t = str(sc.tmp)
        got = which_json(sc.pid, "/etc/conf", "/data/f")
    assert got["errors"] == []
    assert where(got["/etc/conf"]) == ("upper", 0, f"{t}/u/etc/conf")
    assert ref(got["/etc/conf"]["origin"]) == ("lower", 0, f"{t}/l1/etc/conf")
    assert where(got["/data/f"]) == ("lower", 0, f"{t}/l1/data/f")


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3")
def test_chrooted_process_fd_on_a_copied_up_file_is_the_upper() -> None:
    with running(CHROOT, bare=True) as sc:
        t = str(sc.tmp)
        fds = {r["fd"]: r for r in fds_json(sc.pid)["fds"]}
        with open(f"/proc/{sc.pid}/fd/{sc.info['conf']}", "rb") as handle:
            assert handle.read() == b"changed\n"
    assert where(fds[sc.info["data"]]) == ("lower", 0, f"{t}/l1/data/f")
    conf = fds[sc.info["conf"]]
    assert conf["layer"] is None or where(conf) == ("upper", 0, f"{t}/u/etc/conf"), where(conf)
