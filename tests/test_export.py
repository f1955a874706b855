"""Model folders: export -> from_hparams -> the same predictions.

The reference path runs torchaudio's Kaldi fbank per clip, pads in the
log-mel domain, normalises and applies the exported modules directly.

Authors
 * speechbrain-ast developers
"""

import os
import shutil

import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain_ast.features.fbank import TORCHAUDIO_FBANK_KWARGS
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import (
    MODEL_FILES,
    export_model_folder,
)
from speechbrain_ast.model.lobe import AST, ASTHead

LABELS = ["dog", "rain", "speech", "siren", "engine"]
MEAN, STD = -4.2677393, 4.5689974
TLEN = 128


def _random_ln(module, gen):
    """Random LayerNorm parameters, so that eps and affine terms matter."""
    for mod in module.modules():
        if isinstance(mod, torch.nn.LayerNorm):
            with torch.no_grad():
                mod.weight.copy_(
                    1 + 0.3 * torch.randn(mod.weight.shape, generator=gen)
                )
                mod.bias.copy_(0.3 * torch.randn(mod.bias.shape, generator=gen))


def tiny_model(seed=0, n_classes=5, input_tdim=TLEN):
    """A random-weight AST (width 64, depth 2) and head, in eval mode."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    lobe = AST(input_tdim=input_tdim, embed_dim=64, depth=2, num_heads=2)
    head = ASTHead(64, n_classes)
    _random_ln(lobe, gen)
    _random_ln(head, gen)
    return lobe.eval(), head.eval()


def reference_logits(lobe, head, wavs, target_length=TLEN):
    """torchaudio Kaldi fbank per clip + pad/cut + norm + modules."""
    feats = []
    for wav in wavs:
        fb = torchaudio.compliance.kaldi.fbank(
            wav[None],
            **TORCHAUDIO_FBANK_KWARGS,
        )
        if target_length is not None:
            pad = target_length - fb.shape[0]
            fb = torch.nn.functional.pad(fb, (0, 0, 0, max(pad, 0)))
            fb = fb[:target_length]
        feats.append((fb - MEAN) / (2 * STD))
    with torch.no_grad():
        return torch.cat([head(lobe(f[None])) for f in feats])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    lobe, head = tiny_model()
    out = tmp_path_factory.mktemp("export") / "model"
    export_model_folder(
        out,
        lobe,
        head,
        LABELS,
        {"target_length": TLEN},
        (MEAN, STD),
        multi_label=True,
        extra={"source": "test"},
    )
    return out, lobe, head


def _wavs():
    gen = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(3, 16000, generator=gen)


def test_folder_layout_and_overwrite_refusal(folder, tmp_path):
    out, lobe, head = folder
    assert sorted(os.listdir(out)) == sorted(MODEL_FILES)
    text = (out / "hyperparams.yaml").read_text()
    for entry in ("multi_label: true", "sample_rate: 16000", "native_length"):
        assert entry in text
    with pytest.raises(FileExistsError, match=str(out)):
        export_model_folder(
            out, lobe, head, LABELS, {}, (MEAN, STD), multi_label=True
        )
    # overwrite=True replaces the model files
    export_model_folder(
        out,
        lobe,
        head,
        LABELS,
        {"target_length": TLEN},
        (MEAN, STD),
        multi_label=True,
        overwrite=True,
    )
    with pytest.raises(ValueError, match="4 labels"):
        export_model_folder(
            tmp_path / "x", lobe, head, LABELS[:4], {}, (0, 1), True
        )
    with pytest.raises(ValueError, match="unique"):
        export_model_folder(
            tmp_path / "y", lobe, head, ["a"] * 5, {}, (0, 1), True
        )


def test_round_trip_both_interfaces(folder, tmp_path):
    out, lobe, head = folder
    wavs = _wavs()
    expected = reference_logits(lobe, head, wavs)

    ours = ASTAudioClassifier.from_hparams(
        source=str(out), savedir=str(tmp_path / "ours")
    )
    logits = ours.compute_logits(wavs)
    assert torch.allclose(logits, expected, atol=1e-5)
    scores, score, index, labels = ours.classify_batch(wavs)
    assert torch.allclose(scores, torch.sigmoid(expected), atol=1e-6)
    assert labels == [LABELS[i] for i in expected.argmax(-1)]

    plain = EncoderClassifier.from_hparams(
        source=str(out), savedir=str(tmp_path / "plain")
    )
    out_prob, _, index, labels = plain.classify_batch(wavs)
    assert torch.allclose(out_prob, expected, atol=1e-5)
    assert labels == [LABELS[i] for i in expected.argmax(-1)]
    with torch.no_grad():
        emb = lobe(ours.mods.mean_var_norm(ours.mods.compute_features(wavs)))
    assert torch.allclose(plain.encode_batch(wavs), emb, atol=1e-5)
    assert torch.allclose(ours.encode_batch(wavs), emb, atol=1e-5)

    # classify_file: 16 kHz mono reads the same through both
    path = str(tmp_path / "clip.wav")
    sf.write(path, wavs[0].numpy(), 16000, subtype="FLOAT")
    out_prob, _, _, label = plain.classify_file(path)
    assert torch.allclose(out_prob[0], expected[0], atol=1e-5)
    scores, _, _, label2 = ours.classify_file(path)
    assert torch.allclose(scores[0], torch.sigmoid(expected[0]), atol=1e-6)
    assert label == label2
    # 44.1 kHz stereo: both resample and downmix to the same input
    gen = torch.Generator().manual_seed(4)
    path = str(tmp_path / "stereo.wav")
    stereo = 0.1 * torch.randn(44100, 2, generator=gen)
    sf.write(path, stereo.numpy(), 44100, subtype="FLOAT")
    out_prob = plain.classify_file(path)[0]
    logits = ours.compute_logits(ours.load_audio(path)[None])
    assert torch.allclose(out_prob, logits, atol=1e-4)


def test_padded_batch_equals_single_clips(folder, tmp_path):
    out, lobe, head = folder
    model = ASTAudioClassifier.from_hparams(
        source=str(out), savedir=str(tmp_path / "s")
    )
    wavs = _wavs()
    wavs[1, 9000:] = 0
    wavs[2, 5000:] = 0
    lens = torch.tensor([1.0, 9000 / 16000, 5000 / 16000])
    batch = model.compute_logits(wavs, lens)
    single = [
        model.compute_logits(wavs[i : i + 1, :n])
        for i, n in enumerate([16000, 9000, 5000])
    ]
    assert torch.allclose(batch, torch.cat(single), atol=1e-5)
    expected = reference_logits(
        lobe, head, [wavs[0], wavs[1, :9000], wavs[2, :5000]]
    )
    assert torch.allclose(batch, expected, atol=1e-5)


def test_native_length_folder(tmp_path):
    lobe, head = tiny_model(seed=3)
    out = tmp_path / "native"
    export_model_folder(
        out,
        lobe,
        head,
        LABELS,
        {"target_length": None},
        (MEAN, STD),
        multi_label=False,
    )
    assert "native_length: true" in (out / "hyperparams.yaml").read_text()
    # a moved folder still loads: its files are named relative to it
    moved = tmp_path / "moved"
    shutil.move(str(out), str(moved))
    model = ASTAudioClassifier.from_hparams(
        source=str(moved), savedir=str(tmp_path / "s")
    )
    wavs = _wavs()
    lens = torch.tensor([1.0, 0.75, 0.5])
    logits = model.compute_logits(wavs, lens)
    clips = [wavs[0], wavs[1, :12000], wavs[2, :8000]]
    expected = reference_logits(lobe, head, clips, target_length=None)
    assert torch.allclose(logits, expected, atol=1e-5)
    scores = model.classify_batch(wavs, lens)[0]
    assert torch.allclose(scores.sum(-1), torch.ones(3), atol=1e-6)


def test_mismatched_checkpoint_is_refused(folder, tmp_path):
    out, lobe, head = folder
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    torch.save(ASTHead(64, 7).state_dict(), broken / "classifier.ckpt")
    with pytest.raises(Exception, match="classifier.ckpt"):
        ASTAudioClassifier.from_hparams(
            source=str(broken), savedir=str(tmp_path / "s")
        )


def test_lobe_config_is_the_one_source(tmp_path):
    """The folder's yaml, the SSAST encoder file and the built checkpoint
    all carry the lobe's own ``config``; it rebuilds the same lobe."""
    from hyperpyyaml import load_hyperpyyaml

    from speechbrain_ast.inference.hyperparams import module_config
    from speechbrain_ast.weights import (
        read_ssast_checkpoint,
        save_ssast_encoder,
    )

    lobe = AST(
        input_tdim=96,
        patch_size=(16, 8),
        fstride=12,
        tstride=6,
        embed_dim=48,
        depth=1,
        num_heads=3,
        mlp_ratio=2.0,
        qkv_bias=False,
        norm_eps=1e-12,
        drop_path_rate=0.1,
        patchout_time=2,
    )
    head = ASTHead(48, 5, norm_eps=1e-7)
    rebuilt = AST(**lobe.config)
    assert rebuilt.config == lobe.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in lobe.state_dict().items()
    }
    assert ASTHead(**head.config).config == head.config

    out = export_model_folder(
        tmp_path / "model", lobe, head, LABELS, {}, (MEAN, STD), True
    )
    with open(os.path.join(out, "hyperparams.yaml"), encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    assert hparams["embedding_model"].config == lobe.config
    assert hparams["classifier"].config == head.config
    assert module_config(lobe) == lobe.config

    path = tmp_path / "ssast_encoder.pt"
    assert save_ssast_encoder(lobe, path)["config"] == lobe.config
    assert read_ssast_checkpoint(path).config == lobe.config

    with pytest.raises(ValueError, match="Linear"):
        module_config(torch.nn.Linear(2, 3))


def test_check_model_folder(folder, tmp_path):
    from speechbrain_ast.inference.model_folder import check_model_folder

    assert check_model_folder(folder[0]).endswith("hyperparams.yaml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_model_folder(tmp_path / "none")
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_model_folder(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no hyperparams.yaml"):
        check_model_folder(tmp_path / "empty")


def test_hyperparams_values_read_back_as_written(tmp_path):
    """PyYAML writes the values: strings that look like tags, booleans,
    numbers or hold newlines read back as the same strings."""
    from hyperpyyaml import load_hyperpyyaml

    extra = {
        "tag": "!new:os.system",
        "bool_text": "true",
        "number_text": "12",
        "lines": "a\nb: c\n - d",
        "empty": "",
        "none": None,
        "small": 1e-5,
        "unicode": "Café",
        "pair": [1, 2],
    }
    lobe, head = tiny_model()
    out = export_model_folder(
        tmp_path / "m", lobe, head, LABELS, {}, (MEAN, STD), True, extra=extra
    )
    with open(os.path.join(out, "hyperparams.yaml"), encoding="utf-8") as f:
        assert load_hyperpyyaml(f)["export_info"] == extra
    for bad, error in ((float("nan"), ValueError), (object(), TypeError)):
        with pytest.raises(error, match="export|write"):
            export_model_folder(
                tmp_path / "bad",
                lobe,
                head,
                LABELS,
                {},
                (MEAN, STD),
                True,
                extra={"bad": bad},
            )


def test_trained_model_keeps_the_training_sample_rate(tmp_path):
    """A recipe trained at 8 kHz exports a folder that reads audio at
    8 kHz (its frontend's rate), not at the 16 kHz default."""
    from speechbrain_ast.features import FixedNormalization, KaldiFbank
    from speechbrain_ast.inference.model_folder import export_trained_model
    from speechbrain_ast.model import AST, ASTHead

    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    modules = {"embedding_model": lobe, "classifier": ASTHead(32, 2)}
    folder = export_trained_model(
        str(tmp_path / "model"), modules, FixedNormalization(-4.0, 4.0),
        ["a", "b"], multi_label=False, frontend=KaldiFbank(sample_rate=8000),
    )  # fmt: skip
    model = ASTAudioClassifier.from_hparams(
        source=folder, savedir=str(tmp_path / "saved")
    )
    assert model.hparams.sample_rate == 8000
    assert model.hparams.compute_features.sample_rate == 8000


def test_further_modules_and_settings_load_with_the_folder(tmp_path):
    """Further modules load into ``mods`` (their own ``<name>.ckpt``),
    further settings into ``hparams``, with both interfaces; a re-export
    without them removes the earlier checkpoint and keeps other files."""
    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    head, second = ASTHead(32, 5), ASTHead(32, 5)
    torch.nn.init.normal_(second[1].weight)
    args = (lobe, head, LABELS, {"target_length": 64}, (MEAN, STD), True)
    out = export_model_folder(
        tmp_path / "model",
        *args,
        extra_modules={"second_head": second},
        extra_settings={"threshold": 0.25, "names": ["a", "b"]},
    )
    assert sorted(os.listdir(out)) == sorted([*MODEL_FILES, "second_head.ckpt"])
    for loader in (ASTAudioClassifier, EncoderClassifier):
        model = loader.from_hparams(
            source=out, savedir=str(tmp_path / loader.__name__)
        )
        loaded = model.mods.second_head
        assert isinstance(loaded, ASTHead)
        assert torch.equal(loaded[1].weight, second[1].weight)
        assert model.hparams.threshold == 0.25
        assert model.hparams.names == ["a", "b"]
    (tmp_path / "model" / "notes.txt").write_text("kept")
    export_model_folder(tmp_path / "model", *args, overwrite=True)
    assert sorted(os.listdir(out)) == sorted([*MODEL_FILES, "notes.txt"])
    text = (tmp_path / "model" / "hyperparams.yaml").read_text()
    assert "second_head" not in text and "threshold" not in text


@pytest.mark.parametrize(
    "extras, error",
    [
        ({"extra_settings": {"sample_rate": 8000}}, "'sample_rate' .* already"),
        ({"extra_modules": {"classifier": ASTHead(32, 5)}}, "already an"),
        ({"extra_settings": {"modules": 1}}, "'modules' .* already an entry"),
        ({"extra_settings": {"a b": 1}}, "'a b' .* not a Python identifier"),
        (
            {
                "extra_modules": {"twice": ASTHead(32, 5)},
                "extra_settings": {"twice": 1},
            },
            "'twice' .* already an entry",
        ),
        ({"extra_modules": {"lin": torch.nn.Linear(2, 2)}}, "Linear"),
        ({"extra_settings": {"bad": object()}}, "Cannot write"),
    ],
)
def test_further_names_and_values_that_do_not_fit_are_refused(
    tmp_path, extras, error
):
    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    args = (lobe, ASTHead(32, 5), LABELS, {}, (MEAN, STD), True)
    with pytest.raises((ValueError, TypeError), match=error):
        export_model_folder(tmp_path / "model", *args, **extras)
    assert not (tmp_path / "model").exists()
