"""The tagging command line: files, windows, aggregates, bad input.

Authors
 * speechbrain-ast developers
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_ast.data.audio import count_windows, iter_windows, load_audio
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.tag import main

LABELS = ["dog", "rain", "speech", "siren", "engine"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    head = ASTHead(64, len(LABELS)).eval()
    folder = tmp_path_factory.mktemp("tag") / "model"
    export_model_folder(
        folder,
        lobe,
        head,
        LABELS,
        {"target_length": 128},
        (-4.27, 4.57),
        multi_label=True,
    )
    return str(folder)


def _noise(seconds, rate, channels=1, seed=0):
    gen = np.random.default_rng(seed)
    shape = (int(seconds * rate), channels)
    # a slowly changing level, so windows differ
    level = 0.05 + 0.2 * np.abs(np.sin(np.arange(shape[0]) / rate / 7))
    return (gen.standard_normal(shape) * level[:, None]).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    out = {}
    out["good"] = str(d / "good.wav")
    sf.write(out["good"], _noise(1.0, 16000), 16000)
    out["long"] = str(d / "long60.flac")
    sf.write(out["long"], _noise(60.0, 16000, channels=2), 16000)
    out["missing"] = str(d / "missing.wav")
    out["empty"] = str(d / "empty.wav")
    open(out["empty"], "wb").close()
    out["text"] = str(d / "notes.wav")
    with open(out["text"], "w") as f:
        f.write("this is not audio\n" * 20)
    out["truncated"] = str(d / "truncated.wav")
    sf.write(out["truncated"], _noise(1.0, 16000), 16000, subtype="PCM_16")
    size = os.path.getsize(out["truncated"])
    with open(out["truncated"], "r+b") as f:
        f.truncate(size // 2)
    out["nan"] = str(d / "nan.wav")
    bad = _noise(1.0, 16000)
    bad[8000] = np.nan
    sf.write(out["nan"], bad, 16000, subtype="FLOAT")
    return out


def test_count_windows():
    assert count_windows(60 * 16000, 10 * 16000, 5 * 16000) == 11
    assert count_windows(10, 10, 5) == 1
    assert count_windows(11, 10, 5) == 2
    assert count_windows(3, 10, 5) == 1
    assert count_windows(100, 10, 20) == 5  # gaps: starts 0, 20, ..., 80
    with pytest.raises(ValueError):
        count_windows(10, 0, 5)


def test_streamed_windows_equal_whole_file(tmp_path):
    # 8 kHz stereo, 7.3 s; windows of 2 s every 1.5 s: last one partial
    data = _noise(7.3, 8000, channels=2, seed=3)
    path = str(tmp_path / "a.wav")
    sf.write(path, data, 8000, subtype="FLOAT")
    wins = list(iter_windows(path, 2.0, 1.5, 16000))
    assert [s for s, _, _ in wins] == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert wins[-1][1] == pytest.approx(7.3)
    mono = torch.from_numpy(data.mean(axis=1))
    for start, end, wav in wins:
        piece = mono[round(start * 8000) : round(end * 8000)]
        expected = torchaudio.functional.resample(piece, 8000, 16000)
        assert torch.allclose(wav, expected, atol=1e-6)


def test_long_file_windows_and_aggregate(model_dir, files, capsys):
    status = main(
        [
            "--model",
            model_dir,
            files["long"],
            "--window",
            "10",
            "--hop",
            "5",
            "--json",
            "--top-k",
            str(len(LABELS)),
            "--batch-size",
            "4",
        ]
    )
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    starts = [w["start"] for w in result["windows"]]
    assert starts == [5.0 * i for i in range(11)]
    assert result["windows"][-1]["end"] == 60.0
    table = np.array(
        [
            [
                {d["label"]: d["score"] for d in w["labels"]}[lab]
                for lab in LABELS
            ]
            for w in result["windows"]
        ]
    )
    mean = {d["label"]: d["score"] for d in result["mean"]}
    top = {d["label"]: d["score"] for d in result["max"]}
    for j, lab in enumerate(LABELS):
        assert mean[lab] == pytest.approx(table[:, j].mean(), abs=1e-5)
        assert top[lab] == pytest.approx(table[:, j].max(), abs=1e-6)
    # window 3 equals scoring that slice of the whole file directly
    model = ASTAudioClassifier.from_hparams(source=model_dir)
    wav = load_audio(files["long"])
    scores = model.classify_batch(wav[None, 15 * 16000 : 25 * 16000])[0][0]
    assert np.allclose(table[3], scores.numpy(), atol=1e-5)


def test_bad_files_are_reported_and_others_tagged(model_dir, files, capsys):
    bad = ["missing", "empty", "text", "truncated", "nan"]
    argv = ["--model", model_dir, "--json", files["good"]]
    argv += [files[name] for name in bad] + [files["good"]]
    assert main(argv) == 1
    captured = capsys.readouterr()
    tagged = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in tagged] == [files["good"]] * 2
    assert len(tagged[0]["labels"]) == 5
    errors = captured.err.strip().splitlines()
    assert len(errors) == len(bad)
    for line, name in zip(errors, bad):
        assert files[name] in line and "Traceback" not in line
    # windowed mode reports the same files
    argv = ["--model", model_dir, "--window", "0.5", files["nan"]]
    argv += [files["truncated"], files["good"]]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(files["good"])
    err = captured.err.strip().splitlines()
    assert files["nan"] in err[0] and "NaN" in err[0]
    assert files["truncated"] in err[1] and "truncated" in err[1]


def test_cli_process(model_dir, files):
    """The real command: text output, exit status, no traceback."""
    run = subprocess.run(
        [sys.executable, "-m", "speechbrain_ast.tag", "--model", model_dir]
        + ["--top-k", "2", files["good"], files["missing"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0] == files["good"] and len(lines) == 3
    assert files["missing"] in run.stderr
    assert "Traceback" not in run.stderr


def test_usage_errors(model_dir, files, tmp_path, capsys):
    assert main(["--model", str(tmp_path), files["good"]]) == 2
    assert "hyperparams.yaml" in capsys.readouterr().err
    for extra in (["--hop", "5"], ["--window", "-1"], ["--top-k", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["--model", model_dir, files["good"]] + extra)
        assert exit_info.value.code == 2
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit):
            main(
                [
                    "--model",
                    model_dir,
                    files["good"],
                    "--window",
                    "1",
                    "--plot",
                    str(tmp_path / "p.png"),
                ]
            )
        assert "matplotlib" in capsys.readouterr().err


def test_windows_with_gaps(tmp_path):
    data = _noise(5.0, 8000, seed=4)
    path = str(tmp_path / "gaps.wav")
    sf.write(path, data, 8000, subtype="FLOAT")
    wins = list(iter_windows(path, 0.5, 2.0, 8000))
    assert [(s, e) for s, e, _ in wins] == [(0.0, 0.5), (2.0, 2.5), (4.0, 4.5)]
    for start, _, wav in wins:
        i = round(start * 8000)
        assert np.allclose(wav.numpy(), data[i : i + 4000, 0])


def test_windows_are_read_in_bounded_blocks(files, monkeypatch):
    """Streaming: no read asks for more than one window of samples."""
    requested = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    wins = list(iter_windows(files["long"], 10.0, 5.0, 16000))
    assert len(wins) == 11
    assert 0 < max(requested) <= 10 * 16000
    assert sum(requested) == 60 * 16000  # every sample read exactly once


def test_int8_option_scores_close_to_float(model_dir, files, capsys):
    """--int8 quantizes the folder's lobe and head; scores stay close to
    the float model's, and it refuses a non-CPU device."""
    argv = ["--model", model_dir, files["good"], "--json"]
    argv += ["--top-k", str(len(LABELS))]
    assert main(argv) == 0
    exact = json.loads(capsys.readouterr().out)
    assert main(argv + ["--int8"]) == 0
    quant = json.loads(capsys.readouterr().out)
    exact = {d["label"]: d["score"] for d in exact["labels"]}
    quant = {d["label"]: d["score"] for d in quant["labels"]}
    assert set(exact) == set(quant) == set(LABELS)
    for lab in LABELS:
        assert quant[lab] == pytest.approx(exact[lab], abs=0.05)
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--int8", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "--int8 runs on the CPU only" in capsys.readouterr().err


