"""Property tests: the parsers never raise, and they invert the kernel's own rendering.

The rendering below follows the kernel: ``seq_show_option`` octal-escapes ``, \\t \\n \\\\`` in a
value (``seq_escape`` with ESCAPE_OCTAL works on bytes), ``mangle`` escapes `` \\t\\n\\\\`` in the
mount point; a legacy ``lowerdir=`` is printed exactly as typed, so the user's own backslash escapes
(``\\:`` ``\\,`` ``\\\\``) are part of what gets octal-escaped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ovlinspect.cli.main import main
from ovlinspect.model import OverlayOptions
from ovlinspect.mounts.mountinfo import MountEntry, parse, parse_line, unescape
from ovlinspect.mounts.overlayopts import legacy_data, parse_overlay_options, split_options

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text, including lone surrogates of every kind.
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=400)
# Text built from the characters that matter to these formats.
TRICKY = st.text(
    alphabet=st.sampled_from(list(' ,:\\"=\n\t\r-0123456789abc/+\udcff\ud800é')), max_size=200
)

# A path component as raw bytes (no NUL, which a path cannot hold): printable text with the
# characters that need escaping, plus arbitrary (possibly invalid UTF-8) bytes.
_PATH_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(":,\\ \n\t\"'=#+-.")),
        st.characters(min_codepoint=1, exclude_categories=("Cs",)),
    ),
    min_size=1,
    max_size=20,
)
PATH_BYTES = st.one_of(
    _PATH_TEXT.map(lambda s: s.encode("utf-8")),
    st.binary(min_size=1, max_size=12).filter(lambda b: b"\0" not in b),
)
LAYERS = st.lists(PATH_BYTES, min_size=1, max_size=6)


def _seq_escape(data: bytes, special: bytes) -> str:
    """Kernel ``seq_escape`` (ESCAPE_OCTAL): escape the listed bytes, keep all others raw."""
    out = bytearray()
    for byte in data:
        if byte in special:
            out += f"\\{byte:03o}".encode()
        else:
            out.append(byte)
    return out.decode("utf-8", "surrogateescape")


def _show_value(data: bytes) -> str:
    return _seq_escape(data, b", \t\n\\")


def _user_escape(data: bytes) -> bytes:
    """How a user types a legacy lowerdir path: backslash before ``:`` ``,`` and ``\\``."""
    out = bytearray()
    for byte in data:
        if byte in b":,\\":
            out.append(ord("\\"))
        out.append(byte)
    return bytes(out)


def _expected(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _mountinfo_line(mount_point: bytes, super_options: str) -> str:
    point = _seq_escape(mount_point, b" \t\n\\")
    return f"812 29 0:97 / {point} rw,relatime shared:7 master:3 - overlay overlay {super_options}"


@SETTINGS
@given(ANY_TEXT)
def test_parse_never_raises(text: str) -> None:
    entries, errors = parse(text)
    assert all(isinstance(e, MountEntry) for e in entries)
    assert all(isinstance(m, str) and m.startswith("line ") for m in errors)


@SETTINGS
@given(st.lists(st.one_of(TRICKY, ANY_TEXT), max_size=8))
def test_parse_never_raises_on_line_like_text(parts: list[str]) -> None:
    text = "1 2 3:4 " + " ".join(parts) + "\n" + " - ".join(parts)
    parse(text)


@SETTINGS
@given(st.one_of(ANY_TEXT, TRICKY))
def test_parse_overlay_options_never_raises(raw: str) -> None:
    opts, warnings = parse_overlay_options(raw)
    assert opts.syntax in ("legacy", "new-api", "none")
    assert all(isinstance(w, str) for w in warnings)
    assert opts.legacy_length >= 0
    legacy_data(opts)


@SETTINGS
@given(
    st.lists(
        st.sampled_from(
            [
                "lowerdir=",
                "lowerdir+=",
                "datadir+=",
                "upperdir=",
                "workdir=",
                "volatile",
                "fsync=",
                'context="',
                ",",
                ":",
                "::",
                "\\",
                "\\054",
                '"',
                "a",
                "/b",
            ]
        ),
        max_size=30,
    )
)
def test_parse_overlay_options_never_raises_on_option_soup(pieces: list[str]) -> None:
    parse_overlay_options("".join(pieces))


@SETTINGS
@given(st.one_of(ANY_TEXT, TRICKY))
def test_unescape_never_raises_and_is_identity_without_backslash(text: str) -> None:
    result = unescape(text)
    if "\\" not in text:
        assert result == text


@SETTINGS
@given(st.lists(st.text(alphabet=st.characters(exclude_characters=',"'), min_size=1), max_size=8))
def test_split_options_without_quotes_is_str_split(options: list[str]) -> None:
    assert split_options(",".join(options)) == options


@SETTINGS
@given(
    lowers=LAYERS, datas=st.lists(PATH_BYTES, max_size=4), mount_point=PATH_BYTES, upper=PATH_BYTES
)
def test_round_trip_new_api(
    lowers: list[bytes], datas: list[bytes], mount_point: bytes, upper: bytes
) -> None:
    options = ["rw", 'context="system_u:object_r:container_file_t:s0:c1,c2"']
    options += [f"lowerdir+={_show_value(p)}" for p in lowers]
    options += [f"datadir+={_show_value(p)}" for p in datas]
    # upperdir strings are looked up after ovl_unescape, so a user escapes ',' and '\' there too.
    options += [f"upperdir={_show_value(_user_escape(upper))}", "workdir=/w", "userxattr"]
    line = _mountinfo_line(b"/" + mount_point, ",".join(options))

    entry = parse_line(line, line_no=3)
    assert entry.mount_point == "/" + _expected(mount_point)
    opts, warnings = parse_overlay_options(entry.super_options)

    assert warnings == []
    assert opts.syntax == "new-api"
    assert opts.lowerdir == [_expected(p) for p in lowers]
    assert opts.datadir == [_expected(p) for p in datas]
    assert opts.upperdir == _expected(upper)
    assert opts.flags == {"userxattr": "on"}
    assert opts.other == options[:2]


@SETTINGS
@given(lowers=LAYERS, datas=st.lists(PATH_BYTES, max_size=4), mount_point=PATH_BYTES)
def test_round_trip_legacy(lowers: list[bytes], datas: list[bytes], mount_point: bytes) -> None:
    typed = b":".join(_user_escape(p) for p in lowers)
    for data in datas:
        typed += b"::" + _user_escape(data)
    super_options = f"rw,lowerdir={_show_value(typed)},upperdir=/u,workdir=/w,index=off"
    line = _mountinfo_line(b"/mnt/" + mount_point, super_options)

    entries, errors = parse(line + "\n")
    assert errors == []
    opts, warnings = parse_overlay_options(entries[0].super_options)

    assert warnings == []
    assert opts.syntax == "legacy"
    assert opts.lowerdir == [_expected(p) for p in lowers]
    assert opts.datadir == [_expected(p) for p in datas]
    assert (opts.upperdir, opts.workdir, opts.flags) == ("/u", "/w", {"index": "off"})


@SETTINGS
@given(lowers=LAYERS, datas=st.lists(PATH_BYTES, max_size=4))
def test_legacy_data_is_what_the_kernel_would_accept(
    lowers: list[bytes], datas: list[bytes]
) -> None:
    opts = OverlayOptions(
        lowerdir=[_expected(p) for p in lowers], datadir=[_expected(p) for p in datas]
    )
    typed = legacy_data(opts).removeprefix("lowerdir=")
    shown = _show_value(typed.encode("utf-8", "surrogateescape"))
    again, warnings = parse_overlay_options(f"rw,lowerdir={shown}")
    assert warnings == []
    assert (again.lowerdir, again.datadir) == (opts.lowerdir, opts.datadir)


# --- the whole --from-file path on arbitrary input -------------------------------------------

REPO = Path(__file__).resolve().parents[2]
OPTION_SOUP = st.lists(
    st.sampled_from(["lowerdir=", "lowerdir+=", "datadir+=", "upperdir=", "workdir=", "rw",
                     "volatile", "fsync=volatile", 'context="', ",", ":", "::", "\\", "\\054",
                     '"', "a", "/b", "/proc/self/fd/3", "\udcff", "\x1b[2J"]),
    max_size=30,
).map("".join)
MOUNT_LINE = st.builds(
    "{} {} 0:51 {} {} rw - {} src {}".format,
    st.sampled_from(["61", "62", "x"]), st.sampled_from(["22", "1"]),
    st.sampled_from(["/", "/sub", ""]), st.one_of(st.just("/m"), TRICKY),
    st.sampled_from(["overlay", "fuse.fuse-overlayfs", "fuse-overlayfs", "ext4", ""]),
    st.one_of(OPTION_SOUP, TRICKY),
)
INPUT = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(MOUNT_LINE, TRICKY, ANY_TEXT), max_size=12).map(
        lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=INPUT, output=st.sampled_from(["--json", "--plain", "--check"]))
def test_from_file_on_arbitrary_bytes_never_raises(data: bytes, output: str) -> None:
    with tempfile.NamedTemporaryFile(prefix="ovlinspect-fuzz-") as handle:
        handle.write(data)
        handle.flush()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--from-file", handle.name, output])
    assert status in (0, 1, 2)
    if status == 2:
        assert err.getvalue().startswith(f"ovlinspect: {handle.name}: ")
        assert out.getvalue() == ""
    elif output == "--json":
        assert json.loads(out.getvalue())["source"] == f"file:{handle.name}"
    if output != "--check":
        assert status != 1


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (500 << 20, 500 << 20))


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom"])
def test_endless_input_is_refused_under_a_memory_bound(source: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ovlinspect", "--from-file", source, "--plain"],
        capture_output=True, text=True, timeout=60, preexec_fn=_limit_memory,
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd="/",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"ovlinspect: {source}: ") and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert time.monotonic() - started < 20  # /dev/zero: 0.2 s, /dev/urandom: about 2 s
