"""Healthy, realistic overlays that the engine judges correctly today (second review).

Each scenario is healthy: no warning or error may appear, and every verdict asserted is the
truth (written from what the layers hold, not from what the engine printed).  Layers the kernel
gives no evidence for (covered, empty, whiteout-only, a workdir without index) are only required
to stay ``unverified``.  Where cheap, the layers are snapshotted before and after the scan
(on a ``strictatime`` tmpfs) to show that inspecting wrote nothing.
"""

from __future__ import annotations

import pytest
from engine_kit import (
    PY,
    Want,
    check_overlay,
    inode_likely,
    needs,
    probe_proven,
    root_proven,
    script,
    work_indexed,
    work_unprovable,
)
from test_engine_readonly import quiet_snapshot

from scenario import overlay_at, running, scan_json

UNPROVEN = Want("unverified", "none", None, None)
"""A layer the merged tree gives no evidence for (covered, whiteouts only, not at the top)."""
EMPTY = UNPROVEN.but(proof={"method": "none", "strength": None, "reason": "empty"})

# A Docker overlay2 store at $R: an image of 11 layers plus the -init layer, each reached through
# an l/ short-name symlink, as realistic image layers: later layers modify files of earlier ones,
# delete with whiteouts, replace a directory (opaque), one layer is empty, some only touch deep
# paths that higher layers also hold.
DOCKER = r"""
mount -t tmpfs -o strictatime t $T
R=$T/var/lib/docker/overlay2
mkdir -p $R/l
mk() { mkdir -p $R/$1/diff; ln -s ../$1/diff $R/l/S$1; echo "l/S$1" > $R/$1/link; }
wo() { mknod "$1" c 0 0; }
opq() { "$PY" -c "import os,sys; os.setxattr(sys.argv[1], 'trusted.overlay.opaque', b'y')" "$1"; }
mk L01; D=$R/L01/diff
mkdir -p $D/usr/bin $D/usr/lib/x86_64-linux-gnu $D/etc/apt $D/var/lib/dpkg $D/var/cache/apt \
  $D/proc $D/sys $D/dev $D/tmp $D/root $D/home $D/opt/old $D/srv $D/mnt $D/media $D/boot $D/run
ln -s usr/bin $D/bin; ln -s usr/lib $D/lib; ln -s usr/lib64 $D/lib64; ln -s usr/sbin $D/sbin
for f in ls cat sh perl; do echo $f > $D/usr/bin/$f; done
ln $D/usr/bin/perl $D/usr/bin/perl5.36
echo root:x:0:0 > $D/etc/passwd; echo deb > $D/etc/apt/sources.list
echo st > $D/var/lib/dpkg/status; echo libc > $D/usr/lib/x86_64-linux-gnu/libc.so.6
echo o > $D/opt/old/file; echo c > $D/var/cache/apt/pkgcache.bin
mk L02; D=$R/L02/diff
mkdir -p $D/usr/bin $D/etc $D/var/lib/dpkg $D/var/cache/apt
echo curl > $D/usr/bin/curl; echo st2 > $D/var/lib/dpkg/status; echo root2 > $D/etc/passwd
wo $D/var/cache/apt/pkgcache.bin
mk L03
mk L04; mkdir -p $R/L04/diff/app
mk L05; D=$R/L05/diff; mkdir -p $D/app/src; echo main > $D/app/main.py; echo m > $D/app/src/m.py
mk L06; D=$R/L06/diff; mkdir -p $D/opt/old; opq $D/opt/old; echo new > $D/opt/old/newfile
mk L07; wo $R/L07/diff/srv
mk L08; D=$R/L08/diff/usr/lib/x86_64-linux-gnu; mkdir -p $D; echo c2 > $D/libc.so.6
mk L09; echo '#!/bin/sh' > $R/L09/diff/entrypoint.sh
mk L10; D=$R/L10/diff; mkdir -p $D/etc; echo root10 > $D/etc/passwd; echo g > $D/etc/group
mk L11; D=$R/L11/diff; mkdir -p $D/usr/lib/python3/dist-packages/pkg
echo p > $D/usr/lib/python3/dist-packages/pkg/__init__.py
mk INIT; D=$R/INIT/diff; mkdir -p $D/dev/pts $D/dev/shm $D/etc $D/proc $D/sys
touch $D/.dockerenv $D/etc/hostname $D/etc/hosts $D/etc/resolv.conf $D/dev/console
ln -s /proc/mounts $D/etc/mtab
mkdir -p $R/CTR/diff $R/CTR/work $R/CTR/merged
LOWERS=l/SINIT:l/SL11:l/SL10:l/SL09:l/SL08:l/SL07:l/SL06:l/SL05:l/SL04:l/SL03:l/SL02:l/SL01
ABS=$(echo $LOWERS | sed "s#l/#$R/l/#g")
M=$R/CTR/merged
mount -t overlay overlay -o lowerdir=$ABS,upperdir=$R/CTR/diff,workdir=$R/CTR/work $M
""".replace('"$PY"', f'"{PY}"')
IDS = ["INIT", "L11", "L10", "L09", "L08", "L07", "L06", "L05", "L04", "L03", "L02", "L01"]
STORE = "var/lib/docker/overlay2"


