"""The AudioSet recipe from shards (``--shards``): shards written by
``make_shards.py`` from the manifests of a file-based run train for two
epochs through the same yaml, writing the same files and metric lines; the
checkpoints of that run, evaluated again from the files (``--test_only``),
give the metrics and scores the shard evaluation gave.

A shard run with mixup and SpecAugment killed mid-epoch and started again
ends with the uninterrupted run's metric lines and test scores. Mid-epoch
resume of the shard loader alone is tested in ``tests/test_shards.py`` (two
ranks x two workers, through the checkpointer).

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import torch
from _resume import kill_after_first_checkpoint

from speechbrain_ast.testing.audioset import make_audioset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "AudioSet")


def _row():
    with open(os.path.join(ROOT, "tests", "recipes", "AudioSet.csv")) as f:
        return list(csv.DictReader(f))[0]  # ast_full.yaml


def _flags(row, output_folder, data_folder=None, shards=None):
    """The csv row's flags with the data folder or the shards."""
    flags = shlex.split(row["test_debug_flags"])
    at = flags.index("--data_folder")
    del flags[at : at + 2]
    if data_folder is not None:
        flags += ["--data_folder", data_folder]
    if shards is not None:
        flags += ["--shards", shards]
    return flags + ["--output_folder", output_folder, "--noprogressbar"]


ENV = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


def _command(args):
    """The recipe's command line (run from the recipe folder)."""
    hparams = os.path.relpath(_row()["Hparam_file"], "recipes/AudioSet")
    return [sys.executable, "train.py", hparams, *args]


