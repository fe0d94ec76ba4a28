"""scripts/device-check, the one-call GPU check, as a dry run on the CPU at smoke size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_check_dry_run_on_the_cpu_writes_its_report(tmp_path):
    env = {**os.environ, "IPKIT_DEVICE": "cpu", "TMPDIR": str(tmp_path), "OUT": str(tmp_path / "out")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "device-check"), "--dry-run", "--budget", "540"],
        env=env,
        capture_output=True,
        text=True,
        timeout=660,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    steps = json.loads((tmp_path / "out" / "device-check.json").read_text())["steps"]
    assert steps["versions"]["torch"]
    assert steps["versions"]["python"]
    smoke = steps["smoke"]["quickstart"]
    assert smoke["rc"] == 0
    assert smoke["device"].startswith("cpu")
    assert set(smoke["claims"]) == {"Q1", "Q2", "Q3"}
    assert steps["bench"]["trainer"]["device"] == "cpu"
    assert steps["bench"]["ensemble"]["members"] == 5
    assert steps["cifar10_victim"] == {"skipped": "dry run"}
    assert steps["summary"]["smoke_failed"] == []
