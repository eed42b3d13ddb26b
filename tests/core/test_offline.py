"""``--from-file``: everything the saved text allows, with clear errors on bad input."""

from __future__ import annotations

import json

from scenario import codes, layer, overlay_at, run_cli

LONG = ":".join(f"/var/lib/containers/storage/overlay/{i:064x}/diff" for i in range(40))
SAMPLE = "\n".join([
    "22 1 0:21 / / rw - ext4 /dev/vda rw",
    "60 22 0:50 / /run/user/1000/containers/storage/overlay/abc/merged rw,nodev - "
    "fuse.fuse-overlayfs fuse-overlayfs rw,user_id=1000,group_id=1000",
    f"61 22 0:51 / /long rw - overlay overlay rw,lowerdir={LONG},upperdir=/u,workdir=/w",
    "62 22 0:52 / /fd rw - overlay overlay rw,lowerdir+=/proc/self/fd/7,lowerdir+=/,"
    "datadir+=/d,upperdir=/u2,workdir=/w2,fsync=volatile",
    "this line is not mountinfo",
    "63 22 0:53 / /sp\\040ace rw - overlay overlay rw,lowerdir=/a\\054b:/c,upperdir=/u3,"
    "workdir=/w3",
]) + "\n"


def _report(*extra: str, rc: int = 0) -> dict:
    done = run_cli("--from-file", "-", "--json", *extra, stdin=SAMPLE, check_rc=rc)
    return json.loads(done.stdout)


def test_offline_hazards_from_text_alone() -> None:
    report = _report()
    assert report["source"] == "file:-"
    fuse = overlay_at(report, "/run/user/1000/containers/storage/overlay/abc/merged")
    assert codes(fuse) == {"no-layer-info"} and fuse["layers"] == []
    long = overlay_at(report, "/long")
    assert "options-near-limit" in codes(long)
    assert long["options"]["legacy_length"] >= 4096
    fd = overlay_at(report, "/fd")
    assert fd["options"]["syntax"] == "new-api"
    assert "fd-path" in codes(layer(fd, "lower[0]")) and "fd-path" in codes(layer(fd, "lower[1]"))
    assert layer(fd, "data[0]")["declared"] == "/d"
    assert "volatile" in codes(layer(fd, "upper"))
    spaced = overlay_at(report, "/sp ace")
    assert layer(spaced, "lower[0]")["declared"] == "/a,b"
    for ns in report["namespaces"]:
        for ov in ns["overlays"]:
            for item in ov["layers"]:
                assert item["verified"] == "unverified"
                assert item["proof"]["reason"] == "offline"
    assert any("not mountinfo" in n or "line 5" in n for n in report["namespaces"][0]["notes"])


def test_offline_check_exit_status() -> None:
    run_cli("--from-file", "-", "--check", stdin=SAMPLE, check_rc=1)
    healthy = "61 22 0:51 / /ok rw - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w\n"
    done = run_cli("--from-file", "-", "--check", stdin=healthy, check_rc=0)
    assert done.stdout.startswith("ok")


def test_bad_input_is_a_clear_message_never_a_traceback() -> None:
    for garbage in ("", "\x00\xff binary \x1b[2J\n", "not mountinfo at all\n"):
        done = run_cli("--from-file", "-", "--plain", stdin=garbage, check_rc=None)
        assert "Traceback" not in done.stderr
        assert done.returncode in (0, 2)
    done = run_cli("--from-file", "/nonexistent/file", "--json", check_rc=2)
    assert "cannot read /nonexistent/file" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("--pid", "0", "--json", check_rc=2)
    assert "not a process id" in done.stderr
    done = run_cli("--size", "banana", "--screenshot", "x.svg", check_rc=2)
    assert "size must look like" in done.stderr
