"""Recipes when things go wrong: prepare scripts never touch the dataset
and never mix two datasets' manifests, a file that disappears after
preparation or a label outside the encoder stops a run before training
with one list, and a damaged checkpoint (half-written by a kill, cut
short, a file missing, a malicious pickle) is never loaded: the previous
good one is used with a warning, or the run stops with a clear message.

The kill-and-resume equality test of a real training run is
``tests/test_recipe_esc50.py::test_killed_run_resumes_to_the_same_result``.

Authors
 * speechbrain-ast developers
"""

import csv
import hashlib
import importlib.util
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from speechbrain_ast.data.audio import AudioError
from speechbrain_ast.testing.audioset import make_audioset
from speechbrain_ast.testing.esc50 import make_esc50
from speechbrain_ast.testing.speech_commands import make_speech_commands
from speechbrain_ast.training.checkpoint import SafeCheckpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name, relpath):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, relpath)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


esc_prep = _load("esc50_prepare", "recipes/ESC50/esc50_prepare.py")
sc_prep = _load(
    "speechcommands_prepare",
    "recipes/SpeechCommands/speechcommands_prepare.py",
)
as_prep = _load("audioset_prepare", "recipes/AudioSet/audioset_prepare.py")


def _snapshot(folder):
    """Every file and folder under ``folder``: size, mtime, content hash."""
    out = {}
    for d, dirs, names in os.walk(folder):
        for name in dirs + names:
            path = os.path.join(d, name)
            stat = os.stat(path)
            digest = None
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            rel = os.path.relpath(path, folder)
            out[rel] = (stat.st_size, stat.st_mtime_ns, digest)
    return out


def _esc50(root):
    return make_esc50(root, n_classes=2, clips_per_fold=1, duration=0.3)


def _sc(root):
    return make_speech_commands(
        root, words=("yes", "no"), speakers_per_word=3, all_folders=False
    )


def _audioset(root):
    return make_audioset(root, n_classes=3, duration=0.3)


PREPARES = {
    "esc50": (
        _esc50,
        lambda data, out: esc_prep.prepare_esc50(
            data, out, [1, 2, 3], [4], [5], download=False
        ),
        "audio",
    ),
    "speechcommands": (
        _sc,
        lambda data, out: sc_prep.prepare_speech_commands(
            data, out, download=False
        ),
        "yes",
    ),
    "audioset": (
        _audioset,
        lambda data, out: as_prep.prepare_audioset(data, out, num_workers=2),
        os.path.join("audio", "eval"),
    ),
}


def _first_audio(folder):
    names = sorted(
        n for n in os.listdir(folder) if n.endswith((".wav", ".flac"))
    )
    return os.path.join(folder, names[0])


@pytest.mark.parametrize("recipe", sorted(PREPARES))
def test_prepare_never_modifies_the_dataset(recipe, tmp_path):
    make, prepare, audio_dir = PREPARES[recipe]
    data = make(str(tmp_path / "data"))
    before = _snapshot(data)
    prepare(data, str(tmp_path / "out"))
    prepare(data, str(tmp_path / "out"))  # the up-to-date path
    assert _snapshot(data) == before
    # a damaged file: reported (or skipped, AudioSet), nothing changed
    victim = _first_audio(os.path.join(data, audio_dir))
    with open(victim, "wb") as f:
        f.write(b"not audio")
    damaged = _snapshot(data)
    try:
        prepare(data, str(tmp_path / "out2"))
    except AudioError as err:
        assert os.path.basename(victim) in str(err)
    else:
        assert recipe == "audioset"  # reports and leaves bad clips out
        with open(tmp_path / "out2" / "missing_or_unreadable.csv") as f:
            assert os.path.basename(victim) in f.read()
    assert _snapshot(data) == damaged


@pytest.mark.parametrize("recipe", sorted(PREPARES))
def test_other_dataset_into_same_output_is_refused(recipe, tmp_path):
    make, prepare, _ = PREPARES[recipe]
    first = make(str(tmp_path / "first"))
    out = str(tmp_path / "out")
    prepare(first, out)
    manifests = {
        n: open(os.path.join(out, n), "rb").read()
        for n in os.listdir(out)
        if n.endswith((".csv", ".json", ".txt"))
    }
    second = str(tmp_path / "second")
    shutil.copytree(first, second)
    with pytest.raises(ValueError, match="second") as err:
        prepare(second, out)
    assert "first" in str(err.value)
    # the first dataset's manifests are untouched: nothing mixed
    for name, content in manifests.items():
        assert open(os.path.join(out, name), "rb").read() == content


# ---------------------------------------------------------------------------
# Bad manifest rows at training time
# ---------------------------------------------------------------------------


