"""Command line: choose an output, run a scan, exit with a meaningful status.

Only the TUI path imports textual; ``--json``, ``--plain`` and ``--check`` stay light.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ovlinspect import __version__
from ovlinspect.cli.options import EXIT_HAZARDS, EXIT_OK, EXIT_USAGE, add_output_options


def build_parser() -> argparse.ArgumentParser:
    """The main parser (``ovlinspect demo`` has its own, in :mod:`ovlinspect.cli.demo`)."""
    parser = argparse.ArgumentParser(
        prog="ovlinspect",
        description="Show what overlayfs mounts are really made of, proven with file handles. "
        "Run 'ovlinspect demo' for a self-contained lab.",
    )
    parser.add_argument("--version", action="version", version=f"ovlinspect {__version__}")
    parser.add_argument("--pid", type=int, action="append", metavar="PID",
                        help="only the mount namespace of this process (repeatable)")
    add_output_options(
        parser,
        plain_help="print a tree for humans and bug reports",
        check_help="exit 1 when any hazard of severity warning or worse is found",
        watch_help="TUI: also rescan every SECONDS (mount table changes always rescan)",
    )
    parser.add_argument("--from-file", metavar="FILE",
                        help="analyse a saved mountinfo ('-' for stdin); no live resolution")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ovlinspect`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:
        from ovlinspect.cli.demo import main as demo_main

        return demo_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Downstream closed the pipe (e.g. `| head`): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from ovlinspect.engine.scan import ScanError, scan, scan_text

    headless = args.json or args.plain or args.check or args.screenshot
    if not headless and not sys.stdout.isatty():
        args.plain = True
    try:
        if args.from_file is not None:
            result = scan_text(_read_input(args.from_file), source=args.from_file)
        elif args.screenshot or not (args.json or args.plain or args.check):
            result = None  # the TUI scans in its own worker
        else:
            result = scan(pids=args.pid)
    except ScanError as exc:
        print(f"ovlinspect: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if result is not None and (args.json or args.plain or args.check):
        return _print_report(args, result)

    from ovlinspect.tui import run_app, save_screenshot

    if args.screenshot:
        try:
            save_screenshot(args.screenshot, size=args.size, pids=args.pid, scan_result=result)
        except (ScanError, OSError) as exc:
            print(f"ovlinspect: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(args.screenshot)
        return EXIT_OK
    return run_app(pids=args.pid, scan_result=result, screenshot_dir=args.screenshot_dir,
                   watch=args.watch)


def _read_input(path: str) -> str:
    from ovlinspect.engine.scan import ScanError

    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except OSError as exc:
        raise ScanError(f"cannot read {path}: {exc.strerror}") from None


def _print_report(args: argparse.Namespace, result: object) -> int:
    from ovlinspect.model import Scan, Severity

    assert isinstance(result, Scan)
    if args.json:
        from ovlinspect.report.jsonreport import dumps

        sys.stdout.write(dumps(result) + "\n")
    elif args.plain:
        from ovlinspect.report.plain import print_scan

        print_scan(result)
    if not args.check:
        return EXIT_OK
    from ovlinspect.report.textsafe import visible

    bad = [
        (o, h)
        for ns in result.namespaces
        for o in ns.overlays
        for h in o.all_hazards()
        if h.severity.rank >= Severity.WARNING.rank
    ]
    if not (args.json or args.plain):
        for overlay, h in bad:
            where = visible(overlay.mount_point) + (f" {h.layer}" if h.layer else "")
            print(f"{h.severity.value}: {where}: {h.code}: {visible(h.message)}")
        if not bad:
            print("ok: no hazard of severity warning or worse")
    return EXIT_HAZARDS if bad else EXIT_OK
