"""The recipes' command line: ``--help`` lists the yaml's own keys after
SpeechBrain's flags; a missing ``--data_folder``, a wrong data folder and an
``n_classes`` that does not fit the data end in one line on stderr and a
non-zero status, not a traceback; ESC-50 with ``--n_classes 50`` names the
classes no clip has from the official list.

Authors
 * speechbrain-ast developers
"""

import csv
import os
import re
import subprocess
import sys

import pytest
from esc50_prepare import class_names
from hyperpyyaml import load_hyperpyyaml

from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain_ast.testing.audioset import make_audioset
from speechbrain_ast.testing.esc50 import make_esc50
from speechbrain_ast.testing.speech_commands import make_speech_commands
from speechbrain_ast.training.recipe import recipe_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {
    name: os.path.join(ROOT, "recipes", name, "train.py")
    for name in ("ESC50", "SpeechCommands", "AudioSet")
}
DEFAULT_YAML = {
    "ESC50": "ast.yaml",
    "SpeechCommands": "ast.yaml",
    "AudioSet": "ast_full.yaml",
}
OFFICIAL_ESC50 = os.path.join(
    ROOT, "speechbrain_ast", "label_files", "esc_class_labels_indices.csv"
)
TINY = [
    "--embed_dim", "32", "--depth", "1", "--num_heads", "2",
    "--imagenet_pretrain", "False", "--audioset_pretrain", "False",
    "--target_length", "64", "--batch_size", "4", "--num_workers", "0",
    "--device", "cpu", "--noprogressbar",
]  # fmt: skip


