"""The change records and per-mount results of ``ovlinspect diff``."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What happened to a path, relative to the lowers (its text mark in parentheses)."""

    ADDED = "added"        # A: no lower object at this path
    CHANGED = "changed"    # C: a lower object exists at this path and the upper holds its own
    METADATA = "metadata"  # M: a metacopy upper file whose data is still the lower's
    DELETED = "deleted"    # D: a whiteout, or a lower entry hidden by an opaque directory
    RENAMED = "renamed"    # R: an upper object with an ``overlay.redirect`` (from = old path)

    @property
    def mark(self) -> str:
        """The one-letter mark of the text output (podman's for A, C and D)."""
        return _MARKS[self]


_MARKS = {Kind.ADDED: "A", Kind.CHANGED: "C", Kind.METADATA: "M", Kind.DELETED: "D",
          Kind.RENAMED: "R"}


@dataclass(frozen=True)
class Change:
    """One changed path, from the overlay's root (``/etc/passwd``)."""

    path: str
    kind: Kind
    type: str  # file | dir | symlink | other (a deleted path: the lower object's type)
    from_path: str | None = None  # renamed: the lower path it came from


@dataclass
class MountChanges:
    """The changes of one overlay mount, or why they cannot be read (``error``)."""

    mount_point: str
    mount_id: int
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # set: the upper could not be read, ``changes`` is not the diff


class DiffError(Exception):
    """The diff cannot be made as asked (bad pid, no such overlay).  The message is for the user."""
