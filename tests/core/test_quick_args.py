"""The hand-parsed everyday arguments (start-up time, issue #9) give exactly argparse's values."""

from __future__ import annotations

import pytest

from ovlinspect.cli.main import _quick_args, build_parser

QUICK = [[], ["--json"], ["--plain"], ["--check"], ["--pid", "1"], ["--pid=7", "--json"],
         ["--json", "--check"], ["--pid", "1", "--pid", "2", "--plain"]]
SLOW = [["--help"], ["--js"], ["--pid"], ["--pid", "x"], ["--select", "/m"], ["--expand"],
        ["--screenshot", "x.svg"], ["-h"], ["--json", "--plain"]]


@pytest.mark.parametrize("argv", QUICK, ids=" ".join)
def test_quick_values_equal_argparse(argv: list[str]) -> None:
    quick = _quick_args(argv)
    assert quick is not None
    assert vars(quick) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", SLOW, ids=" ".join)
def test_anything_else_goes_through_argparse(argv: list[str]) -> None:
    assert _quick_args(argv) is None
