"""Helpers for the provenance tests: run ``which`` / ``fds`` as a user would, and a holder
process (python) that keeps fds and inotify watches open inside a scenario's namespace."""

from __future__ import annotations

import json
from typing import Any

from scenario import run_cli

HOLDER = r"""
cat > $T/hold.py <<'PYEOF'
import ctypes, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
facts = {"fds": {}, "watches": {}}
opens, watches = sys.argv[1].split(","), sys.argv[2].split(",")
for path in filter(None, opens):
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.endswith("/") else 0)
    facts["fds"][path.rstrip("/")] = os.open(path, flags)
if any(watches):
    ifd = libc.inotify_init1(0)
    facts["inotify"] = ifd
    for path in filter(None, watches):
        facts["watches"][path] = libc.inotify_add_watch(ifd, path.encode(), 0x2)
if len(sys.argv) > 3:
    # fanotify with FAN_REPORT_FID (0x200) | FAN_CLASS_NOTIF; inode marks on FAN_OPEN (0x20)
    fan = libc.fanotify_init(0x200, os.O_RDONLY)
    facts["fanotify"] = fan
    for path in filter(None, sys.argv[3].split(",")):
        assert libc.fanotify_mark(fan, 1, ctypes.c_uint64(0x20), -100, path.encode()) == 0
print("ready " + json.dumps(facts), flush=True)
time.sleep(600)
PYEOF
"""
"""Shell snippet writing ``$T/hold.py``: ``exec "$PY" $T/hold.py OPENS WATCHES [FANOTIFY]``
(comma lists of paths; a trailing ``/`` opens a directory) prints ``ready {fds, watches,
inotify, fanotify}``."""


RESULT_KEYS = {
    "path", "mount_point", "mount_id", "kind", "layer", "real_path", "copied_up", "origin",
    "metacopy", "data", "redirect", "opaque", "whiteout", "hidden", "merged", "nlink",
    "index_entry", "proof", "unread", "notes",
}
"""Every field of a ``which`` result (the issue's shape plus kind, hidden, merged, nlink,
index_entry, unread)."""


def which_json(pid: int, *paths: str, rc: int = 0) -> dict[str, Any]:
    """``ovlinspect which --pid PID PATHS --json``: results by path (plus ``errors``)."""
    done = run_cli("which", "--pid", str(pid), *paths, "--json", check_rc=rc)
    assert "Traceback" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema"] == 1
    assert set(doc) == {"schema", "results", "errors"}
    for result in doc["results"]:
        assert set(result) == RESULT_KEYS, sorted(set(result) ^ RESULT_KEYS)
    out: dict[str, Any] = {r["path"]: r for r in doc["results"]}
    out["errors"] = doc["errors"]
    return out


def fds_json(pid: int) -> dict[str, Any]:
    """``ovlinspect fds --pid PID --json``."""
    done = run_cli("fds", "--pid", str(pid), "--json")
    assert "Traceback" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)
    assert doc["schema"] == 1
    assert set(doc) == {"schema", "pid", "scanned", "fds", "watches", "watches_skipped", "errors"}
    for item in doc["fds"]:
        assert set(item) == RESULT_KEYS | {"fd"}
    for item in doc["watches"]:
        assert set(item) == RESULT_KEYS | {"fd", "watch", "wd", "mask"}
    return doc


def where(result: dict[str, Any]) -> tuple[str | None, int | None, str | None]:
    """(role, index, real_path) of the serving layer."""
    layer = result["layer"] or {}
    return layer.get("role"), layer.get("index"), result["real_path"]


def ref(item: dict[str, Any] | None) -> tuple[str | None, int | None, str | None] | None:
    """(role, index, real_path) of an origin / data / hidden reference."""
    if item is None:
        return None
    return item["role"], item["index"], item["real_path"]


def proof(result: dict[str, Any]) -> tuple[str, str | None]:
    """(method, strength)."""
    return result["proof"]["method"], result["proof"]["strength"]
