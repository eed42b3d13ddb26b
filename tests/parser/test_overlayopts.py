"""Tests for ovlinspect.mounts.overlayopts: splitting, unescaping, layer grammar, replay data."""

from __future__ import annotations

import time

import pytest

from ovlinspect.model import OverlayOptions
from ovlinspect.mounts.overlayopts import (
    MAX_LOWERS,
    MAX_OTHER,
    is_volatile,
    legacy_data,
    parse_overlay_options,
    split_legacy_lowerdir,
    split_options,
)

SELINUX = 'context="system_u:object_r:container_file_t:s0:c1,c2"'


# --- split_options ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        ("rw", ["rw"]),
        ("rw,lowerdir=/a:/b,upperdir=/u", ["rw", "lowerdir=/a:/b", "upperdir=/u"]),
        (f"rw,{SELINUX},lowerdir=/a", ["rw", SELINUX, "lowerdir=/a"]),
        (f"{SELINUX}", [SELINUX]),
        (
            'rw,fscontext="a:b:c1,c2",rootcontext="x,y",seclabel',
            ["rw", 'fscontext="a:b:c1,c2"', 'rootcontext="x,y"', "seclabel"],
        ),
        ('context="",rw', ['context=""', "rw"]),
        (r"rw,lowerdir=/a\054b,upperdir=/u", ["rw", r"lowerdir=/a\054b", "upperdir=/u"]),
        ("rw,,index=off,", ["rw", "index=off"]),
        # An unterminated quote does not swallow the rest.
        ('rw,opt="abc,lowerdir=/a', ["rw", 'opt="abc', "lowerdir=/a"]),
        # A quote that is not right after '=' is a plain character.
        ('rw,opt=a"b,c",d', ["rw", 'opt=a"b', 'c"', "d"]),
    ],
)
def test_split_options(raw: str, expected: list[str]) -> None:
    assert split_options(raw) == expected


def test_split_options_never_quotes_layer_paths() -> None:
    raw = 'rw,lowerdir+="a,lowerdir+=b",upperdir="u,workdir=w"'
    assert split_options(raw) == [
        "rw",
        'lowerdir+="a',
        'lowerdir+=b"',
        'upperdir="u',
        'workdir=w"',
    ]


# --- legacy lowerdir grammar -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "lowers", "datas"),
    [
        ("/a", ["/a"], []),
        ("/a:/b:/c", ["/a", "/b", "/c"], []),
        ("/l1:/l2:/l3::/do1::/do2", ["/l1", "/l2", "/l3"], ["/do1", "/do2"]),
        ("/l1::/do1", ["/l1"], ["/do1"]),
        (r"/a\:b:/c", ["/a:b", "/c"], []),
        (r"/a\,b", ["/a,b"], []),
        (r"/back\\slash:/x", ["/back\\slash", "/x"], []),
        (r"/a\\:/b", ["/a\\", "/b"], []),  # escaped backslash, then a real separator
        (r"/a\\\:b", ["/a\\:b"], []),
        (r"/w\i\t\h", ["/with"], []),  # any escaped char loses its backslash
        (r"/l\:1::/d\:\:2", ["/l:1"], ["/d::2"]),
        ("rel/path:../up", ["rel/path", "../up"], []),
        ("/with space:/tab\there:/new\nline", ["/with space", "/tab\there", "/new\nline"], []),
    ],
)
def test_split_legacy_lowerdir(value: str, lowers: list[str], datas: list[str]) -> None:
    assert split_legacy_lowerdir(value) == (lowers, datas, [])


@pytest.mark.parametrize(
    ("value", "lowers", "datas", "warning"),
    [
        ("", [], [], "empty value"),
        (":/a", ["/a"], [], "starts with ':'"),
        ("/a:", ["/a"], [], "trailing ':'"),
        ("/a::", ["/a"], [], "trailing ':'"),
        ("/a::/b:/c", ["/a"], ["/b", "/c"], "regular layer after '::'"),
        ("/a:::/b", ["/a"], ["/b"], "3 colons in a row"),
        ("::/d", [], ["/d"], "starts with ':'"),
        ("/trailing\\", ["/trailing"], [], None),
    ],
)
def test_split_legacy_lowerdir_oddities(
    value: str, lowers: list[str], datas: list[str], warning: str | None
) -> None:
    got_lowers, got_datas, warnings = split_legacy_lowerdir(value)
    assert (got_lowers, got_datas) == (lowers, datas)
    if warning is None:
        assert warnings == []
    else:
        assert any(warning in w for w in warnings), warnings


