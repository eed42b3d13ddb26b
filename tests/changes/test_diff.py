"""``ovlinspect diff`` against the naive-diff oracle, scenario by scenario.

Each scenario builds an overlay and makes its changes inside a private mount namespace, and
mounts a view of the lowers alone for the oracle (a lower-only overlay; the lower itself when
there is only one).  The test runs ``ovlinspect diff --pid PID MOUNT --json`` as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from engine_kit import snapshot
from oracle import content, naive

from ovlinspect.model.codec import text_from_wire

from scenario import REPO, run_cli, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

MARK = {"added": "A", "changed": "C", "metadata": "C", "deleted": "D"}

LOWER = """
mkdir -p $T/l1/dir/sub $T/l1/gone/deep $T/l1/repl/old $T/l1/mvme/in $T/l1/meta \
    $T/u $T/w $T/m $T/o
echo a > $T/l1/file; echo b > $T/l1/dir/keep; echo c > $T/l1/dir/sub/x
echo d > $T/l1/gone/deep/y; echo e > $T/l1/repl/old/z; echo f > $T/l1/repl/kept
echo g > $T/l1/mvme/in/w; echo h > $T/l1/mvme/top; echo i > $T/l1/rmme
echo j > $T/l1/meta/m1; echo k > $T/l1/meta/m2; echo l > $T/l1/linkme
ln -s file $T/l1/sym
"""

CHANGES = """
cd $T/m
echo new > added; mkdir -p newdir/inner; echo n > newdir/inner/f
echo more >> file
rm rmme
rm -rf gone
rm -rf repl; mkdir repl; echo now > repl/fresh; echo again > repl/kept
ln linkme hardlink
mknod fifo p; mknod chr c 1 3
echo x > dir/sub/added-deep
touch "with space" "$(printf 'new\\nline')" "$(printf 'bad\\377byte')"
chmod 600 meta/m1; chown 1:1 meta/m2
cd /
"""


def _scenario(opts: str, changes: str = CHANGES, lower: str = LOWER) -> str:
    return (lower + f"mount -t overlay overlay -o lowerdir=$T/l1,upperdir=$T/u,"
            f"workdir=$T/w{opts} $T/m\n" + changes
            + 'echo "ready {\\"merged\\": \\"$T/m\\", \\"oracle\\": \\"$T/l1\\"}"\n'
            "exec sleep 600\n")


def diff_json(pid: int, mount: str, rc: int = 0) -> dict:
    done = run_cli("diff", "--pid", str(pid), mount, "--json", check_rc=rc)
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def changes_of(doc: dict) -> list[dict]:
    assert set(doc) == {"schema", "mounts"} and doc["schema"] == 1 and len(doc["mounts"]) == 1
    assert set(doc["mounts"][0]) == {"mount_point", "mount_id", "changes", "notes"}
    out = []
    for item in doc["mounts"][0]["changes"]:
        assert set(item) == {"path", "kind", "from", "type"}
        assert item["type"] in ("file", "dir", "symlink", "other")
        out.append({**item, "path": text_from_wire(item["path"]),
                    "from": None if item["from"] is None else text_from_wire(item["from"])})
    return out


def check_against_oracle(pid: int, merged: str, oracle: str,
                         renames: dict[str, str] | None = None) -> list[dict]:
    """Run the diff, compare it with the naive oracle; return the changes."""
    changes = changes_of(diff_json(pid, merged))
    paths = [c["path"] for c in changes]
    assert paths == sorted(paths, key=lambda p: [os.fsencode(x) for x in p.split("/")])
    got_renames = {c["path"]: c["from"] for c in changes if c["kind"] == "renamed"}
    assert got_renames == (renames or {})
    root = f"/proc/{pid}/root"
    want = naive(root + merged, root + oracle, got_renames)
    for new, old in got_renames.items():
        assert os.path.lexists(root + merged + new) and os.path.lexists(root + oracle + old)
        gone = [old[:i] for i in range(len(old) + 1) if i == len(old) or old[i] == "/"]
        assert any(want.get(p) == "D" for p in gone)  # itself, or folded into a deleted parent
        want.pop(new, None)
    got = {c["path"]: MARK[c["kind"]] for c in changes if c["kind"] != "renamed"}
    assert got == want
    for c in changes:
        if c["kind"] == "metadata":  # data still the lower's
            assert content(root + merged + c["path"]) == content(root + oracle + c["path"])
    return changes


@pytest.mark.parametrize("opts", ["", ",redirect_dir=on", ",metacopy=on",
                                  ",redirect_dir=off,index=on"])
def test_changes_match_oracle(opts: str) -> None:
    with running(_scenario(opts)) as sc:
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    kinds = {c["path"]: c["kind"] for c in changes}
    assert kinds["/added"] == "added" and kinds["/newdir/inner/f"] == "added"
    assert kinds["/file"] == "changed" and kinds["/rmme"] == "deleted"
    assert kinds["/gone"] == "deleted" and "/gone/deep" not in kinds
    # an opaque directory over a lower one: never a D of itself
    assert kinds["/repl"] == "changed" and kinds["/repl/old"] == "deleted"
    assert kinds["/repl/fresh"] == "added" and kinds["/repl/kept"] == "changed"
    assert kinds["/hardlink"] == "added" and kinds["/dir"] == "changed"
    assert kinds["/dir/sub"] == "changed"  # parents of a change are C
    assert kinds["/fifo"] == kinds["/chr"] == "added"
    assert {c["type"] for c in changes if c["path"] in ("/fifo", "/chr")} == {"other"}
    assert {"/with space", "/new\nline", "/bad\udcffbyte"} <= set(kinds)
    metacopy = "metacopy=on" in opts
    assert kinds["/meta/m1"] == kinds["/meta/m2"] == ("metadata" if metacopy else "changed")
    assert kinds["/linkme"] == ("metadata" if metacopy else "changed")


RENAME = """
cd $T/m
mv mvme moved
echo w2 > moved/in/w
echo t2 > moved/added-in-moved
rm moved/top
cd /
"""


@pytest.mark.parametrize("redirect", ["on", "off"])
def test_renamed_directory(redirect: str) -> None:
    with running(_scenario(f",redirect_dir={redirect}", RENAME)) as sc:
        renames = {"/moved": "/mvme"} if redirect == "on" else {}
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"], renames)
    kinds = {c["path"]: c["kind"] for c in changes}
    assert kinds["/mvme"] == "deleted"
    if redirect == "on":
        assert kinds["/moved"] == "renamed"
        assert kinds["/moved/in/w"] == "changed" and kinds["/moved/top"] == "deleted"
        assert kinds["/moved/added-in-moved"] == "added"
    else:  # copied up as a whole new tree
        assert kinds["/moved"] == kinds["/moved/in/w"] == kinds["/moved/in"] == "added"


THREE = """
mkdir -p $T/l1 $T/l2 $T/l3/d $T/l3/hid/sub $T/u $T/w $T/m $T/o
echo 3 > $T/l3/d/a; echo 3 > $T/l3/d/b; echo 3 > $T/l3/d/c; echo 3 > $T/l3/hid/sub/f
mkdir -p $T/l2/d; mknod $T/l2/d/a c 0 0; mknod $T/l2/hid c 0 0; echo 2 > $T/l2/d/mid
echo 1 > $T/l1/top; : > $T/l2/d/c
python3 -c "import os, sys; os.setxattr(sys.argv[1] + '/d', 'trusted.overlay.opaque', b'x'); \
os.setxattr(sys.argv[1] + '/d/c', 'trusted.overlay.whiteout', b'')" $T/l2
mount -t overlay overlay -o lowerdir=$T/l1:$T/l2:$T/l3,upperdir=$T/u,workdir=$T/w $T/m
mount -t overlay overlay -o ro,lowerdir=$T/l1:$T/l2:$T/l3 $T/o
cd $T/m
test ! -e d/c; rm d/b; echo new > d/a; echo new > d/c
mkdir hid; echo x > hid/f; rm d/mid; echo t > top
cd /
echo "ready {\\"merged\\": \\"$T/m\\", \\"oracle\\": \\"$T/o\\"}"
exec sleep 600
"""


def test_three_lowers_middle_whiteouts() -> None:
    with running(THREE) as sc:
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    kinds = {c["path"]: c["kind"] for c in changes}
    # a/hid were deleted by the middle layer: the bottom's objects are not "changed"
    assert kinds["/d/a"] == "added" and kinds["/hid"] == "added" and kinds["/hid/f"] == "added"
    assert kinds["/d/c"] == "added"  # the middle layer's whiteout in xattr form hid it
    assert "/hid/sub" not in kinds
    assert kinds["/d/b"] == kinds["/d/mid"] == "deleted" and kinds["/top"] == "changed"


def _layers(tmp: str) -> dict[str, tuple]:
    out = {}
    for name in ("u", "w", "l1"):
        for rel, entry in snapshot(f"{tmp}/{name}").items():
            st = os.lstat(os.path.join(tmp, name, rel))
            out[f"{name}/{rel}"] = (entry, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
    return out


def test_read_only_nothing_changes_on_any_layer() -> None:
    with running(_scenario(",metacopy=on,index=on,nfs_export=off", CHANGES + RENAME)) as sc:
        before = _layers(str(sc.tmp))
        run_cli("diff", "--pid", str(sc.pid), sc.info["merged"], "--json")
        run_cli("diff", "--pid", str(sc.pid))
        assert _layers(str(sc.tmp)) == before


def test_text_output_one_line_per_change() -> None:
    with running(_scenario(",redirect_dir=on", CHANGES + RENAME)) as sc:
        done = run_cli("diff", "--pid", str(sc.pid), sc.info["merged"])
        doc = changes_of(diff_json(sc.pid, sc.info["merged"]))
    lines = done.stdout.splitlines()
    assert len(lines) == len(doc)
    assert "A /new\\nline" in lines and "A /bad\\xffbyte" in lines and "A /with space" in lines
    assert "R /mvme -> /moved" in lines and "D /rmme" in lines and "C /file" in lines


def test_whole_namespace_has_a_header_per_mount() -> None:
    with running(_scenario("")) as sc:
        # Other overlays of the namespace (a container host's) may be unreadable: exit 2 then.
        doc = json.loads(run_cli("diff", "--pid", str(sc.pid), "--json", check_rc=None).stdout)
        text = run_cli("diff", "--pid", str(sc.pid), check_rc=None).stdout
    ours = [m for m in doc["mounts"] if m["mount_point"] == sc.info["merged"]]
    assert len(ours) == 1 and ours[0]["changes"] and not ours[0]["notes"]
    assert any(line.startswith(f"# {sc.info['merged']} (mount ") for line in text.splitlines())


MOVED_UPPER = """
mkdir -p $T/l1 $T/u $T/w $T/m
echo a > $T/l1/f
mount -t overlay overlay -o lowerdir=$T/l1,upperdir=$T/u,workdir=$T/w $T/m
echo b > $T/m/new
mv $T/u $T/u-real
echo "ready {\\"merged\\": \\"$T/m\\", \\"real\\": \\"$T/u-real\\"}"
exec sleep 600
"""


def test_declared_upper_not_in_use_diffs_the_real_one() -> None:
    with running(MOVED_UPPER) as sc:
        doc = diff_json(sc.pid, sc.info["merged"])
    mount = doc["mounts"][0]
    assert [(c["path"], c["kind"]) for c in mount["changes"]] == [("/new", "added")]
    assert any(sc.info["real"] in note for note in mount["notes"])


COVERED = """
mkdir -p $T/l1 $T/u $T/w $T/m
echo a > $T/l1/f
mount -t overlay overlay -o lowerdir=$T/l1,upperdir=$T/u,workdir=$T/w $T/m
echo b > $T/m/new
mount -t tmpfs cover $T/u
echo "ready {\\"merged\\": \\"$T/m\\"}"
exec sleep 600
"""


def test_covered_upper_is_read_where_the_handle_proves_it() -> None:
    # The namespace's own path is covered by a tmpfs; the host's view still reaches the real
    # upper, and the overlay root's PATH_UPPER handle proves it is that directory.
    with running(COVERED) as sc:
        mount = diff_json(sc.pid, sc.info["merged"])["mounts"][0]
    assert [(c["path"], c["kind"]) for c in mount["changes"]] == [("/new", "added")]
    assert mount["notes"]


DETACHED = """
mkdir -p $T/src $T/m
mount -t tmpfs src $T/src
mkdir -p $T/src/l1 $T/src/u $T/src/w
echo a > $T/src/l1/f
mount -t overlay overlay -o lowerdir=$T/src/l1,upperdir=$T/src/u,workdir=$T/src/w $T/m
echo b > $T/m/new
umount -l $T/src
echo "ready {\\"merged\\": \\"$T/m\\"}"
exec sleep 600
"""


def test_upper_that_cannot_be_reached_is_refused() -> None:
    with running(DETACHED) as sc:
        doc = diff_json(sc.pid, sc.info["merged"], rc=2)
        text = run_cli("diff", "--pid", str(sc.pid), sc.info["merged"], check_rc=2)
    assert doc["mounts"][0]["changes"] == [] and doc["mounts"][0]["notes"]
    assert text.stdout == "" and "Traceback" not in text.stderr


def test_bad_input_exits_2() -> None:
    for args in (["--pid", "0"], ["--pid", "999999999"], ["--nope"],
                 ["--pid", str(os.getpid()), "/definitely/not/an/overlay"]):
        done = run_cli("diff", *args, check_rc=2)
        assert "Traceback" not in done.stderr


def test_without_privilege_exits_2() -> None:
    with running(_scenario("")) as sc:
        done = run_cli("diff", "--pid", str(sc.pid), sc.info["merged"], user=65534,
                       check_rc=2)
    assert "Traceback" not in done.stderr and done.stdout == ""


CONTAINER = """
mkdir -p $T/l1/etc $T/l1/usr $T/l1/oldroot $T/l1/proc $T/u $T/w $T/m
for d in bin lib lib64 sbin; do [ -e /$d ] && ln -s usr/$d $T/l1/$d; done
echo a > $T/l1/etc/conf; echo b > $T/l1/etc/gone
mount -t overlay overlay -o lowerdir=$T/l1,upperdir=$T/u,workdir=$T/w $T/m
echo changed > $T/m/etc/conf; rm $T/m/etc/gone; echo new > $T/m/added
mount --rbind /usr $T/m/usr
cd $T/m
pivot_root . oldroot
exec /usr/bin/sh -c 'umount -l /oldroot; echo ready; exec sleep 600'
"""


def test_container_root_from_the_host() -> None:
    # The layers exist only outside the container: they are reopened in the host's view.
    with running(CONTAINER) as sc:
        doc = diff_json(sc.pid, "/")
    got = [(c["path"], c["kind"]) for c in doc["mounts"][0]["changes"]]
    assert got == [("/added", "added"), ("/etc", "changed"), ("/etc/conf", "changed"),
                   ("/etc/gone", "deleted")]


NESTED = """
cd $T/m
mv mvme/in mvme/in2
mv mvme mvme2
mkdir newp
mv dir newp/dirmoved
echo changed > newp/dirmoved/keep
cd /
"""


def test_renames_nested_and_into_a_new_directory() -> None:
    # relative redirects below a renamed parent; an absolute one inside a new opaque directory
    with running(_scenario(",redirect_dir=on", NESTED)) as sc:
        renames = {"/mvme2": "/mvme", "/mvme2/in2": "/mvme/in", "/newp/dirmoved": "/dir"}
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"], renames)
    kinds = {c["path"]: c["kind"] for c in changes}
    assert kinds["/newp"] == "added" and kinds["/newp/dirmoved/keep"] == "changed"
    assert kinds["/dir"] == kinds["/mvme"] == kinds["/mvme2/in"] == "deleted"


LOWER_XATTRS = """
mkdir -p $T/l1 $T/mid $T/l2/d $T/l2/e $T/w0 $T/u $T/w $T/m $T/o $T/a
echo 1 > $T/l1/top; echo 2 > $T/l2/d/old; echo 2 > $T/l2/e/f; echo 2 > $T/l2/e/g
# the middle layer is an old container's upper: an opaque d and a renamed e (redirect)
mount -t overlay overlay -o lowerdir=$T/l2,upperdir=$T/mid,workdir=$T/w0,redirect_dir=on $T/a
rm -rf $T/a/d; mkdir $T/a/d; echo x > $T/a/d/new; mv $T/a/e $T/a/e2
umount $T/a
L=lowerdir=$T/l1:$T/mid:$T/l2,redirect_dir=on
mount -t overlay overlay -o $L,upperdir=$T/u,workdir=$T/w $T/m
mount -t overlay overlay -o ro,$L $T/o
cd $T/m
echo y > d/old; echo y > d/new; echo y > e2/f; mkdir e; echo y > e/f; rm e2/g
cd /
echo "ready {\\"merged\\": \\"$T/m\\", \\"oracle\\": \\"$T/o\\"}"
exec sleep 600
"""


def test_opaque_and_redirect_in_a_lower_layer() -> None:
    with running(LOWER_XATTRS) as sc:
        changes = check_against_oracle(sc.pid, sc.info["merged"], sc.info["oracle"])
    kinds = {c["path"]: c["kind"] for c in changes}
    assert kinds["/d/old"] == "added"       # hidden by the middle layer's opaque d
    assert kinds["/d/new"] == "changed"
    assert kinds["/e2/f"] == "changed"      # found through the middle layer's redirect
    assert kinds["/e2/g"] == "deleted"
    assert kinds["/e"] == kinds["/e/f"] == "added"


def test_from_inside_the_namespace_and_a_lower_only_mount() -> None:
    with running(THREE) as sc:
        inside = subprocess.run(
            ["nsenter", "-t", str(sc.pid), "-m", sys.executable, "-m", "ovlinspect", "diff",
             sc.info["merged"], "--json"], capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd="/")
        outside = diff_json(sc.pid, sc.info["merged"])
        lower_only = diff_json(sc.pid, sc.info["oracle"])
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["mounts"][0]["changes"] == outside["mounts"][0]["changes"]
    assert lower_only["mounts"][0]["changes"] == [] and lower_only["mounts"][0]["notes"]


def test_library_pages_the_changes() -> None:
    from ovlinspect.changes.run import overlay_changes

    with running(_scenario("")) as sc:
        whole = overlay_changes(sc.pid, sc.info["merged"])
        page = overlay_changes(sc.pid, sc.info["merged"], limit=3)
    assert whole.error is None and len(whole.changes) > 3
    assert page.changes == whole.changes[:3] and page.notes


def test_without_cap_sys_admin_the_xattrs_are_unreadable_exit_2() -> None:
    # root, but trusted.overlay.* cannot be read: no diff rather than one that misses whiteouts
    with running(_scenario("")) as sc:
        done = subprocess.run(
            ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", sys.executable,
             "-m", "ovlinspect", "diff", "--pid", str(sc.pid), sc.info["merged"], "--json"],
            capture_output=True, text=True, timeout=120, cwd="/",
            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    mount = json.loads(done.stdout)["mounts"][0]
    assert mount["changes"] == [] and mount["notes"]
