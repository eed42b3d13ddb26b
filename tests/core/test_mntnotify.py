"""fanotify mount events, listmount and statmount on real mounts in private mount namespaces.

Mounts are made with ``nsenter -m`` into a scenario's namespace (``unshare -m``), never in the
host's.  The event parser's bounds checks are tested on hand-made buffers.
"""

from __future__ import annotations

import errno
import json
import os
import select
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ovlinspect.kernel import mntnotify as mn
from ovlinspect.kernel.mntnotify import (
    FAN_MNT_ATTACH,
    FAN_MNT_DETACH,
    FAN_Q_OVERFLOW,
    EventFormatError,
    MountEvent,
    MountNotifier,
    parse_events,
)

from scenario import REPO, Scenario, running

root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for mounts and fanotify")
WAIT = "mkdir -p $T/a $T/b\necho ready\nexec sleep 1000"


def nsenter(pid: int, *argv: str) -> None:
    subprocess.run(["nsenter", "-t", str(pid), "-m", *argv], check=True, timeout=10)


@contextmanager
def marked(scenario: Scenario) -> Iterator[tuple[MountNotifier, int]]:
    """A notifier with the scenario's namespace marked (its fd closed again), and the ns id."""
    notifier = MountNotifier()
    try:
        fd = os.open(f"/proc/{scenario.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            notifier.mark(fd)
            nsid = mn.mntns_id(fd)
        finally:
            os.close(fd)
        yield notifier, nsid
    finally:
        notifier.close()


def events(notifier: MountNotifier, count: int, timeout: float = 5.0) -> list[MountEvent]:
    """Read until ``count`` events came (or the timeout); then make sure no more are queued."""
    got: list[MountEvent] = []
    while len(got) < count:
        ready, _, _ = select.select([notifier.fd], [], [], timeout)
        if not ready:
            break
        got += notifier.read()
    return got + notifier.read()


@root
def test_attach_and_detach_carry_the_unique_mount_id() -> None:
    with running(WAIT, bare=True) as sc, marked(sc) as (notifier, nsid):
        before = set(mn.listmount(nsid))
        nsenter(sc.pid, "mount", "-t", "tmpfs", "evt", f"{sc.tmp}/a")
        attached = events(notifier, 1)
        new = set(mn.listmount(nsid)) - before
        assert len(new) == 1
        (mnt,) = new
        assert attached == [MountEvent(mask=FAN_MNT_ATTACH, mnt_id=mnt)]
        stat = mn.statmount(mnt, nsid)
        assert (stat.mnt_id, stat.fs_type, stat.mnt_point, stat.mnt_ns_id) == (
            mnt, "tmpfs", f"{sc.tmp}/a", nsid)
        assert stat.parent_id in before

        nsenter(sc.pid, "mount", "--move", f"{sc.tmp}/a", f"{sc.tmp}/b")
        assert events(notifier, 1) == [MountEvent(FAN_MNT_ATTACH | FAN_MNT_DETACH, mnt)]
        assert mn.statmount(mnt, nsid).mnt_point == f"{sc.tmp}/b"

        nsenter(sc.pid, "umount", f"{sc.tmp}/b")
        assert events(notifier, 1) == [MountEvent(mask=FAN_MNT_DETACH, mnt_id=mnt)]
        assert set(mn.listmount(nsid)) == before
        with pytest.raises(OSError) as info:
            mn.statmount(mnt, nsid)
        assert info.value.errno == errno.ENOENT


@root
def test_a_mark_sees_only_its_own_namespace() -> None:
    with running(WAIT, bare=True) as one, running(WAIT, bare=True) as two, \
            marked(one) as (notifier, nsid):
        nsenter(two.pid, "mount", "-t", "tmpfs", "other", f"{two.tmp}/a")
        nsenter(one.pid, "mount", "-t", "tmpfs", "mine", f"{one.tmp}/a")
        got = events(notifier, 1)
        assert [e.mask for e in got] == [FAN_MNT_ATTACH]
        assert mn.statmount(got[0].mnt_id, nsid).mnt_point == f"{one.tmp}/a"


@root
def test_a_dying_namespace_detaches_every_mount_and_is_not_pinned_by_the_mark() -> None:
    with running(WAIT, bare=True) as sc, marked(sc) as (notifier, nsid):
        nsenter(sc.pid, "mount", "-t", "tmpfs", "evt", f"{sc.tmp}/a")
        assert [e.mask for e in events(notifier, 1)] == [FAN_MNT_ATTACH]
        ids = set(mn.listmount(nsid))
        os.killpg(sc.pid, 9)  # running() reaps it; the namespace dies at exit
        got = events(notifier, len(ids))
        assert {e.mnt_id for e in got} >= ids
        assert {e.mask for e in got} == {FAN_MNT_DETACH}
        with pytest.raises(OSError) as info:
            mn.listmount(nsid)
        assert info.value.errno == errno.ENOENT


def identity(scenario: Scenario) -> tuple[int, int]:
    fd = os.open(f"/proc/{scenario.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.fstat(fd).st_ino, mn.mntns_id(fd)
    finally:
        os.close(fd)


@root
def test_a_freed_namespace_inode_goes_to_the_next_namespace_but_its_id_never_does() -> None:
    """What MountWatcher relies on: (inode, mntns_id) names a namespace, the inode alone does
    not; an open mountinfo keeps the inode taken.  Compare ids for equality only."""
    for _ in range(5):
        with running(WAIT, bare=True) as a:
            first = identity(a)
            pinned = os.open(f"/proc/{a.pid}/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        try:  # a is dead; its namespace lives on through the open file
            with running(WAIT, bare=True) as b:
                assert identity(b)[0] != first[0]
        finally:
            os.close(pinned)
        with running(WAIT, bare=True) as c:
            again = identity(c)
        if again[0] == first[0]:
            # unique, but not in order of creation: 6.18 hands ids out in per-CPU batches
            assert again[1] != first[1]
            return
    pytest.skip("other namespaces of this host took the freed inode first, five times")


def test_statmount_of_an_unknown_mount_is_enoent() -> None:
    with pytest.raises(OSError) as info:
        mn.statmount(0xFFFF_FFFF_0000)
    assert info.value.errno == errno.ENOENT


def test_unprivileged_process_is_told_why_there_are_no_mount_events() -> None:
    """A real refusal by the kernel (no CAP_SYS_ADMIN), not a mocked one."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another uid")
    code = ("import json; from ovlinspect.kernel.mntnotify import mount_events_unsupported as u;"
            "print(json.dumps(u()))")
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    # 6.18: the group is made, the namespace mark is refused
    assert json.loads(done.stdout) == "fanotify_mark(FAN_MARK_MNTNS): Operation not permitted"


# ---- the parser, on hand-made buffers ---------------------------------------------------------

def meta(mask: int, body: bytes = b"", *, event_len: int | None = None, meta_len: int = 24,
         vers: int = 3) -> bytes:
    length = 24 + len(body) if event_len is None else event_len
    return struct.pack("=IBBHQii", length, vers, 0, meta_len, mask, -1, 0) + body


def mnt_record(mnt_id: int, info_type: int = 7, length: int = 16) -> bytes:
    return struct.pack("=BBH4xQ", info_type, 0, length, mnt_id)


def test_parse_events_reads_records_in_order() -> None:
    buf = (meta(FAN_MNT_ATTACH, mnt_record(11)) + meta(FAN_MNT_DETACH, mnt_record(12))
           + meta(FAN_MNT_ATTACH | FAN_MNT_DETACH, struct.pack("=BBH", 99, 0, 4) + mnt_record(13))
           + meta(FAN_Q_OVERFLOW))
    assert parse_events(buf) == [
        MountEvent(FAN_MNT_ATTACH, 11), MountEvent(FAN_MNT_DETACH, 12),
        MountEvent(FAN_MNT_ATTACH | FAN_MNT_DETACH, 13), MountEvent(FAN_Q_OVERFLOW, 0)]
    assert [(e.attached, e.detached, e.overflow) for e in parse_events(buf)] == [
        (True, False, False), (False, True, False), (True, True, False), (False, False, True)]


@pytest.mark.parametrize(("buf", "why"), [
    (meta(FAN_MNT_ATTACH, mnt_record(1))[:20], "truncated event header"),
    (meta(FAN_MNT_ATTACH, mnt_record(1), event_len=16), "bad lengths"),
    (meta(FAN_MNT_ATTACH, mnt_record(1), event_len=41), "bad lengths"),
    (meta(FAN_MNT_ATTACH, mnt_record(1), meta_len=20), "bad lengths"),
    (meta(FAN_MNT_ATTACH, mnt_record(1), meta_len=48), "bad lengths"),
    (meta(FAN_MNT_ATTACH, mnt_record(1), vers=2), "version 2"),
    (meta(FAN_MNT_ATTACH, mnt_record(1, length=2)), "bad info record length 2"),
    (meta(FAN_MNT_ATTACH, mnt_record(1, length=17)), "bad info record length 17"),
    (meta(FAN_MNT_ATTACH, mnt_record(1, length=8)[:8]), "mount info record of 8 bytes"),
    (meta(FAN_MNT_ATTACH, b"\x07\x00"), "truncated info header"),
])
def test_parse_events_refuses_inconsistent_lengths(buf: bytes, why: str) -> None:
    with pytest.raises(EventFormatError, match=why):
        parse_events(buf)
