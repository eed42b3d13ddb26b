"""``ovlinspect restore``: rebuild one dumped overlay at ``--target`` and prove it by handle.

The only command that mounts anything: in the caller's mount namespace, only at ``--target``,
and it detaches what it mounted when verification fails.  Exit status: 0 mounted and verified;
1 refused (the dump says not restorable), a layer not found, the mount failed, or verification
failed; 2 a usage error or a dump that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ovlinspect.cli.options import EXIT_OK, EXIT_USAGE
from ovlinspect.report.textsafe import visible

EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """The ``ovlinspect restore`` parser."""
    parser = argparse.ArgumentParser(
        prog="ovlinspect restore",
        description="Replay one overlay's recipe from an 'ovlinspect dump' file, mount it at "
        "--target in this mount namespace, and verify each layer by file handle against the "
        "dump. Unmounts it again when verification fails.")
    parser.add_argument("dump", metavar="DUMP", help="the dump file ('-' for stdin)")
    parser.add_argument("--mount", metavar="MOUNT_POINT|MOUNT_ID",
                        help="which overlay of the dump (needed when it holds several)")
    parser.add_argument("--target", required=True, metavar="DIR",
                        help="the directory to mount the rebuilt overlay on")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``ovlinspect restore``."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    from ovlinspect.checkpoint.model import DumpError, dump_from_wire

    try:
        if args.dump == "-":
            text = sys.stdin.read()
        else:
            with open(args.dump, encoding="utf-8") as handle:
                text = handle.read(64 << 20)
        dump = dump_from_wire(json.loads(text))
    except (OSError, ValueError, DumpError) as exc:
        print(f"ovlinspect restore: cannot use {visible(args.dump)}: {visible(str(exc))}",
              file=sys.stderr)
        return EXIT_USAGE
    chosen = _choose(dump.overlays, args.mount)
    if isinstance(chosen, str):
        print(f"ovlinspect restore: {visible(chosen)}", file=sys.stderr)
        return EXIT_USAGE
    target = os.path.abspath(args.target)
    if not os.path.isdir(target):
        print(f"ovlinspect restore: --target {visible(target)} is not a directory",
              file=sys.stderr)
        return EXIT_USAGE
    from ovlinspect.checkpoint.restore import restore

    try:
        result = restore(chosen, target)
    except OSError as exc:
        print(f"ovlinspect restore: {visible(str(exc.strerror or exc))}", file=sys.stderr)
        return EXIT_FAILED
    out = result.to_wire()
    out["mount_point"] = chosen.mount_point
    try:
        sys.stdout.write(json.dumps(out, indent=1, ensure_ascii=True) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return EXIT_OK if result.ok else EXIT_FAILED


def _choose(overlays: list, which: str | None) -> object:
    if which is None:
        if len(overlays) == 1:
            return overlays[0]
        return f"the dump holds {len(overlays)} overlays: choose one with --mount"
    for ov in overlays:
        if ov.mount_point == which or (which.isdigit() and int(which) in (ov.mount_id,
                                                                           ov.unique_id)):
            return ov
    return f"no overlay {which} in the dump"
