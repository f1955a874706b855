"""Tests of weight import: timm DeiT, reference .pth and HF transformers.

Every import is checked against something we did not write: timm's DeiT
tensors, HuggingFace's ASTForAudioClassification logits, and the reference
positional-embedding rule transcribed here.

Authors
 * speechbrain-ast developers
"""

import dataclasses
import logging
import os
import pathlib

import pytest
import timm
import torch
from safetensors.torch import load_file

from speechbrain_ast.features import DATASET_STATS
from speechbrain_ast.model.lobe import AST
from speechbrain_ast.weights import (
    PUBLISHED_STRIDES,
    ImportedAST,
    build_from_checkpoint,
    deit_state_dict_for_ast,
    load_deit,
    read_hf_checkpoint,
    read_reference_checkpoint,
)

TINY_DEIT = "deit_tiny_distilled_patch16_224"


def reference_pos(pos, src, dst, mode="bilinear"):
    """Reference rule: [1, 2 + N, D] -> tokens + adapted grid (time first)."""
    tokens, patches = pos[:, :2], pos[:, 2:]
    dim = pos.shape[-1]
    image = patches.transpose(1, 2).reshape(1, dim, src[0], src[1])
    if dst[1] <= src[1]:
        start = int(src[1] / 2) - int(dst[1] / 2)
        image = image[:, :, :, start : start + dst[1]]
    else:
        image = torch.nn.functional.interpolate(
            image, size=(src[0], dst[1]), mode=mode
        )
    if dst[0] <= src[0]:
        start = int(src[0] / 2) - int(dst[0] / 2)
        image = image[:, :, start : start + dst[0], :]
    else:
        image = torch.nn.functional.interpolate(
            image, size=(dst[0], dst[1]), mode=mode
        )
    flat = image.reshape(1, dim, dst[0] * dst[1]).transpose(1, 2)
    return torch.cat([tokens, flat], dim=1)


