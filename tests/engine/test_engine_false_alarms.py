"""False alarms on healthy overlays (second review of the evidence engine).

Each test builds a healthy, realistic overlay in a private mount namespace, inspects it with
``--pid … --json`` as a user would, and asserts the TRUE result.  Each gave a false alarm or a
false claim before the engine fixes of this review and now guards against a regression; the
cause each had is in its comment or its name.
"""

from __future__ import annotations

import pytest
from engine_kit import PY, needs, script

from scenario import layer, overlay_at, running, scan_json

BAD = ("error", "warning")


def _alarms(ov: dict) -> list[str]:
    """Every hazard of severity warning or worse, on the overlay or any layer."""
    found = [f"overlay:{h['code']}" for h in ov["hazards"] if h["severity"] in BAD]
    for item in ov["layers"]:
        found += [f"{item['role']}[{item['index']}]:{h['code']}" for h in item["hazards"]
                  if h["severity"] in BAD]
    return found


def _healthy(ov: dict) -> None:
    assert not _alarms(ov), _alarms(ov)
    assert ov["status"] not in BAD, ov["status"]
    assert all(item["verified"] != "mismatch" for item in ov["layers"]), [
        (item["role"], item["index"], item["proof"]) for item in ov["layers"]]


@needs()
def test_volume_mounted_over_a_name_only_a_lower_holds() -> None:
    # Was: lower[1] mismatch name-absent + stale-path (error).  kernel/objects.lookup opens with
    # RESOLVE_NO_XDEV, so a merged name that is a mount point looked absent (reconcile._probe_in).
    # An image layer made by `VOLUME /data` (only /data), and the container's volume on /data.
    body = """
mount -t tmpfs t $T
mkdir -p $T/l0/etc $T/l1/data $T/u $T/w $T/m
echo a > $T/l0/a; echo x > $T/l0/etc/x
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w $T/m
mount -t tmpfs vol $T/m/data
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        assert layer(ov, "lower[0]")["verified"] == "match"
        _healthy(ov)


@needs("userns")
def test_rootless_upper_with_a_volume_mount_point() -> None:
    # Was: upper mismatch name-absent, strength PROVEN without any handle (reconcile.
    # _root_by_inode -> _absent: the same RESOLVE_NO_XDEV lookup of a mount point).
    # Rootless runtimes create a missing volume mount point in the merged tree (so in upper).
    body = r"""
