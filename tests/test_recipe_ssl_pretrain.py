"""``--ssl_pretrain`` in the recipes: a run initialised from an SSAST
checkpoint (the published format, written here from random weights, or
our ``ssast_encoder.pt``) starts from exactly those encoder weights; at
other strides the positional embedding is the one ``load_ssast`` adapts;
a patch shape that does not fit is one line naming the flags to pass; the
precedence is AudioSet, then SSAST, then ImageNet.

The run trains for zero epochs, so the exported model folder holds the
weights as initialised.

Authors
 * speechbrain-ast developers
"""

import os
import subprocess
import sys

import pytest
import torch

from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.ssast.model import SSAST
from speechbrain_ast.testing.audioset import make_audioset
from speechbrain_ast.testing.esc50 import make_esc50
from speechbrain_ast.testing.speech_commands import make_speech_commands
from speechbrain_ast.weights import (
    init_from_pretrained,
    load_ssast,
    save_ssast_encoder,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--embed_dim", "64", "--depth", "1", "--num_heads", "1",
    "--imagenet_pretrain", "False", "--audioset_pretrain", "False",
    "--batch_size", "4", "--num_workers", "0", "--device", "cpu",
    "--noprogressbar", "--number_of_epochs", "0",
]  # fmt: skip


def _encoder(patch, tdim, seed):
    torch.manual_seed(seed)
    return AST(
        input_tdim=tdim,
        patch_size=patch,
        fstride=patch[0],
        tstride=patch[1],
        embed_dim=64,
        depth=1,
        num_heads=1,
    )


def _write_reference(path, encoder):
    """An SSAST checkpoint in the published layout (DataParallel
    ``module.v.*``, prediction heads, mask embedding, pretraining grid)."""
    model = SSAST(encoder, mask_patch=8)
    state = {
        "module." + k.replace("encoder.", "v.", 1): v.detach().clone()
        for k, v in model.state_dict().items()
    }
    assert "module.mask_embed" in state and "module.v.cls_token" in state
    state["module.p_input_fdim"] = torch.tensor(encoder.input_fdim)
    state["module.p_input_tdim"] = torch.tensor(encoder.input_tdim)
    torch.save(state, path)


