"""``ovlinspect demo``: start the lab, then show it (TUI, JSON, plain tree, check or keep).

Only the TUI and ``--screenshot`` paths import textual.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from ovlinspect.cli.options import EXIT_OK, EXIT_USAGE, add_output_options, check_output_options
from ovlinspect.lab import Lab, LabError
from ovlinspect.report.textsafe import visible

EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    """The ``ovlinspect demo`` parser."""
    parser = argparse.ArgumentParser(
        prog="ovlinspect demo",
        description="Build a lab of overlay mounts, each showing one way mount options mislead, "
        "in a private mount namespace (nothing is mounted on the host), and inspect it. The lab "
        "vanishes when this command exits.")
    out = add_output_options(
        parser,
        plain_help="print the layout and a plain tree",
        check_help="self-test: exit 1 unless every scenario shows its expected hazards",
        watch_help="TUI: also rescan every SECONDS",
    )
    out.add_argument("--keep", action="store_true",
                     help="start the lab, print its pids and mount points, and keep it until "
                     "Ctrl-C or SIGTERM (inspect it from another shell)")
    parser.add_argument("--rootless", action="store_true",
                        help="use a user namespace (userxattr overlays) even when run as root")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also report how long the lab took to start")
    return parser


def main(argv: Sequence[str]) -> int:
    """Entry point of ``ovlinspect demo``."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    check_output_options(parser, args)
    if args.keep and args.check:
        parser.error("--check cannot be combined with --keep")
    if not (args.keep or args.json or args.plain or args.check or args.screenshot) \
            and not sys.stdout.isatty():
        args.plain = True
    if args.keep:
        signal.signal(signal.SIGTERM, _interrupt)  # end --keep cleanly, as Ctrl-C does
    lab = Lab(rootless=True if args.rootless else None)
    try:
        lab.start()
    except LabError as exc:
        print(f"ovlinspect demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    try:
        if args.verbose:
            print(f"ovlinspect demo: lab ready in {lab.start_seconds:.3f}s "
                  f"(holder built it in {lab.build_seconds:.3f}s)", file=sys.stderr)
        return _run(args, lab)
    except KeyboardInterrupt:
        return EXIT_OK if args.keep else 130
    except BrokenPipeError:
        return EXIT_OK
    finally:
        lab.stop()


def _run(args: argparse.Namespace, lab: Lab) -> int:
    if args.keep:
        return _keep(lab)
    out = sys.stderr if args.json or args.screenshot else sys.stdout
    if args.json or args.plain or args.check or args.screenshot:
        print_layout(lab, out)
    if args.screenshot:
        from ovlinspect.engine.scan import ScanError
        from ovlinspect.tui import save_screenshot

        try:
            save_screenshot(args.screenshot, size=args.size, pids=lab.pids,
                            select=args.select, expand=args.expand)
        except (ScanError, OSError) as exc:
            print(f"ovlinspect demo: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(args.screenshot)
        return EXIT_OK
    if not (args.json or args.plain or args.check):
        from ovlinspect.tui import run_app

        return run_app(pids=lab.pids, scan_result=None, screenshot_dir=args.screenshot_dir,
                       watch=args.watch, select=args.select, expand=args.expand)
    from ovlinspect.engine.scan import ScanError, scan

    try:
        result = scan(lab.pids)
    except ScanError as exc:
        print(f"ovlinspect demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        from ovlinspect.model.codec import scan_to_wire
        from ovlinspect.report.jsonreport import encode

        document = scan_to_wire(result)
        document["lab"] = lab_info(lab)
        sys.stdout.write(encode(document) + "\n")
    elif args.plain:
        from ovlinspect.report.plain import print_scan

        print_scan(result)
    if args.check:
        return _check(lab, result, sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def lab_info(lab: Lab) -> dict[str, object]:
    """What the lab built, for the ``lab`` key of ``--json``."""
    return {"holder_pid": lab.holder_pid, "container_pid": lab.container_pid,
            "rootless": lab.rootless, "base": lab.base, "scenarios": lab.scenarios,
            "skipped": lab.skipped, "inherited_detached": lab.inherited_detached,
            "inherited_kept": lab.inherited_kept, "notes": lab.notes}


def print_layout(lab: Lab, out: TextIO) -> None:
    """The pids, each scenario's mount point and expectation, and how to look at them."""
    mode = "rootless: user namespace, userxattr" if lab.rootless else "as root"
    print(f"ovlinspect demo lab ({mode}); its mounts exist only in its private mount namespace",
          file=out)
    print(f"  holder pid:    {lab.holder_pid}", file=out)
    print(f"  container pid: {lab.container_pid or '-'}", file=out)
    width = max((len(s["mount_point"]) for s in lab.scenarios), default=0)
    for s in lab.scenarios:
        expect = ", ".join(s["expect"]) or "no hazard"
        where = "" if s["pid"] == lab.holder_pid else f"  (in pid {s['pid']})"
        print(f"  {s['mount_point']:<{width}}  expect: {expect}{where}", file=out)
    for skipped in lab.skipped:
        print(f"  not built: {skipped['name']}: {skipped['reason']}", file=out)
    for note in lab.notes:  # names from the host: shown escaped
        print(f"  note: {visible(note)}", file=out)


def _keep(lab: Lab) -> int:
    out = sys.stdout
    print_layout(lab, out)
    pid = lab.holder_pid
    enter = f"nsenter -t {pid} -U -m --preserve-credentials" if lab.rootless \
        else f"nsenter -t {pid} -m"
    pid_args = " ".join(f"--pid {p}" for p in lab.pids)
    print("Look at it from another shell:", file=out)
    print(f"  ovlinspect {pid_args}", file=out)
    print(f"  findmnt -N {pid}", file=out)
    print(f"  {enter} ls {lab.base}", file=out)
    print(f"  ls /proc/{pid}/root{lab.base}", file=out)
    print("Press Ctrl-C to stop the lab.", file=out, flush=True)
    if lab.wait():
        print("ovlinspect demo: the lab holder exited", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _check(lab: Lab, result: object, out: TextIO) -> int:
    from ovlinspect.lab.verify import unjudged, verify
    from ovlinspect.model import Scan

    assert isinstance(result, Scan)
    verdicts = verify(result, lab.scenarios)
    for v in verdicts:
        status = "ok  " if v.ok else "FAIL"
        detail = "; ".join(v.problems) if v.problems else ", ".join(v.found) or "no hazard"
        print(f"{status} {v.name:<15} {detail}", file=out)
    for skipped in lab.skipped:
        print(f"skip {skipped['name']:<15} {skipped['reason']}", file=out)
    for mount_point in unjudged(result, lab.scenarios):
        print(f"note {visible(mount_point)}: not built by the lab (inherited), not checked",
              file=out)
    return EXIT_OK if all(v.ok for v in verdicts) else EXIT_FAILED
