"""The lab's holder process: ``python -m ovlinspect.lab.holder --ready-fd R --control-fd C ...``.

It enters a private mount namespace (as root: CLONE_NEWNS; rootless: CLONE_NEWUSER|CLONE_NEWNS
mapping its own uid/gid to 0), makes ``/`` rprivate, mounts a tmpfs over ``/tmp`` inside that
namespace, builds the scenarios, writes one JSON line to the ready fd and then blocks on the
control fd.  EOF there (the parent exited or was killed), a ``stop`` line, or the parent's death
(PR_SET_PDEATHSIG) ends it; its namespace, and with it every lab mount, then vanishes.

A new mount namespace starts as a copy of its creator's: on a container host, Docker's overlays
and the like.  Before building, the holder detaches every inherited overlay and fuse-overlayfs
mount (with whatever is mounted on or under it), so the lab shows only its own.  In a user
namespace inherited mounts are locked (umount fails with EINVAL): those stay, and are reported.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import sys
import time
from typing import Any

from ovlinspect.kernel import mountapi as m
from ovlinspect.lab import container
from ovlinspect.lab.scenarios import BASE, Context, Inherited, Skipped, build_all, sort
from ovlinspect.mounts.mountinfo import MountEntry, parse

USERNS_REFUSED = (
    "the kernel refused to create a user namespace ({err}), so the lab cannot run without root. "
    "{why} Run 'ovlinspect demo' as root{flag}."
)
USERNS_WHY = {
    errno.ENOSPC: "The user namespace limit is reached (sysctl user.max_user_namespaces is 0 or "
    "exhausted, or the nesting is too deep).",
    errno.EPERM: "Unprivileged user namespaces are disabled or restricted here (sysctl "
    "kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, SELinux, "
    "seccomp, or a chroot).",
}


def _write_line(fd: int, payload: dict[str, Any]) -> None:
    data = (json.dumps(payload) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _watch_parent(parent: int) -> bool:
    """Arm PR_SET_PDEATHSIG; False when the parent is already gone."""
    m.set_pdeathsig(signal.SIGKILL)
    return os.getppid() == parent


def enter_namespace(rootless: bool) -> None:
    """Unshare the mount (and, rootless, user) namespace; raises OSError with a clear message."""
    if not rootless:
        m.unshare(m.CLONE_NEWNS)
        return
    uid, gid = os.getuid(), os.getgid()
    try:
        m.unshare(m.CLONE_NEWUSER | m.CLONE_NEWNS)
    except OSError as exc:
        why = USERNS_WHY.get(exc.errno or 0, "User namespaces are not available here.")
        flag = " without --rootless" if os.geteuid() == 0 else ""
        raise OSError(exc.errno, USERNS_REFUSED.format(err=os.strerror(exc.errno or 0), why=why,
                                                       flag=flag)) from None
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"),
                       ("gid_map", f"0 {gid} 1")):
        try:
            with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
                handle.write(text)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot write /proc/self/{name} in the new user "
                          f"namespace: {exc.strerror}") from None


INHERITED_TYPES = ("overlay", "fuse.fuse-overlayfs")


def _mount_table() -> dict[int, MountEntry]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        entries, _ = parse(handle.read())
    return {e.mount_id: e for e in entries}


def _on_or_under(table: dict[int, MountEntry], mount_id: int, ancestor: int) -> bool:
    seen: set[int] = set()
    while mount_id != ancestor and mount_id in table and mount_id not in seen:
        seen.add(mount_id)
        mount_id = table[mount_id].parent_id
    return mount_id == ancestor


def _fd_mount_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(errno.ENOTSUP, "no mnt_id in fdinfo")


def _detach_one(table: dict[int, MountEntry], entry: MountEntry, userns: bool) -> str | None:
    """Detach the topmost mount at ``entry``'s mount point; the reason when it stays."""
    if any(field.startswith("shared:") for field in entry.optional):
        return "shared with another namespace"
    try:
        fd = os.open(entry.mount_point, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open it: {exc.strerror}"
    try:
        # The mount the path leads to is the overlay itself or one mounted on it: detach that
        # very mount through the fd, never whatever else the path might name.
        if not _on_or_under(table, _fd_mount_id(fd), entry.mount_id):
            return "covered by another mount"
        m.umount(f"/proc/self/fd/{fd}", m.MNT_DETACH)
    except OSError as exc:
        if userns and exc.errno in (errno.EINVAL, errno.EPERM):
            return ("locked: a user namespace may not unmount what it inherited "
                    f"({os.strerror(exc.errno)})")
        return exc.strerror or str(exc)
    finally:
        os.close(fd)
    return None


def detach_inherited(userns: bool) -> tuple[list[str], list[Inherited]]:
    """Detach every inherited overlay; returns the mount points detached and those kept.

    Only ever call this in a private namespace of one's own (see :func:`_setup`); ``userns``
    says it is in a new user namespace too, where inherited mounts are locked.
    """
    kept: dict[int, Inherited] = {}
    table = _mount_table()
    found = [e for e in table.values() if e.fs_type in INHERITED_TYPES]
    while todo := [e for e in table.values() if e.fs_type in INHERITED_TYPES
                   and e.mount_id not in kept]:
        reason = _detach_one(table, todo[0], userns)  # each success removes a mount: this ends
        if reason is not None:
            kept[todo[0].mount_id] = Inherited(mount_point=todo[0].mount_point,
                                               fs_type=todo[0].fs_type, reason=reason)
        table = _mount_table()
    return [e.mount_point for e in found if e.mount_id not in table], list(kept.values())


def _setup(rootless: bool) -> tuple[list[str], list[Inherited]]:
    outside = os.readlink("/proc/self/ns/mnt")
    enter_namespace(rootless)
    if os.readlink("/proc/self/ns/mnt") == outside:
        raise OSError(errno.EPERM, "the lab did not get a mount namespace of its own")
    m.make_rprivate("/")
    inherited = detach_inherited(rootless)
    m.mount("ovlinspect-lab", "/tmp", "tmpfs", m.MS_NOSUID | m.MS_NODEV, "mode=1777")
    os.makedirs(BASE, mode=0o755)
    return inherited


def run(ready_fd: int, control_fd: int, parent: int, rootless: bool) -> int:
    """The holder's whole life; returns its exit status."""
    started = time.monotonic()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the lab ends
    if not _watch_parent(parent):
        return 0
    try:
        detached, kept = _setup(rootless)
        if not _watch_parent(parent):  # re-arm: credentials changed with the user namespace
            return 0
    except OSError as exc:
        _write_line(ready_fd, {"error": exc.strerror or str(exc), "holder_pid": os.getpid()})
        return 2
    ctx = Context(pid=os.getpid(), rootless=rootless)
    box: container.Container | None = None
    try:
        box = container.start(ctx, [ready_fd, control_fd])
    except OSError as exc:
        ctx.skipped.append(Skipped(name="container", reason=exc.strerror or str(exc)))
    build_all(ctx)
    if box is not None:
        try:
            ctx.scenarios.append(container.wait_ready(ctx, box, timeout=5))
        except OSError as exc:
            ctx.skipped.append(Skipped(name="container", reason=exc.strerror or str(exc)))
            container.stop(box)
            box = None
    sort(ctx)
    os.chdir("/")
    _write_line(ready_fd, {
        "holder_pid": os.getpid(),
        "container_pid": box.pid if box else None,
        "rootless": rootless,
        "base": BASE,
        "scenarios": ctx.scenarios,
        "skipped": ctx.skipped,
        "inherited_detached": detached,
        "inherited_kept": kept,
        "build_seconds": round(time.monotonic() - started, 4),
    })
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the parent stops reading our stderr once we are ready
        os.dup2(null, fd)
    os.close(null)
    try:
        while True:
            data = os.read(control_fd, 64)
            if not data or b"stop" in data:
                break
    finally:
        if box is not None:
            container.stop(box)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the fds the parent passed and run."""
    parser = argparse.ArgumentParser(prog="python -m ovlinspect.lab.holder")
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--rootless", action="store_true")
    args = parser.parse_args(argv)
    return run(args.ready_fd, args.control_fd, args.parent_pid, args.rootless)


if __name__ == "__main__":
    sys.exit(main())
