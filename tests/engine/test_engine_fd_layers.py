"""Issue #8, scenario 3: layers given as file descriptors and as detached mounts.

What mountinfo prints for each (6.18, new mount API):

- ``FSCONFIG_SET_FD`` with a directory fd: the fd's d_path at setup time, i.e. the real path;
- ``FSCONFIG_SET_FD`` with an ``open_tree(OPEN_TREE_CLONE)`` fd: ``/`` (the detached mount's
  root; a subdirectory of a clone prints as ``/sub``);
- ``lowerdir+=/proc/self/fd/N`` as a string: ``/proc/self/fd/N`` literally.

The last two name nothing a restore can open (``fd-path``), and their directories cannot be
listed for a probe.  The merged tree's handles still decode to the real directories: top-level
entries from no other layer have as parent the two fd layers' roots, and a name both hold
(``both``, served by the higher one) tells which is which.  Without such a shared name two
fd layers with disjoint names could not be told apart.
"""

from __future__ import annotations

from engine_kit import check_overlay, needs, probe_proven, root_proven, work_unprovable

from scenario import overlay_at, running, scan_json

pytestmark = needs("fd-layers")

SCENARIO = """
import json, os, time
from ovlinspect.kernel import mountapi as m

t = f"{T}/t"
os.makedirs(t)
m.mount("t", t, "tmpfs")
for name in ("l0", "l1", "l2", "u"):
    os.makedirs(f"{t}/{name}")
    with open(f"{t}/{name}/only_{name}", "w") as handle:
        handle.write(name)
for name in ("l1", "l2"):  # the merged 'both' is l1's: it orders the two fd layers
    with open(f"{t}/{name}/both", "w") as handle:
        handle.write(name)
os.makedirs(f"{t}/w")
os.makedirs(f"{t}/m")

plain = os.open(f"{t}/l0", os.O_RDONLY | os.O_DIRECTORY)
clone = m.open_tree(m.AT_FDCWD, f"{t}/l1")
by_path = os.open(f"{t}/l2", os.O_RDONLY | os.O_DIRECTORY)
fs = m.fsopen("overlay")
m.fsconfig_set_fd(fs, "lowerdir+", plain)
m.fsconfig_set_fd(fs, "lowerdir+", clone)
m.fsconfig_set_string(fs, "lowerdir+", f"/proc/self/fd/{by_path}")
m.fsconfig_set_string(fs, "upperdir", f"{t}/u")
m.fsconfig_set_string(fs, "workdir", f"{t}/w")
m.fsconfig_create(fs)
mnt = m.fsmount(fs)
m.move_mount(mnt, "", m.AT_FDCWD, f"{t}/m")
for fd in (plain, clone, by_path, fs, mnt):
    os.close(fd)
print("ready" + json.dumps({}), flush=True)
time.sleep(600)
"""


def test_fd_and_detached_layers_are_fd_path_and_proven_by_handle() -> None:
    with running(SCENARIO, python=True) as sc:
        t = f"{sc.tmp}/t"
        ov = overlay_at(scan_json(sc.pid), f"{t}/m")
        declared = [x["declared"] for x in ov["layers"] if x["role"] == "lower"]
        assert declared[:2] == [f"{t}/l0", "/"], declared
        assert declared[2].startswith("/proc/self/fd/"), declared
        check_overlay(ov, {
            "upper": root_proven(f"{t}/u"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/l0"),
            "lower[1]": probe_proven(f"{t}/l1").but(hazards=["fd-path"]),
            "lower[2]": probe_proven(f"{t}/l2").but(hazards=["fd-path"]),
        }, status="warning")


def test_one_detached_lower_is_proven_by_elimination() -> None:
    # Only lower[1] is a detached clone ('/'); the other layers are plain paths.
    scenario = SCENARIO.replace('f"/proc/self/fd/{by_path}"', 'f"{t}/l2"')
    with running(scenario, python=True) as sc:
        t = f"{sc.tmp}/t"
        check_overlay(overlay_at(scan_json(sc.pid), f"{t}/m"), {
            "upper": root_proven(f"{t}/u"),
            "work": work_unprovable(),
            "lower[0]": probe_proven(f"{t}/l0"),
            "lower[1]": probe_proven(f"{t}/l1").but(hazards=["fd-path"]),
            "lower[2]": probe_proven(f"{t}/l2"),
        }, status="warning")