def _docker_wants(tmp: str, unproven: set[str], extra: tuple[str, ...] = (),
                  ov: dict | None = None) -> dict[str, Want]:
    """L08 serves a file three levels down (usr/lib/x86_64-linux-gnu/libc.so.6) that no higher
    layer holds: provable, though the engine only probes one level down today.  Both outcomes
    are true, so it is checked as whatever of the two the report says."""
    root = f"{tmp}/{STORE}"
    if ov is not None and ov["layers"][2 + IDS.index("L08")]["verified"] == "match":
        unproven = unproven - {"L08"}
    wants = {"upper": root_proven(f"{root}/CTR/diff").but(hazards=extra),
             "work": work_unprovable().but(hazards=extra)}
    for i, ident in enumerate(IDS):
        if ident == "L03":
            want = EMPTY
        elif ident in unproven:
            want = UNPROVEN
        else:
            want = probe_proven(f"{root}/{ident}/diff")
        wants[f"lower[{i}]"] = want.but(hazards={"symlink", *extra})
    return wants


def _snap(pid: int, root: str, dirs: list[str]) -> dict[str, object]:
    return {d: quiet_snapshot(f"/proc/{pid}/root{root}/{d}") for d in dirs}


@needs()
def test_docker_overlay2_image_with_many_layers_is_healthy() -> None:
    # What is true: lowers holding a top-level name no higher layer holds, or a file one level
    # down that is theirs in the merged tree, are proven; L08 (deep change only), L07 (only a
    # whiteout) and L04 (WORKDIR /app, covered by L05) give no handle evidence; L03 is empty.
    with running(script(DOCKER + "ready; exec sleep 600\n")) as sc:
        tmp = str(sc.tmp)
        layers = [f"{STORE}/{i}/diff" for i in [*IDS, "CTR"]] + [f"{STORE}/CTR/work"]
        before = _snap(sc.pid, tmp, layers)
        ov = overlay_at(scan_json(sc.pid), f"{tmp}/{STORE}/CTR/merged")
        after = _snap(sc.pid, tmp, layers)
    check_overlay(ov, _docker_wants(tmp, {"L08", "L07", "L04"}, ov=ov), status="info")
    assert before == after


