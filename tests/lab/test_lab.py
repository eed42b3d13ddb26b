"""Issue #4: the demo lab, on real mounts in private mount namespaces.

The lab's mounts live in the holder's namespace, whose /tmp is its own tmpfs; this test's /tmp is
the host's, which must never see any of it.  Every process started here is killed by pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ovlinspect.kernel import mountapi as m
from ovlinspect.lab import BASE, Lab, LabError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
NAMES = ["healthy", "relative", "detached-lower", "shadowed-upper", "container", "new-api",
         "docker", "volatile", "hostile"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab tests run as root")


# -- helpers -------------------------------------------------------------------------------------

def unescape(text: str) -> str:
    """Undo mountinfo's octal escapes (\\040 and friends)."""
    return re.sub(r"\\([0-7]{3})", lambda mo: chr(int(mo.group(1), 8)), text)


def mounts_of(pid: int) -> dict[str, tuple[str, str]]:
    """mount point -> (fstype, super options) from /proc/PID/mountinfo."""
    table = {}
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            left, right = line.rstrip("\n").split(" - ", 1)
            fstype, _source, options = right.split(" ", 2)
            table[unescape(left.split(" ")[4])] = (fstype, options)
    return table


def host_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read()


def lab_leftovers_in_host_tmp() -> list[str]:
    prefixes = ("ovlinspect-demo", "ovlinspect-lab")
    return sorted(n for n in os.listdir("/tmp") if n.startswith(prefixes))


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie has already dropped its namespaces)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_gone(pids: list[int], timeout: float = 5) -> list[int]:
    """The pids still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return []
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


def kill_quietly(pids: list[int | None]) -> None:
    for pid in pids:
        if pid is not None and not gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float = 15) -> str:
    """stdout of ``proc`` up to the first occurrence of ``marker`` (raw reads: no buffering)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while marker.encode() not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"no {marker!r} within {timeout}s; got {data!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            err = proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"exited before {marker!r}: {data!r} {err!r}")
        data += chunk
    return data.decode()


def keep_pids(text: str) -> tuple[int, int]:
    holder = re.search(r"holder pid:\s+(\d+)", text)
    container = re.search(r"container pid:\s+(\d+)", text)
    assert holder and container, text
    return int(holder.group(1)), int(container.group(1))


# -- the lab in this process ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    before = host_mountinfo()
    with Lab() as running:
        assert host_mountinfo() == before, "starting the lab changed the host's mount table"
        yield running
    assert host_mountinfo() == before


def test_every_scenario_is_built_as_root(lab: Lab) -> None:
    assert lab.skipped == []
    assert [s["name"] for s in lab.scenarios] == NAMES
    assert lab.rootless is False


def test_each_mount_point_is_an_overlay_in_its_namespace(lab: Lab) -> None:
    assert lab.holder_pid and lab.container_pid
    assert lab.pids == [lab.holder_pid, lab.container_pid]
    for scenario in lab.scenarios:
        assert scenario["pid"] in lab.pids
        table = mounts_of(scenario["pid"])
        assert scenario["mount_point"] in table, scenario
        assert table[scenario["mount_point"]][0] == "overlay", scenario
    assert "/tmp/ovlinspect-demo/9-hostile [bold]:smile: x" in mounts_of(lab.holder_pid)


