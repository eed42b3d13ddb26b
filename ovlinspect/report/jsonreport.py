"""The ``--json`` report: the model as a versioned document (``"schema": 1``).

The document is built by :mod:`ovlinspect.model.codec` and written by :func:`encode`: one field
per line, and objects or lists that hold no object or list (a handle, a proof, a hazard, a list of
lower dirs) inline on their key's line, as the README shows.  The inline parts go through the
json module's C encoder, so a big host's report takes about half as long as with
``json.dumps(indent=2)``, whose indenting encoder is pure Python.
Output is pure ASCII and the same whether or not stdout is a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from json.encoder import encode_basestring_ascii as _str
from typing import Any, TextIO

from ovlinspect.model import Overlay, Scan
from ovlinspect.model.codec import namespace_to_wire, overlay_to_wire, scan_to_wire

__all__ = ["dumps", "encode", "overlay_dict", "write_scan"]

FLUSH = 1 << 16
"""Bytes of output buffered before ``write_scan`` hands them to the stream."""

_inline = json.JSONEncoder(ensure_ascii=True, check_circular=False, allow_nan=False,
                           separators=(", ", ": ")).encode


def overlay_dict(overlay: Overlay) -> dict[str, Any]:
    """One overlay mount as a JSON-ready dict (the TUI's ``j``/``y`` keys use it)."""
    return overlay_to_wire(overlay)


def dumps(scan: Scan) -> str:
    """The whole scan as JSON text (bytes that are not UTF-8 stay lossless: see the codec)."""
    return encode(scan_to_wire(scan))


class _Each:
    """A list written item by item as its items are made: never held whole."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


class _Sink(list[str]):
    """``out`` for :func:`_write` that passes text on to a stream in chunks."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.size = 0

    def append(self, text: str) -> None:  # type: ignore[override]
        super().append(text)
        self.size += len(text)
        if self.size >= FLUSH:
            self.flush()

    def flush(self) -> None:
        self.stream.write("".join(self))
        self.clear()
        self.size = 0


def write_scan(scan: Scan, stream: TextIO) -> None:
    """``dumps(scan)`` and a newline, written namespace by namespace: memory stays bounded by
    one namespace's document, not the host's (a busy host's report is tens of megabytes)."""
    doc = scan_to_wire(replace(scan, namespaces=[]))
    doc["namespaces"] = _Each(namespace_to_wire(ns) for ns in scan.namespaces)
    sink = _Sink(stream)
    _write(doc, sink, "\n")
    sink.append("\n")
    sink.flush()


def encode(document: Any) -> str:
    """``document`` (plain JSON types) as indented ASCII JSON, flat containers inline."""
    out: list[str] = []
    _write(document, out, "\n")
    return "".join(out)


def _flat(items: Any) -> bool:
    """No nested object or list: written on one line."""
    return not any(isinstance(item, (dict, list, _Each)) for item in items)


def _write(value: Any, out: list[str], newline: str) -> None:
    """Append ``value``; ``newline`` is a line break plus the current indentation."""
    if isinstance(value, dict):
        if _flat(value.values()):
            out.append(_inline(value))
            return
        inner = newline + "  "
        sep = "{" + inner
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                out.append(f"{sep}{_str(key)}: {_str(item)}")
            elif kind is int:
                out.append(f"{sep}{_str(key)}: {int.__repr__(item)}")
            elif item is None:
                out.append(f"{sep}{_str(key)}: null")
            else:
                out.append(f"{sep}{_str(key)}: ")
                _write(item, out, inner)
            sep = "," + inner
        out.append(newline + "}")
    elif isinstance(value, _Each):
        inner = newline + "  "
        sep = "[" + inner
        for item in value.items:
            out.append(sep)
            _write(item, out, inner)
            sep = "," + inner
        out.append("[]" if sep.startswith("[") else newline + "]")
    elif isinstance(value, list):
        if _flat(value):
            out.append(_inline(value))
            return
        inner = newline + "  "
        sep = "[" + inner
        for item in value:
            out.append(sep)
            _write(item, out, inner)
            sep = "," + inner
        out.append(newline + "]")
    else:
        out.append(_inline(value))
