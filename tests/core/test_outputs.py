"""The plain and JSON renderers: faithful, injection-proof, and light (no textual import)."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

from rich.console import Console

from ovlinspect.model import Layer, Namespace, Overlay, OverlayOptions, Process, Scan, Verified
from ovlinspect.model.hazards import CATALOGUE, hazard
from ovlinspect.report.jsonreport import dumps
from ovlinspect.report.plain import print_scan
from ovlinspect.report.textsafe import visible

from scenario import REPO

HOSTILE = "/m/[bold]x[/]:smile:\x1b[2J\nnext\udcff\u202e"


def _scan(mount_point: str = "/merged", comm: str = "sleep") -> Scan:
    lower = Layer(role="lower", index=0, declared="l1", path="/x/l1", verified=Verified.MATCH,
                  hazards=[hazard("relative-path", "lower[0]", "lower[0] path 'l1' is relative")])
    overlay = Overlay(mount_id=7, unique_id=0x80000007, mount_point=mount_point, fs_type="overlay",
                      source="ov", mount_options="rw", super_options="rw,lowerdir=l1",
                      options=OverlayOptions(lowerdir=["l1"]), layers=[lower])
    ns = Namespace(mnt_ns=4026531840, pids=[4242], processes=[Process(4242, comm)],
                   overlays=[overlay])
    return Scan(namespaces=[ns])


def _plain(scan: Scan) -> str:
    out = StringIO()
    print_scan(scan, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_plain_shows_hostile_text_literally_and_escaped() -> None:
    text = _plain(_scan(HOSTILE, comm="[red]x\x1b]0;pwn\x07"))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "/m/[bold]x[/]:smile:\\x1b[2J\\nnext\\xff\\u202e" in text
    assert "[red]x\\x1b]0;pwn\\x07" in text
    assert "😄" not in text


def test_plain_names_verdict_and_hazard_in_words() -> None:
    text = _plain(_scan())
    assert "✔ match" in text and "relative-path" in text and "▲ warn" in text
    assert "hints" in text and CATALOGUE["relative-path"].hint in text


def test_json_round_trips_through_the_model() -> None:
    scan = _scan(HOSTILE)
    doc = json.loads(dumps(scan))
    assert doc["schema"] == 1
    overlay = doc["namespaces"][0]["overlays"][0]
    assert overlay["mount_point"] == HOSTILE
    assert overlay["layers"][0]["hazards"][0] == {
        "code": "relative-path", "severity": "warning", "layer": "lower[0]",
        "message": "lower[0] path 'l1' is relative", "hint": CATALOGUE["relative-path"].hint}
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
