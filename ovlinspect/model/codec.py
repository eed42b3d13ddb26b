"""The JSON wire format (``"schema": 1``): the model written field by field, and read back.

Text from the system (paths, options, process names, messages that quote them) is held as
``str`` decoded with ``surrogateescape``, so a byte that is not UTF-8 is a lone surrogate
(``\\udcc3``).  JSON cannot carry those losslessly, so on the wire every text field is either a
plain string (valid UTF-8, the usual case) or, when it holds such bytes, an object
``{"base64": <the exact bytes>, "text": <lossy display text, bad bytes as \\xNN>}``.
:func:`text_from_wire` turns either form back into the same ``str``.

Every field is written explicitly (no ``dataclasses.asdict``, no deep copies): adding a field to
the model means adding it here and to ``schema.json``; ``tests/core/test_json.py`` checks both.
Enum fields are written with ``str()``, so a model built with plain strings also serialises.
"""

from __future__ import annotations

from ovlinspect.model.types import (
    SCHEMA_VERSION,
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

TYPE_CHECKING = False  # typing and base64 load only when needed (startup time, issue #9)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "WireError",
    "overlay_from_wire",
    "overlay_to_wire",
    "scan_from_wire",
    "scan_to_wire",
    "schema_text",
    "text_from_wire",
    "text_to_wire",
]

if TYPE_CHECKING:
    Wire = dict[str, Any]
else:
    Wire = dict


class WireError(ValueError):
    """A document that is not a schema-1 ovlinspect report."""


# -- text ----------------------------------------------------------------------------------------

