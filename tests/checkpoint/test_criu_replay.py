"""What CRIU's raw replay does with each case: the options string from mountinfo, unchanged (not
unescaped), passed to mount(2) from the restorer's cwd (``/``), in a private copy of the
scenario's namespace.  Outcomes: ``same`` (the merged tree is the live one), ``wrong-tree``
(mounted, but another tree), ``failed`` (mount(2) refused it; the errno is recorded).

The table in the README ("dump / restore") is this test's output (``-s`` prints it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ckkit import TREE, live_tree, proc_tree
from engine_kit import needs
from test_end_to_end import RICH
from test_restore_basic import RELATIVE
from test_restore_cases import (
    CONTAINER,
    COVERED,
    DATA_ONLY,
    DOCKER,
    ESCAPED,
    LONG,
    _new_api,
)

from scenario import REPO, running

REPLAY = r"""
import json, os, sys
from ovlinspect.kernel import mountapi as m
raw, target, tree = sys.argv[1], sys.argv[2], sys.argv[3]
os.chdir("/")
try:
    m.mount("overlay", target, "overlay", 0, raw)
except OSError as exc:
    print(json.dumps({"outcome": "failed", "errno": exc.errno}))
    sys.exit(0)
import subprocess
listing = subprocess.run([sys.executable, "-c", tree, target], capture_output=True, text=True)
print(json.dumps({"outcome": "mounted", "tree": json.loads(listing.stdout)}))
"""

# case: (script, python?, mount point relative to $T or absolute "/", CRIU's expected outcome)
CASES = {
    "relative-dotdot": (RELATIVE, False, "m", "failed"),
    "docker-l-symlinks": (DOCKER, False, "storage/id2/merged", "failed"),
    "escaped-names": (ESCAPED, True, "m", "failed"),
    "options-over-a-page": (_new_api(24, 200), True, "m", "failed"),
    "500-lowers": (_new_api(500, 1), True, "m", "failed"),
    "paths-over-255-bytes": (LONG, False, "m", "same"),
    "data-only-metacopy": (DATA_ONLY, True, "m", "same"),
    "container-host-paths": (CONTAINER, True, "/", "same"),
    "mounted-over-lower": (COVERED, False, "m", "wrong-tree"),
    "plain-end-to-end": (RICH, False, "m", "same"),
}
RESULTS: dict[str, dict[str, object]] = {}


def _raw_options(pid: int, mount_point: str) -> str:
    with open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.rstrip("\n").split(" ")
            point = fields[4].replace("\\040", " ").replace("\\012", "\n").replace(
                "\\134", "\\")
            if point == mount_point and " - overlay " in line:
                return line.rstrip("\n").split(" - ", 1)[1].split(" ", 2)[2]
    raise AssertionError(f"no overlay at {mount_point}")


@needs()
@pytest.mark.parametrize("case", list(CASES))
def test_criu_raw_replay(case: str, tmp_path) -> None:
    body, python, where, expected = CASES[case]
    with running(body, python=python, timeout=60, bare=True) as sc:
        point = "/" if where == "/" else f"{sc.tmp}/{where}"
        raw = _raw_options(sc.pid, point)
        live = proc_tree(sc.pid) if where == "/" else live_tree(sc.pid, point)
        target = tmp_path / "replayed"
        target.mkdir()
        done = subprocess.run(
            ["nsenter", "-t", str(sc.pid if where != "/" else os.getpid()), "-m", "unshare",
             "-m", "--propagation", "private", sys.executable, "-c", REPLAY, raw, str(target),
             TREE], capture_output=True, text=True, timeout=120, cwd="/",
            env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        if result["outcome"] == "mounted":
            result["outcome"] = "same" if result.pop("tree") == live else "wrong-tree"
        RESULTS[case] = {**result, "options_bytes": len(raw.encode("utf-8", "surrogateescape"))}
        print(f"\nCRIU raw replay: {case}: {RESULTS[case]}")
        assert result["outcome"] == expected, result
