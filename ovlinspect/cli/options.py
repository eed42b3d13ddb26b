"""Options and exit codes shared by ``ovlinspect`` and its subcommands."""

from __future__ import annotations

import argparse

EXIT_OK = 0
EXIT_HAZARDS = 1
EXIT_USAGE = 2


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 120x40, not {text!r}") from None
    if not (20 <= width <= 1000 and 10 <= height <= 1000):
        raise argparse.ArgumentTypeError("size must be between 20x10 and 1000x1000")
    return width, height


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
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
                        help="where the TUI's 's' key saves SVG screenshots (default: .)")
    parser.add_argument("--watch", type=_positive_float, metavar="SECONDS", help=watch_help)
    return out
