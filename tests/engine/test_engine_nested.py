"""Issue #8, scenario 2: an overlay used as a lower of another overlay.

With ``nfs_export=on`` on the inner overlay, the outer overlay's handles for objects served by
the inner one nest the inner overlay's whole handle (outer ovl_fb: type 0xf8, uuid = the inner
overlay's FS_IOC_GETFSUUID); they decode through any mount of the inner overlay.  Without
``nfs_export`` the inner overlay cannot decode handles, so the OUTER overlay gives no overlay
handles at all (0x81 inode handles, even for its root): only inode numbers are left.

Encoding can write: on 6.18, ``name_to_handle_at(AT_HANDLE_FID)`` on the OUTER overlay's ``a/b``
(a directory of the inner overlay's lower[1] under ``a``, a directory merged from both inner
lowers) copies ``a`` and ``a/b`` up into the INNER upper and writes two inner index entries,
although the outer overlay has no nfs_export.  Inspection must change nothing.
"""

from __future__ import annotations

from dataclasses import replace

from engine_kit import (
    check_overlay,
    inode_likely,
    needs,
    probe_proven,
    root_proven,
    script,
    snapshot,
    work_indexed,
    work_unprovable,
)

from scenario import overlay_at, running, scan_json

pytestmark = needs()

EITHER = frozenset({"probe-handle", "index-xattr"})

LAYERS = """
mkdir -p $T/t
mount -t tmpfs t $T/t
cd $T/t
fill il1 il1; mkdir -p il1/a; fill il2 il2; mkdir -p il2/a/b; echo deep > il2/a/b/deep
fill iu iu; mkdir -p iw im
fill ol ol; fill ou ou; mkdir -p ow om
"""


def test_nfs_export_overlay_as_lower_nests_handles_and_stays_untouched() -> None:
    body = LAYERS + """
mount -t overlay inner -o lowerdir=$T/t/il1:$T/t/il2,upperdir=$T/t/iu,workdir=$T/t/iw,\
nfs_export=on,index=on $T/t/im
mount -t overlay outer -o lowerdir=$T/t/ol:$T/t/im,upperdir=$T/t/ou,workdir=$T/t/ow $T/t/om
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = f"{sc.tmp}/t"
        seen = f"/proc/{sc.pid}/root{t}"
        watched = [f"{seen}/iu", f"{seen}/iw", f"{seen}/ou", f"{seen}/ow"]
        before = [snapshot(path) for path in watched]
        report = scan_json(sc.pid)
        assert [snapshot(path) for path in watched] == before, "inspection wrote to a layer"

        # With index=on the upper root's trusted.overlay.origin names the top lower root, so
        # that lower may be proven by the xattr as well as by a probe.
        check_overlay(overlay_at(report, f"{t}/im"), {
            "upper": root_proven(f"{t}/iu"),
            "work": work_indexed(f"{t}/iw"),
            "lower[0]": replace(probe_proven(f"{t}/il1"), method=EITHER),
            "lower[1]": probe_proven(f"{t}/il2"),
        }, status="ok")
        check_overlay(overlay_at(report, f"{t}/om"), {
            "upper": root_proven(f"{t}/ou"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/ol"),
            "lower[1]": probe_proven(f"{t}/im"),
        }, status="ok")


def test_plain_overlay_as_lower_leaves_the_outer_without_handles() -> None:
    body = LAYERS + """
mount -t overlay inner -o lowerdir=$T/t/il1:$T/t/il2,upperdir=$T/t/iu,workdir=$T/t/iw $T/t/im
mount -t overlay outer -o lowerdir=$T/t/ol:$T/t/im,upperdir=$T/t/ou,workdir=$T/t/ow $T/t/om
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        t = f"{sc.tmp}/t"
        report = scan_json(sc.pid)
        check_overlay(overlay_at(report, f"{t}/im"), {
            "upper": root_proven(f"{t}/iu"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/il1"),
            "lower[1]": probe_proven(f"{t}/il2"),
        }, status="ok")
        check_overlay(overlay_at(report, f"{t}/om"), {
            "upper": inode_likely(f"{t}/ou"),
            "work": work_unprovable(),
            "lower[0]": inode_likely(f"{t}/ol"),
            "lower[1]": inode_likely(f"{t}/im"),
        }, status="info", hazards=["no-handles"])
