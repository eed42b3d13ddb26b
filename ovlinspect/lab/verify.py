"""Check a scan of the lab against what each scenario expects (``ovlinspect demo --check``).

Only the lab's own scenarios are judged: an overlay its namespace inherited and could not detach
(see :mod:`ovlinspect.lab.holder`) is listed by :func:`unjudged`, never failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovlinspect.lab.scenarios import ScenarioInfo
from ovlinspect.model import Namespace, Overlay, Scan, Severity


@dataclass
class Verdict:
    """One scenario's outcome: what was found and what was wrong."""

    name: str
    mount_point: str
    found: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _ns_pids(ns: Namespace) -> set[int]:
    pids = {*ns.pids, *(p.pid for p in ns.processes)}
    if ns.root_pid is not None:
        pids.add(ns.root_pid)
    return pids


def find_overlay(scan: Scan, scenario: ScenarioInfo) -> Overlay | None:
    """The overlay at the scenario's mount point in the namespace of the scenario's pid."""
    for ns in scan.namespaces:
        if scenario["pid"] in _ns_pids(ns):
            for overlay in ns.overlays:
                if overlay.mount_point == scenario["mount_point"]:
                    return overlay
    return None


def unjudged(scan: Scan, scenarios: list[ScenarioInfo]) -> list[str]:
    """Mount points of overlays in the lab's namespaces that no scenario built (e.g. inherited
    ones a user namespace may not detach): :func:`verify` does not judge them."""
    lab_pids = {s["pid"] for s in scenarios}
    own = {(s["pid"], s["mount_point"]) for s in scenarios}
    found = []
    for ns in scan.namespaces:
        pids = _ns_pids(ns)
        if pids & lab_pids:
            found += [o.mount_point for o in ns.overlays
                      if not any((pid, o.mount_point) in own for pid in pids)]
    return found


def verify(scan: Scan, scenarios: list[ScenarioInfo]) -> list[Verdict]:
    """Every expected hazard present (on its layer when one is named), no warning or worse on a
    scenario that expects none, and lower/data layers parsed with the declared roles and paths."""
    verdicts = []
    for scenario in scenarios:
        verdict = Verdict(scenario["name"], scenario["mount_point"])
        verdicts.append(verdict)
        overlay = find_overlay(scan, scenario)
        if overlay is None:
            verdict.problems.append(f"no overlay at {scenario['mount_point']!r} in the mount "
                                    f"namespace of pid {scenario['pid']}")
            continue
        hazards = overlay.all_hazards()
        verdict.found = [f"{h.code}@{h.layer}" if h.layer else h.code for h in hazards]
        for code in scenario["expect"]:
            layer = scenario["expect_layer"].get(code)
            if not any(h.code == code and (layer is None or h.layer == layer) for h in hazards):
                verdict.problems.append(f"missing {code}" + (f" on {layer}" if layer else ""))
        if not scenario["expect"]:
            verdict.problems += [f"unexpected {h.code} ({h.severity.value})" for h in hazards
                                 if h.severity.rank >= Severity.WARNING.rank]
        got = [(la.role, la.declared) for la in overlay.layers if la.role in ("lower", "data")]
        want = [(la["role"], la["declared"]) for la in scenario["lower_layers"]]
        if got != want:
            verdict.problems.append(f"lower/data layers parsed as {got}, declared {want}")
    return verdicts
