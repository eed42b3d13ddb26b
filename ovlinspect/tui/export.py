"""Files the TUI writes: SVG screenshots (unique names, never overwritten) and the JSON of one
mount (one file per mount, replaced atomically on each press)."""

from __future__ import annotations

import os
import time

from ovlinspect.model import Overlay
from ovlinspect.report.jsonreport import encode, overlay_dict


def overlay_json(overlay: Overlay) -> str:
    """One mount as indented JSON, like ``--json`` (bytes that are not UTF-8 as base64)."""
    return encode(overlay_dict(overlay))


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


def replace_file(path: str, text: str) -> bool:
    """Write ``text`` to ``path`` atomically (a temporary file, then rename); True when a file
    was replaced.  A symlink at ``path`` is replaced, never followed."""
    existed = os.path.lexists(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "x", encoding="utf-8") as handle:
        handle.write(text)
    try:
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    return existed


def timestamp() -> str:
    """Local time for file names: 20250101-031500."""
    return time.strftime("%Y%m%d-%H%M%S")
