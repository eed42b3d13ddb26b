"""Diff whole mounts: open their layers, stream their changes, close everything."""

from __future__ import annotations

from ovlinspect.changes.types import Change, MountChanges


def diff_mounts(pid: int | None = None, mount_point: str | None = None,
                limit: int | None = None) -> list[MountChanges]:
    """The changes of every overlay of ``pid``'s namespace (the caller's by default), or of the
    one at ``mount_point``.  A mount whose upper cannot be read has ``error`` set and no changes;
    with ``limit``, a longer list is cut and says so in its notes (for a paged front end).

    Raises :class:`ovlinspect.changes.types.DiffError` for a bad pid or mount point.
    """
    # Imported here, not above: the engine's import is most of the start-up of ``diff --help``
    # and of every front end that only names these functions (bench/diff.py, issue #11).
    from ovlinspect.changes.source import open_targets
    from ovlinspect.changes.walk import collect
    from ovlinspect.kernel.objects import NoAtimeRefused

    targets = open_targets(pid, mount_point)
    for target in targets:
        if target.source is None:
            continue
        try:
            target.result.changes, more = collect(target.source, limit)
            if more:
                target.result.notes.append(f"only the first {limit} changes are listed")
        except NoAtimeRefused:
            target.result.changes = []
            target.result.error = ("the upper cannot be read without changing its atimes "
                                   "(O_NOATIME needs CAP_FOWNER)")
        except OSError as exc:
            target.result.changes = []
            target.result.error = f"the upper could not be read: {exc.strerror or exc}"
        finally:
            target.source.close()
    return [t.result for t in targets]


def overlay_changes(pid: int, mount_point: str, limit: int | None = None) -> MountChanges:
    """One overlay's changes (see :func:`diff_mounts`)."""
    return diff_mounts(pid, mount_point, limit)[0]


__all__ = ["Change", "MountChanges", "diff_mounts", "overlay_changes"]
