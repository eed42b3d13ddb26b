"""Issue #8, scenarios 7 and 8 and the rootless demo: whose view the layers are seen from.

- 7: a namespace whose only process is chrooted into the overlay's merged dir (a container with
  no unchrooted process).  The layer paths exist only outside the chroot, in the namespace's
  own tree (its root is reachable with setns(2)), partly on a tmpfs only that namespace has.
- 8: a rootless overlay (user namespace, ``userxattr``).  It gives no overlay handles (0x81
  inode handles, even for its root), so only inode numbers are left: merged non-directories
  show the real inode number (samefs: the overlay's st_dev; several filesystems: one pseudo
  st_dev per real filesystem), merged directories show the real (top lower, or upper for the
  root) inode number only when every layer is on one filesystem or with xino.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from engine_kit import (
    check_overlay,
    inode_likely,
    needs,
    probe_proven,
    root_proven,
    script,
    work_unprovable,
)

from scenario import REPO, overlay_at, running, scan_json

CHROOT = """
mkdir -p $T/t $T/m
mount -t tmpfs t $T/t
fill $T/t/u u; mkdir -p $T/t/w; fill $T/l2 l2
fill $T/t/l1 l1; mkdir -p $T/t/l1/usr
# a root the chroot can run sleep in: /usr bound in after mounting, the rest as on the host
for d in bin sbin lib lib32 lib64 libx32; do
    if [ -L /$d ]; then ln -s "$(readlink /$d)" $T/t/l1/$d
    elif [ -d /$d ]; then mkdir $T/t/l1/$d; fi
done
mount -t overlay ov -o lowerdir=$T/t/l1:$T/l2,upperdir=$T/t/u,workdir=$T/t/w $T/m
for d in usr bin sbin lib lib32 lib64 libx32; do
    if [ -d /$d ] && [ ! -L /$d ]; then mount --bind -o ro /$d $T/m/$d; fi
done
ready
exec chroot $T/m sleep 600
"""


def _wait_for_exec(pid: int, comm: str) -> None:
    """Wait until ``pid`` runs ``comm`` (the scenario prints ready just before its exec)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/comm", encoding="ascii") as handle:
            if handle.read().strip() == comm:
                return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never ran {comm}")


@needs("chroot")
def test_chroot_only_namespace_resolves_layers_in_the_namespace_root() -> None:
    # Upper, work and lower[0] live on a tmpfs of the namespace that neither the host nor the
    # chrooted process can see; lower[1] is a host directory.  All are in the namespace's own
    # tree (outside the chroot), so none is foreign: they resolve from the namespace's root.
    with running(script(CHROOT)) as sc:
        t = str(sc.tmp)
        _wait_for_exec(sc.pid, "sleep")
        assert os.readlink(f"/proc/{sc.pid}/root") == f"{t}/m"
        check_overlay(overlay_at(scan_json(sc.pid), f"{t}/m"), {
            "upper": root_proven(f"{t}/t/u").but(path=f"{t}/t/u"),
            "work": work_unprovable().but(path=f"{t}/t/w"),
            "lower[0]": probe_proven(f"{t}/t/l1").but(path=f"{t}/t/l1"),
            "lower[1]": probe_proven(f"{t}/l2").but(path=f"{t}/l2"),
        }, status="ok")


ROOTLESS = """
fill $T/l1 l1; fill $T/l2 l2; mkdir -p $T/t $T/m $T/ms
cat > $T/rootless.sh <<'EOF'
set -e
mount -t tmpfs t $T/t
mkdir -p $T/t/u $T/t/w $T/t/su $T/t/sw $T/t/sl
echo u > $T/t/u/only_u; echo su > $T/t/su/only_su; echo sl > $T/t/sl/only_sl
# layers on two filesystems (host dirs + a tmpfs of this user namespace)
mount -t overlay ov -o lowerdir=$T/l1:$T/l2,upperdir=$T/t/u,workdir=$T/t/w,userxattr $T/m
# every layer on one tmpfs
mount -t overlay ovs -o lowerdir=$T/t/sl,upperdir=$T/t/su,workdir=$T/t/sw,userxattr $T/ms
cd /
echo ready
exec sleep 600
EOF
export T
exec unshare -U -r -m --propagation private sh $T/rootless.sh
"""


@needs("userns")
def test_rootless_overlay_has_no_handles_and_falls_back_to_inodes() -> None:
    with running(script(ROOTLESS)) as sc:
        t = str(sc.tmp)
        report = scan_json(sc.pid)
        check_overlay(overlay_at(report, f"{t}/m"), {
            "upper": inode_likely(f"{t}/t/u"),
            "work": work_unprovable(),
            "lower[0]": inode_likely(f"{t}/l1"),
            "lower[1]": inode_likely(f"{t}/l2"),
        }, status="info", hazards=["no-handles"])
        check_overlay(overlay_at(report, f"{t}/ms"), {
            "upper": inode_likely(f"{t}/t/su"),
            "work": work_unprovable(),
            "lower[0]": inode_likely(f"{t}/t/sl"),
        }, status="info", hazards=["no-handles"])


@needs("userns")
def test_rootless_demo_passes_its_own_check() -> None:
    done = subprocess.run([sys.executable, "-m", "ovlinspect", "demo", "--rootless", "--check"],
                          capture_output=True, text=True, timeout=600, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