def test_model_folder_errors(model_dir, files, tmp_path, capsys):
    """A missing folder 'does not exist'; a file is not a folder."""
    missing = str(tmp_path / "nope")
    assert main(["--model", missing, files["good"]]) == 2
    err = capsys.readouterr().err
    assert missing in err and "does not exist" in err
    assert "hyperparams.yaml" not in err
    assert main(["--model", files["good"], files["good"]]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_device_is_checked_before_loading(
    model_dir, files, monkeypatch, capsys, caplog
):
    """--device cuda without a GPU: one line saying so, before any model
    loading (no SpeechBrain device warning, no blame on the folder)."""
    import speechbrain_ast.inference.classifier as inference

    loaded = []
    real = inference.ASTAudioClassifier.from_hparams

    def spy(*args, **kwargs):
        loaded.append(kwargs.get("run_opts"))
        return real(*args, **kwargs)

    monkeypatch.setattr(inference.ASTAudioClassifier, "from_hparams", spy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:0"):
        assert main(["--model", model_dir, "--device", device, files["good"]])
        err = capsys.readouterr().err
        assert "no CUDA device" in err and len(err.splitlines()) == 1
        assert "model folder" not in err and model_dir not in err
    # checked even before the folder
    assert main(["--model", "/no/such/folder", "--device", "cuda", "x.wav"])
    assert "no CUDA device" in capsys.readouterr().err
    assert main(["--model", model_dir, "--device", "gpu0", files["good"]])
    assert "not a torch device" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert main(["--model", model_dir, "--device", "cuda:3", files["good"]])
    assert "has 1 CUDA device(s)" in capsys.readouterr().err
    assert loaded == []
    assert "Could not parse CUDA device" not in caplog.text
    # a device that is there loads as before
    assert main(["--model", model_dir, "--device", "cpu", files["good"]]) == 0
    assert loaded == [{"device": "cpu", "precision": "fp32"}]


def test_missing_file_message_fits_the_command_line(model_dir, files, capsys):
    for extra in ([], ["--window", "0.5"]):
        argv = ["--model", model_dir, files["missing"], files["good"]]
        assert main(argv + extra) == 1
        captured = capsys.readouterr()
        assert captured.out.startswith(files["good"])
        err = captured.err.strip()
        assert f"Audio file {files['missing']!r} does not exist" in err
        assert "manifest" not in err and "placeholder" not in err


def _plot_results(n_classes, n_windows=30):
    """Window results as _tag_file returns them, with curves rising at
    the end of the recording (where the legend used to sit)."""
    gen = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 1, n_windows)[:, None]
    rate = 1 + 6 * torch.rand(1, n_classes, generator=gen)
    phase = 6 * torch.rand(1, n_classes, generator=gen)
    scores = torch.sigmoid(3 * torch.sin(rate * t + phase) + 4 * t - 2)
    windows = [
        {"start": 5.0 * i, "end": 5.0 * i + 10.0} for i in range(n_windows)
    ]
    return {"file": "long.wav", "windows": windows, "_scores": scores}


def _legend_outside(fig):
    """Every panel's legend lies right of its axes and inside the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()  # runs the constrained layout
    renderer = canvas.get_renderer()
    fig_box = fig.bbox
    for ax in fig.axes:
        legend = ax.get_legend()
        box = legend.get_window_extent(renderer)
        axes_box = ax.get_window_extent(renderer)
        assert not box.overlaps(axes_box), (box, axes_box)
        assert box.x0 >= axes_box.x1
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 + 0.5
        assert fig_box.y0 <= box.y0 + 0.5 and box.y1 <= fig_box.y1 + 0.5


@pytest.mark.parametrize("n_classes", [3, 12, 30])
def test_plot_legend_outside_axes(n_classes):
    pytest.importorskip("matplotlib")
    from speechbrain_ast.events.plot import results_figure

    labels = [f"class {i}, a long AudioSet-like name" for i in range(40)]
    results = [_plot_results(40), _plot_results(40)]
    fig = results_figure(results, labels, n_classes)
    _legend_outside(fig)
    for ax in fig.axes:
        legend = ax.get_legend()
        assert len(legend.get_texts()) == n_classes
        # the curves keep distinct styles (colour, line style)
        styles = {(ln.get_color(), ln.get_linestyle()) for ln in ax.lines}
        assert len(styles) == n_classes


def test_plot_option_writes_png(files, tmp_path):
    """--plot with 12 classes writes a PNG (model with 12 labels)."""
    pytest.importorskip("matplotlib")
    labels = [f"sound {i}" for i in range(12)]
    torch.manual_seed(1)
    folder = tmp_path / "model12"
    export_model_folder(
        folder,
        AST(input_tdim=128, embed_dim=32, depth=1, num_heads=1).eval(),
        ASTHead(32, 12).eval(),
        labels,
        {"target_length": 128},
        (-4.27, 4.57),
        multi_label=True,
    )
    png = tmp_path / "long.png"
    argv = ["--model", str(folder), files["long"], "--window", "10"]
    argv += ["--top-k", "12", "--plot", str(png), "--no-progress"]
    assert main(argv) == 0
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_precision_option_scores_close_to_float(
    model_dir, files, capsys, precision, monkeypatch
):
    """--precision bf16|fp16 on the PyTorch backend: the same labels with
    scores close to fp32's; --int8 with it is refused."""
    import warnings

    from speechbrain_ast.deploy import precision as precision_module

    # the CPU's features decide the slow-precision warning (warn_if_slow
    # asks cpu_features): native here, so none may come; the scores are
    # the point
    monkeypatch.setattr(
        precision_module,
        "cpu_features",
        lambda: frozenset({"avx512_bf16", "amx_bf16", "amx_fp16"}),
    )
    argv = ["--model", model_dir, files["good"], "--json"]
    argv += ["--top-k", str(len(LABELS))]
    assert main(argv) == 0
    exact = json.loads(capsys.readouterr().out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("error", "precision=", RuntimeWarning)
        assert main(argv + ["--precision", precision]) == 0
    reduced = json.loads(capsys.readouterr().out)
    exact = {d["label"]: d["score"] for d in exact["labels"]}
    reduced = {d["label"]: d["score"] for d in reduced["labels"]}
    assert set(exact) == set(reduced) == set(LABELS)
    for lab in LABELS:
        assert reduced[lab] == pytest.approx(exact[lab], abs=0.02)
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--precision", precision, "--int8"])
    assert exit_info.value.code == 2
    assert "alternatives" in capsys.readouterr().err
