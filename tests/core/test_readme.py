"""The README's hazard table says what the catalogue says (code and severity, every code once)."""

from __future__ import annotations

import re
from pathlib import Path

from ovlinspect.model.hazards import CATALOGUE

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_hazard_table_matches_the_catalogue() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Hazards"):text.index("## JSON")]
    rows = re.findall(r"^\| `([a-z-]+)` \| (\w+) \|", section, re.M)
    assert sorted(rows) == sorted((k.code.value, k.severity.value) for k in CATALOGUE.values())
