"""DESED recipe on a mini DESED synthesised from the project's real
recordings (FSDD digits over piano and snoring): preparation and its
errors, a run of each yaml through the command line with the exported
folder scoring frames, and a killed run resuming to the same result.

Authors
 * speechbrain-ast developers
"""

import ast
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import torch
from _resume import kill_after_first_checkpoint
from test_real_learning import fsdd_recordings

from recipes.DESED.desed_prepare import DESED_SETS, REPORT_FILE, prepare_desed
from speechbrain_ast.data.audio import AudioError, load_audio
from speechbrain_ast.testing.soundscapes import fsdd_foregrounds, make_desed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "DESED")
SOUNDS = os.path.join(ROOT, "tests", "data", "sounds")
COUNTS = {
    "synthetic_train": 8,
    "weak": 4,
    "unlabel_in_domain": 2,
    "synthetic_validation": 6,
    "validation": 6,
}
TINY = [
    "--embed_dim", "24", "--depth", "1",
    "--num_heads", "2", "--target_length", "300", "--batch_size", "4",
    "--num_workers", "0", "--device", "cpu", "--noprogressbar",
]  # fmt: skip


@pytest.fixture(scope="module")
def desed(tmp_path_factory):
    """3 s soundscapes of spoken digits 0-2 (1-3 a clip) over piano and
    snoring; every class in the validation and test sets."""
    tmp = tmp_path_factory.mktemp("desed")
    recordings = fsdd_recordings(str(tmp / "rec"))
    backgrounds = [
        os.path.join(SOUNDS, n) for n in ("piano.flac", "snoring.flac")
    ]
    sets = make_desed(
        str(tmp / "dataset"),
        fsdd_foregrounds(recordings),
        backgrounds,
        COUNTS,
        duration=3.0,
        events_per_clip=(1, 3),
    )
    for name in ("synthetic_validation", "validation"):
        assert {e[2] for c in sets[name] for e in c["events"]} == {
            "zero", "one", "two",
        }  # fmt: skip
    return str(tmp / "dataset")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_prepare_writes_manifests_and_is_idempotent(desed, tmp_path):
    out = prepare_desed(desed, str(tmp_path))
    assert out["labels"] == ["one", "two", "zero"]
    train, test = _read(out["train"]), _read(out["test"])
    assert len(train) == 12 and len(test) == 6
    assert len(_read(out["valid"])) == 6 and len(_read(out["unlabelled"])) == 2
    strong = train["synthetic_train/synthetic_train_0000"]
    assert strong["strong"] and strong["duration"] == 3.0
    assert sorted({e[2] for e in strong["events"]}) == strong["labels"]
    weak = train["weak/weak_0000"]
    assert not weak["strong"] and weak["events"] == [] and weak["labels"]
    assert os.path.isfile(weak["wav"]) and weak["wav"].startswith(desed)
    mtime = os.path.getmtime(out["train"])
    prepare_desed(desed, str(tmp_path))
    assert os.path.getmtime(out["train"]) == mtime
    # other sets rebuild the manifests
    prepare_desed(desed, str(tmp_path), test_sets=["synthetic_validation"])
    assert sorted(_read(out["test"])) == sorted(_read(out["valid"]))


