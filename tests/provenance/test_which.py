"""``ovlinspect which``: the layer, real path, origin, data, redirect, opaque and whiteout of
objects of a real overlay (new mount API: three lowers, a data-only layer, an upper), built in a
private mount namespace and changed through the overlay as a container would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from engine_kit import needs, script
from provkit import HOLDER, fds_json, proof, ref, where, which_json

from scenario import REPO, Scenario, run_cli, running

pytestmark = needs()

BODY = r"""
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
mkdir -p l0 l1 l2 d0/blobs u w m
echo u > u/fu; echo 0 > l0/f0; echo 1 > l1/f1; echo 2 > l2/f2
printf data > d0/blobs/b1
echo cp > l1/cp; echo own > l2/own
mkdir -p l0/d l1/d l2/ren l1/opq; echo in > l1/d/in; echo r > l2/ren/in; echo o > l1/opq/x
mkdir -p l1/mv; echo mv > l1/mv/in
echo gone > l2/gone
echo hl > l1/hl1; ln l1/hl1 l1/hl2
"$PY" - <<'PYEOF'
import os
from ovlinspect.kernel.mountapi import overlay_new_api
# a lower metacopy file whose data is in the data-only layer (as composefs builds them)
open("l0/mc", "w").close()
os.truncate("l0/mc", 4)
os.setxattr("l0/mc", "trusted.overlay.metacopy", b"")
os.setxattr("l0/mc", "trusted.overlay.redirect", b"/blobs/b1")
t = os.getcwd()
overlay_new_api(f"{t}/m", lowers=[f"{t}/l0", f"{t}/l1", f"{t}/l2"], datas=[f"{t}/d0"],
                upper=f"{t}/u", work=f"{t}/w",
                strings={"metacopy": "on", "redirect_dir": "on", "index": "on"})
