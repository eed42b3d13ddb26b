"""Syscall numbers of the mount API by architecture (no mounts).

From 424 on (pidfd_send_signal) every architecture shares one number (asm-generic/unistd.h and
arch/*/syscall.tbl), except alpha (110 higher) and mips (4000/5000/6000 added by ABI, which
``platform.machine()`` cannot tell).  pivot_root (older) differs per architecture.
"""

from __future__ import annotations

import errno

import pytest

from ovlinspect.kernel import mountapi
from ovlinspect.kernel.mountattr import SYS_MOUNT_SETATTR, unified_number


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "armv7l", "riscv64", "ppc64le",
                                     "s390x", "loongarch64", "i686"])
def test_the_unified_range_is_common(machine: str) -> None:
    assert unified_number(SYS_MOUNT_SETATTR, "mount_setattr", machine) == 442
    assert unified_number(mountapi.SYS_OPEN_TREE, "open_tree", machine) == 428
    assert unified_number(mountapi.SYS_FSMOUNT, "fsmount", machine) == 432


def test_alpha_numbers_the_unified_range_110_higher() -> None:
    assert unified_number(SYS_MOUNT_SETATTR, "mount_setattr", "alpha") == 552
    assert unified_number(mountapi.SYS_OPEN_TREE, "open_tree", "alpha") == 538


def test_mips_is_refused_with_enosys() -> None:
    with pytest.raises(OSError) as refused:
        unified_number(mountapi.SYS_FSOPEN, "fsopen", "mips64")
    assert refused.value.errno == errno.ENOSYS


@pytest.mark.parametrize(("machine", "number"), [
    ("x86_64", 155), ("i686", 217), ("aarch64", 41), ("riscv64", 41), ("armv7l", 218),
    ("ppc64le", 203), ("s390x", 217)])
def test_pivot_root_numbers_by_architecture(machine: str, number: int) -> None:
    assert mountapi.pivot_root_number(machine) == number


def test_pivot_root_on_an_unknown_architecture_is_enosys() -> None:
    with pytest.raises(OSError) as refused:
        mountapi.pivot_root_number("sparc64")
    assert refused.value.errno == errno.ENOSYS
