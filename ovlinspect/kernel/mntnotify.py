"""Mount notifications and mount listing: fanotify on a mount namespace, listmount, statmount.

fanotify (6.15+): a group made with ``FAN_REPORT_MNT`` and marked with ``FAN_MARK_MNTNS`` on an fd
of ``/proc/PID/ns/mnt`` receives ``FAN_MNT_ATTACH`` / ``FAN_MNT_DETACH`` (both bits for a move),
each with one info record holding the unique 64-bit mount id.  The events do not name the
namespace: one group covering several namespaces must find out which one changed (listmount).
The mark does not pin the namespace: close the namespace fd once marked, and the mark goes away
with the namespace.

A namespace's inode number (``/proc/PID/ns/mnt``) is given to the next namespace made as soon as
the namespace is freed (6.18: four ``unshare -m`` in a row get the same inode), whereas the id from
:func:`mntns_id` is 64-bit and never reused: (inode, id) names one namespace.  An
open ``/proc/PID/mountinfo`` (or namespace fd) keeps the namespace, and so its inode, taken.

listmount (6.8; another namespace by id 6.11) and statmount (6.8) read single mounts by unique id.
Constants: include/uapi/linux/fanotify.h, mount.h, nsfs.h.  x86_64 syscall numbers.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from dataclasses import dataclass

# fanotify_init flags
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0
FAN_REPORT_MNT = 0x00004000
# fanotify_mark flags
FAN_MARK_ADD = 0x1
FAN_MARK_REMOVE = 0x2
FAN_MARK_MNTNS = 0x00000110
# event mask bits
FAN_Q_OVERFLOW = 0x00004000
FAN_MNT_ATTACH = 0x01000000
FAN_MNT_DETACH = 0x02000000
FAN_EVENT_INFO_TYPE_MNT = 7  # 6 is FAN_EVENT_INFO_TYPE_RANGE (6.14)
FANOTIFY_METADATA_VERSION = 3
FAN_NOFD = -1

_META = struct.Struct("=IBBHQii")  # event_len vers reserved metadata_len mask fd pid (24 bytes)
_INFO_HDR = struct.Struct("=BBH")  # info_type pad len
_INFO_MNT = struct.Struct("=BBH4xQ")  # header, padding, mnt_id (16 bytes)

SYS_STATMOUNT = 457
SYS_LISTMOUNT = 458
NS_GET_MNTNS_ID = 0x8008B705  # _IOR(0xb7, 5, __u64)
LSMT_ROOT = 0xFFFFFFFFFFFFFFFF
MNT_ID_REQ_SIZE_VER1 = 32
STATMOUNT_MNT_BASIC = 0x2
STATMOUNT_MNT_POINT = 0x10
STATMOUNT_FS_TYPE = 0x20
STATMOUNT_MNT_NS_ID = 0x40
STATMOUNT_HEADER = 512  # the fixed part of struct statmount; strings follow it

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                                ctypes.c_char_p]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


@dataclass(frozen=True)
class MountEvent:
    """One fanotify mount event: its mask and the unique mount id (0 for a queue overflow)."""

    mask: int
    mnt_id: int

    @property
    def attached(self) -> bool:
        return bool(self.mask & FAN_MNT_ATTACH)

    @property
    def detached(self) -> bool:
        return bool(self.mask & FAN_MNT_DETACH)

    @property
    def overflow(self) -> bool:
        """Events were lost: every watched namespace must be re-read."""
        return bool(self.mask & FAN_Q_OVERFLOW)


class EventFormatError(ValueError):
    """The kernel's event buffer does not have the layout this module knows."""


