"""Provenance scenario tests: ``tests/core`` (scenarios) and ``tests/engine`` (helpers) go on
``sys.path``, as pytest's default import mode does for a test file's own directory."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "core", HERE.parent / "engine"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