def test_files_gone_after_prepare_stop_the_run_before_training(tmp_path):
    """Prepared once, then two clips disappear and a manifest row is
    edited to a missing path: the next run (prepare is up to date and
    skips) lists all three in one error from ``dataio_prepare``, which
    train.py calls before the Brain is built."""
    train = _load("esc50_train", "recipes/ESC50/train.py")
    data = _esc50(str(tmp_path / "ESC-50-master"))
    save = str(tmp_path / "save")
    esc_prep.prepare_esc50(data, save, [1, 2, 3], [4], [5])
    audio = os.path.join(data, "audio")
    gone = sorted(os.listdir(audio))[:2]
    for name in gone:
        os.remove(os.path.join(audio, name))
    manifest = os.path.join(save, "valid.csv")
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["wav"] = os.path.join(audio, "edited-by-hand.wav")
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    # the next run: prepare (up to date: skips), then dataio_prepare
    try:
        esc_prep.prepare_esc50(data, save, [1, 2, 3], [4], [5])
    except AudioError as err:  # a prepare that re-checks is fine too
        for name in gone:
            assert name in str(err)
        return
    with pytest.raises(AudioError) as err:
        train.dataio_prepare({"save_folder": save, "n_classes": 2})
    message = str(err.value)
    for name in gone + ["edited-by-hand.wav"]:
        assert name in message
    assert "3 of" in message


def test_label_outside_the_encoder(tmp_path):
    """ESC-50: a class index beyond n_classes stops dataio_prepare with
    the flag to pass; AudioSet: a segment list naming a label that is not
    in the label list stops prepare naming the label."""
    train = _load("esc50_train", "recipes/ESC50/train.py")
    data = _esc50(str(tmp_path / "esc"))
    save = str(tmp_path / "save")
    esc_prep.prepare_esc50(data, save, [1, 2, 3], [4], [5])
    with pytest.raises(ValueError, match="pass --n_classes 2"):
        train.dataio_prepare(
            {"save_folder": save, "n_classes": 1, "allow_unseen_classes": False}
        )

    data = _audioset(str(tmp_path / "as"))
    segments = os.path.join(data, "balanced_train_segments.csv")
    with open(segments) as f:
        text = f.read()
    lines = text.splitlines()
    last = lines[-1].rsplit('"', 2)
    lines[-1] = last[0] + '"/m/not_a_label"' + last[2]
    with open(segments, "w") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="/m/not_a_label"):
        as_prep.prepare_audioset(data, str(tmp_path / "out"))


# ---------------------------------------------------------------------------
# Damaged checkpoints
# ---------------------------------------------------------------------------


def _checkpointer(folder, seed):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    return model, SafeCheckpointer(folder, {"model": model, "opt": opt})


def _two_checkpoints(folder):
    """Checkpoint A (weights of seed 1), then B (seed 2), newest last."""
    model, ckpt = _checkpointer(folder, 1)
    a = model.weight.detach().clone()
    ckpt.save_checkpoint(meta={"step": 1})
    with torch.no_grad():
        model.weight.add_(1.0)
    b = model.weight.detach().clone()
    newest = ckpt.save_checkpoint(meta={"step": 2})
    return a, b, newest.path


def _recover(folder):
    model, ckpt = _checkpointer(folder, 99)
    found = ckpt.recover_if_possible()
    return model.weight.detach(), found


def test_good_checkpoint_recovers(tmp_path):
    a, b, _ = _two_checkpoints(tmp_path)
    weight, found = _recover(tmp_path)
    assert torch.equal(weight, b) and found.meta["step"] == 2


