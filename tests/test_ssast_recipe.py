"""The SSAST pretraining recipe on five real spoken-digit clips (FSDD, in
tests/data/ssast): a tiny encoder is pretrained, written, loaded for
fine-tuning; a stopped run resumes at the next epoch; bad input is named.

Authors
 * speechbrain-ast developers
"""

import csv
import os
import runpy
import subprocess
import sys

import pytest
import torch

from recipes.SSAST.pretrain import SSASTBrain, list_clips
from speechbrain_ast.data.audio import AudioError
from speechbrain_ast.model.lobe import AST
from speechbrain_ast.weights import load_ssast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "SSAST")
CLIPS = os.path.join(ROOT, "tests", "data", "ssast")
TINY = [
    "--embed_dim", "32", "--depth", "1", "--num_heads", "2",
    "--target_length", "64", "--mask_patch", "10", "--batch_size", "2",
    "--num_workers", "0", "--device", "cpu", "--noprogressbar",
]  # fmt: skip


def _run(args):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, os.path.join(RECIPE, "pretrain.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _epoch_lines(out):
    log = (out / "train_log.txt").read_text().splitlines()
    return [line.split(",")[0] for line in log if line.startswith("epoch:")]


def test_pretraining_on_a_folder_writes_a_loadable_encoder(tmp_path):
    out = tmp_path / "out"
    _run(["hparams/ssast_small.yaml", "--data_folder", CLIPS,
          "--output_folder", str(out), "--number_of_epochs", "1",
          "--valid_fraction", "0.2", *TINY])  # fmt: skip
    assert _epoch_lines(out) == ["epoch: 1"]
    log = (out / "train_log.txt").read_text()
    assert "valid acc" in log and "train mpg" in log
    assert "4 for training, 1 held out" in (out / "log.txt").read_text()
    saved = torch.load(out / "ssast_encoder.pt", weights_only=True)
    assert saved["config"]["patch_size"] == [128, 2]
    # the encoder written is the last checkpoint's
    [ckpt] = (out / "save").glob("CKPT+*")
    model_state = torch.load(ckpt / "ssast_model.ckpt", weights_only=True)
    for key, value in saved["state_dict"].items():
        assert torch.equal(value, model_state[f"encoder.{key}"]), key
    # fine-tuning lobe: frame patches at stride 1 over 100 frames
    lobe = AST(
        input_tdim=100, patch_size=(128, 2), fstride=128, tstride=1,
        embed_dim=32, depth=1, num_heads=2,
    )  # fmt: skip
    load_ssast(lobe, out / "ssast_encoder.pt")
    assert torch.equal(
        lobe.blocks[0].mlp.fc1.weight,
        saved["state_dict"]["blocks.0.mlp.fc1.weight"],
    )
    assert lobe(torch.randn(2, 100, 128)).shape == (2, 32)


def test_stopped_run_resumes_at_the_next_epoch(tmp_path):
    """Run 1 epoch; the same command with 2 epochs loads its checkpoint
    and trains epoch 2 only. A CSV manifest with relative paths."""
    manifest = tmp_path / "unlabelled.csv"
    rel = os.path.relpath(CLIPS, tmp_path)
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["wav", "duration"])
        for name in ("0_jackson_0.flac", "3_theo_1.flac", "5_yweweler_3.flac"):
            writer.writerow([os.path.join(rel, name), "0.5"])
        writer.writerow([os.path.join(rel, "more", "7_nicolas_2.flac"), "0.5"])
    out = tmp_path / "out"
    args = ["hparams/ssast_small.yaml", "--train_manifest", str(manifest),
            "--output_folder", str(out), "--valid_fraction", "0", *TINY,
            "--fshape", "16", "--tshape", "16"]  # fmt: skip
    _run([*args, "--number_of_epochs", "1"])
    first = torch.load(out / "ssast_encoder.pt", weights_only=True)
    assert first["config"]["patch_size"] == [16, 16]
    _run([*args, "--number_of_epochs", "2"])
    log = (out / "log.txt").read_text()
    assert "Loading a checkpoint from" in log
    assert log.count("Going into epoch 1") == 1
    assert log.count("Going into epoch 2") == 1
    assert _epoch_lines(out) == ["epoch: 1", "epoch: 2"]
    second = torch.load(out / "ssast_encoder.pt", weights_only=True)
    changed = [
        k
        for k in first["state_dict"]
        if not torch.equal(first["state_dict"][k], second["state_dict"][k])
    ]
    assert changed  # epoch 2 trained on from epoch 1's weights


