"""``--prometheus FILE``: the scan as node_exporter textfile-collector metrics, written atomically.

Every series is always present (zeros included), so dashboards and alerts see stable series:
overlays by status, hazards by code and severity, layers by verdict, unproven layers, namespaces,
scan errors, and the scan's duration and time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from ovlinspect import __version__
from ovlinspect.model import Scan, Status, Verified
from ovlinspect.model.hazards import CATALOGUE
from ovlinspect.model.reasons import FINAL


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _metric(out: list[str], name: str, help_: str, samples: list[tuple[str, float]]) -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} gauge")
    for labels, value in samples:
        shown = int(value) if float(value).is_integer() else value
        out.append(f"{name}{{{labels}}} {shown}" if labels else f"{name} {shown}")


def render(scan: Scan, duration: float, timestamp: float) -> str:
    """The metrics text for one scan that took ``duration`` seconds and ended at ``timestamp``."""
    overlays = [o for ns in scan.namespaces for o in ns.overlays]
    layers = [layer for o in overlays for layer in o.layers]
    hazards = [h for o in overlays for h in o.all_hazards()]
    out: list[str] = []
    _metric(out, "ovlinspect_info", "ovlinspect version.", [(f'version="{__version__}"', 1)])
    _metric(out, "ovlinspect_overlays", "Overlay mounts by status (ok only when every provable "
            "layer is proven).",
            [(f'status="{s.value}"', sum(1 for o in overlays if o.status is s)) for s in Status])
    _metric(out, "ovlinspect_hazards", "Hazard findings by code and severity.",
            [(f'code="{_label(k.code.value)}",severity="{k.severity.value}"',
              sum(1 for h in hazards if h.code == k.code)) for k in CATALOGUE.values()])
    _metric(out, "ovlinspect_layers", "Overlay layers by verdict.",
            [(f'verified="{v.value}"', sum(1 for x in layers if x.verified is v))
             for v in Verified])
    _metric(out, "ovlinspect_unverified_layers", "Layers that could be proven but were not.",
            [("", sum(1 for x in layers if x.verified is Verified.UNVERIFIED
                      and x.proof.reason not in FINAL))])
    _metric(out, "ovlinspect_namespaces", "Mount namespaces scanned.", [("", len(scan.namespaces))])
    _metric(out, "ovlinspect_scan_errors", "Errors during the scan.", [("", len(scan.errors))])
    _metric(out, "ovlinspect_scan_duration_seconds", "How long the scan took.",
            [("", round(duration, 6))])
    _metric(out, "ovlinspect_scan_timestamp_seconds", "When the scan ended (Unix time).",
            [("", round(timestamp, 3))])
    return "\n".join(out) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` by a rename, so the collector never reads half a file (the
    temporary name does not end in ``.prom``, which the collector ignores)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
