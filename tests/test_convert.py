"""Converter parity: folder logits equal transformers' within 1e-4.

A random-weight ``ASTForAudioClassification`` (random LayerNorm affine
terms too) and its ``ASTFeatureExtractor`` are saved with
``save_pretrained``; the same weights are also written in the reference
``.pth`` layout with a key mapping written here by hand (independent of
``speechbrain_ast.weights.hf.HF_KEY_MAP``). Both are converted and compared with
transformers' feature extractor + model on a 1 s and a 3 s clip.

Authors
 * speechbrain-ast developers
"""

import os

import pytest
import torch

transformers = pytest.importorskip("transformers")

from speechbrain_ast.convert import main  # noqa: E402
from speechbrain_ast.inference import ASTAudioClassifier  # noqa: E402
from speechbrain_ast.weights import read_labels  # noqa: E402

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


# ---------------------------------------------------------------------------
# Reference checkpoints of other sizes, shipped labels, score choice
# ---------------------------------------------------------------------------


def _write_pth(path, n_classes, input_tdim, input_fdim=128, seed=0):
    """A reference-layout .pth from random weights (width 64: one head)."""
    from speechbrain_ast.model.lobe import AST, ASTHead

    torch.manual_seed(seed)
    lobe = AST(
        input_fdim=input_fdim,
        input_tdim=input_tdim,
        embed_dim=64,
        depth=1,
        num_heads=1,
    ).eval()
    head = ASTHead(64, n_classes).eval()
    with torch.no_grad():  # non-trivial tokens and positions
        lobe.pos_embed.normal_(0, 0.5)
        lobe.cls_token.normal_(0, 0.5)
    state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    state.update(
        {f"module.mlp_head.{k}": v for k, v in head.state_dict().items()}
    )
    torch.save(state, path)
    return lobe, head


def _folder_logits_equal_own(model, lobe, head, clip, n_mels=128):
    """The folder's logits equal the checkpoint's lobe + head on the
    reference frontend written here with torchaudio's Kaldi fbank (padded
    or cut to the folder's frames, AudioSet statistics)."""
    import torchaudio

    fbank = torchaudio.compliance.kaldi.fbank(
        (clip - clip.mean())[None],
        htk_compat=True,
        sample_frequency=16000,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=n_mels,
        dither=0.0,
        frame_shift=10,
    )
    frames = lobe.input_tdim
    fbank = torch.nn.functional.pad(fbank, (0, 0, 0, frames - fbank.shape[0]))
    feats = (fbank[:frames] - AUDIOSET_STATS[0]) / (2 * AUDIOSET_STATS[1])
    with torch.no_grad():
        want = head(lobe(feats[None]))
    got = model.compute_logits(clip[None])
    return torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("frames", [70, 120, 240, 280, 360])
