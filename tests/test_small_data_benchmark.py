"""Smoke test of benchmarks/small_data.py on the project's real FSDD clips:
every run (our small AST, SSAST pretraining + fine-tuning, the xvector peer)
goes through and the JSON holds their curves and test accuracies.

Authors
 * speechbrain-ast developers
"""

import json
import os

import pytest
import small_data
from test_real_learning import fsdd_recordings


def test_quick_run_writes_every_result(tmp_path):
    recordings = fsdd_recordings(str(tmp_path / "rec"))
    out = tmp_path / "small.json"
    status = small_data.main(
        [
            "--quick",
            "--recordings", recordings,
            "--out", str(out),
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    assert status == 0
    results = json.loads(out.read_text())
    assert results["cpu"]["flags"]
    for name in ("scratch", "ssast", "xvector"):
        run = results[name]
        assert len(run["valid_curve"]) == 2, name
        assert 0.0 <= run["test_acc"] <= 1.0, name
        assert run["seconds"] > 0
    assert os.path.isfile(tmp_path / "work" / "pretrain" / "ssast_encoder.pt")


def test_bad_arguments_are_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as err:
        small_data.main(["--recordings", str(tmp_path / "none")])
    assert err.value.code == 2
    with pytest.raises(SystemExit):
        small_data.main(["--epochs", "0"])
