"""Bad-input matrix: every entry point either gives a correct result
(resampled, downmixed, padded; values checked) or a clear error naming the
file or value.

Entry points: ``load_audio`` / ``audio_info``, the frontend and lobe
(tensors), ``ASTAudioClassifier`` and plain ``EncoderClassifier``
(``from_hparams`` + ``classify_file``), the tagging CLI (whole file and
``--window``), ``compute_norm_stats`` and the converter.

Authors
 * speechbrain-ast developers
"""

import json
import math
import os
import struct
import time

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from _reliability_audio import BAD_CASES, make_bad_file, tone, write_long_8k

from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain_ast import tag
from speechbrain_ast.convert import main as convert_main
from speechbrain_ast.data.audio import (
    AudioError,
    audio_info,
    iter_windows,
    load_audio,
)
from speechbrain_ast.features import KaldiFbank, compute_norm_stats
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead

LABELS = ["dog", "rain", "siren"]
ODD_NAME = "a folder/with spaces ünïcödé 音/clip é ß.wav"


def _lobe_head(n_classes=len(LABELS), seed=0):
    torch.manual_seed(seed)
    lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    return lobe, ASTHead(64, n_classes).eval()


def _export(folder, native=False, n_classes=len(LABELS)):
    lobe, head = _lobe_head(n_classes)
    return export_model_folder(
        folder,
        lobe,
        head,
        LABELS[:n_classes] + [f"x{i}" for i in range(n_classes - 3)],
        {"target_length": None if native else 128},
        (-4.27, 4.57),
        multi_label=False,
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return _export(str(tmp_path_factory.mktemp("rel") / "model"))


@pytest.fixture(scope="module")
def model(folder, tmp_path_factory):
    return ASTAudioClassifier.from_hparams(
        source=folder, savedir=str(tmp_path_factory.mktemp("saved"))
    )


@pytest.fixture(scope="module")
def native_model(tmp_path_factory):
    path = _export(str(tmp_path_factory.mktemp("rel") / "native"), True)
    return ASTAudioClassifier.from_hparams(source=path)


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("bad"))
    return {case: make_bad_file(d, case) for case in BAD_CASES}


# ---------------------------------------------------------------------------
# Bad files: one named AudioError at every file entry point
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_file_load_audio_and_classify_file(case, bad, model):
    path = bad[case]
    for call in (
        lambda: load_audio(path),
        lambda: audio_info(path) if case not in ("nan", "inf") else 1 / 0,
        lambda: model.classify_file(path),
        lambda: compute_norm_stats([path]),
        lambda: list(iter_windows(path, 0.5, 0.25)),
    ):
        try:
            call()
        except ZeroDivisionError:  # audio_info does not decode samples
            continue
        except AudioError as err:
            assert path in str(err) and BAD_CASES[case] in str(err)
        else:
            pytest.fail(f"{case}: no AudioError")
    # the header-only check passes NaN files: decoding finds them
    if case in ("nan", "inf"):
        assert audio_info(path) == (16000, 8000, 1)


def test_bad_files_tag_cli(bad, folder, capsys, tmp_path):
    good = str(tmp_path / "good.wav")
    sf.write(good, tone(0.5, 16000), 16000)
    names = sorted(BAD_CASES)
    for extra in ([], ["--window", "0.3", "--hop", "0.2"]):
        argv = ["--model", folder, "--json", "--no-progress", *extra]
        status = tag.main(argv + [bad[c] for c in names] + [good])
        out, err = capsys.readouterr()
        assert status == 1
        assert [json.loads(x)["file"] for x in out.splitlines()] == [good]
        lines = err.strip().splitlines()
        assert len(lines) == len(names)
        for line, case in zip(lines, names):
            assert line.startswith("error: ") and bad[case] in line
            assert BAD_CASES[case] in line
        assert "Traceback" not in err