def test_nothing_reaches_the_host(lab: Lab) -> None:
    assert lab.holder_pid is not None
    host_points = mounts_of(os.getpid())
    assert not any(p.startswith(BASE) for p in host_points)
    assert lab_leftovers_in_host_tmp() == []
    assert os.readlink(f"/proc/{lab.holder_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert mounts_of(lab.holder_pid)["/tmp"][0] == "tmpfs"


def test_container_is_pivoted_into_its_overlay(lab: Lab) -> None:
    pid = lab.container_pid
    assert pid is not None
    with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
        assert handle.read().strip() == "demo-container"
    table = mounts_of(pid)
    assert list(table) == ["/"]
    fstype, options = table["/"]
    assert fstype == "overlay" and f"lowerdir={BASE}/.layers/container/lower0" in options
    assert not os.path.exists(f"/proc/{pid}/root{BASE}")
    assert os.path.exists(f"/proc/{pid}/root/etc/os-release")
    assert os.path.exists(f"/proc/{lab.holder_pid}/root{BASE}/.layers/container/lower0")
    namespaces = {os.readlink(f"/proc/{p}/ns/mnt") for p in (pid, lab.holder_pid, os.getpid())}
    assert len(namespaces) == 3


def test_scenario_options_are_what_each_scenario_claims(lab: Lab) -> None:
    assert lab.holder_pid is not None
    table = mounts_of(lab.holder_pid)
    by_name = {s["name"]: s for s in lab.scenarios}
    new_api = table[by_name["new-api"]["mount_point"]][1]
    assert re.search(r"lowerdir\+=[^,]*/low\\054er:1\\040a,lowerdir\+=[^,]*/low\\054er:2\\040b,"
                     r"datadir\+=[^,]*/data\\054only:3\\040c,", new_api), new_api
    assert "metacopy=on" in new_api
    assert [la["role"] for la in by_name["new-api"]["lower_layers"]] == ["lower", "lower", "data"]
    relative = table[by_name["relative"]["mount_point"]][1]
    assert "lowerdir=l1:l2,upperdir=upper,workdir=work" in relative
    assert re.search(r"lowerdir=l/[A-Z2-7]{26}:l/[A-Z2-7]{26},upperdir=[0-9a-f]{64}/diff",
                     table[by_name["docker"]["mount_point"]][1])
    assert "volatile" in table[by_name["volatile"]["mount_point"]][1]
    detached = f"{BASE}/.layers/detached/l1"
    assert detached not in table, "the detached lower's tmpfs is still mounted"
    shadow = table[f"{BASE}/.layers/shadowed/upper"]
    assert shadow[0] == "tmpfs"
    root = f"/proc/{lab.holder_pid}/root"
    merged = by_name["new-api"]["mount_point"]
    with open(f"{root}{merged}/from-data.txt", encoding="utf-8") as handle:
        assert "data-only layer" in handle.read()
    for scenario in lab.scenarios:
        if scenario["name"] != "container":
            names = set(os.listdir(root + scenario["mount_point"]))
            assert {"shared.txt", "only-upper.txt", "only-lower0.txt"} <= names, scenario


def test_stop_leaves_nothing() -> None:
    before = host_mountinfo()
    lab = Lab().start()
    pids = lab.pids
    assert len(pids) == 2 and not any(gone(p) for p in pids)
    lab.stop()
    assert wait_gone(pids, 2) == []
    lab.stop()  # idempotent
    assert host_mountinfo() == before
    assert lab_leftovers_in_host_tmp() == []


def test_rootless_path_as_root() -> None:
    with Lab(rootless=True) as lab:
        assert lab.rootless and lab.holder_pid is not None
        built = [s["name"] for s in lab.scenarios]
        assert sorted(built + [s["name"] for s in lab.skipped]) == sorted(NAMES)
        assert "healthy" in built, lab.skipped
        table = mounts_of(lab.holder_pid)
        for scenario in lab.scenarios:
            fstype, options = mounts_of(scenario["pid"])[scenario["mount_point"]]
            assert fstype == "overlay" and "userxattr" in options.split(","), scenario
        assert "/tmp" in table
        with open(f"/proc/{lab.holder_pid}/uid_map", encoding="ascii") as handle:
            assert handle.read().split() == ["0", "0", "1"]


# -- `ovlinspect demo --keep` as a separate process ------------------------------------------------

def _start_keep(*extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ovlinspect", "demo", "--keep", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO,
                            start_new_session=True)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_keep_then_signal_leaves_no_leak(how: str) -> None:
    before = host_mountinfo()
    proc = _start_keep()
    holder = container = None
    try:
        text = read_until(proc, "Press Ctrl-C")
        holder, container = keep_pids(text)
        assert f"findmnt -N {holder}" in text and f"--pid {holder} --pid {container}" in text
        assert mounts_of(holder)[f"{BASE}/1-healthy"][0] == "overlay"
        assert mounts_of(container)["/"][0] == "overlay"
        os.kill(proc.pid, getattr(signal, how))
        code = proc.wait(timeout=10)
        assert code == (-signal.SIGKILL if how == "SIGKILL" else 0)
        assert wait_gone([holder, container]) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_quietly([holder, container])
        proc.stdout and proc.stdout.close()
        proc.stderr and proc.stderr.close()
    assert host_mountinfo() == before
    assert lab_leftovers_in_host_tmp() == []


# -- rootless as a real unprivileged user ---------------------------------------------------------

ROOTLESS_SCRIPT = """
import json, os, sys
from ovlinspect.lab import Lab, LabError
try:
    lab = Lab().start()
except LabError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(0)
try:
    mounts = {}
    for pid in lab.pids:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="replace") as handle:
            mounts[pid] = handle.read()
    print(json.dumps({"uid": os.getuid(), "rootless": lab.rootless, "pids": lab.pids,
                      "scenarios": lab.scenarios, "skipped": lab.skipped, "mounts": mounts}))
finally:
    lab.stop()
"""

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _python_for_nobody() -> str | None:
    """A Python >= 3.11 that uid 65534 can run and re-run (the holder is its own child)."""
    check = ("import subprocess, sys; assert sys.version_info >= (3, 11); "
             "sys.exit(subprocess.call([sys.executable, '-c', '']))")
    for exe in (sys.executable, "/usr/bin/python3"):
        try:
            probe = subprocess.run([*NOBODY, exe, "-c", check], capture_output=True, timeout=20,
                                   cwd="/")
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return exe
    return None


def test_rootless_as_uid_65534() -> None:
    exe = _python_for_nobody()
    if exe is None:
        pytest.skip("no Python >= 3.11 that uid 65534 may execute (setpriv missing?)")
    before = host_mountinfo()
    run = subprocess.run([*NOBODY, exe, "-c", ROOTLESS_SCRIPT], capture_output=True, text=True,
                         env=ENV, cwd="/", timeout=60)
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    if "error" in report:
        if "user namespace" in report["error"]:
            pytest.skip(f"the kernel refuses user namespaces here: {report['error']}")
        pytest.fail(report["error"])
    assert report["uid"] == 65534 and report["rootless"] is True
    built = [s["name"] for s in report["scenarios"]]
    assert sorted(built + [s["name"] for s in report["skipped"]]) == sorted(NAMES)
    assert "healthy" in built, report["skipped"]
    for scenario in report["scenarios"]:
        text = report["mounts"][str(scenario["pid"])]
        escaped = scenario["mount_point"].replace(" ", "\\040")
        line = next((ln for ln in text.splitlines() if ln.split(" ")[4] == escaped), None)
        assert line is not None, scenario
        assert " - overlay " in line and "userxattr" in line, line
    assert wait_gone(report["pids"]) == []
    assert host_mountinfo() == before
    assert lab_leftovers_in_host_tmp() == []


def test_userns_refused_is_a_clear_error_and_exit_2() -> None:
    limit = Path("/proc/sys/user/max_user_namespaces").read_text()
    # Inside a fresh user namespace, lower *that namespace's* limit to 0 (the host's stays).
    script = ("echo 0 > /proc/sys/user/max_user_namespaces || exit 99; "
              f"exec {sys.executable} -m ovlinspect demo --rootless --json")
    try:
        run = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script],
                             capture_output=True, text=True, env=ENV, cwd=REPO, timeout=60)
    except FileNotFoundError:
        pytest.skip("unshare(1) is not installed")
    assert Path("/proc/sys/user/max_user_namespaces").read_text() == limit
    if run.returncode == 99 or "unshare failed" in run.stderr:
        pytest.skip(f"cannot set up a user namespace with a zero limit: {run.stderr.strip()}")
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    assert "refused to create a user namespace" in run.stderr
    assert "Traceback" not in run.stderr


