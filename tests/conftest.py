"""Suite-wide guards: the host's own mount table must be exactly as the tests found it."""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Every test builds its mounts under the temp dir (scenarios, the lab's /tmp, pytest's tmp_path);
# a mount appearing or vanishing there, or on the repo, in the host's namespace is a leak.
TEST_AREAS = (tempfile.gettempdir(), str(REPO))


def _host_mounts() -> set[str]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return set(handle)


def _mount_point(line: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda mo: chr(int(mo.group(1), 8)), line.split(" ")[4])


def _in_test_areas(line: str) -> bool:
    point = _mount_point(line)
    return any(point == area or point.startswith(area.rstrip("/") + "/") for area in TEST_AREAS)


@pytest.fixture(scope="session", autouse=True)
def host_mount_table_untouched() -> Iterator[None]:
    """Fail the run if a test mounted or unmounted anything in the host's namespace.

    On a container host, dockerd may mount or unmount container roots while the suite runs: a
    change outside the tests' areas (the temp dir, the repo) is reported as a warning, not a
    failure.  Tests that detach mounts do so only in their own private namespaces, and check it.
    """
    before = _host_mounts()
    yield
    after = _host_mounts()
    changed = sorted((before - after) | (after - before), key=lambda ln: int(ln.split(" ")[0]))
    ours = [ln.rstrip("\n") for ln in changed if _in_test_areas(ln)]
    assert not ours, "a test changed the host's mount table:\n" + "\n".join(ours)
    if changed:
        warnings.warn("the host's mount table changed outside the tests' areas during the run "
                      "(containers starting or stopping?):\n" + "".join(changed), stacklevel=1)
