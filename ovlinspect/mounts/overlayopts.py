"""Parse the overlay super-options of a mountinfo line into :class:`OverlayOptions`.

How the kernel renders them (fs/overlayfs/params.c ``ovl_show_options`` and
``seq_show_option``): each value is octal-escaped for ``, \\t \\n \\\\`` (``\\054`` ``\\040``
``\\011`` ``\\012`` ``\\134``), nothing else.  LSM options printed before them may hold raw commas
inside double quotes (``context="system_u:object_r:container_file_t:s0:c1,c2"``).

* Legacy ``lowerdir=a:b::d1::d2`` is shown exactly as the mounter typed it, so after the octal
  unescape it still carries the user's backslash escapes (``\\:`` ``\\,`` ``\\\\``): split on
  unescaped ``:`` (``::`` starts the data-only layers), then drop the backslashes
  (``ovl_parse_param_split_lowerdirs`` + ``ovl_unescape``).
* ``upperdir=``/``workdir=`` strings are also looked up after ``ovl_unescape`` and shown as typed,
  so their backslash escapes are dropped too.
* New API (6.8+): one ``lowerdir+=`` per lower layer and ``datadir+=`` per data-only layer, in
  order; these are looked up without unescaping (a ``:`` or ``\\`` is a plain character).

The kernel stacks at most :data:`MAX_LOWERS` lower layers (data-only ones included).  Text that
declares more (corrupt or made up) is parsed in linear time: the first :data:`MAX_LOWERS` layers
are kept, the rest only counted (``OverlayOptions.declared_lowers``); repeated warnings are
reported once.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from ovlinspect.model import OverlayOptions
from ovlinspect.mounts.mountinfo import unescape

__all__ = ["MAX_LOWERS", "is_volatile", "legacy_data", "parse_overlay_options", "split_options"]

# OVL_MAX_STACK (fs/overlayfs/params.c): lower layers, data-only layers included.
MAX_LOWERS = 500
# Options that are neither layers nor overlay flags (rw, ro, LSM contexts): a handful in practice.
MAX_OTHER = 64

FLAG_KEYS = frozenset(
    {
        "index",
        "xino",
        "redirect_dir",
        "metacopy",
        "nfs_export",
        "uuid",
        "volatile",
        "fsync",
        "userxattr",
        "verity",
        "default_permissions",
    }
)
BARE_FLAGS = frozenset({"volatile", "userxattr", "default_permissions"})
PATH_KEYS = frozenset({"lowerdir", "lowerdir+", "datadir+", "upperdir", "workdir"})

# A double quote that can close a quoted value: followed by a comma or the end of the string.
_QUOTE_CLOSE = re.compile(r'"(?=,|\Z)')
_USER_ESCAPE = re.compile(r"\\(.?)", re.DOTALL)
# A user escape (backslash and the character it escapes) or a run of layer separators.
_LEGACY_DELIM = re.compile(r"\\.?|:+", re.DOTALL)
_LEGACY_SPECIAL = re.compile(r"([:,\\])")
_UPPER_SPECIAL = re.compile(r"([,\\])")


def split_options(raw: str) -> list[str]:
    """Split raw super-options on commas that are not inside a double-quoted value.

    A quote only opens a quoted value right after the ``=`` of a non-path option (as LSMs print
    them) and only if a closing quote followed by ``,`` or the end exists; overlay path values are
    never quoted, so a ``"`` inside a layer path cannot swallow the following options.  Empty
    pieces (``,,``) are dropped.
    """
    return list(_iter_options(raw))


def _iter_options(raw: str) -> Iterator[str]:
    closers = [m.start() for m in _QUOTE_CLOSE.finditer(raw)] if '"' in raw else []
    start = 0
    while start < len(raw):
        end = _option_end(raw, start, closers)
        if end > start:
            yield raw[start:end]
        start = end + 1


def _option_end(raw: str, start: int, closers: list[int]) -> int:
    """Index of the comma (or end of string) that ends the option starting at ``start``."""
    comma = raw.find(",", start)
    if comma < 0:
        comma = len(raw)
    eq = raw.find("=", start, comma)
    if eq < 0 or not raw.startswith('"', eq + 1) or raw[start:eq] in PATH_KEYS:
        return comma
    index = bisect.bisect_right(closers, eq + 1)
    return closers[index] + 1 if index < len(closers) else comma


def drop_user_escapes(text: str) -> str:
    """The kernel's ``ovl_unescape``: a backslash escapes the next character and is dropped."""
    return _USER_ESCAPE.sub(r"\1", text) if "\\" in text else text


