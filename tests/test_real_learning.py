"""The Speech Commands recipe learns real speech: FSDD spoken digits (0, 1,
2; 20 takes by each of six speakers, 8 kHz) in the Speech Commands layout,
split by speaker (four train speakers, lucas for validation, nicolas for
test), a tiny AST from scratch through the real command line, and an
accuracy on the unseen speaker well above chance (1/3).

The settings were chosen by trial on this split: CE, no mixup or noise,
SpecAugment 16/16, lr 1e-3 with 20 warm-up steps and x0.8 per epoch from
epoch 5, 15 epochs, 80 frames (0.8 s), frame patches of 128 x 2 (square
16 x 16 patches stayed near chance at the same budget). Seeds 1-8 gave
test accuracies of 0.90-0.98 on nicolas; the test asks for 0.7.

Authors
 * speechbrain-ast developers
"""

import csv
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from speechbrain_ast.testing.fsdd_speech_commands import (
    DIGIT_WORDS,
    list_fsdd,
    make_fsdd_speech_commands,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
# FSDD clips of the project: tests/data/real/fsdd and the two of digit 0
# that the SSAST and shard tests already hold
FSDD_FOLDERS = [
    os.path.join(DATA, "real", "fsdd"),
    os.path.join(DATA, "ssast"),
    os.path.join(DATA, "ssast", "more"),
    os.path.join(DATA, "shards"),
]
DIGITS = (0, 1, 2)
TAKES = 20
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
VALID, TEST = "lucas", "nicolas"
SETTINGS = [
    "--embed_dim", "64", "--depth", "2", "--num_heads", "2",
    "--imagenet_pretrain", "False", "--audioset_pretrain", "False",
    "--n_classes", "3", "--batch_size", "8", "--num_workers", "0",
    "--number_of_epochs", "15", "--lr", "0.001", "--warmup_steps", "20",
    "--loss", "ce", "--mixup_prob", "0", "--freqm", "16", "--timem", "16",
    "--noise_scale", "0", "--max_roll", "0", "--lr_decay_start", "5",
    "--lr_decay_factor", "0.8", "--patch_size", "[128, 2]",
    "--fstride", "128", "--tstride", "2", "--target_length", "80",
    "--seed", "1", "--device", "cpu", "--noprogressbar",
]  # fmt: skip


def fsdd_recordings(folder):
    """Links the project's FSDD clips of :data:`DIGITS`, takes below
    :data:`TAKES`, into one folder (FSDD's flat layout); returns it."""
    os.makedirs(folder, exist_ok=True)
    for source in FSDD_FOLDERS:
        for path in glob.glob(os.path.join(source, "*.flac")):
            name = os.path.basename(path)
            digit, _, take = name[: -len(".flac")].split("_")
            if int(digit) in DIGITS and int(take) < TAKES:
                os.symlink(path, os.path.join(folder, name))
    return folder


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    return fsdd_recordings(str(tmp_path_factory.mktemp("fsdd") / "rec"))


@pytest.fixture(scope="module")
def dataset(recordings, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("fsdd_sc") / "fsdd_speech_commands")
    return make_fsdd_speech_commands(
        recordings, root, DIGITS, [VALID], [TEST], takes=TAKES
    )


def test_the_project_holds_every_clip(recordings):
    clips = list_fsdd(recordings)
    assert len(clips) == len(DIGITS) * len(SPEAKERS) * TAKES
    assert {c[1] for c in clips} == set(SPEAKERS)
    assert {c[2] for c in clips} == set(range(TAKES))
    formats = {
        (sf.info(c[3]).samplerate, sf.info(c[3]).channels) for c in clips
    }
    assert formats == {(8000, 1)}


def test_layout_is_speaker_disjoint_and_keeps_the_samples(dataset, recordings):
    root = dataset["root"]
    per_speaker = len(DIGITS) * TAKES
    assert (dataset["train"], dataset["valid"], dataset["test"]) == (
        4 * per_speaker,
        per_speaker,
        per_speaker,
    )
    with open(os.path.join(root, "testing_list.txt")) as f:
        test = f.read().split()
    with open(os.path.join(root, "validation_list.txt")) as f:
        valid = f.read().split()
    assert {p.split("/")[1].split("_nohash_")[0] for p in test} == {TEST}
    assert {p.split("/")[1].split("_nohash_")[0] for p in valid} == {VALID}
    # the WAV is the FLAC's samples, at its own rate
    data, rate = sf.read(os.path.join(root, "two", "theo_nohash_7.wav"))
    source, source_rate = sf.read(os.path.join(recordings, "2_theo_7.flac"))
    assert rate == source_rate == 8000
    assert (data == source).all()
    assert sorted(os.listdir(root)) == sorted(
        [DIGIT_WORDS[d] for d in DIGITS]
        + ["testing_list.txt", "validation_list.txt"]
    )


def test_generator_refuses_an_unusable_split(recordings, tmp_path):
    with pytest.raises(ValueError, match="both validation and test"):
        make_fsdd_speech_commands(
            recordings, str(tmp_path / "a"), DIGITS, ["theo"], ["theo"]
        )
    with pytest.raises(ValueError, match="'nobody' has no clip"):
        make_fsdd_speech_commands(
            recordings, str(tmp_path / "b"), DIGITS, ["nobody"], [TEST]
        )
    with pytest.raises(ValueError, match="digit 7 has no clip"):
        make_fsdd_speech_commands(
            recordings, str(tmp_path / "c"), [0, 7], [VALID], [TEST]
        )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_fsdd(str(tmp_path / "none"))


def _tree(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    return {
        os.path.relpath(os.path.join(d, n), root): open(
            os.path.join(d, n), "rb"
        ).read()
        for d, _, names in os.walk(root)
        for n in names
    }


def _script(*args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_ast.testing.fsdd_speech_commands",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_generator_command_line_writes_what_the_function_writes(
    recordings, tmp_path
):
    cli = str(tmp_path / "cli")
    result = _script(
        recordings, cli, "--digits", "1,2", "--takes", "3",
        "--valid_speakers", "theo", "--test_speakers", "george,lucas",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "18 train, 6 valid, 12 test clips" in result.stdout
    fn = str(tmp_path / "fn")
    make_fsdd_speech_commands(
        recordings, fn, [1, 2], ["theo"], ["george", "lucas"], takes=3
    )
    assert _tree(cli) == _tree(fn) and len(_tree(cli)) == 38
    for args, message in [
        (["--digits", "1,x"], "digits are 0-9"),
        (["--takes", "0"], "--takes must be at least 1"),
        (["--test_speakers", "theo"], "both validation and test"),
        (["--valid_speakers", ","], "give at least one"),
    ]:
        result = _script(recordings, str(tmp_path / "x"), *args)
        assert result.returncode == 2 and message in result.stderr, args
        assert "Traceback" not in result.stderr


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_recipe_learns_digits_of_an_unseen_speaker(dataset, tmp_path):
    out = str(tmp_path / "out")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    proc = subprocess.run(
        [sys.executable, "recipes/SpeechCommands/train.py", "hparams/ast.yaml"]
        + ["--data_folder", dataset["root"], "--output_folder", out]
        + SETTINGS,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the manifests: the official-list split, speakers disjoint
    manifests = os.path.join(out, "manifests")
    speakers = {
        split: {r["speaker"] for r in _rows(f"{manifests}/{split}.csv")}
        for split in ("train", "valid", "test")
    }
    assert speakers["test"] == {TEST} and speakers["valid"] == {VALID}
    assert speakers["train"] == set(SPEAKERS) - {VALID, TEST}

    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    test = [r for r in records if r["stage"] == "test"][-1]
    assert test["ids_evaluated"] == dataset["test"]
    # well above chance (1/3) on a speaker it never saw
    assert test["acc"] >= 0.7, test
    with open(os.path.join(out, "train_log.txt")) as f:
        log = f.read()
    losses = [float(x) for x in re.findall(r"train loss: ([0-9.e+-]+)", log)]
    assert len(losses) == 15 and losses[-1] < 0.7 * losses[0]

    # the exported folder scores the test speaker's files as the recipe
    # did: EncoderClassifier's own file reading (8 kHz -> 16 kHz)
    from speechbrain.inference.classifiers import EncoderClassifier

    model = EncoderClassifier.from_hparams(
        source=os.path.join(out, "model"), savedir=str(tmp_path / "saved")
    )
    saved = torch.load(os.path.join(out, "test_predictions.pt"))
    rows = {r["ID"]: r for r in _rows(f"{manifests}/test.csv")}
    correct = 0
    for clip_id, scores in zip(saved["ids"], saved["scores"]):
        row = rows[clip_id]
        out_prob, _, index, labels = model.classify_file(row["wav"])
        assert torch.allclose(out_prob[0].softmax(-1), scores, atol=1e-3)
        assert index.item() == scores.argmax().item()
        correct += labels[0] == row["label"]
    assert correct / len(rows) == pytest.approx(test["acc"], abs=1e-6)
