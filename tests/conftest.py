"""Suite-wide guards: the host's own mount table must be exactly as the tests found it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def _host_mounts() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read()


@pytest.fixture(scope="session", autouse=True)
def host_mount_table_untouched() -> Iterator[None]:
    """Fail the run if any test mounted or unmounted anything in the host's namespace."""
    before = _host_mounts()
    yield
    assert _host_mounts() == before, "a test changed the host's mount table"