def _legacy_tokens(value: str) -> Iterator[tuple[int, int, int]]:
    """Split a legacy lowerdir value on unescaped colons: ``(start, end, colons before)``."""
    start = colons_before = 0
    for match in _LEGACY_DELIM.finditer(value):
        if value[match.start()] == ":":
            yield start, match.start(), colons_before
            start, colons_before = match.end(), match.end() - match.start()
    yield start, len(value), colons_before


def split_legacy_lowerdir(
    value: str, limit: int | None = None
) -> tuple[list[str], list[str], list[str]]:
    """``(lower layers, data-only layers, warnings)`` from an unescaped ``lowerdir=`` value.

    Every layer after the first ``::`` is a data-only layer.  What the kernel would have refused
    (leading/trailing colons, ``:::``, a single ``:`` after ``::``) is reported, never raised.
    With ``limit``, only the first ``limit`` layers are kept (see :func:`_split_legacy`).
    """
    lowers, datas, warnings, _ = _split_legacy(value, limit)
    return lowers, datas, warnings


def _split_legacy(value: str, limit: int | None) -> tuple[list[str], list[str], list[str], int]:
    """:func:`split_legacy_lowerdir` plus the number of layers declared (kept or not)."""
    lowers: list[str] = []
    datas: list[str] = []
    warnings: dict[str, None] = {}  # an ordered set: each warning once
    in_data = False
    declared = 0
    spans = _legacy_tokens(value)
    current: tuple[int, int, int] | None = next(spans)
    first = True
    while current is not None:
        following = next(spans, None)
        start, end, colons = current
        in_data = in_data or colons >= 2
        if colons > 2:
            warnings[f"lowerdir: {colons} colons in a row (only ':' or '::' are valid)"] = None
        elif colons == 1 and in_data:
            warnings["lowerdir: a regular layer after '::' is kept as a data-only layer"] = None
        if start == end:
            warnings[_empty_layer_warning(first, following is None)] = None
        else:
            declared += 1
            if limit is None or len(lowers) + len(datas) < limit:
                (datas if in_data else lowers).append(drop_user_escapes(value[start:end]))
        current, first = following, False
    return lowers, datas, list(warnings), declared


def _empty_layer_warning(first: bool, last: bool) -> str:
    if first and last:
        return "lowerdir: empty value, no layers"
    if first:
        return "lowerdir: starts with ':' (empty first layer ignored)"
    if last:
        return "lowerdir: trailing ':' (empty last layer ignored)"
    return "lowerdir: empty layer ignored"