CONTAINER = r"""
echo extra >> $M/etc/passwd; rm $M/usr/bin/curl; rm -rf $M/opt; mkdir $M/opt; echo n > $M/opt/n
echo log > $M/app/log.txt; rm $M/entrypoint.sh; touch $M/usr/bin/perl
mkdir -p $M/run/lock $M/data $T/vol; echo 1 > $M/run/lock/pid; echo v > $T/vol/v
cat > $T/ctr.py <<'EOF'
import ctypes, os, sys, time
M = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs(M + "/.old", exist_ok=True)
os.chdir(M)
if libc.syscall(155, b".", b".old") != 0:  # pivot_root (x86_64)
    raise OSError(ctypes.get_errno(), "pivot_root")
os.chdir("/")
libc.umount2(b"/.old", 2)
print('ready {"pid": "%d"}' % os.getpid(), flush=True)
time.sleep(600)
EOF
unshare -m --propagation private sh -c "
set -e
mount -t proc proc $M/proc; mount -t tmpfs dev $M/dev; mount -t sysfs sys $M/sys
mount --bind $T/vol $M/data
exec '$PY' $T/ctr.py $M
" &
wait
""".replace("'$PY'", f"'{PY}'")


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="pivot_root nr 155")
@needs()
def test_docker_container_namespace_pivoted_into_merged_is_healthy() -> None:
    # The container's own namespace: the overlay is its /, with /proc, /dev, /sys and a volume
    # on top, after the container wrote, deleted (whiteouts) and replaced /opt (opaque).  Now
    # L09 (/entrypoint.sh deleted) and L06 (/opt replaced) serve nothing either.
    with running(script(DOCKER + CONTAINER)) as sc:
        report = scan_json(sc.pid)
    ns = next(n for n in report["namespaces"] if sc.pid in n["pids"])
    ov = next(o for o in ns["overlays"] if o["mount_point"] == "/")
    wants = _docker_wants(str(sc.tmp), {"L09", "L08", "L07", "L06", "L04"}, ("foreign-path",),
                          ov=ov)
    check_overlay(ov, wants, status="info")


OPTIONS = [("redir", "redirect_dir=on"), ("meta", "metacopy=on"), ("idx", "index=on"),
           ("nfs", "nfs_export=on"), ("xino", "xino=on"), ("ro", "ro"), ("uuidoff", "uuid=off"),
           ("rdoff", "redirect_dir=off"), ("all", "metacopy=on,index=on,redirect_dir=on")]
INDEXED = {"idx", "nfs", "all"}


@needs()
def test_container_changes_through_the_merged_tree_under_every_option() -> None:
    mounts = "\n".join(
        f"mkdir -p u{n} w{n} m{n}; mount -t overlay ov -o "
        f"lowerdir=$T/l0:$T/l1,upperdir=$T/u{n},workdir=$T/w{n},{o} $T/m{n}" for n, o in OPTIONS)
    body = f"""
mount -t tmpfs -o strictatime t $T
cd $T
mkdir -p l0/d/sub l0/dir2 l1/d l1/x l2 lo lo3
echo a > l0/a; echo b > l1/b; echo da > l0/d/sub/f; echo x > l1/x/f; echo h > l0/hl
echo z > l0/dir2/z; echo z > l2/z
{mounts}
mv mredir/d mredir/d2; mkdir mredir/newd; mv mredir/dir2 mredir/newd/
chown 1:1 mmeta/a mmeta/d/sub/f mmeta/b
ln midx/hl midx/hl2; ln midx/d/sub/f midx/d/f-link; echo more >> midx/a
ln mnfs/hl mnfs/hl2; echo more >> mnfs/a; mkdir mnfs/newdir
mv mall/d mall/d2; chown 2:2 mall/a; ln mall/hl mall/hl2
echo c > mxino/c; echo c > muuidoff/c; echo c > mrdoff/c
mount -t overlay ov -o lowerdir=$T/l0:$T/l1 $T/lo
mount -t overlay ov -o lowerdir=$T/l0:$T/l1:$T/l2 $T/lo3
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        watched = ["unfs", "wnfs", "l0", "l1", "uidx", "widx"]
        before = _snap(sc.pid, t, watched)
        report = scan_json(sc.pid)
        after = _snap(sc.pid, t, watched)
    for name, _opts in OPTIONS:
        work = work_indexed(f"{t}/w{name}") if name in INDEXED else work_unprovable()
        check_overlay(overlay_at(report, f"{t}/m{name}"), {
            "upper": root_proven(f"{t}/u{name}"), "work": work,
            "lower[0]": probe_proven(f"{t}/l0"), "lower[1]": probe_proven(f"{t}/l1")},
            status="ok")
    check_overlay(overlay_at(report, f"{t}/lo"), {
        "lower[0]": root_proven(f"{t}/l0"), "lower[1]": probe_proven(f"{t}/l1")}, status="ok")
    check_overlay(overlay_at(report, f"{t}/lo3"), {
        "lower[0]": root_proven(f"{t}/l0"), "lower[1]": probe_proven(f"{t}/l1"),
        "lower[2]": probe_proven(f"{t}/l2")}, status="ok")
    assert before == after


@needs()
def test_bound_layers_bound_overlays_and_an_nfs_export_subdirectory() -> None:
    # lower[0] is a bind mount of another directory; lower[2]'s parent has a submount next to
    # it; the overlay is also bound elsewhere; an nfs_export overlay is bound from /sub.
    body = """
