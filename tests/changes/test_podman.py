"""``ovlinspect diff`` against a real ``podman diff``, on a container made from a local image.

The image is imported from a tarball (no registry) and the container is created and mounted
(``podman mount``, no runtime needed) inside the scenario's private mount namespace, with its own
storage under the scenario's temp dir.  The changes are made in the merged tree, as a process in
the container would.  Where podman is right the A/C/D lines are equal; the places where it is
wrong (README, "ovlinspect diff and podman diff") are checked to differ exactly as documented.
The container's name is not hex: ``podman diff c`` can pick an image whose id starts with ``c``.
"""

from __future__ import annotations

import os
import shutil

import pytest

from scenario import run_cli, running

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed"),
]

PODMAN = """
# podman writes /var/lib/containers/cache and /var/tmp whatever --root says: keep those private
mount -t tmpfs podman-scratch /var/lib; mount -t tmpfs podman-scratch /var/tmp
P="podman --root $T/st --runroot $T/run --tmpdir $T/tmp --storage-driver overlay \
  --cgroup-manager cgroupfs --events-backend none {opts}"
R=$T/rootfs
mkdir -p $R/dir/sub $R/gone/deep $R/repl/old $R/mvme/in
echo a > $R/file; echo b > $R/dir/keep; echo c > $R/dir/sub/x; echo d > $R/gone/deep/y
echo e > $R/repl/old/z; echo f > $R/repl/kept; echo g > $R/mvme/in/w; echo h > $R/mvme/top
echo i > $R/rmme; echo j > $R/linkme
tar -C $R -c . | $P import - localhost/ovlinspect-diff-test >/dev/null 2>&1
$P create --name ovlctr localhost/ovlinspect-diff-test /true >/dev/null
M=$($P mount ovlctr)
cd $M
echo new > added; mkdir -p newdir/inner; echo n > newdir/inner/f; echo more >> file; rm rmme
rm -rf gone; rm -rf repl; mkdir repl; echo now > repl/fresh
echo x > dir/sub/added-deep; ln linkme hardlink; touch "with space"
mv mvme moved
cd /
$P diff ovlctr > $T/podman.txt
echo "ready {{\\"merged\\": \\"$M\\"}}"
exec sleep 600
"""

# Where podman is wrong (README, "ovlinspect diff and podman diff"): its lines there, and ours.
WRONG = {
    # Its overlay differ reads the upper without the lowers: an opaque directory is "deleted".
    "off": ({"D /repl"}, {"C /repl", "D /repl/old", "D /repl/kept"}),
    # With redirect_dir=on it falls back to a naive walk of both trees: a renamed directory
    # is a new tree, and a hard link to an image file leaves that file "unchanged" (same
    # mtime, size and mode) though the container copied it up.
    "on": ({"A /moved", "A /moved/in", "A /moved/in/w", "A /moved/top"},
           {"R /mvme -> /moved", "C /linkme"}),
}


@pytest.mark.parametrize("redirect", ["off", "on"])
def test_same_lines_as_podman_where_podman_is_right(redirect: str) -> None:
    opts = "--storage-opt overlay.mountopt=redirect_dir=on" if redirect == "on" else ""
    with running(PODMAN.format(opts=opts), timeout=120) as sc:
        ours = run_cli("diff", "--pid", str(sc.pid), sc.info["merged"]).stdout.splitlines()
        theirs = (sc.tmp / "podman.txt").read_text().splitlines()
    assert len(ours) == len(set(ours)) and len(theirs) == len(set(theirs))
    podman_wrong, ours_instead = WRONG[redirect]
    assert podman_wrong <= set(theirs) and ours_instead <= set(ours)
    assert set(ours) - ours_instead == set(theirs) - podman_wrong
