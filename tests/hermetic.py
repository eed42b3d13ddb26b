"""Keep a test's private mount namespace down to the test's own mounts.

``unshare -m`` copies the caller's mount table: on a host running containers, a scenario's
namespace starts with the host's overlays (Docker's ``…/merged``, an overlay root, …).  Most tests
look only at the mount points they built (``overlay_at``).  Tests that judge a whole namespace
(``--check``, a namespace's badge, mount counts) first run :func:`detach_inherited_sh` inside it.

It detaches (``MNT_DETACH``) every overlay and fuse-overlayfs mount with whatever is mounted on or
under it, and refuses to run in the namespace the test itself runs in, or on a shared mount (the
unmount would propagate out of the test's namespace); it fails when anything stays.
"""

from __future__ import annotations

import os
import shlex
import sys

DETACH_PY = r"""
import ctypes, os, re, sys

TYPES = {"overlay", "fuse.fuse-overlayfs"}
if os.readlink("/proc/self/ns/mnt") == sys.argv[1]:
    sys.exit("detach-inherited: refusing to run in the test's own mount namespace")
libc = ctypes.CDLL(None, use_errno=True)


def table():
    rows = {}
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            left, right = line.rstrip("\n").split(" - ", 1)
            f = left.split(" ")
            point = re.sub(r"\\([0-7]{3})", lambda mo: chr(int(mo.group(1), 8)), f[4])
            rows[int(f[0])] = (int(f[1]), point, right.split(" ", 1)[0], f[6:])
    return rows


def above(rows, top, mount_id):
    while top in rows and top != mount_id and rows[top][0] != top:
        top = rows[top][0]
    return top == mount_id


kept = {}
while True:
    rows = table()
    todo = [i for i, row in rows.items() if row[2] in TYPES and i not in kept]
    if not todo:
        break
    mount_id = todo[0]
    _, point, _, optional = rows[mount_id]
    if any(field.startswith("shared:") for field in optional):
        kept[mount_id] = point + ": shared mount"
        continue
    try:
        fd = os.open(point, os.O_PATH | os.O_NOFOLLOW)
    except OSError as exc:
        kept[mount_id] = f"{point}: {exc.strerror}"
        continue
    try:
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as handle:
            top = int(re.search(r"^mnt_id:\s*(\d+)", handle.read(), re.M).group(1))
        # The topmost mount at that path is the overlay itself or something mounted on it.
        if not above(rows, top, mount_id):
            kept[mount_id] = point + ": covered by another mount"
        elif libc.umount2(f"/proc/self/fd/{fd}".encode(), 2) != 0:
            kept[mount_id] = f"{point}: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(fd)
if kept:
    sys.exit("detach-inherited: kept " + "; ".join(kept.values()))
"""


def detach_inherited_sh() -> str:
    """A shell command that empties the current (private) namespace of inherited overlays."""
    own = os.readlink("/proc/self/ns/mnt")
    return " ".join(shlex.quote(x) for x in (sys.executable, "-c", DETACH_PY, own))
