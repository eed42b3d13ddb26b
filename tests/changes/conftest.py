"""``ovlinspect diff`` tests: scenarios in private mount namespaces (tests/core/scenario.py) and
the naive-diff oracle (oracle.py); tests/core and tests/engine go on ``sys.path`` here."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "core", HERE.parent / "engine"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
