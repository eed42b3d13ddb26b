"""``write_scan`` (what ``--json`` uses) writes exactly ``dumps``'s text, namespace by namespace."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ovlinspect.model import Layer, Namespace, Overlay, OverlayOptions, Process, Scan
from ovlinspect.report import jsonreport
from ovlinspect.report.jsonreport import dumps, write_scan

FIXTURE = Path(__file__).resolve().parents[1] / "tui" / "fixtures" / "scan.json"
ODD = "/m/[bold]x\x1b\nnext\udcff é"


def _odd() -> Scan:
    layer = Layer(role="lower", index=0, declared=ODD, path=ODD)
    overlay = Overlay(1, None, ODD, "overlay", "ov", "rw", "rw", OverlayOptions(lowerdir=[ODD]),
                      layers=[layer])
    return Scan(namespaces=[Namespace(mnt_ns=1, pids=[1], processes=[Process(1, ODD)],
                                      overlays=[overlay]), Namespace(mnt_ns=2)],
                privileges=[ODD], errors=[ODD])


@pytest.mark.parametrize("flush", [1, 1 << 16])
@pytest.mark.parametrize("make", [Scan, _odd,
                                  lambda: Scan.from_dict(json.loads(FIXTURE.read_text()))])
def test_streamed_json_is_byte_identical(make, flush: int, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jsonreport, "FLUSH", flush)
    scan = make()
    out = io.StringIO()
    write_scan(scan, out)
    assert out.getvalue() == dumps(scan) + "\n"
