"""The AudioSet recipe on a generated mini dataset (official segment lists,
clips named by YouTube id, some listed clips missing, one corrupt):
preparation (missing/unreadable report, idempotency), a ``--debug``
train/test run through the command line, weight averaging and the
prediction ensemble.

Authors
 * speechbrain-ast developers
"""

import csv
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from speechbrain_ast.testing.audioset import make_audioset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "AudioSet")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prep = _load("audioset_prepare", os.path.join(RECIPE, "audioset_prepare.py"))
ensemble = _load("audioset_ensemble", os.path.join(RECIPE, "ensemble.py"))
REPORT = "missing_or_unreadable.csv"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_audioset(str(tmp_path_factory.mktemp("as") / "audioset"))


def test_missing_and_unreadable_reported(dataset, tmp_path):
    splits = ["balanced_train", "unbalanced_train"]
    out = prep.prepare_audioset(dataset, str(tmp_path), train_splits=splits)
    # the generator lists 8/4/6 clips, one missing per split, one corrupt
    # file in eval
    assert out["counts"] == {
        "balanced_train": dict(listed=8, usable=7, missing=1, unreadable=0),
        "unbalanced_train": dict(listed=4, usable=3, missing=1, unreadable=0),
        "eval": dict(listed=6, usable=4, missing=1, unreadable=1),
    }
    report = _rows(out["report"])
    assert [r["problem"].split(":")[0] for r in report] == [
        "missing",
        "missing",
        "missing",
        "unreadable",
    ]
    bad_ids = {r["YTID"] for r in report}
    train, test = _rows(out["train"]), _rows(out["eval"])
    assert len(train) == 10 and len(test) == 4
    assert not bad_ids & {r["ID"] for r in train + test}
    # both namings are found: <YTID>.wav and Y<YTID>.flac
    names = {os.path.basename(r["wav"]) for r in train}
    assert any(n.startswith("Y") and n.endswith(".flac") for n in names)
    # labels are the segment list's, in its order
    segments = prep.read_segments(
        os.path.join(dataset, "balanced_train_segments.csv")
    )
    for row in train:
        if row["split"] == "balanced_train":
            assert row["labels"].split(",") == segments[row["ID"]]
    # nothing is written into the dataset
    assert not os.path.exists(os.path.join(dataset, "train.csv"))


def test_idempotent_and_no_mixing(dataset, tmp_path):
    out = prep.prepare_audioset(dataset, str(tmp_path))
    os.utime(out["train"], (0, 0))
    again = prep.prepare_audioset(dataset, str(tmp_path))
    assert os.path.getmtime(out["train"]) == 0
    assert again["counts"] == out["counts"]
    # other options: rebuilt
    prep.prepare_audioset(
        dataset,
        str(tmp_path),
        train_splits=["balanced_train", "unbalanced_train"],
    )
    assert len(_rows(out["train"])) == 10
    other = os.path.join(str(tmp_path), "other_audioset")
    shutil.copytree(dataset, other)
    with pytest.raises(ValueError, match="other_audioset"):
        prep.prepare_audioset(other, str(tmp_path))
    with open(os.path.join(str(tmp_path), "prepare_options.json")) as f:
        assert json.load(f)["data_folder"] == os.path.abspath(dataset)


def test_clear_errors(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="label list"):
        prep.prepare_audioset(str(tmp_path / "none"), str(tmp_path / "o"))
    data = str(tmp_path / "data")
    shutil.copytree(dataset, data)
    shutil.rmtree(os.path.join(data, "audio", "eval"))
    with pytest.raises(FileNotFoundError, match="None of the 6 clips"):
        prep.prepare_audioset(data, str(tmp_path / "o"))
    # the report is written before stopping
    assert len(_rows(str(tmp_path / "o" / "missing_or_unreadable.csv"))) == 7


def _recipe_rows():
    with open(os.path.join(ROOT, "tests", "recipes", "AudioSet.csv")) as f:
        return list(csv.DictReader(f))


def _flags(row, data_folder, output_folder):
    """The csv row's debug flags, pointed at the generated dataset."""
    flags = shlex.split(row["test_debug_flags"])
    flags[flags.index("--data_folder") + 1] = data_folder
    return flags + ["--output_folder", output_folder, "--noprogressbar"]


def _test_lines(output_folder):
    with open(os.path.join(output_folder, "train_log.txt")) as f:
        return f.read().splitlines()


def _stat(line, name):
    return float(re.search(rf"test {name}: ([0-9.e+-]+)", line).group(1))


