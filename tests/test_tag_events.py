"""``tag --events``: frame scores stitched over the windows of real
recordings, the folder's or the command line's post-processing, event
files in every format, the DESED metrics of ``--reference``, live events
equal to offline ones, the plot, and one-line errors.

Authors
 * speechbrain-ast developers
"""

import csv
import io
import json
import os
import sys
import types

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.events.detector import frame_scores
from speechbrain_ast.events.model_folder import event_extras
from speechbrain_ast.events.plot import results_figure
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model import AST, ASTHead
from speechbrain_ast.tag import main

SOUNDS = os.path.join(os.path.dirname(__file__), "data", "sounds")
LABELS = ["dog", "cat", "bird"]


def _folder(path, native=False, **events):
    torch.manual_seed(0)
    return export_model_folder(
        path,
        AST(input_tdim=128, embed_dim=32, depth=1, num_heads=2),
        ASTHead(32, len(LABELS)),
        LABELS,
        {"target_length": None if native else 128},
        (-4.27, 4.57),
        multi_label=True,
        **event_extras(LABELS, **events),
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("events") / "model")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two real recordings, 16 kHz mono 16-bit WAV (3.3 s and 2.6 s)."""
    folder = tmp_path_factory.mktemp("audio")
    out = []
    for name, seconds in (("piano", 3.3), ("snoring", 2.6)):
        wav = load_audio(os.path.join(SOUNDS, f"{name}.flac"))
        path = str(folder / f"{name}.wav")
        sf.write(path, wav[: int(seconds * 16000)].numpy(), 16000, "PCM_16")
        out.append(path)
    return out


def _run(capsys, *argv):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _events_of(stdout):
    """``{file: [(onset, offset, label, score)]}`` of --json output."""
    by_file = {}
    for line in stdout.splitlines():
        result = json.loads(line)
        if "file" in result:
            by_file[result["file"]] = [
                (e["onset"], e["offset"], e["label"], e["score"])
                for e in result["events"]
            ]
    return by_file


def _assert_same(got, expected):
    """Events equal: the same labels, times and scores within 1e-6."""
    assert [e[2] for e in got] == [e[2] for e in expected]
    for a, b in zip(got, expected):
        numbers = [i for i in range(len(a)) if i != 2]
        assert [a[i] for i in numbers] == pytest.approx(
            [b[i] for i in numbers], abs=1e-6
        )


def test_events_files_parse_back_in_every_format(
    model_dir, files, tmp_path, capsys
):
    argv = ["--model", model_dir, *files, "--events", "--json"]
    argv += ["--threshold", "0.5", "--median-window", "3", "--hop", "0.64"]
    status, out, err = _run(capsys, *argv)
    assert status == 0 and err == ""
    printed = _events_of(out)
    assert set(printed) == set(files) and all(printed.values())
    for events in printed.values():
        assert all(
            0 <= on < off <= 3.3 and lab in LABELS for on, off, lab, _ in events
        )
        assert events == sorted(events, key=lambda e: e[0])

    _run(capsys, *argv, "--events-out", tmp_path / "events.csv")
    with open(tmp_path / "events.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    from_csv = {path: [] for path in files}
    for row in rows:
        from_csv[row["filename"]].append(
            (float(row["onset"]), float(row["offset"]), row["event_label"])
        )

    _run(capsys, *argv, "--events-out", tmp_path / "events.json")
    with open(tmp_path / "events.json") as f:
        from_json = json.load(f)

    labels_dir = tmp_path / "labels"
    _run(
        capsys, *argv, "--events-out", labels_dir, "--events-format", "audacity"
    )
    for path in files:
        expected = [(on, off, lab) for on, off, lab, _ in printed[path]]
        _assert_same(from_csv[path], expected)
        got = [
            (e["onset"], e["offset"], e["event_label"]) for e in from_json[path]
        ]
        _assert_same(got, expected)
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(labels_dir / f"{stem}.txt") as f:
            lines = [line.rstrip("\n").split("\t") for line in f]
        _assert_same(
            [(float(a), float(b), lab) for a, b, lab in lines], expected
        )


def test_one_window_gives_the_detectors_own_frame_scores(
    tmp_path, files, capsys
):
    """A native-length folder scores a 3.3 s file in one 10 s window: the
    stitched frame scores are the detector's for the whole file; with
    overlapping windows each column is the mean of the windows'."""
    folder = _folder(tmp_path / "native", native=True)
    model = ASTAudioClassifier.from_hparams(source=folder)
    from speechbrain_ast.events.tagging import WindowEvents

    wav = load_audio(files[0])
    edges, probs = frame_scores(model, wav[None])
    whole = WindowEvents(model, keep_frames=True)
    whole.add([0.0], wav[None])
    whole.finish(len(wav) / 16000)
    got_edges, got = whole.frames
    assert got.shape == tuple(probs[0].shape)
    assert np.allclose(got, probs[0].numpy(), atol=1e-6)
    assert np.allclose(got_edges, edges, atol=1e-9)

    # windows of 1 s every 0.5 s (5 columns): each column averages the
    # windows that hold it
    windows = [wav[i * 8000 : i * 8000 + 16000] for i in range(6)]
    stitched = WindowEvents(model, keep_frames=True)
    per_window = []
    for i, piece in enumerate(windows):
        stitched.add([i * 0.5], piece[None])
        per_window.append(frame_scores(model, piece[None])[1][0])
    stitched.finish(3.3)
    got = stitched.frames[1]
    total = torch.zeros(got.shape)
    count = torch.zeros(got.shape[0], 1)
    for i, window_probs in enumerate(per_window):
        n = min(9, got.shape[0] - 5 * i)  # 1 s: 9 columns of audio
        total[5 * i : 5 * i + n] += window_probs[:n]
        count[5 * i : 5 * i + n] += 1
    assert np.allclose(got, (total / count).numpy(), atol=1e-6)


