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


def test_splits_give_mean_and_spread(tmp_path):
    recordings = fsdd_recordings(str(tmp_path / "rec"))
    out = tmp_path / "splits.json"
    small_data.main(
        [
            "--quick", "--splits", "2", "--skip", "ssast,xvector",
            "--recordings", recordings,
            "--out", str(out),
            "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    results = json.loads(out.read_text())
    tested = [r["split"]["test_speakers"] for r in results["splits"]]
    assert tested == [["jackson"], ["george"]]
    accs = [r["scratch"]["test_acc"] for r in results["splits"]]
    summary = results["summary"]["scratch"]
    assert summary["test_acc"] == accs
    assert summary["mean"] == pytest.approx(sum(accs) / 2, abs=1e-4)
    assert summary["std"] == pytest.approx(abs(accs[0] - accs[1]) / 2, abs=1e-4)
    with pytest.raises(SystemExit):
        small_data.main(["--splits", "7"])


def test_reuse_takes_the_xvector_runs_of_an_earlier_file(tmp_path):
    """``--reuse``: the xvector run of a split the file holds is taken
    from it, marked; a split it does not hold runs without it here
    (skipped); a file of other epochs is refused."""
    recordings = fsdd_recordings(str(tmp_path / "rec"))
    earlier = {
        "splits": [
            {
                "split": {
                    "valid_speakers": ["theo"],
                    "test_speakers": ["jackson"],
                },
                "epochs": 2,
                "xvector": {
                    "test_acc": 0.5,
                    "valid_curve": [0.4],
                    "seconds": 9,
                },
            }
        ]
    }
    reuse = tmp_path / "earlier.json"
    reuse.write_text(json.dumps(earlier))
    out = tmp_path / "splits.json"
    argv = ["--quick", "--splits", "2", "--skip", "ssast,xvector"]
    argv += ["--recordings", recordings, "--work", str(tmp_path / "work")]
    small_data.main(argv + ["--reuse", str(reuse), "--out", str(out)])
    results = json.loads(out.read_text())
    first, second = results["splits"]
    assert first["xvector"] == {
        "test_acc": 0.5,
        "valid_curve": [0.4],
        "seconds": 9,
        "reused_from": str(reuse),
    }
    assert "xvector" not in second
    assert results["summary"]["xvector"]["test_acc"] == [0.5]
    earlier["splits"][0]["epochs"] = 30
    reuse.write_text(json.dumps(earlier))
    with pytest.raises(SystemExit, match="not comparable"):
        small_data.main(argv + ["--reuse", str(reuse)])
    for bad, text in ((tmp_path / "none.json", None), (reuse, "not json")):
        if text is not None:
            bad.write_text(text)
        with pytest.raises(SystemExit, match="not a results file"):
            small_data.main(argv + ["--reuse", str(bad)])


def test_ssast_sweep_records_each_settings_pretext_curve_and_test(tmp_path):
    recordings = fsdd_recordings(str(tmp_path / "rec"))
    out = tmp_path / "sweep.json"
    small_data.main(
        [
            "--quick", "--ssast_sweep", "--recordings", recordings,
            "--out", str(out), "--work", str(tmp_path / "work"),
        ]
    )  # fmt: skip
    sweep = json.loads(out.read_text())["ssast_sweep"]
    assert list(sweep) == list(small_data.SSAST_SWEEP)
    for name, run in sweep.items():
        assert run["overrides"] == small_data.SSAST_SWEEP[name]
        assert len(run["pretext_curve"]) == 1  # one pretraining epoch
        assert 0 <= run["pretext_curve"][0] <= 1
        assert len(run["valid_curve"]) == 2 and 0 <= run["test_acc"] <= 1
    # each fine-tuning started from its own encoder
    log = (tmp_path / "work" / "sweep" / "t64_m16_finetuned.log").read_text()
    assert "t64_m16/ssast_encoder.pt" in log
    with pytest.raises(SystemExit):
        small_data.main(["--ssast_sweep", "--splits", "2"])
