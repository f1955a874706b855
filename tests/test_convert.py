"""Converter parity: folder logits equal transformers' within 1e-4.

A random-weight ``ASTForAudioClassification`` (random LayerNorm affine
terms too) and its ``ASTFeatureExtractor`` are saved with
``save_pretrained``; the same weights are also written in the reference
``.pth`` layout with a key mapping written here by hand (independent of
``pretrained.HF_KEY_MAP``). Both are converted and compared with
transformers' feature extractor + model on a 1 s and a 3 s clip.

Authors
 * speechbrain-ast developers
"""

import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

from speechbrain_ast.convert import main, read_labels  # noqa: E402
from speechbrain_ast.inference import ASTAudioClassifier  # noqa: E402

LABELS = ["Speech", "Bark, dog", "Rain", "Siren", "Engine"]
MAX_LENGTH = 128
HF_STATS = (-5.1, 3.7)
AUDIOSET_STATS = (-4.2677393, 4.5689974)


def _hf_model(seed=0, problem_type="multi_label_classification"):
    torch.manual_seed(seed)
    config = transformers.ASTConfig(
        # head width 64, as every reference checkpoint (the .pth has no
        # head count: the reader infers heads = width / 64)
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_length=MAX_LENGTH,
        num_mel_bins=128,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
        problem_type=problem_type,
    )
    model = transformers.ASTForAudioClassification(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.3)
                module.bias.normal_(0.0, 0.3)
    return model


def _reference_state(hf_dir):
    """The HF file's tensors under the reference's (DataParallel) names."""
    from safetensors.torch import load_file

    hf = load_file(os.path.join(hf_dir, "model.safetensors"))
    p = "audio_spectrogram_transformer."
    ref = {
        "module.v.cls_token": hf[p + "embeddings.cls_token"],
        "module.v.dist_token": hf[p + "embeddings.distillation_token"],
        "module.v.pos_embed": hf[p + "embeddings.position_embeddings"],
        "module.mlp_head.0.weight": hf["classifier.layernorm.weight"],
        "module.mlp_head.0.bias": hf["classifier.layernorm.bias"],
        "module.mlp_head.1.weight": hf["classifier.dense.weight"],
        "module.mlp_head.1.bias": hf["classifier.dense.bias"],
        # DeiT's unused ImageNet heads are in the reference files too
        "module.v.head.weight": torch.randn(1000, 128),
        "module.v.head.bias": torch.randn(1000),
        "module.v.head_dist.weight": torch.randn(1000, 128),
        "module.v.head_dist.bias": torch.randn(1000),
    }
    pairs = {
        "patch_embed.proj": "embeddings.patch_embeddings.projection",
        "norm": "layernorm",
    }
    for n in range(2):
        layer = f"encoder.layer.{n}."
        pairs.update(
            {
                f"blocks.{n}.norm1": layer + "layernorm_before",
                f"blocks.{n}.norm2": layer + "layernorm_after",
                f"blocks.{n}.attn.proj": layer + "attention.output.dense",
                f"blocks.{n}.mlp.fc1": layer + "intermediate.dense",
                f"blocks.{n}.mlp.fc2": layer + "output.dense",
            }
        )
        for kind in ("weight", "bias"):
            ref[f"module.v.blocks.{n}.attn.qkv.{kind}"] = torch.cat(
                [
                    hf[f"{p}{layer}attention.attention.{x}.{kind}"]
                    for x in ("query", "key", "value")
                ]
            )
    for ours, theirs in pairs.items():
        for kind in ("weight", "bias"):
            ref[f"module.v.{ours}.{kind}"] = hf[f"{p}{theirs}.{kind}"]
    return ref


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("convert")
    model = _hf_model()
    hf_dir = str(tmp / "hf")
    model.save_pretrained(hf_dir)
    transformers.ASTFeatureExtractor(
        max_length=MAX_LENGTH, mean=HF_STATS[0], std=HF_STATS[1]
    ).save_pretrained(hf_dir)
    pth = str(tmp / "ast_ref.pth")
    torch.save(_reference_state(hf_dir), pth)
    csv_path = str(tmp / "class_labels_indices.csv")
    with open(csv_path, "w", encoding="utf-8") as f:
        f.write("index,mid,display_name\n")
        for i, label in enumerate(LABELS):
            f.write(f'{i},/m/{i:04d},"{label}"\n')
    return {"model": model, "hf": hf_dir, "pth": pth, "csv": csv_path}


def _clips():
    gen = torch.Generator().manual_seed(7)
    return [
        0.1 * torch.randn(16000, generator=gen),  # padded to 128 frames
        0.1 * torch.randn(48000, generator=gen),  # cut to 128 frames
    ]


