"""Issue #2's scenarios on real overlay mounts, each in its own private mount namespace.

Every test builds its mounts in a throwaway namespace (see scenario.py), then runs
``ovlinspect --pid PID --json`` on it as a user would and checks what the tool proves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scenario import codes, layer, overlay_at, run_cli, running, scan_json

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

TMPFS_LAB = """
mount -t tmpfs lab $T
mkdir -p $T/l1 $T/l2 $T/u $T/w $T/m
echo 1 > $T/l1/only1; echo 2 > $T/l2/only2; echo b > $T/l1/both; echo b > $T/l2/both
echo u > $T/u/onlyu
"""


def _verdicts(overlay: dict) -> dict[str, str]:
    return {f"{x['role']}[{x['index']}]" if x["role"] in ("lower", "data") else x["role"]:
            x["verified"] for x in overlay["layers"]}


def test_healthy_absolute_overlay_is_fully_proven() -> None:
    script = TMPFS_LAB + """
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
echo ready; exec sleep 600
"""
    with running(script) as sc:
        report = scan_json(sc.pid)
        assert report["schema"] == 1
        ov = overlay_at(report, f"{sc.tmp}/m")
        assert ov["hazards"] == []
        assert all(x["hazards"] == [] for x in ov["layers"])
        verdicts = _verdicts(ov)
        assert verdicts["upper"] == verdicts["lower[0]"] == verdicts["lower[1]"] == "match"
        upper = layer(ov, "upper")
        assert upper["path"] == upper["real_path"] == f"{sc.tmp}/u"
        assert upper["fs_type"] == "tmpfs" and upper["fs_uuid"] and upper["handle"]["hex"]
        assert upper["dev"] and upper["ino"] and upper["mount_id"]
        assert ov["unique_id"] and ov["unique_id"] > ov["mount_id"]
        assert layer(ov, "lower[1]")["proof"] == {"method": "probe-handle", "strength": "proven",
                                                   "reason": "probe-match"}
        ns = next(n for n in report["namespaces"] if sc.pid in n["pids"])
        assert any(p["pid"] == sc.pid and p["comm"] == "sleep" for p in ns["processes"])


def test_relative_paths_are_flagged_and_resolved_against_the_proven_cwd() -> None:
    # The mounter's cwd ($T) is neither the sleeper's cwd (/) nor an ancestor of the mount
    # point: only the overlay's own root handle can tell where "u" was.
    script = TMPFS_LAB + """
mkdir -p $T/elsewhere/m
cd $T
mount -t overlay ov -o lowerdir=l1:l2,upperdir=u,workdir=w $T/elsewhere/m
cd /
echo ready; exec sleep 600
"""
    with running(script) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/elsewhere/m")
        for label in ("upper", "work", "lower[0]", "lower[1]"):
            assert "relative-path" in codes(layer(ov, label)), label
        upper = layer(ov, "upper")
        assert upper["declared"] == "u"
        assert upper["path"] == f"{sc.tmp}/u" and upper["verified"] == "match"
        assert upper["proof"] == {"method": "root-handle", "strength": "proven",
                                  "reason": "root-handle-match"}
        assert layer(ov, "lower[1]")["verified"] == "match"


def test_unmounted_lower_source_is_source_detached() -> None:
    script = TMPFS_LAB + """
mount -t tmpfs src $T/l2
echo 2 > $T/l2/only2
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
umount -l $T/l2
echo ready; exec sleep 600
"""
    with running(script) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        lower1 = layer(ov, "lower[1]")
        assert "source-detached" in codes(lower1)
        assert lower1["verified"] == "mismatch"
        assert layer(ov, "upper")["verified"] == "match"
        assert layer(ov, "lower[0]")["verified"] == "match"
        assert "source-detached" not in codes(layer(ov, "lower[0]"))


def test_mount_over_upper_path_is_stale_path_mismatch() -> None:
    script = TMPFS_LAB + """
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
mount -t tmpfs cover $T/u
echo ready; exec sleep 600
"""
    with running(script) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        upper = layer(ov, "upper")
        assert upper["verified"] == "mismatch"
        assert "stale-path" in codes(upper)
        assert "covered by mount" in next(
            h["message"] for h in upper["hazards"] if h["code"] == "stale-path")
        assert layer(ov, "lower[0]")["verified"] == "match"
        assert layer(ov, "work")["verified"] != "mismatch"


CONTAINER = """
import json, os, time
from ovlinspect.kernel import mountapi as m
for d in ("l1", "u", "w", "m"):
    os.makedirs(f"{T}/{d}")
