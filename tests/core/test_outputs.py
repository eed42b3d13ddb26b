"""The plain and JSON renderers: faithful, injection-proof, and light (no textual import)."""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import struct
import subprocess
import sys
from fcntl import ioctl
from io import StringIO
from termios import TIOCSWINSZ

import pytest
from rich.console import Console

from ovlinspect.model import Layer, Namespace, Overlay, OverlayOptions, Process, Scan, Verified
from ovlinspect.model.codec import text_from_wire
from ovlinspect.model.hazards import CATALOGUE, hazard
from ovlinspect.report.jsonreport import dumps
from ovlinspect.report.plain import print_scan
from ovlinspect.report.textsafe import visible

from scenario import REPO, run_cli, running

HOSTILE = "/m/[bold]x[/]:smile:\x1b[2J\nnext\udcff\u202e"


def _scan(mount_point: str = "/merged", comm: str = "sleep") -> Scan:
    lower = Layer(role="lower", index=0, declared="l1", path="/x/l1", verified=Verified.MATCH,
                  hazards=[hazard("fd-path", "lower[0]", "lower[0] was given as a descriptor")])
    overlay = Overlay(mount_id=7, unique_id=0x80000007, mount_point=mount_point, fs_type="overlay",
                      source="ov", mount_options="rw", super_options="rw,lowerdir=l1",
                      options=OverlayOptions(lowerdir=["l1"]), layers=[lower])
    ns = Namespace(mnt_ns=4026531840, pids=[4242], processes=[Process(4242, comm)],
                   overlays=[overlay])
    return Scan(namespaces=[ns])


def _plain(scan: Scan, width: int = 200) -> str:
    out = StringIO()
    print_scan(scan, Console(file=out, width=width, color_system=None))
    return out.getvalue()


def test_plain_shows_hostile_text_literally_and_escaped() -> None:
    text = _plain(_scan(HOSTILE, comm="[red]x\x1b]0;pwn\x07"))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "/m/[bold]x[/]:smile:\\x1b[2J\\nnext\\xff\\u202e" in text
    assert "[red]x\\x1b]0;pwn\\x07" in text
    assert "😄" not in text


def test_plain_names_verdict_and_hazard_in_words() -> None:
    text = _plain(_scan())
    assert "✔ match" in text and "fd-path" in text and "▲ warn" in text
    assert "hints" in text and CATALOGUE["fd-path"].hint in text


def test_json_round_trips_through_the_model() -> None:
    scan = _scan(HOSTILE)
    doc = json.loads(dumps(scan))
    assert doc["schema"] == 1
    overlay = doc["namespaces"][0]["overlays"][0]
    assert overlay["mount_point"] == {
        "base64": base64.b64encode(HOSTILE.encode("utf-8", "surrogateescape")).decode(),
        "text": HOSTILE.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")}
    assert text_from_wire(overlay["mount_point"]) == HOSTILE
    assert overlay["layers"][0]["hazards"][0] == {
        "code": "fd-path", "severity": "warning", "layer": "lower[0]",
        "message": "lower[0] was given as a descriptor", "hint": CATALOGUE["fd-path"].hint}
    assert Scan.from_dict(doc).to_dict() == scan.to_dict()


def test_visible_escapes_every_control_character() -> None:
    for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)]:
        assert visible(f"a{chr(code)}b").isprintable()
    assert visible("ok/path é") == "ok/path é"


def test_json_and_plain_do_not_import_textual() -> None:
    probe = (
        "import sys\n"
        "from ovlinspect.cli import main\n"
        "for args in (['--json'], ['--plain'], ['--check']):\n"
        "    try:\n"
        "        main(['--from-file', sys.argv[1], *args])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('textual' in sys.modules)\n"
    )
    sample = "36 35 0:40 / /m rw - overlay ov rw,lowerdir=/a:/b,upperdir=/u,workdir=/w\n"
    done = subprocess.run([sys.executable, "-c", probe, "/dev/stdin"], input=sample,
                          capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"


# -- --plain never breaks a path -----------------------------------------------------------------

LONG = "p" * 150 + "/" + "q" * 150  # a 300-character layer path below $T
LONG_LAYER = f"""
mount -t tmpfs lab $T
mkdir -p $T/{LONG} $T/u $T/w $T/m
echo x > $T/{LONG}/only
mount -t overlay ov -o lowerdir=$T/{LONG},upperdir=$T/u,workdir=$T/w $T/m
echo ready; exec sleep 600
"""
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _intact(text: str, path: str) -> list[str]:
    """The lines holding ``path`` whole; fails if any line holds only a piece of it."""
    lines = text.splitlines()
    tail = path[-40:]
    assert not [ln for ln in lines if tail in ln and path not in ln], "a broken path"
    return [ln for ln in lines if path in ln]


def _on_terminal(*args: str, columns: int) -> str:
    """Run ovlinspect on a pseudo-terminal ``columns`` wide; its output, colours removed."""
    master, slave = pty.openpty()
    ioctl(slave, TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "ovlinspect", *args], stdin=slave,
                            stdout=slave, stderr=slave, cwd="/", env={
                                **env, "PYTHONPATH": str(REPO), "TERM": "xterm-256color"})
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        rc = proc.wait(timeout=120)
    assert rc == 0, b"".join(chunks)[-2000:]
    return ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")


def test_plain_wraps_between_fields_only() -> None:
    scan = _scan(mount_point="/m/" + "x" * 120)
    scan.namespaces[0].overlays[0].layers[0].path = "/y/" + "z" * 120
    text = _plain(scan, width=80)
    assert _intact(text, "/m/" + "x" * 120) and _intact(text, "/y/" + "z" * 120)
    head = next(ln for ln in text.splitlines() if "/y/" + "z" * 120 in ln)
    assert "match" not in head  # the verdict moved to the next line, the path stayed whole
    assert _plain(scan, width=80).count("\n") > _plain(scan, width=400).count("\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")
def test_plain_never_breaks_a_long_layer_path() -> None:
    with running(LONG_LAYER) as sc:
        path = f"{sc.tmp}/{LONG}"
        piped = run_cli("--pid", str(sc.pid), "--plain").stdout
        lines = _intact(piped, path)
        assert any("lower[0]" in ln and "match" in ln for ln in lines)  # nothing wrapped
        narrow = subprocess.run(
            [sys.executable, "-m", "ovlinspect", "--pid", str(sc.pid), "--plain"],
            capture_output=True, text=True, timeout=120, cwd="/",
            env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}, check=True).stdout
        assert narrow == piped  # piped output never wraps, whatever COLUMNS says
        shown = _on_terminal("--pid", str(sc.pid), "--plain", columns=80)
        lines = _intact(shown, path)
        assert any("lower[0]" in ln for ln in lines)
        assert not any("match" in ln for ln in lines if "lower[0]" in ln)  # wrapped after it
        assert any("uuid" in ln and "fs:" not in ln for ln in shown.splitlines())  # fields wrap
