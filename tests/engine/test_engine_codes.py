"""Every hazard code in the catalogue is emitted by a tested scenario; the two that no other
test file builds (a covered overlay, a process that cannot be looked into) are built here."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from engine_kit import script

from ovlinspect.model import HazardCode

from scenario import overlay_at, run_cli, running, scan_json

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

TESTS = Path(__file__).resolve().parents[1]


def test_every_catalogued_code_is_asserted_by_some_test() -> None:
    here = Path(__file__).resolve()
    text = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py")
                     if p.resolve() != here)
    text += (TESTS / "engine" / "engine_kit.py").read_text(encoding="utf-8")
    missing = [c.value for c in HazardCode
               if not re.search(rf"[\"']{re.escape(c.value)}[\"']", text)]
    here_codes = {"shadowed-mount", "unreadable"}
    assert [c for c in missing if c not in here_codes] == []


def test_an_overlay_covered_by_another_mount_is_shadowed_mount() -> None:
    body = """
mkdir -p $T/t
mount -t tmpfs t $T/t
fill $T/t/l l; fill $T/t/u u; mkdir -p $T/t/w $T/t/m
mount -t overlay ov -o lowerdir=$T/t/l,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
mount -t tmpfs cover $T/t/m
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        ov = overlay_at(scan_json(sc.pid), f"{sc.tmp}/t/m")
        assert [h["code"] for h in ov["hazards"]] == ["shadowed-mount"]
        assert ov["status"] == "warning"
        for item in ov["layers"]:
            assert item["verified"] == "unverified"
            assert item["proof"]["reason"] != "not-checked", item


def test_a_process_that_cannot_be_looked_into_is_unreadable() -> None:
    body = """
mkdir -p $T/t
mount -t tmpfs t $T/t
chmod 755 $T/t
fill $T/t/l l; fill $T/t/u u; mkdir -p $T/t/w $T/t/m
mount -t overlay ov -o lowerdir=$T/t/l,upperdir=$T/t/u,workdir=$T/t/w $T/t/m
cd /
ready; exec sleep 600
"""
    with running(script(body)) as sc:
        done = run_cli("--pid", str(sc.pid), "--json", user=65534, check_rc=None)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        ov = overlay_at(report, f"{sc.tmp}/t/m")
        assert [h["code"] for h in ov["hazards"]] == ["unreadable"]
        assert ov["status"] == "unverified"
        assert {item["proof"]["reason"] for item in ov["layers"]} == {"no-view"}
        assert {item["verified"] for item in ov["layers"]} == {"unverified"}
