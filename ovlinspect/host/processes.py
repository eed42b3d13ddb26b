"""Processes and mount namespaces: enumeration, grouping, capabilities, container names.

Processes that exit mid-scan are normal and are skipped; a process given by the user that is gone
(or a zombie, which has no mount table) raises :class:`ScanError` with a message for the user.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

from ovlinspect.model import Process
from ovlinspect.mounts.mountinfo import MountEntry

OVERLAY_TYPES = ("overlay", "fuse.fuse-overlayfs", "fuse-overlayfs")
CAP_DAC_READ_SEARCH = 2
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
_CONTAINER_ID = re.compile(
    r"(?:docker|libpod|crio|cri-containerd|containerd)[-/:]([0-9a-f]{12,64})|/docker/([0-9a-f]{64})"
)


class ScanError(Exception):
    """A scan that cannot start: bad --pid, unreadable input.  The message is for the user."""


def is_overlay(entry: MountEntry) -> bool:
    """Overlay mounts, including fuse-overlayfs."""
    return entry.fs_type in OVERLAY_TYPES


def effective_caps() -> int:
    """This process's effective capability mask."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def missing_privileges(caps: int) -> list[str]:
    """One sentence per missing capability, saying what it costs."""
    out = []
    if not caps >> CAP_SYS_PTRACE & 1:
        out.append("CAP_SYS_PTRACE missing: other users' /proc/PID/root and ns/mnt are hidden, "
                   "so their layers cannot be resolved")
    if not caps >> CAP_DAC_READ_SEARCH & 1:
        out.append("CAP_DAC_READ_SEARCH missing: file handles cannot be decoded into real paths "
                   "(open_by_handle_at)")
    if not caps >> CAP_SYS_ADMIN & 1:
        out.append("CAP_SYS_ADMIN missing: trusted.overlay.* xattrs cannot be read")
    return out


def read_text(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", "surrogateescape")


def ns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino
    except OSError:
        return None


def root_is_ns_root(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/root") == "/"
    except OSError:
        return False


def container_name(pid: int) -> str | None:
    """A container id from the cgroup path (docker, podman, CRI-O, containerd), if any."""
    try:
        text = read_text(f"/proc/{pid}/cgroup")
    except OSError:
        return None
    match = _CONTAINER_ID.search(text)
    if match:
        return (match.group(1) or match.group(2))[:12]
    return None


@dataclass
class Group:
    key: tuple[str, int | str]
    mnt_ns: int | None
    procs: list[Process] = field(default_factory=list)
    unreadable: bool = False


def processes(pids: Iterable[int] | None) -> list[psutil.Process]:
    if pids is None:
        return list(psutil.process_iter(["pid", "name"]))
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            raise ScanError(f"no such process: {pid}") from None
        except psutil.Error as exc:
            raise ScanError(f"cannot inspect process {pid}: {exc}") from None
    return procs


def group_by_namespace(procs: list[psutil.Process], *, hash_unreadable: bool = True) -> list[Group]:
    """Processes by mount namespace; unreadable ones by mountinfo hash (or dropped)."""
    groups: dict[tuple[str, int | str], Group] = {}
    for proc in procs:
        try:
            pid, name = proc.pid, proc.name()
        except psutil.Error:
            continue  # exited mid-scan
        ns = ns_inode(pid)
        if ns is not None:
            key: tuple[str, int | str] = ("ns", ns)
        elif not hash_unreadable:
            continue
        else:
            # ns/mnt needs ptrace access; processes with identical mount tables share one.
            try:
                digest = hashlib.sha1(read_text(f"/proc/{pid}/mountinfo").encode(
                    "utf-8", "surrogateescape")).hexdigest()[:16]
            except OSError:
                continue
            key = ("mountinfo", digest)
        group = groups.setdefault(key, Group(key, ns, unreadable=ns is None))
        group.procs.append(Process(pid=pid, comm=name))
    return list(groups.values())


def ancestors(pid: int) -> list[int]:
    out = []
    try:
        proc = psutil.Process(pid)
        for parent in proc.parents():
            out.append(parent.pid)
    except psutil.Error:
        pass
    return out


