"""Smoke test of benchmarks/events.py on the project's real recordings
(FSDD digits 0-2 over the freesound clips of tests/data/sounds): the
soundscapes are written, the recipe trains and exports, and the JSON holds
both methods' scores, the ratio against the target and the CPU.

Authors
 * speechbrain-ast developers
"""

import json
import os

import events
import pytest
from test_real_learning import fsdd_recordings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = os.path.join(ROOT, "tests", "data", "sounds")
FSDD = os.path.join(ROOT, "tests", "data", "real", "fsdd")


def test_quick_run_writes_both_methods(tmp_path):
    recordings = fsdd_recordings(str(tmp_path / "rec"))
    out = tmp_path / "events.json"
    status = events.main(
        [
            "--quick",
            "--recordings", recordings,
            "--sounds", SOUNDS,
            "--backgrounds", "snoring/jazz_guitar/piano",
            "--out", str(out),
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    assert status == 0
    results = json.loads(out.read_text())
    assert results["cpu"]["flags"] and results["labels"] == [
        "one",
        "two",
        "zero",
    ]
    for name in ("window_tagging", "frame_head"):
        run = results[name]
        for key in ("event_f1", "psds1", "segment_f1"):
            assert 0.0 <= run[key] <= 1.0, (name, key)
        assert run["references"] > 0 and len(run["thresholds"]) == 3
    assert results["target"] == 1.5 and isinstance(results["target_met"], bool)
    assert results["seconds"]["training"] > 0
    # speaker- and recording-disjoint: the test set is jackson over piano
    test = json.loads(
        (tmp_path / "work" / "run" / "save" / "test.json").read_text()
    )
    assert len(test) == 6


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as err:
        events.main(["--recordings", str(tmp_path / "none")])
    assert err.value.code == 2
    with pytest.raises(SystemExit) as err:
        events.main(
            ["--recordings", FSDD, "--sounds", SOUNDS,
             "--backgrounds", "piano/snoring"]
        )  # fmt: skip
    assert err.value.code == 2
    with pytest.raises(SystemExit) as err:
        events.main(
            ["--recordings", FSDD, "--sounds", SOUNDS,
             "--backgrounds", "rain/piano/snoring"]
        )  # fmt: skip
    assert err.value.code == 2
