"""Every case the issue lists: dump, kill the holder, restore in a new private namespace, and
check the restored merged tree is the one that was dumped (see ``ckkit.roundtrip``)."""

from __future__ import annotations

from pathlib import Path

from ckkit import dump, dump_inside, fsconfig_steps, proc_tree, roundtrip
from engine_kit import needs, script

from ovlinspect.checkpoint.model import dump_from_wire, dump_to_wire

from scenario import running

DOCKER = script("""
S=$T/storage
mkdir -p $S/l $S/id0/diff $S/id1/diff $S/id2/diff $S/id2/work $S/id2/merged
fill $S/id0/diff id0; fill $S/id1/diff id1; fill $S/id2/diff id2
ln -s ../id0/diff $S/l/AAAA; ln -s ../id1/diff $S/l/BBBB
cd $S
mount -t overlay overlay -o lowerdir=l/AAAA:l/BBBB,upperdir=id2/diff,workdir=id2/work id2/merged
ready
exec sleep 600
""")


@needs()
def test_docker_l_symlinks(tmp_path: Path) -> None:
    with running(DOCKER, bare=True) as sc:
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/storage/id2/merged", tmp_path)
        paths = [s["value"] for s in fsconfig_steps(entry, "lowerdir+")]
        assert paths == [f"{sc.tmp}/storage/id0/diff", f"{sc.tmp}/storage/id1/diff"]


ESCAPED = """
import json, os, time
from ovlinspect.kernel import mountapi as m
names = ["a:colon", "b,comma", "c space", "d\\nnewline", "e\\\\back"]
def esc(p, colon=True):
    p = p.replace("\\\\", "\\\\\\\\").replace(",", "\\\\,")
    return p.replace(":", "\\\\:") if colon else p
lowers = []
for n in names:
    os.makedirs(f"{T}/{n}")
    open(f"{T}/{n}/only_{n[0]}", "w").write(n)
    lowers.append(f"{T}/{n}")
for d in ("u\\\\b,x", "w\\\\b,x", "m"):
    os.makedirs(f"{T}/{d}")
open(f"{T}/u\\\\b,x/top", "w").write("top")
data = "lowerdir=" + ":".join(esc(p) for p in lowers)
up, work = T + "/u" + chr(92) + "b,x", T + "/w" + chr(92) + "b,x"
data += f",upperdir={esc(up, False)},workdir={esc(work, False)}"
m.mount("ov", f"{T}/m", "overlay", 0, data)
print("ready", flush=True)
time.sleep(600)
"""


@needs()
def test_escaped_names(tmp_path: Path) -> None:
    with running(ESCAPED, python=True, bare=True) as sc:
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path)
        paths = [s["value"] for s in fsconfig_steps(entry, "lowerdir+")]
        assert paths == [f"{sc.tmp}/{n}" for n in
                         ["a:colon", "b,comma", "c space", "d\nnewline", "e\\back"]]
        upper = fsconfig_steps(entry, "upperdir")[0]
        # The kernel unescapes upperdir= strings: the recipe doubles the backslash.
        assert upper["cmd"] == "FSCONFIG_SET_STRING" and upper["value"] == f"{sc.tmp}/u\\\\b,x"


def _new_api(count: int, name_len: int, extra: str = "") -> str:
    return f"""
import os, time
from ovlinspect.kernel import mountapi as m
lowers = []
for i in range({count}):
    p = f"{{T}}/L/" + str(i).zfill(3) + "x" * {name_len}
    os.makedirs(p)
    open(f"{{p}}/only_{{i}}", "w").write(str(i))
    lowers.append(p)
for d in ("u", "w", "m"):
    os.makedirs(f"{{T}}/{{d}}")
{extra}
m.overlay_new_api(f"{{T}}/m", lowers=lowers, upper=f"{{T}}/u", work=f"{{T}}/w")
print("ready", flush=True)
time.sleep(600)
"""


@needs()
def test_legacy_options_over_a_page(tmp_path: Path) -> None:
    with running(_new_api(24, 200), python=True, bare=True) as sc:
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path)
        assert len(entry["super_options"]) > 4096
        assert len(fsconfig_steps(entry, "lowerdir+")) == 24


@needs()
def test_five_hundred_lowers(tmp_path: Path) -> None:
    with running(_new_api(500, 1), python=True, timeout=60, bare=True) as sc:
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path)
        assert len(fsconfig_steps(entry, "lowerdir+")) == 500


LONG = script("""
D=$T/$(printf 'd%.0s' $(seq 1 120))/$(printf 'e%.0s' $(seq 1 120))
mkdir -p $D/l0 $D/l1 $D/u $D/w $T/m
fill $D/l0 l0; fill $D/l1 l1; fill $D/u u
mount -t overlay ov -o lowerdir=$D/l0:$D/l1,upperdir=$D/u,workdir=$D/w $T/m
ready
exec sleep 600
""")


