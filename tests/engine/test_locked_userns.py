"""Layer paths behind symlinks in a mount namespace of a user namespace (rootless podman's).

A mount copied into a mount namespace owned by a less privileged user namespace
(``unshare -U -r -m``) has its atime flags locked: mount_setattr refuses any change of them with
EPERM, even to root (checked on 6.18), so a clone of it cannot be made noatime.  It can be made
read-only, and read-only alone keeps every atime (touch_atime needs write access to the mount).
Before, the symlink of a Docker-like relative ``lowerdir=l/AAAA`` could not be read, its path did
not resolve, and elimination called the layer ``mismatch`` although the decoded real layer was
exactly where the symlink points.

And, whatever the reading method: a declared path that could not be followed for a reason other
than a missing name (EPERM, EACCES, ELOOP, ...) is never ``mismatch``, only ``unverified`` with
the reason code ``path-unreadable``.

Every symlink's atime is aged two days first, so that relatime would update it on any read.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import time

import pytest
from engine_kit import needs, quiet_snapshot

from scenario import REPO, run_cli, running

pytestmark = needs("userns")

TWO_DAYS_NS = 2 * 86400 * 10**9

# A relatime tmpfs holding a Docker-like layout, an overlay whose lower is given relative to the
# mounter's cwd through the l/AAAA symlink, and a child in a new user + mount namespace (its
# copies of these mounts have locked atime flags).  The child is the process inspected.
LOCKED = r"""
mkdir -p $T/fs
mount -t tmpfs -o relatime locked-test $T/fs
F=$T/fs; mkdir -p $F/l1/d $F/u $F/w $F/m $F/l
echo a > $F/l1/d/a; ln -s ../l1 $F/l/AAAA
cd $F
mount -t overlay overlay -o @LOWER@,upperdir=$F/u,workdir=$F/w $F/m
cd /
@AFTER@
unshare -U -r -m --propagation private sleep 600 &
B=$!
sleep 0.3
echo "ready {\"pid\": \"$B\"}"
wait
"""


def _script(lower: str = "lowerdir=l/AAAA", after: str = "") -> str:
    return LOCKED.replace("@LOWER@", lower).replace("@AFTER@", after)


def _age_symlinks(root: str) -> None:
    old = time.time_ns() - TWO_DAYS_NS
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(here, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                os.utime(path, ns=(old, st.st_mtime_ns), follow_symlinks=False)
    time.sleep(0.05)  # past the coarse clock tick


def _overlay(report: dict) -> dict:
    found = [ov for ns in report["namespaces"] for ov in ns["overlays"]
             if ov["mount_point"].endswith("/fs/m")]
    assert len(found) == 1, [ov["mount_point"] for ns in report["namespaces"]
                             for ov in ns["overlays"]]
    return found[0]


def _lower(report: dict) -> dict:
    return next(layer for layer in _overlay(report)["layers"] if layer["role"] == "lower")


def _codes(item: dict) -> set[str]:
    return {h["code"] for h in item.get("hazards", [])}


def _scan_untouched(pid: int, seen: str, *args: str, patch: str = "") -> tuple[dict, int]:
    """``--pid PID --json`` (with ``patch`` run first in the scanning process), asserting that
    nothing under ``seen`` changed, atimes included; the report and ``--check``'s exit code."""
    _age_symlinks(seen)
    before = quiet_snapshot(seen)
    outs = []
    for argv in ([*args], [*args, "--check"]):
        code = f"{patch}\nfrom ovlinspect.cli import main\nraise SystemExit(main({argv!r}))"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)})
        assert "Traceback" not in done.stderr, done.stderr
        outs.append(done)
    after = quiet_snapshot(seen)
    changed = [rel for rel in sorted(set(before) | set(after)) if before.get(rel) != after.get(rel)]
    assert not changed, f"the scan changed {changed}"
    return json.loads(outs[0].stdout), outs[1].returncode


