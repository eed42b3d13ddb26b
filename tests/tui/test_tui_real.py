"""The TUI on a real private mount namespace with two overlays (one healthy, one relative).

The tmpfs and overlays exist only inside a namespace made by ``unshare -m``; the host's mount
table is never touched (tests/conftest.py checks that).  The namespace starts as a copy of the
host's: overlays inherited from it (a container host's) are detached first, since these tests
judge the whole namespace (its badge, its mount count).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest
from labkit import Lab, private_lab
from tuikit import SIZE, run, screen_text, settle, wait_for

from ovlinspect.tui.app import OvlInspectApp
from ovlinspect.tui.watch import MountWatcher

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

SCRIPT = """set -e
mount -t tmpfs ovltui "$D"
cd "$D"
mkdir -p abs/l1 abs/l2 abs/u abs/w abs/m rel/l1 rel/l2 rel/u rel/w rel/m more/l more/u more/w \
    more/m
echo one > abs/l1/a; echo two > abs/l2/b; echo one > rel/l1/a; echo two > rel/l2/b
mount -t overlay healthy -o lowerdir="$D/abs/l1:$D/abs/l2,upperdir=$D/abs/u,workdir=$D/abs/w" \
    "$D/abs/m"
cd rel
mount -t overlay relative -o lowerdir=l1:l2,upperdir=u,workdir=w m
echo ready
exec sleep 1000
"""


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A private mount namespace: tmpfs on a fresh temp dir, two overlays in it."""
    with private_lab(SCRIPT, "ovlinspect-tui-") as built:
        yield built


def own_mounts(app: OvlInspectApp, lab: Lab) -> list[str]:
    """The mount tree's overlays under the lab's dir, relative to it, sorted."""
    points = [n.data.overlay.mount_point for n in app.mount_tree.root.children]
    return sorted(p.removeprefix(lab.root + "/") for p in points if p.startswith(lab.root + "/"))


def _app(lab: Lab, **kwargs: object) -> OvlInspectApp:
    from ovlinspect.engine.scan import scan

    app = OvlInspectApp(lambda: scan(pids=[lab.pid]), focus_pids=[lab.pid], **kwargs)  # type: ignore[arg-type]
    app.animation_level = "none"
    return app


def test_real_namespace_shows_relative_path_hazard(lab: Lab) -> None:
    async def body() -> None:
        app = _app(lab)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.scan is not None
            assert app.ns_table.row_keys == [f"mnt:{app.scan.namespaces[0].mnt_ns}"]
            assert app.ns_table.get_cell(app.ns_table.row_keys[0], "badge").plain.strip() \
                == "ℹ info"  # noqa: RUF001
            mounts = {n.data.overlay.mount_point: n for n in app.mount_tree.root.children}
            healthy, relative = mounts[f"{lab.root}/abs/m"], mounts[f"{lab.root}/rel/m"]
            assert healthy.label.plain.startswith("✔ ok ")
            assert relative.label.plain.startswith("ℹ info ")  # noqa: RUF001
            assert "ℹ relative-path" in relative.label.plain  # noqa: RUF001
            app.mount_tree.move_cursor(relative)
            await pilot.press("right", "down", "down", "down")  # upper, work, lower[0]
            await pilot.pause()
            layer = app.mount_tree.cursor_node
            assert layer.data.key[-1] == "lower[0]"
            # role, verdict and code first, the declared path last
            assert re.fullmatch(r"lower\[0\] ✔ match +ℹ relative-path +l1", layer.label.plain)  # noqa: RUF001
            text = screen_text(app)
            assert f"real_path {lab.root}/rel/l1" in text
            assert "relative-path" in text

    run(body)


def test_mount_table_change_triggers_a_rescan(lab: Lab) -> None:
    async def body() -> None:
        app = _app(lab, watch_mounts=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.scan is not None)
            assert own_mounts(app, lab) == ["abs/m", "rel/m"]
            m = lab.root + "/more"
            lab.nsenter("mount", "-t", "overlay", "third", "-o",
                        f"lowerdir={m}/l,upperdir={m}/u,workdir={m}/w", f"{m}/m")
            # no key pressed: a mount event (fanotify, else POLLPRI), that namespace rescanned
            await wait_for(pilot, lambda: own_mounts(app, lab) == ["abs/m", "more/m", "rel/m"])
            assert len(app.mount_tree.root.children) == 3
            app.exit()

    run(body)


def test_mount_watcher_reports_changes_of_a_namespace(lab: Lab) -> None:
    import threading

    watcher = MountWatcher()
    seen: list[list[int]] = []
    watcher.set_pids([lab.pid])
    thread = threading.Thread(target=watcher.run, args=(seen.append,), kwargs={"timeout": 0.1})
    thread.start()
    try:
        time.sleep(0.3)
        assert seen == []  # opening the fds is not a change
        lab.nsenter("mount", "-t", "tmpfs", "extra", f"{lab.root}/more/m")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen and seen[0] == [lab.pid]
        watcher.set_pids([])  # dropping a pid closes its fd
    finally:
        watcher.stop()
        thread.join(5)
        watcher.close()
    assert not thread.is_alive()
