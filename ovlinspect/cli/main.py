"""Command line: choose an output, run a scan, exit with a meaningful status.

Only the TUI path imports textual; ``--json``, ``--plain`` and ``--check`` stay light.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from types import ModuleType, SimpleNamespace

from ovlinspect import __version__
from ovlinspect.cli.options import (
    EXIT_HAZARDS,
    EXIT_OK,
    EXIT_USAGE,
    add_output_options,
    check_output_options,
)

TYPE_CHECKING = False  # typing and argparse cost ~8 ms of a quiet host's ~50 ms run (issue #9)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from ovlinspect.model import Hazard, Overlay, Scan


class _LazyInspect(ModuleType):
    """Stands in for ``inspect`` until something reads from it.

    ``dataclasses`` imports ``inspect`` (5 ms, a tenth of a quiet host's run) only to write a
    docstring for a dataclass that has none; every model class has one.  The first attribute read
    imports the real module, puts it in ``sys.modules`` and copies its namespace here, so code
    that imported the stand-in (textual, in the TUI) reads the real functions directly from then
    on.
    """

    def __getattr__(self, name: str) -> object:
        if sys.modules.get("inspect") is self:
            del sys.modules["inspect"]
        real = importlib.import_module("inspect")
        self.__dict__.update(real.__dict__)
        return getattr(real, name)


if "inspect" not in sys.modules and "dataclasses" not in sys.modules:
    sys.modules["inspect"] = _LazyInspect("inspect")


def build_parser() -> argparse.ArgumentParser:
    """The main parser (``ovlinspect demo`` has its own, in :mod:`ovlinspect.cli.demo`)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="ovlinspect",
        description="Show what overlayfs mounts are really made of, proven with file handles. "
        "Run 'ovlinspect demo' for a self-contained lab.",
        epilog="commands (each has its own --help): demo (a lab of every hazard), which (the "
        "layer that serves a path), fds (the layers of a process's open files and watches), "
        "diff (changes since the image), dump (what it takes to rebuild each overlay), restore "
        "(rebuild one from a dump and verify it)",
    )
    parser.add_argument("--version", action="version", version=f"ovlinspect {__version__}")
    parser.add_argument("--pid", type=int, action="append", metavar="PID",
                        help="only the mount namespace of this process (repeatable)")
    add_output_options(
        parser,
        plain_help="print a tree for humans and bug reports",
        check_help="exit 1 when any hazard of severity warning or worse is found, 0 when none, "
        "2 on bad input or a --pid that is gone (not with --screenshot)",
        watch_help="TUI: also rescan every SECONDS (mount table changes always rescan)",
    )
    parser.add_argument("--prometheus", metavar="FILE",
                        help="write node_exporter textfile-collector metrics to FILE atomically "
                        "(write, then rename); exits like --check")
    parser.add_argument("--from-file", metavar="FILE",
                        help="analyse a saved mountinfo ('-' for stdin); no live resolution. "
                        "Refused (exit 2) when larger than 64 MiB, with a line over 8 MiB, or "
                        "without any mount line")
    parser.add_argument("--json-schema", action="store_true",
                        help="print the JSON Schema of the --json report and exit")
    return parser


