"""``ovlinspect fds --pid PID [--json]``: the layer behind each open fd and watch of a process."""

from __future__ import annotations

import argparse
import os
import sys

from ovlinspect.cli.options import EXIT_OK, EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """The ``fds`` parser."""
    parser = argparse.ArgumentParser(
        prog="ovlinspect fds",
        description="For each open fd of process PID on an overlay, and each inotify or "
        "fanotify watch on an overlay object, say which layer holds it and its real path.")
    parser.add_argument("--pid", type=int, required=True, metavar="PID")
    parser.add_argument("--json", action="store_true", help="print JSON (\"schema\": 1)")
    return parser


def main(argv: list[str]) -> int:
    """Run ``fds``; 0 on success, 2 when the process cannot be inspected."""
    args = build_parser().parse_args(argv)
    from ovlinspect.cli.which import text_lines
    from ovlinspect.engine.scan import ScanError
    from ovlinspect.provenance.fds import fds
    from ovlinspect.provenance.which import ProvenanceError
    from ovlinspect.report.textsafe import visible

    try:
        report = fds(args.pid)
    except (ScanError, ProvenanceError, OSError) as exc:
        text = str(exc) if not isinstance(exc, OSError) else f"pid {args.pid}: " + str(
            exc.strerror or exc)
        print(f"ovlinspect fds: {visible(text)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    try:
        if args.json:
            from ovlinspect.provenance.result import fds_to_wire
            from ovlinspect.report.jsonreport import encode

            sys.stdout.write(encode(fds_to_wire(report)) + "\n")
        else:
            print(f"pid {report.pid}: {report.scanned} fds, {len(report.fds)} on overlays, "
                  f"{len(report.watches)} overlay watches")
            for rec in report.fds:
                head = f"fd {rec.fd}: {visible(rec.provenance.path)}"
                sys.stdout.write("\n".join(text_lines(rec.provenance, head)) + "\n")
            for w in report.watches:
                wd = f" wd {w.wd}" if w.wd is not None else ""
                head = f"fd {w.fd} {w.kind}{wd} mask {w.mask}: {visible(w.provenance.path)}"
                sys.stdout.write("\n".join(text_lines(w.provenance, head)) + "\n")
            if report.watches_skipped:
                print(f"watches not read (fds {report.watches_skipped}): "
                      f"{visible(report.skip_reason)}")
            for message in report.errors:
                print(f"error: {visible(message)}")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_OK
