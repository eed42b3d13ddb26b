"""Issue #8, scenario 1: layers on every filesystem the engine must prove, each built by the test.

Each filesystem is mounted (from a loop image made here, except tmpfs) at ``$T/x`` inside the
scenario's private namespace, next to a tmpfs at ``$T/t``.  Three overlays use it:

- ``$T/m``:  upper+work on tmpfs, the lowers on the filesystem under test;
- ``$T/mb``: lower-only, its top lower on the filesystem under test (proven by the root handle);
- ``$T/mc``: (writable filesystems) upper+work on the filesystem under test, lower on tmpfs.

What the kernel gives, per filesystem (6.18): ext4/xfs/tmpfs/erofs handles carry the disk uuid
(zeros for ``mkfs.ext4 -U null``), squashfs handles a null uuid (and FS_IOC_GETFSUUID is ENOTTY),
btrfs handles (type 0x4d) the btrfs fsid, which only BTRFS_IOC_FS_INFO or /sys/fs/btrfs tell.
A squashfs built with ``-no-exports`` cannot decode handles, so every overlay using it gives
plain 0x81 inode handles: only inode numbers are left (``inode``/``likely``, ``no-handles``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from engine_kit import (
    Want,
    check_overlay,
    inode_likely,
    mount_file_backed,
    needs,
    probe_proven,
    root_proven,
    script,
    work_unprovable,
)

from scenario import overlay_at, running, scan_json


@dataclass(frozen=True)
class Fs:
    """One filesystem under test: how to build it at ``$T/x`` and which of its dirs are layers.

    Paths are relative to ``$T``.  ``image`` is the image behind the mount (None for tmpfs);
    ``loop`` says whether it is attached through a loop device (else file-backed).
    """

    needs: tuple[str, ...]
    setup: str
    lowers: tuple[str, ...]
    top: str
    upper: str | None = None
    work: str | None = None
    image: str | None = "img/fs.img"
    loop: bool = True
    handles: bool = True


def _writable(mkfs: str, size: str) -> str:
    return f"""
image fs {size}
{mkfs} $T/img/fs.img >/dev/null
mount -o loop $T/img/fs.img $T/x
fill $T/x/l0 l0; fill $T/x/l1 l1; fill $T/x/top top; fill $T/x/u xu; mkdir -p $T/x/w
"""


# Image filesystems are built from $T/src: l0/, l1/ and a file at the root (the top layer).
_SRC = """
fill $T/src/l0 l0; fill $T/src/l1 l1; echo top > $T/src/only_top
"""

FILESYSTEMS: dict[str, Fs] = {
    "tmpfs": Fs(
        needs=(),
        setup="""
mount -t tmpfs x $T/x
fill $T/x/l0 l0; fill $T/x/l1 l1; fill $T/x/top top; fill $T/x/u xu; mkdir -p $T/x/w
""",
        lowers=("x/l0", "x/l1"), top="x/top", upper="x/u", work="x/w", image=None),
    "ext4": Fs(needs=("loop", "ext4"), setup=_writable("mkfs.ext4 -q", "64M"),
               lowers=("x/l0", "x/l1"), top="x/top", upper="x/u", work="x/w"),
    # FS_IOC_GETFSUUID gives 16 zero bytes and the overlay handles carry zeros: only decoding
    # on each null-uuid candidate tells filesystems apart.  A decoy null-uuid ext4 with the same
    # tree (same inode numbers, other generations: its decode gives ESTALE) is mounted first.
    "ext4-null-uuid": Fs(
        needs=("loop", "ext4"),
        setup="""
image decoy 64M
mkfs.ext4 -q -U null $T/img/decoy.img
mkdir -p $T/decoy
mount -o loop $T/img/decoy.img $T/decoy
fill $T/decoy/l0 l0; fill $T/decoy/l1 l1; fill $T/decoy/top top; fill $T/decoy/u xu
""" + _writable("mkfs.ext4 -q -U null", "64M"),
        lowers=("x/l0", "x/l1"), top="x/top", upper="x/u", work="x/w"),
    "xfs": Fs(needs=("loop", "xfs"), setup=_writable("mkfs.xfs -q", "300M"),
              lowers=("x/l0", "x/l1"), top="x/top", upper="x/u", work="x/w"),
    # A plain directory of the top-level subvolume, a subvolume reached as a directory, and a
    # directory inside a subvolume mounted with subvol=: each subvolume has its own st_dev,
    # and none of them is mountinfo's dev.  The subvol= mount's root is the lower-only top.
    "btrfs": Fs(
        needs=("loop", "btrfs"),
        setup="""
