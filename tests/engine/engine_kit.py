"""Helpers for the engine v2 scenario tests: skip guards, shell snippets, expected verdicts.

Expectations are written from what the kernel truly says (checked with probes on 6.18, see the
report of issue #8), not from what the current engine prints.  Every layer of every overlay a
test builds is checked with :func:`check_overlay`, which lists all differences at once.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

# -- skip guards ---------------------------------------------------------------------------------

_TOOLS: dict[str, tuple[str, ...]] = {
    "ext4": ("mkfs.ext4",),
    "xfs": ("mkfs.xfs",),
    "btrfs": ("mkfs.btrfs", "btrfs"),
    "erofs": ("mkfs.erofs",),
    "squashfs": ("mksquashfs",),
}
# Features that only a kernel version tells: (major, minor) it appeared in.
_KERNEL: dict[str, tuple[int, int]] = {
    "erofs-file": (6, 12),   # erofs mounted straight from an image file
    "fd-layers": (6, 13),    # overlay layers given with FSCONFIG_SET_FD
}


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel."""
    parts = os.uname().release.split(".")
    return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)


def _filesystems() -> set[str]:
    with open("/proc/filesystems", encoding="ascii") as handle:
        return {line.split()[-1] for line in handle if line.strip()}


@functools.cache
def _fs_available(fs: str) -> bool:
    """The kernel knows ``fs``, loading its module if it is not yet loaded."""
    if fs in _filesystems():
        return True
    modprobe = shutil.which("modprobe")
    if modprobe and os.geteuid() == 0:
        subprocess.run([modprobe, "-q", fs], check=False, capture_output=True)
    return fs in _filesystems()


@functools.cache
def _loop_available() -> bool:
    modprobe = shutil.which("modprobe")
    if not os.path.exists("/dev/loop-control") and modprobe and os.geteuid() == 0:
        subprocess.run([modprobe, "-q", "loop"], check=False, capture_output=True)
    return os.path.exists("/dev/loop-control") and shutil.which("losetup") is not None


@functools.cache
def _userns_available() -> bool:
    done = subprocess.run(["unshare", "-U", "-r", "true"], check=False, capture_output=True)
    return done.returncode == 0


def missing(what: str) -> str | None:
    """Why ``what`` (a filesystem, ``loop``, ``userns`` or a kernel feature) is unavailable."""
    if what in _KERNEL:
        need = _KERNEL[what]
        return None if kernel_version() >= need else f"{what} needs Linux {need[0]}.{need[1]}+"
    if what == "loop":
        return None if _loop_available() else "no loop devices (/dev/loop-control or losetup)"
    if what == "userns":
        return None if _userns_available() else "user namespaces are disabled"
    if what == "chroot":
        return None if shutil.which("chroot") and shutil.which("sleep") else "no chroot/sleep"
    if not _fs_available(what):
        return f"the kernel has no {what} (not in /proc/filesystems, modprobe failed)"
    lacking = [tool for tool in _TOOLS.get(what, ()) if shutil.which(tool) is None]
    return f"{', '.join(lacking)} not installed" if lacking else None


def needs(*what: str) -> pytest.MarkDecorator:
    """Skip unless this kernel and host can build the scenario (root is always needed)."""
    reasons = [] if os.geteuid() == 0 else ["needs root to build mounts"]
    reasons += [r for r in map(missing, what) if r]
    return pytest.mark.skipif(bool(reasons), reason="; ".join(reasons) or "ok")


def scenario_loops() -> set[str]:
    """``loopN:backing-file`` of every loop device attached to a test scenario's image."""
    found: set[str] = set()
    for path in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as handle:
                backing = handle.read().strip()
        except OSError:
            continue
        if "/ovlinspect-test-" in backing:
            found.add(f"{path.split('/')[3]}:{backing}")
    return found


# -- shell snippets ------------------------------------------------------------------------------

PY = sys.executable