def test_plain_encoder_classifier_bad_files(folder, bad, tmp_path):
    """SpeechBrain's own reader (plain EncoderClassifier.classify_file):
    unreadable files raise its RuntimeError naming the file, NaN/Inf stop
    at the lobe's check, but a header-only or truncated WAV is NOT
    detected (SpeechBrain reads what is there). ASTAudioClassifier catches
    those (test above): docs/reliability.md says to prefer it."""
    plain = EncoderClassifier.from_hparams(
        source=folder, savedir=str(tmp_path / "s")
    )
    for case in ("missing", "empty", "random_bytes", "not_audio"):
        with pytest.raises(RuntimeError, match="Failed to load audio") as e:
            plain.classify_file(bad[case])
        assert bad[case] in str(e.value)
    for case in ("nan", "inf"):
        with pytest.raises(ValueError, match="NaN or Inf"):
            plain.classify_file(bad[case])
    for case in ("no_samples", "truncated"):
        logits = plain.classify_file(bad[case])[0]
        assert torch.isfinite(logits).all()  # silently scored


# ---------------------------------------------------------------------------
# Good but unusual files: the right waveform, and the model scores it
# ---------------------------------------------------------------------------


def _sine(seconds, rate, freq=440.0, amplitude=0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_sample_rates_are_resampled(rate, tmp_path, model):
    path = str(tmp_path / f"r{rate}.wav")
    sf.write(path, _sine(1.0, rate), rate, subtype="FLOAT")
    wav = load_audio(path)
    assert wav.shape == (16000,) and wav.dtype == torch.float32
    expected = torchaudio.functional.resample(
        torch.from_numpy(_sine(1.0, rate)), rate, 16000
    )
    assert torch.allclose(wav, expected, atol=1e-6)
    # and it is the same tone at 16 kHz, away from the edges
    truth = torch.from_numpy(_sine(1.0, 16000))
    assert (wav - truth)[800:-800].abs().max() < 5e-3
    scores = model.classify_file(path)[0]
    direct = model.classify_batch(expected[None])[0]
    assert torch.allclose(scores, direct, atol=1e-6)


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_downmixed_by_mean(channels, tmp_path, model):
    data = tone(0.7, 16000, channels=channels)
    path = str(tmp_path / f"c{channels}.wav")
    sf.write(path, data, 16000, subtype="FLOAT")
    wav = load_audio(path)
    assert torch.allclose(wav, torch.from_numpy(data.mean(axis=1)))
    assert audio_info(path) == (16000, data.shape[0], channels)
    assert torch.allclose(
        model.classify_file(path)[0],
        model.classify_batch(wav[None])[0],
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "fmt,subtype,tol",
    [
        ("WAV", "PCM_24", 2.0**-23),
        ("WAV", "FLOAT", 0.0),
        ("WAV", "PCM_16", 2.0**-15),
        ("FLAC", "PCM_16", 2.0**-15),
        ("FLAC", "PCM_24", 2.0**-23),
    ],
)
def test_formats(fmt, subtype, tol, tmp_path):
    data = tone(0.3, 16000)[:, 0]
    path = str(tmp_path / f"a.{fmt.lower()}")
    sf.write(path, data, 16000, format=fmt, subtype=subtype)
    wav = load_audio(path).numpy()
    assert np.abs(wav - data).max() <= tol + 1e-9


def test_path_with_spaces_and_non_ascii(tmp_path, model, folder, capsys):
    path = str(tmp_path / ODD_NAME)
    os.makedirs(os.path.dirname(path))
    sf.write(path, tone(0.5, 22050, channels=2), 22050)
    assert load_audio(path).shape == (8000,)
    assert model.classify_file(path)[3][0] in LABELS
    assert tag.main(["--model", folder, "--json", path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == path
    # a missing file with such a name is named exactly, unescaped
    missing = path.replace("clip", "gone")
    assert tag.main(["--model", folder, missing]) == 1
    assert missing in capsys.readouterr().err


def _feats_to_scores(model, feats):
    with torch.no_grad():
        norm = model.mods.mean_var_norm(feats)
        logits = model.mods.classifier(model.mods.embedding_model(norm))
    return torch.softmax(logits, -1)


def test_silence_and_full_scale_clipping(tmp_path, model):
    n = 16000
    square = np.sign(_sine(1.0, 16000, 100.0)).astype(np.float32)
    cases = {
        "zero": np.zeros(n, np.float32),
        "clipped_float": np.clip(4 * _sine(1.0, 16000), -1, 1),
        "square_int16": square,
    }
    for name, data in cases.items():
        path = str(tmp_path / f"{name}.wav")
        sub = "PCM_16" if name.endswith("int16") else "FLOAT"
        sf.write(path, data, 16000, subtype=sub)
        scores = model.classify_file(path)[0]
        assert torch.isfinite(scores).all(), name
        assert torch.allclose(scores.sum(), torch.tensor(1.0))
    # silence: every frame is Kaldi's floor log(float32 eps) in every bin
    feats = KaldiFbank()(torch.zeros(1, n))
    floor = math.log(torch.finfo(torch.float32).eps)
    assert torch.allclose(feats, torch.full_like(feats, floor))


def test_ten_ms_clip(tmp_path, model, native_model):
    path = str(tmp_path / "short.wav")
    sf.write(path, tone(0.01, 44100), 44100)
    wav = load_audio(path)
    assert wav.shape == (160,)
    # padded folder: no whole 25 ms frame, so all features are padding (0)
    scores = model.classify_file(path)[0]
    assert torch.allclose(
        scores, _feats_to_scores(model, torch.zeros(1, 128, 128)), atol=1e-6
    )
    # native-length folder: nothing to pad to, a clear error
    with pytest.raises(AudioError, match="shorter than one analysis") as e:
        native_model.classify_file(path)
    assert path in str(e.value) and "160 samples" in str(e.value)
    # the tensor path names the sizes
    with pytest.raises(ValueError, match="shorter than one frame") as e:
        native_model.classify_batch(wav[None])
    assert "160 samples" in str(e.value) and "400" in str(e.value)


def test_ten_minute_clip_load_and_windowed_tag(tmp_path, folder, capsys):
    path = write_long_8k(str(tmp_path / "long.wav"), seconds=600)
    wav = load_audio(path)
    assert wav.shape == (600 * 16000,) and torch.isfinite(wav).all()
    # a slice of the streamed windows equals the whole-file resampling
    # away from the window edges
    wins = iter_windows(path, 10.0, 10.0)
    for _ in range(31):
        start, end, piece = next(wins)
    assert (start, end) == (300.0, 310.0)
    ref = wav[300 * 16000 : 310 * 16000]
    assert (piece - ref)[400:-400].abs().max() < 1e-3
    status = tag.main(
        ["--model", folder, path, "--window", "10", "--json"]
        + ["--batch-size", "20", "--no-progress", "--top-k", "1"]
    )
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["windows"]) == 60
    assert result["windows"][-1]["end"] == 600.0


# ---------------------------------------------------------------------------
# Model folders and checkpoints
# ---------------------------------------------------------------------------


def test_checkpoint_for_other_number_of_classes(tmp_path, capsys):
    path = _export(str(tmp_path / "m"))
    torch.save(
        ASTHead(64, 5).state_dict(), os.path.join(path, "classifier.ckpt")
    )
    with pytest.raises(ValueError, match="does not fit ASTHead") as err:
        ASTAudioClassifier.from_hparams(source=path)
    assert "classifier.ckpt" in str(err.value)
    assert "size mismatch" in str(err.value)
    assert tag.main(["--model", path, "x.wav"]) == 2
    line = capsys.readouterr().err
    assert "cannot load model folder" in line and "Traceback" not in line


def test_label_file_for_other_number_of_classes(tmp_path):
    path = _export(str(tmp_path / "m"))
    with open(os.path.join(path, "label_encoder.txt"), "w") as f:
        f.write("'dog' => 0\n'rain' => 1\n================\n")
        f.write("'starting_index' => 0\n")
    with pytest.raises(ValueError, match="holds 2 labels") as err:
        ASTAudioClassifier.from_hparams(source=path)
    assert "label_encoder.txt" in str(err.value) and "3 outputs" in str(
        err.value
    )
    with open(os.path.join(path, "label_encoder.txt"), "w") as f:
        f.write("'dog' => 0\n'rain => 1\n")  # damaged: unbalanced quote
    with pytest.raises(ValueError, match="is damaged"):
        ASTAudioClassifier.from_hparams(source=path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing"])
def test_damaged_model_checkpoint(damage, tmp_path):
    path = _export(str(tmp_path / "m"))
    ckpt = os.path.join(path, "embedding_model.ckpt")
    if damage == "truncated":
        size = os.path.getsize(ckpt)
        with open(ckpt, "r+b") as f:
            f.truncate(size // 2)
        match = "not a readable PyTorch checkpoint"
    elif damage == "empty":
        open(ckpt, "wb").close()
        match = "is empty"
    else:
        os.remove(ckpt)
        match = "embedding_model.ckpt"
    with pytest.raises((ValueError, FileNotFoundError), match=match) as err:
        ASTAudioClassifier.from_hparams(source=path)
    assert "embedding_model.ckpt" in str(err.value)


# ---------------------------------------------------------------------------
# Tensors and impossible configurations
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(patch_size=(16, 200), input_tdim=128), "200 frames wide"),
        (dict(patch_size=200), "200 bins high"),
        (dict(fstride=0), "fstride=0"),
        (dict(tstride=0), "tstride=0"),
        (dict(embed_dim=64, num_heads=5), "num_heads=5"),
        (dict(patchout_time=12, input_tdim=128), "patchout_time=12"),
    ],
)
def test_impossible_ast_configs(kwargs, message):
    base = dict(embed_dim=64, depth=1, num_heads=2)
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        AST(**base)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(frame_shift=0), "frame_shift=0"),
        (dict(sample_rate=8000, low_freq=5000), "low_freq=5000"),
        (dict(n_mels=2), "n_mels=2"),
        (dict(window_type="kaiser"), "kaiser"),
    ],
)
def test_impossible_frontend_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KaldiFbank(**kwargs)


