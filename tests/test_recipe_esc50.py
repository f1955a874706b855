"""ESC-50 recipe on a generated mini dataset: preparation and a debug run.

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
from _resume import copy_without, kill_after_first_checkpoint

from recipes.ESC50.esc50_prepare import prepare_esc50
from speechbrain_ast.data.audio import AudioError
from speechbrain_ast.testing.esc50 import make_esc50

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "ESC50")
TINY = [
    "--embed_dim", "64", "--depth", "2", "--num_heads", "2",
    "--imagenet_pretrain", "False", "--audioset_pretrain", "False",
    "--n_classes", "3", "--target_length", "64", "--batch_size", "4",
    "--num_workers", "0", "--device", "cpu", "--noprogressbar",
]  # fmt: skip


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    root = tmp_path_factory.mktemp("esc50") / "ESC-50-master"
    return str(
        make_esc50(str(root), n_classes=3, clips_per_fold=1, duration=0.7)
    )


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_prepare_writes_folds_and_is_idempotent(esc50, tmp_path):
    out = str(tmp_path / "save")
    manifests = prepare_esc50(esc50, out, [1, 2, 3], [4], [5])
    train = _rows(manifests["train"])
    assert sorted({r["fold"] for r in train}) == ["1", "2", "3"]
    assert len(train) == 9 and len(_rows(manifests["test"])) == 3
    assert {r["fold"] for r in _rows(manifests["valid"])} == {"4"}
    first = train[0]
    assert os.path.isfile(first["wav"]) and first["wav"].startswith(esc50)
    assert first["class_index"] == first["ID"].split("-")[-1]
    # nothing written inside the dataset
    assert sorted(os.listdir(esc50)) == ["audio", "meta"]
    # a second identical call skips: the manifests are not rewritten
    mtime = os.path.getmtime(manifests["train"])
    prepare_esc50(esc50, out, [1, 2, 3], [4], [5])
    assert os.path.getmtime(manifests["train"]) == mtime
    # other folds rebuild
    prepare_esc50(esc50, out, [2, 3, 4], [5], [1])
    assert {r["fold"] for r in _rows(manifests["test"])} == {"1"}
    with open(os.path.join(out, "prepare_options.json")) as f:
        assert json.load(f)["test_fold_nums"] == [1]


def test_other_dataset_into_same_folder_is_refused(esc50, tmp_path):
    out = str(tmp_path / "save")
    prepare_esc50(esc50, out)
    other = make_esc50(
        str(tmp_path / "other"), n_classes=2, clips_per_fold=1, duration=0.3
    )
    with pytest.raises(ValueError, match="another output folder"):
        prepare_esc50(other, out)


def test_bad_files_are_all_reported_by_name(tmp_path):
    data = make_esc50(
        str(tmp_path / "data"), n_classes=2, clips_per_fold=1, duration=0.3
    )
    audio = os.path.join(data, "audio")
    names = sorted(os.listdir(audio))
    open(os.path.join(audio, names[0]), "w").close()  # empty
    with open(os.path.join(audio, names[1]), "w") as f:
        f.write("not audio at all")
    os.remove(os.path.join(audio, names[2]))
    with pytest.raises(AudioError) as err:
        prepare_esc50(data, str(tmp_path / "save"))
    message = str(err.value)
    assert "3 of 10" in message
    for name in names[:3]:
        assert name in message
    assert not os.path.exists(tmp_path / "save" / "prepare_options.json")


def test_missing_dataset_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta/esc50.csv"):
        prepare_esc50(str(tmp_path / "nothing"), str(tmp_path / "s"),
                      download=False)  # fmt: skip


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_csv_debug_row_runs_from_recipe_folder(esc50, tmp_path):
    """tests/recipes/ESC50.csv's debug flags (on the generated dataset),
    run from inside the recipe folder; its file checks hold."""
    with open(os.path.join(ROOT, "tests", "recipes", "ESC50.csv")) as f:
        row = list(csv.DictReader(f))[0]
    flags = [
        f"--data_folder={esc50}" if flag.startswith("--data_folder=") else flag
        for flag in shlex.split(row["test_debug_flags"])
    ]
    out = tmp_path / "out"
    _run(
        [sys.executable, os.path.basename(row["Script_file"]),
         os.path.relpath(os.path.join(ROOT, row["Hparam_file"]), RECIPE),
         *flags, "--output_folder", str(out), "--debug", "--device", "cpu",
         "--noprogressbar"],
        cwd=RECIPE,
    )  # fmt: skip
    files = re.search(r"file_exists=\[([^\]]*)\]", row["test_debug_checks"])
    for name in files.group(1).split(","):
        assert (out / name.strip()).is_file(), name
    log = (out / "train_log.txt").read_text()
    test_line = [line for line in log.splitlines() if "test acc" in line]
    assert len(test_line) == 1
    acc = float(test_line[0].split("test acc:")[1].split()[0])
    assert 0.0 <= acc <= 1.0


def test_cross_validation_summary_picks_fold_averaged_epoch(tmp_path):
    from recipes.ESC50.cross_validate import summarize, write_report

    accs = {1: [0.5, 0.9, 0.6], 2: [0.6, 0.7, 0.95], 3: [0.4, 0.8, 0.7]}
    folders = {}
    for fold, values in accs.items():
        folders[fold] = str(tmp_path / f"fold{fold}")
        os.makedirs(folders[fold])
        with open(os.path.join(folders[fold], "metrics.jsonl"), "w") as f:
            for epoch, acc in enumerate(values, 1):
                f.write(
                    json.dumps({"stage": "valid", "epoch": epoch, "acc": acc})
                )
                f.write("\n")
            f.write(json.dumps({"stage": "valid", "epoch": 3, "acc": 0.75}))
    result = summarize(folders)
    # epoch means: 0.5, 0.8, (0.75 + 0.95 + 0.7) / 3 = 0.8 -> ties: earlier
    assert result["best_epoch"] == 2
    assert result["per_fold"] == {1: 0.9, 2: 0.7, 3: 0.8}
    assert abs(result["mean"] - 0.8) < 1e-12
    assert abs(result["std"] - (0.02 / 3) ** 0.5) < 1e-12
    assert result["last_per_fold"][1] == 0.75  # the resumed run's record
    assert "80.0 +- 8.2% (epoch 2)" in write_report(result, str(tmp_path))


def _kill_and_resume(esc50, tmp_path, options, keep=None):
    """An uninterrupted two-epoch run, and the same run SIGKILLed after its
    first intra-epoch checkpoint (every step is one) and started again
    with the same command. Returns the two output folders, the meta of the
    checkpoint the restart loaded and the command; ``keep``: a folder for
    a copy of the killed run's output, without its random_state.ckpt."""
    args = [
        sys.executable, os.path.join(RECIPE, "train.py"), "hparams/ast.yaml",
        "--data_folder", esc50, *TINY, "--number_of_epochs", "2",
        "--lr", "1e-3", "--train_fold_nums", "[1, 2, 3]",
        "--valid_fold_nums", "[4]", "--test_fold_nums", "[5]",
        "--ckpt_interval_steps", "1", "--export_model", "False", *options,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    _run([*args, "--output_folder", str(whole)], cwd=ROOT)

    out = tmp_path / "killed"
    cmd = [*args, "--output_folder", str(out)]
    needed = {"CKPT.yaml", "brain.ckpt", "optimizer.ckpt", "counter.ckpt"}
    meta = kill_after_first_checkpoint(cmd, ROOT, env, out / "save", needed)
    assert not (out / "test_predictions.pt").exists()
    if keep is not None:
        copy_without(out, keep, "random_state.ckpt")
    _run(cmd, cwd=ROOT)
    assert "Loading a checkpoint from" in (out / "log.txt").read_text()
    return whole, out, meta, cmd


def _predictions(folder):
    import torch

    return torch.load(folder / "test_predictions.pt", weights_only=True)


def test_killed_run_resumes_to_the_same_result(esc50, tmp_path):
    """SIGKILL after the first intra-epoch checkpoint, start again: the
    result equals an uninterrupted run's (no augmentation, same seed)."""
    import torch

    whole, out, _, _ = _kill_and_resume(
        esc50, tmp_path, ["--freqm", "0", "--timem", "0"]
    )
    whole, resumed = _predictions(whole), _predictions(out)
    assert whole["ids"] == resumed["ids"]
    torch.testing.assert_close(resumed["scores"], whole["scores"])


def test_killed_run_with_augmentation_resumes_to_the_same_result(
    esc50, tmp_path
):
    """Mixup and SpecAugment on: killed mid-epoch and started again, the
    run ends with the uninterrupted run's test scores bit for bit (the
    random state is in the checkpoint). The same checkpoint without its
    random_state.ckpt (as saved before it existed) still loads, with a
    warning, and then ends with other scores: the draws matter."""
    import torch

    options = ["--mixup_prob", "0.5", "--freqm", "8", "--timem", "16"]
    old = tmp_path / "old_checkpoint"
    whole, out, meta, cmd = _kill_and_resume(esc50, tmp_path, options, old)
    assert meta["end-of-epoch"] is False  # resumed mid-epoch
    expected, resumed = _predictions(whole), _predictions(out)
    assert expected["ids"] == resumed["ids"]
    assert torch.equal(resumed["scores"], expected["scores"])
    # the same validation and test lines (loss, accuracy, lr per epoch)
    assert (out / "train_log.txt").read_text() == (
        whole / "train_log.txt"
    ).read_text()

    result = _run([*cmd[:-1], str(old)], cwd=ROOT)
    assert "saved without the random state" in result.stderr
    assert not torch.equal(_predictions(old)["scores"], expected["scores"])


def test_compile_run_option_trains_and_exports_plain_weights(esc50, tmp_path):
    """SpeechBrain's ``--compile`` run option (torch.compile of the Brain's
    modules) works with the recipe: training, test and the exported folder,
    whose checkpoints hold the plain module's keys (no ``_orig_mod.``
    prefix), so ``EncoderClassifier.from_hparams`` loads them."""
    import torch

    from speechbrain.inference.classifiers import EncoderClassifier

    out = tmp_path / "out"
    result = _run(
        [sys.executable, os.path.join(RECIPE, "train.py"),
         "hparams/ast.yaml", *TINY,
         "--data_folder", esc50, "--output_folder", str(out),
         "--number_of_epochs", "1", "--debug", "--compile"],
        cwd=ROOT,
    )  # fmt: skip
    assert "test acc" in (out / "train_log.txt").read_text()
    # SpeechBrain only warns when a module fails to compile, and goes on
    said = result.stdout + result.stderr + (out / "log.txt").read_text()
    assert "failed to compile" not in said
    for name in ("embedding_model", "classifier"):
        state = torch.load(out / "model" / f"{name}.ckpt", weights_only=True)
        assert not [k for k in state if "_orig_mod" in k], name
    model = EncoderClassifier.from_hparams(
        source=str(out / "model"), savedir=str(tmp_path / "saved")
    )
    assert model.classify_batch(torch.randn(1, 8000) * 0.1)[0].shape == (1, 3)


def test_soft_target_cross_entropy_is_torchs():
    """The recipes' ``loss: ce``: PyTorch's cross-entropy with class
    probabilities as targets (one-hot or mixed by mixup) is
    ``-sum(targets * log_softmax(logits))`` averaged over the batch."""
    import torch

    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    targets = torch.softmax(torch.randn(6, 5), dim=-1)
    expected = -(targets * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    loss = torch.nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(loss, expected)