def test_folder_thresholds_and_median_window_are_used(tmp_path, files, capsys):
    folder = _folder(
        tmp_path / "tuned", thresholds=[1.0, 1.0, 1.0], median_window=3
    )
    argv = ["--model", folder, files[0], "--events", "--json"]
    status, out, _ = _run(capsys, *argv)
    assert status == 0 and _events_of(out)[files[0]] == []  # nothing > 1
    status, out, _ = _run(capsys, *argv, "--threshold", "0")
    assert status == 0 and len(_events_of(out)[files[0]]) == len(LABELS)


def test_reference_prints_psds_and_f1(model_dir, files, tmp_path, capsys):
    tsv = tmp_path / "strong.tsv"
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "piano.wav\t0.2\t1.9\tdog\n"
        "piano.wav\t1.5\t3.0\tbird\n"
        "snoring.wav\t0.0\t2.6\tcat\n"
        "other.wav\t\t\t\n"  # not tagged: left out
    )
    argv = ["--model", model_dir, *files, "--events", "--reference", tsv]
    status, out, err = _run(capsys, *argv)
    assert status == 0 and err == "", err
    line = out.strip().splitlines()[-1]
    assert line.startswith(f"reference {tsv} (2 files): PSDS1 ")
    for name in ("PSDS2", "event-based F1", "segment-based F1"):
        assert name in line
    status, out, _ = _run(capsys, *argv, "--json")
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["files"] == 2
    for name in ("psds1", "psds2", "event_f1", "segment_f1"):
        assert 0.0 <= metrics[name] <= 1.0
    # a tagged file the reference does not annotate: one line
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\npiano.wav\t0\t1\tdog\n"
    )
    status, out, err = _run(capsys, *argv)
    assert status == 2 and len(err.splitlines()) == 1
    assert "snoring.wav" in err and "no row" in err


