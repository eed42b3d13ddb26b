"""Files the TUI writes: JSON of one mount, SVG screenshots; unique names, never overwritten."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from enum import Enum
from typing import Any

from ovlinspect.model import Overlay

try:
    from ovlinspect.jsonreport import overlay_dict as _overlay_dict
except ImportError:  # the JSON report module is not there yet: same flattening as Scan.to_dict
    _overlay_dict = None


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def overlay_dict(overlay: Overlay) -> dict[str, Any]:
    """One mount as the JSON report writes it."""
    if _overlay_dict is not None:
        return _overlay_dict(overlay)
    return _plain(asdict(overlay))


def overlay_json(overlay: Overlay) -> str:
    """One mount as indented JSON text that is always valid UTF-8.

    Bytes that were not UTF-8 (kept as surrogates) force ``\\u`` escapes for the whole text.
    """
    text = json.dumps(overlay_dict(overlay), indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(overlay_dict(overlay), indent=2)
    return text


def unique_path(directory: str, stem: str, suffix: str) -> str:
    """``directory/stem.suffix``, or ``stem-2.suffix``… when that exists (never overwrite)."""
    candidate = os.path.join(directory, f"{stem}{suffix}")
    n = 2
    while os.path.lexists(candidate):
        candidate = os.path.join(directory, f"{stem}-{n}{suffix}")
        n += 1
    return candidate


def write_new(path: str, text: str) -> None:
    """Write ``text`` to a file that must not exist yet."""
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)


def timestamp() -> str:
    """Local time for file names: 20250101-031500."""
    return time.strftime("%Y%m%d-%H%M%S")
