"""Engine v2 scenario tests: import paths, root guard and a loop-device leak check.

The scenarios reuse ``tests/core/scenario.py`` (each runs in a throwaway private mount namespace)
and the helpers in ``engine_kit.py``; both directories go on ``sys.path`` here, as pytest's default
import mode does for a test file's own directory.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "core"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from engine_kit import scenario_loops  # noqa: E402


@pytest.fixture(autouse=True)
def no_leaked_loop_devices() -> Iterator[None]:
    """Fail a test whose scenario left a loop device attached to one of its image files.

    Loops are attached with ``mount -o loop`` (autoclear) inside the scenario's namespace, so
    they detach once its last mount goes; that happens asynchronously after the kill, hence
    the wait.
    """
    before = scenario_loops()
    yield
    deadline = time.monotonic() + 15
    leaked = scenario_loops() - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.2)
        leaked = scenario_loops() - before
    assert not leaked, f"loop devices left attached: {sorted(leaked)}"