def test_lab_error_carries_the_holders_last_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Lab, "holder_module", "ovlinspect.lab.no_such_module")
    with pytest.raises(LabError, match=r"exited before it was ready: .*no_such_module"):
        Lab().start(timeout=10)


# -- `ovlinspect demo --json` (needs the core scanner) ------------------------------------------

JSON_WRAPPER = """
import sys
from ovlinspect.cli import main
code = main(["demo", "--json"])
sys.stderr.write("TEXTUAL-IMPORTED=%s\\n" % ("textual" in sys.modules))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def demo_json() -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    before = host_mountinfo()
    run = subprocess.run([sys.executable, "-c", JSON_WRAPPER], capture_output=True, text=True,
                         env=ENV, cwd=REPO, timeout=120)
    assert host_mountinfo() == before
    assert run.returncode == 0, run.stderr
    return run, json.loads(run.stdout)


def _overlays_by_pid_and_mount_point(document: dict[str, Any]) -> dict[tuple[int, str], Any]:
    found = {}
    for ns in document["namespaces"]:
        pids = {*ns.get("pids", []), *(p["pid"] for p in ns.get("processes", []))}
        for overlay in ns["overlays"]:
            for pid in pids:
                found[(pid, overlay["mount_point"])] = overlay
    return found


def test_demo_json_is_clean_and_light(
        demo_json: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    run, document = demo_json
    assert "TEXTUAL-IMPORTED=False" in run.stderr
    assert "holder pid:" in run.stderr and "holder pid:" not in run.stdout
    lab = document["lab"]
    assert [s["name"] for s in lab["scenarios"]] == NAMES
    assert wait_gone([lab["holder_pid"], lab["container_pid"]]) == []


def test_demo_json_hazards(
        demo_json: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Each scenario's expected hazard codes appear on its overlay (on the named layer)."""
    _, document = demo_json
    overlays = _overlays_by_pid_and_mount_point(document)
    problems = []
    for scenario in document["lab"]["scenarios"]:
        overlay = overlays.get((scenario["pid"], scenario["mount_point"]))
        if overlay is None:
            problems.append(f"{scenario['name']}: no overlay at {scenario['mount_point']!r}")
            continue
        hazards = overlay["hazards"] + [h for la in overlay["layers"] for h in la["hazards"]]
        for code in scenario["expect"]:
            layer = scenario["expect_layer"].get(code)
            if not any(h["code"] == code and layer in (None, h["layer"]) for h in hazards):
                problems.append(f"{scenario['name']}: missing {code}"
                                + (f" on {layer}" if layer else ""))
        if not scenario["expect"]:
            bad = [h["code"] for h in hazards if h["severity"] in ("warning", "error")]
            if bad:
                problems.append(f"{scenario['name']}: unexpected {bad}")
    assert problems == []