def parse_events(buf: bytes) -> list[MountEvent]:
    """The mount events in one ``read`` of a ``FAN_REPORT_MNT`` group, every length checked.

    Raises :class:`EventFormatError` on a truncated or inconsistent record or an unknown version.
    An event without a mount record (e.g. ``FAN_Q_OVERFLOW``) has ``mnt_id`` 0.
    """
    events: list[MountEvent] = []
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < _META.size:
            raise EventFormatError(f"truncated event header at byte {pos}")
        event_len, vers, _res, meta_len, mask, fd, _pid = _META.unpack_from(buf, pos)
        if vers != FANOTIFY_METADATA_VERSION:
            raise EventFormatError(f"fanotify metadata version {vers}, expected "
                                   f"{FANOTIFY_METADATA_VERSION}")
        if not _META.size <= meta_len <= event_len <= len(buf) - pos:
            raise EventFormatError(f"bad lengths at byte {pos}: event {event_len}, "
                                   f"metadata {meta_len}, {len(buf) - pos} left")
        if fd >= 0:  # never for FAN_REPORT_MNT; do not leak one if a kernel sends it
            os.close(fd)
        mnt_id = 0
        info, end = pos + meta_len, pos + event_len
        while info < end:
            if end - info < _INFO_HDR.size:
                raise EventFormatError(f"truncated info header at byte {info}")
            info_type, _pad, info_len = _INFO_HDR.unpack_from(buf, info)
            if info_len < _INFO_HDR.size or info_len > end - info:
                raise EventFormatError(f"bad info record length {info_len} at byte {info}")
            if info_type == FAN_EVENT_INFO_TYPE_MNT:
                if info_len < _INFO_MNT.size:
                    raise EventFormatError(f"mount info record of {info_len} bytes")
                mnt_id = _INFO_MNT.unpack_from(buf, info)[3]
            info += info_len
        events.append(MountEvent(mask=mask, mnt_id=mnt_id))
        pos = end
    return events


class MountNotifier:
    """A fanotify group for mount events of the namespaces marked on it (needs CAP_SYS_ADMIN).

    Raises ``OSError`` from the constructor when the kernel has no mount events (EINVAL before
    6.15) or refuses (EPERM; EMFILE at ``fs.fanotify.max_user_groups``).
    """

    def __init__(self) -> None:
        self.fd = _check(_libc.fanotify_init(
            FAN_CLASS_NOTIF | FAN_REPORT_MNT | FAN_CLOEXEC | FAN_NONBLOCK, os.O_RDONLY),
            "fanotify_init(FAN_REPORT_MNT)")

    def fileno(self) -> int:
        return self.fd

    def mark(self, ns_fd: int, *, remove: bool = False) -> None:
        """Add (or remove) the mount namespace behind ``ns_fd`` (an fd of /proc/PID/ns/mnt)."""
        action = FAN_MARK_REMOVE if remove else FAN_MARK_ADD
        _check(_libc.fanotify_mark(self.fd, action | FAN_MARK_MNTNS,
                                   FAN_MNT_ATTACH | FAN_MNT_DETACH, ns_fd, None),
               "fanotify_mark(FAN_MARK_MNTNS)")

    def read(self, size: int = 65536) -> list[MountEvent]:
        """Every queued event (none when the queue is empty; the fd is non-blocking).

        Raises :class:`EventFormatError` when a buffer cannot be parsed: the events read by this
        call are lost then (the kernel has dequeued them), like after a queue overflow.
        """
        events: list[MountEvent] = []
        while True:
            try:
                buf = os.read(self.fd, size)
            except BlockingIOError:
                return events
            if not buf:
                return events
            events += parse_events(buf)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> MountNotifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def mntns_id(ns_fd: int) -> int:
    """The 64-bit id of the mount namespace behind ``ns_fd`` (NS_GET_MNTNS_ID, 6.12+).

    Never reused (unlike the inode number), but not in order of creation: 6.18 hands the ids
    out in per-CPU batches (namespaces made one after another on two CPUs got 36962, 34556,
    36963, 34557), so compare ids for equality only.  Also what listmount and statmount take.
    Needs no privilege beyond opening the fd (an unprivileged process reads its own
    namespace's id).
    """
    buf = bytearray(8)
    fcntl.ioctl(ns_fd, NS_GET_MNTNS_ID, buf)
    return int.from_bytes(buf, "little")


class _MntIdReq(ctypes.Structure):
    _fields_ = (("size", ctypes.c_uint32), ("spare", ctypes.c_uint32),
                ("mnt_id", ctypes.c_uint64), ("param", ctypes.c_uint64),
                ("mnt_ns_id", ctypes.c_uint64))


