"""``ovlinspect dump``: what it takes to rebuild every overlay of a namespace, as JSON.

Exit status: 0 the dump was written (overlays that cannot be restored say so in the dump);
1 with ``--verify``, when some overlay's rebuild differs from the live one or could not be
rebuilt, or its dumped upper is no mounted overlay's upper (``reason`` ``differs``,
``rebuild-failed`` or ``upper-not-in-use``); 2 a usage error or bad input (no such process,
MOUNT_POINT is not an overlay, unwritable ``-o``); 3 with ``--verify``, when none of those
happened but some overlay could not be proven here (``reason`` ``likely-only``,
``trusted-xattrs``, ``no-user-namespace``, ``unreadable``, ``live-unreachable``,
``needs-root``, ``live-not-quiet``, ``live-changed`` or ``compare-failed``): as a user without
root, for a rootless overlay, whose layers only inode numbers tie to it, when no read-only
clone of the live mount could be made (the live mount itself is never read), or when the live
tree changed or could not be read during the comparison."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ovlinspect.cli.options import EXIT_OK, EXIT_USAGE
from ovlinspect.report.textsafe import visible

EXIT_DIFFERS = 1
EXIT_UNPROVEN = 3


def build_parser() -> argparse.ArgumentParser:
    """The ``ovlinspect dump`` parser."""
    parser = argparse.ArgumentParser(
        prog="ovlinspect dump",
        description="Print, as JSON, what it takes to rebuild every overlay of a mount namespace "
        "(or just MOUNT_POINT): typed options, each layer's proven real directory and the mount "
        "that holds it, whether it is restorable and why not, and the new-mount-API recipe. "
        "Only reads.")
    parser.add_argument("mount_point", nargs="?", metavar="MOUNT_POINT",
                        help="only the overlay mounted here (as the process sees it)")
    parser.add_argument("--pid", type=int, metavar="PID",
                        help="the mount namespace of this process (default: ours)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the dump to FILE")
    parser.add_argument("--verify", action="store_true",
                        help="also rebuild each restorable overlay in a throwaway private mount "
                        "namespace (a user namespace when not root) and compare its merged tree "
                        "with the live one; exit 1 when one differs, 3 when one cannot be proven")
    parser.add_argument("--max-entries", type=int, default=100_000, metavar="N",
                        help="--verify: compare at most N entries per overlay")
    parser.add_argument("--max-seconds", type=float, default=30.0, metavar="S",
                        help="--verify: stop comparing an overlay after S seconds")
    parser.add_argument("--hash-limit", type=int, default=1 << 20, metavar="BYTES",
                        help="--verify: hash the content of files up to BYTES")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``ovlinspect dump``."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.pid is not None and args.pid <= 0:
        parser.error(f"not a process id: {args.pid}")
    from ovlinspect.checkpoint.dump import build_dump
    from ovlinspect.checkpoint.model import dump_to_wire
    from ovlinspect.engine.scan import ScanError

    try:
        dump = build_dump(args.pid, args.mount_point)
    except ScanError as exc:
        print(f"ovlinspect dump: {visible(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"ovlinspect dump: {visible(str(exc.strerror or exc))}", file=sys.stderr)
        return EXIT_USAGE
    if args.mount_point is not None and not dump.overlays:
        print(f"ovlinspect dump: no overlay is mounted at {visible(args.mount_point)}",
              file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    if args.verify:
        from ovlinspect.checkpoint.compare import Bounds
        from ovlinspect.checkpoint.verify import verify_dump

        bounds = Bounds(max_entries=args.max_entries, max_seconds=args.max_seconds,
                        hash_limit=args.hash_limit)
        from ovlinspect.checkpoint.model import V_FAILURES, V_UNPROVEN

        dump.verify = verify_dump(dump, bounds)
        found = {v.get("reason") for v in dump.verify}
        if found & V_FAILURES:
            status = EXIT_DIFFERS
        elif found & V_UNPROVEN:
            status = EXIT_UNPROVEN
    text = json.dumps(dump_to_wire(dump), indent=1, ensure_ascii=True) + "\n"
    try:
        if args.output:
            with open(args.output, "w", encoding="ascii") as handle:
                handle.write(text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:
        return status
    except OSError as exc:
        print(f"ovlinspect dump: cannot write {visible(args.output or '-')}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    return status