@pytest.fixture(scope="module")
def debug_run(dataset, tmp_path_factory):
    """The csv row's run of ast_full.yaml (2 epochs of the mini dataset,
    not --debug, which would put the epoch checkpoints in a temporary
    folder), from inside the recipe folder (the Speech Commands test runs
    its recipe from the repository root)."""
    row = _recipe_rows()[0]
    out = str(tmp_path_factory.mktemp("as_run") / "out")
    hparams = os.path.relpath(row["Hparam_file"], "recipes/AudioSet")
    proc = subprocess.run(
        [sys.executable, "train.py", hparams] + _flags(row, dataset, out),
        cwd=RECIPE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return row, out, proc.stdout + proc.stderr


def test_debug_run_reports_and_writes_test_metrics(debug_run):
    row, out, log = debug_run
    checks = row["test_debug_checks"]
    for name in checks[checks.index("[") + 1 : checks.index("]")].split(","):
        assert os.path.exists(os.path.join(out, name)), name
    # missing / unreadable clips are reported before training starts
    report = log.index("eval: 6 clips listed, 4 usable, 1 missing, 1 unr")
    assert report < log.index("Going into epoch 1")
    assert len(_rows(os.path.join(out, "manifests", REPORT))) == 4
    lines = _test_lines(out)
    tests = [n for n, line in enumerate(lines) if "test mAP" in line]
    # best epoch, then the weight-averaged model (the last line)
    assert len(tests) == 2
    assert "weight averaging of epochs: 1-2" in lines[tests[1] - 1]
    final = lines[tests[1]]
    for name in ("mAP", "mAUC", "dprime"):
        assert 0.0 <= _stat(final, name) <= 1.0 or name == "dprime"
    # the logged mAP / mAUC are scikit-learn's on the saved scores
    pred = torch.load(
        os.path.join(out, "test_predictions.pt"), weights_only=True
    )
    assert sorted(pred["ids"]) == sorted(
        r["ID"] for r in _rows(os.path.join(out, "manifests", "eval.csv"))
    )
    y, s = pred["targets"].numpy(), pred["scores"].numpy()
    keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
    ap = average_precision_score(y[:, keep], s[:, keep], average=None)
    auc = roc_auc_score(y[:, keep], s[:, keep], average=None)
    assert abs(_stat(final, "mAP") - ap.mean()) < 5e-3
    assert abs(_stat(final, "mAUC") - auc.mean()) < 5e-3
    assert pred["scores"].shape == (4, 4)


def test_weight_averaging_is_the_mean_of_the_epochs(debug_run):
    _, out, _ = debug_run
    from speechbrain.utils.checkpoints import Checkpointer

    found = Checkpointer(os.path.join(out, "save")).find_checkpoints(
        ckpt_predicate=lambda c: c.meta.get("epoch") in (1, 2)
        and not c.meta.get("averaged", False),
        max_num_checkpoints=None,
    )
    folders = sorted(str(c.path) for c in found)
    averaged = os.path.join(out, "save", "averaged_epochs_1-2")
    for name in ("embedding_model", "classifier"):
        epochs = [
            torch.load(os.path.join(f, f"{name}.ckpt"), weights_only=True)
            for f in folders
        ]
        mean = torch.load(
            os.path.join(averaged, f"{name}.ckpt"), weights_only=True
        )
        exported = torch.load(
            os.path.join(out, "model", f"{name}.ckpt"), weights_only=True
        )
        for key, value in mean.items():
            expected = (epochs[0][key].double() + epochs[1][key].double()) / 2
            torch.testing.assert_close(value.double(), expected)
            # the exported (and tested) model is the averaged one
            torch.testing.assert_close(exported[key], value)
        assert any(not torch.equal(epochs[0][k], epochs[1][k]) for k in mean), (
            "the two epochs did not differ: the test would prove nothing"
        )
    best = torch.load(
        os.path.join(out, "test_predictions_best_epoch.pt"), weights_only=True
    )
    final = torch.load(
        os.path.join(out, "test_predictions.pt"), weights_only=True
    )
    assert best["ids"] == final["ids"]
    assert not torch.equal(best["scores"], final["scores"])


def test_ensemble_of_saved_predictions(debug_run, tmp_path, capsys):
    _, out, _ = debug_run
    runs = [out, os.path.join(out, "test_predictions_best_epoch.pt")]
    result_file = str(tmp_path / "ensemble.json")
    # the command line's entry point, in process (saves a torch import)
    ensemble.main(runs + ["--output_file", result_file])
    assert "Ensemble of 2 models on 4 clips: mAP" in capsys.readouterr().out
    with open(result_file) as f:
        result = json.load(f)
    a = torch.load(os.path.join(out, "test_predictions.pt"), weights_only=True)
    b = torch.load(runs[1], weights_only=True)
    y = a["targets"].numpy()
    s = ((a["scores"] + b["scores"]) / 2).numpy()
    keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
    ap = average_precision_score(y[:, keep], s[:, keep], average=None)
    assert abs(result["ensemble"]["mAP"] - ap.mean()) < 1e-5
    # clips in another order are aligned by id; other clips are refused
    shuffled = {
        "ids": b["ids"][::-1],
        "scores": b["scores"].flip(0),
        "targets": b["targets"].flip(0),
    }
    torch.save(shuffled, tmp_path / "shuffled.pt")
    again = ensemble.evaluate_ensemble([out, str(tmp_path / "shuffled.pt")])
    assert abs(again["ensemble"]["mAP"] - result["ensemble"]["mAP"]) < 1e-6
    shuffled["ids"] = ["other"] + shuffled["ids"][1:]
    torch.save(shuffled, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="different clips"):
        ensemble.evaluate_ensemble([out, str(tmp_path / "other.pt")])


REQUIRED_KEYS = [
    "data_folder", "output_folder", "seed", "number_of_epochs", "batch_size",
    "lr", "n_classes", "embed_dim", "depth", "num_heads", "target_length",
    "imagenet_pretrain", "audioset_pretrain",
]  # fmt: skip


@pytest.mark.parametrize("name", ["ast_full.yaml", "ast_balanced.yaml"])
def test_yaml_exposes_the_common_keys(name):
    with open(os.path.join(RECIPE, "hparams", name)) as f:
        keys = set(re.findall(r"^([A-Za-z_]\w*):", f.read(), re.MULTILINE))
    assert not set(REQUIRED_KEYS) - keys