mount -t tmpfs -o strictatime t $T
cd $T
mkdir -p src/l0 l1 u w m bound elsewhere par/l2 par/sub nu nw nm nb nl0/sub/deep nl1/sub
echo a > src/l0/a; echo b > l1/b; echo c > par/l2/c
mount --bind src/l0 bound
mount -t tmpfs subm par/sub
mount -t overlay ov -o lowerdir=$T/bound:$T/l1:$T/par/l2,upperdir=$T/u,workdir=$T/w $T/m
mount --bind $T/m $T/elsewhere
echo s > nl0/sub/s; echo t > nl1/sub/t; echo d > nl0/sub/deep/d; echo top > nl0/top
mount -t overlay ov -o lowerdir=$T/nl0:$T/nl1,upperdir=$T/nu,workdir=$T/nw,nfs_export=on $T/nm
echo w > nm/sub/written
mount --bind $T/nm/sub $T/nb
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        watched = ["nu", "nw", "nl0", "nl1"]
        before = _snap(sc.pid, t, watched)
        report = scan_json(sc.pid)
        after = _snap(sc.pid, t, watched)
    for point in ("m", "elsewhere"):
        check_overlay(overlay_at(report, f"{t}/{point}"), {
            "upper": root_proven(f"{t}/u"), "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/bound"), "lower[1]": probe_proven(f"{t}/l1"),
            "lower[2]": probe_proven(f"{t}/par/l2")}, status="ok")
    check_overlay(overlay_at(report, f"{t}/nm"), {
        "upper": root_proven(f"{t}/nu"), "work": work_indexed(f"{t}/nw"),
        "lower[0]": probe_proven(f"{t}/nl0"), "lower[1]": probe_proven(f"{t}/nl1")}, status="ok")
    sub = overlay_at(report, f"{t}/nb")
    assert sub["root"] == "/sub"
    check_overlay(sub, {
        "upper": probe_proven(f"{t}/nu"), "work": UNPROVEN,
        "lower[0]": probe_proven(f"{t}/nl0"), "lower[1]": probe_proven(f"{t}/nl1")}, status="ok")
    assert before == after


FS_PREP = """
mount -t tmpfs t $T
mkdir -p $T/img $T/e $T/x $T/b $T/t
truncate -s 64M $T/img/e.img; truncate -s 300M $T/img/x.img; truncate -s 200M $T/img/b.img
mkfs.ext4 -q $T/img/e.img; mkfs.xfs -q $T/img/x.img; mkfs.btrfs -q $T/img/b.img >/dev/null
mount -o loop $T/img/e.img $T/e; mount -o loop $T/img/x.img $T/x; mount -o loop $T/img/b.img $T/b
mount -t tmpfs tt $T/t
for d in e x b t; do
  mkdir -p $T/$d/l/etc $T/$d/l/usr $T/$d/l/dir_$d
  echo $d > $T/$d/l/only_$d; echo $d > $T/$d/l/etc/conf
done
L=$T/x/l:$T/e/l:$T/b/l:$T/t/l
"""
FS_LOWERS = ["x", "e", "b", "t"]


