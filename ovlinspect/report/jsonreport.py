"""The ``--json`` report: the model as a versioned document (``"schema": 1``).

The document is built by :mod:`ovlinspect.model.codec` and written by :func:`encode`: one field
per line, and objects or lists that hold no object or list (a handle, a proof, a hazard, a list of
lower dirs) inline on their key's line, as the README shows.  The inline parts go through the
json module's C encoder, so a big host's report takes about half as long as with
``json.dumps(indent=2)``, whose indenting encoder is pure Python.
Output is pure ASCII and the same whether or not stdout is a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from ovlinspect.model import Namespace, Overlay, Scan
from ovlinspect.model.codec import namespace_to_wire, overlay_to_wire, scan_to_wire

TYPE_CHECKING = False  # typing is only for type checkers (startup time, issue #9)
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["dumps", "encode", "namespace_text", "overlay_dict", "write_rendered", "write_scan"]

FLUSH = 1 << 16
"""Bytes of output buffered before ``write_scan`` hands them to the stream."""


def _not_serializable(value: object) -> object:
    """``json.JSONEncoder.default``: nothing but plain JSON types is written."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


try:
    # The json package's C speedups, straight: importing the package would also load its
    # decoder (a millisecond of a quiet host's run).
    from _json import encode_basestring_ascii as _str
    from _json import make_encoder as _make_encoder
except ImportError:  # not CPython
    from json.encoder import c_make_encoder as _make_encoder  # type: ignore[assignment]
    from json.encoder import encode_basestring_ascii as _str

# What ``json.JSONEncoder(ensure_ascii=True, check_circular=False, allow_nan=False,
# separators=(", ", ": ")).encode`` builds anew for every container, built once.
_c_encode = _make_encoder(None, _not_serializable, _str, None, ": ", ", ", False, False,
                          False) if _make_encoder is not None else None


def _inline(value: Any) -> str:
    """``value`` on one line, exactly as ``JSONEncoder.encode`` with the options above writes
    it."""
    if isinstance(value, str):
        return _str(value)
    if _c_encode is None:
        import json

        return json.JSONEncoder(ensure_ascii=True, check_circular=False, allow_nan=False,
                                separators=(", ", ": ")).encode(value)
    return "".join(_c_encode(value, 0))


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


class _Rendered(_Each):
    """An :class:`_Each` whose items are already rendered at their place in the document."""


class _Sink(list[str]):
    """``out`` for :func:`_write`: its text is passed on to a stream between the items of an
    :class:`_Each` once ``FLUSH`` characters or more are pending (``append`` stays list's own,
    which a big report calls half a million times)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def flush(self) -> None:
        self.stream.write("".join(self))
        self.clear()

    def flush_some(self) -> None:
        if sum(map(len, self)) >= FLUSH:
            self.flush()


def write_scan(scan: Scan, stream: TextIO) -> None:
    """``dumps(scan)`` and a newline, written namespace by namespace: memory stays bounded by
    one namespace's document, not the host's (a busy host's report is tens of megabytes)."""
    doc = scan_to_wire(replace(scan, namespaces=[]))
    doc["namespaces"] = _Each(namespace_to_wire(ns) for ns in scan.namespaces)
    sink = _Sink(stream)
    _write(doc, sink, "\n")
    sink.append("\n")
    sink.flush()


_NAMESPACE_INDENT = "\n    "
"""A line break and the indentation of an item of the report's ``namespaces`` list."""


def namespace_text(ns: Namespace) -> str:
    """One namespace exactly as :func:`write_scan` writes it in the ``namespaces`` list (the
    ``render`` of :func:`ovlinspect.engine.scan.scan_rendered`)."""
    out: list[str] = []
    _write(namespace_to_wire(ns), out, _NAMESPACE_INDENT)
    return "".join(out)


def write_rendered(scan: Scan, namespaces: Iterable[str], stream: TextIO) -> None:
    """What ``write_scan`` writes for ``scan`` with these namespaces, given as
    :func:`namespace_text` made them."""
    doc = scan_to_wire(replace(scan, namespaces=[]))
    doc["namespaces"] = _Rendered(namespaces)
    sink = _Sink(stream)
    _write(doc, sink, "\n")
    sink.append("\n")
    sink.flush()


def encode(document: Any) -> str:
    """``document`` (plain JSON types) as indented ASCII JSON, flat containers inline."""
    out: list[str] = []
    _write(document, out, "\n")
    return "".join(out)


_CONTAINERS = (dict, list, _Each)
class _Keys(dict[str, str]):
    """Object keys as JSON strings (a report repeats a few dozen keys a million times)."""

    def __missing__(self, key: str) -> str:
        text = _str(key)
        if len(self) < 4096:
            self[key] = text
        return text


_KEY = _Keys()


def _flat(items: Any) -> bool:
    """No nested object or list: written on one line."""
    for item in items:  # noqa: SIM110 (a loop: all() of a generator is twice as slow here)
        if isinstance(item, _CONTAINERS):
            return False
    return True


def _write(value: Any, out: list[str], newline: str) -> None:
    """Append ``value``; ``newline`` is a line break plus the current indentation."""
    append = out.append
    if isinstance(value, dict):
        if _flat(value.values()):
            append(_inline(value))
            return
        inner = newline + "  "
        sep = "{" + inner
        for key, item in value.items():
            kind = type(item)
            if kind is str:
                append(f"{sep}{_KEY[key]}: {_str(item)}")
            elif kind is int:
                append(f"{sep}{_KEY[key]}: {int.__repr__(item)}")
            elif item is None:
                append(f"{sep}{_KEY[key]}: null")
            elif (kind is dict or kind is list) and _flat(item.values() if kind is dict
                                                          else item):
                append(f"{sep}{_KEY[key]}: {_inline(item)}")
            else:
                append(f"{sep}{_KEY[key]}: ")
                _write(item, out, inner)
            sep = "," + inner
        append(newline + "}")
    elif isinstance(value, _Each):
        inner = newline + "  "
        sep = "[" + inner
        flush = getattr(out, "flush_some", None)
        rendered = isinstance(value, _Rendered)
        for item in value.items:
            append(sep)
            if rendered:
                append(item)
            else:
                _write(item, out, inner)
            sep = "," + inner
            if flush is not None:
                flush()
        append("[]" if sep.startswith("[") else newline + "]")
    elif isinstance(value, list):
        if _flat(value):
            append(_inline(value))
            return
        inner = newline + "  "
        sep = "[" + inner
        for item in value:
            append(sep)
            _write(item, out, inner)
            sep = "," + inner
        append(newline + "]")
    else:
        append(_inline(value))
