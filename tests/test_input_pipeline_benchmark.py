"""The input pipeline benchmark runs end to end on a few short clips.

Authors
 * speechbrain-ast developers
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "input_pipeline.py")


def test_quick_run_writes_every_section(tmp_path):
    out = tmp_path / "ip.json"
    cmd = [
        sys.executable, SCRIPT, "--quick", "--clips", "8", "--duration",
        "1", "--workers", "1", "2", "--batch_size", "2", "--json", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(out.read_text())
    assert (
        record["machine"]["model_name"] and "avx2" in record["machine"]["flags"]
    )
    for kind in ("files", "shards"):
        for workers in ("1", "2"):
            row = record["pipeline"][kind][workers]
            assert row["clips"] == 8 and row["clips_per_s"] > 0
        assert record["train"][kind]["clips"] == 8
    assert record["train"]["model_only"]["clips"] == 8
    assert all(v > 0 for v in record["decode"].values())
    assert "shards clips/s" in run.stdout
