"""Checkpoint/restore tests: put tests/core and tests/engine (scenario helpers) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "core", HERE.parent / "engine"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