def test_locked_mount_refuses_noatime_but_a_readonly_clone_keeps_atime() -> None:
    """The kernel facts the fix rests on, checked on a clone made in the locked namespace."""
    from ovlinspect.host.quietlink import quiet_clone
    from ovlinspect.kernel.mountattr import MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, mount_setattr

    with running(_script(), bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}/fs/l"
        _age_symlinks(seen)
        dirfd = os.open(seen, os.O_PATH | os.O_DIRECTORY)
        try:
            clone = quiet_clone(dirfd, sc.pid)
            assert clone is not None
            try:
                flags = os.fstatvfs(clone).f_flag
                assert flags & os.ST_RDONLY
                assert not flags & os.ST_NOATIME  # the locked atime flags stayed relatime
                with pytest.raises(OSError) as refused:
                    mount_setattr(clone, MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
                assert refused.value.errno == errno.EPERM
                atime = os.lstat("AAAA", dir_fd=dirfd).st_atime_ns
                link = os.open("AAAA", os.O_PATH | os.O_NOFOLLOW, dir_fd=clone)
                try:
                    assert os.readlink("", dir_fd=link) == "../l1"
                finally:
                    os.close(link)
                assert os.lstat("AAAA", dir_fd=dirfd).st_atime_ns == atime
            finally:
                os.close(clone)
            # the control: the same read through the layer's own (relatime) mount updates it
            os.readlink("AAAA", dir_fd=dirfd)
            assert os.lstat("AAAA", dir_fd=dirfd).st_atime_ns != atime
        finally:
            os.close(dirfd)


def test_docker_relative_lower_in_a_locked_namespace_is_proven() -> None:
    with running(_script(), bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}/fs"
        report, check_rc = _scan_untouched(sc.pid, seen, "--pid", str(sc.pid), "--json")
        lower = _lower(report)
        assert lower["verified"] == "match", lower
        assert lower["proof"]["reason"] == "probe-match"
        assert lower["path"] == f"{sc.tmp}/fs/l1"
        assert [s["target"] for s in lower["symlinks"]] == ["../l1"]
        assert not _codes(lower) & {"not-found", "stale-path", "unreadable"}
        assert _overlay(report)["status"] in ("ok", "info")
        assert check_rc == 0


# Every clone refuses to be made quiet (as on a kernel or a mount that refuses read-only too):
# the symlink cannot be read without changing its atime, so the path cannot be followed.
NO_QUIET_CLONE = """
import errno
import ovlinspect.host.quietlink as quietlink
def refuse(fd):
    raise OSError(errno.EPERM, "refused (test)")
quietlink.quiet = refuse
"""


def test_a_path_that_cannot_be_followed_is_unverified_never_mismatch() -> None:
    with running(_script(), bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}/fs"
        report, check_rc = _scan_untouched(sc.pid, seen, "--pid", str(sc.pid), "--json",
                                           patch=NO_QUIET_CLONE)
        lower = _lower(report)
        assert lower["verified"] == "unverified", lower
        assert lower["proof"]["reason"] == "path-unreadable"
        assert lower["path"] is None
        # the merged entries still decode to the real layer, where the symlink points
        assert lower["real_path"] == f"{sc.tmp}/fs/l1"
        assert "unreadable" in _codes(lower)
        assert not _codes(lower) & {"not-found", "stale-path"}
        overlay = _overlay(report)
        assert overlay["status"] == "unverified"
        assert all(layer["verified"] != "mismatch" for layer in overlay["layers"])
        assert check_rc == 0


def test_a_symlink_loop_in_an_absolute_path_is_unverified_never_mismatch() -> None:
    # After the mount, the layer's symlink is made to point at itself: ELOOP, not ENOENT.
    script = _script(lower="lowerdir=$F/l/AAAA", after="ln -sfn AAAA $T/fs/l/AAAA")
    with running(script, bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}/fs"
        report, _check_rc = _scan_untouched(sc.pid, seen, "--pid", str(sc.pid), "--json")
        lower = _lower(report)
        assert lower["verified"] == "unverified", lower
        assert lower["proof"]["reason"] == "path-unreadable"
        assert lower["real_path"] == f"{sc.tmp}/fs/l1"
        assert "unreadable" in _codes(lower)
        assert not _codes(lower) & {"not-found", "stale-path"}


def test_a_missing_path_is_still_disproved() -> None:
    # The contrast: ENOENT says the path leads nowhere, so elimination may call it mismatch.
    script = _script(lower="lowerdir=$F/l/AAAA", after="rm $T/fs/l/AAAA")
    with running(script, bare=True) as sc:
        report = json.loads(run_cli("--pid", str(sc.pid), "--json", check_rc=None).stdout)
        lower = _lower(report)
        assert lower["verified"] == "mismatch", lower
        assert lower["proof"]["reason"] == "elimination"
        assert lower["real_path"] == f"{sc.tmp}/fs/l1"
        assert "not-found" in _codes(lower)


def test_the_clone_works_by_the_common_syscall_numbers_on_aarch64() -> None:
    # open_tree and mount_setattr have one number on every architecture but alpha and mips:
    # the scan must not give up (ENOSYS) on an architecture other than x86_64.
    with running(_script(), bare=True) as sc:
        seen = f"/proc/{sc.pid}/root{sc.tmp}/fs"
        report, _check_rc = _scan_untouched(
            sc.pid, seen, "--pid", str(sc.pid), "--json",
            patch='import platform\nplatform.machine = lambda: "aarch64"')
        lower = _lower(report)
        assert (lower["verified"], lower["proof"]["reason"]) == ("match", "probe-match"), lower
