"""The main --help names every subcommand, and each subcommand answers --help."""

from __future__ import annotations

import pytest

from ovlinspect.cli.main import SUBCOMMANDS, build_parser

from scenario import run_cli


def test_main_help_lists_every_subcommand() -> None:
    epilog = build_parser().epilog or ""
    assert [name for name in SUBCOMMANDS if f"{name} (" not in epilog] == []


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name: str) -> None:
    done = run_cli(name, "--help")
    assert done.stdout.startswith(f"usage: ovlinspect {name}")
