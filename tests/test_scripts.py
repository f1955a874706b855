"""Every script in ``benchmarks/`` and ``scripts/`` runs as a file, from the
repo root and from its own folder, and as a module where it is one, as do
the test-data generators of ``speechbrain_ast.testing``; ``--help`` prints
its usage. The generators' command lines write what their functions
write.

Authors
 * speechbrain-ast developers
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    str(path.relative_to(ROOT))
    for pattern in ("benchmarks/*.py", "scripts/**/*.py")
    for path in ROOT.glob(pattern)
    if path.name != "__init__.py"
)
GENERATORS = sorted(  # the dataset generators: each is a command line
    f"speechbrain_ast.testing.{path.stem}"
    for path in (ROOT / "speechbrain_ast" / "testing").glob("*.py")
    if '__name__ == "__main__"' in path.read_text()
)
MODULES = sorted(
    [
        path[: -len(".py")].replace("/", ".")
        for path in SCRIPTS
        if path.startswith("scripts/")
    ]
    + GENERATORS
)


def run(args, cwd=ROOT):
    """``python ARGS`` in ``cwd`` with a clean ``PYTHONPATH``."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_scan_found_the_scripts():
    assert "benchmarks/run.py" in SCRIPTS
    assert "benchmarks/accuracy.py" in SCRIPTS
    assert "scripts/upstream.py" in SCRIPTS
    assert "speechbrain_ast.testing.speech_commands" in MODULES
    assert "speechbrain_ast.testing.audioset" in MODULES
    assert "speechbrain_ast.testing.esc50" in MODULES


@pytest.mark.parametrize("where", ["repo root", "own folder"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_prints_usage(script, where):
    if where == "repo root":
        result = run([script, "--help"])
    else:
        path = ROOT / script
        result = run([path.name, "--help"], cwd=path.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    name = Path(script).name
    assert result.stdout.startswith(f"usage: {name} "), result.stdout[:500]
    assert "-h, --help" in result.stdout


@pytest.mark.parametrize("module", MODULES)
def test_module_help_prints_usage(module):
    result = run(["-m", module, "--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: "), result.stdout[:500]
    assert "-h, --help" in result.stdout


def _tree(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(Path(root).rglob("*"))
        if path.is_file()
    }


def test_speech_commands_command_line_writes_what_the_function_writes(
    tmp_path,
):
    from speechbrain_ast.testing.speech_commands import make_speech_commands

    result = run(
        [
            "-m",
            "speechbrain_ast.testing.speech_commands",
            str(tmp_path / "cli"),
            "--words",
            "yes,no",
            "--speakers_per_word",
            "3",
            "--only_populated",
            "--seed",
            "4",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    make_speech_commands(
        str(tmp_path / "fn"),
        words=["yes", "no"],
        speakers_per_word=3,
        all_folders=False,
        seed=4,
    )
    written = _tree(tmp_path / "cli")
    assert written == _tree(tmp_path / "fn")
    assert sorted({name.split("/")[0] for name in written}) == [
        "_background_noise_",
        "no",
        "testing_list.txt",
        "validation_list.txt",
        "yes",
    ]


def test_audioset_command_line_writes_what_the_function_writes(tmp_path):
    from speechbrain_ast.testing.audioset import make_audioset

    result = run(
        [
            "-m",
            "speechbrain_ast.testing.audioset",
            str(tmp_path / "cli"),
            "--n_classes",
            "3",
            "--clips",
            "balanced_train=4,eval=3",
            "--corrupt_split",
            "none",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    make_audioset(
        str(tmp_path / "fn"),
        n_classes=3,
        clips=(("balanced_train", 4), ("eval", 3)),
        corrupt_split=None,
    )
    written = _tree(tmp_path / "cli")
    assert written == _tree(tmp_path / "fn")
    assert "balanced_train_segments.csv" in written
    assert "unbalanced_train_segments.csv" not in written


def test_signals_command_line_writes_one_class_clip(tmp_path):
    import numpy as np
    import soundfile as sf

    from speechbrain_ast.testing.signals import class_signal

    out = tmp_path / "clip.wav"
    result = run(
        [
            "-m",
            "speechbrain_ast.testing.signals",
            str(out),
            "--index",
            "1",
            "--n_classes",
            "3",
            "--duration",
            "0.5",
            "--seed",
            "7",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    wav, rate = sf.read(out, dtype="float32")
    want = class_signal(1, 16000, 0.5, np.random.default_rng(7), n_classes=3)
    assert rate == 16000
    # a PCM-16 file: within one quantization step
    np.testing.assert_allclose(wav, want, rtol=0, atol=1.01 / 2**15)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            [
                "-m",
                "speechbrain_ast.testing.speech_commands",
                "X",
                "--words",
                ",",
            ],
            "--words ',': give at least one word",
        ),
        (
            [
                "-m",
                "speechbrain_ast.testing.speech_commands",
                "X",
                "--words",
                "a,a",
            ],
            "a word is listed twice",
        ),
        (
            [
                "-m",
                "speechbrain_ast.testing.speech_commands",
                "X",
                "--speakers_per_word",
                "2",
            ],
            "--speakers_per_word 2 leaves no training speaker",
        ),
        (
            [
                "-m",
                "speechbrain_ast.testing.audioset",
                "X",
                "--clips",
                "train=3",
            ],
            "'train=3': write SPLIT=COUNT",
        ),
        (
            [
                "-m",
                "speechbrain_ast.testing.audioset",
                "X",
                "--clips",
                "eval=2",
                "--corrupt_split",
                "balanced_train",
            ],
            "--corrupt_split 'balanced_train': not one of the --clips splits",
        ),
        (
            ["-m", "speechbrain_ast.testing.signals", "X.wav", "--index", "5"],
            "--index 5 is not a class of --n_classes 5: give 0 to 4",
        ),
        (
            ["benchmarks/accuracy.py", "--size", "64,2"],
            "--size '64,2': give 3 comma-separated whole numbers",
        ),
        (
            ["benchmarks/accuracy.py", "--epochs", "0,5"],
            "--epochs '0,5': every count must be >= 1",
        ),
    ],
)
def test_bad_values_are_usage_errors(args, message, tmp_path):
    """Checked before anything is written: exit status 2, the option and
    what to give named, and no dataset folder left behind."""
    args = [str(tmp_path / a) if a in ("X", "X.wav") else a for a in args]
    result = run(args)
    assert result.returncode == 2, result.stdout[-2000:]
    assert message in result.stderr
    assert not (tmp_path / "X").exists() and not (tmp_path / "X.wav").exists()
