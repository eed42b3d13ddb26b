"""Make untrusted text (paths, options, process names) safe to show.

Every label that reaches a terminal goes through :func:`visible`: control characters, bidi
overrides and undecodable bytes become visible escapes, so nothing read from the system can move
the cursor, clear the screen or reorder text.  Markup safety is separate: callers wrap the result
in ``rich.text.Text`` (never a markup string).
"""

from __future__ import annotations

import unicodedata

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x20 or 0x7F <= code < 0xA0:
        return f"\\x{code:02x}"
    if unicodedata.category(ch) in ("Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return ch


def visible(text: str | None, *, keep_backslash: bool = True) -> str:
    """``text`` with every unsafe character escaped; printable text is unchanged.

    Backslashes are kept as they are (``keep_backslash``) unless the caller needs the output to be
    unambiguous, in which case a literal backslash becomes ``\\\\``.
    """
    if text is None:
        return ""
    if text.isprintable() and (keep_backslash or "\\" not in text):
        return text
    out = []
    for ch in text:
        if (ch == "\\" and keep_backslash) or (ch.isprintable() and ch != "\\"):
            out.append(ch)
        else:
            out.append(_escape_char(ch))
    return "".join(out)