image fs 300M
mkfs.btrfs -q $T/img/fs.img >/dev/null 2>&1
mount -o loop $T/img/fs.img $T/x
btrfs -q subvolume create $T/x/sv1 >/dev/null; btrfs -q subvolume create $T/x/sv2 >/dev/null
mkdir -p $T/xs
mount -o subvol=sv2 "$(loopdev $T/img/fs.img)" $T/xs
fill $T/x/l0 l0; fill $T/x/sv1 sv1; fill $T/xs/l2 l2; echo top > $T/xs/only_top
fill $T/xs/u xu; mkdir -p $T/xs/w
""",
        lowers=("x/l0", "x/sv1", "xs/l2"), top="xs", upper="xs/u", work="xs/w"),
    "erofs-loop": Fs(
        needs=("loop", "erofs"),
        setup=_SRC + """
mkdir -p $T/img
mkfs.erofs --quiet $T/img/fs.img $T/src
mount -t erofs -o loop,ro $T/img/fs.img $T/x
""",
        lowers=("x/l0", "x/l1"), top="x"),
    # File-backed erofs needs its image on a block filesystem (ENOTBLK on tmpfs), so the image
    # lives in an ext4 loop filesystem at $T/ext; the erofs mount itself has no block device.
    "erofs-file": Fs(
        needs=("loop", "ext4", "erofs", "erofs-file"),
        setup=_SRC + """
image ext 64M
mkfs.ext4 -q $T/img/ext.img
mkdir -p $T/ext
mount -o loop $T/img/ext.img $T/ext
mkfs.erofs --quiet $T/ext/fs.img $T/src
""" + mount_file_backed("$T/ext/fs.img", "$T/x"),
        lowers=("x/l0", "x/l1"), top="x", image="ext/fs.img", loop=False),
    # Squashfs handles are (inode number, generation 0) with a null uuid: they decode on ANY
    # squashfs that has that inode number, to whatever object it is there.  A decoy image with
    # other content is mounted first; only the decoded object's name and type rule it out.
    "squashfs": Fs(
        needs=("loop", "squashfs"),
        setup=_SRC + """
mkdir -p $T/img $T/decoy-src/a/b/c $T/decoy
for i in 1 2 3 4 5 6 7 8 9; do mkdir -p $T/decoy-src/d$i; echo $i > $T/decoy-src/a/b/c/f$i; done
mksquashfs $T/decoy-src $T/img/decoy.img -quiet -noappend >/dev/null
mount -t squashfs -o loop,ro $T/img/decoy.img $T/decoy
mksquashfs $T/src $T/img/fs.img -quiet -noappend >/dev/null
mount -t squashfs -o loop,ro $T/img/fs.img $T/x
""",
        lowers=("x/l0", "x/l1"), top="x"),
    "squashfs-no-exports": Fs(
        needs=("loop", "squashfs"),
        setup=_SRC + """
mkdir -p $T/img
mksquashfs $T/src $T/img/fs.img -quiet -noappend -no-exports >/dev/null
mount -t squashfs -o loop,ro $T/img/fs.img $T/x
""",
        lowers=("x/l0", "x/l1"), top="x", handles=False),
}


def _scenario(fs: Fs) -> str:
    lowers = ":".join(f"$T/{p}" for p in fs.lowers)
    body = f"""
