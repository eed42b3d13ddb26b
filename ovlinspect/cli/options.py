"""Options and exit codes shared by ``ovlinspect`` and its subcommands."""

from __future__ import annotations

import math

TYPE_CHECKING = False  # argparse is imported where a parser is built (startup time, issue #9)
if TYPE_CHECKING:
    import argparse

EXIT_OK = 0
EXIT_HAZARDS = 1
EXIT_USAGE = 2  # also bad input (refused --from-file) and a --pid that is gone

# --watch bounds: faster than 0.1 s only burns CPU; a day is longer than anyone watches.
WATCH_MIN = 0.1
WATCH_MAX = 86400.0


def _size(text: str) -> tuple[int, int]:
    import argparse

    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 120x40, not {text!r}") from None
    if not (20 <= width <= 1000 and 10 <= height <= 1000):
        raise argparse.ArgumentTypeError("size must be between 20x10 and 1000x1000")
    return width, height


def _watch_seconds(text: str) -> float:
    """A rescan interval: a finite number of seconds within ``WATCH_MIN``..``WATCH_MAX``."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and WATCH_MIN <= value <= WATCH_MAX):
        raise argparse.ArgumentTypeError(
            f"must be between {WATCH_MIN:g} and {WATCH_MAX:g} seconds, not {text!r}")
    return value


def add_output_options(parser: argparse.ArgumentParser, *, plain_help: str, check_help: str,
                       watch_help: str) -> argparse._MutuallyExclusiveGroup:
    """The output options the main command and ``demo`` share; returns the exclusive group."""
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the versioned JSON report")
    out.add_argument("--plain", action="store_true", help=plain_help)
    out.add_argument("--screenshot", metavar="FILE",
                     help="render the TUI headless into an SVG file and exit")
    parser.add_argument("--check", action="store_true", help=check_help)
    parser.add_argument("--size", type=_size, default=(120, 40), metavar="WxH",
                        help="terminal size for --screenshot (default 120x40)")
    parser.add_argument("--screenshot-dir", default=".", metavar="DIR",
                        help="where the TUI's 's' and 'w' keys save SVG screenshots and mount "
                             "JSON (default: .)")
    parser.add_argument("--select", metavar="MOUNT_POINT|MOUNT_ID",
                        help="the TUI (and --screenshot) starts on this mount instead of the "
                             "worst one")
    parser.add_argument("--expand", action="store_true",
                        help="open the selected mount and its layers (for a bug report's "
                             "--screenshot)")
    parser.add_argument("--watch", type=_watch_seconds, metavar="SECONDS",
                        help=f"{watch_help} ({WATCH_MIN:g} to {WATCH_MAX:g})")
    return out


def check_output_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject what the exclusive group cannot express (``parser.error`` exits with status 2).

    ``--check`` with ``--screenshot`` is refused: a screenshot shows hazards but has no exit
    status, and honouring only one of them silently would mislead a script.
    """
    if args.check and args.screenshot:
        parser.error("--check cannot be combined with --screenshot; run them separately")
    if getattr(args, "prometheus", None) and args.screenshot:
        parser.error("--prometheus cannot be combined with --screenshot; run them separately")