@pytest.mark.parametrize("damage", ["truncated", "empty", "missing", "junk"])
def test_damaged_newest_checkpoint_falls_back(damage, tmp_path):
    a, _, newest = _two_checkpoints(tmp_path)
    victim = newest / "model.ckpt"
    if damage == "truncated":
        size = victim.stat().st_size
        with open(victim, "r+b") as f:
            f.truncate(size // 2)
    elif damage == "empty":
        victim.write_bytes(b"")
    elif damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(os.urandom(2000))
    with pytest.warns(UserWarning, match="model") as record:
        weight, found = _recover(tmp_path)
    assert str(newest) in str(record[0].message)
    assert torch.equal(weight, a) and found.meta["step"] == 1
    # nothing was deleted: the damaged folder stays for the user to see
    assert newest.is_dir() and len(list(tmp_path.glob("CKPT+*"))) == 2


def test_all_checkpoints_damaged_stops_clearly(tmp_path):
    _two_checkpoints(tmp_path)
    folders = sorted(tmp_path.glob("CKPT+*"))
    for folder in folders:
        (folder / "opt.ckpt").write_bytes(b"")
    with pytest.warns(UserWarning):
        with pytest.raises(RuntimeError, match="No checkpoint") as err:
            _recover(tmp_path)
    for folder in folders:
        assert str(folder) in str(err.value)


def test_malicious_pickle_in_checkpoint_never_runs(tmp_path):
    a, _, newest = _two_checkpoints(tmp_path)
    marker = tmp_path / "MARKER"

    class Payload:
        def __reduce__(self):
            return (pathlib.Path.touch, (marker,))

    state = torch.load(newest / "model.ckpt", weights_only=True)
    state["payload"] = Payload()
    torch.save(state, newest / "model.ckpt")
    with pytest.warns(UserWarning, match="model"):
        weight, _ = _recover(tmp_path)
    assert not marker.exists()
    assert torch.equal(weight, a)


KILL_DURING_SAVE = textwrap.dedent(
    """
    import os, signal, sys, torch
    from speechbrain_ast.training.checkpoint import SafeCheckpointer
    folder = sys.argv[1]
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    ckpt = SafeCheckpointer(folder, {"model": model, "opt": opt})
    ckpt.save_checkpoint(meta={"step": 1})
    real_save = torch.save

    def dying_save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        with open(path, "r+b") as f:  # half of the file is on disk
            f.truncate(os.path.getsize(path) // 2)
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dying_save
    with torch.no_grad():
        model.weight.add_(1.0)
    ckpt.save_checkpoint(meta={"step": 2})
    """
)


def test_kill_while_saving_keeps_the_previous_checkpoint(tmp_path):
    """A real SIGKILL in the middle of writing the second checkpoint."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SAVE, str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob("CKPT+*"))) == 2  # one half-written
    torch.manual_seed(1)
    expected = torch.nn.Linear(3, 2).weight.detach()
    with pytest.warns(UserWarning, match="stopped while saving"):
        weight, found = _recover(tmp_path)
    assert found.meta["step"] == 1
    assert torch.equal(weight, expected)


def test_nan_samples_pass_prepare_and_stop_at_reading(tmp_path):
    """Prepare scripts check headers only (no decoding: AudioSet has 2M
    clips), so a file with NaN samples is listed; reading it in training
    raises the AudioError naming it (a documented limitation)."""
    import numpy as np
    import soundfile as sf

    from speechbrain_ast.data.audio import load_audio

    data = _esc50(str(tmp_path / "esc"))
    victim = _first_audio(os.path.join(data, "audio"))
    wav = np.zeros(4000, dtype=np.float32)
    wav[100] = np.nan
    sf.write(victim, wav, 44100, subtype="FLOAT")
    manifests = esc_prep.prepare_esc50(
        data, str(tmp_path / "save"), [1, 2, 3], [4], [5]
    )
    with open(manifests["train"], newline="") as f:
        paths = [row["wav"] for row in csv.DictReader(f)]
    assert victim in paths
    with pytest.raises(AudioError, match="NaN/Inf") as err:
        load_audio(victim)
    assert victim in str(err.value)


YAMLS = [
    "recipes/ESC50/hparams/ast.yaml",
    "recipes/SpeechCommands/hparams/ast.yaml",
    "recipes/AudioSet/hparams/ast_balanced.yaml",
]


@pytest.mark.parametrize("yaml_path", YAMLS)
@pytest.mark.parametrize(
    "override,message",
    [
        ("target_length: 8", "the patch is 16 frames wide but input_tdim=8"),
        ("tstride: 0", "tstride=0"),
        ("fstride: 0", "fstride=0"),
    ],
)
def test_impossible_recipe_configs(yaml_path, override, message, tmp_path):
    """What a recipe command line with such a flag stops on, before any
    data is read."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = "\n".join(
        [
            f"data_folder: {tmp_path / 'data'}",
            f"output_folder: {tmp_path / 'out'}",
            "imagenet_pretrain: False",
            "audioset_pretrain: False",
            "embed_dim: 64",
            "depth: 1",
            "num_heads: 2",
            override,
        ]
    )
    with open(os.path.join(ROOT, yaml_path)) as f:
        with pytest.raises(ValueError, match=message):
            load_hyperpyyaml(f, overrides)


@pytest.mark.parametrize("recipe", sorted(PREPARES))
def test_dataset_path_with_spaces_commas_and_non_ascii(recipe, tmp_path):
    from speechbrain.dataio.dataset import DynamicItemDataset

    make, prepare, _ = PREPARES[recipe]
    odd = tmp_path / "my data, ü 音"
    data = make(str(odd / "dataset"))
    out = str(odd / "out folder")
    prepare(data, out)
    manifests = [n for n in os.listdir(out) if n.endswith(".csv")]
    manifests = [n for n in manifests if n != "missing_or_unreadable.csv"]
    assert manifests
    for name in manifests:
        if name.startswith("class_labels"):
            continue
        dataset = DynamicItemDataset.from_csv(os.path.join(out, name))
        for row in dataset.data.values():
            assert os.path.isfile(row["wav"]), row["wav"]
            assert row["wav"].startswith(str(odd))