@needs("loop", "ext4", "xfs", "btrfs")
def test_lowers_on_xfs_ext4_btrfs_and_tmpfs_with_and_without_xino() -> None:
    body = FS_PREP + r"""
for o in auto:xino=auto off:xino=off on:xino=on; do n=${o%%:*}
  mkdir -p $T/t/u$n $T/t/w$n $T/m$n
  mount -t overlay ov -o lowerdir=$L,upperdir=$T/t/u$n,workdir=$T/t/w$n,${o#*:} $T/m$n
  echo new > $T/m$n/newfile; echo x >> $T/m$n/etc/conf
done
mkdir -p $T/mlo
mount -t overlay ov -o lowerdir=$L $T/mlo
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    lowers = {f"lower[{i}]": probe_proven(f"{t}/{d}/l") for i, d in enumerate(FS_LOWERS)}
    for n in ("auto", "off", "on"):
        check_overlay(overlay_at(report, f"{t}/m{n}"), {
            **lowers, "upper": root_proven(f"{t}/t/u{n}"), "work": work_unprovable()},
            status="ok")
    check_overlay(overlay_at(report, f"{t}/mlo"), {**lowers, "lower[0]": root_proven(f"{t}/x/l")},
                  status="ok")


@needs("loop", "ext4", "xfs", "btrfs", "userns")
def test_rootless_overlays_on_several_filesystems() -> None:
    # No overlay handles: the inode method must say "likely, consistent" and never stale-path.
    body = FS_PREP + r"""
mkdir -p $T/t/ru $T/t/rw $T/mr $T/t/ru2 $T/t/rw2 $T/mr2
unshare -U -r -m --propagation private sh -c "
set -e
mount -t overlay ov -o lowerdir=$L,upperdir=$T/t/ru,workdir=$T/t/rw,userxattr $T/mr
echo new > $T/mr/newfile; echo x >> $T/mr/etc/conf; mkdir $T/mr/newdir
mount -t overlay ov -o \
  lowerdir=$T/e/l:$T/x/l,upperdir=$T/t/ru2,workdir=$T/t/rw2,userxattr,xino=off $T/mr2
