"""The audio-folder recipe end to end on real recordings (FSDD digits):
settings chosen from the data and overridable, the report, the model
folder that EncoderClassifier and the tag command load, multi-label
metadata, and a killed run that resumes to the same result.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest
from _resume import kill_after_first_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "AudioFolder")
FSDD = os.path.join(ROOT, "tests", "data", "real", "fsdd")
TINY = ["--embed_dim", "32", "--depth", "1", "--num_heads", "2",
        "--batch_size", "16", "--device", "cpu", "--noprogressbar"]  # fmt: skip
ENV = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


def _run(args, cwd=ROOT, ok=True):
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=ENV, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    if ok:
        assert result.returncode == 0, (
            result.stdout[-3000:] + result.stderr[-3000:]
        )
    return result


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """FSDD digits 0-2 of six speakers, one sub-folder per digit."""
    root = tmp_path_factory.mktemp("digits")
    for name in sorted(os.listdir(FSDD)):
        folder = root / name.split("_")[0]
        folder.mkdir(exist_ok=True)
        shutil.copy(os.path.join(FSDD, name), folder / name)
    return str(root)


def test_folder_trains_chooses_settings_and_reports(digits, tmp_path):
    out = tmp_path / "out"
    result = _run(
        [os.path.join(RECIPE, "train.py"), "--data_folder", digits,
         "--group_pattern", "_([a-z]+)_", "--output_folder", str(out),
         "--number_of_epochs", "2", "--norm_std", "5.0", *TINY]
    )  # fmt: skip
    chosen = json.loads((out / "chosen_settings.json").read_text())
    assert chosen["n_classes"]["value"] == 3
    assert chosen["multi_label"]["value"] is False
    assert chosen["loss"]["value"] == "ce"
    # FSDD clips last under 0.6 s: 64 frames, not 10 s of padding
    assert chosen["target_length"]["value"] == 64
    assert chosen["norm_std"] == {
        "value": 5.0,
        "why": "given on the command line",
    }
    assert "fbank statistics" in chosen["norm_mean"]["why"]
    assert "chosen: target_length = 64" in result.stdout + result.stderr
    # the report: the test split's clips, numbers in range, the picture
    report = json.loads((out / "report.json").read_text())
    with open(out / "save" / "test.csv") as f:
        test_rows = list(csv.DictReader(f))
    supports = [report["per_class"][c]["support"] for c in "012"]
    assert sum(supports) == len(test_rows)
    assert sum(map(sum, report["confusion"])) == len(test_rows)
    assert (out / "confusion.png").stat().st_size > 1000
    assert (
        "| class | precision | recall | F1 | clips |"
        in (out / "report.md").read_text()
    )
    assert "test acc" in (out / "train_log.txt").read_text()
    # the model folder: EncoderClassifier and the tag command
    clip = test_rows[0]["wav"]
    tagged = _run(
        ["-m", "speechbrain_ast.tag", "--model", str(out / "model"), clip,
         "--json"]
    )  # fmt: skip
    assert json.loads(tagged.stdout)["labels"][0]["label"] in "012"
    from speechbrain.inference.classifiers import EncoderClassifier

    model = EncoderClassifier.from_hparams(
        source=str(out / "model"), savedir=str(tmp_path / "saved")
    )
    assert model.hparams.label_encoder.lab2ind.keys() == {"0", "1", "2"}


def test_unusable_folder_is_one_line(tmp_path):
    (tmp_path / "data" / "dog").mkdir(parents=True)
    shutil.copy(
        os.path.join(FSDD, "0_george_1.flac"), tmp_path / "data" / "dog"
    )
    result = _run(
        [os.path.join(RECIPE, "train.py"), "--data_folder",
         str(tmp_path / "data"), "--output_folder", str(tmp_path / "out"),
         *TINY], ok=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"train.py: error: {tmp_path / 'data'} has one class only ('dog', "
        "1 clips): a classifier needs at least two."
    )


def test_metadata_multi_label(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rows = [["file", "labels", "speaker"]]
    for i, name in enumerate(sorted(os.listdir(FSDD))[::3]):
        shutil.copy(os.path.join(FSDD, name), data / name)
        digit, speaker, _ = name.split("_")
        rows.append([name, digit + (";odd" if i % 2 else ""), speaker])
    with open(data / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "out"
    _run(
        [os.path.join(RECIPE, "train.py"), "--data_folder", str(data),
         "--group_column", "speaker", "--output_folder", str(out),
         "--number_of_epochs", "1", *TINY]
    )  # fmt: skip
    chosen = json.loads((out / "chosen_settings.json").read_text())
    assert chosen["multi_label"]["value"] is True
    assert chosen["loss"]["value"] == "bce"
    assert "test mAP" in (out / "train_log.txt").read_text()
    report = json.loads((out / "report.json").read_text())
    assert set(report["per_class"]) == {"0", "1", "2", "odd"}


def test_killed_run_resumes_to_the_same_result(digits, tmp_path):
    args = [
        os.path.join(RECIPE, "train.py"), "--data_folder", digits,
        "--number_of_epochs", "2", "--ckpt_interval_steps", "1",
        "--export_model", "False", *TINY,
    ]  # fmt: skip
    whole = tmp_path / "whole"
    _run([*args, "--output_folder", str(whole)])
    out = tmp_path / "killed"
    cmd = [sys.executable, *args, "--output_folder", str(out)]
    needed = {"CKPT.yaml", "brain.ckpt", "optimizer.ckpt", "counter.ckpt"}
    kill_after_first_checkpoint(cmd, ROOT, ENV, out / "save", needed)
    assert not (out / "report.json").exists()
    _run(cmd[1:])
    assert "Loading a checkpoint from" in (out / "log.txt").read_text()
    assert (out / "report.json").read_text() == (
        whole / "report.json"
    ).read_text()
    assert (out / "train_log.txt").read_text() == (
        whole / "train_log.txt"
    ).read_text()


def test_csv_debug_row_runs_from_recipe_folder(tmp_path):
    """tests/recipes/AudioFolder.csv's debug flags (FSDD as it ships: the
    class and the speaker in the file names), run from inside the recipe
    folder; its file checks hold."""
    import re
    import shlex

    with open(os.path.join(ROOT, "tests", "recipes", "AudioFolder.csv")) as f:
        row = list(csv.DictReader(f))[0]
    flags = [
        flag.replace("=tests/", f"={ROOT}/tests/")
        for flag in shlex.split(row["test_debug_flags"])
    ]
    out = tmp_path / "out"
    _run(
        ["train.py", *flags, "--output_folder", str(out), "--device", "cpu",
         "--noprogressbar"],
        cwd=RECIPE,
    )  # fmt: skip
    files = re.search(r"file_exists=\[([^\]]*)\]", row["test_debug_checks"])
    for name in files.group(1).split(","):
        assert (out / name.strip()).is_file(), name
    with open(out / "save" / "classes.json") as f:
        assert json.load(f)["classes"] == ["0", "1", "2"]


def test_hub_id_fine_tunes_from_the_hub_cache(digits, tmp_path):
    """``--audioset_pretrain owner/name`` goes through SpeechBrain's fetch
    and huggingface_hub (offline, on a cache holding a transformers AST)."""
    from transformers import ASTConfig, ASTForAudioClassification

    from speechbrain_ast.testing.hub import write_hub_cache

    config = ASTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=128, max_length=128, num_labels=4,
    )  # fmt: skip
    ASTForAudioClassification(config).save_pretrained(tmp_path / "hf")
    repo = "MIT/ast-finetuned-audioset-10-10-0.4593"
    write_hub_cache(
        tmp_path / "hub", repo,
        {name: tmp_path / "hf" / name
         for name in ("config.json", "model.safetensors")},
    )  # fmt: skip
    out = tmp_path / "out"
    env = {**ENV, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, os.path.join(RECIPE, "train.py"),
         "--data_folder", digits, "--audioset_pretrain", repo,
         "--output_folder", str(out), "--number_of_epochs", "1", *TINY],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    fetched = out / "save" / "pretrained" / repo.replace("/", "--")
    assert sorted(os.listdir(fetched)) == ["config.json", "model.safetensors"]
    log = (out / "log.txt").read_text()
    assert f"AST initialised from: AudioSet checkpoint {fetched}" in log
    assert (out / "model" / "embedding_model.ckpt").exists()


def test_ssast_encoder_gives_the_shape_and_reference_settings(digits, tmp_path):
    """``--ssl_pretrain ENCODER`` alone: ssast_finetune.yaml, the lobe of
    the encoder's shape with the reference's fine-tuning strides, its
    weights as the starting point, the mean of the patch tokens."""
    import torch

    from speechbrain_ast.model.lobe import AST
    from speechbrain_ast.weights import save_ssast_encoder

    torch.manual_seed(3)
    encoder = AST(
        input_tdim=128, patch_size=(128, 2), fstride=128, tstride=2,
        embed_dim=48, depth=1, num_heads=3,
    )  # fmt: skip
    save_ssast_encoder(encoder, str(tmp_path / "ssast_encoder.pt"))
    out = tmp_path / "out"
    result = _run(
        [os.path.join(RECIPE, "train.py"), "--data_folder", digits,
         "--ssl_pretrain", str(tmp_path / "ssast_encoder.pt"),
         "--output_folder", str(out), "--number_of_epochs", "1",
         "--batch_size", "16", "--device", "cpu", "--noprogressbar"]
    )  # fmt: skip
    chosen = json.loads((out / "chosen_settings.json").read_text())
    shape = {k: chosen[k]["value"] for k in
             ("embed_dim", "depth", "num_heads", "patch_size", "fstride",
              "tstride")}  # fmt: skip
    assert shape == {
        "embed_dim": 48, "depth": 1, "num_heads": 3, "patch_size": [128, 2],
        "fstride": 128, "tstride": 1,
    }  # fmt: skip
    assert "SSAST encoder" in chosen["embed_dim"]["why"]
    assert "hparams/ssast_finetune.yaml" in result.stdout + result.stderr
    hparams = (out / "hyperparams.yaml").read_text()
    assert "lr: 0.00025" in hparams and "pooling: mean" in hparams
    log = (out / "log.txt").read_text()
    assert "AST initialised from: SSAST encoder" in log
    assert "pooling mean" in log
    model_yaml = (out / "model" / "hyperparams.yaml").read_text()
    assert "pooling: mean" in model_yaml