open(f"{T}/l1/etc-release", "w").write("lower\\n")
open(f"{T}/u/upper-file", "w").write("upper\\n")
m.mount("ov", f"{T}/m", "overlay", 0, f"lowerdir={T}/l1,upperdir={T}/u,workdir={T}/w")
os.makedirs(f"{T}/m/.old")
EXTRA
os.chdir(f"{T}/m")
m.pivot_root(".", ".old")
os.chdir("/")
m.umount("/.old", m.MNT_DETACH)
AFTER
print("ready" + json.dumps({}), flush=True)
time.sleep(600)
"""


def test_container_root_with_host_paths_is_foreign_path_verified_on_host() -> None:
    script = CONTAINER.replace("EXTRA", "").replace("AFTER", "")
    with running(script, python=True) as sc:
        report = scan_json(sc.pid)
        ov = overlay_at(report, "/")
        for label in ("upper", "lower[0]"):
            item = layer(ov, label)
            assert "foreign-path" in codes(item), label
            assert item["path"] is None
            assert item["host_path"] == item["declared"]
            assert item["verified"] == "match", item["verify_note"]
        assert Path(layer(ov, "upper")["host_path"]) == sc.tmp / "u"
        # A healthy container root is healthy: foreign-path is info, and --check passes.
        assert ov["status"] == "info"
        run_cli("--pid", str(sc.pid), "--check", check_rc=0)


def test_new_api_lowerdir_plus_and_datadir_plus_with_awkward_names() -> None:
    names = ["low,er:1 a", "low,er:2 b", "da:ta, x"]
    script = f"""
import os, time
from ovlinspect.kernel import mountapi as m
m.mount("lab", T, "tmpfs")
names = {names!r}
for i, n in enumerate(names):
    os.makedirs(f"{{T}}/{{n}}")
    open(f"{{T}}/{{n}}/f{{i}}", "w").write("x")
for d in ("u", "w", "m"):
    os.makedirs(f"{{T}}/{{d}}")
m.overlay_new_api(f"{{T}}/m", lowers=[f"{{T}}/{{n}}" for n in names[:2]],
                  datas=[f"{{T}}/{{names[2]}}"], upper=f"{{T}}/u", work=f"{{T}}/w")
print("ready", flush=True)
time.sleep(600)
"""
    with running(script, python=True) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        assert ov["options"]["syntax"] == "new-api"
        roles = [(x["role"], x["index"], x["declared"]) for x in ov["layers"]]
        assert roles == [
            ("upper", 0, f"{sc.tmp}/u"), ("work", 0, f"{sc.tmp}/w"),
            ("lower", 0, f"{sc.tmp}/{names[0]}"), ("lower", 1, f"{sc.tmp}/{names[1]}"),
            ("data", 0, f"{sc.tmp}/{names[2]}"),
        ]
        assert layer(ov, "lower[0]")["verified"] == "match"
        assert layer(ov, "lower[1]")["verified"] == "match"
        assert layer(ov, "data[0]")["path"] == f"{sc.tmp}/{names[2]}"
        assert not [h for h in ov["hazards"] if h["severity"] == "error"]


def test_docker_style_short_symlinks_are_followed_and_recorded() -> None:
    script = """
