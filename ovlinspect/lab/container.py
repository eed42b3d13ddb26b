"""Scenario 5: a "container" whose overlay options name paths that do not exist inside it.

The holder forks (it is single-threaded, so a plain fork is safe) a child that unshares its own
mount namespace, mounts an overlay whose options name lab paths, ``pivot_root``s into it and
detaches the old root.  Inside, ``/tmp/ovlinspect-demo/...`` does not exist: the overlay is
mounted at ``/`` and its layer paths are only meaningful in the holder's namespace.  The child
is called ``demo-container`` (comm) and dies with the holder (PR_SET_PDEATHSIG and pipe EOF).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
from dataclasses import dataclass

from ovlinspect.kernel import mountapi as m
from ovlinspect.lab.scenarios import BASE, LAYERS, Context, ScenarioInfo, fill_layer, make_info

COMM = "demo-container"


@dataclass
class Container:
    """The forked container: its pid, the pipe it reports on, and the pipe that keeps it alive."""

    pid: int
    status_fd: int
    life_fd: int
    target: str
    lowers: list[str]


def _rootfs(path: str) -> str:
    fill_layer(path, "lower0")
    os.makedirs(os.path.join(path, "etc"), exist_ok=True)
    os.makedirs(os.path.join(path, "bin"), exist_ok=True)
    with open(os.path.join(path, "etc", "os-release"), "w", encoding="utf-8") as handle:
        handle.write('NAME="ovlinspect demo container"\nID=demo\n')
    return path


def start(ctx: Context, close_fds: list[int]) -> Container:
    """Build the container's layers and fork it; it reports on ``status_fd`` when ready."""
    root = os.path.join(LAYERS, "container")
    lowers = [_rootfs(os.path.join(root, "lower0")), fill_layer(os.path.join(root, "lower1"),
                                                                "lower1")]
    upper, work = fill_layer(os.path.join(root, "upper"), "upper"), os.path.join(root, "work")
    os.makedirs(work, exist_ok=True)
    target = os.path.join(BASE, "5-container")
    os.makedirs(target, exist_ok=True)
    options = ctx.options(f"lowerdir={':'.join(lowers)}", f"upperdir={upper}", f"workdir={work}")
    holder = os.getpid()
    status_r, status_w = os.pipe()
    life_r, life_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            os.close(status_r)
            os.close(life_w)
            for fd in close_fds:
                os.close(fd)
            code = _child(holder, status_w, life_r, target, options)
        except BaseException as exc:  # report anything, then vanish without cleanup handlers
            with contextlib.suppress(OSError):
                os.write(status_w, f"error {exc}\n".encode())
        finally:
            os._exit(code)
    os.close(status_w)
    os.close(life_r)
    return Container(pid=pid, status_fd=status_r, life_fd=life_w, target=target, lowers=lowers)


def _child(holder: int, status_w: int, life_r: int, target: str, options: str) -> int:
    m.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != holder:
        return 0
    m.set_comm(COMM)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    m.unshare(m.CLONE_NEWNS)
    m.make_rprivate("/")
    m.mount("overlay", target, "overlay", 0, options)
    os.chdir(target)
    m.pivot_root(".", ".")
    m.umount(".", m.MNT_DETACH)
    os.chdir("/")
    os.write(status_w, b"ok\n")
    os.close(status_w)
    while True:  # until the holder dies (EOF) or kills us
        try:
            if not os.read(life_r, 1):
                return 0
        except InterruptedError:
            continue


def wait_ready(ctx: Context, box: Container, timeout: float) -> ScenarioInfo:
    """Wait for the container's report; raises OSError when it failed or timed out."""
    ready, _, _ = select.select([box.status_fd], [], [], timeout)
    text = os.read(box.status_fd, 4096).decode(errors="replace").strip() if ready else ""
    os.close(box.status_fd)
    if text != "ok":
        reason = text.removeprefix("error ") or f"not ready within {timeout:g}s"
        raise OSError(errno.EIO, f"container: {reason}")
    return make_info(ctx, "container", "/", box.lowers, ["foreign-path"], pid=box.pid,
                     note=f"pivot_root into the overlay first mounted at {box.target} in the "
                     "holder's namespace; its layer paths exist only there")


def stop(box: Container) -> None:
    """Kill and reap the container."""
    os.close(box.life_fd)
    with contextlib.suppress(ProcessLookupError):
        os.kill(box.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(box.pid, 0)