mount -t tmpfs t $T
mkdir -p $T/l0 $T/l1 $T/u $T/w $T/m
echo a > $T/l0/a; echo b > $T/l1/b; echo u > $T/u/uf
unshare -U -r -m --propagation private sh -c "
set -e
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w,userxattr $T/m
mkdir $T/m/data
mount -t tmpfs vol $T/m/data
echo ready {\\\"pid\\\": \\\"\$\$\\\"}; exec sleep 600
" &
wait
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        assert "no-handles" in {h["code"] for h in ov["hazards"]}
        _healthy(ov)


@needs()
def test_uuid_off_with_a_renamed_and_a_hard_linked_file() -> None:
    # Was: overlay-level source-detached (error).  The copy-ups' handles name their origin with
    # a null uuid; FsIndex.candidates(null) tried only ambiguous filesystems, so decode() said
    # 'stale' and reconcile._locate made a 'detached' orphan (rules.ambiguous_detached).
    body = """
mount -t tmpfs t $T
mkdir -p $T/l0 $T/l1 $T/u $T/w $T/m
echo a > $T/l0/a; echo a2 > $T/l0/a2; echo b > $T/l1/b
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w,uuid=off $T/m
mv $T/m/a $T/m/renamed
ln $T/m/a2 $T/m/hardlink
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        for label in ("upper", "lower[0]", "lower[1]"):
            assert layer(ov, label)["verified"] == "match", label
        assert ov["status"] == "ok"
        _healthy(ov)


@needs()
def test_file_moved_to_the_top_with_an_empty_or_covered_layer() -> None:
    # Was: lower[1] mismatch 'elimination' + stale-path, real_path $T/l0/etc.  The handle of /y
    # names its origin l0/etc/y; reconcile._strip accepted l0/etc as a layer root because the
    # basename matches, and _eliminate pinned it on the one unproven (empty/covered) layer.
    body = """
mount -t tmpfs t $T
mkdir -p $T/l0/etc $T/l1/etc $T/empty $T/u $T/w $T/m $T/u2 $T/w2 $T/m2
echo a > $T/l0/a; echo x > $T/l0/etc/x; echo y > $T/l0/etc/y; echo old > $T/l1/etc/x
# an empty image layer (a RUN that changed nothing); the container moves etc/y to /y
mount -t overlay ov -o lowerdir=$T/l0:$T/empty,upperdir=$T/u,workdir=$T/w $T/m
mv $T/m/etc/y $T/m/y
# a fully covered middle layer; the container hard-links etc/y as /y
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u2,workdir=$T/w2 $T/m2
ln $T/m2/etc/y $T/m2/y
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        report = scan_json(sc.pid)
        for mp in ("m", "m2"):
            ov = overlay_at(report, f"{sc.tmp}/{mp}")
            low = layer(ov, "lower[1]")
            assert low["verified"] == "unverified" and low["real_path"] is None, (mp, low)
            assert low["proof"]["reason"] in ("empty", "covered"), (mp, low["proof"])
            assert ov["status"] == "ok", mp
            _healthy(ov)


@needs()
def test_subdirectory_bind_whose_upper_copy_is_opaque() -> None:
    # Was: lower[0] mismatch name-absent + stale-path.  With a mount root /sub, _probe_in only
    # asked whether a higher layer holds sub/NAME, not whether the higher sub is opaque.
    # In the container: rm -rf /sub && mkdir /sub; then /sub is bind-mounted elsewhere.
    body = """
mount -t tmpfs t $T
mkdir -p $T/l0/sub $T/l1/sub $T/u $T/w $T/m $T/b
echo a > $T/l0/sub/a; echo b > $T/l1/sub/b
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w $T/m
rm -rf $T/m/sub; mkdir $T/m/sub; echo n > $T/m/sub/new
mount --bind $T/m/sub $T/b
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        report = scan_json(sc.pid)
        whole = overlay_at(report, f"{sc.tmp}/m")
        assert whole["status"] == "ok"
        ov = overlay_at(report, f"{sc.tmp}/b")
        assert ov["root"] == "/sub"
        assert layer(ov, "upper")["verified"] == "match"
        _healthy(ov)


@needs()
def test_overlay_mounted_on_its_own_lower_like_systemd_sysext() -> None:
    # Was: lower[2] mismatch 'elimination' + stale-path (error): $T/usr resolves to the overlay
    # itself, whose handles never match, and the decoded layer is the directory underneath.
    body = """
mount -t tmpfs t $T
cd $T
mkdir -p usr/bin usr/share usr/lib meta/usr ext/foo/usr/bin ext/foo/usr/lib/extension-release.d
echo ls > usr/bin/ls; echo d > usr/share/doc; echo os > usr/lib/os-release
echo foo > ext/foo/usr/bin/foo
echo ID=_any > ext/foo/usr/lib/extension-release.d/extension-release.foo
echo meta > meta/usr/.systemd-sysext
mount -t overlay sysext -o ro,lowerdir=$T/meta/usr:$T/ext/foo/usr:$T/usr $T/usr
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/usr")
        assert layer(ov, "lower[0]")["verified"] == "match"
        assert layer(ov, "lower[1]")["verified"] == "match"
        assert layer(ov, "lower[2]")["real_path"] == f"{sc.tmp}/usr"
        _healthy(ov)


@needs()
def test_docker_relative_paths_with_a_proven_cwd() -> None:
    # Was: relative-path warnings on every layer (status warning, --check exit 1) although
    # the overlay's own root handle proves the cwd (rules.text_hazards).
    body = """
mount -t tmpfs t $T
R=$T/overlay2
mkdir -p $R/l $R/A/diff $R/B/diff $R/C/diff $R/C/work $R/C/merged
echo a > $R/A/diff/a; echo b > $R/B/diff/b
ln -s ../A/diff $R/l/SA; ln -s ../B/diff $R/l/SB
cd $R && mount -t overlay overlay -o lowerdir=l/SA:l/SB,upperdir=C/diff,workdir=C/work C/merged
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/overlay2/C/merged")
        upper = layer(ov, "upper")
        assert upper["verified"] == "match" and upper["proof"]["method"] == "root-handle"
        assert layer(ov, "lower[0]")["verified"] == "match"
        assert layer(ov, "lower[1]")["verified"] == "match"
        _healthy(ov)


@needs("userns")
def test_rootless_bind_of_a_copied_up_subdirectory() -> None:
    # Was: upper inode-differs + stale-path (error): _root_by_inode compared merged /sub's
    # st_ino with upper/sub's, but overlayfs reports a directory with an origin (copied
    # up) by its lower origin's inode number (ovl_getattr).
    body = r"""
mount -t tmpfs t $T
mkdir -p $T/l0/sub $T/l1/sub $T/u $T/w $T/m $T/b
echo a > $T/l0/sub/a; echo b > $T/l1/sub/b; echo top > $T/l0/top
unshare -U -r -m --propagation private sh -c "
set -e
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w,userxattr $T/m
echo n > $T/m/sub/new
mount --bind $T/m/sub $T/b
echo ready {\\\"pid\\\": \\\"\$\$\\\"}; exec sleep 600
" &
wait
"""
    with running(script(body)) as sc:
        report = scan_json(sc.pid)
        assert overlay_at(report, f"{sc.tmp}/m")["status"] == "info"
        ov = overlay_at(report, f"{sc.tmp}/b")
        assert ov["root"] == "/sub"
        _healthy(ov)


@needs("userns")
def test_rootless_overlay_whose_root_holds_only_directories() -> None:
    # Not an alarm but a false claim of completeness: 'covered' (a FINAL reason, so the status
    # is info) for an upper, which no layer can cover, and for lowers with names of their own.
    # All layers are on one tmpfs, so overlayfs reports real directory inode numbers.
    body = r"""
mount -t tmpfs t $T
mkdir -p $T/l0/etc $T/l0/bin $T/l0/usr/bin $T/l0/root $T/l1/etc $T/l1/app $T/u $T/w $T/m
echo a > $T/l0/etc/passwd; echo sh > $T/l0/bin/sh; echo c > $T/l1/etc/conf
echo app > $T/l1/app/main
unshare -U -r -m --propagation private sh -c "
set -e
mount -t overlay ov -o lowerdir=$T/l1:$T/l0,upperdir=$T/u,workdir=$T/w,userxattr $T/m
echo x >> $T/m/etc/passwd; echo h > $T/m/root/.ash_history
echo ready {\\\"pid\\\": \\\"\$\$\\\"}; exec sleep 600
" &
wait
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        _healthy(ov)
        for label in ("upper", "lower[0]", "lower[1]"):
            proof = layer(ov, label)["proof"]
            assert proof["reason"] == "inode-consistent", (label, proof)


@needs()
def test_bind_of_an_overlay_mounted_on_its_own_lower() -> None:
    # systemd-sysext's /usr, bound into a chroot (or reached through `mount --rbind / /mnt`).
    body = """
mount -t tmpfs t $T
cd $T
mkdir -p usr/bin usr/share usr/lib meta/usr ext/foo/usr/bin chroot/usr
echo ls > usr/bin/ls; echo d > usr/share/doc; echo os > usr/lib/os-release
echo foo > ext/foo/usr/bin/foo; echo meta > meta/usr/.systemd-sysext
mount -t overlay sysext -o ro,lowerdir=$T/meta/usr:$T/ext/foo/usr:$T/usr $T/usr
mount --bind $T/usr $T/chroot/usr
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        report = scan_json(sc.pid)
        _healthy(overlay_at(report, f"{sc.tmp}/usr"))
        ov = overlay_at(report, f"{sc.tmp}/chroot/usr")
        assert layer(ov, "lower[2]")["real_path"] == f"{sc.tmp}/usr"
        _healthy(ov)


@needs()
def test_image_layer_that_only_changed_a_deep_file() -> None:
    # Not an alarm but a false claim that the kernel offers no evidence (status ok): merged
    # usr/lib/x86_64-linux-gnu/libc.so.6 is a file (safe to encode even with nfs_export) whose
    # handle names lower[1]'s object.  Most real image layers only touch such deep paths.
    body = """
mount -t tmpfs t $T
G=usr/lib/x86_64-linux-gnu
mkdir -p $T/l0/usr/bin $T/l1/$G $T/l2/$G $T/l2/usr/bin $T/u $T/w $T/m
echo tool > $T/l0/usr/bin/tool; echo new > $T/l1/$G/libc.so.6; echo old > $T/l2/$G/libc.so.6
echo ls > $T/l2/usr/bin/ls; echo u > $T/u/file
mount -t overlay ov -o lowerdir=$T/l0:$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        _healthy(ov)
        assert layer(ov, "lower[0]")["verified"] == "match"
        low = layer(ov, "lower[1]")
        assert (low["verified"], low["real_path"]) == ("match", f"{sc.tmp}/l1"), low["proof"]



PIVOT = r"""
cat > $T/pivot.py <<'EOF'
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs(sys.argv[1] + "/.old", exist_ok=True)
os.chdir(sys.argv[1])
if libc.syscall(155, b".", b".old") != 0:  # pivot_root (x86_64)
    raise OSError(ctypes.get_errno(), "pivot_root")
os.chdir("/")
libc.umount2(b"/.old", 2)
print('ready {"pid": "%d"}' % os.getpid(), flush=True)
time.sleep(600)
EOF
"""


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="pivot_root nr 155")
@needs()
def test_container_whose_root_holds_its_layers_host_paths() -> None:
    body = "mount -t tmpfs t $T\n" + PIVOT + f"""
H=$T/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots
mkdir -p $H/1/fs/etc $H/2/fs/app $H/3/fs $H/3/work $T/merged
echo p > $H/1/fs/etc/passwd; echo a > $H/2/fs/app/main; echo bin > $H/1/fs/bin-file
M=$T/merged
mount -t overlay overlay -o lowerdir=$H/2/fs:$H/1/fs,upperdir=$H/3/fs,workdir=$H/3/work $M
# the containerd inside the container keeps its own snapshots 1, 2, 3 at the same path
mkdir -p $M$H/1/fs $M$H/2/fs $M$H/3/fs $M$H/3/work
echo inner > $M$H/1/fs/inner; echo inner2 > $M$H/2/fs/inner2
unshare -m --propagation private '{PY}' $T/pivot.py $M &
wait
"""
    with running(script(body)) as sc:
        report = scan_json(sc.pid)
    ns = next(n for n in report["namespaces"] if sc.pid in n["pids"])
    ov = next(o for o in ns["overlays"] if o["mount_point"] == "/")
    host = f"{sc.tmp}/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    assert layer(ov, "upper")["verified"] == "match"
    assert layer(ov, "upper")["real_path"] == f"{host}/3/fs"
    assert layer(ov, "lower[0]")["real_path"] == f"{host}/2/fs"
    assert layer(ov, "lower[1]")["real_path"] == f"{host}/1/fs"
    assert ov["status"] == "info"
    _healthy(ov)


@needs()
def test_overlay_mounted_over_the_parent_of_its_layers() -> None:
    body = """
mount -t tmpfs t $T
mkdir -p $T/app/ro $T/app/rw $T/app/work
echo v1 > $T/app/ro/binary; echo conf > $T/app/rw/local.conf
mount -t overlay overlay -o lowerdir=$T/app/ro,upperdir=$T/app/rw,workdir=$T/app/work $T/app
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/app")
        assert layer(ov, "upper")["real_path"] == f"{sc.tmp}/app/rw"
        assert layer(ov, "lower[0]")["real_path"] == f"{sc.tmp}/app/ro"
        _healthy(ov)


def test_relative_path_typed_in_a_cwd_nobody_recorded() -> None:
    # Was: lower mismatch (elimination) + not-found (error) on a healthy overlay.  The lower was
    # given relative to a cwd that is none of the candidates (the decoded root's parent, the
    # holder's cwd, the mount point's ancestors): it cannot be checked, so it is not disproved.
    body = """
mkdir -p $T/deep/a/b $T/deep/l1 $T/u $T/w $T/m
echo x > $T/deep/l1/f
cd $T/deep/a/b
mount -t overlay ov -o lowerdir=../../l1,upperdir=$T/u,workdir=$T/w $T/m
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/m")
        lower = layer(ov, "lower[0]")
        assert (lower["verified"], lower["proof"]["reason"]) == ("unverified", "cwd-unknown")
        assert lower["real_path"] == f"{sc.tmp}/deep/l1"
        codes = {h["code"] for h in lower["hazards"]} | {h["code"] for h in ov["hazards"]}
        assert codes == {"relative-path"}
        assert ov["status"] == "unverified"
