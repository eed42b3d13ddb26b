"""Issue #8, scenarios 4, 5, 6, 9, 10: declared paths that lie, and mounts around layers.

- 4: an overlay bind-mounted from a subdirectory (mountinfo root ``/sub``).  The root handle of
  a merged directory present in upper and lower names its LOWER (origin) directory (flags 0),
  so the mount's root handle proves the top lower, never the upper; the upper is proven by a
  pure-upper entry (flag PATH_UPPER) below ``/sub``.
- 5: a lower declared through a bind mount that was unmounted after the overlay was mounted,
  while its filesystem stays mounted elsewhere: the path now names the directory underneath.
- 6: a null-uuid ext4 lower lazily unmounted: mounted nowhere, its handles decode on no
  mounted filesystem (a second null-uuid ext4 still mounted gives ESTALE).
- 9: two overlays on one upper directory (index=off; the kernel only warns).
- 10: mounts below layer paths, which the overlay does not see.
"""

from __future__ import annotations

from dataclasses import replace

from engine_kit import (
    Want,
    check_overlay,
    detached,
    needs,
    probe_proven,
    root_proven,
    script,
    work_unprovable,
)

from scenario import overlay_at, running, scan_json

pytestmark = needs()

SUBDIR = """
mkdir -p $T/t $T/b
mount -t tmpfs t $T/t
cd $T/t
fill u u; fill u/sub sub_u; mkdir -p w m
fill l1 l1; fill l1/sub sub_l1
fill l2 l2; fill l2/sub sub_l2
mount -t overlay ov -o lowerdir=$T/t/l1:$T/t/l2,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
mount --bind $T/t/m/sub $T/b
"""

ROOT_OR_PROBE = frozenset({"root-handle", "probe-handle"})


def _subdir_wants(t: str) -> dict[str, Want]:
    return {
        "upper": probe_proven(f"{t}/u"),
        "work": work_unprovable(),
        "lower[0]": replace(probe_proven(f"{t}/l1"), method=ROOT_OR_PROBE),
        "lower[1]": probe_proven(f"{t}/l2"),
    }


def test_overlay_bound_from_a_subdirectory_proves_its_upper() -> None:
    with running(script(SUBDIR + "cd /\nready; exec sleep 600\n")) as sc:
        t = f"{sc.tmp}/t"
        report = scan_json(sc.pid)
        check_overlay(overlay_at(report, f"{t}/m"), {
            "upper": root_proven(f"{t}/u"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/l1"),
            "lower[1]": probe_proven(f"{t}/l2"),
        }, status="ok")
        bound = overlay_at(report, f"{sc.tmp}/b")
        assert bound["root"] == "/sub"
        check_overlay(bound, _subdir_wants(t), status="ok")


def test_only_a_subdirectory_bind_left_still_proves_every_layer() -> None:
    # The overlay's own mount is gone: only the bind of /sub reaches it.
    with running(script(SUBDIR + "umount $T/t/m\ncd /\nready; exec sleep 600\n")) as sc:
        t = f"{sc.tmp}/t"
        bound = overlay_at(scan_json(sc.pid), f"{sc.tmp}/b")
        assert bound["root"] == "/sub"
        check_overlay(bound, _subdir_wants(t), status="ok")


def test_unmounted_bind_lower_is_stale_and_real_path_is_where_the_fs_still_is() -> None:
    body = """
mkdir -p $T/t $T/s
mount -t tmpfs t $T/t
mount -t tmpfs s $T/s
fill $T/s/layer l2
fill $T/t/l1 l1; fill $T/t/u u; mkdir -p $T/t/w $T/t/m
# what the path shows once the bind is gone: a leftover with the same name, another object
fill $T/t/l2 l2
mount --bind $T/s/layer $T/t/l2
mount -t overlay ov -o lowerdir=$T/t/l1:$T/t/l2,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
umount $T/t/l2
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = f"{sc.tmp}/t"
        check_overlay(overlay_at(scan_json(sc.pid), f"{t}/m"), {
            "upper": root_proven(f"{t}/u"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/l1"),
            "lower[1]": replace(probe_proven(f"{sc.tmp}/s/layer"), verified="mismatch").but(
                hazards=["stale-path"], path=f"{t}/l2"),
        }, status="error")


@needs("loop", "ext4")
def test_lazily_unmounted_null_uuid_lower_is_source_detached() -> None:
    body = """
mkdir -p $T/t $T/d $T/e
mount -t tmpfs t $T/t
fill $T/t/u u; mkdir -p $T/t/w $T/t/m
image d 64M; mkfs.ext4 -q -U null $T/img/d.img
image e 64M; mkfs.ext4 -q -U null $T/img/e.img
mount -o loop $T/img/d.img $T/d
mount -o loop $T/img/e.img $T/e
fill $T/d/l d; fill $T/e/l e
mount -t overlay ov -o lowerdir=$T/d/l:$T/e/l,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
umount -l $T/e
fact loop "$(loopdev $T/img/d.img)"
cd /
ready; exec sleep 600
"""
    with running(script(body), timeout=60) as sc:
        t = f"{sc.tmp}/t"
        loop = sc.info["loop"]
        check_overlay(overlay_at(scan_json(sc.pid), f"{t}/m"), {
            "upper": root_proven(f"{t}/u"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{sc.tmp}/d/l").but(backing={
                "device": loop, "backing_file": f"{sc.tmp}/img/d.img"}),
            "lower[1]": detached("not-found"),
        }, status="error")


def test_two_overlays_on_one_upper_are_shared_upper() -> None:
    body = """
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
fill u u; mkdir -p w1 w2 m1 m2; fill l1 l1; fill l2 l2
mount -t overlay one -o lowerdir=$T/t/l1,upperdir=$T/t/u,workdir=$T/t/w1,index=off $T/t/m1
mount -t overlay two -o lowerdir=$T/t/l2,upperdir=$T/t/u,workdir=$T/t/w2,index=off $T/t/m2
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = f"{sc.tmp}/t"
        report = scan_json(sc.pid)
        for n in (1, 2):
            check_overlay(overlay_at(report, f"{t}/m{n}"), {
                "upper": root_proven(f"{t}/u").but(hazards=["shared-upper"]),
                "work": work_unprovable(),
                "lower[0]": probe_proven(f"{t}/l{n}"),
            }, status="warning")


def test_mounts_below_layer_paths_are_hidden_submounts() -> None:
    # One mounted before the overlay (below a lower), one after (below the upper).
    body = """
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
fill u u; mkdir -p u/later w m; fill l1 l1; mkdir -p l1/sub; echo l1 > l1/sub/mine; fill l2 l2
mount -t tmpfs hidden $T/t/l1/sub
echo hidden > $T/t/l1/sub/theirs
mount -t overlay ov -o lowerdir=$T/t/l1:$T/t/l2,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
mount -t tmpfs later $T/t/u/later
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = f"{sc.tmp}/t"
        check_overlay(overlay_at(scan_json(sc.pid), f"{t}/m"), {
            "upper": root_proven(f"{t}/u").but(hazards=["hidden-submount"]),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/l1").but(hazards=["hidden-submount"]),
            "lower[1]": probe_proven(f"{t}/l2"),
        }, status="warning")
