"""The TUI's pure helpers: filter, summary, labels, file names (no app running)."""

from __future__ import annotations

import json
from pathlib import Path

from tuikit import load_scan

from ovlinspect.model import Hazard, Namespace, Severity, Status
from ovlinspect.tui import labels
from ovlinspect.tui.export import overlay_json, unique_path, write_new
from ovlinspect.tui.view import (
    Filter,
    Summary,
    apply_filter,
    count,
    find_pid,
    ns_key,
    ordered_layers,
)


def _shown(flt: Filter) -> dict[int | None, list[int]]:
    return {v.ns.root_pid: [o.mount_id for o in v.overlays]
            for v in apply_filter(load_scan(), flt)}


def test_filter_terms_must_all_match() -> None:
    assert _shown(Filter()) == {4200: [801, 802], 4242: [1201], 4300: [1301, 1302],
                                4400: [1401]}
    assert _shown(Filter("volatile")) == {4300: [1302]}
    assert _shown(Filter("make volatile")) == {4300: [1302]}
    assert _shown(Filter("nginx volatile")) == {}
    assert _shown(Filter("4300")) == {4300: [1301, 1302]}  # a pid, exactly
    assert _shown(Filter("CI-RUNNER")) == {4300: [1301, 1302]}  # container, any case
    assert _shown(Filter("0a7d21")) == {4200: [801], 4242: [1201]}  # a real_path
    assert _shown(Filter("symlink")) == {4200: [801], 4242: [1201]}  # a hazard code


def test_problems_only_drops_ok_and_info_mounts_and_namespaces() -> None:
    assert _shown(Filter(problems_only=True)) == {4200: [802], 4300: [1302]}
    assert _shown(Filter("app-server", problems_only=True)) == {}


def test_summary_and_counts_match_the_model() -> None:
    scan = load_scan()
    summary = Summary(scan)
    for ns in scan.namespaces:
        assert summary.namespace(ns) == ns.worst()
        for overlay in ns.overlays:
            assert summary.overlay(overlay) == overlay.worst()
    assert summary.codes(scan.namespaces[0]) == [("source-detached", Severity.ERROR, 1),
                                                 ("symlink", Severity.INFO, 2)]
    counts = count(scan, apply_filter(scan, Filter()), summary)
    assert (counts.namespaces, counts.mounts) == (4, 6)
    assert counts.severities == {Severity.ERROR: 1, Severity.WARNING: 1, Severity.INFO: 3}


def test_keys_and_order() -> None:
    scan = load_scan()
    assert ns_key(scan.namespaces[0]) == "mnt:4026530001"
    assert ns_key(Namespace(mnt_ns=None, root_pid=77)) == "pid:77"
    assert find_pid(scan, 4243) is scan.namespaces[1]
    assert find_pid(scan, 1) is None
    app_mount = scan.namespaces[3].overlays[0]
    app_mount.layers.reverse()
    assert [layer.label for layer in ordered_layers(app_mount)] == ["lower[0]", "lower[1]",
                                                                    "data[0]"]


def test_badges_carry_a_symbol_and_a_word() -> None:
    assert labels.badge(Severity.ERROR).plain == "✖ error   "
    assert labels.badge(Severity.WARNING).plain == "▲ warn    "
    assert labels.status_badge(Status.UNVERIFIED, pad=False).plain == "? unproven"
    assert labels.status_badge(Status.OK, pad=False).plain == "✔ ok"
    assert labels.badge(None, pad=False).plain == "✔ ok"
    hazards = [Hazard("symlink", Severity.INFO, None, "m", "h"),
               Hazard("stale-path", Severity.ERROR, None, "m", "h"),
               Hazard("symlink", Severity.INFO, None, "m2", "h")]
    assert labels.hazard_codes(hazards).plain == "✖ stale-path ℹ symlink"  # noqa: RUF001


def test_labels_never_interpret_markup() -> None:
    scan = load_scan()
    overlay = scan.namespaces[0].overlays[0]
    overlay.mount_point = "/[bold]x[/]\x1b[2J:smile:"
    label = labels.mount_label(overlay, overlay.worst())
    assert "/[bold]x[/]\\x1b[2J:smile:" in label.plain


def test_files_are_never_overwritten(tmp_path: Path) -> None:
    first = unique_path(str(tmp_path), "ovlinspect-mount-7", ".json")
    write_new(first, "{}")
    second = unique_path(str(tmp_path), "ovlinspect-mount-7", ".json")
    assert (Path(first).name, Path(second).name) == ("ovlinspect-mount-7.json",
                                                      "ovlinspect-mount-7-2.json")


def test_mount_json_is_the_report_format_and_survives_bad_bytes() -> None:
    overlay = load_scan().namespaces[0].overlays[1]
    overlay.mount_point = "/srv/\udcff"  # a byte that was not UTF-8
    text = overlay_json(overlay)
    text.encode("utf-8")
    data = json.loads(text)
    assert data["mount_point"] == {"base64": "L3Nydi//", "text": "/srv/\\xff"}  # exact bytes
    assert data["layers"][3]["verified"] == "mismatch"
    assert data["layers"][3]["hazards"][0]["code"] == "source-detached"