def _hf_logits(model, clips, stats):
    extractor = transformers.ASTFeatureExtractor(
        max_length=MAX_LENGTH, mean=stats[0], std=stats[1]
    )
    inputs = extractor(
        [c.numpy() for c in clips], sampling_rate=16000, return_tensors="pt"
    )
    with torch.no_grad():
        return model(**inputs).logits


def _load(folder, tmp_path):
    return ASTAudioClassifier.from_hparams(
        source=folder, savedir=str(tmp_path / "saved")
    )


def test_hf_folder_parity(sources, tmp_path):
    out = str(tmp_path / "from_hf")
    assert main([sources["hf"], "--out", out]) == 0
    model = _load(out, tmp_path)
    assert model.multi_label  # problem_type multi_label_classification
    assert model.labels == LABELS
    clips = _clips()
    expected = _hf_logits(sources["model"], clips, HF_STATS)
    for clip, exp in zip(clips, expected):
        logits = model.compute_logits(clip[None])[0]
        assert torch.allclose(logits, exp, atol=1e-4), (logits - exp).abs()
    # a padded batch of both clips gives the same logits
    batch = torch.zeros(2, 48000)
    batch[0, :16000], batch[1] = clips
    logits = model.compute_logits(batch, torch.tensor([1 / 3, 1.0]))
    assert torch.allclose(logits, expected, atol=1e-4)
    scores = model.classify_batch(batch, torch.tensor([1 / 3, 1.0]))[0]
    assert torch.allclose(scores, torch.sigmoid(expected), atol=1e-4)


def test_reference_pth_parity(sources, tmp_path):
    assert read_labels(sources["csv"]) == LABELS
    out = str(tmp_path / "from_pth")
    argv = [sources["pth"], "--out", out, "--labels", sources["csv"]]
    assert main(argv + ["--input-tdim", str(MAX_LENGTH)]) == 0
    model = _load(out, tmp_path)
    assert not model.multi_label  # 5 classes: not AudioSet
    assert model.labels == LABELS
    clips = _clips()
    # the reference layout has no stats: AudioSet's, as the reference
    expected = _hf_logits(sources["model"], clips, AUDIOSET_STATS)
    for clip, exp in zip(clips, expected):
        logits = model.compute_logits(clip[None])[0]
        assert torch.allclose(logits, exp, atol=1e-4), (logits - exp).abs()
    scores = model.classify_batch(clips[0][None])[0]
    assert torch.allclose(scores.sum(), torch.tensor(1.0), atol=1e-6)


def test_native_length_and_forced_multi_label(sources, tmp_path, capsys):
    out = str(tmp_path / "native")
    argv = [sources["pth"], "--out", out, "--labels", sources["csv"]]
    argv += ["--input-tdim", str(MAX_LENGTH), "--native-length"]
    assert main(argv + ["--multi-label"]) == 0
    model = _load(out, tmp_path)
    assert model.multi_label and model.native_length
    # a clip of exactly MAX_LENGTH frames is not padded in either mode
    exact = 0.1 * torch.randn(400 + (MAX_LENGTH - 1) * 160)
    expected = _hf_logits(sources["model"], [exact], AUDIOSET_STATS)
    assert torch.allclose(
        model.compute_logits(exact[None]), expected, atol=1e-4
    )
    # a short clip is not padded: it differs from the padded reference
    short = _clips()[0]
    padded = _hf_logits(sources["model"], [short], AUDIOSET_STATS)
    assert not torch.allclose(
        model.compute_logits(short[None]), padded, atol=1e-3
    )


def test_errors_and_overwrite_refusal(sources, tmp_path, capsys):
    out = str(tmp_path / "taken")
    assert main([sources["hf"], "--out", out]) == 0
    capsys.readouterr()
    # refuses to overwrite, names the folder, one line
    assert main([sources["hf"], "--out", out]) == 1
    err = capsys.readouterr().err
    assert out in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert main([sources["hf"], "--out", out, "--overwrite"]) == 0
    capsys.readouterr()
    # a .pth without labels: told to pass --labels
    argv = [sources["pth"], "--out", str(tmp_path / "nolabels")]
    assert main(argv + ["--input-tdim", str(MAX_LENGTH)]) == 1
    err = capsys.readouterr().err
    assert "--labels" in err and sources["pth"] in err
    assert not os.path.exists(tmp_path / "nolabels" / "hyperparams.yaml")
    # a file that is not a checkpoint
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert main([str(junk), "--out", str(tmp_path / "j")]) == 1
    err = capsys.readouterr().err
    assert str(junk) in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # wrong number of labels
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    argv = [sources["pth"], "--out", str(tmp_path / "l"), "--labels"]
    assert main(argv + [str(labels), "--input-tdim", str(MAX_LENGTH)]) == 1
    assert "2 labels" in capsys.readouterr().err
