"""Helpers for the checkpoint tests: dump a scenario, restore it inside a private namespace,
and list a merged tree so two trees can be compared.

Every restore runs under ``unshare -m --propagation private`` (optionally entered into a
scenario's namespace first with ``nsenter``), so nothing is ever mounted in the host's namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from scenario import REPO, run_cli

TREE = r"""
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
for dirpath, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(dirs + files):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        item = [oct(st.st_mode)]
        if stat.S_ISREG(st.st_mode):
            item.append(hashlib.sha256(open(p, "rb").read()).hexdigest())
        elif stat.S_ISLNK(st.st_mode):
            item.append(os.readlink(p))
        out[os.fsencode(os.path.relpath(p, root)).hex()] = item
print(json.dumps(out, sort_keys=True))
"""


def dump(pid: int, *args: str, rc: int = 0) -> dict[str, Any]:
    """``ovlinspect dump --pid PID ARGS`` parsed."""
    done = run_cli("dump", "--pid", str(pid), *args, check_rc=rc)
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def dump_entered(enter: int, *args: str) -> tuple[int, dict[str, Any]]:
    """``ovlinspect dump ARGS`` run inside pid ``enter``'s mount namespace (where a scenario's
    own mounts are), as root: exit status and the document."""
    done = subprocess.run(["nsenter", "-t", str(enter), "-m", sys.executable, "-m", "ovlinspect",
                           "dump", *args], capture_output=True, text=True, timeout=180,
                          cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "Traceback" not in done.stderr and done.stdout, (done.returncode, done.stderr)
    return done.returncode, json.loads(done.stdout)


def only(doc: dict[str, Any], mount_point: str) -> dict[str, Any]:
    """The dump entry of the overlay at ``mount_point``."""
    hits = [o for o in doc["overlays"] if o["mount_point"] == mount_point]
    assert len(hits) == 1, [o["mount_point"] for o in doc["overlays"]]
    return hits[0]


def reasons(entry: dict[str, Any]) -> set[str]:
    """Blocking reason codes of a dump entry."""
    return {r["code"] for r in entry["reasons"]}


def save(doc: dict[str, Any], path: Path) -> Path:
    """Write a dump document to ``path``."""
    path.write_text(json.dumps(doc))
    return path


def restore(dump_file: Path, target: Path, *extra: str, enter: int | None = None,
            tree: bool = True) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """``ovlinspect restore`` in a throwaway private namespace (inside pid ``enter``'s namespace
    when given); returns (exit status, its JSON, the restored merged tree or None)."""
    py = sys.executable
    script = (f'"{py}" -m ovlinspect restore "$1" --target "$2" {" ".join(extra)} > "$3"; '
              f'rc=$?; if [ $rc = 0 ] && [ "$5" = 1 ]; then "{py}" -c "$4" "$2" > "$3.tree"; '
              'fi; if mountpoint -q "$2"; then echo yes > "$3.mp"; else echo no > "$3.mp"; fi; '
              'exit $rc')
    out = dump_file.with_suffix(".restore.json")
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
           str(dump_file), str(target), str(out), TREE, "1" if tree else "0"]
    if enter is not None:
        cmd = ["nsenter", "-t", str(enter), "-m", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "Traceback" not in done.stderr, done.stderr
    result = json.loads(out.read_text()) if out.read_text().strip() else {}
    listing = None
    tree_file = Path(str(out) + ".tree")
    if tree_file.exists():
        listing = json.loads(tree_file.read_text())
    result["_target_mounted_after"] = Path(str(out) + ".mp").read_text().strip() == "yes"
    result["_stderr"] = done.stderr[-2000:]
    return done.returncode, result, listing


def live_tree(pid: int, mount_point: str) -> dict[str, Any]:
    """The merged tree of a scenario's overlay, listed inside its namespace."""
    done = subprocess.run(["nsenter", "-t", str(pid), "-m", sys.executable, "-c", TREE,
                           mount_point], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def dump_inside(pid: int, *args: str) -> dict[str, Any]:
    """``ovlinspect dump`` run inside pid's mount namespace (the dumper's view is that one)."""
    done = subprocess.run(["nsenter", "-t", str(pid), "-m", sys.executable, "-m", "ovlinspect",
                           "dump", *args], capture_output=True, text=True, timeout=180, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, (done.returncode, done.stderr)
    return json.loads(done.stdout)


def kill_holder(pid: int) -> None:
    """SIGKILL a scenario's holder and wait until its namespace (and overlay) is gone."""
    import signal
    import time

    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} did not die")


def roundtrip(pid: int, mount_point: str, workdir: Path, *, live: dict[str, Any] | None = None,
              doc: dict[str, Any] | None = None, enter: int | None = None,
              kill: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Dump, list the live tree, kill the holder, restore, and check the merged tree is the
    one that was dumped.  Returns (dump entry, restore result)."""
    doc = doc if doc is not None else dump(pid)
    entry = only(doc, mount_point)
    assert entry["restorable"] is True, entry["reasons"]
    want = live if live is not None else live_tree(pid, mount_point)
    if kill:
        kill_holder(pid)
    target = workdir / "restored"
    target.mkdir(exist_ok=True)
    rc, out, got = restore(save(doc, workdir / "dump.json"), target,
                           "--mount", str(entry["mount_id"]), enter=enter)
    assert rc == 0, out
    assert out["verified"] is True and all(c["ok"] for c in out["layers"]), out
    assert got == want
    return entry, out


def proc_tree(pid: int, path: str = "/") -> dict[str, Any]:
    """A merged tree listed through /proc/PID/root (for a container without python)."""
    done = subprocess.run([sys.executable, "-c", TREE, f"/proc/{pid}/root{path}"],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def fsconfig_steps(entry: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """The recipe's fsconfig steps for ``key`` (e.g. ``lowerdir+``)."""
    return [s for s in entry["recipe"] if s["call"] == "fsconfig" and s.get("key") == key]
