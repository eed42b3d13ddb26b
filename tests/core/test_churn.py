"""Processes and mounts that vanish mid-scan are normal: the scan carries on."""

from __future__ import annotations

import os
import subprocess
import threading

import pytest

from ovlinspect.engine.scan import scan

from scenario import overlay_at, running

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to build overlay mounts")


def test_full_host_scan_survives_process_churn() -> None:
    script = """
mount -t tmpfs lab $T
mkdir -p $T/l1 $T/l2 $T/m; echo a > $T/l1/a; echo b > $T/l2/b
mount -t overlay ov -o lowerdir=$T/l1:$T/l2 $T/m
echo ready; exec sleep 600
"""
    stop = threading.Event()

    def churn() -> None:
        # Short-lived processes, some in their own short-lived mount namespaces.
        while not stop.is_set():
            subprocess.run(["unshare", "-m", "--propagation", "private", "true"], check=False)
            subprocess.run(["true"], check=False)

    with running(script) as sc:
        workers = [threading.Thread(target=churn) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            for _ in range(5):
                report = scan().to_dict()
                ov = overlay_at(report, f"{sc.tmp}/m")
                assert [x["verified"] for x in ov["layers"]] == ["match", "match"]
                assert report["errors"] == []
        finally:
            stop.set()
            for worker in workers:
                worker.join()