PYEOF
echo more >> m/cp
chown 1:1 m/own
mv m/ren m/ren2
mkdir m/nd; mv m/mv m/nd/moved
rm -rf m/opq; mkdir m/opq
rm m/gone
echo more >> m/hl1
cd /
M=$T/t/m
""" + HOLDER + r"""
exec "$PY" $T/hold.py "$M/f2,$M/cp" "$M/f1,$M/cp" "$M/f0,$M/cp"
"""


@pytest.fixture(scope="module")
def sc() -> Iterator[Scenario]:
    with running(script(f'PY="{sys.executable}"\n' + BODY), bare=True) as scenario:
        yield scenario


def test_layers_upper_each_lower_and_data_only(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    names = ["fu", "f0", "f1", "f2", "mc"]
    got = which_json(sc.pid, *[f"{t}/m/{n}" for n in names])
    assert got["errors"] == []
    assert where(got[f"{t}/m/fu"]) == ("upper", 0, f"{t}/u/fu")
    assert where(got[f"{t}/m/f0"]) == ("lower", 0, f"{t}/l0/f0")
    assert where(got[f"{t}/m/f1"]) == ("lower", 1, f"{t}/l1/f1")
    assert where(got[f"{t}/m/f2"]) == ("lower", 2, f"{t}/l2/f2")
    for name in ("fu", "f0", "f1", "f2"):
        item = got[f"{t}/m/{name}"]
        assert proof(item) == ("object-handle", "proven"), item
        assert (item["copied_up"], item["origin"], item["metacopy"]) == (False, None, False)
    mc = got[f"{t}/m/mc"]
    assert where(mc) == ("lower", 0, f"{t}/l0/mc")
    assert mc["metacopy"] is True and mc["redirect"] == "/blobs/b1"
    assert ref(mc["data"]) == ("data", 0, f"{t}/d0/blobs/b1")
    assert proof(mc) == ("object-handle", "proven")


def test_copied_up_by_a_write_names_its_origin(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    cp = which_json(sc.pid, f"{t}/m/cp")[f"{t}/m/cp"]
    assert where(cp) == ("upper", 0, f"{t}/u/cp")
    assert cp["copied_up"] is True
    assert ref(cp["origin"]) == ("lower", 1, f"{t}/l1/cp")
    assert (cp["metacopy"], cp["data"]) == (False, None)
    assert proof(cp) == ("object-handle", "proven")


def test_metacopy_after_chown_keeps_data_in_the_lower(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    own = which_json(sc.pid, f"{t}/m/own")[f"{t}/m/own"]
    assert where(own) == ("upper", 0, f"{t}/u/own")
    assert own["copied_up"] is True
    assert ref(own["origin"]) == ("lower", 2, f"{t}/l2/own")
    assert own["metacopy"] is True
    assert ref(own["data"]) == ("lower", 2, f"{t}/l2/own")


def test_renamed_directory_redirects_to_its_lower_contents(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    got = which_json(sc.pid, f"{t}/m/ren2", f"{t}/m/ren2/in", f"{t}/m/d", f"{t}/m/d/in")
    ren = got[f"{t}/m/ren2"]
    assert where(ren) == ("upper", 0, f"{t}/u/ren2")
    assert ren["kind"] == "dir"
    assert ren["redirect"] == "ren"
    assert ren["copied_up"] is True
    assert ref(ren["origin"]) == ("lower", 2, f"{t}/l2/ren")
    assert [ref(m) for m in ren["merged"]] == [("lower", 2, f"{t}/l2/ren")]
    inner = got[f"{t}/m/ren2/in"]
    assert where(inner) == ("lower", 2, f"{t}/l2/ren/in")
    assert proof(inner) == ("object-handle", "proven")
    merged = got[f"{t}/m/d"]
    assert where(merged) == ("lower", 0, f"{t}/l0/d")
    assert [ref(m) for m in merged["merged"]] == [("lower", 1, f"{t}/l1/d")]
    assert where(got[f"{t}/m/d/in"]) == ("lower", 1, f"{t}/l1/d/in")


def test_directory_moved_elsewhere_has_an_absolute_redirect(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    got = which_json(sc.pid, f"{t}/m/nd", f"{t}/m/nd/moved", f"{t}/m/nd/moved/in")
    nd = got[f"{t}/m/nd"]
    assert where(nd) == ("upper", 0, f"{t}/u/nd")
    assert nd["opaque"] is True and nd["hidden"] == []  # opaque, yet nothing below to hide
    moved = got[f"{t}/m/nd/moved"]
    assert where(moved) == ("upper", 0, f"{t}/u/nd/moved")
    assert moved["redirect"] == "/mv"
    assert ref(moved["origin"]) == ("lower", 1, f"{t}/l1/mv")
    assert [ref(m) for m in moved["merged"]] == [("lower", 1, f"{t}/l1/mv")]
    assert where(got[f"{t}/m/nd/moved/in"]) == ("lower", 1, f"{t}/l1/mv/in")


def test_opaque_directory_hides_the_lower_one(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    opq = which_json(sc.pid, f"{t}/m/opq")[f"{t}/m/opq"]
    assert where(opq) == ("upper", 0, f"{t}/u/opq")
    assert opq["opaque"] is True
    assert opq["merged"] == []
    assert [ref(h) for h in opq["hidden"]] == [("lower", 1, f"{t}/l1/opq")]
    assert opq["copied_up"] is False and opq["origin"] is None


def test_whiteout_says_which_layer_deleted_what(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    gone = which_json(sc.pid, f"{t}/m/gone")[f"{t}/m/gone"]
    assert gone["whiteout"] is True and gone["kind"] == "whiteout"
    assert where(gone) == ("upper", 0, f"{t}/u/gone")
    assert [ref(h) for h in gone["hidden"]] == [("lower", 2, f"{t}/l2/gone")]


def test_hard_link_copied_up_through_one_name_is_served_from_the_index(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    got = which_json(sc.pid, f"{t}/m/hl1", f"{t}/m/hl2")
    one, two = got[f"{t}/m/hl1"], got[f"{t}/m/hl2"]
    assert where(one) == ("upper", 0, f"{t}/u/hl1")
    assert ref(one["origin"]) == ("lower", 1, f"{t}/l1/hl1")
    entry = one["index_entry"]
    assert entry is not None and entry.startswith(f"{t}/w/index/")
    # the other name is only in the lower, yet served by the index entry's upper inode
    assert where(two) == ("upper", 0, entry)
    assert two["index_entry"] == entry and two["copied_up"] is True
    assert ref(two["origin"]) == ("lower", 1, f"{t}/l1/hl2")
    assert one["nlink"] == two["nlink"] == 2


def test_fds_and_watches_on_a_lower_only_and_a_copied_up_file(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    doc = fds_json(sc.pid)
    fds = {r["fd"]: r for r in doc["fds"]}
    held = sc.info["fds"]
    lower = fds[held[f"{t}/m/f2"]]
    assert lower["path"] == f"{t}/m/f2"
    assert where(lower) == ("lower", 2, f"{t}/l2/f2")
    assert proof(lower) == ("object-handle", "proven")
    up = fds[held[f"{t}/m/cp"]]
    assert where(up) == ("upper", 0, f"{t}/u/cp")
    assert up["copied_up"] is True and ref(up["origin"]) == ("lower", 1, f"{t}/l1/cp")
    assert set(fds) == set(held.values())
    wds = sc.info["watches"]
    fan = [w for w in doc["watches"] if w["fd"] == sc.info["fanotify"]]
    assert {w["fd"] for w in doc["watches"]} == {sc.info["inotify"], sc.info["fanotify"]}
    assert sorted((w["watch"], w["wd"], w["path"], *where(w)) for w in fan) == [
        ("fanotify", None, f"{t}/m/cp", "upper", 0, f"{t}/u/cp"),
        ("fanotify", None, f"{t}/m/f0", "lower", 0, f"{t}/l0/f0")]
    watches = {w["wd"]: w for w in doc["watches"] if w["watch"] == "inotify"}
    assert set(watches) == set(wds.values())
    f1 = watches[wds[f"{t}/m/f1"]]
    assert f1["watch"] == "inotify"
    assert (f1["path"], where(f1)) == (f"{t}/m/f1", ("lower", 1, f"{t}/l1/f1"))
    assert proof(f1) == ("object-handle", "proven")
    cp = watches[wds[f"{t}/m/cp"]]
    assert (cp["path"], where(cp)) == (f"{t}/m/cp", ("upper", 0, f"{t}/u/cp"))
    assert cp["copied_up"] is True and ref(cp["origin"]) == ("lower", 1, f"{t}/l1/cp")
    assert doc["watches_skipped"]["fds"] == []


def test_not_on_an_overlay_and_gone_processes_exit_2(sc: Scenario) -> None:
    done = run_cli("which", "--pid", str(sc.pid), f"{sc.tmp}", "--json", check_rc=2)
    assert "Traceback" not in done.stderr and done.stderr
    done = run_cli("which", "--pid", str(sc.pid), f"{sc.tmp}/t/m/nothing", check_rc=2)
    assert "Traceback" not in done.stderr
    for cmd in (["which", "--pid", "999999999", "/"], ["fds", "--pid", "999999999"]):
        done = run_cli(*cmd, check_rc=2)
        assert "Traceback" not in done.stderr and done.stderr


def test_browse_one_directory_bounded_with_markers_and_hidden_names(sc: Scenario) -> None:
    from ovlinspect.provenance.browse import hidden_entries, list_dir
    from ovlinspect.provenance.which import inspector

    t = f"{sc.tmp}/t"
    with inspector(sc.pid) as ins:
        session = ins.session(next(m for m, e in ins.by_id.items() if e.mount_point == f"{t}/m"))
        assert session is not None
        first = list_dir(session, "", limit=5)
        assert [e.name for e in first.entries] == ["cp", "d", "f0", "f1", "f2"]
        assert first.more and first.next_after == "f2"
        rest = list_dir(session, "", limit=100, after=first.next_after)
        entries = {e.name: e for e in first.entries + rest.entries}
        assert not rest.more and "gone" not in entries
        assert (entries["cp"].layer.label, entries["cp"].copied_up) == ("upper", True)
        assert entries["f2"].layer.real_path == f"{t}/l2/f2"
        assert (entries["mc"].metacopy, entries["own"].metacopy) == (True, True)
        assert (entries["ren2"].redirect, entries["ren2"].merged) == ("ren", 1)
        assert entries["opq"].opaque and entries["d"].merged == 1
        top = hidden_entries(session, "")
        assert [(h.name, h.reason, h.by.label, h.hidden.real_path) for h in top.hidden] == [
            ("gone", "whiteout", "upper", f"{t}/l2/gone"),
            ("mv", "whiteout", "upper", f"{t}/l1/mv"),
            ("ren", "whiteout", "upper", f"{t}/l2/ren")]  # the old name of the renamed dir
        inside = hidden_entries(session, "opq")
        assert [(h.name, h.reason, h.hidden.real_path) for h in inside.hidden] == [
            ("x", "opaque", f"{t}/l1/opq/x")]


def test_without_cap_sys_admin_private_xattrs_are_reported_unread(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    cmd = ["setpriv", "--bounding-set=-sys_admin", sys.executable, "-m", "ovlinspect", "which",
           "--pid", str(sc.pid), f"{t}/m/cp", f"{t}/m/f1", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    got = {r["path"]: r for r in json.loads(done.stdout)["results"]}
    cp, f1 = got[f"{t}/m/cp"], got[f"{t}/m/f1"]
    assert cp["unread"] == f1["unread"] == ["private-xattrs"]
    # The handle still says it was copied up (it names the lower origin); no xattr confirms it.
    assert where(cp) == ("upper", 0, f"{t}/u/cp")
    assert cp["copied_up"] is True and ref(cp["origin"]) == ("lower", 1, f"{t}/l1/cp")
    assert proof(cp) == ("object-handle", "likely")
    assert where(f1) == ("lower", 1, f"{t}/l1/f1") and proof(f1) == ("object-handle", "proven")


def test_plain_output_runs_for_which_and_fds(sc: Scenario) -> None:
    t = f"{sc.tmp}/t"
    done = run_cli("which", "--pid", str(sc.pid), f"{t}/m/cp", f"{t}/m/gone")
    assert done.stdout.splitlines()[0] == f"{t}/m/cp" and f"{t}/u/cp" in done.stdout
    done = run_cli("fds", "--pid", str(sc.pid))
    assert f"{t}/l2/f2" in done.stdout and "Traceback" not in done.stderr