def _req(mnt_id: int, param: int, ns_id: int) -> _MntIdReq:
    return _MntIdReq(MNT_ID_REQ_SIZE_VER1, 0, mnt_id, param, ns_id)


def listmount(ns_id: int = 0, parent: int = LSMT_ROOT, batch: int = 512) -> list[int]:
    """Unique ids of every mount below ``parent`` in the namespace ``ns_id`` (0: our own).

    ENOENT means the namespace (or the parent mount) no longer exists.
    """
    out: list[int] = []
    ids = (ctypes.c_uint64 * batch)()
    last = 0
    while True:
        req = _req(parent, last, ns_id)
        got = _check(_libc.syscall(ctypes.c_long(SYS_LISTMOUNT), ctypes.byref(req), ids,
                                   ctypes.c_size_t(batch), ctypes.c_uint(0)),
                     f"listmount(ns {ns_id})")
        out += ids[:got]
        if got < batch:
            return out
        last = out[-1]


@dataclass(frozen=True)
class MountStat:
    """What statmount says of one mount (the fields this module asks for)."""

    mnt_id: int
    parent_id: int
    mnt_id_old: int
    parent_id_old: int
    mnt_ns_id: int
    fs_type: str
    mnt_point: str


_SM = struct.Struct("=IIQ20xIQQII40xIIQ")  # size..mask, fs_type, ids, mnt_point, mnt_ns_id


def statmount(mnt_id: int, ns_id: int = 0, size: int = 4096) -> MountStat:
    """statmount(2) of mount ``mnt_id`` (unique id) in namespace ``ns_id`` (0: our own).

    ENOENT: no such mount in that namespace (already detached).  Grows the buffer on EOVERFLOW.
    """
    mask = STATMOUNT_MNT_BASIC | STATMOUNT_MNT_POINT | STATMOUNT_FS_TYPE | STATMOUNT_MNT_NS_ID
    while True:
        buf = ctypes.create_string_buffer(size)
        req = _req(mnt_id, mask, ns_id)
        result = _libc.syscall(ctypes.c_long(SYS_STATMOUNT), ctypes.byref(req), buf,
                               ctypes.c_size_t(size), ctypes.c_uint(0))
        if result < 0 and ctypes.get_errno() == errno.EOVERFLOW and size < 1 << 20:
            size *= 4
            continue
        _check(result, f"statmount({mnt_id})")
        return _parse_statmount(buf.raw)


def _parse_statmount(raw: bytes) -> MountStat:
    (got, _opts, mask, fs_type, sm_id, parent, old, parent_old, _root, point,
     ns) = _SM.unpack_from(raw)
    if got < STATMOUNT_HEADER or got > len(raw):
        raise EventFormatError(f"statmount returned {got} bytes")

    def string(offset: int, bit: int) -> str:
        if not mask & bit:
            return ""
        start = STATMOUNT_HEADER + offset
        end = raw.find(b"\0", start, got)
        if start >= got or end < 0:
            raise EventFormatError(f"statmount string at {offset} outside {got} bytes")
        return raw[start:end].decode("utf-8", "surrogateescape")

    return MountStat(mnt_id=sm_id, parent_id=parent, mnt_id_old=old, parent_id_old=parent_old,
                     mnt_ns_id=ns if mask & STATMOUNT_MNT_NS_ID else 0,
                     fs_type=string(fs_type, STATMOUNT_FS_TYPE),
                     mnt_point=string(point, STATMOUNT_MNT_POINT))


def mount_events_unsupported() -> str | None:
    """Why this kernel (or this process) cannot follow mount namespaces by fanotify, or None.

    Unprivileged, fanotify_init(FAN_REPORT_MNT) succeeds on 6.18 and the mark fails (EPERM).
    """
    try:
        notifier = MountNotifier()
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            notifier.mark(fd)
            mntns_id(fd)
            listmount(0, batch=1)
        finally:
            os.close(fd)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        notifier.close()
    return None
