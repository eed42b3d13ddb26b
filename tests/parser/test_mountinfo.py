"""Tests for ovlinspect.mounts.mountinfo, plus the real-world samples run through both parsers."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ovlinspect.mounts.mountinfo import (
    MountEntry,
    MountinfoError,
    parse,
    parse_line,
    parse_lines,
    read_lines,
    unescape,
)
from ovlinspect.mounts.overlayopts import is_volatile, parse_overlay_options

SAMPLES = Path(__file__).parent / "samples"

DOCKER_LINE = (
    "2061 1941 0:88 / / rw,relatime master:983 - overlay overlay "
    "rw,lowerdir=/l/A:/l/B,upperdir=/d/diff,workdir=/d/work,xino=off"
)


# --- unescape -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain/path", "plain/path"),
        (r"/mnt/my\040disk", "/mnt/my disk"),
        (r"tab\011here", "tab\there"),
        (r"new\012line", "new\nline"),
        (r"back\134slash", "back\\slash"),
        (r"comma\054value", "comma,value"),
        (r"\303\251t\303\251", "été"),
        (r"\377", "\udcff"),
        (r"a\303", "a\udcc3"),  # truncated UTF-8 sequence: one undecodable byte
        (r"\000", "\x00"),
    ],
)
def test_unescape_octal(raw: str, expected: str) -> None:
    assert unescape(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [r"\8", r"\400", r"\12", r"\x41", "trailing\\", r"\a\b", r"\\"],
)
def test_unescape_leaves_non_escapes_alone(raw: str) -> None:
    assert unescape(raw) == raw


def test_unescape_joins_escaped_and_raw_undecodable_bytes() -> None:
    # "é" = C3 A9: first byte escaped, second arrived raw and was surrogate-escaped by the reader.
    assert unescape("\\303\udca9") == "é"


def test_unescape_keeps_unrelated_surrogates() -> None:
    assert unescape("\ud800\\101") == "\ud800A"
    assert unescape("\udcff") == "\udcff"


# --- parse_line ------------------------------------------------------------------------------


def test_parse_line_fields() -> None:
    entry = parse_line(DOCKER_LINE + "\n", line_no=7)
    assert entry == MountEntry(
        mount_id=2061,
        parent_id=1941,
        dev="0:88",
        root="/",
        mount_point="/",
        mount_options="rw,relatime",
        optional=("master:983",),
        fs_type="overlay",
        source="overlay",
        super_options="rw,lowerdir=/l/A:/l/B,upperdir=/d/diff,workdir=/d/work,xino=off",
        line_no=7,
    )


@pytest.mark.parametrize(
    ("optional", "expected"),
    [
        ("", ()),
        ("shared:1 ", ("shared:1",)),
        (
            "shared:5 master:2 propagate_from:3 unbindable ",
            ("shared:5", "master:2", "propagate_from:3", "unbindable"),
        ),
    ],
)
def test_optional_fields(optional: str, expected: tuple[str, ...]) -> None:
    entry = parse_line(f"30 1 0:5 / /m rw {optional}- tmpfs tmpfs rw")
    assert entry.optional == expected
    assert entry.fs_type == "tmpfs"


def test_escaped_mount_point_root_and_source() -> None:
    line = r"40 1 8:3 /sub\040dir /mnt/a\040b\012c\134d\011e rw - ext4 /dev/disk\040x rw"
    entry = parse_line(line)
    assert entry.root == "/sub dir"
    assert entry.mount_point == "/mnt/a b\nc\\d\te"
    assert entry.source == "/dev/disk x"


def test_utf8_and_undecodable_mount_point() -> None:
    raw = "41 1 0:9 / /m/\u00e9t\u00e9/\udcff/\\303\\251 rw - tmpfs tmpfs rw"
    assert parse_line(raw).mount_point == "/m/été/\udcff/é"


def test_super_options_stay_raw() -> None:
    entry = parse_line(r"50 1 0:60 / /m rw - overlay overlay rw,lowerdir=/a\054b:/c\040d")
    assert entry.super_options == r"rw,lowerdir=/a\054b:/c\040d"


def test_subtype_fs_type() -> None:
    entry = parse_line(
        "1088 875 0:118 / / rw,noatime - fuse.fuse-overlayfs fuse-overlayfs rw,user_id=0"
    )
    assert entry.fs_type == "fuse.fuse-overlayfs"
    assert entry.source == "fuse-overlayfs"


def test_source_none_and_empty() -> None:
    assert parse_line("5 1 0:7 / /x rw - overlay none rw,lowerdir=/a").source == "none"
    empty = parse_line("5 1 0:7 / /x rw - overlay  rw,lowerdir=/a")
    assert empty.source == ""
    assert empty.super_options == "rw,lowerdir=/a"


def test_raw_space_in_super_options_is_kept() -> None:
    # Some filesystems print raw spaces in their options; they must not be lost.
    entry = parse_line("6 1 0:8 / /x rw - weirdfs src rw,label=a b")
    assert entry.super_options == "rw,label=a b"


def test_dash_inside_fields_is_not_the_separator() -> None:
    entry = parse_line("7 1 0:9 /- /mnt/- rw shared:1 - tmpfs - rw,size=1k")
    assert entry.root == "/-"
    assert entry.mount_point == "/mnt/-"
    assert entry.source == "-"


def test_line_over_4k() -> None:
    lowers = ":".join(
        f"/var/lib/docker/overlay2/l/LAYER{i:04d}ABCDEFGHIJKLMNOP" for i in range(200)
    )
    line = f"99 1 0:77 / /merged rw,relatime - overlay overlay rw,lowerdir={lowers},workdir=/w"
    assert len(line) > 4096 * 2
    entry = parse_line(line)
    opts, warnings = parse_overlay_options(entry.super_options)
    assert len(opts.lowerdir) == 200
    assert opts.lowerdir[-1].endswith("LAYER0199ABCDEFGHIJKLMNOP")
    assert opts.workdir == "/w"
    assert opts.legacy_length > 4096
    assert warnings == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "empty line"),
        ("   ", "empty line"),
        ("1 2 3", "no ' - ' separator"),
        ("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 ext3 /dev/root rw", "no ' - ' separator"),
        ("36 35 98:0 - /mnt2 rw ext3 /dev/root rw", "separator after only 3 field(s)"),
        ("36 35 98:0 / /mnt2 rw - ext3 /dev/root", "expected fs type, source and super"),
        ("36 35 98:0 / /mnt2 rw -", "got 0 field(s)"),
        ("x 35 98:0 / / rw - ext3 /dev/root rw", "mount id is not a number: 'x'"),
        ("36 -1 98:0 / / rw - ext3 /dev/root rw", "parent id is not a number: '-1'"),
        ("36 35 \u0661:0 / / rw - ext3 /dev/root rw", "device is not MAJOR:MINOR"),
        ("36 35 98 / / rw - ext3 /dev/root rw", "device is not MAJOR:MINOR: '98'"),
        ("36 35 98:0 / / rw -  /dev/root rw", "empty filesystem type"),
        ("\u0661 35 98:0 / / rw - ext3 /dev/root rw", "mount id is not a number"),
    ],
)
def test_malformed_lines(line: str, message: str) -> None:
    with pytest.raises(MountinfoError) as excinfo:
        parse_line(line, line_no=12)
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("line 12: ")
    assert excinfo.value.line_no == 12
    assert isinstance(excinfo.value, ValueError)


def test_error_without_line_number_has_no_prefix() -> None:
    with pytest.raises(MountinfoError, match=r"^no ' - ' separator"):
        parse_line("1 2 3")


# --- parse -----------------------------------------------------------------------------------


def test_parse_reports_and_skips_malformed_lines() -> None:
    text = "\n".join(
        [
            DOCKER_LINE,
            "garbage here",
            "",
            "62 61 0:91 / /proc rw,nosuid - proc proc rw",
            "63 61 zz / /dev rw - tmpfs tmpfs rw",
            "",
        ]
    )
    entries, errors = parse(text)
    assert [e.mount_id for e in entries] == [2061, 62]
    assert [e.line_no for e in entries] == [1, 4]
    assert len(errors) == 2
    assert errors[0].startswith("line 2: no ' - ' separator")
    assert errors[1] == "line 5: device is not MAJOR:MINOR: 'zz'"


def test_parse_empty_and_blank_text() -> None:
    assert parse("") == ([], [])
    assert parse("\n\n  \n") == ([], [])


def test_parse_splits_only_on_newline() -> None:
    # \r, \x0b, \x0c, \x1c-\x1e, \x85, \u2028, \u2029 are raw bytes/characters the kernel does not
    # escape; str.splitlines() would cut the line there.
    odd = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    text = f"7 1 0:9 / /mnt/x{odd}y rw - tmpfs tmpfs rw\n8 1 0:10 / /b rw - tmpfs tmpfs rw\n"
    entries, errors = parse(text)
    assert errors == []
    assert entries[0].mount_point == f"/mnt/x{odd}y"
    assert entries[1].line_no == 2


def test_parse_never_raises_on_binary_junk() -> None:
    junk = bytes(range(256)).decode("utf-8", "surrogateescape") * 3
    entries, errors = parse(junk + "\n" + DOCKER_LINE + "\n\ud800 1 2")
    assert [e.mount_id for e in entries] == [2061]
    # The junk holds three \n bytes: lines 1-4 are junk, line 5 the good one, line 6 junk.
    assert [m.split(":")[0] for m in errors] == [f"line {n}" for n in (1, 2, 3, 4, 6)]
    assert entries[0].line_no == 5


# --- real-world samples ----------------------------------------------------------------------


def _load(name: str) -> list[MountEntry]:
    text = (SAMPLES / name).read_text(encoding="utf-8", errors="surrogateescape")
    entries, errors = parse(text)
    assert errors == []
    return entries


def _overlay(entries: list[MountEntry], mount_id: int) -> MountEntry:
    return next(e for e in entries if e.mount_id == mount_id)


def test_every_sample_is_documented_and_parses_cleanly() -> None:
    sources = (SAMPLES / "SOURCES.md").read_text(encoding="utf-8")
    names = sorted(p.name for p in SAMPLES.glob("*.txt"))
    assert len(names) >= 12
    for name in names:
        assert f"`{name}`" in sources, f"{name} is not in SOURCES.md"
        entries = _load(name)
        assert entries
        for entry in entries:
            if "overlay" in entry.fs_type:
                _, warnings = parse_overlay_options(entry.super_options)
                assert warnings == [], (name, entry.mount_id)


def test_sample_docker_k3d() -> None:
    entries = _load("docker_k3d.txt")
    assert len(entries) == 8
    root = _overlay(entries, 2061)
    assert (root.mount_point, root.optional, root.fs_type) == ("/", ("master:983",), "overlay")
    opts, _ = parse_overlay_options(root.super_options)
    assert opts.syntax == "legacy"
    assert len(opts.lowerdir) == 3
    assert opts.lowerdir[0] == "/var/lib/docker/overlay2/l/XMHWMSKKVRJ62NBMHZAMVZFZYB"
    assert opts.lowerdir[-1] == "/var/lib/docker/overlay2/l/Y3JO3VSXOX25MAWU4LQPWEI7NS"
    layer = (
        "/var/lib/docker/overlay2/7b926a40e2e08f1bb032f019360527ec694111dc9f7a8a1fbff5acf22494c09a"
    )
    assert opts.upperdir == f"{layer}/diff"
    assert opts.workdir == f"{layer}/work"
    assert opts.flags == {"xino": "off"}
    assert opts.other == ["rw"]
    cgroup = _overlay(entries, 2068)
    assert cgroup.mount_point == "/sys/fs/cgroup/cpu,cpuacct"
    assert cgroup.optional == ("master:16",)


def test_sample_docker_desktop_mac() -> None:
    entries = _load("docker_desktop_mac.txt")
    assert len(entries) == 7
    opts, _ = parse_overlay_options(_overlay(entries, 473).super_options)
    assert opts.lowerdir == [
        "/var/lib/docker/overlay2/l/HOY5TBZRCYUBQ4CYBGZQ6TSNEM",
        "/var/lib/docker/overlay2/l/WUKBWU4V4V5WWC4QR6Q6SPWP4T",
    ]
    assert opts.upperdir is not None and opts.upperdir.endswith("815f4/diff")
    assert opts.flags == {}
    assert _overlay(entries, 486).fs_type == "cgroup2"


def test_sample_podman_rootful_selinux() -> None:
    entries = _load("podman_rootful_selinux.txt")
    root = _overlay(entries, 525)
    assert root.mount_options == "rw,nodev,relatime"
    opts, _ = parse_overlay_options(root.super_options)
    assert opts.other == ["rw", 'context="system_u:object_r:container_file_t:s0:c676,c727"']
    assert len(opts.lowerdir) == 8
    assert opts.lowerdir[0] == "/var/lib/containers/storage/overlay/l/J3WNPWC7SZA7N4UXHBLUQJCJUV"
    assert opts.lowerdir[-1] == "/var/lib/containers/storage/overlay/l/4OWJCV24SKKUFCAFXWQV2CNFRT"
    assert opts.upperdir == (
        "/var/lib/containers/storage/overlay/"
        "b4834b029e0f91f6ca7ec9ee1f53ad9439ee10ecb556697ad99a58eb007c2ffb/diff"
    )
    assert opts.legacy_length == len(
        root.super_options.replace(
            'rw,context="system_u:object_r:container_file_t:s0:c676,c727",', ""
        )
    )


def test_sample_podman_rootless_fuse_overlayfs() -> None:
    entries = _load("podman_rootless_fuse_overlayfs.txt")
    assert len(entries) == 13
    root = _overlay(entries, 1088)
    assert (root.fs_type, root.source, root.mount_options) == (
        "fuse.fuse-overlayfs",
        "fuse-overlayfs",
        "rw,noatime",
    )
    opts, warnings = parse_overlay_options(root.super_options)
    assert opts.syntax == "none"
    assert (opts.lowerdir, opts.datadir, opts.upperdir, opts.workdir) == ([], [], None, None)
    assert opts.other == ["rw", "user_id=0", "group_id=0", "allow_other"]
    assert warnings == []


def test_sample_podman_rootless_kind_fcos() -> None:
    entries = _load("podman_rootless_kind_fcos.txt")
    assert [e.mount_id for e in entries].count(3917) == 2  # duplicate id kept as published
    containerd, _ = parse_overlay_options(_overlay(entries, 3906).super_options)
    snapshots = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    assert len(containerd.lowerdir) == 24
    assert containerd.lowerdir[0] == f"{snapshots}/38/fs"
    assert containerd.lowerdir[-1] == f"{snapshots}/15/fs"
    assert containerd.upperdir == f"{snapshots}/50011/fs"
    assert containerd.flags == {"redirect_dir": "nofollow", "uuid": "on", "userxattr": "on"}
    assert containerd.other == ["rw", "seclabel"]
    podman, _ = parse_overlay_options(_overlay(entries, 3914).super_options)
    assert podman.lowerdir[-1] == (
        "/var/home/core/.local/share/containers/storage/overlay/l/MZFSHHTOAWWQFH3T7ZBF27FOYN"
    )
    assert podman.flags == {"redirect_dir": "nofollow", "userxattr": "on"}
    assert podman.other[1] == 'context="system_u:object_r:container_file_t:s0:c1022,c1023"'
    xfs = _overlay(entries, 3916)
    assert xfs.dev == "252:4"
    assert xfs.root.startswith("/ostree/deploy/fedora-coreos/var/home/core/")


def test_sample_containerd_minikube() -> None:
    entries = _load("containerd_minikube.txt")
    assert len(entries) == 37
    opts, _ = parse_overlay_options(_overlay(entries, 1517).super_options)
    prefix = "/mnt/sda1/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    assert opts.lowerdir == [f"{prefix}/34/fs"]
    assert opts.upperdir == f"{prefix}/35/fs"
    assert opts.workdir == f"{prefix}/35/work"
    console = _overlay(entries, 1429)
    assert (console.root, console.mount_point) == ("/0", "/dev/console")


def test_sample_containerd_nydus() -> None:
    entries = _load("containerd_nydus.txt")
    opts, _ = parse_overlay_options(_overlay(entries, 1228).super_options)
    assert opts.lowerdir == [
        "/var/lib/containerd/io.containerd.snapshotter.v1.nydus/snapshots/401/mnt"
    ]
    assert opts.flags == {"uuid": "on", "xino": "off"}
    assert opts.other == ["rw", "nouserxattr"]
    nsfs = _overlay(entries, 1229)
    assert (nsfs.root, nsfs.fs_type) == ("net:[4026532461]", "nsfs")


def test_sample_crio_openshift() -> None:
    (entry,) = _load("crio_openshift_reconstructed.txt")
    opts, _ = parse_overlay_options(entry.super_options)
    assert opts.other == ["rw", 'context="system_u:object_r:container_file_t:s0:c22,c23"']
    assert len(opts.lowerdir) == 4
    assert opts.lowerdir[0].endswith("/l/KGVVTLSJFMVP3COI6MMEZ3J6SZ")
    assert opts.lowerdir[-1].endswith("/l/RNICQWYK23FI3NPIBEXJBVAAP3")
    assert opts.upperdir is not None
    assert entry.mount_point == opts.upperdir.removesuffix("/diff") + "/merged"


def test_sample_composefs() -> None:
    entries = _load("composefs_bazzite.txt")
    root = _overlay(entries, 79)
    assert (root.source, root.mount_options, root.optional) == (
        "composefs",
        "ro,relatime",
        ("shared:1",),
    )
    opts, _ = parse_overlay_options(root.super_options)
    assert opts.syntax == "new-api"
    assert opts.lowerdir == ["/run/ostree/.private/cfsroot-lower"]
    assert opts.datadir == ["/sysroot/ostree/repo/objects"]
    assert (opts.upperdir, opts.workdir) == (None, None)
    assert opts.flags == {"redirect_dir": "on", "metacopy": "on"}
    assert opts.other == ["ro", "seclabel"]
    assert not is_volatile(opts)


def test_sample_livecd_ubuntu_casper() -> None:
    (entry,) = _load("livecd_ubuntu_casper.txt")
    assert (entry.source, entry.optional) == ("/cow", ("shared:1",))
    opts, _ = parse_overlay_options(entry.super_options)
    assert opts.lowerdir == ["//filesystem.squashfs"]  # the double slash is as the mounter typed
    assert (opts.upperdir, opts.workdir) == ("/cow/upper", "/cow/work")


def test_sample_livecd_manjaro() -> None:
    (entry,) = _load("livecd_manjaro.txt")
    opts, _ = parse_overlay_options(entry.super_options)
    assert opts.lowerdir == [
        "/run/miso/sfs/livefs",
        "/run/miso/sfs/mhwdfs",
        "/run/miso/sfs/desktopfs",
        "/run/miso/sfs/rootfs",
    ]
    assert opts.flags == {"index": "off"}


def test_sample_android_adb_remount() -> None:
    entries = _load("android_adb_remount_reconstructed.txt")
    overlay = _overlay(entries, 112)
    assert overlay.mount_point == "/system_ext"
    opts, _ = parse_overlay_options(overlay.super_options)
    assert opts.lowerdir == ["/system_ext"]
    assert opts.upperdir == "/mnt/scratch/overlay/system_ext/upper"
    assert opts.other == ["ro", "seclabel"]


def test_sample_new_api_detached_fds() -> None:
    (entry,) = _load("newapi_detached_fds_reconstructed.txt")
    assert entry.source == "none"
    opts, _ = parse_overlay_options(entry.super_options)
    assert opts.syntax == "new-api"
    assert opts.lowerdir == ["/"] * 4
    assert opts.datadir == ["/"] * 3
    assert opts.flags == {"redirect_dir": "on", "uuid": "on", "metacopy": "on"}


# --- bounded reading of untrusted input ------------------------------------------------------


def test_read_lines_splits_on_newline_only_and_decodes_bytes() -> None:
    data = b"a\rb\nc\xff\n\nlast"
    assert list(read_lines(io.BytesIO(data), max_bytes=100, max_line=10)) == [
        "a\rb", "c\udcff", "", "last"]


def test_read_lines_joins_lines_across_chunks() -> None:
    line = DOCKER_LINE.encode() + b"\n"
    data = line * ((3 << 20) // len(line))  # several 1 MiB chunks, lines cut at their edges
    lines = list(read_lines(io.BytesIO(data)))
    assert lines == [DOCKER_LINE] * (len(data) // len(line))


def test_read_lines_refuses_a_stream_past_the_byte_cap() -> None:
    stream = io.BytesIO(b"x\n" * 2000)
    with pytest.raises(MountinfoError, match="more than 1000 bytes"):
        list(read_lines(stream, max_bytes=1000, max_line=100))


def test_read_lines_refuses_a_line_that_never_ends() -> None:
    with pytest.raises(MountinfoError, match="line 2: longer than 100 bytes"):
        list(read_lines(io.BytesIO(b"ok\n" + b"\0" * 5000), max_bytes=10_000, max_line=100))
    with pytest.raises(MountinfoError, match="line 3: longer than"):
        list(read_lines(io.BytesIO(b"a\nb\n" + b"y" * 101 + b"\n"), max_line=100))


def test_parse_lines_keeps_only_what_is_asked_and_bounds_errors() -> None:
    lines = [DOCKER_LINE, "22 1 0:21 / / rw - ext4 /dev/vda rw", *["junk"] * 50, ""]
    parsed = parse_lines(lines, keep=lambda e: e.fs_type == "overlay", max_errors=3)
    assert [e.mount_id for e in parsed.entries] == [2061]
    assert parsed.mount_count == 2
    assert parsed.error_count == 50
    assert parsed.errors == [f"line {n}: no ' - ' separator in 1 field(s)" for n in (3, 4, 5)]


def test_parse_still_reports_every_error() -> None:
    entries, errors = parse("junk\n" * 30 + DOCKER_LINE)
    assert len(entries) == 1 and len(errors) == 30