def test_bad_tensors():
    fbank = KaldiFbank()
    lobe, _ = _lobe_head()
    with pytest.raises(ValueError, match=r"received \(1, 100, 64\)"):
        lobe(torch.randn(1, 100, 64))
    with pytest.raises(ValueError, match="received"):
        lobe(torch.randn(100, 128))
    with pytest.raises(ValueError, match=r"received \(0, 10, 128\)"):
        lobe(torch.randn(0, 10, 128))
    with pytest.raises(ValueError, match="shape"):
        fbank(torch.zeros(2, 3, 16000))
    with pytest.raises(ValueError, match="dtype torch.int16"):
        fbank(torch.zeros(1, 16000, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        fbank(torch.zeros(2, 16000), torch.tensor([1.0, 1.5]))
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        fbank(torch.zeros(2, 16000), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="shorter than one frame"):
        fbank(torch.zeros(1, 160))
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio("x.wav", sample_rate=0)
    # NaN waveform: the frontend passes it on, the lobe names it
    wav = torch.randn(1, 16000)
    wav[0, 100] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        lobe(fbank(wav))
    # a feature map shorter than one patch is zero-padded to one patch
    short = torch.randn(1, 3, 128)
    padded = torch.nn.functional.pad(short, (0, 0, 0, 13))
    assert torch.allclose(lobe(short), lobe(padded), atol=1e-6)


# ---------------------------------------------------------------------------
# The converter
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_pth(tmp_path_factory):
    d = tmp_path_factory.mktemp("pth")
    lobe, head = _lobe_head()
    state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    state.update(
        {f"module.mlp_head.{k}": v for k, v in head.state_dict().items()}
    )
    path = str(d / "ast ü.pth")
    torch.save(state, path)
    labels = str(d / "labels.txt")
    with open(labels, "w") as f:
        f.write("\n".join(LABELS) + "\n")
    return path, labels


@pytest.mark.parametrize(
    "damage,message",
    [
        ("missing", "does not exist"),
        ("empty", "is empty (0 bytes)"),
        ("truncated", "not a readable PyTorch checkpoint"),
        ("random", "not a readable PyTorch checkpoint"),
        ("text", "not a readable PyTorch checkpoint"),
    ],
)
def test_convert_damaged_checkpoint(
    damage, message, reference_pth, tmp_path, capsys
):
    good, labels = reference_pth
    src = str(tmp_path / f"{damage}.pth")
    raw = open(good, "rb").read()
    content = {
        "empty": b"",
        "truncated": raw[: len(raw) // 2],
        "random": np.random.default_rng(0).bytes(5000),
        "text": b"not a checkpoint\n" * 40,
    }.get(damage)
    if content is not None:
        with open(src, "wb") as f:
            f.write(content)
    out = str(tmp_path / "out")
    argv = [src, "--out", out, "--labels", labels, "--input-tdim", "128"]
    assert convert_main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and src in err and message in err
    assert not os.path.exists(out) or not os.listdir(out)


def test_convert_wrong_labels_existing_out_and_odd_paths(
    reference_pth, tmp_path, capsys
):
    good, labels = reference_pth
    out = str(tmp_path / "out folder é")
    two = str(tmp_path / "two.txt")
    with open(two, "w") as f:
        f.write("a\nb\n")
    base = [good, "--out", out, "--input-tdim", "128"]
    assert convert_main(base + ["--labels", two]) == 1
    assert "2 labels for the 3 classes" in capsys.readouterr().err
    assert convert_main(base) == 1
    assert "pass --labels" in capsys.readouterr().err
    assert convert_main(base + ["--labels", labels]) == 0
    before = open(os.path.join(out, "classifier.ckpt"), "rb").read()
    assert convert_main(base + ["--labels", labels]) == 1
    assert "already exists" in capsys.readouterr().err
    assert open(os.path.join(out, "classifier.ckpt"), "rb").read() == before
    model = ASTAudioClassifier.from_hparams(source=out)
    assert model.labels == LABELS


def test_odd_sample_rate_is_fast_and_exact(tmp_path):
    """44101 Hz: torchaudio's polyphase kernel alone would need ~12 GB and
    a minute here; the frequency-domain path takes well under a second."""
    path = str(tmp_path / "odd.wav")
    sf.write(path, _sine(2.0, 44101), 44101, subtype="FLOAT")
    start = time.monotonic()
    wav = load_audio(path)
    assert time.monotonic() - start < 5.0
    assert wav.shape == (32000,)
    truth = torch.from_numpy(_sine(2.0, 16000))
    assert (wav - truth)[1600:-1600].abs().max() < 1e-4
    windows = list(iter_windows(path, 1.0, 1.0))
    assert [w.shape[0] for _, _, w in windows] == [16000, 16000]


@pytest.mark.parametrize("rate", [1, 999, 0x7FFFFFFF])
def test_damaged_sample_rate_field(rate, tmp_path, folder, capsys):
    path = str(tmp_path / "rate.wav")
    sf.write(path, tone(0.1, 16000), 16000, subtype="PCM_16")
    with open(path, "r+b") as f:
        f.seek(24)  # the fmt chunk's sample-rate field
        f.write(struct.pack("<I", rate))
    with pytest.raises(AudioError, match=f"sample rate of {rate} Hz"):
        load_audio(path)
    assert tag.main(["--model", folder, path, "--window", "1"]) == 1
    assert f"{rate} Hz" in capsys.readouterr().err


def test_checkpoint_with_other_classes_gets_a_fresh_head(reference_pth):
    """Fine-tuning from a checkpoint with another number of classes: the
    lobe's weights are kept, the head is new and of the asked size."""
    from speechbrain_ast.weights import (
        build_from_checkpoint,
        read_reference_checkpoint,
    )

    path, _ = reference_pth
    imported = read_reference_checkpoint(path, input_tdim=128)
    lobe, head, built = build_from_checkpoint(imported, n_classes=5)
    assert head[1].out_features == 5 and built.labels is None
    original, _ = _lobe_head()
    for key, value in original.state_dict().items():
        assert torch.equal(lobe.state_dict()[key], value), key
    lobe, head, _ = build_from_checkpoint(imported, n_classes=3)
    assert torch.equal(head[1].weight, _lobe_head()[1][1].weight)


def test_classify_batch_shapes(model):
    with pytest.raises(ValueError, match="downmix"):
        model.classify_batch(torch.zeros(1, 2, 16000))
    with pytest.raises(ValueError, match="wav_lens"):
        model.classify_batch(torch.zeros(2, 16000), torch.ones(3))
    with pytest.raises(AudioError, match="directory"):
        model.classify_file(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("cut", ["mid_frame", "frame_boundary"])
def test_truncated_flac(cut, tmp_path):
    """FLAC has no WAV-style size field; libsndfile's decoder finds the
    cut (mid-frame: lost sync; at a frame boundary: the declared sample
    count is not there)."""
    path = str(tmp_path / "cut.flac")
    sf.write(path, tone(2.0, 16000), 16000, format="FLAC")
    raw = open(path, "rb").read()
    if cut == "mid_frame":
        raw = raw[: len(raw) // 2 + 7]
    else:  # frame sync codes 0xFFF8 / 0xFFF9
        syncs = [
            i
            for i in range(len(raw) - 1)
            if raw[i] == 0xFF and raw[i + 1] in (0xF8, 0xF9)
        ]
        raw = raw[: syncs[3]]
    with open(path, "wb") as f:
        f.write(raw)
    for call in (load_audio, lambda p: list(iter_windows(p, 0.5, 0.5))):
        with pytest.raises(AudioError, match="Cannot decode") as err:
            call(path)
        assert path in str(err.value)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import ASTConfig, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=128,
        max_length=128,
        num_labels=3,
    )
    folder = str(tmp_path_factory.mktemp("hf") / "hf")
    ASTForAudioClassification(config).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "damage,name,message",
    [
        ("truncate", "model.safetensors", "not a readable safetensors"),
        ("empty", "model.safetensors", "not a readable safetensors"),
        ("junk", "config.json", "not valid JSON"),
        ("empty", "config.json", "not valid JSON"),
        ("junk", "preprocessor_config.json", "not valid JSON"),
    ],
)
def test_convert_damaged_hf_folder(
    damage, name, message, hf_folder, tmp_path, capsys
):
    import shutil

    src = str(tmp_path / "hf")
    shutil.copytree(hf_folder, src)
    path = os.path.join(src, name)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        with open(path, "w") as f:
            f.write("{not json" if damage == "junk" else "")
    assert convert_main([src, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and path in err


def test_labels_round_trip_or_are_refused(tmp_path):
    """Odd labels survive label_encoder.txt; one that its format cannot
    hold (" => ") is refused at export instead of loading as garbage."""
    lobe, _ = _lobe_head()
    labels = ["a\nb", "c'd\"e", "é 音", "================", "", " x "]
    folder = export_model_folder(
        str(tmp_path / "m"),
        lobe,
        ASTHead(64, len(labels)),
        labels,
        {"target_length": 128},
        (0.0, 1.0),
        multi_label=True,
    )
    assert ASTAudioClassifier.from_hparams(source=folder).labels == labels
    with pytest.raises(ValueError, match="' => '"):
        export_model_folder(
            str(tmp_path / "m2"),
            lobe,
            ASTHead(64, 2),
            ["dog", "cat => kitten"],
            {"target_length": 128},
            (0.0, 1.0),
            multi_label=True,
        )
    assert not os.path.exists(tmp_path / "m2")


def test_norm_stats_lists_every_bad_file_first(bad, tmp_path):
    good = str(tmp_path / "good.wav")
    sf.write(good, tone(0.5, 16000), 16000)
    header_bad = [c for c in sorted(BAD_CASES) if c not in ("nan", "inf")]
    paths = [good] + [bad[c] for c in header_bad]
    with pytest.raises(AudioError) as err:
        compute_norm_stats(paths)
    message = str(err.value)
    assert f"{len(header_bad)} of {len(paths)} files" in message
    for case in header_bad:
        assert bad[case] in message and BAD_CASES[case] in message