def _run(recipe, args, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, SCRIPTS[recipe], *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _error_line(proc):
    """The one error line of a failed run (no traceback anywhere)."""
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("train.py: error: "), lines[-3:]
    return lines[-1]


def _official_esc50():
    with open(OFFICIAL_ESC50, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"]))
    ]


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    root = tmp_path_factory.mktemp("esc50") / "ESC-50-master"
    return make_esc50(str(root), n_classes=3, clips_per_fold=1, duration=0.5)


@pytest.mark.parametrize("recipe", sorted(SCRIPTS))
def test_missing_data_folder_is_one_line(recipe, tmp_path):
    line = _error_line(_run(recipe, [], cwd=str(tmp_path)))
    assert f"{DEFAULT_YAML[recipe]} needs --data_folder VALUE" in line
    assert "--help" in line


@pytest.mark.parametrize("recipe", sorted(SCRIPTS))
def test_wrong_data_folder_is_one_line(recipe, tmp_path):
    wrong = tmp_path / "not_the_dataset"
    wrong.mkdir()
    args = ["--data_folder", str(wrong), "--output_folder", str(tmp_path)]
    if recipe == "SpeechCommands":
        args += ["--download", "False"]
    line = _error_line(_run(recipe, args + TINY, cwd=str(tmp_path)))
    assert str(wrong) in line


def test_missing_hparams_file_is_one_line(tmp_path):
    line = _error_line(_run("ESC50", ["hparams/nope.yaml"], str(tmp_path)))
    assert "hparams/nope.yaml" in line and "not found" in line


@pytest.mark.parametrize(
    "recipe, args, yaml_name",
    [
        ("ESC50", ["hparams/ast.yaml", "--help"], "ast.yaml"),
        ("ESC50", ["--help"], "ast.yaml"),
        ("SpeechCommands", ["-h"], "ast.yaml"),
        ("AudioSet", ["hparams/ast_balanced.yaml", "--help"], "ast_balanced"),
    ],
)
def test_help_lists_the_recipes_keys(recipe, args, yaml_name, tmp_path):
    proc = _run(recipe, args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # SpeechBrain's flags, then the yaml's keys with their defaults
    assert "--device" in out and "--precision" in out
    yaml_file = os.path.join(
        ROOT, "recipes", recipe, "hparams", yaml_name.split(".")[0] + ".yaml"
    )
    assert f"recipe options of {yaml_file}" in out
    with open(yaml_file) as f:
        loaded = load_hyperpyyaml(f, {"data_folder": "x"})
    for key in (
        "audioset_pretrain", "imagenet_pretrain", "embed_dim", "depth",
        "number_of_epochs", "lr", "n_classes", "batch_size",
    ):  # fmt: skip
        match = re.search(rf"^  --{key} +(\S+)", out, flags=re.M)
        assert match, key
        assert load_hyperpyyaml(f"v: {match.group(1)}")["v"] == loaded[key]
    # AudioSet reads its clips from --data_folder or from --shards
    folder = "null" if recipe == "AudioSet" else "required"
    assert re.search(rf"^  --data_folder +{folder}$", out, flags=re.M)
    # the yaml's comments come along
    comment = "weight-averaged" if recipe == "AudioSet" else "best checkpoint"
    assert re.search(rf"^  --export_model +True  \(.*{comment}", out, re.M)
    # objects the yaml builds are named, not listed as flags
    assert "--checkpointer" not in out and "checkpointer" in out


def test_recipe_options_reads_every_setting_of_each_yaml():
    """Every top-level key of every recipe yaml is either a listed option
    or a named object, and the options' defaults are the loaded values."""
    for recipe in SCRIPTS:
        folder = os.path.join(ROOT, "recipes", recipe, "hparams")
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            options, objects = recipe_options(path)
            # the keys without a default (data_folder, an SSAST encoder)
            required = {
                o["key"]: "x" for o in options if o["value"] == "required"
            }
            with open(path) as f:
                loaded = load_hyperpyyaml(f, required)
            keys = [o["key"] for o in options] + objects
            assert set(keys) == set(loaded), (path, set(loaded) ^ set(keys))
            for option in options:
                value = option["value"]
                if option["key"] in required or "<" in value:
                    continue
                reread = load_hyperpyyaml(f"v: {value}")["v"]
                assert reread == loaded[option["key"]], (path, option)


def test_esc50_n_classes_above_the_data_stops(esc50, tmp_path):
    args = ["--data_folder", esc50, "--output_folder", str(tmp_path)]
    line = _error_line(
        _run("ESC50", args + TINY + ["--n_classes", "5"], str(tmp_path))
    )
    assert "n_classes is 5" in line and "has 3 classes" in line
    assert "--n_classes 3" in line and "--allow_unseen_classes True" in line
    assert not (tmp_path / "model").exists()

    line = _error_line(
        _run("ESC50", args + TINY + ["--n_classes", "51"], str(tmp_path))
    )
    assert "n_classes is 51" in line and "50 classes" in line


def test_esc50_fifty_classes_take_the_official_names(esc50, tmp_path):
    out = tmp_path / "out"
    args = ["--data_folder", esc50, "--output_folder", str(out)]
    proc = _run(
        "ESC50",
        args + TINY + ["--n_classes", "50", "--number_of_epochs", "1"],
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    encoder = CategoricalEncoder()
    encoder.load(str(out / "model" / "label_encoder.txt"))
    exported = [encoder.ind2lab[i] for i in range(len(encoder))]
    assert exported == _official_esc50()
    assert not any(re.fullmatch(r"class\d+", name) for name in exported)


def test_esc50_names_that_disagree_with_the_official_list(tmp_path):
    data = make_esc50(
        str(tmp_path / "data"), n_classes=2, clips_per_fold=1, duration=0.3
    )
    meta = os.path.join(data, "meta", "esc50.csv")
    with open(meta) as f:
        text = f.read()
    with open(meta, "w") as f:
        f.write(text.replace(",rooster,", ",chicken,"))
    args = ["--data_folder", data, "--output_folder", str(tmp_path / "o")]
    line = _error_line(
        _run("ESC50", args + TINY + ["--n_classes", "50"], str(tmp_path))
    )
    assert "1: 'chicken' (official: 'rooster')" in line
    assert "--n_classes 2" in line


def test_class_names_rules():
    official = ["dog", "rooster", "pig", "cow"]
    assert class_names({0: "a", 1: "b"}, 2) == ["a", "b"]
    assert class_names({0: "dog", 2: "pig"}, 4, official) == official
    # fewer than the official count: only when allowed, named from it
    with pytest.raises(ValueError, match="no clip has class 2"):
        class_names({0: "dog", 1: "rooster"}, 3, official)
    assert class_names(
        {0: "dog", 1: "rooster"}, 3, official, allow_unseen=True
    ) == ["dog", "rooster", "pig"]
    # no official list: placeholders only when allowed
    assert class_names({0: "a"}, 2, allow_unseen=True) == ["a", "class1"]
    with pytest.raises(ValueError, match="pass --n_classes 1"):
        class_names({0: "a"}, 2)
    with pytest.raises(ValueError, match="has class index 4"):
        class_names({4: "a"}, 3)
    with pytest.raises(ValueError, match="n_classes is 5 but the dataset"):
        class_names({0: "dog"}, 5, official)


def test_speech_commands_n_classes_must_equal_its_class_list(tmp_path):
    data = make_speech_commands(
        str(tmp_path / "sc"), words=("yes", "no"), speakers_per_word=3,
        all_folders=False,
    )  # fmt: skip
    out = tmp_path / "out"
    args = ["--data_folder", data, "--output_folder", str(out)]
    with open(
        os.path.join(ROOT, "recipes/SpeechCommands/hparams/ast.yaml")
    ) as f:
        n_listed = load_hyperpyyaml(f, {"data_folder": "x"})["n_classes"]
    proc = _run(
        "SpeechCommands",
        args + TINY + ["--n_classes", str(n_listed + 1)],
        str(tmp_path),
    )
    line = _error_line(proc)
    with open(out / "manifests" / "classes.txt") as f:
        listed = [w for w in f.read().split() if w]
    assert f"lists {len(listed)} words but n_classes is {n_listed + 1}" in line
    assert f"--n_classes {len(listed)}" in line


def test_audioset_n_classes_must_equal_its_label_list(tmp_path):
    data = make_audioset(str(tmp_path / "as"), n_classes=3, duration=0.3)
    out = tmp_path / "out"
    args = ["--data_folder", data, "--output_folder", str(out)]
    line = _error_line(
        _run("AudioSet", args + TINY + ["--n_classes", "5"], str(tmp_path))
    )
    assert "has 3 labels but n_classes is 5" in line
    assert "--n_classes 3" in line
