"""The audio-folder recipe's preparation and report, on real recordings.

Layouts (class folders, metadata.csv), the stratified split that keeps
groups together, the refusals with their counts, multi-label metadata, the
split written once and reused, every unreadable file listed at once, and the
report's figures against a computation by hand.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os
import shutil

import pytest
import torch
from audiofolder_prepare import prepare_audio_folder, split_clips
from audiofolder_report import classification_report, write_report

from speechbrain_ast.data.audio import AudioError

FSDD = os.path.join(os.path.dirname(__file__), "data", "real", "fsdd")
SPEAKER = r"_([a-z]+)_"


def fsdd_folders(root, digits=("0", "1", "2"), speakers=None, takes=None):
    """FSDD clips in the one-sub-folder-per-class layout."""
    for name in sorted(os.listdir(FSDD)):
        digit, speaker, take = name[: -len(".flac")].split("_")
        if digit not in digits or (speakers and speaker not in speakers):
            continue
        if takes is not None and int(take) not in takes:
            continue
        os.makedirs(os.path.join(root, digit), exist_ok=True)
        shutil.copy(os.path.join(FSDD, name), os.path.join(root, digit, name))
    return root


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_class_folders_split_by_speaker(tmp_path):
    data = fsdd_folders(tmp_path / "data")
    info = prepare_audio_folder(
        data, tmp_path / "out", group_pattern=SPEAKER, seed=3
    )
    assert info["classes"] == ["0", "1", "2"]
    assert info["multi_label"] is False
    speakers = {}
    for split in ("train", "valid", "test"):
        rows = read_rows(tmp_path / "out" / f"{split}.csv")
        assert {r["labels"] for r in rows} == {"0", "1", "2"}
        for r in rows:
            assert r["group"] in os.path.basename(r["wav"])
            speakers.setdefault(r["group"], set()).add(split)
    # six speakers, each in exactly one split
    assert len(speakers) == 6
    assert all(len(s) == 1 for s in speakers.values())
    # durations read from the headers (FSDD clips are under 2 s)
    assert 0.1 < info["durations"]["median"] < 2.0


def test_split_is_stratified_and_seeded(tmp_path):
    clips = [{"labels": [c], "group": ""} for c in "a" * 50 + "b" * 20]
    splits = split_clips(clips, 0.1, 0.2, seed=1)
    for cls, n in (("a", 50), ("b", 20)):
        mine = [s for c, s in zip(clips, splits) if c["labels"] == [cls]]
        assert mine.count("valid") == round(0.1 * n)
        assert mine.count("test") == round(0.2 * n)
    assert split_clips(clips, 0.1, 0.2, seed=1) == splits
    assert split_clips(clips, 0.1, 0.2, seed=2) != splits


def test_split_written_once_and_reused(tmp_path):
    data = fsdd_folders(tmp_path / "data", speakers=("george", "jackson"))
    prepare_audio_folder(data, tmp_path / "out")
    first = read_rows(tmp_path / "out" / "split.csv")
    stamp = os.path.getmtime(tmp_path / "out" / "train.csv")
    prepare_audio_folder(data, tmp_path / "out")
    assert os.path.getmtime(tmp_path / "out" / "train.csv") == stamp
    # a manifest lost: rebuilt from the same split.csv, not split anew
    os.remove(tmp_path / "out" / "test.csv")
    os.remove(tmp_path / "out" / "prepare_options.json")
    prepare_audio_folder(data, tmp_path / "out", seed=99)
    assert read_rows(tmp_path / "out" / "split.csv") == first


def test_refusals_name_class_and_counts(tmp_path):
    data = fsdd_folders(tmp_path / "one", digits=("0",))
    with pytest.raises(ValueError, match=r"one class only \('0', 118 clips"):
        prepare_audio_folder(data, tmp_path / "o1")
    data = fsdd_folders(tmp_path / "empty", speakers=("george",))
    os.makedirs(os.path.join(data, "3"))
    with pytest.raises(ValueError, match=r"class folder .*3' has no audio"):
        prepare_audio_folder(data, tmp_path / "o2")
    data = fsdd_folders(tmp_path / "rare", speakers=("george",))
    for name in sorted(os.listdir(os.path.join(data, "2")))[2:]:
        os.remove(os.path.join(data, "2", name))
    with pytest.raises(
        ValueError,
        match=r"1 classes have fewer than 3 clips"
        r".*\('2': 2\): add clips",
    ):
        prepare_audio_folder(data, tmp_path / "o3")
    data = fsdd_folders(tmp_path / "two", speakers=("george", "jackson"))
    with pytest.raises(ValueError, match=r"fewer than 3 groups.*'0': 2, "):
        prepare_audio_folder(data, tmp_path / "o4", group_pattern=SPEAKER)


def test_unreadable_files_listed_together(tmp_path):
    data = fsdd_folders(tmp_path / "data", speakers=("george",))
    for name in ("0/broken.wav", "1/empty.flac"):
        with open(os.path.join(data, name), "wb") as f:
            f.write(b"not audio" if "broken" in name else b"")
    with pytest.raises(AudioError) as err:
        prepare_audio_folder(data, tmp_path / "out")
    text = str(err.value)
    assert "2 of 61 audio files" in text
    assert "broken.wav" in text and "empty.flac" in text


def test_metadata_multi_label_and_given_split(tmp_path):
    data = tmp_path / "data"
    os.makedirs(data)
    rows = []
    for i, name in enumerate(sorted(os.listdir(FSDD))[:60]):
        shutil.copy(os.path.join(FSDD, name), data / name)
        labels = name.split("_")[0] + (";loud" if i % 2 == 0 else "")
        rows.append([name, labels, ("train", "valid", "test")[i % 3]])
    with open(data / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "labels", "split"], *rows])
    info = prepare_audio_folder(data, tmp_path / "out")
    assert info["multi_label"] is True
    assert "loud" in info["classes"]
    test = read_rows(tmp_path / "out" / "test.csv")
    assert len(test) == 20
    with open(tmp_path / "out" / "classes.json") as f:
        assert json.load(f)["classes"] == info["classes"]
    # a partial split column is refused
    rows[0][2] = ""
    with open(data / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "labels", "split"], *rows])
    with pytest.raises(ValueError, match="gives a split for 59 of 60"):
        prepare_audio_folder(data, tmp_path / "out2")


def test_metadata_group_column(tmp_path):
    data = tmp_path / "data"
    os.makedirs(data)
    rows = []
    for name in sorted(os.listdir(FSDD)):
        digit, speaker, _ = name.split("_")
        shutil.copy(os.path.join(FSDD, name), data / name)
        rows.append([name, digit, speaker])
    with open(data / "metadata.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "label", "speaker"], *rows])
    prepare_audio_folder(data, tmp_path / "out", group_column="speaker")
    seen = {}
    for split in ("train", "valid", "test"):
        for r in read_rows(tmp_path / "out" / f"{split}.csv"):
            seen.setdefault(r["group"], set()).add(split)
    assert all(len(s) == 1 for s in seen.values())
    with pytest.raises(ValueError, match="'room' is not a column"):
        prepare_audio_folder(data, tmp_path / "o2", group_column="room")


def test_report_against_hand_computation(tmp_path):
    classes = ["dog", "rain", "siren"]
    # true:      dog dog dog rain rain siren
    # predicted: dog dog rain rain siren siren
    scores = torch.tensor(
        [
            [0.8, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.3, 0.6, 0.1],
            [0.1, 0.7, 0.2],
            [0.2, 0.3, 0.5],
            [0.1, 0.1, 0.8],
        ]
    )
    targets = torch.eye(3)[torch.tensor([0, 0, 0, 1, 1, 2])]
    files = [f"clip{i}.wav" for i in range(6)]
    r = classification_report(scores, targets, classes, files)
    # dog: tp 2, fp 0, fn 1; rain: tp 1, fp 1, fn 1; siren: tp 1, fp 1, fn 0
    assert r["per_class"]["dog"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert r["per_class"]["rain"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert r["per_class"]["siren"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["macro"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert [(p["true"], p["predicted"]) for p in r["confused_pairs"]] == [
        ("dog", "rain"),
        ("rain", "siren"),
    ]
    # clip2 gave the truth 0.3 against 0.6, clip4 gave it 0.3 against 0.5
    assert [w["file"] for w in r["most_wrong"]] == ["clip2.wav", "clip4.wav"]
    path = write_report(tmp_path, r, classes)
    text = open(path).read()
    assert "| dog | 1.000 | 0.667 | 0.800 | 3 |" in text
    assert "dog -> rain: 1 clips" in text
    assert os.path.getsize(tmp_path / "confusion.png") > 1000


def test_report_multi_label(tmp_path):
    scores = torch.tensor([[0.9, 0.7], [0.2, 0.4], [0.6, 0.1]])
    targets = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    r = classification_report(
        scores, targets, ["a", "b"], ["x", "y", "z"], True
    )
    # b: tp 1 (x), fn 1 (y); a: tp 2
    assert r["per_class"]["b"]["recall"] == 0.5
    assert r["per_class"]["a"]["precision"] == 1.0
    assert r["accuracy"] == pytest.approx(2 / 3)
    assert r["most_wrong"][0]["file"] == "y"


def test_labels_and_groups_from_file_names(tmp_path):
    info = prepare_audio_folder(
        FSDD, tmp_path / "out", label_pattern=r"^([0-9])_",
        group_pattern=SPEAKER,
    )  # fmt: skip
    assert info["classes"] == ["0", "1", "2"]
    rows = read_rows(tmp_path / "out" / "train.csv")
    assert all(
        os.path.basename(r["wav"]).startswith(r["labels"] + "_") for r in rows
    )
    with pytest.raises(ValueError, match=r"label_pattern '\^x' does not match"):
        prepare_audio_folder(FSDD, tmp_path / "o2", label_pattern="^x")