# --- parse_overlay_options -------------------------------------------------------------------


def test_legacy_full() -> None:
    raw = (
        rf"rw,{SELINUX},lowerdir=/l/A:/l/B::/data/1,upperdir=/u,workdir=/w,"
        "default_permissions,redirect_dir=on,index=on,uuid=on,nfs_export=off,xino=on,"
        "metacopy=on,volatile,userxattr,verity=require"
    )
    opts, warnings = parse_overlay_options(raw)
    assert warnings == []
    assert opts.syntax == "legacy"
    assert opts.lowerdir == ["/l/A", "/l/B"]
    assert opts.datadir == ["/data/1"]
    assert (opts.upperdir, opts.workdir) == ("/u", "/w")
    assert opts.flags == {
        "default_permissions": "on",
        "redirect_dir": "on",
        "index": "on",
        "uuid": "on",
        "nfs_export": "off",
        "xino": "on",
        "metacopy": "on",
        "volatile": "on",
        "userxattr": "on",
        "verity": "require",
    }
    assert opts.other == ["rw", SELINUX]


def test_octal_escapes_in_legacy_values() -> None:
    # User typed: lowerdir=/a\,b:/c d:/e\:f:/g\\h  (\, and \: and \\ are the user's escapes);
    # the kernel prints the backslashes as \134, the comma as \054, the space as \040.
    raw = r"rw,lowerdir=/a\134\054b:/c\040d:/e\134:f:/g\134\134h,upperdir=/u\040p,workdir=/w\011k"
    opts, warnings = parse_overlay_options(raw)
    assert warnings == []
    assert opts.lowerdir == ["/a,b", "/c d", "/e:f", "/g\\h"]
    assert opts.upperdir == "/u p"
    assert opts.workdir == "/w\tk"


def test_raw_comma_in_value_is_octal_escaped_by_kernel() -> None:
    # A comma reaches mountinfo as \054: it never splits the option.
    opts, _ = parse_overlay_options(r"rw,lowerdir=/x\054y,upperdir=/u\054v,workdir=/w")
    assert opts.lowerdir == ["/x,y"]
    assert opts.upperdir == "/u,v"


def test_newline_in_layer_path() -> None:
    opts, _ = parse_overlay_options(r"rw,lowerdir=/a\012b:/c")
    assert opts.lowerdir == ["/a\nb", "/c"]


def test_upperdir_user_escapes_are_dropped() -> None:
    # upperdir=/u\,p typed via mount(2) is stored as typed and looked up unescaped (ovl_unescape).
    opts, _ = parse_overlay_options(r"rw,lowerdir=/l,upperdir=/u\134\054p,workdir=/w\134\134x")
    assert opts.upperdir == "/u,p"
    assert opts.workdir == "/w\\x"


def test_new_api_layers() -> None:
    raw = (
        r"ro,lowerdir+=/a:b,lowerdir+=/c\054d,lowerdir+=/sp\040ace\134x,"
        r"datadir+=/d1::x,datadir+=/d\0122,redirect_dir=on,metacopy=on"
    )
    opts, warnings = parse_overlay_options(raw)
    assert warnings == []
    assert opts.syntax == "new-api"
    assert opts.lowerdir == ["/a:b", "/c,d", "/sp ace\\x"]
    assert opts.datadir == ["/d1::x", "/d\n2"]
    assert opts.other == ["ro"]


def test_new_api_with_upper_and_proc_fd() -> None:
    raw = "rw,lowerdir+=/proc/self/fd/7,upperdir=/u,workdir=/w,uuid=on"
    opts, _ = parse_overlay_options(raw)
    assert opts.lowerdir == ["/proc/self/fd/7"]
    assert (opts.upperdir, opts.workdir, opts.flags) == ("/u", "/w", {"uuid": "on"})


def test_no_lower_at_all() -> None:
    opts, warnings = parse_overlay_options("rw,upperdir=/u,workdir=/w")
    assert opts.syntax == "none"
    assert opts.upperdir == "/u"
    assert warnings == []


