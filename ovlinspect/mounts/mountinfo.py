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

Untrusted input (``--from-file``) is read with :func:`read_lines` and parsed with
:func:`parse_lines`, so memory stays bounded: at most :data:`MAX_INPUT_BYTES` are read, no line
may exceed :data:`MAX_LINE_BYTES`, only the entries asked for are kept and only the first
``max_errors`` messages about malformed lines (the rest are counted).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

TYPE_CHECKING = False  # typing is only for type checkers (startup time, issue #9)
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_LINE_BYTES",
    "MountEntry",
    "MountinfoError",
    "Parsed",
    "errors_of",
    "parse",
    "parse_line",
    "parse_lines",
    "read_lines",
    "unescape",
]

# A real mountinfo is a few MB at most: 10k mounts of ~300 bytes is 3 MB, and even 4,000 overlays
# with the kernel's maximum of 500 lowers (~16.5 KB a line) fit.  Anything larger is refused.
MAX_INPUT_BYTES = 64 << 20
# The longest line the kernel can print: 500 lowers plus upper and work, each a PATH_MAX (4096)
# byte path (FSCONFIG_SET_FD layers print their d_path) with every byte octal-escaped (x4), is
# about 8.2 MB.  Lines from mount(2) stay under 70 KB (one page of options, PATH_MAX mount
# point), new-API string options under 520 KB (255-byte values).  A longer line is not mountinfo.
MAX_LINE_BYTES = 8 << 20
_CHUNK = 1 << 20

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


_PLAINLY_VALID = re.compile(
    r"[0-9]+ [0-9]+ [0-9]+:[0-9]+ [^ ]* [^ ]* [^ ]*(?: (?:[^ -][^ ]*|-[^ ]+)?)* - [^ ]+ [^ ]* .*",
    re.DOTALL)
"""Lines that :func:`parse_line` certainly accepts: numbers where it wants them, and the first
lone ``-`` at field 6 or later followed by a non-empty fs type, a source and super options."""


def errors_of(text: str) -> list[str]:
    """The ``errors`` of :func:`parse` (``text``), without building its entries: for a mount
    table that holds nothing to analyse, most of a namespace's parsing time."""
    errors: list[str] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or _PLAINLY_VALID.fullmatch(line):
            continue
        try:
            parse_line(line, line_no)
        except MountinfoError as exc:
            errors.append(str(exc))
    return errors


def parse(text: str) -> tuple[list[MountEntry], list[str]]:
    """Parse a whole mountinfo file: ``(entries, errors)``.  Never raises.

    Lines are split on ``\\n`` only (a raw ``\\r`` or other Unicode line break can occur inside a
    field).  Blank lines are skipped silently; every malformed line is skipped and reported once,
    with its 1-based line number.
    """
    parsed = parse_lines(text.split("\n"), max_errors=None)
    return parsed.entries, parsed.errors


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class Parsed:
    """What :func:`parse_lines` found: kept entries, counts, and the first error messages."""

    entries: list[MountEntry]
    mount_count: int = 0
    errors: list[str]
    error_count: int = 0

    def __init__(
        self,
        entries: list[MountEntry] | None = None,
        mount_count: int = 0,
        errors: list[str] | None = None,
        error_count: int = 0,
    ) -> None:
        self.entries = [] if entries is None else entries
        self.mount_count = mount_count
        self.errors = [] if errors is None else errors
        self.error_count = error_count


def parse_lines(lines: Iterable[str], keep: Callable[[MountEntry], bool] | None = None,
                max_errors: int | None = 10) -> Parsed:
    """Parse mountinfo lines one at a time, keeping only the entries ``keep`` accepts.

    Memory is proportional to the entries kept, not the input: every valid line is counted in
    ``mount_count``, every malformed one in ``error_count``, and only the first ``max_errors``
    messages are kept (``None``: all).  Raises only what iterating ``lines`` raises.
    """
    parsed = Parsed()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = parse_line(line, line_no)
        except MountinfoError as exc:
            parsed.error_count += 1
            if max_errors is None or len(parsed.errors) < max_errors:
                parsed.errors.append(str(exc))
            continue
        parsed.mount_count += 1
        if keep is None or keep(entry):
            parsed.entries.append(entry)
    return parsed


def _mib(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size} bytes"


def read_lines(stream: BinaryIO, max_bytes: int = MAX_INPUT_BYTES,
               max_line: int = MAX_LINE_BYTES) -> Iterator[str]:
    """Lines of a binary stream read in chunks, decoded with surrogateescape, without ``\\n``.

    Raises :class:`MountinfoError` as soon as more than ``max_bytes`` were read or a line (also
    one that never ends, as from ``/dev/zero``) grows past ``max_line``; ``OSError`` from reading
    passes through.
    """
    pending = b""
    total = line_no = 0
    while data := stream.read(_CHUNK):
        total += len(data)
        if total > max_bytes:
            raise MountinfoError(f"more than {_mib(max_bytes)}, far larger than any mountinfo")
        *lines, pending = (pending + data).split(b"\n")
        for raw in lines:
            line_no += 1
            _check_length(raw, line_no, max_line)
            yield raw.decode("utf-8", "surrogateescape")
        _check_length(pending, line_no + 1, max_line)
    if pending:
        yield pending.decode("utf-8", "surrogateescape")


def _check_length(raw: bytes, line_no: int, max_line: int) -> None:
    if len(raw) > max_line:
        raise MountinfoError(f"longer than {_mib(max_line)}, not a mountinfo line", line_no)