def text_to_wire(text: str) -> str | dict[str, str]:
    """``text`` as is when it is valid UTF-8, else ``{"base64": …, "text": …}``."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _bytes_to_wire(text)
    return text


def _bytes_to_wire(text: str) -> dict[str, str]:
    import base64

    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a byte
        raw = text.encode("utf-8", "surrogatepass")
    return {"base64": base64.b64encode(raw).decode("ascii"),
            "text": raw.decode("utf-8", "backslashreplace")}


def _opt(text: str | None) -> str | dict[str, str] | None:
    return None if text is None else text_to_wire(text)


def _texts(items: list[str]) -> list[Any]:
    return [text_to_wire(item) for item in items]


def text_from_wire(value: Any) -> str:
    """The ``str`` a wire text field stands for (bad bytes back to ``surrogateescape``)."""
    if type(value) is str:
        return value
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        import base64
        import binascii

        try:
            raw = base64.b64decode(value["base64"], validate=True)
        except binascii.Error as exc:
            raise WireError(f"bad base64 text: {exc}") from None
        return raw.decode("utf-8", "surrogateescape")
    raise WireError(f"not a text field: {value!r:.80}")


def _opt_from(value: Any) -> str | None:
    return None if value is None else text_from_wire(value)


# -- model to wire -------------------------------------------------------------------------------

def scan_to_wire(scan: Scan) -> Wire:
    """The whole ``--json`` document."""
    return {
        "schema": SCHEMA_VERSION,
        "source": text_to_wire(scan.source),
        "privileges": _texts(scan.privileges),
        "errors": _texts(scan.errors),
        "namespaces": [namespace_to_wire(ns) for ns in scan.namespaces],
    }


def namespace_to_wire(ns: Namespace) -> Wire:
    """One namespace of the ``--json`` document."""
    return {
        "mnt_ns": ns.mnt_ns,
        "root_pid": ns.root_pid,
        "pids": list(ns.pids),
        "processes": [{"pid": p.pid, "comm": text_to_wire(p.comm), "container": _opt(p.container)}
                      for p in ns.processes],
        "notes": _texts(ns.notes),
        "overlays": [overlay_to_wire(o) for o in ns.overlays],
    }


def overlay_to_wire(overlay: Overlay) -> Wire:
    """One overlay mount (also the TUI's ``j``/``y`` export)."""
    o = overlay.options
    return {
        "mount_id": overlay.mount_id,
        "unique_id": overlay.unique_id,
        "mount_point": text_to_wire(overlay.mount_point),
        "root": text_to_wire(overlay.root),
        "fs_type": text_to_wire(overlay.fs_type),
        "source": text_to_wire(overlay.source),
        "mount_options": text_to_wire(overlay.mount_options),
        "super_options": text_to_wire(overlay.super_options),
        "options": {
            "syntax": o.syntax,
            "lowerdir": _texts(o.lowerdir),
            "datadir": _texts(o.datadir),
            "upperdir": _opt(o.upperdir),
            "workdir": _opt(o.workdir),
            "flags": {_key(k): text_to_wire(v) for k, v in o.flags.items()},
            "other": _texts(o.other),
            "legacy_length": o.legacy_length,
            "declared_lowers": o.declared_lowers,
        },
        "status": str(overlay.status),
        "root_handle": _handle_to_wire(overlay.root_handle),
        "notes": _texts(overlay.notes),
        "hazards": [_hazard_to_wire(h) for h in overlay.hazards],
        "layers": [_layer_to_wire(layer) for layer in overlay.layers],
    }


def _key(key: str) -> str:
    """Option names are object keys, so they cannot be objects: bad bytes become ``\\xNN``."""
    if key.isascii():
        return key
    wire = text_to_wire(key)
    return wire if isinstance(wire, str) else wire["text"]


def _handle_to_wire(handle: Handle | None) -> Wire | None:
    return None if handle is None else {"type": handle.type, "hex": handle.hex}


def _hazard_to_wire(h: Hazard) -> Wire:
    return {"code": str(h.code), "severity": str(h.severity), "layer": h.layer,
            "message": text_to_wire(h.message), "hint": text_to_wire(h.hint)}


def _layer_to_wire(layer: Layer) -> Wire:
    proof, backing = layer.proof, layer.backing
    return {
        "role": layer.role,
        "index": layer.index,
        "declared": text_to_wire(layer.declared),
        "path": _opt(layer.path),
        "host_path": _opt(layer.host_path),
        "symlinks": [{"path": text_to_wire(s.path), "target": text_to_wire(s.target)}
                     for s in layer.symlinks],
        "dev": layer.dev,
        "ino": layer.ino,
        "fs_type": _opt(layer.fs_type),
        "fs_uuid": layer.fs_uuid,
        "mount_id": layer.mount_id,
        "handle": _handle_to_wire(layer.handle),
        "backing": None if backing is None else {
            "source": _opt(backing.source), "device": _opt(backing.device),
            "backing_file": _opt(backing.backing_file)},
        "real_path": _opt(layer.real_path),
        "verified": str(layer.verified),
        "proof": {"method": str(proof.method),
                  "strength": None if proof.strength is None else str(proof.strength),
                  "reason": proof.reason},
        "verify_note": text_to_wire(layer.verify_note),
        "hazards": [_hazard_to_wire(h) for h in layer.hazards],
    }


# -- wire to model -------------------------------------------------------------------------------

def scan_from_wire(data: Wire) -> Scan:
    """Rebuild a scan from a ``--json`` document (fields added after a document was written get
    their defaults).  Raises :class:`WireError` when ``data`` is not a schema-1 report."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        raise WireError(f"not an ovlinspect schema-{SCHEMA_VERSION} report")
    try:
        return Scan(
            namespaces=[_namespace_from_wire(ns) for ns in data["namespaces"]],
            source=text_from_wire(data.get("source", "live")),
            privileges=[text_from_wire(p) for p in data.get("privileges", [])],
            errors=[text_from_wire(e) for e in data.get("errors", [])],
        )
    except WireError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise WireError(f"not an ovlinspect report: {type(exc).__name__}: {exc}") from None


def _namespace_from_wire(d: Wire) -> Namespace:
    return Namespace(
        mnt_ns=d["mnt_ns"],
        pids=list(d["pids"]),
        processes=[Process(pid=p["pid"], comm=text_from_wire(p["comm"]),
                           container=_opt_from(p.get("container"))) for p in d["processes"]],
        overlays=[overlay_from_wire(o) for o in d["overlays"]],
        root_pid=d.get("root_pid"),
        notes=[text_from_wire(n) for n in d.get("notes", [])],
    )


def overlay_from_wire(d: Wire) -> Overlay:
    """One overlay mount from its wire form."""
    o = d["options"]
    lowerdir = [text_from_wire(x) for x in o["lowerdir"]]
    datadir = [text_from_wire(x) for x in o["datadir"]]
    options = OverlayOptions(
        syntax=o["syntax"],
        lowerdir=lowerdir,
        datadir=datadir,
        upperdir=_opt_from(o["upperdir"]),
        workdir=_opt_from(o["workdir"]),
        flags={k: text_from_wire(v) for k, v in o["flags"].items()},
        other=[text_from_wire(x) for x in o["other"]],
        legacy_length=o["legacy_length"],
        # Older reports kept every layer, so their lists are the count.
        declared_lowers=o.get("declared_lowers", len(lowerdir) + len(datadir)),
    )
    return Overlay(
        mount_id=d["mount_id"],
        unique_id=d["unique_id"],
        mount_point=text_from_wire(d["mount_point"]),
        fs_type=text_from_wire(d["fs_type"]),
        source=text_from_wire(d["source"]),
        mount_options=text_from_wire(d["mount_options"]),
        super_options=text_from_wire(d["super_options"]),
        options=options,
        layers=[_layer_from_wire(x) for x in d["layers"]],
        hazards=[_hazard_from_wire(h) for h in d["hazards"]],
        root_handle=_handle_from_wire(d.get("root_handle")),
        status=Status(d["status"]) if "status" in d else Status.UNVERIFIED,
        root=text_from_wire(d.get("root", "/")),
        notes=[text_from_wire(n) for n in d.get("notes", [])],
    )


def _handle_from_wire(d: Wire | None) -> Handle | None:
    return None if d is None else Handle(type=d["type"], hex=d["hex"])


def _hazard_from_wire(d: Wire) -> Hazard:
    return Hazard(code=_code(d["code"]), severity=Severity(d["severity"]), layer=d["layer"],
                  message=text_from_wire(d["message"]), hint=text_from_wire(d["hint"]))


def _layer_from_wire(d: Wire) -> Layer:
    proof = d.get("proof")
    backing = d.get("backing")
    return Layer(
        role=d["role"],
        index=d["index"],
        declared=text_from_wire(d["declared"]),
        path=_opt_from(d["path"]),
        host_path=_opt_from(d["host_path"]),
        symlinks=[SymlinkStep(path=text_from_wire(s["path"]), target=text_from_wire(s["target"]))
                  for s in d["symlinks"]],
        dev=d["dev"],
        ino=d["ino"],
        fs_type=_opt_from(d["fs_type"]),
        fs_uuid=d["fs_uuid"],
        mount_id=d["mount_id"],
        handle=_handle_from_wire(d["handle"]),
        real_path=_opt_from(d["real_path"]),
        verified=Verified(d["verified"]),
        verify_note=text_from_wire(d["verify_note"]),
        proof=Proof() if proof is None else Proof(
            method=ProofMethod(proof["method"]),
            strength=None if proof["strength"] is None else Strength(proof["strength"]),
            reason=proof["reason"]),
        backing=None if backing is None else Backing(
            source=_opt_from(backing["source"]), device=_opt_from(backing["device"]),
            backing_file=_opt_from(backing["backing_file"])),
        hazards=[_hazard_from_wire(h) for h in d["hazards"]],
    )


# -- the published schema ------------------------------------------------------------------------

def schema_text() -> str:
    """The JSON Schema (draft 2020-12) of the ``--json`` document, as shipped in the package."""
    from importlib import resources  # only here: it pulls in pathlib, tempfile, hashlib...

    return resources.files("ovlinspect.model").joinpath("schema.json").read_text(encoding="utf-8")


def _code(value: Any) -> HazardCode:
    """A hazard code; one this version does not know (a report from a newer one) is kept as
    its text rather than refused, as the schema allows any code."""
    text = text_from_wire(value)
    try:
        return HazardCode(text)
    except ValueError:
        return text  # type: ignore[return-value]