def test_demo_json_layer_roles_and_paths(
        demo_json: tuple[subprocess.CompletedProcess[str], dict[str, Any]]) -> None:
    """Lower and data-only layers parse with the declared roles and paths, in order."""
    _, document = demo_json
    overlays = _overlays_by_pid_and_mount_point(document)
    for scenario in document["lab"]["scenarios"]:
        overlay = overlays[(scenario["pid"], scenario["mount_point"])]
        got = [(la["role"], la["declared"]) for la in overlay["layers"]
               if la["role"] in ("lower", "data")]
        assert got == [(la["role"], la["declared"]) for la in scenario["lower_layers"]], scenario


def test_demo_check_status_matches_its_report() -> None:
    run = subprocess.run([sys.executable, "-m", "ovlinspect", "demo", "--check"],
                         capture_output=True, text=True, env=ENV, cwd=REPO, timeout=120)
    assert run.returncode in (0, 1), run.stderr
    verdicts = [ln for ln in run.stdout.splitlines() if ln.startswith(("ok ", "FAIL"))]
    assert len(verdicts) == len(NAMES)
    assert run.returncode == (1 if any(v.startswith("FAIL") for v in verdicts) else 0)


# -- the mount API wrappers ---------------------------------------------------------------------

def test_wrappers_raise_oserror_with_errno() -> None:
    with pytest.raises(OSError) as info:
        m.fsopen("no-such-filesystem-type")
    assert info.value.errno == 19 and "fsopen" in str(info.value)  # ENODEV


NEW_API_SCRIPT = """
import os
from ovlinspect.kernel import mountapi as m
m.unshare(m.CLONE_NEWNS)
m.make_rprivate("/")
m.mount("t", "/tmp", "tmpfs", 0, "mode=755")
for d in ("a,b:c d", "e", "f", "g", "u", "w", "m1", "m2"):
    os.mkdir("/tmp/" + d)
    open(f"/tmp/{d}/only-" + d[0], "w").close()
m.overlay_new_api("/tmp/m1", lowers=["/tmp/a,b:c d", "/tmp/e"], datas=["/tmp/f"],
                  upper="/tmp/u", work="/tmp/w")
fd = m.fsopen("overlay")
layer = os.open("/tmp/g", os.O_RDONLY | os.O_DIRECTORY)
m.fsconfig_set_fd(fd, "lowerdir+", layer)
m.fsconfig_set_string(fd, "lowerdir+", "/tmp/e")
m.fsconfig_create(fd)
mnt = m.fsmount(fd)
m.move_mount(mnt, "", m.AT_FDCWD, "/tmp/m2")
try:
    m.mount("overlay", "/tmp/m2", "overlay", 0, "lowerdir=/nonexistent")
except OSError as exc:
    print("ERR", exc.errno, exc)
print(open("/proc/self/mountinfo").read())
"""


def test_new_api_wrappers_in_a_private_namespace() -> None:
    before = host_mountinfo()
    run = subprocess.run([sys.executable, "-c", NEW_API_SCRIPT], capture_output=True, text=True,
                         env=ENV, cwd="/", timeout=60)
    assert run.returncode == 0, run.stderr
    assert host_mountinfo() == before
    assert "ERR 2 [Errno 2] mount(overlay on '/tmp/m2')" in run.stdout
    lines = {ln.split(" ")[4]: ln for ln in run.stdout.splitlines() if " - overlay " in ln}
    assert ("lowerdir+=/tmp/a\\054b:c\\040d,lowerdir+=/tmp/e,datadir+=/tmp/f,upperdir=/tmp/u,"
            "workdir=/tmp/w") in lines["/tmp/m1"]
    assert "lowerdir+=/tmp/g,lowerdir+=/tmp/e" in lines["/tmp/m2"]