def test_clip_sources_and_bad_input_are_named(tmp_path):
    folder = {"train_manifest": None, "data_folder": CLIPS, "num_workers": 1}
    clips = list_clips(folder)
    assert len(clips) == 5 and "more/9_george_4.flac" in clips
    with pytest.raises(ValueError, match="exactly one of --train_manifest"):
        list_clips({**folder, "train_manifest": "x.csv"})
    with pytest.raises(ValueError, match="exactly one of --train_manifest"):
        list_clips({**folder, "data_folder": None})
    no_wav = tmp_path / "no_wav.csv"
    no_wav.write_text("path\na.wav\n")
    with pytest.raises(ValueError, match="no 'wav' column"):
        list_clips(
            {**folder, "data_folder": None, "train_manifest": str(no_wav)}
        )
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_clips({**folder, "data_folder": str(tmp_path / "nowhere")})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.wav").write_bytes(b"RIFF not really")
    (bad / "notes.txt").write_text("not audio, not listed")
    with pytest.raises(AudioError, match="broken.wav"):
        list_clips({**folder, "data_folder": str(bad)})
    (bad / "broken.wav").unlink()
    with pytest.raises(ValueError, match="no audio in"):
        list_clips({**folder, "data_folder": str(bad)})


def test_lr_schedule_is_warmup_then_halving_on_plateau():
    """The recipe's learning rates, step by step: the linear warm-up, then
    torch's ReduceLROnPlateau on the accuracy equals the reference's rule
    (halve after more than ``patience`` epochs without a strict increase)."""
    lr, warmup, patience, steps_per_epoch = 1e-3, 3, 2, 2
    scores = [0.1, 0.3, 0.2, 0.25, 0.3, 0.28, 0.5, 0.4, 0.4, 0.4, 0.4]
    brain = SSASTBrain(
        modules={"m": torch.nn.Linear(1, 1)},
        opt_class=lambda params: torch.optim.Adam(params, lr=lr),
        hparams={
            "lr": lr, "warmup_steps": warmup, "lr_factor": 0.5,
            "lr_patience": patience,
        },
        run_opts={"device": "cpu"},
    )  # fmt: skip
    brain.init_optimizers()
    ours, reference = [], []
    best, bad, scale = -float("inf"), 0, 1.0
    for epoch, score in enumerate(scores):
        for k in range(steps_per_epoch):
            brain.optimizer_step = epoch * steps_per_epoch + k
            brain.on_fit_batch_start(None, should_step=True)
            ours.append(brain.optimizer.param_groups[0]["lr"])
            step = brain.optimizer_step + 1
            reference.append(lr * min(1.0, step / warmup) * scale)
        brain.lr_plateau.step(score)
        if score > best:
            best, bad = score, 0
        else:
            bad += 1
            if bad > patience:
                scale, bad = scale * 0.5, 0
    assert scale < 1.0  # the scores plateaued: the test shows a halving
    assert ours == pytest.approx(reference, rel=1e-12)


def test_yaml_keys_are_used_by_the_script():
    """Upstream SpeechBrain's consistency check, where its copy is at hand."""
    utils = os.path.join(
        ROOT, "..", "shared", "upstream-speechbrain", "tests", "utils"
    )
    if not os.path.isfile(os.path.join(utils, "check_yaml.py")):
        pytest.skip("upstream SpeechBrain's tests/utils are not here")
    check_yaml = runpy.run_path(os.path.join(utils, "check_yaml.py"))
    check_yaml_vs_script = check_yaml["check_yaml_vs_script"]
    for name in ("ssast_small.yaml", "ssast_base.yaml"):
        assert check_yaml_vs_script(
            os.path.join(RECIPE, "hparams", name),
            os.path.join(RECIPE, "pretrain.py"),
        ), name


def test_two_process_ddp_run_writes_the_encoder(tmp_path):
    """torchrun with 2 CPU processes (gloo): one encoder file, one log."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         os.path.join(RECIPE, "pretrain.py"), "hparams/ssast_small.yaml",
         "--data_folder", CLIPS, "--output_folder", str(out),
         "--number_of_epochs", "1", "--valid_fraction", "0.2", *TINY,
         "--distributed_backend", "gloo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert _epoch_lines(out) == ["epoch: 1"]
    saved = torch.load(out / "ssast_encoder.pt", weights_only=True)
    assert saved["config"]["embed_dim"] == 32
