"""A self-contained overlayfs lab: real overlay mounts in a private mount namespace.

``Lab`` starts a holder process (:mod:`ovlinspect.lab.holder`) that builds the scenarios of
:mod:`ovlinspect.lab.scenarios` in its own mount namespace, with its own tmpfs on ``/tmp``.  The
host's mount table is never touched: when the holder dies, its namespace and every lab mount go
with it.  Overlays the namespace inherited from this process's (a container host's) are detached
there first; what a user namespace may not detach is listed in :attr:`Lab.inherited_kept`.  The
holder watches a pipe from this process, so it also ends when this process is SIGKILLed.  This
package never imports textual.

    with Lab() as lab:
        report = scan(lab.pids)
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

from ovlinspect.lab.scenarios import BASE, Inherited, ScenarioInfo, Skipped

__all__ = ["BASE", "Inherited", "Lab", "LabError", "ScenarioInfo", "Skipped"]


class LabError(Exception):
    """The lab could not be started; the message says why in terms a user can act on."""


class Lab:
    """The holder process and the scenarios it built.

    ``rootless=None`` picks the user-namespace path when not running as root.  Call
    :meth:`start` from a long-lived thread: the holder's PR_SET_PDEATHSIG fires when the thread
    that started it exits.
    """

    holder_module = "ovlinspect.lab.holder"

    def __init__(self, rootless: bool | None = None) -> None:
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self.holder_pid: int | None = None
        self.container_pid: int | None = None
        self.scenarios: list[ScenarioInfo] = []
        self.skipped: list[Skipped] = []
        self.inherited_detached: list[str] = []
        self.inherited_kept: list[Inherited] = []
        self.base = BASE
        self.start_seconds: float | None = None
        self.build_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready_fd: int | None = None
        self._control_fd: int | None = None

    @property
    def notes(self) -> list[str]:
        """What a reader of the lab's scan should know that is not a scenario."""
        return [f"inherited {k['fs_type']} mount {k['mount_point']} is not part of the lab and "
                f"stays in its namespace ({k['reason']}); it is not checked"
                for k in self.inherited_kept]

    @property
    def pids(self) -> list[int]:
        """Every lab process whose mount namespace should be shown (holder, then container)."""
        return [p for p in (self.holder_pid, self.container_pid) if p is not None]

    def start(self, timeout: float = 10) -> Lab:
        """Start the holder and wait until every scenario is built; raises :class:`LabError`."""
        if self._proc is not None:
            raise LabError("the lab is already started")
        began = time.monotonic()
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        control_r, control_w = os.pipe2(os.O_CLOEXEC)
        cmd = [sys.executable, "-m", self.holder_module, "--ready-fd", str(ready_w),
               "--control-fd", str(control_r), "--parent-pid", str(os.getpid())]
        if self.rootless:
            cmd.append("--rootless")
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=(ready_w, control_r), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/",
                env=_child_env(), start_new_session=True)
        except OSError as exc:
            os.close(ready_r)
            os.close(control_w)
            raise LabError(f"cannot start the lab holder: {exc}") from None
        finally:
            os.close(ready_w)
            os.close(control_r)
        self._ready_fd, self._control_fd = ready_r, control_w
        self.holder_pid = self._proc.pid
        try:
            self._apply(self._read_ready(timeout))
        except BaseException:  # LabError, or Ctrl-C/SIGTERM while waiting: leave nothing behind
            self.stop(timeout=0.5)
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def _read_ready(self, timeout: float) -> dict[str, Any]:
        assert self._ready_fd is not None and self._proc is not None
        deadline = time.monotonic() + timeout
        buf = b""
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._ready_fd], [], [], left)[0]:
                raise LabError(f"the lab was not ready within {timeout:g}s")
            chunk = os.read(self._ready_fd, 65536)
            if not chunk:
                raise LabError("the lab holder exited before it was ready" + self._stderr_tail())
            buf += chunk
        try:
            info: dict[str, Any] = json.loads(buf)
        except ValueError:
            raise LabError(f"the lab holder sent garbage: {buf[:200]!r}") from None
        if "error" in info:
            raise LabError(str(info["error"]))
        return info

    def _stderr_tail(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        try:
            _, err = self._proc.communicate(timeout=2)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return ""
        text = (err or b"").decode(errors="replace").strip()
        return f": {text.splitlines()[-1]}" if text else ""

    def _apply(self, info: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        self._proc.stderr.close()  # the holder sends its stderr to /dev/null once ready
        self.container_pid = info.get("container_pid")
        self.scenarios = info["scenarios"]
        self.skipped = info["skipped"]
        self.inherited_detached = info.get("inherited_detached", [])
        self.inherited_kept = info.get("inherited_kept", [])
        self.build_seconds = info.get("build_seconds")
        if not self.scenarios:
            reasons = "; ".join(f"{s['name']}: {s['reason']}" for s in self.skipped)
            raise LabError(f"no lab scenario could be built ({reasons})")

    def alive(self) -> bool:
        """Whether the holder is still running."""
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the holder exits (True) or ``timeout`` passes (False)."""
        if self._ready_fd is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # the holder keeps the ready pipe open for life: EOF means it is gone
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._ready_fd], [], [], left)[0]:
                return False
            if not os.read(self._ready_fd, 4096):
                return True

    def stop(self, timeout: float = 5) -> None:
        """End the holder (its container and mounts go with it) and reap it.  Idempotent."""
        if self._control_fd is not None:
            os.close(self._control_fd)
            self._control_fd = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
        if self._ready_fd is not None:
            os.close(self._ready_fd)
            self._ready_fd = None

    def __enter__(self) -> Lab:
        return self if self._proc is not None else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _child_env() -> dict[str, str]:
    """Our environment, with this package importable from the holder whatever the cwd."""
    env = dict(os.environ)
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (top, env.get("PYTHONPATH")) if p)
    return env
