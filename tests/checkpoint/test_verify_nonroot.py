"""``dump --verify`` as a user without root: a rebuild in a user namespace, or a reason code.

Each scenario is built by root in a private mount namespace; the dumper runs as uid 65534
(``setpriv``), with an interpreter that uid may execute.  The realistic case is a rootless
overlay that 65534 itself mounted in its own user+mount namespace with ``userxattr`` (as rootless
podman does): it gives no overlay handles, so its layers are only ``likely`` (inode numbers) and
``verified`` must stay false, even though the rebuild reproduces the tree.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest
from engine_kit import needs, quiet_snapshot

from scenario import REPO, running

USER = 65534
SETPRIV = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups"]


@functools.cache
def _user_python() -> str | None:
    """An interpreter (3.11+) the unprivileged user may execute (the venv may live in /root)."""
    for candidate in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if not candidate:
            continue
        done = subprocess.run([*SETPRIV, candidate, "-c",
                               "import sys; sys.exit(sys.version_info < (3, 11))"],
                              capture_output=True, timeout=30, cwd="/", check=False)
        if done.returncode == 0:
            return candidate
    return None


@functools.cache
def _why_not() -> str | None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "needs root and setpriv to build the scenarios and drop privileges"
    if _user_python() is None:
        return f"no python 3.11+ that uid {USER} may execute"
    done = subprocess.run([*SETPRIV, "unshare", "-U", "-r", "-m", "true"], capture_output=True,
                          timeout=30, check=False)
    if done.returncode != 0:
        return "the kernel refuses unprivileged user namespaces"
    return None


nonroot = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "ok")


def dump_as_user(*args: str, enter: int | None = None,
                 userns: bool = False) -> tuple[int, dict[str, Any]]:
    """``ovlinspect dump ARGS`` as uid 65534 (inside pid ``enter``'s mount namespace; with
    ``userns``, 65534 itself enters pid ``enter``'s user and mount namespaces)."""
    python = _user_python()
    assert python is not None
    cmd = [*SETPRIV, python, "-m", "ovlinspect", "dump", *args]
    if enter is not None and userns:
        cmd = [*SETPRIV, "nsenter", "-t", str(enter), "-U", "-m", "--preserve-credentials",
               *cmd[len(SETPRIV):]]
    elif enter is not None:
        cmd = ["nsenter", "-t", str(enter), "-m", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "Traceback" not in done.stderr and done.stdout, (done.returncode, done.stderr)
    return done.returncode, json.loads(done.stdout)


def _codes(entry: dict[str, Any]) -> dict[str, str]:
    return {r["layer"]: r["code"] for r in entry["reasons"]}


# A rootless overlay owned by 65534: its holder mounts it in its own user+mount namespace.
ROOTLESS = f"""
chown {USER}:{USER} $T && chmod 755 $T
cat > $T/holder.sh <<'EOF'
set -e
cd $T
mkdir -p l0 l1 u w m
echo a > l0/only_l0; echo b > l1/only_l1; mkdir -p l1/dir l1/hidden; echo c > l1/dir/f
echo d > l1/gone; echo h > l1/hidden/x; ln -s dir/f l1/link
mount -t overlay ov -o lowerdir=$T/l0:$T/l1,upperdir=$T/u,workdir=$T/w,userxattr m
rm m/gone; rm -r m/hidden; mkdir m/hidden; echo y > m/hidden/y
echo x >> m/dir/f; echo up > m/only_u; chmod 700 m/dir; ln -s only_u m/uplink
cd /
echo ready
exec sleep 600
EOF
export T
exec {" ".join(SETPRIV)} unshare -U -r -m --propagation private sh $T/holder.sh
"""


@nonroot
@needs()
def test_rootless_overlay_rebuilds_in_a_user_namespace_but_is_only_likely() -> None:
    with running(ROOTLESS) as sc:
        point = f"{sc.tmp}/m"
        # atimes included: listing a merged directory without O_NOATIME would touch the layers'.
        before = {d: quiet_snapshot(str(sc.tmp / d)) for d in ("u", "w", "l0", "l1")}
        rc, doc = dump_as_user("--pid", str(sc.pid), point, "--verify")
        assert rc == 3
        entry = doc["overlays"][0]
        assert entry["restorable"] is False and entry["recipe"] == []
        assert _codes(entry) == {"upper": "likely-only", "lower[0]": "likely-only",
                                 "lower[1]": "likely-only"}
        by_label = {(i["role"], i["index"]): i for i in entry["layers"]}
        for key, name in ((("upper", 0), "u"), (("lower", 0), "l0"), (("lower", 1), "l1")):
            item = by_label[key]
            assert item["status"] == "likely" and item["proof"]["method"] == "inode"
            assert item["proof"]["reason"] == "inode-consistent"
            assert item["restore_path"] == f"{sc.tmp}/{name}"
            assert item["ino"] == os.stat(sc.tmp / name).st_ino
        check = doc["verify"][0]
        assert check["verified"] is False and check["reason"] == "likely-only", check
        assert check["rebuild"] == "user-namespace" and check["live"] == "quiet-clone"
        assert check["tree"] == "same" and check["difference"] is None
        assert check["unreadable"] == 0 and check["entries"] >= 8
        assert check["layers"] == {"upper": True, "lower[0]": True, "lower[1]": True}
        assert check["upper_in_use"] is True
        assert {d: quiet_snapshot(str(sc.tmp / d)) for d in ("u", "w", "l0", "l1")} == before
        # The restore refuses it, with the dump's reasons.
        from ckkit import restore, save

        rc, out, _ = restore(save({"schema": 1, "kind": "ovlinspect-checkpoint",
                                   "overlays": [entry]}, sc.tmp / "d.json"), sc.tmp / "m",
                             tree=False)
        assert rc == 1 and out["result"] == "refused"
        assert {r["code"] for r in out["reasons"]} == {"likely-only"}


@nonroot
@needs()
def test_root_cannot_prove_a_rootless_overlay_either() -> None:
    # The overlay was mounted without CAP_DAC_READ_SEARCH: it gives no handles to anyone.  Root
    # rebuilds it in a plain mount namespace (trusted.* readable), with the same verdict.
    from ckkit import dump

    with running(ROOTLESS) as sc:
        doc = dump(sc.pid, f"{sc.tmp}/m", "--verify", rc=3)
        check = doc["verify"][0]
        assert (check["verified"], check["reason"]) == (False, "likely-only"), check
        assert check["rebuild"] == "mount-namespace" and check["tree"] == "same"
        assert check["upper_in_use"] is True


# The upper and lower of a rootless overlay on a tmpfs, then a second tmpfs mounted over it and
# filled by the same steps: the decoy directories have the very same inode numbers and names.
DECOY = f"""
chown {USER}:{USER} $T && chmod 755 $T
cat > $T/holder.sh <<'EOF'
set -e
mkdir -p $T/t $T/m
build() {{ mkdir -p $T/t/l0 $T/t/u $T/t/w; echo a > $T/t/l0/only_l0; echo u > $T/t/u/only_u; }}
mount -t tmpfs real $T/t && build
mount -t overlay ov -o lowerdir=$T/t/l0,upperdir=$T/t/u,workdir=$T/t/w,userxattr $T/m
REAL=$(mountpoint -d $T/t)
mount -t tmpfs decoy $T/t && build
cd /
echo "ready {{\\"real\\": \\"$REAL\\", \\"decoy\\": \\"$(mountpoint -d $T/t)\\"}}"
exec sleep 600
EOF
export T
exec {" ".join(SETPRIV)} unshare -U -r -m --propagation private sh $T/holder.sh
"""


@nonroot
@needs()
def test_a_decoy_with_the_same_inode_numbers_is_never_verified() -> None:
    # Why inode evidence is not enough to restore: the declared paths now name another
    # filesystem's directories, which the engine cannot tell from the real ones (same inode
    # numbers, same names), and whose rebuild gives the same tree.  A restore would write into
    # the decoy.  Only the in-use test exposes the decoy upper (a decoy lower stays hidden).
    with running(DECOY) as sc:
        assert sc.info["real"] != sc.info["decoy"]
        # The decoy tmpfs is only in the holder's namespace: 65534 enters it (as uid 0 of its
        # own user namespace, which is not root: the rebuild takes a nested user namespace).
        rc, doc = dump_as_user(f"{sc.tmp}/m", "--verify", enter=sc.pid, userns=True)
        entry = doc["overlays"][0]
        upper = next(i for i in entry["layers"] if i["role"] == "upper")
        assert upper["dev"] == sc.info["decoy"]
        assert upper["proof"]["reason"] == "inode-consistent"
        assert _codes(entry) == {"upper": "likely-only", "lower[0]": "likely-only"}
        lower = next(i for i in entry["layers"] if i["role"] == "lower")
        assert lower["dev"] == sc.info["decoy"] and entry["restorable"] is False
        check = doc["verify"][0]
        assert check["tree"] == "same"
        # What does tell them apart: the decoy upper is the upper of no mounted overlay.
        assert check["upper_in_use"] is False
        assert check["verified"] is False and check["reason"] == "upper-not-in-use"
        assert rc == 1


# Overlays mounted by root on a tmpfs whose layers 65534 owns (so it may read them with
# O_NOATIME), the uuid of which is unique: handles prove every layer without decoding.
PROVEN = f"""
chmod 755 $T && mkdir -p $T/t && mount -t tmpfs -o mode=755 t $T/t
cd $T/t
mkdir -p l0 l1 u w m u2 w2 m2
echo a > l0/only_l0; echo b > l1/only_l1; mkdir -p l1/dir; echo c > l1/dir/f; echo g > l1/gone
chown -R {USER}:{USER} l0 l1 u w u2 w2
mount -t overlay ov -o lowerdir=$T/t/l0:$T/t/l1,upperdir=$T/t/u,workdir=$T/t/w,userxattr m
rm m/gone; echo x >> m/dir/f; ln -s only_l0 m/ulink; echo r > m/rootfile; chmod 644 m/rootfile
mount -t overlay ov2 -o lowerdir=$T/t/l0:$T/t/l1,upperdir=$T/t/u2,workdir=$T/t/w2 m2
rm m2/gone
mkdir -p l3 u3 w3 m3 && echo s > l3/secret && chmod 600 l3/secret
chown {USER}:{USER} l3 u3 w3
mount -t overlay ov3 -o lowerdir=$T/t/l3:$T/t/l0,upperdir=$T/t/u3,workdir=$T/t/w3,userxattr m3
mkdir -p l4/dir l5/dir u4 w4 m4 && echo a > l4/dir/a && echo b > l5/dir/b
chown {USER}:{USER} u4 w4
mount -t overlay ov4 -o lowerdir=$T/t/l4:$T/t/l5,upperdir=$T/t/u4,workdir=$T/t/w4,userxattr m4
mkdir -p u5 w5 m5 && chown {USER}:{USER} u5 w5
mount -t overlay ov5 -o lowerdir=$T/t/l0:$T/t/l1,upperdir=$T/t/u5,workdir=$T/t/w5,userxattr m5
ln -s only_l0 m5/ulink; echo r > m5/rootfile; mkdir m5/sub && mount -t tmpfs sub m5/sub
cd /
echo ready
exec sleep 600
"""


def _aged(roots: list[str]) -> dict[str, Any]:
    """Set every atime under ``roots`` two days back (any read would then update it, relatime
    or not), and return a snapshot of them, atimes included.  All are aged before any is
    snapshot: a whiteout in the upper is a hard link to one in the workdir."""
    old = time.time_ns() - 2 * 86400 * 10**9
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                os.utime(path, ns=(old, st.st_mtime_ns), follow_symlinks=False)
    return {root: quiet_snapshot(root) for root in roots}


@nonroot
@needs()
def test_proven_userxattr_overlay_is_verified_in_a_user_namespace() -> None:
    # 65534 may not clone a mount of root's mount namespace: the live tree is read through a
    # read-only clone made in a new user+mount namespace.  The upper holds a symlink (readlink
    # has no O_NOATIME) and a root-owned file (O_NOATIME refused): neither atime may change.
    with running(PROVEN) as sc:
        layers = [f"/proc/{sc.pid}/root{sc.tmp}/t/{d}" for d in ("u", "w", "l0", "l1")]
        before = _aged(layers)
        rc, doc = dump_as_user(f"{sc.tmp}/t/m", "--verify", enter=sc.pid)
        assert rc == 0, doc["verify"]
        entry = doc["overlays"][0]
        assert entry["restorable"] is True, entry["reasons"]
        check = doc["verify"][0]
        assert check["verified"] is True and check["reason"] is None, check
        assert check["rebuild"] == "user-namespace" and check["tree"] == "same"
        assert check["live"] == "quiet-clone"
        assert {d: quiet_snapshot(d) for d in layers} == before  # atimes too


@nonroot
@needs()
def test_no_quiet_clone_means_the_live_tree_is_not_read() -> None:
    # m5 has a tmpfs mounted inside its merged tree: in a new user namespace that child mount
    # is locked, so the kernel refuses a non-recursive clone (EINVAL), and 65534 may not clone
    # in root's namespace at all.  Reading through the live mount would touch the upper's
    # atimes (ulink, rootfile): it is not read, and verified is false.
    with running(PROVEN) as sc:
        layers = [f"/proc/{sc.pid}/root{sc.tmp}/t/{d}" for d in ("u5", "w5", "l0", "l1")]
        before = _aged(layers)
        rc, doc = dump_as_user(f"{sc.tmp}/t/m5", "--verify", enter=sc.pid)
        assert doc["overlays"][0]["restorable"] is True, doc["overlays"][0]["reasons"]
        check = doc["verify"][0]
        assert (rc, check["verified"], check["reason"]) == (3, False, "live-not-quiet"), check
        assert "live" not in check and "tree" not in check and "rebuild" not in check
        assert {d: quiet_snapshot(d) for d in layers} == before  # atimes too


# A writer that keeps creating and deleting files in the merged root while --verify runs.
BUSY = f"""
chmod 755 $T && mkdir -p $T/t && mount -t tmpfs -o mode=755 t $T/t
cd $T/t
mkdir -p l0 l1 u w m
echo a > l0/only_l0; echo b > l1/only_l1; mkdir -p l1/dir; echo c > l1/dir/f
chown -R {USER}:{USER} l0 l1 u w
mount -t overlay ov -o lowerdir=$T/t/l0:$T/t/l1,upperdir=$T/t/u,workdir=$T/t/w,userxattr m
(while :; do i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo $i > m/f$i; done; rm -f m/f*; done) \
    >/dev/null 2>&1 &
cd /
echo ready
exec sleep 600
"""


def busy_verify(run: Any) -> list[tuple[int, Any, Any]]:
    """Up to 8 runs of ``run()`` (rc, verify entry) against the busy overlay, until one says
    ``live-changed``; every run must be a clean verdict, never a traceback or ``differs``."""
    seen: list[tuple[int, Any, Any]] = []
    for _ in range(8):
        rc, check = run()
        seen.append((rc, check["verified"], check["reason"]))
        assert seen[-1] in {(0, True, None), (3, None, "live-changed")}, check
        if check["reason"] == "live-changed":
            assert check["tree"] == "changed" and check["difference"] is None
            assert check["changed"]["path"].startswith("/")
            break
    return seen


@nonroot
@needs()
def test_a_tree_written_during_verify_is_live_changed_not_a_crash() -> None:
    with running(BUSY) as sc:
        def run() -> tuple[int, Any]:
            rc, doc = dump_as_user(f"{sc.tmp}/t/m", "--verify", enter=sc.pid)
            return rc, doc["verify"][0]

        seen = busy_verify(run)
        assert seen[-1] == (3, None, "live-changed"), seen


@nonroot
@needs()
def test_trusted_xattr_overlay_is_not_rebuilt_without_root() -> None:
    with running(PROVEN) as sc:
        rc, doc = dump_as_user(f"{sc.tmp}/t/m2", "--verify", enter=sc.pid)
        assert rc == 3
        assert doc["overlays"][0]["restorable"] is True
        check = doc["verify"][0]
        assert check["verified"] is False and check["reason"] == "trusted-xattrs"
        assert "tree" not in check and "entries" not in check


@nonroot
@needs()
def test_entries_the_user_cannot_read_keep_it_unproven() -> None:
    # m3's lower holds a root-owned 0600 file: it cannot be hashed as 65534 in either tree.
    with running(PROVEN) as sc:
        rc, doc = dump_as_user(f"{sc.tmp}/t/m3", "--verify", enter=sc.pid)
        assert doc["overlays"][0]["restorable"] is True, doc["overlays"][0]["reasons"]
        check = doc["verify"][0]
        assert (rc, check["verified"], check["reason"]) == (3, False, "unreadable"), check
        assert check["tree"] == "same"
        assert check["unreadable"] == 1 and check["first_unreadable"] == "/secret"


def test_a_refused_user_namespace_is_reported_not_raised(tmp_path, monkeypatch) -> None:
    # Where unprivileged user namespaces are disabled, unshare(CLONE_NEWUSER) fails (EPERM,
    # or ENOSPC with user.max_user_namespaces=0): simulated in the forked child.
    from ovlinspect.checkpoint import model as m
    from ovlinspect.checkpoint import verify
    from ovlinspect.checkpoint.compare import Bounds
    from ovlinspect.kernel import mountapi

    def refuse(flags: int) -> None:
        raise OSError(1, "unshare: Operation not permitted")

    monkeypatch.setattr(mountapi, "unshare", refuse)
    monkeypatch.setattr(verify, "privileged", lambda: False)
    monkeypatch.setattr(verify, "_live_root",
                        lambda ov: (os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY), "quiet-clone"))
    ov = m.DumpOverlay(mount_id=1, unique_id=None, mount_point="/x", root="/",
                       fs_type="overlay", propagation=["private"], mount_attrs=[], mnt_ns=None,
                       pid=os.getpid(), options=m.OverlayOptions(userxattr=True),
                       syntax="legacy", restorable=True)
    entry = verify.verify_overlay(ov, Bounds())
    assert (entry["verified"], entry["reason"]) == (False, "no-user-namespace"), entry
    assert entry["rebuild"] == "user-namespace" and "tree" not in entry
    ov.options.userxattr = None
    entry = verify.verify_overlay(ov, Bounds())
    assert (entry["verified"], entry["reason"]) == (False, "trusted-xattrs")
    ov.restorable, ov.reasons = False, [m.Reason(m.R_DETACHED, "lower[0]", "")]
    entry = verify.verify_overlay(ov, Bounds())
    assert (entry["verified"], entry["reason"]) == (None, "not-restorable")


@nonroot
@needs()
def test_layers_unproven_for_lack_of_privilege_need_root() -> None:
    # m4's lowers belong to root.  The merged "dir" is served by lower[0] (its handle proves
    # it); lower[1] serves no top-level entry, so it must be listed to be probed, and only an
    # owner may list it with O_NOATIME: unproven where root would prove it.  Nothing is rebuilt.
    with running(PROVEN) as sc:
        rc, doc = dump_as_user(f"{sc.tmp}/t/m4", "--verify", enter=sc.pid)
        entry = doc["overlays"][0]
        assert _codes(entry) == {"lower[1]": "unverified"}
        lower = next(i for i in entry["layers"] if i["role"] == "lower" and i["index"] == 1)
        assert lower["proof"]["reason"] == "noatime-refused"
        check = doc["verify"][0]
        assert (rc, check["verified"], check["reason"]) == (3, False, "needs-root"), check
        assert check["skipped"] == ["unverified"] and "rebuild" not in check