def _train(args):
    proc = subprocess.run(
        _command(args),
        cwd=RECIPE,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _records(out, stage):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [r for r in map(json.loads, f) if r["stage"] == stage]


def _test_lines(out):
    with open(os.path.join(out, "train_log.txt")) as f:
        return [line for line in f.read().splitlines() if "test mAP" in line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A file-based run, shards of its manifests, and a shard run."""
    from make_shards import make_shards

    tmp = tmp_path_factory.mktemp("as_shards")
    data = make_audioset(str(tmp / "audioset"))
    row = _row()
    files_out = str(tmp / "files")
    _train(_flags(row, files_out, data_folder=data))
    shards = str(tmp / "shards")
    make_shards(
        shards, manifest_folder=os.path.join(files_out, "manifests"),
        shard_size=3,
    )  # fmt: skip
    shards_out = str(tmp / "from_shards")
    log = _train(_flags(row, shards_out, shards=shards))
    return row, data, files_out, shards, shards_out, log


def test_shard_run_writes_the_same_files_and_metrics(runs):
    row, _, files_out, _, shards_out, log = runs
    checks = row["test_debug_checks"]
    names = checks[checks.index("[") + 1 : checks.index("]")].split(",")
    for name in names:
        if name.startswith("manifests/"):  # no preparation from shards
            assert not os.path.exists(os.path.join(shards_out, name)), name
        else:
            assert os.path.exists(os.path.join(shards_out, name)), name
    assert "audioset_prepare" not in log  # the prepare step is skipped
    # the same metric lines: two validation epochs, best epoch and the
    # weight-averaged model on the test stage, every eval clip once
    for out in (files_out, shards_out):
        assert [r["epoch"] for r in _records(out, "valid")] == [1, 2]
        tests = _records(out, "test")
        assert len(tests) == 2 and len(_test_lines(out)) == 2
        assert {t["ids_evaluated"] for t in tests} == {4}
        for key in ("mAP", "mAUC", "dprime", "loss"):
            assert all(key in t for t in tests)
    with open(os.path.join(shards_out, "save", "labels.txt")) as f:
        shard_labels = f.read()
    with open(os.path.join(files_out, "save", "labels.txt")) as f:
        assert shard_labels == f.read()


def test_shard_evaluation_equals_the_file_evaluation(runs):
    """The shard run's checkpoints evaluated again from the files: the
    same metrics (best epoch and weight-averaged) and the same scores."""
    row, data, _, _, shards_out, _ = runs
    from_shards = _records(shards_out, "test")
    with open(os.path.join(shards_out, "test_predictions.pt"), "rb") as f:
        shard_pred = torch.load(f, weights_only=True)
    _train(_flags(row, shards_out, data_folder=data) + ["--test_only"])
    from_files = _records(shards_out, "test")[len(from_shards) :]
    assert len(from_files) == 2
    for a, b in zip(from_shards, from_files):
        assert (
            a["epoch"] == b["epoch"]
            and a["ids_evaluated"] == b["ids_evaluated"]
        )
        for key in ("mAP", "mAUC", "dprime", "loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    file_pred = torch.load(
        os.path.join(shards_out, "test_predictions.pt"), weights_only=True
    )
    order_a = sorted(range(4), key=lambda i: shard_pred["ids"][i])
    order_b = sorted(range(4), key=lambda i: file_pred["ids"][i])
    assert [shard_pred["ids"][i] for i in order_a] == [
        file_pred["ids"][i] for i in order_b
    ]
    torch.testing.assert_close(
        shard_pred["scores"][order_a], file_pred["scores"][order_b],
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    torch.testing.assert_close(
        shard_pred["targets"][order_a], file_pred["targets"][order_b]
    )


def test_shards_folder_errors_are_one_line(runs, tmp_path):
    row = _row()
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    hparams = os.path.relpath(row["Hparam_file"], "recipes/AudioSet")
    for args, expect in (
        (["--shards", str(tmp_path)], "class_labels_indices.csv is missing"),
        ([], "needs --data_folder VALUE (the AudioSet folder) or --shards"),
        (["--shards", runs[3], "--n_classes", "5"], "has 4 labels but"),
        (["--shards", runs[3], "--shards", runs[3]], "--shards is given twice"),
    ):
        flags = _flags(row, str(tmp_path / "o")) + args
        if "--n_classes" in args:  # instead of the row's
            at = flags.index("--n_classes")
            del flags[at : at + 2]
        proc = subprocess.run(
            [sys.executable, "train.py", hparams, *flags],
            cwd=RECIPE, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert re.match(r"train\.py: error: ", last) and expect in last, last


def test_shard_run_killed_mid_epoch_ends_as_an_uninterrupted_run(
    runs, tmp_path
):
    """Trained from the shards with mixup (the yaml's 0.5) and SpecAugment
    on, two workers, a checkpoint every step: SIGKILLed after the first
    one and started again with the same command, the run writes the
    uninterrupted run's train_log.txt (every validation and test line)
    and its test scores bit for bit, for the best epoch and the
    weight-averaged model."""
    row, shards = runs[0], runs[3]
    assert "--mixup_prob" not in row["test_debug_flags"]

    def args(out):
        flags = _flags(row, str(out), shards=shards)
        flags[flags.index("--num_workers") + 1] = "2"
        return flags + [
            "--ckpt_interval_steps", "1", "--freqm", "8", "--timem", "16",
            "--export_model", "False",
        ]  # fmt: skip

    whole = tmp_path / "whole"
    _train(args(whole))
    out = tmp_path / "killed"
    needed = {"CKPT.yaml", "train_loader.ckpt", "random_state.ckpt"}
    meta = kill_after_first_checkpoint(
        _command(args(out)), RECIPE, ENV, out / "save", needed
    )
    assert meta["end-of-epoch"] is False  # resumed mid-epoch
    assert not (out / "test_predictions.pt").exists()
    _train(args(out))
    with open(out / "log.txt") as f:
        assert "Loading a checkpoint from" in f.read()
    with open(whole / "train_log.txt") as a, open(out / "train_log.txt") as b:
        expected, resumed = a.read(), b.read()
    assert len(_test_lines(whole)) == 2 and resumed == expected
    for name in ("test_predictions.pt", "test_predictions_best_epoch.pt"):
        a = torch.load(whole / name, weights_only=True)
        b = torch.load(out / name, weights_only=True)
        assert a["ids"] == b["ids"], name
        assert torch.equal(a["scores"], b["scores"]), name


def test_two_workers_resumed_after_an_odd_count_keep_the_batch_order(
    tmp_path,
):
    """Worker 0 makes the first batch left after the consumed ones (the
    DataLoader's round-robin starts with it): resumed after 1 or 2 of 5
    batches, two workers yield the uninterrupted epoch's remaining batches
    in order, as one process does."""
    import numpy as np
    import soundfile as sf

    from speechbrain_ast.data.shards import (
        DecodeClip,
        ShardLoader,
        ShardStream,
        write_shards,
    )

    clips = []
    for i in range(10):
        sf.write(tmp_path / f"{i}.wav", np.zeros(160 + i), 16000)
        clips.append({"ID": f"c{i}", "wav": str(tmp_path / f"{i}.wav"),
                      "labels": []})  # fmt: skip
    write_shards(clips, str(tmp_path / "s"), shard_size=4)

    def epoch(workers, consumed=0):
        stream = ShardStream(str(tmp_path / "s"), DecodeClip(), 2, seed=1)
        loader = ShardLoader(stream, num_workers=workers)
        loader._epoch, loader._consumed = (1, consumed) if consumed else (0, 0)
        return [b.id for b in loader]

    whole = epoch(0)
    assert len(whole) == 5 and epoch(2) == whole
    for consumed in (1, 2):
        assert epoch(2, consumed) == whole[consumed:], consumed
