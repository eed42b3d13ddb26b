"""``--screenshot``: the TUI rendered headless into a valid SVG."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from tuikit import load_scan

from ovlinspect.tui import save_screenshot

ROOT = Path(__file__).resolve().parents[2]


def _svg_text(path: Path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return "".join(root.itertext()).replace("\xa0", " ")


def test_save_screenshot_on_fixture_data(tmp_path: Path) -> None:
    out = tmp_path / "shot.svg"
    save_screenshot(str(out), scan_result=load_scan())
    text = _svg_text(out)
    assert "/srv/build/merged" in text and "source-detached" in text
    assert "Namespaces 4/4" in text
    small = tmp_path / "small.svg"
    save_screenshot(str(small), size=(80, 24), scan_result=load_scan())
    assert "Namespaces 4/4" in _svg_text(small)


def test_save_screenshot_with_pid_focuses_that_namespace(tmp_path: Path) -> None:
    out = tmp_path / "shot.svg"
    save_screenshot(str(out), pids=[4300], scan_result=load_scan())
    text = _svg_text(out)
    assert "overlay /work/scratch/merged" in text  # the details pane shows its worst mount


def test_save_screenshot_raises_the_scan_error(tmp_path: Path) -> None:
    from ovlinspect.engine.scan import ScanError

    with pytest.raises(ScanError, match="not a process id"):
        save_screenshot(str(tmp_path / "x.svg"), pids=[0])
    assert not (tmp_path / "x.svg").exists()


def test_python_m_ovlinspect_screenshot(tmp_path: Path) -> None:
    out = tmp_path / "live.svg"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ovlinspect", "--screenshot", str(out),
                           "--size", "100x30"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    assert "Namespaces" in _svg_text(out)
