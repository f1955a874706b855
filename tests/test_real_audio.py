"""Real recordings through the pipeline: the ESC-50 recipe on five real
ESC-50 clips (prepare, train, test, export, ``EncoderClassifier``), real
freesound clips at their own rates, lengths and channel counts through the
tagging command line and ``EncoderClassifier`` (equal to resampling and
downmixing by hand with torchaudio), and the bad-input matrix of
``tests/test_reliability_inputs.py`` applied to a real clip's bytes.

The clips and their licences: ``tests/data/real/README.md``,
``tests/data/sounds/LICENSE.md``, ``tests/data/ssast/README.md``.

Authors
 * speechbrain-ast developers
"""

import csv
import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from _reliability_audio import BAD_CASES
from test_real_learning import fsdd_recordings

from recipes.ESC50.esc50_prepare import prepare_esc50
from recipes.SpeechCommands.speechcommands_prepare import (
    prepare_speech_commands,
)
from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain_ast import tag
from speechbrain_ast.data.audio import (
    AudioError,
    audio_info,
    iter_windows,
    load_audio,
)
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.testing.fsdd_speech_commands import (
    make_fsdd_speech_commands,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
REAL = os.path.join(DATA, "real")
ESC50_FLAC = os.path.join(REAL, "esc50")
# the sources of the copies, where this machine has them
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SHARED_ESC50 = os.path.join(
    SHARED, "upstream-speechbrain", "tests", "samples", "ESC50"
)

#: freesound clips: name -> (path, rate, channels, seconds)
SOUNDS = {
    "snoring": (os.path.join(DATA, "sounds", "snoring.flac"), 44100, 1),
    "piano": (os.path.join(DATA, "sounds", "piano.flac"), 44100, 2),
    "typing": (os.path.join(REAL, "sounds", "typing_3s.flac"), 48000, 2),
}
LABELS = ["dog", "rain", "speech", "siren", "engine"]


# ---------------------------------------------------------------------------
# The copies are the recordings they say they are
# ---------------------------------------------------------------------------


def _esc50_rows():
    with open(os.path.join(ESC50_FLAC, "meta", "esc50.csv")) as f:
        return list(csv.DictReader(f))


def test_freesound_clips_cover_rates_and_channels():
    seen = set()
    for name, (path, rate, channels) in SOUNDS.items():
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (rate, channels), name
        assert info.subtype == "PCM_16"
        seen.add((rate, channels))
    assert seen == {(44100, 1), (44100, 2), (48000, 2)}
    assert sf.info(SOUNDS["snoring"][0]).duration > 16
    assert sf.info(SOUNDS["typing"][0]).duration == 3.0


@pytest.mark.skipif(
    not os.path.isdir(SHARED_ESC50), reason="the source clips are not here"
)
def test_copies_equal_their_sources(esc50):
    """The ESC-50 layout rebuilt from the FLAC copies is the original
    sample's files byte for byte; the cut clip is the source's start."""
    for rel in ["meta/esc50.csv"] + [
        f"audio/{row['filename']}" for row in _esc50_rows()
    ]:
        with open(os.path.join(SHARED_ESC50, rel), "rb") as f:
            original = f.read()
        with open(os.path.join(esc50, rel), "rb") as f:
            assert f.read() == original, rel
    typing, rate = sf.read(
        os.path.join(SHARED, "data", "sounds", "typing.flac"), dtype="int16"
    )
    cut, _ = sf.read(SOUNDS["typing"][0], dtype="int16")
    assert np.array_equal(typing[: 3 * rate], cut)


# ---------------------------------------------------------------------------
# The ESC-50 recipe on real ESC-50 clips
# ---------------------------------------------------------------------------


def _flac(filename):
    return os.path.join(ESC50_FLAC, "audio", filename[: -len(".wav")] + ".flac")


def make_real_esc50(root):
    """The five real clips in the ESC-50 layout: ``audio/*.wav`` (the
    FLAC copies' samples as 16-bit WAV, as the dataset ships them) and
    ``meta/esc50.csv``; returns ``root``."""
    os.makedirs(os.path.join(root, "audio"))
    shutil.copytree(
        os.path.join(ESC50_FLAC, "meta"), os.path.join(root, "meta")
    )
    for row in _esc50_rows():
        data, rate = sf.read(_flac(row["filename"]), dtype="int16")
        sf.write(
            os.path.join(root, "audio", row["filename"]),
            data,
            rate,
            subtype="PCM_16",
        )
    return root


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    return make_real_esc50(str(tmp_path_factory.mktemp("esc") / "ESC-50"))


def test_esc50_prepare_on_real_clips(esc50, tmp_path):
    manifests = prepare_esc50(
        esc50, str(tmp_path / "save"), [1, 2, 3], [4], [5]
    )
    with open(manifests["train"]) as f:
        train = list(csv.DictReader(f))
    assert sorted(r["class_index"] for r in train) == ["0", "19", "43"]
    with open(manifests["test"]) as f:
        (test,) = list(csv.DictReader(f))
    assert test["ID"] == "5-156999-C-19" and test["category"] == "thunderstorm"
    assert audio_info(test["wav"]) == (44100, 220500, 1)


@pytest.fixture(scope="module")
def esc50_run(esc50, tmp_path_factory):
    """Prepare, 2 epochs of a tiny AST, test and export, by the recipe's
    command line, with the official 50 outputs."""
    out = str(tmp_path_factory.mktemp("esc_run") / "out")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    proc = subprocess.run(
        [sys.executable, "recipes/ESC50/train.py", "hparams/ast.yaml",
         "--data_folder", esc50, "--output_folder", out, "--n_classes", "50",
         "--embed_dim", "64", "--depth", "2", "--num_heads", "2",
         "--imagenet_pretrain", "False", "--audioset_pretrain", "False",
         "--target_length", "128", "--batch_size", "2", "--num_workers", "0",
         "--number_of_epochs", "2", "--train_fold_nums", "[1, 2, 3]",
         "--valid_fold_nums", "[4]", "--test_fold_nums", "[5]",
         "--device", "cpu", "--noprogressbar"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_esc50_recipe_runs_end_to_end(esc50_run):
    with open(os.path.join(esc50_run, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["epoch"] for r in records if r["stage"] == "valid"] == [1, 2]
    (test,) = [r for r in records if r["stage"] == "test"]
    assert test["ids_evaluated"] == 1 and test["acc"] in (0.0, 1.0)
    for name in ("hyperparams.yaml", "embedding_model.ckpt",
                 "classifier.ckpt", "label_encoder.txt"):  # fmt: skip
        assert os.path.isfile(os.path.join(esc50_run, "model", name)), name


def test_exported_folder_classifies_the_real_clips(esc50_run, esc50, tmp_path):
    model = EncoderClassifier.from_hparams(
        source=os.path.join(esc50_run, "model"), savedir=str(tmp_path / "s")
    )
    names = model.hparams.label_encoder.decode_ndim(list(range(50)))
    assert len(names) == 50 and len(set(names)) == 50
    assert (names[0], names[19], names[43]) == (
        "dog",
        "thunderstorm",
        "car_horn",
    )
    saved = torch.load(os.path.join(esc50_run, "test_predictions.pt"))
    for row in _esc50_rows():
        wav_path = os.path.join(esc50, "audio", row["filename"])
        out_prob, score, index, label = model.classify_file(wav_path)
        assert out_prob.shape == (1, 50) and torch.isfinite(out_prob).all()
        assert label[0] == names[index.item()]
        # the FLAC copy and the WAV are the same samples: the same scores
        flac_prob = model.classify_file(_flac(row["filename"]))[0]
        assert torch.allclose(flac_prob, out_prob, atol=1e-6)
        if row["filename"].startswith("5-"):
            # the recipe scored its test clip the same way
            assert saved["ids"] == ["5-156999-C-19"]
            assert torch.allclose(
                out_prob[0].softmax(-1), saved["scores"][0], atol=1e-4
            )


# ---------------------------------------------------------------------------
# Freesound clips through the tagging command line and EncoderClassifier
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    head = ASTHead(64, len(LABELS)).eval()
    folder = str(tmp_path_factory.mktemp("real_tag") / "model")
    export_model_folder(
        folder, lobe, head, LABELS, {"target_length": 128}, (-4.27, 4.57),
        multi_label=False,
    )  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def classifier(model_dir):
    return ASTAudioClassifier.from_hparams(source=model_dir)


def _by_hand(path, start=None, end=None):
    """The clip at 16 kHz mono, by hand: soundfile, torchaudio's resample
    at the file's rate, mean over the channels (a slice in seconds)."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    if start is not None:
        data = data[round(start * rate) : round(end * rate)]
    channels = torch.from_numpy(data.T.copy())
    return torchaudio.functional.resample(channels, rate, 16000).mean(0)


def _scores(result):
    return [
        {d["label"]: d["score"] for d in result["labels"]}[lab]
        for lab in LABELS
    ]


def test_tag_command_scores_equal_by_hand(model_dir, classifier):
    """The real command on the three clips (one JSON line each), against
    the folder's scores of the clips resampled and downmixed by hand."""
    paths = [path for path, _, _ in SOUNDS.values()]
    run = subprocess.run(
        [sys.executable, "-m", "speechbrain_ast.tag", "--model", model_dir,
         "--json", "--top-k", str(len(LABELS)), "--no-progress", *paths],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["file"] for r in results] == paths
    for path, result in zip(paths, results):
        scores = torch.tensor(_scores(result))
        assert torch.isfinite(scores).all()
        assert scores.sum().item() == pytest.approx(1.0, abs=1e-5)
        wav = _by_hand(path)
        assert torch.allclose(load_audio(path), wav, atol=1e-5)
        expected = classifier.classify_batch(wav[None])[0][0]
        assert torch.allclose(scores, expected, atol=1e-5), path


def _expected_windows(seconds, window, hop):
    """Window (start, end) pairs by hand: from 0 every ``hop``; a window
    starts only while the previous ones leave some of the clip uncovered,
    the last one ends at the clip's end."""
    spans, start = [], 0.0
    while True:
        spans.append((start, min(start + window, seconds)))
        start += hop
        if start >= seconds or spans[-1][1] >= seconds:
            return spans


@pytest.mark.parametrize(
    "name,window,hop", [("snoring", 4.0, 3.0), ("piano", 2.5, 2.5),
                        ("typing", 1.0, 0.4)],
)  # fmt: skip
def test_windowed_tagging_counts_and_scores(
    name, window, hop, model_dir, classifier, capsys
):
    path, rate, _ = SOUNDS[name]
    seconds = sf.info(path).frames / rate
    argv = ["--model", model_dir, path, "--json", "--no-progress"]
    argv += ["--window", str(window), "--hop", str(hop)]
    assert tag.main(argv + ["--top-k", str(len(LABELS))]) == 0
    result = json.loads(capsys.readouterr().out)
    spans = [(w["start"], w["end"]) for w in result["windows"]]
    expected = _expected_windows(seconds, window, hop)
    assert len(spans) == len(expected)
    assert len(spans) == 1 + math.ceil((seconds - window) / hop)
    for (start, end), (s, e) in zip(spans, expected):
        assert start == pytest.approx(s, abs=1e-6)
        assert end == pytest.approx(e, abs=1e-4)
    # each window equals the folder's scores of that slice, by hand
    for w in result["windows"][:: max(1, len(spans) // 3)]:
        wav = _by_hand(path, w["start"], w["end"])
        expected = classifier.classify_batch(wav[None])[0][0]
        assert torch.allclose(torch.tensor(_scores(w)), expected, atol=1e-5)
    table = torch.tensor([_scores(w) for w in result["windows"]])
    mean = {d["label"]: d["score"] for d in result["mean"]}
    assert torch.allclose(
        torch.tensor([mean[lab] for lab in LABELS]), table.mean(0), atol=1e-5
    )


def test_plain_encoder_classifier_on_real_clips(
    model_dir, classifier, tmp_path
):
    """SpeechBrain's own reader (torchaudio, its resampler and downmix)
    scores the files as the clips resampled and downmixed by hand."""
    plain = EncoderClassifier.from_hparams(
        source=model_dir, savedir=str(tmp_path / "plain")
    )
    for name, (path, _, _) in SOUNDS.items():
        out_prob, _, index, label = plain.classify_file(path)
        assert out_prob.shape == (1, len(LABELS))
        assert torch.isfinite(out_prob).all(), name
        expected = classifier.classify_batch(_by_hand(path)[None])[0][0]
        assert torch.allclose(out_prob[0].softmax(-1), expected, atol=1e-4)
        assert label[0] == LABELS[expected.argmax().item()]


# ---------------------------------------------------------------------------
# The bad-input matrix on a real clip's bytes
# ---------------------------------------------------------------------------

#: the real clip the damage is applied to: an FSDD recording (8 kHz)
REAL_CLIP = os.path.join(DATA, "real", "fsdd", "1_theo_3.flac")


def _real_wav_bytes():
    """The real clip as the 16-bit WAV bytes soundfile writes."""
    data, rate = sf.read(REAL_CLIP, dtype="int16")
    buf = io.BytesIO()
    sf.write(buf, data, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue(), data, rate


def damaged_real_file(folder, case, name=None):
    """Writes the real clip damaged as :data:`BAD_CASES` ``case`` says
    (``missing`` writes nothing); returns the path."""
    raw, data, rate = _real_wav_bytes()
    path = os.path.join(folder, name or f"{case}.wav")
    if case == "missing":
        return path
    if case == "empty":
        content = b""
    elif case == "no_samples":
        # the clip's own RIFF header, its data chunk emptied
        data_at = raw.index(b"data")
        header = bytearray(raw[: data_at + 8])
        header[data_at + 4 : data_at + 8] = struct.pack("<I", 0)
        header[4:8] = struct.pack("<I", len(header) - 8)
        content = bytes(header)
    elif case == "truncated":
        content = raw[: len(raw) // 2]
    elif case == "random_bytes":
        # the clip's samples without any header: not a format
        content = raw[raw.index(b"data") + 8 :]
    elif case == "not_audio":
        path = os.path.join(folder, (name or "notes") + ".txt")
        content = b"a transcript of the clip: one\n" * 60
    elif case in ("nan", "inf"):
        buf = io.BytesIO()
        floats = data.astype(np.float32) / 32768.0
        floats[len(floats) // 2] = np.nan if case == "nan" else np.inf
        sf.write(buf, floats, rate, format="WAV", subtype="FLOAT")
        content = buf.getvalue()
    else:
        raise KeyError(case)
    with open(path, "wb") as f:
        f.write(content)
    return path


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("damaged_real"))
    return {case: damaged_real_file(folder, case) for case in BAD_CASES}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_damaged_real_clip_load_audio(case, damaged, classifier):
    path = damaged[case]
    for call in (
        lambda: load_audio(path),
        lambda: classifier.classify_file(path),
        lambda: list(iter_windows(path, 0.5, 0.25)),
    ):
        with pytest.raises(AudioError) as err:
            call()
        assert path in str(err.value) and BAD_CASES[case] in str(err.value)


def test_damaged_real_clips_tag_cli(damaged, model_dir, capsys):
    names = sorted(BAD_CASES)
    good = REAL_CLIP
    for extra in ([], ["--window", "0.3", "--hop", "0.2"]):
        argv = ["--model", model_dir, "--json", "--no-progress", *extra]
        status = tag.main(argv + [damaged[c] for c in names] + [good])
        out, err = capsys.readouterr()
        assert status == 1
        assert [json.loads(x)["file"] for x in out.splitlines()] == [good]
        lines = err.strip().splitlines()
        assert len(lines) == len(names)
        for line, case in zip(lines, names):
            assert line.startswith("error: ") and damaged[case] in line
            assert BAD_CASES[case] in line
        assert "Traceback" not in err


def test_wrong_extension_reads_the_same_samples(tmp_path, classifier):
    """FLAC bytes named .wav and WAV bytes named .flac: read by content,
    the same waveform as the correctly named file."""
    raw, data, rate = _real_wav_bytes()
    flac_as_wav = str(tmp_path / "clip_flac.wav")
    shutil.copyfile(REAL_CLIP, flac_as_wav)
    wav_as_flac = str(tmp_path / "clip_wav.flac")
    with open(wav_as_flac, "wb") as f:
        f.write(raw)
    reference = load_audio(REAL_CLIP)
    assert reference.shape == (round(len(data) * 16000 / rate),)
    for path in (flac_as_wav, wav_as_flac):
        assert torch.equal(load_audio(path), reference)
        assert audio_info(path) == (rate, len(data), 1)
        assert torch.allclose(
            classifier.classify_file(path)[0],
            classifier.classify_file(REAL_CLIP)[0],
        )


def test_truncated_real_flac(tmp_path):
    raw = open(REAL_CLIP, "rb").read()
    path = str(tmp_path / "cut.flac")
    with open(path, "wb") as f:
        f.write(raw[: len(raw) // 2 + 7])
    with pytest.raises(AudioError, match="Cannot decode") as err:
        load_audio(path)
    assert path in str(err.value)


def test_prepare_lists_every_damaged_real_clip(tmp_path):
    """FSDD in the Speech Commands layout with damaged copies of a real
    clip among the good ones: preparation names all of them at once."""
    rec = fsdd_recordings(str(tmp_path / "rec"))
    root = make_fsdd_speech_commands(
        rec, str(tmp_path / "sc"), [1, 2], ["lucas"], ["nicolas"], takes=2
    )["root"]
    # header-level damage: what the up-front check must catch
    cases = ["empty", "no_samples", "truncated", "random_bytes"]
    bad = [
        damaged_real_file(
            os.path.join(root, "one"), case, f"theo_nohash_{9 + i}.wav"
        )
        for i, case in enumerate(cases)
    ]
    out = str(tmp_path / "out")
    with pytest.raises(AudioError) as err:
        prepare_speech_commands(root, out, download=False)
    message = str(err.value)
    assert message.startswith(f"{len(cases)} Speech Commands file(s)")
    for path, case in zip(bad, cases):
        assert path in message and BAD_CASES[case] in message, case
    assert not os.path.exists(os.path.join(out, "train.csv"))
