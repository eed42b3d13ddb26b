"""The command line: argument parsing, subcommands, output and exit codes."""

from ovlinspect.cli.main import main
from ovlinspect.cli.options import add_output_options

__all__ = ["add_output_options", "main"]
