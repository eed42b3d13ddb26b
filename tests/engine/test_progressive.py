"""A scan in steps gives the verdicts of a plain scan (real mounts: the demo lab)."""

from __future__ import annotations

import os

import pytest

from ovlinspect.engine.progressive import Analysed, Finished, Listed, scan_steps
from ovlinspect.engine.scan import scan
from ovlinspect.host.processes import ScanError
from ovlinspect.lab import Lab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def _without_times(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("duration", "time", "scanned_at")}


def test_steps_list_everything_first_follow_the_wish_and_end_with_the_plain_scan() -> None:
    with Lab() as lab:
        plain = scan(lab.pids)
        last = plain.namespaces[-1].mnt_ns
        steps = list(scan_steps(lab.pids, first=lambda: last, every=0.0))
    listed, *middle, finished = steps
    assert isinstance(listed, Listed) and isinstance(finished, Finished)
    assert [ns.mnt_ns for ns in listed.scan.namespaces] == [ns.mnt_ns for ns in plain.namespaces]
    assert all(not ns.overlays for ns in listed.scan.namespaces)  # nothing analysed yet
    assert all(isinstance(step, Analysed) for step in middle)
    order = [ns.mnt_ns for step in middle for ns in step.namespaces]  # type: ignore[union-attr]
    assert order[0] == last  # the wished-for namespace first
    assert _without_times(finished.scan.to_dict()) == _without_times(plain.to_dict())


def test_a_bad_pid_is_refused_like_a_plain_scan() -> None:
    with pytest.raises(ScanError, match="not a process id"):
        list(scan_steps([0]))
