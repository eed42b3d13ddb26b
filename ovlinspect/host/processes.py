"""Processes and mount namespaces: enumeration, grouping, capabilities, container names.

Processes that exit mid-scan are normal and are skipped; a process given by the user that is gone
(or a zombie, which has no mount table) raises :class:`ScanError` with a message for the user.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

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
    """The processes of one mount namespace (keyed by its inode, or by its mount table when the
    namespace cannot be named)."""

    key: tuple[str, int | str]
    mnt_ns: int | None
    procs: list[Process] = field(default_factory=list)
    unreadable: bool = False


@dataclass(frozen=True)
class ProcStat:
    """What ``/proc/PID/stat`` says of a process: its comm, state letter and parent."""

    pid: int
    comm: str
    state: str
    ppid: int


def proc_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None when it is gone (the comm may hold spaces and ')')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read(4096)
    except OSError:
        return None
    left, right = data.find(b"("), data.rfind(b")")
    fields = data[right + 2:].split()
    if left < 0 or right < left or len(fields) < 2:
        return None
    comm = data[left + 1:right].decode("utf-8", "surrogateescape")
    return ProcStat(pid=pid, comm=comm, state=fields[0].decode("ascii", "replace"),
                    ppid=int(fields[1]))


def _gone(stat: ProcStat | None) -> bool:
    """Gone, or a zombie or dead (its mount namespace is already released)."""
    return stat is None or stat.state in ("Z", "X", "x")


def processes(pids: Iterable[int] | None) -> list[ProcStat]:
    """Every live process, or the given ones; a given pid that is gone or a zombie raises
    ScanError.  Read straight from /proc (no psutil: start-up time matters)."""
    if pids is None:
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = proc_stat(int(name))
                if stat is not None and not _gone(stat):
                    out.append(stat)
        return out
    procs = []
    for pid in pids:
        stat = proc_stat(pid)
        if stat is None and not os.path.exists(f"/proc/{pid}"):
            raise ScanError(f"no such process: {pid}")
        if _gone(stat):
            raise ScanError(f"process {pid} has exited (no mount table left to inspect)")
        assert stat is not None
        procs.append(stat)
    return procs


def group_by_namespace(procs: list[ProcStat], *, hash_unreadable: bool = True) -> list[Group]:
    """Processes by mount namespace; unreadable ones by their mount table (or dropped)."""
    groups: dict[tuple[str, int | str], Group] = {}
    for proc in procs:
        pid, name = proc.pid, proc.comm
        ns = ns_inode(pid)
        if ns is not None:
            key: tuple[str, int | str] = ("ns", ns)
        elif not hash_unreadable:
            continue
        else:
            # ns/mnt needs ptrace access; processes with identical mount tables share one.  The
            # table's text itself is the key: exact, and no hashlib to import (startup time).
            try:
                table = read_text(f"/proc/{pid}/mountinfo")
            except OSError:
                continue  # exited mid-scan
            key = ("mountinfo", table)
        group = groups.setdefault(key, Group(key, ns, unreadable=ns is None))
        group.procs.append(Process(pid=pid, comm=name))
    return list(groups.values())


def ancestors(pid: int) -> list[int]:
    """The parent, grandparent, ... of ``pid`` up to pid 1 (empty when it is gone)."""
    out: list[int] = []
    stat = proc_stat(pid)
    while stat is not None and stat.ppid > 0 and len(out) < 4096:
        out.append(stat.ppid)
        stat = proc_stat(stat.ppid)
    return out




# include/uapi/linux/lsm.h: the security modules that can refuse ptrace read access.
_LSM_NAMES = {101: "selinux", 102: "smack", 104: "apparmor", 109: "bpf", 110: "landlock"}
_SYS_LSM_LIST_MODULES = 461  # the same number on every architecture (6.8+)
_INITIAL_UID_MAP = "0 0 4294967295"


def _ptrace_lsms() -> list[str] | None:
    """Active security modules that can refuse ptrace access, or None when unknown."""
    try:
        with open("/sys/kernel/security/lsm", encoding="ascii") as handle:
            names = handle.read().strip().split(",")
        return [n for n in names if n in _LSM_NAMES.values()]
    except OSError:
        pass
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ids = (ctypes.c_uint64 * 32)()
        size = ctypes.c_uint32(ctypes.sizeof(ids))
        count = libc.syscall(ctypes.c_long(_SYS_LSM_LIST_MODULES), ids, ctypes.byref(size), 0)
    except (OSError, AttributeError):
        return None
    if count < 0:
        return None
    return [_LSM_NAMES[i] for i in ids[:count] if i in _LSM_NAMES]


def _status_ids(pid: int | str, key: str) -> list[str]:
    """The ``Uid:``/``Gid:`` fields (real, effective, saved, fs) of /proc/PID/status."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return line.split()[1:]
    except OSError:
        pass
    return []


def _uid_map(pid: int | str) -> str | None:
    try:
        with open(f"/proc/{pid}/uid_map", encoding="ascii", errors="replace") as handle:
            return " ".join(handle.read().split())
    except OSError:
        return None


def why_hidden(pid: int, exc: OSError, caps: int | None = None) -> str:
    """Why /proc/PID/root (or ns/mnt) could not be opened: a sentence for the user.

    The kernel answers EACCES/EPERM to any failed ``ptrace_may_access``; this tells apart the
    causes it could have: missing CAP_SYS_PTRACE, a target outside our user namespace (our
    capabilities do not reach it), or, when neither applies, a security module (for example
    Landlock, which hides every process outside the caller's sandbox).
    """
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        return f"process {pid} has exited"
    if exc.errno not in (errno.EACCES, errno.EPERM):
        return exc.strerror or str(exc)
    caps = effective_caps() if caps is None else caps
    mine, theirs = _uid_map("self"), _uid_map(pid)
    if mine not in (None, _INITIAL_UID_MAP) and theirs is not None and theirs != mine:
        where = "the initial user namespace" if theirs == _INITIAL_UID_MAP else \
            f"another user namespace (uid_map {theirs!r})"
        return (f"process {pid} is in {where}; ours (uid_map {mine!r}) is not, and capabilities "
                "only count in the user namespace that holds them and the ones it created")
    if not caps >> CAP_SYS_PTRACE & 1:
        uids, own = _status_ids(pid, "Uid"), _status_ids("self", "Uid")
        owner = f"it runs as uid {uids[1]}, " if uids and own and uids[:3] != own[:3] else ""
        return f"{owner}needs CAP_SYS_PTRACE"
    lsms = _ptrace_lsms()
    which = (f"active: {', '.join(lsms)}" if lsms else "none found") if lsms is not None \
        else "they could not be listed"
    landlock = ("; Landlock refuses every process outside the caller's sandbox domain"
                if lsms and "landlock" in lsms else "")
    return (f"refused although we have CAP_SYS_PTRACE in its user namespace, so by a security "
            f"module ({which}){landlock}")
