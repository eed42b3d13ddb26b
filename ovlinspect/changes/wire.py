"""The ``ovlinspect diff --json`` document (``"schema": 1``), written field by field."""

from __future__ import annotations

from typing import Any

from ovlinspect.changes.types import Change, MountChanges
from ovlinspect.model.codec import text_to_wire

SCHEMA = 1


def change_to_wire(change: Change) -> dict[str, Any]:
    """One change; every path through :func:`text_to_wire` (lossless for non-UTF-8 bytes)."""
    return {
        "path": text_to_wire(change.path),
        "kind": str(change.kind),
        "from": None if change.from_path is None else text_to_wire(change.from_path),
        "type": change.type,
    }


def mount_to_wire(mount: MountChanges) -> dict[str, Any]:
    """One mount's changes and notes (an ``error`` is also the first note)."""
    notes = ([mount.error] if mount.error else []) + mount.notes
    return {
        "mount_point": text_to_wire(mount.mount_point),
        "mount_id": mount.mount_id,
        "changes": [change_to_wire(c) for c in mount.changes],
        "notes": [text_to_wire(n) for n in notes],
    }


def diff_to_wire(mounts: list[MountChanges]) -> dict[str, Any]:
    """The whole document."""
    return {"schema": SCHEMA, "mounts": [mount_to_wire(m) for m in mounts]}
