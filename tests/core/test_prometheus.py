"""``--prometheus FILE``: metrics that parse, match the JSON, and exit like --check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ovlinspect.model import Status

from scenario import run_cli, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")

SCRIPT = """
mount -t tmpfs lab $T
mkdir -p $T/l1 $T/l2 $T/u $T/w $T/m $T/u2 $T/w2 $T/m2
echo 1 > $T/l1/only1; echo 2 > $T/l2/only2; echo u > $T/u/onlyu
mount -t overlay ok -o lowerdir=$T/l1:$T/l2,upperdir=$T/u,workdir=$T/w $T/m
mount -t overlay vol -o lowerdir=$T/l1,upperdir=$T/u2,workdir=$T/w2,volatile $T/m2
echo ready; exec sleep 600
"""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_parse_and_match_the_json(tmp_path: Path) -> None:
    with running(SCRIPT, bare=True) as sc:
        prom = tmp_path / "ovlinspect.prom"
        done = run_cli("--pid", str(sc.pid), "--prometheus", str(prom), check_rc=None)
        assert done.returncode == 1  # the volatile upper is a warning, as with --check
        assert done.stdout == ""
        report = json.loads(run_cli("--pid", str(sc.pid), "--json").stdout)
    samples = _samples(prom.read_text(encoding="utf-8"))
    overlays = [o for ns in report["namespaces"] for o in ns["overlays"]]
    for status in Status:
        want = sum(1 for o in overlays if o["status"] == status.value)
        assert samples[("ovlinspect_overlays", (("status", status.value),))] == want
    hazards = [h for o in overlays for h in o["hazards"] + [h for x in o["layers"]
                                                          for h in x["hazards"]]]
    got = samples[("ovlinspect_hazards", (("code", "volatile"), ("severity", "warning")))]
    assert got == sum(1 for h in hazards if h["code"] == "volatile") == 1
    layers = [x for o in overlays for x in o["layers"]]
    for verdict in ("match", "mismatch", "unverified"):
        want = sum(1 for x in layers if x["verified"] == verdict)
        assert samples[("ovlinspect_layers", (("verified", verdict),))] == want
    assert samples[("ovlinspect_scan_duration_seconds", ())] > 0
    assert samples[("ovlinspect_scan_timestamp_seconds", ())] > 1.7e9
    assert not [p for p in tmp_path.iterdir() if p.name != "ovlinspect.prom"]  # no temp left


def test_an_unwritable_target_is_exit_2(tmp_path: Path) -> None:
    done = run_cli("--from-file", "/proc/self/mountinfo", "--prometheus",
                   str(tmp_path / "missing-dir" / "x.prom"), check_rc=None)
    assert done.returncode == 2
    assert "cannot write" in done.stderr and "Traceback" not in done.stderr


def test_prometheus_with_screenshot_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("--from-file", "/proc/self/mountinfo", "--prometheus",
                   str(tmp_path / "x.prom"), "--screenshot", str(tmp_path / "x.svg"),
                   check_rc=None)
    assert done.returncode == 2