@needs()
def test_layer_paths_longer_than_255_bytes(tmp_path: Path) -> None:
    with running(LONG, bare=True) as sc:
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path)
        steps = fsconfig_steps(entry, "lowerdir+") + fsconfig_steps(entry, "upperdir")
        assert all(len(s["value"].encode()) > 255 for s in steps)
        assert {s["cmd"] for s in steps} == {"FSCONFIG_SET_FD"}


DATA_ONLY = """
import os, time
from ovlinspect.kernel import mountapi as m
for d in ("l0", "l1", "data", "u", "w", "m"):
    os.makedirs(f"{T}/{d}")
open(f"{T}/l0/only_l0", "w").write("l0")
blob = b"served from the data-only layer\\n"
open(f"{T}/data/blob", "wb").write(blob)
meta = f"{T}/l1/from-data.txt"
with open(meta, "wb") as f:
    f.truncate(len(blob))
os.setxattr(meta, "trusted.overlay.metacopy", b"")
os.setxattr(meta, "trusted.overlay.redirect", b"/blob")
m.overlay_new_api(f"{T}/m", lowers=[f"{T}/l0", f"{T}/l1"], datas=[f"{T}/data"],
                  upper=f"{T}/u", work=f"{T}/w", strings={"metacopy": "on"})
print("ready", flush=True)
time.sleep(600)
"""


@needs("fd-layers")
def test_new_api_data_only_layers_with_metacopy(tmp_path: Path) -> None:
    with running(DATA_ONLY, python=True, bare=True) as sc:
        doc = dump(sc.pid)
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path, doc=doc)
        assert entry["syntax"] == "new-api"
        assert entry["options"]["metacopy"] is True
        data = [item for item in entry["layers"] if item["role"] == "data"]
        assert [d["status"] for d in data] == ["unprovable"]
        assert [s["value"] for s in fsconfig_steps(entry, "datadir+")] == [f"{sc.tmp}/data"]


CONTAINER = """
import os, time
from ovlinspect.kernel import mountapi as m
for d in ("l1", "u", "w", "m"):
    os.makedirs(f"{T}/{d}")
open(f"{T}/l1/etc-release", "w").write("lower\\n")
open(f"{T}/u/upper-file", "w").write("upper\\n")
m.mount("ov", f"{T}/m", "overlay", 0, f"lowerdir={T}/l1,upperdir={T}/u,workdir={T}/w")
os.makedirs(f"{T}/m/.old")
os.chdir(f"{T}/m")
m.pivot_root(".", ".old")
os.chdir("/")
m.umount("/.old", m.MNT_DETACH)
print("ready", flush=True)
time.sleep(600)
"""


@needs()
def test_container_root_with_host_paths(tmp_path: Path) -> None:
    with running(CONTAINER, python=True, bare=True) as sc:
        doc = dump(sc.pid)
        entry = next(o for o in doc["overlays"] if o["mount_point"] == "/")
        upper = entry["layers"][0]
        assert upper["view"] in ("host", "dumper") and upper["restore_path"] == f"{sc.tmp}/u"
        roundtrip(sc.pid, "/", tmp_path, doc=doc, live=proc_tree(sc.pid))


COVERED = script("""
mkdir -p a/l1 b l2 u w m
fill a/l1 l1; fill l2 l2; fill u u
mount --bind a b
mount -t overlay ov -o lowerdir=$T/a/l1:$T/l2,upperdir=$T/u,workdir=$T/w m
mount -t tmpfs cover a && mkdir a/l1 && echo decoy > a/l1/decoy
ready
exec sleep 600
""")


@needs()
def test_mounted_over_lower_uses_the_reachable_real_path(tmp_path: Path) -> None:
    with running(COVERED, bare=True) as sc:
        # Dumped and restored inside the namespace where $T/a is covered and $T/b reaches it.
        doc = dump_inside(sc.pid)
        entry, out = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path, doc=doc, enter=sc.pid,
                               kill=False)
        assert entry["layers"][2]["restore_path"] == f"{sc.tmp}/b/l1"
        assert fsconfig_steps(entry, "lowerdir+")[0]["value"] == f"{sc.tmp}/b/l1"
        used = [s for s in out["recipe"] if s.get("key") == "lowerdir+"]
        assert used[0]["value"] == f"{sc.tmp}/b/l1"


LOWER_ONLY = script("""
mkdir -p l0 l1 m "$(printf 'bad\\377name')"
fill l0 l0; fill l1 l1; fill "$(printf 'bad\\377name')" bad
mount -t overlay ov -o "lowerdir=$T/l0:$T/l1:$T/$(printf 'bad\\377name')" m
ready
exec sleep 600
""")


@needs()
def test_lower_only_with_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    with running(LOWER_ONLY, bare=True) as sc:
        doc = dump(sc.pid)
        entry, _ = roundtrip(sc.pid, f"{sc.tmp}/m", tmp_path, doc=doc)
        assert entry["options"]["sb_readonly"] is True
        bad = fsconfig_steps(entry, "lowerdir+")[2]["value"]
        assert isinstance(bad, dict) and "base64" in bad
        # The JSON conversion is lossless both ways.
        assert dump_to_wire(dump_from_wire(doc)) == doc