def test_pth_of_another_length_needs_input_tdim(frames, tmp_path, capsys):
    """Trained at 120 frames, read at the default 1024 frames the patch
    count fits strides (31, 31): refused, naming --input-tdim."""
    pth = str(tmp_path / f"ast_{frames}.pth")
    lobe, head = _write_pth(pth, 5, frames)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    out = str(tmp_path / "out")
    argv = [pth, "--out", out, "--labels", str(labels)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and pth in err
    assert "--input-tdim" in err and "no published AST checkpoint" in err
    if frames == 120:
        assert "strides (31, 31)" in err
    assert not os.path.exists(os.path.join(out, "hyperparams.yaml"))
    # with its length it converts, and the folder runs the checkpoint
    assert main(argv + ["--input-tdim", str(frames)]) == 0
    model = _load(out, tmp_path)
    assert model.mods.compute_features.target_length == frames
    clip = 0.1 * torch.randn(16000 * frames // 100)
    assert _folder_logits_equal_own(model, lobe, head, clip)


def test_input_fdim_option(tmp_path, capsys):
    """The stride error names --input-fdim, which the command has."""
    pth = str(tmp_path / "ast_64mel.pth")
    lobe, head = _write_pth(pth, 5, 128, input_fdim=64)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    argv = [pth, "--labels", str(labels), "--input-tdim", "128"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "--input-fdim" in err and "--input-tdim" in err
    assert "input_fdim and" not in err.replace("input_fdim, input_tdim", "")
    out = str(tmp_path / "b")
    assert main(argv + ["--out", out, "--input-fdim", "64"]) == 0
    model = _load(out, tmp_path)
    assert model.mods.compute_features.n_mels == 64
    assert _folder_logits_equal_own(
        model, lobe, head, 0.1 * torch.randn(16000), n_mels=64
    )
    with pytest.raises(SystemExit):
        main(argv + ["--out", out, "--input-fdim", "0"])


def test_hf_mel_bins_disagree(sources, tmp_path, capsys):
    import json
    import shutil

    folder = str(tmp_path / "hf64")
    shutil.copytree(sources["hf"], folder)
    config_path = os.path.join(folder, "config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["num_mel_bins"] = 64
    with open(config_path, "w") as f:
        json.dump(config, f)
    assert main([folder, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert config_path in err and "num_mel_bins=64" in err
    pre_path = os.path.join(folder, "preprocessor_config.json")
    assert pre_path in err and "num_mel_bins=128" in err


def _csv_names(name):
    """Display names of a shipped label file, read with csv directly."""
    import csv

    from speechbrain_ast.weights.labels import LABEL_FILES

    with open(os.path.join(LABEL_FILES, name), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "mid", "display_name"]
    assert [int(r[0]) for r in rows[1:]] == list(range(len(rows) - 1))
    return [r[2] for r in rows[1:]]


def test_published_pth_needs_no_labels(tmp_path):
    """The README command, as a process: an AudioSet-sized .pth (527
    classes, 1024 frames) converts with nothing else; AudioSet's names
    (quoted commas kept) and sigmoid scores."""
    import subprocess
    import sys

    pth = str(tmp_path / "audioset_10_10_0.4593.pth")
    lobe, head = _write_pth(pth, 527, 1024)
    out = str(tmp_path / "ast-audioset")
    run = subprocess.run(
        [sys.executable, "-m", "speechbrain_ast.convert", pth, "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "class_labels_indices.csv" in run.stderr
    model = _load(out, tmp_path)
    names = _csv_names("class_labels_indices.csv")
    assert len(names) == 527 and model.labels == names
    assert model.labels[1] == "Male speech, man speaking"
    assert model.multi_label
    clip = 0.1 * torch.randn(16000)
    assert _folder_logits_equal_own(model, lobe, head, clip)
    scores = model.classify_batch(clip[None])[0]
    torch.testing.assert_close(
        scores, torch.sigmoid(model.compute_logits(clip[None]))
    )


@pytest.mark.parametrize(
    "n_classes,name,multi_label",
    [
        (50, "esc_class_labels_indices.csv", False),  # CE in the reference
        (35, "speechcommands_class_labels_indices.csv", True),  # BCE
    ],
)
def test_esc50_and_speech_commands_pth(
    n_classes, name, multi_label, tmp_path, capsys
):
    pth = str(tmp_path / f"ast_{n_classes}.pth")
    _write_pth(pth, n_classes, 128)
    out = str(tmp_path / "out")
    assert main([pth, "--out", out, "--input-tdim", "128"]) == 0
    err = capsys.readouterr().err
    assert name in err and "--labels" in err  # the note
    model = _load(out, tmp_path)
    assert model.labels == _csv_names(name)
    assert model.multi_label is multi_label
    clip = 0.1 * torch.randn(16000)
    logits = model.compute_logits(clip[None])
    scores = model.classify_batch(clip[None])[0]
    if multi_label:  # the reference reports sigmoid scores
        torch.testing.assert_close(scores, torch.sigmoid(logits))
        assert "sigmoid" in err and "--single-label" in err
    else:
        torch.testing.assert_close(scores, torch.softmax(logits, -1))
    # forced the other way
    flag = "--single-label" if multi_label else "--multi-label"
    argv = [pth, "--out", out, "--input-tdim", "128", "--overwrite", flag]
    assert main(argv) == 0
    assert _load(out, tmp_path / "again").multi_label is not multi_label
    # other names still win
    labels = tmp_path / "mine.txt"
    labels.write_text("".join(f"w{i}\n" for i in range(n_classes)))
    argv = [pth, "--out", out, "--input-tdim", "128", "--overwrite"]
    assert main(argv + ["--labels", str(labels)]) == 0
    capsys.readouterr()
    assert _load(out, tmp_path / "mine").labels[0] == "w0"


def test_other_class_counts_still_need_labels(tmp_path, capsys):
    pth = str(tmp_path / "ast_7.pth")
    _write_pth(pth, 7, 128)
    assert main([pth, "--out", str(tmp_path / "o"), "--input-tdim", "128"]) == 1
    err = capsys.readouterr().err
    assert "--labels" in err and "7 classes" in err


def test_hf_score_choice():
    """HuggingFace folders: problem_type first; Speech Commands' 35
    classes are sigmoid unless the config says single-label."""
    from speechbrain_ast.convert import _default_multi_label

    assert _default_multi_label(35, None)[0]
    assert not _default_multi_label(35, "single_label_classification")[0]
    assert _default_multi_label(527, "single_label_classification")[0]
    assert _default_multi_label(5, "multi_label_classification")[0]
    assert not _default_multi_label(50, None)[0]


def test_label_files_are_package_data():
    """setup.py's package_data covers every shipped label file."""
    import ast
    import fnmatch
    import pathlib

    from speechbrain_ast.weights.labels import LABEL_FILES

    root = pathlib.Path(__file__).resolve().parents[1]
    tree = ast.parse((root / "setup.py").read_text())
    patterns = [
        pattern
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "package_data"
        for pattern in ast.literal_eval(node.value)["speechbrain_ast"]
    ]
    shipped = sorted(os.listdir(LABEL_FILES))
    assert "README.md" in shipped and len(shipped) == 4
    for name in shipped:
        rel = f"label_files/{name}"
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def _ssast_encoder(patch, tdim, seed):
    from speechbrain_ast.model.lobe import AST

    torch.manual_seed(seed)
    return AST(
        input_tdim=tdim,
        patch_size=patch,
        fstride=patch[0],
        tstride=patch[1],
        embed_dim=64,
        depth=1,
        num_heads=1,
    ).eval()


def _write_ssast_reference(path, encoder):
    """The published SSAST layout: module.v.*, prediction heads, mask
    embedding, pretraining grid."""
    from speechbrain_ast.ssast.model import SSAST

    model = SSAST(encoder, mask_patch=8)
    state = {
        "module." + k.replace("encoder.", "v.", 1): v.detach().clone()
        for k, v in model.state_dict().items()
    }
    state["module.p_input_fdim"] = torch.tensor(128)
    state["module.p_input_tdim"] = torch.tensor(encoder.input_tdim)
    torch.save(state, path)


def _kaldi_features(wav, frames, stats):
    """The reference frontend, written out with torchaudio."""
    import torchaudio

    fbank = torchaudio.compliance.kaldi.fbank(
        (wav - wav.mean())[None], htk_compat=True, sample_frequency=16000,
        use_energy=False, window_type="hanning", num_mel_bins=128,
        dither=0.0, frame_shift=10,
    )  # fmt: skip
    fbank = torch.nn.functional.pad(fbank, (0, 0, 0, frames - len(fbank)))
    return ((fbank[:frames] - stats[0]) / (2 * stats[1]))[None]


def test_ssast_reference_checkpoint_round_trip(tmp_path, capsys):
    """A published-format SSAST checkpoint (random weights) converts into
    a folder whose encoder is those weights and whose embeddings equal the
    encoder's on the reference features; the head is fresh, of
    --n-classes classes, the same on every conversion."""
    encoder = _ssast_encoder((16, 16), 128, seed=21)
    pth = str(tmp_path / "SSAST-Tiny-Patch-400.pth")
    _write_ssast_reference(pth, encoder)

    assert main([pth, "--out", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "self-supervised SSAST encoder" in err and "--n-classes" in err

    out = str(tmp_path / "ssast")
    assert main([pth, "--out", out, "--n-classes", "4"]) == 0
    err = capsys.readouterr().err
    assert "randomly initialised 4-class head" in err
    assert "until fine-tuned" in err
    saved = torch.load(os.path.join(out, "embedding_model.ckpt"))
    for key, value in encoder.state_dict().items():
        assert torch.equal(saved[key], value), key

    model = _load(out, tmp_path / "loaded")
    assert model.labels == ["class0", "class1", "class2", "class3"]
    # fine-tuned as the SSAST reference does: on the mean of the patches
    assert model.mods.embedding_model.pooling == "mean"
    clip = _clips()[0]
    with torch.no_grad():
        want = encoder.set_pooling("mean")(
            _kaldi_features(clip, 128, AUDIOSET_STATS)
        )
    torch.testing.assert_close(
        model.encode_batch(clip[None]), want, atol=1e-4, rtol=1e-4
    )
    assert model.classify_batch(clip[None])[0].shape[-1] == 4

    again = str(tmp_path / "again")
    assert main([pth, "--out", again, "--n-classes", "4"]) == 0
    first = torch.load(os.path.join(out, "classifier.ckpt"))
    second = torch.load(os.path.join(again, "classifier.ckpt"))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_ssast_encoder_file_with_labels_and_errors(tmp_path, capsys):
    """Our ssast_encoder.pt (128 x 2 frame patches) with --labels; another
    length through --input-tdim; strides and a class count that disagree
    with the labels are refused."""
    from speechbrain_ast.weights import load_ssast, save_ssast_encoder

    encoder = _ssast_encoder((128, 2), 64, seed=22)
    pt = str(tmp_path / "ssast_encoder.pt")
    save_ssast_encoder(encoder, pt, norm_stats=(-5.0, 3.0))
    labels = tmp_path / "labels.txt"
    labels.write_text("yes\nno\nup\n")

    out = str(tmp_path / "enc")
    assert main([pt, "--out", out, "--labels", str(labels)]) == 0
    model = _load(out, tmp_path / "loaded")
    assert model.labels == ["yes", "no", "up"]
    clip = _clips()[0]
    with torch.no_grad():
        want = encoder.set_pooling("mean")(
            _kaldi_features(clip, 64, (-5.0, 3.0))
        )
    torch.testing.assert_close(
        model.encode_batch(clip[None]), want, atol=1e-4, rtol=1e-4
    )

    longer = str(tmp_path / "longer")
    args = [pt, "--out", longer, "--n-classes", "2", "--input-tdim", "100"]
    assert main(args) == 0
    expected = _ssast_encoder((128, 2), 100, seed=0)
    load_ssast(expected, pt)
    saved = torch.load(os.path.join(longer, "embedding_model.ckpt"))
    for key, value in expected.state_dict().items():
        assert torch.equal(saved[key], value), key

    capsys.readouterr()
    bad = str(tmp_path / "bad")
    assert main([pt, "--out", bad, "--n-classes", "2", "--tstride", "1"]) == 1
    assert "--fstride/--tstride do not apply" in capsys.readouterr().err
    args = [pt, "--out", bad, "--n-classes", "2", "--labels", str(labels)]
    assert main(args) == 1
    assert "--n-classes 2 but --labels names 3" in capsys.readouterr().err
    sup = str(tmp_path / "ast_3.pth")
    _write_pth(sup, 3, 128)
    args = [sup, "--out", bad, "--input-tdim", "128", "--n-classes", "3"]
    assert main(args) == 1
    assert "--n-classes is for SSAST encoders" in capsys.readouterr().err
