"""A real overlay for the files and changes views, built in a private mount namespace.

``unshare -m --propagation private`` runs a shell that mounts a tmpfs on a fresh temp dir and an
overlay (two lowers, an upper; ``index``, ``metacopy``, ``redirect_dir`` on) in it, changes it
through the merged directory as a container would, then sleeps.  The host's mount table is never
touched (tests/conftest.py checks it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hermetic import detach_inherited_sh
from tuikit import settle, wait_for

from ovlinspect.tui.app import OvlInspectApp

HOSTILE = "[bold]x[red]:smile:\x1b[2J\nend[@click=app.quit]q\udcff"
"""A file name with markup, an emoji code, an escape sequence, a newline and a non-UTF-8 byte."""
BIG = 5000

SCRIPT = r"""set -e
mount -t tmpfs ovlfiles "$D"
cd "$D"
mkdir -p l0 l1 u w m
echo up > u/fu
echo 0 > l0/f0
echo 1 > l1/f1
echo cp > l1/cp
echo gone > l1/gone
echo own > l1/own
mkdir -p l1/opq l1/rd l1/big l0/d l1/d
echo x > l1/opq/x; echo r > l1/rd/in; echo d1 > l1/d/in1; echo d0 > l0/d/in0
"$PY" -c 'import os, sys
os.close(os.open(os.fsencode("l1/" + sys.argv[1]), os.O_CREAT | os.O_WRONLY, 0o644))
for i in range(int(sys.argv[2])):
    os.close(os.open(f"l1/big/e{i:05d}", os.O_CREAT | os.O_WRONLY, 0o644))
' "$HOSTILE" "$BIG"
mount -t overlay ovlfiles \
    -o "lowerdir=$D/l0:$D/l1,upperdir=$D/u,workdir=$D/w,index=on,metacopy=on,redirect_dir=on" \
    "$D/m"
echo more >> m/cp
echo new > m/new
"$PY" -c 'import os, sys; open(os.fsencode("m/new-" + sys.argv[1]), "w").close()' "$HOSTILE"
rm m/gone
rm -rf m/opq; mkdir m/opq; echo y > m/opq/y
chown 1:1 m/own
mv m/rd m/rd2
echo ready
exec sleep 1000
"""


@dataclass
class Lab:
    """The scenario's process (its namespace holds the overlay) and its directory."""

    pid: int
    root: str

    @property
    def merged(self) -> str:
        return f"{self.root}/m"

    def nsenter(self, *argv: str) -> None:
        """Run a command inside the lab's mount namespace (never the host's)."""
        subprocess.run(["nsenter", "-t", str(self.pid), "-m", *argv], check=True, timeout=10)


@contextmanager
def private_lab(script: str, prefix: str, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """Run ``script`` (``$D`` is a fresh temp dir) in a private mount namespace whose inherited
    overlays are detached first; it prints ``ready`` when built.  Killed and removed after."""
    import pytest

    root = tempfile.mkdtemp(prefix=prefix)
    full = f"{detach_inherited_sh()}\n{script}"
    # os.environ values are encoded with surrogateescape: odd names reach the script as bytes.
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", full],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {}), "D": root})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.wait(timeout=10)
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"cannot build the private mount namespace: {err.strip()}")
        yield Lab(proc.pid, root)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def overlay_lab() -> Iterator[Lab]:
    """Build the files/changes scenario; kill it and remove its directory afterwards."""
    with private_lab(SCRIPT, "ovlinspect-files-", {"PY": sys.executable, "BIG": str(BIG),
                                                   "HOSTILE": HOSTILE}) as lab:
        yield lab


def lab_app(lab: Lab) -> OvlInspectApp:
    """The app scanning only the lab's namespace."""
    from ovlinspect.engine.scan import scan

    app = OvlInspectApp(lambda: scan(pids=[lab.pid]), focus_pids=[lab.pid])
    app.animation_level = "none"
    return app


async def select_lab_mount(pilot: Any, lab: Lab) -> None:
    """Wait for the scan, then put the tree cursor on the lab's overlay."""
    app = pilot.app
    await settle(pilot)
    await wait_for(pilot, lambda: not app.mount_tree.filling)
    node = next(n for n in app.mount_tree.root.children
                if n.data is not None and n.data.overlay is not None
                and n.data.overlay.mount_point == lab.merged)
    app.mount_tree.move_cursor(node)
    app.mount_tree.focus()
    await pilot.pause()