# Not a dataclass: generating one costs 0.3 ms of startup (issue #9).
class _Builder:
    """Accumulates options in order, with the kernel's last-wins and ordering rules."""

    opts: OverlayOptions
    warnings: dict[str, None]  # an ordered set: each warning once
    legacy_seen: bool = False
    new_seen: bool = False

    def __init__(
        self,
        opts: OverlayOptions | None = None,
        warnings: dict[str, None] | None = None,
        legacy_seen: bool = False,
        new_seen: bool = False,
    ) -> None:
        self.opts = OverlayOptions() if opts is None else opts
        self.warnings = {} if warnings is None else warnings
        self.legacy_seen = legacy_seen
        self.new_seen = new_seen

    def warn(self, message: str) -> None:
        self.warnings[message] = None

    def add(self, option: str) -> None:
        key, has_value, value = option.partition("=")
        if has_value and key in PATH_KEYS:
            self._add_path(key, value)
        elif key in FLAG_KEYS:
            self._add_flag(key, value if has_value else None)
        else:
            if key in PATH_KEYS:
                self.warn(f"{key} without a value")
            if len(self.opts.other) < MAX_OTHER:
                self.opts.other.append(option)
            else:
                self.warn(f"more than {MAX_OTHER} other options; the rest are not listed")

    def _add_path(self, key: str, value: str) -> None:
        if key == "lowerdir":
            self._add_legacy(value)
        elif key in ("lowerdir+", "datadir+"):
            self._add_new(key, value)
        else:
            self._add_upper(key, value)

    def _add_legacy(self, value: str) -> None:
        if self.legacy_seen:
            self.warn("lowerdir= given more than once; the last one wins")
        self.legacy_seen = True
        self._check_mix()
        lowers, datas, warnings, declared = _split_legacy(value, MAX_LOWERS)
        self.opts.lowerdir, self.opts.datadir = lowers, datas
        self.opts.declared_lowers = declared
        for warning in warnings:
            self.warn(warning)

    def _add_new(self, key: str, value: str) -> None:
        self.new_seen = True
        self._check_mix()
        if not value:
            self.warn(f"{key}= with an empty path ignored")
            return
        opts = self.opts
        opts.declared_lowers += 1
        if key == "lowerdir+" and opts.datadir:
            self.warn("lowerdir+= after datadir+= (the kernel refuses this order)")
        if len(opts.lowerdir) + len(opts.datadir) < MAX_LOWERS:
            (opts.datadir if key == "datadir+" else opts.lowerdir).append(value)

    def _add_upper(self, key: str, value: str) -> None:
        attr = "upperdir" if key == "upperdir" else "workdir"
        if getattr(self.opts, attr) is not None:
            self.warn(f"{key}= given more than once; the last one wins")
        if not value:
            self.warn(f"{key}= is empty")
        setattr(self.opts, attr, drop_user_escapes(value))

    def _add_flag(self, key: str, value: str | None) -> None:
        if key in self.opts.flags:
            self.warn(f"{key} given more than once; the last one wins")
        if value is None and key not in BARE_FLAGS:
            self.warn(f"{key} without a value, taken as 'on'")
        self.opts.flags[key] = "on" if value is None else value

    def _check_mix(self) -> None:
        if self.legacy_seen and self.new_seen:
            self.warn("lowerdir= mixed with lowerdir+=/datadir+= (the kernel refuses this)")

    def finish(self) -> tuple[OverlayOptions, list[str]]:
        opts = self.opts
        if opts.datadir and not opts.lowerdir:
            self.warn("data-only layers without any lower layer")
        if not opts.lowerdir and not opts.datadir:
            opts.syntax = "none"
        else:
            opts.syntax = "legacy" if self.legacy_seen else "new-api"
        opts.legacy_length = _byte_length(legacy_data(opts))
        return opts, list(self.warnings)


def parse_overlay_options(raw: str) -> tuple[OverlayOptions, list[str]]:
    """Parse the raw (still octal-escaped) super-options: ``(options, warnings)``.  Never raises.

    Options are split on unquoted commas first, then each is octal-unescaped.  Bare
    ``volatile``/``userxattr``/``default_permissions`` become flags with value ``"on"``; ``rw``,
    ``ro``, LSM and unknown options go to ``other`` unchanged (but unescaped), at most
    :data:`MAX_OTHER` of them.  Linear in the length of ``raw``; see :data:`MAX_LOWERS`.
    """
    builder = _Builder()
    for option in _iter_options(raw):
        builder.add(unescape(option))
    return builder.finish()


def _escape_legacy_layer(path: str) -> str:
    return _LEGACY_SPECIAL.sub(r"\\\1", path)


def _escape_upper(path: str) -> str:
    return _UPPER_SPECIAL.sub(r"\\\1", path)


def legacy_data(opts: OverlayOptions) -> str:
    """The mount(2) data string a replay of these options would need.

    ``lowerdir=l1:l2::d1::d2`` (``:`` ``,`` ``\\`` backslash-escaped in every layer), then
    ``upperdir=``/``workdir=`` (``,`` and ``\\`` escaped), then the flags.  ``other`` (rw/ro, LSM
    options) is left out: those are mount flags or belong to the LSM, not to overlayfs.
    """
    parts: list[str] = []
    if opts.lowerdir or opts.datadir:
        value = ":".join(_escape_legacy_layer(p) for p in opts.lowerdir)
        for data in opts.datadir:
            value += "::" + _escape_legacy_layer(data)
        parts.append(f"lowerdir={value}")
    if opts.upperdir is not None:
        parts.append(f"upperdir={_escape_upper(opts.upperdir)}")
    if opts.workdir is not None:
        parts.append(f"workdir={_escape_upper(opts.workdir)}")
    for key, value in opts.flags.items():
        parts.append(key if key in BARE_FLAGS and value == "on" else f"{key}={value}")
    return ",".join(parts)


def _byte_length(text: str) -> int:
    """Length in bytes as the kernel would see it (surrogate escapes are single bytes)."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate that did not come from a byte
        return len(text.encode("utf-8", "surrogatepass"))


def is_volatile(opts: OverlayOptions) -> bool:
    """True for ``volatile`` (older kernels) or ``fsync=volatile`` (newer ones)."""
    volatile = opts.flags.get("volatile")
    return (volatile is not None and volatile != "off") or opts.flags.get("fsync") == "volatile"