@pytest.mark.parametrize(
    ("raw", "warning"),
    [
        ("rw,lowerdir=/a,lowerdir+=/b", "mixed with lowerdir+="),
        ("rw,lowerdir+=/b,lowerdir=/a", "mixed with lowerdir+="),
        ("rw,lowerdir=/a,datadir+=/d", "mixed with lowerdir+="),
        ("rw,lowerdir=/a,upperdir=/u1,upperdir=/u2,workdir=/w", "upperdir= given more than once"),
        ("rw,lowerdir=/a,workdir=/w1,workdir=/w2", "workdir= given more than once"),
        ("rw,lowerdir=/a,lowerdir=/b", "lowerdir= given more than once"),
        ("rw,datadir+=/d,lowerdir+=/l", "lowerdir+= after datadir+="),
        ("rw,datadir+=/d", "data-only layers without any lower layer"),
        ("rw,lowerdir+=", "empty path ignored"),
        ("rw,lowerdir", "lowerdir without a value"),
        ("rw,lowerdir=/a,index=on,index=off", "index given more than once"),
        ("rw,lowerdir=/a,metacopy", "metacopy without a value"),
        ("rw,lowerdir=/a,upperdir=,workdir=/w", "upperdir= is empty"),
    ],
)
def test_warnings(raw: str, warning: str) -> None:
    _, warnings = parse_overlay_options(raw)
    assert any(warning in w for w in warnings), warnings


def test_mixed_syntax_result() -> None:
    opts, warnings = parse_overlay_options("rw,lowerdir=/a::/d,lowerdir+=/b")
    assert opts.syntax == "legacy"
    assert opts.lowerdir == ["/a", "/b"]
    assert opts.datadir == ["/d"]
    assert len([w for w in warnings if "mixed" in w]) == 1


def test_legacy_lowerdir_replaces_earlier_layers() -> None:
    opts, _ = parse_overlay_options("rw,lowerdir+=/x,lowerdir=/a:/b")
    assert opts.lowerdir == ["/a", "/b"]


def test_duplicate_upperdir_last_wins() -> None:
    opts, warnings = parse_overlay_options("rw,lowerdir=/a,upperdir=/u1,upperdir=/u2,workdir=/w")
    assert opts.upperdir == "/u2"
    assert len(warnings) == 1


def test_other_keeps_unknown_options_unescaped() -> None:
    opts, _ = parse_overlay_options(r"rw,lowerdir=/a,override_creds=off,weird=x\040y,nouserxattr")
    assert opts.other == ["rw", "override_creds=off", "weird=x y", "nouserxattr"]


@pytest.mark.parametrize(
    ("raw", "volatile"),
    [
        ("rw,lowerdir=/a,upperdir=/u,workdir=/w,volatile", True),
        ("rw,lowerdir=/a,upperdir=/u,workdir=/w,fsync=volatile", True),
        ("rw,lowerdir=/a,upperdir=/u,workdir=/w,fsync=strict", False),
        ("rw,lowerdir=/a,upperdir=/u,workdir=/w", False),
        ("rw,lowerdir=/volatile,upperdir=/u,workdir=/w", False),
    ],
)
def test_is_volatile(raw: str, volatile: bool) -> None:
    opts, _ = parse_overlay_options(raw)
    assert is_volatile(opts) is volatile


def test_fsync_flag_is_recorded() -> None:
    opts, _ = parse_overlay_options("rw,lowerdir=/a,upperdir=/u,workdir=/w,fsync=volatile")
    assert opts.flags == {"fsync": "volatile"}


@pytest.mark.parametrize(
    "raw",
    ["", ",", "=", "==", '"', '","', "lowerdir=:", "lowerdir=::", "\\", r"\\\\", "\udcff,\ud800"],
)
def test_parse_overlay_options_degenerate_inputs(raw: str) -> None:
    opts, warnings = parse_overlay_options(raw)
    assert isinstance(opts, OverlayOptions)
    assert isinstance(warnings, list)


# --- legacy_data -----------------------------------------------------------------------------


def test_legacy_data_escapes_and_layout() -> None:
    opts = OverlayOptions(
        lowerdir=["/a:b", "/c,d", "/e\\f", "/g h"],
        datadir=["/d1", "/d:2"],
        upperdir="/u,p\\q:r",
        workdir="/w",
        flags={"volatile": "on", "index": "off", "userxattr": "on", "redirect_dir": "on"},
        other=["rw", SELINUX],
    )
    assert legacy_data(opts) == (
        r"lowerdir=/a\:b:/c\,d:/e\\f:/g h::/d1::/d\:2,upperdir=/u\,p\\q:r,workdir=/w,"
        "volatile,index=off,userxattr,redirect_dir=on"
    )


def _seq_escape(value: str) -> str:
    """What seq_show_option does to a value: octal for comma, space, tab, newline, backslash."""
    return "".join(f"\\{ord(c):03o}" if c in ", \t\n\\" else c for c in value)


