"""The ``--json`` wire format: lossless for bytes that are not UTF-8, and true to its schema."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import fields, is_dataclass
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ovlinspect.engine.scan import scan
from ovlinspect.model import (
    Backing,
    Handle,
    Hazard,
    HazardCode,
    Layer,
    Namespace,
    Overlay,
    OverlayOptions,
    Process,
    Proof,
    ProofMethod,
    Scan,
    Severity,
    Status,
    Strength,
    SymlinkStep,
    Verified,
)
from ovlinspect.model.codec import (
    WireError,
    overlay_to_wire,
    scan_from_wire,
    scan_to_wire,
    schema_text,
    text_from_wire,
    text_to_wire,
)
from ovlinspect.report.jsonreport import dumps, encode

from scenario import REPO, run_cli, running, scan_json, validate_report

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")
SCHEMA = json.loads(schema_text())
FIXTURES = REPO / "tests" / "tui" / "fixtures"
DEMO_ONLY = {"lab"}
BAD = b"mer\xc3ged"  # a truncated UTF-8 sequence
BAD_STR = BAD.decode("utf-8", "surrogateescape")


def _odd(tag: str) -> str:
    """Text with a byte that is not UTF-8, valid non-ASCII and a backslash, tagged."""
    return f"/{tag}/{BAD_STR}/\xe9t\xe9\\x\udcff"


def _everything_odd() -> Scan:
    """A scan with every text field holding bytes that are not UTF-8, and every field set."""
    def hz(where: str) -> Hazard:
        return Hazard(code=HazardCode.STALE_PATH, severity=Severity.ERROR, layer=where,
                      message=_odd("message"), hint=_odd("hint"))

    layer = Layer(
        role="lower", index=0, declared=_odd("declared"), path=_odd("path"),
        host_path=_odd("host"), symlinks=[SymlinkStep(_odd("link"), _odd("target"))],
        dev="0:40", ino=7, fs_type=_odd("fstype"), fs_uuid="af98", mount_id=63,
        handle=Handle(1, "0a0b"), real_path=_odd("real"), verified=Verified.MISMATCH,
        verify_note=_odd("note"),
        proof=Proof(ProofMethod.PROBE_HANDLE, Strength.PROVEN, "probe-names-other"),
        backing=Backing(_odd("source"), _odd("device"), _odd("image")), hazards=[hz("lower[0]")])
    options = OverlayOptions(
        syntax="new-api", lowerdir=[_odd("low")], datadir=[_odd("data")], upperdir=_odd("up"),
        workdir=_odd("work"), flags={"index": _odd("flag")}, other=[_odd("other")],
        legacy_length=99, declared_lowers=2)
    overlay = Overlay(
        mount_id=70, unique_id=2**40, mount_point=_odd("mnt"), fs_type=_odd("type"),
        source=_odd("src"), mount_options=_odd("mopts"), super_options=_odd("sopts"),
        options=options, layers=[layer], hazards=[hz(None)], root_handle=Handle(248, "ff"),
        status=Status.ERROR, root=_odd("root"), notes=[_odd("onote")])
    ns = Namespace(mnt_ns=4026531840, pids=[1, 2], processes=[Process(1, _odd("comm"),
                                                                        _odd("ctr"))],
                   overlays=[overlay], root_pid=1, notes=[_odd("nsnote")])
    return Scan(namespaces=[ns], source=_odd("file"), privileges=[_odd("priv")],
                errors=[_odd("err")])


def _wire_texts(value: Any) -> list[Any]:
    """Every string or bytes object in a wire document (keys excluded)."""
    if isinstance(value, str) or (isinstance(value, dict) and set(value) == {"base64", "text"}):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [t for item in items for t in _wire_texts(item)]


def _model_texts_with_bad_bytes(value: Any) -> int:
    """How many strings in a model object hold bytes that are not UTF-8."""
    if isinstance(value, str):
        return int(BAD_STR in value)
    if is_dataclass(value):
        return sum(_model_texts_with_bad_bytes(getattr(value, f.name)) for f in fields(value))
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return sum(_model_texts_with_bad_bytes(item) for item in items)


# -- the codec -----------------------------------------------------------------------------------

def test_text_is_plain_when_utf8_and_exact_bytes_otherwise() -> None:
    assert text_to_wire("/a/\xe9t\xe9") == "/a/\xe9t\xe9"
    wire = text_to_wire(f"/x/{BAD_STR}")
    assert wire == {"base64": base64.b64encode(b"/x/" + BAD).decode(), "text": "/x/mer\\xc3ged"}
    assert text_from_wire(wire) == f"/x/{BAD_STR}"
    with pytest.raises(WireError):
        text_from_wire({"base64": "not base64!"})


def test_every_text_field_round_trips_losslessly() -> None:
    scan_ = _everything_odd()
    wire = scan_to_wire(scan_)
    validate_report(wire)
    odd = [t for t in _wire_texts(wire) if isinstance(t, dict)]
    assert len(odd) == _model_texts_with_bad_bytes(scan_) == 34
    assert all(base64.b64decode(t["base64"]).startswith(b"/") and BAD in base64.b64decode(
        t["base64"]) for t in odd)
    assert scan_from_wire(wire) == scan_
    text = dumps(scan_)
    assert text.isascii()
    assert scan_from_wire(json.loads(text)) == scan_
    assert Scan.from_dict(scan_.to_dict()) == scan_


def test_the_codec_and_the_schema_cover_every_model_field() -> None:
    """Adding a model field means adding it to the codec and to schema.json."""
    wire = scan_to_wire(_everything_odd())
    ns = wire["namespaces"][0]
    overlay = ns["overlays"][0]
    lay = overlay["layers"][0]
    pairs = [(Scan, wire, {"schema"}), (Namespace, ns, set()),
             (Process, ns["processes"][0], set()), (Overlay, overlay, set()),
             (OverlayOptions, overlay["options"], set()), (Layer, lay, set()),
             (Hazard, lay["hazards"][0], set()), (Handle, lay["handle"], set()),
             (SymlinkStep, lay["symlinks"][0], set()), (Proof, lay["proof"], set()),
             (Backing, lay["backing"], set())]
    for cls, item, extra in pairs:
        names = {f.name for f in fields(cls)} | extra
        assert set(item) == names, cls.__name__
        props = set(SCHEMA["$defs"][cls.__name__]["properties"])
        assert names <= props, cls.__name__
        assert props - names <= DEMO_ONLY, cls.__name__


def test_overlay_export_is_the_report_format() -> None:
    overlay = _everything_odd().namespaces[0].overlays[0]
    assert overlay_to_wire(overlay) == scan_to_wire(_everything_odd())["namespaces"][0][
        "overlays"][0]


def test_reader_fills_fields_older_reports_lack_and_refuses_other_documents() -> None:
    old = scan_to_wire(_everything_odd())
    overlay = old["namespaces"][0]["overlays"][0]
    for key in ("root", "status"):
        del overlay[key]
    del overlay["options"]["declared_lowers"]
    for key in ("proof", "backing"):
        del overlay["layers"][0][key]
    validate_report(old)  # a report written before these fields existed is still schema 1
    again = scan_to_wire(scan_from_wire(old))
    validate_report(again)
    assert again["namespaces"][0]["overlays"][0]["root"] == "/"
    assert again["namespaces"][0]["overlays"][0]["options"]["declared_lowers"] == 2
    layer = again["namespaces"][0]["overlays"][0]["layers"][0]
    assert layer["proof"] == {"method": "none", "strength": None, "reason": "not-checked"}
    assert layer["backing"] is None
    for bad in ({"schema": 2, "namespaces": []}, {"schema": 1}, [], {"schema": 1,
                "namespaces": [{"mnt_ns": 1}]}):
        with pytest.raises(WireError):
            scan_from_wire(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_tui_fixtures_match_the_published_schema(fixture: str) -> None:
    validate_report(json.loads((FIXTURES / fixture).read_text(encoding="utf-8")))


def test_encoder_writes_the_same_json_as_the_json_module() -> None:
    doc = {"a": [1, {"b": None, "c": [True, False]}, [], {}], "d": {"e": "\x1b\u202e\xe9"},
           "f": 2**70, "g": [["x"]], "h": -1}
    text = encode(doc)
    assert json.loads(text) == doc and text.isascii()
    assert encode({"x": {"y": 1}}) == '{\n  "x": {"y": 1}\n}'


# -- the published schema ------------------------------------------------------------------------

def test_schema_is_valid_and_printed_by_the_cli() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    done = run_cli("--json-schema")
    assert json.loads(done.stdout) == SCHEMA


def test_schema_rejects_unknown_fields_and_bad_values() -> None:
    wire = scan_to_wire(_everything_odd())
    validator = Draft202012Validator(SCHEMA)
    assert validator.is_valid(wire)
    wire["namespaces"][0]["overlays"][0]["layers"][0]["surprise"] = 1
    assert not validator.is_valid(wire)
    wire = scan_to_wire(_everything_odd())
    wire["namespaces"][0]["overlays"][0]["hazards"][0]["code"] = "Not A Code"
    assert not validator.is_valid(wire)
    wire = scan_to_wire(_everything_odd())
    wire["namespaces"][0]["overlays"][0]["mount_point"] = {"base64": "AA==", "text": "", "x": 1}
    assert not validator.is_valid(wire)


def test_demo_report_matches_the_schema() -> None:
    done = subprocess.run([sys.executable, "-m", "ovlinspect", "demo", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode == 2 and "Traceback" not in done.stderr:
        pytest.skip(f"no demo lab here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["lab"]["scenarios"]
    validate_report(report)


# -- real mounts ---------------------------------------------------------------------------------

NON_UTF8 = r"""
mount -t tmpfs lab $T
bad=$(printf 'mer\303ged'); mnt=$(printf 'm\377')
mkdir -p "$T/$bad" $T/u $T/w "$T/$mnt"
echo x > "$T/$bad/only"
mount -t overlay ov -o "lowerdir=$T/$bad,upperdir=$T/u,workdir=$T/w" "$T/$mnt"
echo ready; exec sleep 600
"""


def _field_bytes(pid: int, path: str) -> bytes:
    """``ovlinspect --pid PID --json | jq … | base64 -d``: a field's bytes, as a script gets
    them (a plain string's UTF-8, or a bytes object's exact bytes)."""
    jq = f'{path} | if type == "object" then .base64 else @base64 end'
    pipeline = (f"{sys.executable} -m ovlinspect --pid {pid} --json | jq -r '{jq}' | base64 -d")
    done = subprocess.run(["sh", "-c", pipeline], capture_output=True, timeout=120, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd="/")
    return done.stdout


@ROOT
def test_non_utf8_layer_and_mount_point_survive_jq() -> None:
    with running(NON_UTF8) as sc:
        tmp = os.fsencode(sc.tmp)
        report = scan_json(sc.pid)  # also checked against the schema
        found = [(n, i, o) for n, ns in enumerate(report["namespaces"])
                 for i, o in enumerate(ns["overlays"]) if o["options"]["upperdir"] == f"{sc.tmp}/u"]
        assert len(found) == 1
        n, i, overlay = found[0]
        where = f".namespaces[{n}].overlays[{i}]"
        assert _field_bytes(sc.pid, f"{where}.mount_point") == tmp + b"/m\xff"
        lower = next(k for k, la in enumerate(overlay["layers"]) if la["role"] == "lower")
        for name in ("declared", "path", "real_path"):
            got = _field_bytes(sc.pid, f"{where}.layers[{lower}].{name}")
            assert got == tmp + b"/" + BAD, name
        assert _field_bytes(sc.pid, f"{where}.options.lowerdir[0]") == tmp + b"/" + BAD
        assert tmp + b"/" + BAD in _field_bytes(sc.pid, f"{where}.super_options")
        assert overlay["layers"][lower]["verified"] == "match"
        assert overlay["mount_point"]["text"] == f"{sc.tmp}/m\\xff"
        live = scan(pids=[sc.pid])
        assert scan_from_wire(scan_to_wire(live)) == live


@ROOT
def test_cli_json_is_ascii_and_the_same_document_as_the_codec() -> None:
    with running(NON_UTF8) as sc:
        text = run_cli("--pid", str(sc.pid), "--json").stdout
        assert text.isascii()
        assert "\\udc" not in text
        validate_report(json.loads(text))