SUBCOMMANDS = {
    "demo": "ovlinspect.cli.demo",
    "which": "ovlinspect.cli.which",
    "fds": "ovlinspect.cli.fds",
    "diff": "ovlinspect.cli.diff",
    "dump": "ovlinspect.cli.dump",
    "restore": "ovlinspect.cli.restore",
}
"""``ovlinspect NAME ...``: the module whose ``main(argv) -> int`` runs it (imported on use)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ovlinspect`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[args_list[0]])
        return int(module.main(args_list[1:]))
    args = _quick_args(args_list)
    if args is None:
        parser = build_parser()
        args = parser.parse_args(args_list)
        check_output_options(parser, args)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_OK


_QUICK_FLAGS = {"--json": "json", "--plain": "plain", "--check": "check"}


def _quick_args(args_list: list[str]) -> argparse.Namespace | None:
    """The everyday invocations (``--json``, ``--plain``, ``--check``, ``--pid N``) parsed
    without building argparse's parser, which costs a sixth of a quiet host's run: exactly the
    values ``parse_args`` gives them.  None for anything else (help, errors, abbreviations, other
    options), which then goes through argparse as before."""
    values: dict[str, object] = {
        "pid": None, "json": False, "plain": False, "screenshot": None, "check": False,
        "size": (120, 40), "screenshot_dir": ".", "watch": None, "prometheus": None,
        "from_file": None, "json_schema": False, "select": None, "expand": False,
    }
    pids: list[int] = []
    todo = iter(args_list)
    for token in todo:
        if token in _QUICK_FLAGS:
            values[_QUICK_FLAGS[token]] = True
            continue
        if token == "--pid":
            token = next(todo, "")
        elif token.startswith("--pid="):
            token = token[len("--pid="):]
        else:
            return None
        if not (token.isascii() and token.isdigit()):
            return None
        pids.append(int(token))
    if values["json"] and values["plain"]:
        return None  # argparse's "not allowed with" error
    if pids:
        values["pid"] = pids
    return SimpleNamespace(**values)  # type: ignore[return-value]


def _drop_stdout() -> None:
    """Downstream closed the pipe (e.g. ``| head``): discard further output, no traceback, and
    no failed flush at exit (which would turn the exit status into 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _run(args: argparse.Namespace) -> int:
    if args.json_schema:
        from ovlinspect.model.codec import schema_text

        sys.stdout.write(schema_text())
        return EXIT_OK
    from ovlinspect.engine.scan import ScanError, scan

    headless = args.json or args.plain or args.check or args.screenshot or args.prometheus
    if not headless and not sys.stdout.isatty():
        args.plain = True
    if args.json and not (args.check or args.prometheus or args.from_file is not None):
        return _json_report(args)
    started = time.monotonic()
    try:
        if args.from_file is not None:
            result = _scan_file(args.from_file)
        elif args.screenshot or not (args.json or args.plain or args.check or args.prometheus):
            result = None  # the TUI scans in its own worker
        else:
            result = scan(pids=args.pid)
    except ScanError as exc:
        _error(exc)
        return EXIT_USAGE
    duration = time.monotonic() - started

    if result is not None and (args.json or args.plain or args.check or args.prometheus):
        if args.prometheus:
            from ovlinspect.report.prometheus import render, write_atomic

            try:
                write_atomic(args.prometheus, render(result, duration, time.time()))
            except OSError as exc:
                _error(OSError(f"cannot write {args.prometheus}: {exc.strerror or exc}"))
                return EXIT_USAGE
        return _print_report(args, result)

    from ovlinspect.tui import run_app, save_screenshot

    if args.screenshot:
        try:
            save_screenshot(args.screenshot, size=args.size, pids=args.pid, scan_result=result,
                            select=args.select, expand=args.expand)
        except (ScanError, OSError) as exc:
            _error(exc)
            return EXIT_USAGE
        print(args.screenshot)
        return EXIT_OK
    return run_app(pids=args.pid, scan_result=result, screenshot_dir=args.screenshot_dir,
                   watch=args.watch, select=args.select, expand=args.expand)


def _json_report(args: argparse.Namespace) -> int:
    """``--json`` of the live host, written as the namespaces are analysed (in two processes on
    a busy multi-core host): the same bytes as ``write_scan(scan())``, in less time and memory."""
    from ovlinspect.engine.scan import ScanError, scan_rendered
    from ovlinspect.report.jsonreport import namespace_text, write_rendered

    try:
        result, namespaces = scan_rendered(args.pid, namespace_text)
    except ScanError as exc:
        _error(exc)
        return EXIT_USAGE
    try:
        write_rendered(result, namespaces, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    finally:
        namespaces.close()  # type: ignore[attr-defined]
    return EXIT_OK


def _error(exc: Exception) -> None:
    from ovlinspect.report.textsafe import visible

    print(f"ovlinspect: {visible(str(exc))}", file=sys.stderr)


def _scan_file(path: str) -> Scan:
    """``--from-file``: stream the file through the bounded reader (see ``read_lines``)."""
    from ovlinspect.engine.scan import ScanError, scan_text
    from ovlinspect.mounts.mountinfo import read_lines

    try:
        if path == "-":
            if sys.stdin is None:
                raise ScanError("-: there is no standard input")
            return scan_text(read_lines(sys.stdin.buffer), source=path)
        with open(path, "rb") as handle:
            return scan_text(read_lines(handle), source=path)
    except OSError as exc:
        raise ScanError(f"cannot read {path}: {exc.strerror or exc}") from None


def _print_report(args: argparse.Namespace, result: object) -> int:
    """Print the report; the exit status is decided first, so a closed pipe cannot change it."""
    from ovlinspect.model import Scan, Severity

    assert isinstance(result, Scan)
    bad = [
        (o, h)
        for ns in result.namespaces
        for o in ns.overlays
        for h in o.all_hazards()
        if h.severity.rank >= Severity.WARNING.rank
    ] if args.check or args.prometheus else []
    status = EXIT_HAZARDS if bad else EXIT_OK
    try:
        _write_report(args, result, bad)
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    return status


def _write_report(args: argparse.Namespace, result: Scan,
                  bad: list[tuple[Overlay, Hazard]]) -> None:
    if args.json:
        from ovlinspect.report.jsonreport import write_scan

        write_scan(result, sys.stdout)
    elif args.plain:
        from ovlinspect.report.plain import print_scan

        print_scan(result)
    elif args.check:
        from ovlinspect.report.textsafe import visible

        for overlay, h in bad:
            where = visible(overlay.mount_point) + (f" {h.layer}" if h.layer else "")
            print(f"{h.severity.value}: {where}: {h.code}: {visible(h.message)}")
        if not bad:
            print("ok: no hazard of severity warning or worse")
