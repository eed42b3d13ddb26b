"""``ovlinspect which [--pid PID] PATH... [--json]``: which layer serves each path."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ovlinspect.cli.options import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from ovlinspect.provenance.result import ObjectRef, Provenance


def build_parser() -> argparse.ArgumentParser:
    """The ``which`` parser."""
    parser = argparse.ArgumentParser(
        prog="ovlinspect which",
        description="Say which overlay layer serves each PATH (as process PID sees it), its "
        "real path, copy-up origin, metacopy data, redirects, opaque directories and whiteouts, "
        "with the proof.")
    parser.add_argument("--pid", type=int, metavar="PID",
                        help="resolve PATH as this process sees it (default: this process)")
    parser.add_argument("--json", action="store_true", help="print JSON (\"schema\": 1)")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    return parser


def main(argv: list[str]) -> int:
    """Run ``which``; 0 when every path was answered, 2 otherwise."""
    args = build_parser().parse_args(argv)
    from ovlinspect.engine.scan import ScanError
    from ovlinspect.provenance.which import ProvenanceError, which

    pid = args.pid if args.pid is not None else os.getpid()
    paths = args.paths
    if args.pid is None:
        paths = [os.path.abspath(p) for p in paths]
    try:
        results, errors = which(pid, paths)
    except (ScanError, ProvenanceError, OSError) as exc:
        _error(str(exc) if not isinstance(exc, OSError) else f"pid {pid}: {exc.strerror or exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    try:
        if args.json:
            from ovlinspect.provenance.result import which_to_wire
            from ovlinspect.report.jsonreport import encode

            sys.stdout.write(encode(which_to_wire(results, errors)) + "\n")
        else:
            for item in results:
                sys.stdout.write("\n".join(text_lines(item)) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    for message in errors:
        _error(message)
    return EXIT_USAGE if errors else EXIT_OK


def _ref(ref: ObjectRef | None) -> str:
    from ovlinspect.report.textsafe import visible

    if ref is None:
        return "-"
    return f"{ref.label} {visible(ref.real_path) if ref.real_path else '(path unknown)'}"


def text_lines(p: Provenance, head: str | None = None) -> list[str]:
    """A result for humans: the path, then one indented ``key value`` line per fact."""
    from ovlinspect.report.textsafe import visible

    proof = f"{p.method}, {p.strength}" if p.strength else str(p.method)
    lines = [head or visible(p.path),
             f"  overlay   {visible(p.mount_point)} (mount {p.mount_id})",
             f"  layer     {_ref(p.layer)}  [{p.kind}; {proof}]"]
    if p.whiteout:
        lines.append("  whiteout  deleted in " + (p.layer.label if p.layer else "?"))
    if p.copied_up:
        lines.append(f"  origin    {_ref(p.origin)}")
    if p.metacopy:
        lines.append(f"  data      {_ref(p.data)}")
    if p.redirect is not None:
        lines.append(f"  redirect  {visible(p.redirect)}")
    if p.opaque:
        lines.append("  opaque    yes")
    lines += [f"  merged    {_ref(m)}" for m in p.merged]
    lines += [f"  hides     {_ref(h)}" for h in p.hidden]
    if p.index_entry:
        lines.append(f"  index     {visible(p.index_entry)} (nlink {p.nlink})")
    lines += [f"  note      {visible(n)}" for n in p.notes]
    return lines


def _error(message: str) -> None:
    from ovlinspect.report.textsafe import visible

    print(f"ovlinspect which: {visible(message)}", file=sys.stderr)


def _drop_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
