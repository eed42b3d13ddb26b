"""The ``--json`` report: the model as a versioned document (``"schema": 1``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ovlinspect.model import Overlay, Scan, plain


def overlay_dict(overlay: Overlay) -> dict[str, Any]:
    """One overlay mount as a JSON-ready dict (the TUI's ``j``/``y`` keys use it)."""
    return plain(asdict(overlay))


def dumps(scan: Scan, indent: int | None = 2) -> str:
    """The whole scan as JSON text.  Undecodable bytes in paths appear as \\udcXX escapes."""
    return json.dumps(scan.to_dict(), indent=indent, ensure_ascii=True)