def test_stream_events_are_the_offline_events(
    model_dir, files, monkeypatch, capsys
):
    argv = ["--model", model_dir, "--events", "--json", "--threshold", "0.5"]
    argv += ["--median-window", "3", "--window", "1.2", "--hop", "0.4"]
    status, out, _ = _run(capsys, *argv, files[0])
    offline = _events_of(out)[files[0]]
    pcm = (load_audio(files[0]).numpy() * 32768).round().astype("<i2")
    stdin = types.SimpleNamespace(buffer=io.BytesIO(pcm.tobytes()))
    monkeypatch.setattr(sys, "stdin", stdin)
    # final once no later window covers them: a file's scores exactly
    exact = ["--stream", "-", "--stream-delay", "1.2"]
    status, out, err = _run(capsys, *argv, *exact)
    assert status == 0 and err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    live = [
        (e["onset"], e["offset"], e["label"], e["score"])
        for line in lines
        for e in line["events"]
    ]
    assert len(offline) > 3
    key = lambda e: (e[0], e[2])  # noqa: E731
    _assert_same(sorted(live, key=key), sorted(offline, key=key))
    # given as they complete: before the end, each after its offset
    assert any(line["events"] for line in lines[:-1])
    for line in lines:
        assert all(e["offset"] <= line["end"] + 1e-6 for e in line["events"])


def test_stream_delay_bounds_when_events_are_given(
    model_dir, files, monkeypatch, capsys
):
    """With --stream-delay D an event is given at most D + a hop + the
    median filter's half after its offset (or with the first window, when
    it ends); with the window length, later."""
    argv = ["--model", model_dir, "--events", "--json", "--threshold", "0.5"]
    argv += ["--median-window", "3", "--window", "1.2", "--hop", "0.4"]
    pcm = (load_audio(files[0]).numpy() * 32768).round().astype("<i2")
    lags = {}
    for delay in ("0.2", "1.2"):
        stdin = types.SimpleNamespace(buffer=io.BytesIO(pcm.tobytes()))
        monkeypatch.setattr(sys, "stdin", stdin)
        status, out, _ = _run(
            capsys, *argv, "--stream", "-", "--stream-delay", delay
        )
        assert status == 0
        lines = [json.loads(line) for line in out.splitlines()][:-1]
        lags[delay] = [
            (line["end"] - e["offset"], 1.2 - e["offset"])
            for line in lines
            for e in line["events"]
        ]
    assert lags["0.2"] and lags["1.2"]
    assert all(lag <= max(0.2 + 0.4 + 0.3, first) for lag, first in lags["0.2"])
    lags = {delay: [lag for lag, _ in found] for delay, found in lags.items()}
    assert sum(lags["0.2"]) / len(lags["0.2"]) < sum(lags["1.2"]) / len(
        lags["1.2"]
    )


def test_plot_draws_event_bars_under_the_scores(
    model_dir, files, tmp_path, capsys
):
    pytest.importorskip("matplotlib")
    png = tmp_path / "events.png"
    argv = ["--model", model_dir, *files, "--events", "--plot", png]
    status, _, _ = _run(capsys, *argv, "--threshold", "0.5", "--no-progress")
    assert status == 0 and png.stat().st_size > 1000
    from speechbrain_ast.events.postprocess import Event

    result = {
        "file": "a.wav",
        "windows": [{"start": 0.0, "end": 1.0}, {"start": 1.0, "end": 2.0}],
        "_scores": torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1]]),
        "_events": [Event(0.1, 0.9, "dog", 0.9), Event(1.2, 1.9, "cat", 0.8)],
        "_duration": 2.0,
    }
    fig = results_figure([result, result], LABELS, 2)
    assert len(fig.axes) == 4
    bars = fig.axes[1]
    assert [t.get_text() for t in bars.get_yticklabels()] == ["dog", "cat"]
    assert bars.get_xlim() == fig.axes[0].get_xlim() == (0.0, 2.0)
    # with the stitched frame scores kept: their curves; with references:
    # outlined bars, a row also for a class only the references have
    edges = torch.linspace(0.0, 2.0, 5)
    probs = torch.tensor([[0.9, 0.1, 0.0]] * 2 + [[0.1, 0.8, 0.0]] * 2)
    framed = {**result, "_frames": (edges, probs)}
    references = {"a.wav": [(0.0, 1.0, "dog"), (1.5, 1.8, "bird")]}
    fig = results_figure([framed], LABELS, 2, references)
    curves, bars = fig.axes[0], fig.axes[1]
    assert curves.get_xlabel() == "time (s)"
    assert curves.lines[0].get_xdata().tolist() == [0.25, 0.75, 1.25, 1.75]
    assert [t.get_text() for t in bars.get_yticklabels()] == [
        "dog",
        "cat",
        "bird",
    ]
    assert "references (outlined)" in bars.get_xlabel()