PRELUDE = r"""
FACTS=""
fact() { FACTS="$FACTS${FACTS:+, }\"$1\": \"$2\""; }
ready() { echo "ready {$FACTS}"; }
loopdev() { losetup -j "$1" | cut -d: -f1 | head -n 1; }
# fill DIR TAG: make DIR holding a file that names only this layer (the engine's probe)
fill() { mkdir -p "$1"; echo "$2" > "$1/only_$2"; }
# image NAME SIZE: a sparse image file $T/img/NAME.img
image() { mkdir -p $T/img; truncate -s "$2" "$T/img/$1.img"; }
"""
"""Shell functions every scenario script starts with (``fact k v`` then ``ready``)."""


def script(body: str) -> str:
    """A scenario shell script: :data:`PRELUDE` then ``body``."""
    return PRELUDE + body


def mount_file_backed(image: str, target: str, fstype: str = "erofs") -> str:
    """Shell line mounting ``image`` with mount(2) itself: mount(8) would set up a loop device
    for a regular file even without ``-o loop`` (util-linux 2.38 does)."""
    code = (f"from ovlinspect.kernel.mountapi import mount, MS_RDONLY; "
            f"mount('{image}', '{target}', '{fstype}', MS_RDONLY)")
    return f'"{PY}" -c "{code}"\n'


# -- expected verdicts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Want:
    """What one layer of the report must say.  ``method`` may be a set when the kernel offers
    two equally strong proofs; ``optional`` hazards may appear but need not."""

    verified: str
    method: str | frozenset[str]
    strength: str | None
    real_path: str | None
    hazards: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    backing: Mapping[str, str | None] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def but(self, *, hazards: Iterable[str] = (), optional: Iterable[str] = (),
            backing: Mapping[str, str | None] | None = None, **extra: Any) -> Want:
        """A copy with more hazards, a backing to check, or other layer fields (``path=…``)."""
        return replace(self, hazards=self.hazards | frozenset(hazards),
                       optional=self.optional | frozenset(optional),
                       backing=dict(backing) if backing is not None else self.backing,
                       extra={**self.extra, **extra})

    def differences(self, item: dict[str, Any]) -> list[str]:
        """Human-readable differences between this expectation and a JSON layer."""
        out: list[str] = []
        proof = item.get("proof") or {}
        if item.get("verified") != self.verified:
            out.append(f"verified {item.get('verified')!r} != {self.verified!r}")
        methods = {self.method} if isinstance(self.method, str) else set(self.method)
        if proof.get("method") not in methods:
            out.append(f"proof.method {proof.get('method')!r} not in {sorted(methods)}")
        if proof.get("strength") != self.strength:
            out.append(f"proof.strength {proof.get('strength')!r} != {self.strength!r}")
        reason = proof.get("reason")
        if not isinstance(reason, str) or not reason or reason == "not-checked":
            out.append(f"proof.reason {reason!r} is not a reason code")
        if item.get("real_path") != self.real_path:
            out.append(f"real_path {item.get('real_path')!r} != {self.real_path!r}")
        got = {h["code"] for h in item.get("hazards", [])}
        if not self.hazards <= got or not got <= self.hazards | self.optional:
            allowed = f" (+ optional {sorted(self.optional)})" if self.optional else ""
            out.append(f"hazards {sorted(got)} != {sorted(self.hazards)}{allowed}")
        backing = item.get("backing") or {}
        for key, value in self.backing.items():
            if backing.get(key) != value:
                out.append(f"backing.{key} {backing.get(key)!r} != {value!r}")
        for key, value in self.extra.items():
            if item.get(key) != value:
                out.append(f"{key} {item.get(key)!r} != {value!r}")
        return out


def root_proven(path: str) -> Want:
    """Proven by the overlay root's handle: the upper, or the top lower of a lower-only mount."""
    return Want("match", "root-handle", "proven", path)


