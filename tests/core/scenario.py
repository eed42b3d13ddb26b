"""Build overlay scenarios inside throwaway private mount namespaces, for tests and benches.

Each scenario is a shell (or Python) script run under ``unshare -m --propagation private``.  It
mounts what it needs (all invisible to the host), prints ``ready`` and then sleeps; the test
inspects that process with ``--pid`` exactly as a user would.  Killing it removes every mount.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Scenario:
    """A running scenario: the pid to inspect and its private temp dir."""

    pid: int
    tmp: Path
    info: dict[str, str]


@contextmanager
def running(script: str, *, python: bool = False, timeout: float = 20,
            bare: bool = False) -> Iterator[Scenario]:
    """Run ``script`` in a new private mount namespace until the block ends.

    The script sees ``$T`` (shell) or ``T`` (Python) naming a fresh temp dir, and must print one
    line ``ready`` (optionally followed by a JSON object of facts) when it is set up.  The
    namespace starts as a copy of the caller's, overlays of a container host included; with
    ``bare`` those are detached first, for tests that judge the whole namespace.
    """
    tmp = Path(tempfile.mkdtemp(prefix="ovlinspect-test-"))
    if python:
        cmd = [sys.executable, "-c", f"T = {str(tmp)!r}\n{script}"]
    else:
        cmd = ["sh", "-c", f"set -e\nT={tmp}\n{script}"]
    if bare:
        from hermetic import detach_inherited_sh  # tests/: on sys.path through its conftest

        cmd = ["sh", "-c", f'{detach_inherited_sh()} && exec "$@"', "bare", *cmd]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", *cmd],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp, env=env, start_new_session=True,
    )
    try:
        line = _read_ready(proc, timeout)
        info = json.loads(line[len("ready"):] or "{}")
        yield Scenario(pid=int(info.pop("pid", proc.pid)), tmp=tmp, info=info)
    finally:
        _kill(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _read_ready(proc: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise RuntimeError("scenario did not get ready in time")
    line = proc.stdout.readline().strip()
    if not line.startswith("ready"):
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"scenario failed: {line!r} {err}")
    return line


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def run_cli(*args: str, user: int | None = None, check_rc: int | None = 0,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ovlinspect ARGS`` as a user would (optionally as uid ``user``)."""
    cmd = [sys.executable, "-m", "ovlinspect", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, input=stdin,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd="/")
    if check_rc is not None:
        assert done.returncode == check_rc, (done.returncode, done.stdout, done.stderr)
    return done


def scan_json(pid: int, **kw: object) -> dict:
    """``ovlinspect --pid PID --json`` parsed, and checked against the schema."""
    done = run_cli("--pid", str(pid), "--json", **kw)  # type: ignore[arg-type]
    assert "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    validate_report(report)
    return report


def validate_report(report: dict) -> None:
    """Check a --json report against the schema ``ovlinspect --json-schema`` prints."""
    from jsonschema import Draft202012Validator

    from ovlinspect.model.codec import schema_text

    Draft202012Validator(json.loads(schema_text())).validate(report)


def overlay_at(report: dict, mount_point: str) -> dict:
    """The overlay mounted at ``mount_point`` in a --json report."""
    for ns in report["namespaces"]:
        for overlay in ns["overlays"]:
            if overlay["mount_point"] == mount_point:
                return overlay
    points = [o["mount_point"] for ns in report["namespaces"] for o in ns["overlays"]]
    raise AssertionError(f"no overlay at {mount_point}; have {points}")


def layer(overlay: dict, label: str) -> dict:
    """``upper``, ``work``, ``lower[1]``, ``data[0]`` of an overlay in a --json report."""
    for item in overlay["layers"]:
        name = item["role"] if item["role"] in ("upper", "work") else (
            f"{item['role']}[{item['index']}]")
        if name == label:
            return item
    raise AssertionError(f"no layer {label}")


def codes(item: dict) -> set[str]:
    """Hazard codes of a layer or overlay dict."""
    return {h["code"] for h in item["hazards"]}