def test_legacy_data_round_trips_through_parser() -> None:
    opts, _ = parse_overlay_options(
        r"rw,lowerdir+=/a:b,lowerdir+=/c\054d,datadir+=/x\134y,datadir+=/s\040p,upperdir=/u"
    )
    # Replaying legacy_data with mount(2), the kernel stores lowerdir= as typed and prints it
    # back through seq_show_option: parsing that must give the same layers.
    typed = legacy_data(OverlayOptions(lowerdir=opts.lowerdir, datadir=opts.datadir))
    shown = "lowerdir=" + _seq_escape(typed.removeprefix("lowerdir="))
    again, warnings = parse_overlay_options(f"rw,{shown}")
    assert warnings == []
    assert again.syntax == "legacy"
    assert (again.lowerdir, again.datadir) == (["/a:b", "/c,d"], ["/x\\y", "/s p"])


def test_legacy_length_counts_bytes() -> None:
    opts, _ = parse_overlay_options(r"rw,lowerdir=/\303\251,upperdir=/\377,workdir=/w")
    assert opts.lowerdir == ["/é"]
    assert opts.upperdir == "/\udcff"
    data = "lowerdir=/é,upperdir=/\udcff,workdir=/w"
    assert legacy_data(opts) == data
    assert opts.legacy_length == len(data.encode("utf-8", "surrogateescape")) == len(data) + 1


def test_legacy_length_near_page_limit() -> None:
    lowers = ":".join(f"/var/lib/containers/storage/overlay/l/{i:026d}" for i in range(64))
    opts, _ = parse_overlay_options(f"rw,lowerdir={lowers},upperdir=/u,workdir=/w")
    assert opts.legacy_length == len(f"lowerdir={lowers},upperdir=/u,workdir=/w")
    assert opts.legacy_length >= 4096


def test_legacy_length_survives_foreign_surrogates() -> None:
    opts, _ = parse_overlay_options("rw,lowerdir+=/\ud800")
    assert opts.legacy_length == len(b"lowerdir=/") + 3


# --- more layers than the kernel allows ------------------------------------------------------


def test_declared_lowers_counts_every_layer() -> None:
    opts, _ = parse_overlay_options("rw,lowerdir=/a:/b::/d,upperdir=/u,workdir=/w")
    assert opts.declared_lowers == 3
    opts, _ = parse_overlay_options("rw,lowerdir+=/a,lowerdir+=,datadir+=/d")
    assert opts.declared_lowers == 2


def test_legacy_keeps_the_first_500_layers_and_counts_the_rest() -> None:
    count = 116_000  # a 1 MB line
    raw = "rw,lowerdir=" + ":".join(f"/l{i}" for i in range(count)) + "::/d0::/d1,upperdir=/u"
    started = time.monotonic()
    opts, warnings = parse_overlay_options(raw)
    assert time.monotonic() - started < 5  # linear: about 0.1 s
    assert opts.declared_lowers == count + 2
    assert opts.lowerdir == [f"/l{i}" for i in range(MAX_LOWERS)]
    assert opts.datadir == []
    assert (opts.upperdir, warnings) == ("/u", [])


def test_new_api_keeps_the_first_500_layers_in_order() -> None:
    pieces = [f"lowerdir+=/l{i}" for i in range(MAX_LOWERS - 2)]
    pieces += ["datadir+=/d0", "datadir+=/d1", "datadir+=/d2", "lowerdir+=/late"]
    opts, warnings = parse_overlay_options(",".join(pieces))
    assert len(opts.lowerdir) + len(opts.datadir) == MAX_LOWERS
    assert opts.datadir == ["/d0", "/d1"]
    assert opts.declared_lowers == MAX_LOWERS + 2
    assert warnings == ["lowerdir+= after datadir+= (the kernel refuses this order)"]


def test_exactly_500_lowers_is_allowed() -> None:
    opts, _ = parse_overlay_options("lowerdir=" + ":".join(f"/{i}" for i in range(MAX_LOWERS)))
    assert opts.declared_lowers == len(opts.lowerdir) == MAX_LOWERS


def test_repeated_warnings_and_other_options_stay_bounded() -> None:
    raw = "lowerdir=" + ":::".join(["/a"] * 100_000) + "," + ",".join(["seclabel"] * 100_000)
    opts, warnings = parse_overlay_options(raw + ",index=on" * 1000)
    assert warnings == [
        "lowerdir: 3 colons in a row (only ':' or '::' are valid)",
        f"more than {MAX_OTHER} other options; the rest are not listed",
        "index given more than once; the last one wins",
    ]
    assert len(opts.other) == MAX_OTHER