echo new > $T/mr2/newfile
echo ready {\\\"pid\\\": \\\"\$\$\\\"}; exec sleep 600
" &
wait
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    wants = {f"lower[{i}]": inode_likely(f"{t}/{d}/l") for i, d in enumerate(FS_LOWERS)}
    check_overlay(overlay_at(report, f"{t}/mr"), {
        **wants, "upper": inode_likely(f"{t}/t/ru"), "work": work_unprovable()},
        status="info", hazards={"no-handles"})
    check_overlay(overlay_at(report, f"{t}/mr2"), {
        "upper": inode_likely(f"{t}/t/ru2"), "work": work_unprovable(),
        "lower[0]": inode_likely(f"{t}/e/l"), "lower[1]": inode_likely(f"{t}/x/l")},
        status="info", hazards={"no-handles"})


@needs()
def test_wide_layers_whiteout_only_layers_and_odd_names() -> None:
    # Over 512 top-level names in every layer (the engine reads at most 512 per layer), a layer
    # holding only whiteouts, names with a space, a newline, a control byte and invalid UTF-8.
    body = r"""
mount -t tmpfs t $T
cd $T
mkdir -p l0 l1 l2 wo u w m lo
for i in $(seq 1 600); do echo > l0/a$i; echo > l1/b$i; mkdir l2/c$i; done
for i in $(seq 1 700); do echo > u/u$i; done
printf x > "l1/sp ace"; printf x > "l1/new
line"; printf x > "$(printf 'l0/bad\377name')"; mkdir "$(printf 'l2/d\001ir')"
mknod wo/a1 c 0 0; mknod wo/b1 c 0 0
mount -t overlay ov -o lowerdir=$T/l0:$T/wo:$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
mount -t overlay ov -o lowerdir=$T/l0:$T/wo:$T/l1:$T/l2 $T/lo
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    lowers = {"lower[0]": probe_proven(f"{t}/l0"), "lower[1]": UNPROVEN,
              "lower[2]": probe_proven(f"{t}/l1"), "lower[3]": probe_proven(f"{t}/l2")}
    check_overlay(overlay_at(report, f"{t}/m"), {
        **lowers, "upper": root_proven(f"{t}/u"), "work": work_unprovable()}, status="ok")
    check_overlay(overlay_at(report, f"{t}/lo"), {**lowers, "lower[0]": root_proven(f"{t}/l0")},
                  status="ok")


@needs()
def test_namespace_whose_only_process_is_chrooted_in_an_overlay_subdirectory() -> None:
    body = f"""
mount -t tmpfs t $T
cd $T
mkdir -p l0/sub/in l1 u w m
echo a > l0/a; echo b > l1/b; echo s > l0/sub/s
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w $T/m
cat > $T/chr.py <<'EOF'
import os, sys, time
os.chdir(sys.argv[1]); os.chroot(sys.argv[2])
print('ready {{"pid": "%d"}}' % os.getpid(), flush=True)
time.sleep(600)
EOF
unshare -m --propagation private '{PY}' $T/chr.py $T/m/sub/in $T/m/sub &
wait
"""
    with running(script(body), bare=True) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    ns = next(n for n in report["namespaces"] if sc.pid in n["pids"])
    assert [o["mount_point"] for o in ns["overlays"]] == [f"{t}/m"]
    check_overlay(ns["overlays"][0], {
        "upper": root_proven(f"{t}/u"), "work": work_unprovable(),
        "lower[0]": probe_proven(f"{t}/l0"), "lower[1]": probe_proven(f"{t}/l1")}, status="ok")


@needs()
def test_untidy_paths_self_binds_and_userxattr_as_root() -> None:
    # '..', '//', '/./' and a trailing '/' as typed; '..' right after a symlink (the kernel
    # resolves the link first); layer directories bind-mounted on themselves before and after
    # the mount; an overlay mounted by real root with userxattr (handles still work).
    body = r"""
mount -t tmpfs t $T
cd $T
mkdir -p real/sub real/l2 l0/etc l1 u w m x/y m2 u2 w2 l3 l4 u3 w3 m3
echo a > l0/a; echo p > l0/etc/p; echo b > l1/b; echo c > real/l2/c; echo d > l3/d; echo e > l4/e
ln -s real/sub link
mount --bind l0 l0
mount -t overlay ov -o lowerdir=$T/x/../l0/:$T//l1,upperdir=$T/./u,workdir=$T/x/y/../../w $T/m
mount --bind u u; mount --bind l1 l1
echo x >> m/etc/p; rm m/a
mount -t overlay ov -o lowerdir=$T/link/../l2:$T/l1,upperdir=$T/u2,workdir=$T/w2 $T/m2
mount -t overlay ov -o lowerdir=$T/l3:$T/l4,upperdir=$T/u3,workdir=$T/w3,userxattr $T/m3
echo n > m3/n
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    check_overlay(overlay_at(report, f"{t}/m"), {
        "upper": root_proven(f"{t}/u"), "work": work_unprovable(),
        "lower[0]": probe_proven(f"{t}/l0"), "lower[1]": probe_proven(f"{t}/l1")}, status="ok")
    check_overlay(overlay_at(report, f"{t}/m2"), {
        "upper": root_proven(f"{t}/u2"), "work": work_unprovable(),
        "lower[0]": probe_proven(f"{t}/real/l2").but(hazards={"symlink"}),
        "lower[1]": probe_proven(f"{t}/l1")}, status="info")
    check_overlay(overlay_at(report, f"{t}/m3"), {
        "upper": root_proven(f"{t}/u3"), "work": work_unprovable(),
        "lower[0]": probe_proven(f"{t}/l3"), "lower[1]": probe_proven(f"{t}/l4")}, status="ok")


@needs("loop", "erofs", "squashfs")
def test_erofs_and_squashfs_image_layers_with_container_changes() -> None:
    # One loop-mounted image per layer (like an erofs snapshotter), a tmpfs upper; the container
    # copies up, moves a file from a subdirectory to the top, hard-links, deletes.
    body = r"""
mount -t tmpfs t $T
cd $T
mkdir -p s1/etc s1/usr/bin s2/app s3/etc img e1 e2 q3 u w m u2 w2 m2
echo p > s1/etc/passwd; echo ls > s1/usr/bin/ls; echo a > s2/app/main; echo c > s3/etc/conf
mkfs.erofs --quiet img/e1.img s1 >/dev/null; mkfs.erofs --quiet img/e2.img s2 >/dev/null
mksquashfs s3 img/q3.img -quiet >/dev/null
mount -o loop,ro img/e1.img e1; mount -o loop,ro img/e2.img e2; mount -o loop,ro img/q3.img q3
mount -t overlay ov -o lowerdir=$T/q3:$T/e2:$T/e1,upperdir=$T/u,workdir=$T/w $T/m
echo x >> m/etc/passwd; mv m/app/main m/main; ln m/usr/bin/ls m/ls; rm m/etc/conf
mount -t overlay ov -o lowerdir=$T/q3:$T/e2:$T/e1,upperdir=$T/u2,workdir=$T/w2,index=on $T/m2
ln m2/usr/bin/ls m2/ls
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    lowers = {"lower[0]": probe_proven(f"{t}/q3"), "lower[1]": probe_proven(f"{t}/e2"),
              "lower[2]": probe_proven(f"{t}/e1")}
    check_overlay(overlay_at(report, f"{t}/m"), {
        **lowers, "upper": root_proven(f"{t}/u"), "work": work_unprovable()}, status="ok")
    check_overlay(overlay_at(report, f"{t}/m2"), {
        **lowers, "upper": root_proven(f"{t}/u2"), "work": work_indexed(f"{t}/w2")}, status="ok")


@needs()
def test_idmapped_lower_mounts() -> None:
    # Lowers reached through idmapped bind mounts (as rootful podman --userns=auto uses).
    body = r"""
mount -t tmpfs t $T
cd $T
mkdir -p l0/etc l1 u w m idl0 idl1
echo a > l0/a; echo b > l1/b; echo p > l0/etc/p
if ! mount --bind -o X-mount.idmap=b:0:100000:65536 l0 idl0 2>/dev/null; then
  echo 'ready {"skip": "no idmapped mounts"}'; exec sleep 600
fi
mount --bind -o X-mount.idmap=b:0:100000:65536 l1 idl1
chown 100000:100000 u w
mount -t overlay ov -o lowerdir=$T/idl0:$T/idl1,upperdir=$T/u,workdir=$T/w $T/m
echo x >> m/etc/p
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        if sc.info.get("skip"):
            pytest.skip(sc.info["skip"])
        t = str(sc.tmp)
        report = scan_json(sc.pid)
    check_overlay(overlay_at(report, f"{t}/m"), {
        "upper": root_proven(f"{t}/u"), "work": work_unprovable(),
        "lower[0]": probe_proven(f"{t}/idl0"), "lower[1]": probe_proven(f"{t}/idl1")},
        status="ok")