def perturb_(module, seed):
    """Random values everywhere (LayerNorms and zero-initialised tokens too)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            noise = torch.randn(param.shape, generator=gen)
            param.add_(0.05 * noise)


# ---------------------------------------------------------------------------
# ImageNet DeiT via timm
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deit_tiny(tmp_path_factory):
    torch.manual_seed(0)
    deit = timm.create_model(TINY_DEIT, pretrained=False, depth=2)
    perturb_(deit, 1)
    path = tmp_path_factory.mktemp("deit") / "deit_tiny.pth"
    torch.save(deit.state_dict(), path)
    return {k: v.clone() for k, v in deit.state_dict().items()}, path


def tiny_lobe(input_tdim=1024, depth=2):
    return AST(input_tdim=input_tdim, embed_dim=192, depth=depth, num_heads=3)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_load_deit_tiny_every_tensor(deit_tiny, reduction):
    state, path = deit_tiny
    lobe = load_deit(
        tiny_lobe(),
        TINY_DEIT,
        checkpoint=path,
        channel_reduction=reduction,
    )
    got = lobe.state_dict()
    rgb = state["patch_embed.proj.weight"]
    assert rgb.shape[1] == 3
    conv = rgb.sum(1, keepdim=True) if reduction == "sum" else rgb.mean(1)
    torch.testing.assert_close(
        got["patch_embed.proj.weight"], conv.reshape(192, 1, 16, 16)
    )
    # DeiT-224: 14 x 14 grid -> 12 x 101 (time interpolated, rows 1..12)
    want_pos = reference_pos(state["pos_embed"], (14, 14), (12, 101))
    torch.testing.assert_close(got["pos_embed"], want_pos, rtol=0, atol=0)
    unchanged = [k for k in got if k not in ("pos_embed",)]
    unchanged.remove("patch_embed.proj.weight")
    assert "dist_token" in unchanged and "blocks.1.mlp.fc2.weight" in unchanged
    for key in unchanged:
        assert torch.equal(got[key], state[key]), key
    # ImageNet heads are gone
    assert not [k for k in got if k.startswith("head")]


def test_load_deit_384_grid_and_old_name(tmp_path):
    # DeiT-B 384 (the paper's choice) with one block: a 24 x 24 grid
    torch.manual_seed(0)
    deit = timm.create_model(
        "deit_base_distilled_patch16_384", pretrained=False, depth=1
    )
    path = tmp_path / "deit_b384.pth"
    torch.save(deit.state_dict(), path)
    lobe = AST(input_tdim=1024, embed_dim=768, depth=1, num_heads=12)
    load_deit(lobe, "vit_deit_base_distilled_patch16_384", checkpoint=path)
    pos = deit.pos_embed.detach()
    assert pos.shape == (1, 2 + 24 * 24, 768)
    # the paper's case by hand: time 24 -> 101 bilinear, rows 6..17 kept
    image = pos[:, 2:].transpose(1, 2).reshape(1, 768, 24, 24)
    wide = torch.nn.functional.interpolate(
        image, size=(24, 101), mode="bilinear", align_corners=False
    )
    want = wide[:, :, 6:18].reshape(1, 768, 1212).transpose(1, 2)
    torch.testing.assert_close(lobe.pos_embed[:, 2:].detach(), want)
    torch.testing.assert_close(lobe.pos_embed[:, :2].detach(), pos[:, :2])


def test_load_deit_nearest_and_reinit(deit_tiny):
    state, path = deit_tiny
    lobe = load_deit(tiny_lobe(512), TINY_DEIT, path, pos_embed="nearest")
    want = reference_pos(state["pos_embed"], (14, 14), (12, 50), "nearest")
    torch.testing.assert_close(lobe.pos_embed.detach(), want, rtol=0, atol=0)

    lobe = tiny_lobe(128)
    fresh = lobe.pos_embed.detach().clone()
    load_deit(lobe, TINY_DEIT, path, pos_embed="reinit")
    assert torch.equal(lobe.pos_embed.detach(), fresh)
    assert torch.equal(lobe.cls_token.detach(), state["cls_token"])


def test_load_deit_offline_without_file(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub

    # no network and an empty cache: timm must fail fast, we explain
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RuntimeError, match="checkpoint=PATH") as error:
        load_deit(tiny_lobe(128), TINY_DEIT)
    assert TINY_DEIT in str(error.value)


def test_load_deit_errors(deit_tiny, tmp_path):
    state, path = deit_tiny
    with pytest.raises(ValueError, match="not a distilled DeiT"):
        load_deit(tiny_lobe(), "deit_tiny_patch16_224", checkpoint=path)
    with pytest.raises(ValueError, match="channel_reduction"):
        load_deit(tiny_lobe(), TINY_DEIT, path, channel_reduction="max")
    with pytest.raises(ValueError, match="embed_dim=192.*tiny"):
        lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2)
        load_deit(lobe, TINY_DEIT, checkpoint=path)
    with pytest.raises(ValueError, match="patch_size=16"):
        lobe = AST(
            input_tdim=128, patch_size=(16, 8), embed_dim=192, depth=2,
            num_heads=3,
        )  # fmt: skip
        load_deit(lobe, TINY_DEIT, checkpoint=path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_deit(tiny_lobe(), TINY_DEIT, checkpoint=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="does not fit timm's"):
        load_deit(tiny_lobe(128, depth=3), TINY_DEIT, checkpoint=path)
    plain = timm.create_model("deit_tiny_patch16_224", depth=1)
    with pytest.raises(ValueError, match="dist_token"):
        deit_state_dict_for_ast(plain.state_dict(), tiny_lobe(128, depth=1))
    with pytest.raises(ValueError, match="blocks do not match"):
        deit_state_dict_for_ast(state, tiny_lobe(128, depth=3))


# ---------------------------------------------------------------------------
# HuggingFace transformers folders and reference checkpoints
# ---------------------------------------------------------------------------

HF_CONFIGS = {
    "square": dict(max_length=128),
    "strides_10_12": dict(max_length=200, frequency_stride=10, time_stride=12),
}


@pytest.fixture(scope="module", params=sorted(HF_CONFIGS))
def hf_folder(request, tmp_path_factory):
    from transformers import (
        ASTConfig,
        ASTFeatureExtractor,
        ASTForAudioClassification,
    )

    labels = ["dog", "rain", "siren", "speech", "water"]
    config = ASTConfig(
        hidden_size=128,  # 2 heads of 64, as AST-Base's
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        num_labels=5,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        **HF_CONFIGS[request.param],
    )
    torch.manual_seed(0)
    model = ASTForAudioClassification(config)
    perturb_(model, 2)
    folder = tmp_path_factory.mktemp(f"hf_{request.param}")
    model.save_pretrained(folder)
    ASTFeatureExtractor(mean=-6.5, std=5.25).save_pretrained(folder)
    return folder, config, labels


def hf_logits(folder, feats, attn_implementation="sdpa"):
    from transformers import ASTForAudioClassification

    model = ASTForAudioClassification.from_pretrained(
        folder, attn_implementation=attn_implementation
    ).eval()
    with torch.no_grad():
        return model(input_values=feats).logits


def our_logits(lobe, head, feats):
    with torch.no_grad():
        return head(lobe(feats))


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_hf_logits_equal(hf_folder, attn):
    folder, config, labels = hf_folder
    lobe, head, imported = build_from_checkpoint(folder)
    assert imported.labels == labels
    assert imported.norm_stats == (-6.5, 5.25)
    assert imported.target_length == config.max_length
    assert lobe.fstride == config.frequency_stride
    assert lobe.tstride == config.time_stride
    feats = torch.randn(3, config.max_length, 128)
    want = hf_logits(folder, feats, attn)
    got = our_logits(lobe, head, feats)
    # measured: 0 with sdpa, <= 5e-7 with eager
    assert (got - want).abs().max() <= 1e-5
    assert want.abs().max() > 0.1  # not a trivially small output


def hf_to_reference(hf_state, depth):
    """The reference checkpoint layout, written independently of the lib."""
    ref = {}
    base = "audio_spectrogram_transformer."
    emb = base + "embeddings."
    ref["module.v.cls_token"] = hf_state[emb + "cls_token"]
    ref["module.v.dist_token"] = hf_state[emb + "distillation_token"]
    ref["module.v.pos_embed"] = hf_state[emb + "position_embeddings"]
    for p in ("weight", "bias"):
        proj = emb + "patch_embeddings.projection."
        ref[f"module.v.patch_embed.proj.{p}"] = hf_state[proj + p]
        ref[f"module.v.norm.{p}"] = hf_state[base + "layernorm." + p]
        ref[f"module.mlp_head.0.{p}"] = hf_state["classifier.layernorm." + p]
        ref[f"module.mlp_head.1.{p}"] = hf_state["classifier.dense." + p]
        for n in range(depth):
            layer = f"{base}encoder.layer.{n}."
            ours = f"module.v.blocks.{n}."
            qkv = [
                hf_state[f"{layer}attention.attention.{x}.{p}"]
                for x in ("query", "key", "value")
            ]
            ref[ours + "attn.qkv." + p] = torch.cat(qkv, 0)
            ref[ours + "attn.proj." + p] = hf_state[
                layer + "attention.output.dense." + p
            ]
            ref[ours + "norm1." + p] = hf_state[layer + "layernorm_before." + p]
            ref[ours + "norm2." + p] = hf_state[layer + "layernorm_after." + p]
            ref[ours + "mlp.fc1." + p] = hf_state[
                layer + "intermediate.dense." + p
            ]
            ref[ours + "mlp.fc2." + p] = hf_state[layer + "output.dense." + p]
    # the reference keeps DeiT's unused ImageNet heads
    dim = ref["module.v.cls_token"].shape[-1]
    ref["module.v.head.weight"] = torch.randn(1000, dim)
    ref["module.v.head.bias"] = torch.randn(1000)
    ref["module.v.head_dist.weight"] = torch.randn(1000, dim)
    ref["module.v.head_dist.bias"] = torch.randn(1000)
    return ref


def test_reference_checkpoint_logits(hf_folder, tmp_path):
    folder, config, _ = hf_folder
    hf_state = load_file(os.path.join(folder, "model.safetensors"))
    path = tmp_path / "audioset_like.pth"
    torch.save(hf_to_reference(hf_state, config.num_hidden_layers), path)
    # square strides are inferred; the 10/12 case needs one of them
    fstride = None if config.time_stride == 10 else 10
    imported = read_reference_checkpoint(
        path, fstride=fstride, input_tdim=config.max_length
    )
    assert imported.config["fstride"] == config.frequency_stride
    assert imported.config["tstride"] == config.time_stride
    assert imported.config["num_heads"] == 2  # heads of 64 as AST-Base
    assert (
        imported.norm_stats == DATASET_STATS["audioset"]
        and imported.labels is None
    )
    assert imported.config["norm_eps"] == 1e-6
    assert imported.head_norm_eps == 1e-5
    feats = torch.randn(3, config.max_length, 128)
    # HF uses LayerNorm eps 1e-12 everywhere: with that eps, equal logits
    same = dataclasses.replace(
        imported,
        config=dict(imported.config, norm_eps=1e-12),
        head_norm_eps=1e-12,
    )
    want = hf_logits(folder, feats)
    lobe, head, _ = build_from_checkpoint(same)
    assert (our_logits(lobe, head, feats) - want).abs().max() <= 1e-5
    # with the reference's own eps (1e-6 / 1e-5) the logits barely move
    # (measured 2e-5..4e-5 on logits of magnitude ~1)
    lobe, head, _ = build_from_checkpoint(imported)
    assert (our_logits(lobe, head, feats) - want).abs().max() <= 2e-4


def test_other_length_and_new_head(hf_folder, caplog):
    folder, config, _ = hf_folder
    imported = read_hf_checkpoint(folder)
    src = (12, (config.max_length - 16) // config.time_stride + 1)
    lobe, head, built = build_from_checkpoint(imported, input_tdim=64)
    dst = (12, (64 - 16) // config.time_stride + 1)
    assert lobe.patch_grid == dst
    want = reference_pos(imported.lobe_state["pos_embed"], src, dst)
    torch.testing.assert_close(lobe.pos_embed.detach(), want, rtol=0, atol=0)
    assert built.target_length == 64 and built.config["input_tdim"] == 64
    torch.testing.assert_close(head[1].weight, imported.head_state["1.weight"])
    with torch.no_grad():
        assert head(lobe(torch.randn(2, 64, 128))).shape == (2, 5)

    with caplog.at_level(logging.INFO, logger="speechbrain_ast.weights.build"):
        lobe, head, built = build_from_checkpoint(imported, n_classes=7)
    assert "dropping the checkpoint's 5-class head" in caplog.text
    assert head[1].out_features == 7 and built.labels is None
    assert head[0].eps == config.layer_norm_eps
    _, head, built = build_from_checkpoint(imported, n_classes=5)
    assert built.labels == imported.labels
    torch.testing.assert_close(head[1].bias, imported.head_state["1.bias"])


def test_hf_pytorch_bin_and_errors(hf_folder, tmp_path):
    folder, config, _ = hf_folder
    state = load_file(os.path.join(folder, "model.safetensors"))
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_text(
        (pathlib.Path(folder) / "config.json").read_text()
    )
    torch.save(state, binary / "pytorch_model.bin")
    from_bin = read_hf_checkpoint(binary)
    from_safe = read_hf_checkpoint(folder)
    assert (
        from_bin.norm_stats == DATASET_STATS["audioset"]
    )  # no preprocessor config
    for key, value in from_safe.lobe_state.items():
        assert torch.equal(from_bin.lobe_state[key], value), key

    os.remove(binary / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        read_hf_checkpoint(binary)
    with pytest.raises(FileNotFoundError, match="config.json"):
        read_hf_checkpoint(tmp_path)
    text = (binary / "config.json").read_text()
    (binary / "config.json").write_text(text.replace('"gelu"', '"relu"'))
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        read_hf_checkpoint(binary)


class WritesMarker:
    """Pickled, it would create a file on load: must never run."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "executed"))


