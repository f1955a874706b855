"""The Speech Commands V2 recipe on a generated mini dataset in the official
layout: preparation (official split, idempotency, bad-file report, missing
dataset) and a ``--debug`` train/test run through the command line.

Authors
 * speechbrain-ast developers
"""

import csv
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from speechbrain_ast.data.audio import AudioError
from speechbrain_ast.testing.speech_commands import (
    WORDS_V2,
    make_speech_commands,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "SpeechCommands")
WORDS = ["yes", "no", "up"]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prep = _load(
    "speechcommands_prepare",
    os.path.join(RECIPE, "speechcommands_prepare.py"),
)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _listing(folder):
    return sorted(
        (os.path.relpath(os.path.join(d, n), folder), os.path.getmtime(d))
        for d, _, names in os.walk(folder)
        for n in names
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sc") / "speech_commands_v0.02"
    return make_speech_commands(str(root), words=WORDS)


def test_official_split(dataset, tmp_path):
    before = _listing(dataset)
    out = prep.prepare_speech_commands(dataset, str(tmp_path), download=False)
    # nothing is written into the dataset
    assert _listing(dataset) == before
    split = {k: _rows(out[k]) for k in ("train", "valid", "test")}
    for name, key in [
        ("validation_list.txt", "valid"),
        ("testing_list.txt", "test"),
    ]:
        with open(os.path.join(dataset, name)) as f:
            listed = {line.strip() for line in f if line.strip()}
        got = {os.path.relpath(r["wav"], dataset) for r in split[key]}
        assert got == listed and listed
    # train: every other clip of the word folders, background excluded
    all_clips = {
        f"{w}/{n}" for w in WORDS for n in os.listdir(os.path.join(dataset, w))
    }
    train = {os.path.relpath(r["wav"], dataset) for r in split["train"]}
    held_out = {
        os.path.relpath(r["wav"], dataset)
        for r in split["valid"] + split["test"]
    }
    assert train == all_clips - held_out and not train & held_out
    assert not any("_background_noise_" in r["wav"] for r in split["train"])
    ids = [r["ID"] for rows in split.values() for r in rows]
    assert len(ids) == len(set(ids))
    row = split["train"][0]
    assert row["label"] in WORDS and float(row["duration"]) == 1.0
    assert row["speaker"] == os.path.basename(row["wav"]).split("_nohash_")[0]
    with open(out["classes"]) as f:
        assert f.read().split() == sorted(WORDS_V2)


def test_idempotent_and_no_mixing(dataset, tmp_path):
    out = prep.prepare_speech_commands(dataset, str(tmp_path), download=False)
    stamps = {k: os.path.getmtime(p) for k, p in out.items()}
    os.utime(out["train"], (0, 0))
    prep.prepare_speech_commands(dataset, str(tmp_path), download=False)
    # skipped: the manifest we touched is left as it is
    assert os.path.getmtime(out["train"]) == 0
    assert os.path.getmtime(out["test"]) == stamps["test"]
    other = os.path.join(str(tmp_path), "copy_of_dataset")
    shutil.copytree(dataset, other)
    with pytest.raises(ValueError, match="copy_of_dataset"):
        prep.prepare_speech_commands(other, str(tmp_path), download=False)


def test_bad_files_reported_together(dataset, tmp_path):
    data = str(tmp_path / "data")
    shutil.copytree(dataset, data)
    empty = os.path.join(data, "yes", "spk03yes_nohash_0.wav")
    garbage = os.path.join(data, "no", "spk04no_nohash_0.wav")
    open(empty, "w").close()
    with open(garbage, "wb") as f:
        f.write(b"not a wav file at all" * 20)
    listed = os.path.join(data, "up", "spk00up_nohash_0.wav")
    os.remove(listed)
    out = str(tmp_path / "out")
    with pytest.raises(AudioError) as err:
        prep.prepare_speech_commands(data, out, download=False)
    message = str(err.value)
    assert message.startswith("3 Speech Commands file(s)")
    for path in (empty, garbage, listed):
        assert path in message
    with open(os.path.join(out, "bad_files.txt")) as f:
        assert len(f.read().splitlines()) == 3
    assert not os.path.exists(os.path.join(out, "train.csv"))


def test_missing_dataset_says_what_to_do(tmp_path, monkeypatch):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="speech_commands_v0.02"):
        prep.prepare_speech_commands(missing, str(tmp_path), download=False)

    def offline(url, folder):
        raise OSError("network is unreachable")

    monkeypatch.setattr(prep, "_download_and_unpack", offline)
    with pytest.raises(FileNotFoundError, match="download failed"):
        prep.prepare_speech_commands(missing, str(tmp_path), download=True)


def _recipe_row():
    with open(
        os.path.join(ROOT, "tests", "recipes", "SpeechCommands.csv")
    ) as f:
        row = list(csv.DictReader(f))[0]
    return row


def _flags(row, data_folder, output_folder):
    """The csv row's debug flags, pointed at the generated dataset."""
    flags = shlex.split(row["test_debug_flags"])
    flags[flags.index("--data_folder") + 1] = data_folder
    return flags + ["--output_folder", output_folder]


def _run(args, cwd):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _test_line(output_folder):
    with open(os.path.join(output_folder, "train_log.txt")) as f:
        lines = [line for line in f if "test acc" in line]
    assert lines, f"no test line in {output_folder}/train_log.txt"
    return float(re.search(r"test acc: ([0-9.e+-]+)", lines[-1]).group(1))


def test_debug_train_from_repository_root(dataset, tmp_path):
    row = _recipe_row()
    for key in ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file"):
        assert os.path.isfile(os.path.join(ROOT, row[key])), row[key]
    # from the repository root, as the csv row says (the AudioSet test
    # runs its recipe from inside the recipe folder)
    out = str(tmp_path / "root_run")
    hparams = os.path.relpath(row["Hparam_file"], "recipes/SpeechCommands")
    _run([row["Script_file"], hparams] + _flags(row, dataset, out), ROOT)
    acc = _test_line(out)
    assert 0.0 <= acc <= 1.0
    checks = row["test_debug_checks"]
    files = checks[checks.index("[") + 1 : checks.index("]")].split(",")
    for name in files:
        assert os.path.exists(os.path.join(out, name)), name
    with open(os.path.join(out, "metrics.jsonl")) as f:
        test = [json.loads(x) for x in f if '"test"' in x][-1]
    # every test clip was evaluated once; the logged accuracy is its own
    n_test = len(_rows(os.path.join(out, "manifests", "test.csv")))
    assert test["ids_evaluated"] == n_test
    assert abs(test["acc"] - acc) < 5e-3


REQUIRED_KEYS = [
    "data_folder", "output_folder", "seed", "number_of_epochs", "batch_size",
    "lr", "n_classes", "embed_dim", "depth", "num_heads", "target_length",
    "imagenet_pretrain", "audioset_pretrain",
]  # fmt: skip


@pytest.mark.parametrize("name", ["ast.yaml"])
def test_yaml_exposes_the_common_keys(name):
    with open(os.path.join(RECIPE, "hparams", name)) as f:
        keys = set(re.findall(r"^([A-Za-z_]\w*):", f.read(), re.MULTILINE))
    assert not set(REQUIRED_KEYS) - keys