def probe_proven(path: str) -> Want:
    """Proven by a probe: a merged entry's handle names this layer's own object."""
    return Want("match", "probe-handle", "proven", path)


def inode_likely(path: str) -> Want:
    """No overlay handles: merged entries' inode numbers agree with this layer's objects.

    The lead's rule: ``match`` only when proven, so inode evidence stays ``unverified``, and
    ``real_path`` (proven or decoded from a handle) stays empty; ``path`` is the declared one.
    """
    return Want("unverified", "inode", "likely", None, extra={"path": path})


def work_unprovable() -> Want:
    """A workdir without ``index=on``: the kernel exposes no identity for it at all."""
    return Want("unverified", "none", None, None)


def work_indexed(path: str) -> Want:
    """A workdir with ``index=on``: ``trusted.overlay.upper`` on work/index names the upper."""
    return Want("match", "index-xattr", "proven", path)


def detached(*optional: str) -> Want:
    """A lower whose filesystem is mounted nowhere: the merged entries' handles decode on no
    mounted filesystem (reverse probe), so the declared path is proven not to be it."""
    return Want("mismatch", "probe-handle", "proven", None,
                hazards=frozenset({"source-detached"}), optional=frozenset(optional))


def label_of(item: dict[str, Any]) -> str:
    """``upper``, ``work``, ``lower[N]`` or ``data[N]``."""
    role = item["role"]
    return role if role in ("upper", "work") else f"{role}[{item['index']}]"


def check_overlay(ov: dict[str, Any], wants: Mapping[str, Want], *, status: str,
                  hazards: Iterable[str] = ()) -> None:
    """Assert every layer of ``ov``, its mount-level hazard codes and its status."""
    problems: list[str] = []
    labels = [label_of(item) for item in ov["layers"]]
    if sorted(labels) != sorted(wants):
        problems.append(f"layers {labels} != {sorted(wants)}")
    for item in ov["layers"]:
        want = wants.get(label_of(item))
        if want is not None:
            problems += [f"{label_of(item)}: {d}" for d in want.differences(item)]
    got = {h["code"] for h in ov["hazards"]}
    if got != set(hazards):
        problems.append(f"overlay hazards {sorted(got)} != {sorted(set(hazards))}")
    if ov.get("status") != status:
        problems.append(f"status {ov.get('status')!r} != {status!r}")
    assert not problems, f"overlay at {ov['mount_point']}:\n  " + "\n  ".join(problems)


# -- read-only inspection checks -----------------------------------------------------------------

Entry = tuple[str, int, tuple[tuple[str, bytes], ...]]


def snapshot(root: str) -> dict[str, Entry]:
    """Every entry under ``root`` with its mode, size and xattrs, to prove nothing was written
    (read with O_NOATIME, so taking it changes nothing either)."""
    return {rel: (oct(mode), size, xattrs)
            for rel, (mode, size, _a, _m, _c, xattrs) in quiet_snapshot(root).items()}


QuietEntry = tuple[int, int, int, int, int, tuple[tuple[str, bytes], ...]]


def quiet_snapshot(root: str) -> dict[str, QuietEntry]:
    """Mode, size, atime, mtime, ctime and xattrs of everything under ``root``, read with
    O_NOATIME so that taking the snapshot changes nothing."""
    out: dict[str, QuietEntry] = {}

    def visit(path: str, rel: str) -> None:
        st = os.lstat(path)
        try:
            names = sorted(os.listxattr(path, follow_symlinks=False))
            xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
        except OSError:
            xattrs = ()
        out[rel] = (st.st_mode, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns,
                    xattrs)
        if stat.S_ISDIR(st.st_mode):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOATIME)
            try:
                names = sorted(os.listdir(fd))
            finally:
                os.close(fd)
            for name in names:
                visit(os.path.join(path, name), os.path.join(rel, name))

    visit(root, ".")
    return out