mount -t tmpfs lab $T
cd $T
mkdir -p aaa/diff bbb/diff ccc/diff ccc/work ccc/merged l
echo a > aaa/diff/a; echo b > bbb/diff/b
ln -s ../aaa/diff l/SHORTA; ln -s ../bbb/diff l/SHORTB
mount -t overlay overlay -o lowerdir=l/SHORTA:l/SHORTB,upperdir=$T/ccc/diff,workdir=$T/ccc/work \
    $T/ccc/merged
echo ready; exec sleep 600
"""
    with running(script) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/ccc/merged")
        lower0 = layer(ov, "lower[0]")
        assert {"symlink", "relative-path"} <= codes(lower0)
        assert lower0["path"] == f"{sc.tmp}/aaa/diff"
        assert lower0["symlinks"] == [{"path": f"{sc.tmp}/l/SHORTA", "target": "../aaa/diff"}]
        assert lower0["verified"] == "match"
        assert layer(ov, "lower[1]")["path"] == f"{sc.tmp}/bbb/diff"
        assert next(h for h in lower0["hazards"] if h["code"] == "symlink")["severity"] == "info"


def test_hostile_symlink_in_container_root_never_reaches_the_host() -> None:
    """A layer path through an absolute symlink inside the container must resolve inside it."""
    hostile = """
m.mount("t", "/t", "tmpfs")
os.makedirs("/t/target")
os.makedirs("/t/base")
open("/t/target/inner", "w").write("container data")
os.symlink("/t", "/evil")
os.makedirs("/m2")
m.mount("ov2", "/m2", "overlay", 0, "lowerdir=/evil/target:/t/base")
os.unlink("/evil")
os.symlink(HOST, "/evil")
"""
    script = CONTAINER.replace("EXTRA", "os.makedirs(f'{T}/m/t')").replace("AFTER", hostile)
    host_dir = Path(f"/tmp/ovlinspect-hostile-{os.getpid()}")
    (host_dir / "target").mkdir(parents=True)
    (host_dir / "target" / "secret").write_text("host data")
    try:
        script = script.replace("HOST", repr(str(host_dir)))
        with running(script, python=True) as sc:
            ov = overlay_at(scan_json(sc.pid), "/m2")
            lower = layer(ov, "lower[0]")
            assert lower["declared"] == "/evil/target"
            assert lower["path"] is None and lower["host_path"] is None
            assert lower["verified"] != "match"
            assert lower["symlinks"][0] == {"path": "/evil", "target": str(host_dir)}
            assert lower["real_path"] == "/t/target"  # decoded from the overlay's own handle
            assert "not-found" in codes(lower)
    finally:
        (host_dir / "target" / "secret").unlink()
        (host_dir / "target").rmdir()
        host_dir.rmdir()


def test_unprivileged_json_names_the_missing_capability() -> None:
    script = TMPFS_LAB + """
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
echo ready; exec sleep 600
"""
    with running(script) as sc:
        report = scan_json(sc.pid, user=65534)
        ov = overlay_at(report, f"{sc.tmp}/m")
        assert any("CAP_SYS_PTRACE" in p for p in report["privileges"])
        assert any("CAP_DAC_READ_SEARCH" in p for p in report["privileges"])
        assert {x["proof"]["reason"] for x in ov["layers"]} == {"no-view"}
        assert [h["code"] for h in ov["hazards"]] == ["unreadable"]
        assert all(x["verified"] == "unverified" for x in ov["layers"])


def test_missing_pid_is_a_clear_error() -> None:
    done = run_cli("--pid", "999999999", "--json", check_rc=2)
    assert done.stdout == ""
    assert "no such process: 999999999" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_exit_status_follows_hazards() -> None:
    """--check judges a whole namespace: give it one holding only this test's overlay."""
    script = TMPFS_LAB + """
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
echo ready; exec sleep 600
"""
    with running(script, bare=True) as sc:
        run_cli("--pid", str(sc.pid), "--check", check_rc=0)
    with running(script.replace("echo ready", "mount -t tmpfs cover $T/u; echo ready"),
                 bare=True) as sc:
        done = run_cli("--pid", str(sc.pid), "--check", check_rc=1)
        assert "stale-path" in done.stdout