def test_missing_and_unreadable_clips_are_listed_at_once(desed, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(desed, broken)
    os.remove(
        broken / DESED_SETS["synthetic_train"][0] / "synthetic_train_0001.wav"
    )
    (broken / DESED_SETS["validation"][0] / "validation_0001.wav").write_text(
        "not audio"
    )
    with pytest.raises(AudioError) as err:
        prepare_desed(str(broken), str(tmp_path / "save"))
    message = str(err.value)
    assert "2 of 24" in message and "--skip_missing True" in message
    assert "synthetic_train/synthetic_train_0001.wav" in message
    assert "validation/validation_0001.wav" in message
    out = prepare_desed(str(broken), str(tmp_path / "save"), skip_missing=True)
    assert len(_read(out["train"])) == 11 and len(_read(out["test"])) == 5
    report = (tmp_path / "save" / REPORT_FILE).read_text().splitlines()
    assert len(report) == 3 and report[1].startswith("synthetic_train\t")


def test_missing_metadata_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        prepare_desed(str(tmp_path / "nothing"), str(tmp_path / "s"))
    message = str(err.value)
    assert "4 DESED metadata files are missing" in message
    assert "weak.tsv" in message and "--download True" in message
    with pytest.raises(ValueError, match="unknown DESED sets"):
        prepare_desed(str(tmp_path), str(tmp_path / "s"), test_sets=["eval"])


def test_download_unpacks_and_links_the_synthetic_part(
    desed, tmp_path, monkeypatch
):
    """download_desed on local copies of the three archives (as Zenodo
    serves them): the synthetic sets are linked into DESED's layout, and
    a second call neither fetches nor unpacks again."""
    import recipes.DESED.desed_prepare as desed_prepare

    staged = tmp_path / "staged"
    for name in ("synthetic_train", "synthetic_validation"):
        for part in DESED_SETS[name][:2]:
            source = os.path.join(desed, part)
            target = staged / "synth" / "dcase_synth" / part
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.path.isdir(source):
                shutil.copytree(source, target)
            else:
                shutil.copy(source, target)
    (staged / "meta" / "metadata" / "train").mkdir(parents=True)
    shutil.copy(
        os.path.join(desed, DESED_SETS["weak"][1]),
        staged / "meta" / "metadata" / "train" / "weak.tsv",
    )
    archives = {
        "dcase_synth.zip": shutil.make_archive(
            str(tmp_path / "dcase_synth"), "zip", staged / "synth"
        ),
        "audioset_metadata.tar.gz": shutil.make_archive(
            str(tmp_path / "metadata"), "gztar", staged / "meta"
        ),
    }
    monkeypatch.setattr(desed_prepare, "DOWNLOADS", archives)
    data = tmp_path / "dataset"
    desed_prepare.download_desed(str(data))
    audio = data / DESED_SETS["synthetic_train"][0]
    assert os.path.islink(data / "audio" / "train" / "synthetic21_train")
    assert sorted(os.listdir(audio)) == sorted(
        os.listdir(os.path.join(desed, DESED_SETS["synthetic_train"][0]))
    )
    assert (data / DESED_SETS["weak"][1]).is_file()
    assert (data / DESED_SETS["synthetic_validation"][1]).is_file()
    os.remove(data / "archives" / "dcase_synth.zip")
    desed_prepare.download_desed(str(data))  # unpacked before: skipped
    assert not (data / "archives" / "dcase_synth.zip").exists()


def _run(args, cwd, check=True):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, (
            result.stdout[-3000:] + result.stderr[-3000:]
        )
    return result


def _csv_rows():
    with open(os.path.join(ROOT, "tests", "recipes", "DESED.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("row", _csv_rows(), ids=lambda r: r["Hparam_file"])
def test_csv_debug_row_runs_and_exports_a_frame_model(desed, tmp_path, row):
    """tests/recipes/DESED.csv's flags on the mini DESED, run from the
    recipe folder: its files exist, the test line holds the event
    metrics, and the exported folder scores frames with its own frame head
    and the thresholds tuned on validation."""
    from speechbrain_ast.events.detector import folder_frame_head, frame_scores
    from speechbrain_ast.events.model_folder import folder_event_settings
    from speechbrain_ast.inference import ASTAudioClassifier

    flags = [
        f"--data_folder={desed}" if flag.startswith("--data_folder=") else flag
        for flag in shlex.split(row["test_debug_flags"])
    ]
    out = tmp_path / "out"
    _run(
        [sys.executable, "train.py",
         os.path.relpath(os.path.join(ROOT, row["Hparam_file"]), RECIPE),
         *flags, "--output_folder", str(out), "--device", "cpu",
         "--noprogressbar"],
        cwd=RECIPE,
    )  # fmt: skip
    files = re.search(r"file_exists=\[([^\]]*)\]", row["test_debug_checks"])
    for name in files.group(1).split(","):
        assert (out / name.strip()).is_file(), name
    log = (out / "train_log.txt").read_text()
    assert len(re.findall(r"valid psds1: ", log)) == 2
    test_line = [line for line in log.splitlines() if "test psds1" in line]
    assert len(test_line) == 1 and "test event_f1" in test_line[0]
    records = [json.loads(x) for x in open(out / "metrics.jsonl")]
    assert [r["stage"] for r in records] == ["valid", "valid", "test"]
    # the epoch tested is one of the best by PSDS1, with its thresholds
    best = [r for r in records[:2] if r["epoch"] == records[2]["epoch"]][0]
    assert best["psds1"] == max(r["psds1"] for r in records[:2])
    assert records[2]["thresholds"] == best["thresholds"]

    model = ASTAudioClassifier.from_hparams(
        source=str(out / "model"), savedir=str(tmp_path / "saved")
    )
    tuned = (best["thresholds"], best["median_window"])
    assert folder_event_settings(model) == tuned
    assert "frame_head" in model.mods
    assert folder_frame_head(model) is model.mods.frame_head
    test_json = _read(out / "save" / "test.json")
    wav = load_audio(next(iter(test_json.values()))["wav"])
    edges, probs = frame_scores(model, wav[None])
    assert probs.shape == (1, len(edges) - 1, 3)
    assert bool(((probs >= 0) & (probs <= 1)).all())
    # the clip head was trained on the mean of the columns: the folder's
    # "mean" pooling
    frames = model.encode_frames(wav[None])
    torch.testing.assert_close(model.encode_batch(wav[None]), frames.mean(1))


def test_wrong_number_of_classes_is_one_line(desed, tmp_path):
    result = _run(
        [sys.executable, os.path.join(RECIPE, "train.py"),
         "hparams/ast_scratch_small.yaml", "--data_folder", desed, *TINY,
         "--n_classes", "4", "--output_folder", str(tmp_path / "out")],
        cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "train.py: error: the data has 3 classes (['one', 'two', 'zero']) "
        "but n_classes is 4: pass --n_classes 3."
    )


def test_killed_run_resumes_to_the_same_result(desed, tmp_path):
    """SIGKILL after the first intra-epoch checkpoint (frequency masks
    on), start again: the logs and the exported frame head equal an
    uninterrupted run's."""
    args = [
        sys.executable, os.path.join(RECIPE, "train.py"),
        "hparams/ast_scratch_small.yaml", "--data_folder", desed, *TINY,
        "--n_classes", "3", "--number_of_epochs", "1", "--ckpt_interval_steps", "1",
        "--freqm", "24", "--median_windows", "[1, 3]",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    whole = tmp_path / "whole"
    _run([*args, "--output_folder", str(whole)], cwd=ROOT)
    out = tmp_path / "killed"
    cmd = [*args, "--output_folder", str(out)]
    needed = {"CKPT.yaml", "brain.ckpt", "frame_head.ckpt", "counter.ckpt"}
    meta = kill_after_first_checkpoint(cmd, ROOT, env, out / "save", needed)
    assert meta["end-of-epoch"] is False
    assert not (out / "model").exists()
    _run(cmd, cwd=ROOT)
    assert "Loading a checkpoint from" in (out / "log.txt").read_text()
    assert (out / "train_log.txt").read_text() == (
        whole / "train_log.txt"
    ).read_text()
    for name in ("frame_head.ckpt", "embedding_model.ckpt"):
        expected = torch.load(whole / "model" / name, weights_only=True)
        resumed = torch.load(out / "model" / name, weights_only=True)
        for key, value in expected.items():
            assert torch.equal(resumed[key], value), (name, key)


def test_recipe_takes_a_few_library_parts():
    """As the other recipes: at most a dozen names from the library."""
    with open(os.path.join(RECIPE, "train.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.module.startswith("speechbrain_ast")
        for alias in node.names
    ]
    assert len(names) <= 12, names
