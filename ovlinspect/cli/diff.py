"""``ovlinspect diff [--pid PID] [MOUNT_POINT] [--json]``: what a container changed since its image.

Text output, one line per change, in path order (podman's format for A, C and D)::

    A /new/file          added: no lower object at this path
    C /etc               changed: the lowers hold an object at this path too
    M /bin/tool          metadata only (a metacopy upper; the data is still the lower's)
    D /removed           deleted (a deleted directory stands for its whole subtree)
    R /old -> /new       renamed (an ``overlay.redirect``)

Paths are escaped so that one change is always one line: ``\\`` for a backslash, ``\\n``,
``\\t``, ``\\r``, ``\\xNN`` for other control bytes and for bytes that are not UTF-8 (the same
escapes as the report's other text).  ``--json`` is lossless.  Without MOUNT_POINT each mount's
lines follow a ``# MOUNT_POINT (mount ID)`` header.  Exit 0; 2 on bad usage, a pid or mount
point that is not there, or an upper that cannot be read (never a partial diff).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ovlinspect.changes.run import diff_mounts
from ovlinspect.changes.types import Change, DiffError, Kind, MountChanges
from ovlinspect.changes.wire import diff_to_wire
from ovlinspect.cli.options import EXIT_OK, EXIT_USAGE
from ovlinspect.report.textsafe import visible


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ovlinspect diff",
        description="List what an overlay's upper layer changed since its lowers (the image): "
        "read from the upper, its private xattrs and (index=on) the index; the lowers are read "
        "only below what the upper replaced, never walked in full.")
    parser.add_argument("--pid", type=int, metavar="PID",
                        help="the mount namespace of this process (default: the caller's)")
    parser.add_argument("mount_point", nargs="?", metavar="MOUNT_POINT",
                        help="the overlay's mount point in that namespace (default: every "
                        "overlay of the namespace)")
    parser.add_argument("--json", action="store_true", help="print a versioned JSON document")
    return parser


def _line(change: Change) -> str:
    path = visible(change.path, keep_backslash=False)
    if change.kind == Kind.RENAMED:
        return f"R {visible(change.from_path, keep_backslash=False)} -> {path}"
    return f"{change.kind.mark} {path}"


def _write(args: argparse.Namespace, mounts: list[MountChanges]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(diff_to_wire(mounts), indent=1, ensure_ascii=True) + "\n")
    else:
        for mount in mounts:
            if args.mount_point is None:
                print(f"# {visible(mount.mount_point, keep_backslash=False)} "
                      f"(mount {mount.mount_id})")
            for change in mount.changes:
                print(_line(change))
    for mount in mounts:
        where = visible(mount.mount_point)
        if mount.error:
            print(f"ovlinspect diff: {where}: {visible(mount.error)}", file=sys.stderr)
        for note in mount.notes:
            print(f"ovlinspect diff: {where}: note: {visible(note)}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Run ``ovlinspect diff``; return the exit status."""
    args = _parser().parse_args(argv)
    if args.pid is not None and args.pid <= 0:
        print(f"ovlinspect diff: not a process id: {args.pid}", file=sys.stderr)
        return EXIT_USAGE
    try:
        mounts = diff_mounts(args.pid, args.mount_point)
    except DiffError as exc:
        print(f"ovlinspect diff: {visible(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the namespace vanished or refused us midway
        print(f"ovlinspect diff: {visible(exc.strerror or str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    status = EXIT_USAGE if any(m.error for m in mounts) else EXIT_OK
    try:
        _write(args, mounts)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status