def test_event_errors_are_one_line(model_dir, files, tmp_path, capsys):
    base = ["--model", model_dir, files[0]]
    for extra in (
        ["--events", "--backend", "onnxruntime"],
        ["--events", "--threshold", "1.5"],
        ["--events", "--median-window", "4"],
        ["--events-out", "e.csv"],
        ["--reference", "strong.tsv"],
        ["--events", "--events-out", "events.xlsx"],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(base + extra)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("python -m speechbrain_ast.tag: error: --")
    # a window longer than the folder's input (1.28 s)
    status, _, err = _run(capsys, *base, "--events", "--window", "3")
    assert status == 2 and len(err.splitlines()) == 1
    assert "--window 3.0 s is longer than the model's input" in err
    # a missing file: one line, the others tagged
    missing = str(tmp_path / "missing.wav")
    status, out, err = _run(capsys, *base, missing, "--events")
    assert status == 1 and out.startswith(files[0])
    assert len(err.splitlines()) == 1 and missing in err
    # a reference that is not there
    status, _, err = _run(capsys, *base, "--events", "--reference", missing)
    assert (
        status == 2 and len(err.splitlines()) == 1 and "does not exist" in err
    )


def test_events_run_the_lobe_once_per_batch_of_windows(
    model_dir, files, capsys, monkeypatch
):
    """``tag --events`` takes the clip scores and the frame scores from one
    pass of the lobe (``logits_and_frames``), the clip scores equal to
    those of ``tag`` without ``--events``."""
    argv = ["--model", model_dir, files[0], "--json"]
    argv += ["--window", "1.28", "--hop", "0.64"]
    argv += ["--batch-size", "2"]
    passes = []
    tokens = AST._tokens

    def counted(self, *args, **kwargs):
        passes.append(1)
        return tokens(self, *args, **kwargs)

    monkeypatch.setattr(AST, "_tokens", counted)
    _, plain, _ = _run(capsys, *argv)
    clip_only = len(passes)
    passes.clear()
    _, with_events, _ = _run(capsys, *argv, "--events")
    assert len(passes) == clip_only > 1  # one per batch of windows
    plain, with_events = json.loads(plain), json.loads(with_events)
    assert len(plain["windows"]) == len(with_events["windows"]) > 2
    for a, b in zip(plain["windows"], with_events["windows"]):
        assert [x["label"] for x in a["labels"]] == [
            x["label"] for x in b["labels"]
        ]
        assert [x["score"] for x in a["labels"]] == pytest.approx(
            [x["score"] for x in b["labels"]], abs=1e-5
        )


def test_logits_and_frames_equal_the_two_calls(model_dir, tmp_path):
    """One pass gives ``compute_logits`` and ``encode_frames``, on a
    fixed-length and a native-length folder (clips of unequal length)."""
    native = _folder(tmp_path / "native", native=True)
    for folder in (model_dir, native):
        model = ASTAudioClassifier.from_hparams(source=folder)
        torch.manual_seed(0)
        wavs, lens = torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.6])
        logits, frames = model.logits_and_frames(wavs, lens)
        assert torch.allclose(
            logits, model.compute_logits(wavs, lens), atol=1e-5
        )
        assert torch.equal(frames, model.encode_frames(wavs, lens))
