"""Benchmark (issue #9): from starting ``ovlinspect`` on a busy host to the first frame that lists
every namespace, and to the end of the analysis; the real program in a pseudo-terminal.

Builds ``bench/busy_host.py``'s host (private mount namespaces only: NS namespaces x OVERLAYS
overlays x LOWERS lowers, default 300 x 7 x 5), then starts ``python -m ovlinspect`` (the TUI,
bytecode compiled) in a 120x40 pty ROUNDS times and reads what it draws:

- ``listed``: the ``Namespaces N/N`` title with N at least the host's namespaces (every row is
  there; most still say ``⋯ scanning``);
- ``analysed``: the status line's ``scanned HH:MM:SS`` (the whole scan is in).

Prints medians; asserts nothing.  Run as root: ``python bench/tui_first_frame.py [NS] [OVERLAYS]
[LOWERS] [ROUNDS]``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from busy_host import BUILD, running

REPO = Path(__file__).resolve().parents[1]
TITLE = re.compile(rb"Namespaces (\d+)/(\d+)")
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def namespaces_on_host() -> int:
    """How many mount namespaces have a live process (what a full scan lists)."""
    seen = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                seen.add(os.stat(f"/proc/{name}/ns/mnt").st_ino)
    return len(seen)


def one_run(expect: int, timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from fork to the listing frame and to the analysed one."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm-256color", COLORTERM="truecolor", LC_ALL="C.UTF-8")
        os.execv(sys.executable, [sys.executable, "-m", "ovlinspect"])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    listed = analysed = 0.0
    seen = b""
    try:
        while time.perf_counter() - start < timeout and not analysed:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                break
            seen = (seen + ANSI.sub(b"", chunk))[-20000:]
            if not listed:
                for shown, total in TITLE.findall(seen):
                    if int(shown) == int(total) >= expect:
                        listed = time.perf_counter() - start
            if listed and b"scanned " in seen:
                analysed = time.perf_counter() - start
    finally:
        if not analysed:
            Path("/tmp/tui_first_frame.log").write_bytes(seen)
        os.write(fd, b"q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    return listed, analysed


def main() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "ovlinspect")],
                   check=True, capture_output=True)
    given = sys.argv[1:4]
    ns, overlays, lowers = (int(x) for x in given + ["300", "7", "5"][len(given):])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    os.chdir(REPO)
    with running(BUILD.format(ns=ns, overlays=overlays, lowers=lowers), python=True,
                 timeout=900, bare=True):
        expect = namespaces_on_host() - 5  # namespaces come and go on a shared host
        runs = [one_run(expect) for _ in range(rounds)]
    listed = statistics.median(r[0] for r in runs)
    analysed = statistics.median(r[1] for r in runs)
    print(f"busy host: {ns} namespaces x {overlays} overlays x {lowers} lowers; {rounds} runs "
          "of the TUI in a 120x40 pty")
    print(f"  first frame listing every namespace: median {listed * 1000:.0f} ms "
          f"(runs: {', '.join(f'{r[0] * 1000:.0f}' for r in runs)}; goal <= 300 ms)")
    print(f"  whole scan analysed and shown:       median {analysed * 1000:.0f} ms "
          f"(runs: {', '.join(f'{r[1] * 1000:.0f}' for r in runs)})")


if __name__ == "__main__":
    main()