mkdir -p $T/t $T/x $T/m $T/mb $T/mc
mount -t tmpfs t $T/t
fill $T/t/u u; mkdir -p $T/t/w; fill $T/t/lb lb; fill $T/t/lc lc
{fs.setup}
mount -t overlay ovA -o lowerdir={lowers},upperdir=$T/t/u,workdir=$T/t/w $T/m
mount -t overlay ovB -o lowerdir=$T/{fs.top}:$T/t/lb $T/mb
"""
    if fs.upper:
        body += (f"mount -t overlay ovC -o lowerdir=$T/t/lc,upperdir=$T/{fs.upper},"
                 f"workdir=$T/{fs.work} $T/mc\n")
    if fs.image and fs.loop:
        body += f'fact loop "$(loopdev $T/{fs.image})"\n'
    return script(body + "ready; exec sleep 600\n")


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=needs(*fs.needs), id=name)
             for name, fs in FILESYSTEMS.items()])
def test_layers_on_each_filesystem_are_proven(name: str) -> None:
    fs = FILESYSTEMS[name]
    with running(_scenario(fs), timeout=90) as sc:
        t = str(sc.tmp)
        image = f"{t}/{fs.image}" if fs.image else None
        if fs.loop:
            backing = {"source": sc.info.get("loop"), "device": sc.info.get("loop"),
                       "backing_file": image}
        else:
            backing = {"source": image, "backing_file": image}

        def on_fs(rel: str, want: Want) -> Want:
            """The expectation for a layer on the filesystem under test."""
            extra = want.but(path=f"{t}/{rel}")
            return extra.but(backing=backing) if image else extra

        def healthy(rel: str, root: bool) -> Want:
            if not fs.handles:
                return inode_likely(f"{t}/{rel}")
            return (root_proven if root else probe_proven)(f"{t}/{rel}")

        status = "ok" if fs.handles else "info"
        hazards = () if fs.handles else ("no-handles",)
        report = scan_json(sc.pid)

        wants = {"upper": healthy("t/u", True).but(path=f"{t}/t/u"), "work": work_unprovable()}
        for i, rel in enumerate(fs.lowers):
            wants[f"lower[{i}]"] = on_fs(rel, healthy(rel, False))
        check_overlay(overlay_at(report, f"{t}/m"), wants, status=status, hazards=hazards)

        wants = {"lower[0]": on_fs(fs.top, healthy(fs.top, True)),
                 "lower[1]": healthy("t/lb", False).but(path=f"{t}/t/lb")}
        check_overlay(overlay_at(report, f"{t}/mb"), wants, status=status, hazards=hazards)

        if fs.upper and fs.work:
            wants = {"upper": on_fs(fs.upper, healthy(fs.upper, True)),
                     "work": work_unprovable(),
                     "lower[0]": healthy("t/lc", False).but(path=f"{t}/t/lc")}
            check_overlay(overlay_at(report, f"{t}/mc"), wants, status=status, hazards=hazards)


@needs("loop", "squashfs")
def test_twin_squashfs_images_make_the_handle_proof_ambiguous() -> None:
    """Beyond the brief: squashfs handles carry a null uuid and a zero generation, so a handle is
    just an inode number.  Two images built from one tree (or two revisions of an image) give
    the same handle for the same name, and it decodes on both (on 6.18 the second decode
    succeeds, disconnected).  With both mounted, nothing tells which one the overlay uses."""
    body = """
mkdir -p $T/t $T/a $T/b $T/m $T/img
mount -t tmpfs t $T/t
fill $T/t/u u; mkdir -p $T/t/w
fill $T/src/l l
mksquashfs $T/src $T/img/a.img -quiet -noappend >/dev/null
mksquashfs $T/src $T/img/b.img -quiet -noappend >/dev/null
mount -t squashfs -o loop,ro $T/img/a.img $T/a
mount -t squashfs -o loop,ro $T/img/b.img $T/b
mount -t overlay ov -o lowerdir=$T/a/l,upperdir=$T/t/u,workdir=$T/t/w $T/m
ready; exec sleep 600
"""
    with running(script(body), timeout=60) as sc:
        t = str(sc.tmp)
        check_overlay(overlay_at(scan_json(sc.pid), f"{t}/m"), {
            "upper": root_proven(f"{t}/t/u"),
            "work": work_unprovable(),
            "lower[0]": Want("unverified", "probe-handle", "likely", None),
        }, status="unverified")
