"""The pure parts of provenance: fdinfo watch lines and stored ``ovl_fb`` xattrs."""

from __future__ import annotations

import pytest

from ovlinspect.kernel.handles import OverlayFid
from ovlinspect.provenance.classify import fb_hex
from ovlinspect.provenance.fds import parse_fdinfo
from ovlinspect.provenance.xattrs import parse_fb

HANDLE = "00000000fb210001378d182306b54f94836d456c2d51e440e26830d38600000000000000"


@pytest.mark.parametrize(("line", "want"), [
    # wd, ino, sdev and fhandle-bytes are hex (wd:a is watch descriptor 10)
    (f"inotify wd:a ino:88 sdev:28 mask:2 ignored_mask:0 fhandle-bytes:24 fhandle-type:f8 "
     f"f_handle:{HANDLE}", ("inotify", 10, "2", "0:40", 0xF8)),
    (f"fanotify ino:1d sdev:800001 mflags:0 mask:1 ignored_mask:0 fhandle-bytes:24 "
     f"fhandle-type:f8 f_handle:{HANDLE}", ("fanotify", None, "1", "8:1", 0xF8)),
    ("inotify wd:1 ino:9 sdev:28 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 "
     "f_handle:0900000000000000", ("inotify", 1, "2", "0:40", 1)),
])
def test_watch_lines(line: str, want: tuple[object, ...]) -> None:
    mnt_id, watches = parse_fdinfo(f"pos:\t0\nflags:\t00\nmnt_id:\t17\n{line}\n".encode())
    assert mnt_id == 17
    assert [(w.kind, w.wd, w.mask, w.sdev, w.handle_type) for w in watches] == [want]


@pytest.mark.parametrize("text", [
    b"pos:\t0\nflags:\t00\nmnt_id:\t17\n",
    b"fanotify mnt_id:40 mflags:0 mask:1 ignored_mask:0\n",   # a mount mark has no handle
    b"inotify wd:zz ino:1 sdev:1 mask:2 fhandle-bytes:8 fhandle-type:1 f_handle:00\n",
])
def test_lines_without_a_usable_handle_give_no_watch(text: bytes) -> None:
    assert parse_fdinfo(text)[1] == []


def test_stored_fb_round_trips_to_the_index_name() -> None:
    body = bytes.fromhex(HANDLE)[3:]
    fb = parse_fb(body)
    assert fb is not None and (fb.type, fb.flags, len(fb.fid)) == (1, 0, 12)
    fid = OverlayFid(flags=fb.flags, type=fb.type, uuid=fb.uuid, fid=fb.fid)
    assert fb_hex(fid) == fb.raw.hex() == body.hex()
    assert parse_fb(b"\x01" + body[1:]) is None
    assert parse_fb(body[:20]) is None