def _run(recipe, args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    script = os.path.join(ROOT, "recipes", recipe, "train.py")
    return subprocess.run(
        [sys.executable, script, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _exported_lobe(out):
    return torch.load(
        os.path.join(out, "model", "embedding_model.ckpt"), weights_only=True
    )


def test_esc50_starts_from_the_published_format_weights(tmp_path):
    """16 x 16 patches at the pretraining strides and length: the lobe
    after initialisation is the checkpoint's encoder, tensor for tensor."""
    encoder = _encoder((16, 16), 64, seed=11)
    ckpt = tmp_path / "SSAST-Tiny-Patch.pth"
    _write_reference(ckpt, encoder)
    data = make_esc50(
        str(tmp_path / "esc"), n_classes=2, clips_per_fold=1, duration=0.3
    )
    out = str(tmp_path / "out")
    proc = _run(
        "ESC50",
        ["hparams/ast_scratch.yaml", "--data_folder", data,
         "--output_folder", out, "--n_classes", "2", "--target_length", "64",
         "--fstride", "16", "--tstride", "16", "--ssl_pretrain", str(ckpt),
         *TINY],
        str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"AST initialised from: SSAST encoder {ckpt}" in proc.stdout
    got = _exported_lobe(out)
    want = encoder.state_dict()
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert torch.equal(got[key], value), key


def test_speech_commands_starts_from_our_encoder_file(tmp_path):
    """Our ssast_encoder.pt with 128 x 2 frame patches; without a yaml the
    recipe fine-tunes it as the SSAST reference does (ssast_frame.yaml:
    the mean of the patch tokens), and the model folder keeps that."""
    encoder = _encoder((128, 2), 128, seed=12)
    ckpt = tmp_path / "ssast_encoder.pt"
    save_ssast_encoder(encoder, str(ckpt))
    data = make_speech_commands(
        str(tmp_path / "sc"), words=("yes", "no"), speakers_per_word=3,
        all_folders=False,
    )  # fmt: skip
    out = str(tmp_path / "out")
    proc = _run(
        "SpeechCommands",
        ["--data_folder", data, "--output_folder", out, "--n_classes", "2",
         "--tstride", "2", "--ssl_pretrain", str(ckpt), *TINY],
        str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"SSAST encoder {ckpt}; pooling mean" in proc.stdout
    with open(os.path.join(out, "hyperparams.yaml")) as f:
        assert "warmup_steps: 1000" in f.read()  # ssast_frame.yaml's
    with open(os.path.join(out, "model", "hyperparams.yaml")) as f:
        assert "pooling: mean" in f.read()
    got = _exported_lobe(out)
    for key, value in encoder.state_dict().items():
        assert torch.equal(got[key], value), key


def test_audioset_adapts_to_the_fine_tuning_strides(tmp_path):
    """Pretrained at stride 16, fine-tuned at the yaml's stride 10: every
    weight but the positional embedding is the checkpoint's; that one is
    what load_ssast gives an independently built lobe."""
    encoder = _encoder((16, 16), 128, seed=13)
    ckpt = tmp_path / "SSAST-Tiny-Patch.pth"
    _write_reference(ckpt, encoder)
    data = make_audioset(str(tmp_path / "as"), n_classes=3, duration=0.3)
    out = str(tmp_path / "out")
    proc = _run(
        "AudioSet",
        ["hparams/ast_balanced.yaml", "--data_folder", data,
         "--output_folder", out, "--n_classes", "3", "--target_length", "100",
         "--ssl_pretrain", str(ckpt), "--weight_averaging", "False", *TINY],
        str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = _exported_lobe(out)
    expected = AST(input_tdim=100, embed_dim=64, depth=1, num_heads=1)
    load_ssast(expected, str(ckpt))
    assert got["pos_embed"].shape == (1, 2 + 12 * 9, 64)
    for key, value in expected.state_dict().items():
        assert torch.equal(got[key], value), key
    for key, value in encoder.state_dict().items():
        if key != "pos_embed":
            assert torch.equal(got[key], value), key


def test_patch_shape_mismatch_names_the_flags(tmp_path):
    ckpt = tmp_path / "SSAST-Tiny-Frame.pth"
    _write_reference(ckpt, _encoder((128, 2), 64, seed=14))
    data = make_esc50(
        str(tmp_path / "esc"), n_classes=2, clips_per_fold=1, duration=0.3
    )
    proc = _run(
        "ESC50",
        ["hparams/ast_scratch.yaml", "--data_folder", data,
         "--output_folder", str(tmp_path / "out"), "--n_classes", "2",
         "--target_length", "64", "--ssl_pretrain", str(ckpt), *TINY],
        str(tmp_path),
    )  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("train.py: error: ")
    assert "pretrained with 128 x 2 patches" in line
    assert "has 16 x 16" in line
    assert 'pass --patch_size "[128,2]" --fstride 128 --tstride 1' in line


def test_precedence_and_missing_file(tmp_path):
    """AudioSet before SSAST before ImageNet; a missing path is named."""
    encoder = _encoder((16, 16), 64, seed=15)
    ckpt = tmp_path / "ssast.pth"
    _write_reference(ckpt, encoder)
    torch.manual_seed(16)  # the reference AudioSet layout: 1024 frames
    audioset = AST(input_tdim=1024, embed_dim=64, depth=1, num_heads=1)
    sup = {f"module.v.{k}": v for k, v in audioset.state_dict().items()}
    head = ASTHead(64, 3).state_dict()
    sup.update({f"module.mlp_head.{k}": v for k, v in head.items()})
    sup_path = tmp_path / "audioset.pth"
    torch.save(sup, sup_path)

    lobe = AST(input_tdim=64, embed_dim=64, depth=1, num_heads=1)
    # an ImageNet name that would fail to load: never reached
    what = init_from_pretrained(
        lobe, ssl_pretrain=str(ckpt), imagenet_pretrain="no_such_deit"
    )
    # SSAST fine-tunes on the mean of the patch tokens, as its reference
    assert what == f"SSAST encoder {ckpt}; pooling mean"
    assert lobe.pooling == lobe.config["pooling"] == "mean"
    assert torch.equal(lobe.cls_token, encoder.cls_token)
    what = init_from_pretrained(
        lobe,
        audioset_pretrain=str(sup_path),
        ssl_pretrain=str(ckpt),
        imagenet_pretrain="no_such_deit",
    )
    assert what.startswith("AudioSet checkpoint")
    assert what.endswith("; pooling cls")
    assert lobe.pooling == "cls"
    assert torch.equal(lobe.cls_token, audioset.cls_token)
    # the yaml's choice wins
    init_from_pretrained(lobe, ssl_pretrain=str(ckpt), pooling="cls")
    assert lobe.pooling == "cls"
    with pytest.raises(FileNotFoundError, match="ssl_pretrain='/nope.pth'"):
        init_from_pretrained(lobe, ssl_pretrain="/nope.pth")
