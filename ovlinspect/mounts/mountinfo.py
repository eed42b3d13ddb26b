"""Parse /proc/PID/mountinfo into :class:`MountEntry` records.

Line format (proc(5)), fields separated by single spaces::

    36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
    (1)(2)(3)  (4)   (5)   (6)        (7)     (8)(9)  (10)      (11)

The kernel octal-escapes space, tab, newline and backslash in the root, mount point, source and
fs type (``\\040`` ``\\011`` ``\\012`` ``\\134``), so splitting on single spaces is exact.  The
source may be empty (two spaces in a row).  Text is expected to be decoded with
``("utf-8", "surrogateescape")``; an octal escape stands for one byte, so :func:`unescape` works on
bytes and re-decodes the same way.

The super-options field is kept raw (still escaped): overlay options must be split on commas
before they are unescaped (see :mod:`ovlinspect.mounts.overlayopts`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MountEntry", "MountinfoError", "parse", "parse_line", "unescape"]

# One or more octal escapes (a byte each, up to \377) or surrogate-escaped raw bytes in a row:
# they are decoded together so that a multi-byte UTF-8 character split into escapes comes back.
_BYTE_RUN = re.compile(r"(?:\\[0-3][0-7]{2}|[\udc80-\udcff])+")
_NUMBER = re.compile(r"[0-9]+")
_DEV = re.compile(r"[0-9]+:[0-9]+")
_MANDATORY_BEFORE_SEP = 6


class MountinfoError(ValueError):
    """A mountinfo line that cannot be parsed; the message says what is wrong with it."""

    def __init__(self, message: str, line_no: int = 0) -> None:
        self.line_no = line_no
        self.reason = message
        super().__init__(f"line {line_no}: {message}" if line_no else message)


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo.  Paths and names are unescaped; ``super_options`` is raw."""

    mount_id: int
    parent_id: int
    dev: str
    root: str
    mount_point: str
    mount_options: str
    optional: tuple[str, ...]
    fs_type: str
    source: str
    super_options: str
    line_no: int


def unescape(text: str) -> str:
    """Replace ``\\NNN`` octal escapes (one byte each) with the characters they encode.

    Runs of escaped bytes are re-decoded as UTF-8 with surrogateescape, so ``\\303\\251`` gives
    ``é`` and a lone ``\\377`` gives ``\\udcff``.  Anything else is left untouched.
    """
    if "\\" not in text:
        return text
    return _BYTE_RUN.sub(_decode_run, text)


def _decode_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if "\\" not in run:
        return run  # only surrogate-escaped bytes, nothing to unescape
    data = bytearray()
    pos = 0
    while pos < len(run):
        if run[pos] == "\\":
            data.append(int(run[pos + 1 : pos + 4], 8))
            pos += 4
        else:
            data.append(ord(run[pos]) - 0xDC00)
            pos += 1
    return data.decode("utf-8", "surrogateescape")


def parse_line(line: str, line_no: int = 0) -> MountEntry:
    """Parse one mountinfo line (a trailing newline is allowed); raise :class:`MountinfoError`."""
    text = line.rstrip("\n")
    if not text.strip():
        raise MountinfoError("empty line", line_no)
    fields = text.split(" ")
    sep = _separator_index(fields, line_no)
    tail = fields[sep + 1 :]
    if len(tail) < 3:
        raise MountinfoError(
            f"expected fs type, source and super options after ' - ', got {len(tail)} field(s)",
            line_no,
        )
    return MountEntry(
        mount_id=_number(fields[0], "mount id", line_no),
        parent_id=_number(fields[1], "parent id", line_no),
        dev=_dev(fields[2], line_no),
        root=unescape(fields[3]),
        mount_point=unescape(fields[4]),
        mount_options=fields[5],
        optional=tuple(fields[_MANDATORY_BEFORE_SEP:sep]),
        fs_type=_fs_type(tail[0], line_no),
        source=unescape(tail[1]),
        super_options=" ".join(tail[2:]),
        line_no=line_no,
    )


def _separator_index(fields: list[str], line_no: int) -> int:
    """Index of the lone ``-`` field that ends the optional fields."""
    for index in range(_MANDATORY_BEFORE_SEP, len(fields)):
        if fields[index] == "-":
            return index
    if "-" in fields[:_MANDATORY_BEFORE_SEP]:
        raise MountinfoError(
            f"' - ' separator after only {fields.index('-')} field(s), "
            f"expected at least {_MANDATORY_BEFORE_SEP}",
            line_no,
        )
    raise MountinfoError(f"no ' - ' separator in {len(fields)} field(s)", line_no)


def _number(value: str, what: str, line_no: int) -> int:
    if not _NUMBER.fullmatch(value):
        raise MountinfoError(f"{what} is not a number: {value!r}", line_no)
    return int(value)


def _dev(value: str, line_no: int) -> str:
    if not _DEV.fullmatch(value):
        raise MountinfoError(f"device is not MAJOR:MINOR: {value!r}", line_no)
    return value


def _fs_type(value: str, line_no: int) -> str:
    if not value:
        raise MountinfoError("empty filesystem type", line_no)
    return unescape(value)


def parse(text: str) -> tuple[list[MountEntry], list[str]]:
    """Parse a whole mountinfo file: ``(entries, errors)``.  Never raises.

    Lines are split on ``\\n`` only (a raw ``\\r`` or other Unicode line break can occur inside a
    field).  Blank lines are skipped silently; every malformed line is skipped and reported once,
    with its 1-based line number.
    """
    entries: list[MountEntry] = []
    errors: list[str] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            entries.append(parse_line(line, line_no))
        except MountinfoError as exc:
            errors.append(str(exc))
    return entries, errors