def test_pickled_code_is_not_executed(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    torch.save({"module.v.cls_token": WritesMarker(marker)}, path)
    with pytest.raises(ValueError, match="will not be unpickled"):
        read_reference_checkpoint(path)
    with pytest.raises(ValueError, match="will not be unpickled"):
        build_from_checkpoint(path)
    assert not marker.exists()


def test_reference_errors(tmp_path):
    lobe = AST(input_tdim=200, tstride=100, embed_dim=64, depth=1, num_heads=1)
    state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    path = tmp_path / "ast.pth"
    torch.save(state, path)
    # 12 x 2 patches: any tstride 93..184 fits
    with pytest.raises(ValueError, match="several strides fit"):
        read_reference_checkpoint(path, fstride=10, input_tdim=200)
    with pytest.raises(ValueError, match="no \\(fstride, tstride\\)"):
        read_reference_checkpoint(path, tstride=100, input_tdim=1024)
    imported = read_reference_checkpoint(
        path, fstride=10, tstride=100, input_tdim=200
    )
    assert isinstance(imported, ImportedAST) and imported.head_state is None
    built_lobe, head, _ = build_from_checkpoint(imported)
    assert head is None
    torch.testing.assert_close(built_lobe.pos_embed, lobe.pos_embed)

    torch.save({"foo": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a reference AST checkpoint"):
        read_reference_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        build_from_checkpoint(tmp_path / "nothing.pth")


def _reference_pth(path, **config):
    lobe = AST(embed_dim=64, depth=1, num_heads=1, **config)
    torch.save({f"module.v.{k}": v for k, v in lobe.state_dict().items()}, path)
    return lobe


def test_reference_length_not_given(tmp_path):
    """Read at the default 1024 frames, a checkpoint trained at 120 fits
    strides (31, 31): refused, naming the length to give; the published
    strides are inferred as before."""
    path = tmp_path / "ast120.pth"
    lobe = _reference_pth(path, input_tdim=120)
    for read in (read_reference_checkpoint, build_from_checkpoint):
        with pytest.raises(ValueError, match=r"strides \(31, 31\)") as err:
            read(path)
        assert "input_tdim=N" in str(err.value)
        assert "--input-tdim" in str(err.value)
    # one stride given: several fit at 1024 frames; the length is named
    with pytest.raises(ValueError, match="several strides fit") as err:
        read_reference_checkpoint(path, fstride=10)
    assert "--input-tdim" in str(err.value)
    # given a length or both strides, it is read as asked
    imported = read_reference_checkpoint(path, input_tdim=120)
    assert (imported.config["fstride"], imported.config["tstride"]) == (10, 10)
    built, _, _ = build_from_checkpoint(imported)
    torch.testing.assert_close(built.pos_embed, lobe.pos_embed)
    imported = read_reference_checkpoint(path, fstride=31, tstride=31)
    assert imported.config["input_tdim"] == 1024
    # every published stride at 1024 frames is inferred without a length
    for stride in PUBLISHED_STRIDES:
        path = tmp_path / f"ast_s{stride}.pth"
        _reference_pth(path, input_tdim=1024, fstride=stride, tstride=stride)
        imported = read_reference_checkpoint(path)
        assert imported.config["fstride"] == imported.config["tstride"]
        assert imported.config["tstride"] == stride
        assert imported.target_length == 1024


def test_stride_errors_name_the_options(tmp_path):
    path = tmp_path / "ast_64mel.pth"
    _reference_pth(path, input_fdim=64, input_tdim=128)
    with pytest.raises(ValueError, match="no \\(fstride, tstride\\)") as err:
        read_reference_checkpoint(path, input_tdim=128)
    for option in ("--input-fdim", "--input-tdim", "--fstride", "--tstride"):
        assert option in str(err.value)
    imported = read_reference_checkpoint(path, input_fdim=64, input_tdim=128)
    assert imported.config["input_fdim"] == 64


def test_hf_mel_bins_must_agree(hf_folder, tmp_path):
    import json
    import shutil

    folder, _, _ = hf_folder
    copy = tmp_path / "hf"
    shutil.copytree(folder, copy)
    (copy / "preprocessor_config.json").write_text(
        json.dumps({"num_mel_bins": 64, "mean": -4.0, "std": 4.0})
    )
    with pytest.raises(ValueError, match="num_mel_bins=128") as err:
        read_hf_checkpoint(copy)
    assert "preprocessor_config.json says num_mel_bins=64" in str(err.value)
    assert str(copy / "config.json") in str(err.value)
    # agreeing files read as before
    (copy / "preprocessor_config.json").write_text(
        json.dumps({"num_mel_bins": 128, "mean": -4.0, "std": 4.0})
    )
    assert read_hf_checkpoint(copy).norm_stats == (-4.0, 4.0)


def test_hf_config_defaults_are_transformers_own():
    """A config.json that leaves a key out reads as transformers does."""
    from transformers import ASTConfig

    from speechbrain_ast.weights.hf import HF_CONFIG_MAP

    defaults = ASTConfig()
    for _, theirs, default in HF_CONFIG_MAP:
        assert getattr(defaults, theirs) == default, theirs
