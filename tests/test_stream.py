"""Live tagging: the ring buffer, the sources (standard input, a growing
WAV file, a microphone through a fake ``sounddevice``), the windows a
stream is cut into, the drop policy, and the scores of a streamed real
recording against offline windowed tagging of the same file.

Authors
 * speechbrain-ast developers
"""

import argparse
import io
import json
import os
import sys
import threading
import time
import types

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ast.data.audio import iter_windows, load_audio
from speechbrain_ast.events import tagging
from speechbrain_ast.events.postprocess import scores_to_events
from speechbrain_ast.events.sources import (
    MicSource,
    PcmSource,
    RingBuffer,
    WavFileSource,
)
from speechbrain_ast.events.stream import (
    EventTracker,
    FrameStitcher,
    HopScheduler,
    stream_windows,
)
from speechbrain_ast.inference.classifier import ClipScoring
from speechbrain_ast.tag import main
from speechbrain_ast.testing.model_folders import tiny_model_folder

SOUNDS = os.path.join(os.path.dirname(__file__), "data", "sounds")
LABELS = ("dog", "rain", "speech", "siren")
RATE = 44100  # the recording's own rate: every window is resampled
WINDOW, HOP = "1.0", "0.5"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("stream") / "model"
    return tiny_model_folder(folder, labels=LABELS, embed_dim=32)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """3.3 s of a real piano recording, mono 16-bit at 44.1 kHz: the WAV
    file and its samples as int16."""
    wav = load_audio(os.path.join(SOUNDS, "piano.flac"), RATE)[
        : int(3.3 * RATE)
    ]
    pcm = np.round(wav.numpy() * 32767).astype("<i2")
    path = str(tmp_path_factory.mktemp("rec") / "piano.wav")
    sf.write(path, pcm, RATE, subtype="PCM_16")
    return path, pcm


def _scores(lines):
    """``{start: {label: score}}`` of JSON window lines."""
    return {
        round(w["start"], 6): {d["label"]: d["score"] for d in w["labels"]}
        for w in lines
        if "labels" in w
    }


@pytest.fixture(scope="module")
def offline(model_dir, recording):
    """The windows' scores of ``tag --window 1 --hop 0.5`` on the file."""
    argv = ["--model", model_dir, recording[0], "--window", WINDOW]
    argv += ["--hop", HOP, "--json", "--top-k", str(len(LABELS))]
    out = io.StringIO()
    with _stdout(out):
        assert main(argv) == 0
    return _scores(json.loads(out.getvalue())["windows"])


class _stdout:
    """Redirects sys.stdout (capsys is function-scoped)."""

    def __init__(self, out):
        self.out = out

    def __enter__(self):
        self.saved, sys.stdout = sys.stdout, self.out

    def __exit__(self, *exc):
        sys.stdout = self.saved


def _stream(model_dir, source, capsys, *extra):
    argv = ["--model", model_dir, "--stream", source, "--window", WINDOW]
    argv += ["--hop", HOP, "--json", "--top-k", str(len(LABELS)), *extra]
    status = main(argv)
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return status, lines, captured.err


def _assert_same(streamed, offline):
    assert list(streamed) == list(offline)
    for start, scores in offline.items():
        for label in LABELS:
            assert streamed[start][label] == pytest.approx(
                scores[label], abs=1e-5
            ), (start, label)


def test_ring_buffer_keeps_the_last_samples_as_numpy_slicing():
    gen = np.random.default_rng(0)
    ring, written = RingBuffer(37), []
    for size in gen.integers(0, 90, size=60):
        block = gen.standard_normal(size).astype(np.float32)
        ring.write(block)
        written.append(block)
        everything = np.concatenate(written)
        assert ring.total == len(everything)
        for count in (0, 1, min(37, len(everything))):
            expected = everything[len(everything) - count :]
            assert np.array_equal(ring.latest(count), expected)
    with pytest.raises(ValueError):
        ring.latest(38)


@pytest.mark.parametrize("window,hop", [(1.0, 0.5), (0.5, 0.75), (2.0, 2.0)])
def test_stream_windows_are_the_files_windows(tmp_path, window, hop):
    """Any block sizes: the same windows as iter_windows of the file."""
    rate = 8000
    data = np.random.default_rng(1).standard_normal(int(4.3 * rate))
    data = data.astype(np.float32) * 0.1
    path = str(tmp_path / "a.wav")
    sf.write(path, data, rate, subtype="FLOAT")
    cuts = np.sort(np.random.default_rng(2).integers(0, len(data), 40))
    blocks = np.split(data, cuts)
    streamed = list(stream_windows(blocks, rate, window, hop))
    offline = list(iter_windows(path, window, hop, rate))
    assert [k for k, *_ in streamed] == list(range(len(offline)))
    for (_, s, e, wav), (s2, e2, wav2) in zip(streamed, offline):
        assert (s, e) == pytest.approx((s2, e2))
        assert np.array_equal(wav, wav2.numpy())


def test_stdin_stream_scores_as_offline_windows(
    model_dir, recording, offline, monkeypatch, capsys
):
    # raw PCM in odd-sized reads, cut inside samples
    raw = recording[1].tobytes()

    class Chunky(io.BytesIO):
        def read1(self, size=-1):
            return super().read1(min(size, 777))

    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=Chunky(raw)))
    status, lines, err = _stream(
        model_dir, "-", capsys, "--stream-rate", str(RATE)
    )
    assert status == 0 and err == ""
    _assert_same(_scores(lines), offline)
    assert [w["index"] for w in lines] == list(range(len(offline)))


def test_growing_wav_scores_as_offline_windows(
    model_dir, recording, offline, tmp_path, capsys
):
    path = str(tmp_path / "live.wav")
    writer = sf.SoundFile(path, "w", RATE, 1, "PCM_16")
    pcm = recording[1]

    def record():
        for start in range(0, len(pcm), RATE // 5):
            writer.write(pcm[start : start + RATE // 5])
            writer.flush()
            time.sleep(0.01)
        writer.close()

    thread = threading.Thread(target=record)
    thread.start()
    try:
        status, lines, err = _stream(model_dir, path, capsys)
    finally:
        thread.join()
    assert status == 0 and err == ""
    _assert_same(_scores(lines), offline)


def test_wav_without_final_size_ends_after_idle_seconds(tmp_path):
    """A recorder that never sets the data size: read to the end, then
    wait --stream-idle seconds for more."""
    path = str(tmp_path / "open.wav")
    sf.write(path, np.full(1000, 0.25), 16000, subtype="PCM_16")
    with open(path, "r+b") as f:
        f.seek(40)
        f.write(b"\0\0\0\0")  # data size unknown
    start = time.monotonic()
    blocks = list(WavFileSource(path, idle_s=0.3).blocks())
    waited = time.monotonic() - start
    assert sum(len(b) for b in blocks) == 1000
    assert np.allclose(np.concatenate(blocks), 0.25, atol=1e-4)
    assert 0.3 <= waited < 2.0
    # a closed file (its size set) ends at once
    sf.write(path, np.zeros(1000), 16000)
    start = time.monotonic()
    assert sum(len(b) for b in WavFileSource(path, idle_s=5).blocks()) == 1000
    assert time.monotonic() - start < 1.0


def fake_sounddevice(samples, rate, pace=1.0):
    """A ``sounddevice`` stand-in whose InputStream plays ``samples`` to
    its callback in blocks, ``pace`` times real time (0: at once)."""

    class InputStream:
        def __init__(
            self, samplerate, channels, dtype, device, blocksize, callback
        ):
            assert samplerate == rate and channels == 1 and dtype == "float32"
            self.blocksize, self.callback = blocksize, callback
            self.active, self.stop = False, threading.Event()
            self.device = device

        def _play(self):
            start = time.monotonic()
            for pos in range(0, len(samples), self.blocksize):
                block = samples[pos : pos + self.blocksize]
                due = start + pace * (pos + len(block)) / rate
                time.sleep(max(0.0, due - time.monotonic()))
                if self.stop.is_set():
                    break
                self.callback(block[:, None].copy(), len(block), None, None)
            self.active = False

        def __enter__(self):
            self.active = True
            self.thread = threading.Thread(target=self._play)
            self.thread.start()
            return self

        def __exit__(self, *exc):
            self.stop.set()
            self.thread.join()

    module = types.ModuleType("sounddevice")
    module.InputStream = InputStream
    return module


def test_microphone_through_fake_sounddevice(
    model_dir, recording, offline, monkeypatch, capsys
):
    samples = recording[1].astype(np.float32) / 32768
    fake = fake_sounddevice(samples, RATE, pace=0.5)
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    status, lines, err = _stream(
        model_dir, "mic", capsys, "--stream-rate", str(RATE)
    )
    assert status == 0
    streamed = _scores(lines)
    if "fell behind" not in err:  # a loaded machine may drop a window
        assert list(streamed) == list(offline)
    for start, scores in streamed.items():
        for label in LABELS:
            assert scores[label] == pytest.approx(
                offline[start][label], abs=1e-5
            )


class SlowModel(ClipScoring):
    """A model that needs 0.3 s per window."""

    multi_label, labels, sample_rate = True, list(LABELS), 16000

    def compute_logits(self, wavs, wav_lens=None):
        time.sleep(0.3)
        return torch.zeros(len(wavs), len(self.labels))


def test_slow_model_drops_hops_and_says_so(monkeypatch):
    seconds, rate = 2.5, 16000
    samples = np.zeros(int(seconds * rate), np.float32)
    monkeypatch.setitem(
        sys.modules, "sounddevice", fake_sounddevice(samples, rate)
    )
    sources = []

    class Recorded(MicSource):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            sources.append(self)

    monkeypatch.setattr(tagging, "MicSource", Recorded)
    args = argparse.Namespace(
        stream="mic",
        stream_rate=None,
        device_index=None,
        events=False,
        window=0.5,
        hop=0.1,
        top_k=1,
        json=True,
        events_out=None,
    )
    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    assert tagging.run_stream(SlowModel(), args, out, err) == 0
    took = time.monotonic() - start
    indices = [
        json.loads(line)["index"] for line in out.getvalue().splitlines()
    ]
    reports = err.getvalue().splitlines()
    assert reports and all(
        line.startswith("fell behind: dropped ")
        and line.endswith("use a larger --hop or a smaller model")
        for line in reports
    )
    dropped = sum(int(line.split()[3]) for line in reports)
    # every window is scored or reported dropped, none twice
    assert len(indices) + dropped == 21 and indices == sorted(set(indices))
    assert max(np.diff(indices)) > 1
    # bounded latency: the queue never held much more than one scoring
    # time of blocks, and the run ends soon after the audio does
    assert sources[0].max_backlog <= 12
    assert took < seconds + 1.5


def test_scheduler_drops_late_windows_only():
    now = [0.0]
    lines = []
    scheduler = HopScheduler(0.5, lines.append, clock=lambda: now[0])
    scheduler.begin(0.1)  # the first block: 0.1 s captured until now
    now[0] = 1.0
    assert scheduler.keep(1.1)  # not late yet
    now[0] = 3.0
    kept = [scheduler.keep(end) for end in (1.6, 2.1, 2.6, 3.1)]
    assert kept == [False, False, True, True]
    assert lines == [
        "fell behind: dropped 2 hop(s) = 1.00 s; use a larger --hop or a "
        "smaller model"
    ]
    assert scheduler.total_dropped == 2


def test_pcm_source_joins_samples_split_across_reads():
    raw = np.arange(-5, 5, dtype="<i2").tobytes()

    class OneByte(io.BytesIO):
        def read1(self, size=-1):
            return super().read1(1)

    blocks = list(PcmSource(OneByte(raw), 8000).blocks())
    got = np.concatenate(blocks) * 32768
    assert np.array_equal(got, np.arange(-5, 5))


def test_stitcher_averages_overlaps_on_the_absolute_axis():
    """Windows of a known function of time, at a hop that is not a
    multiple of the column step: every column gets the function at its
    centre (the window columns hold it), averaged over windows."""
    step, centre = 0.1, 0.08
    stitch = FrameStitcher(step, centre, num_classes=1)
    edges = np.concatenate([[0.0], 0.13 + step * np.arange(9), [1.06]])
    popped = []
    for k in range(6):
        start = 0.35 * k
        # window column i holds its absolute centre
        probs = (start + centre + step * np.arange(10))[:, None]
        stitch.add(start, edges, torch.tensor(probs).float())
        popped.append(stitch.pop(before_s=0.35 * (k + 1)))
    popped.append(stitch.pop())
    firsts = [first for first, _ in popped]
    probs = np.concatenate([p for _, p in popped])[:, 0]
    assert firsts[0] == 0 and len(probs) == firsts[-1] + len(popped[-1][1])
    centres = centre + step * np.arange(len(probs))
    # each window's column is within half a step of the stream column
    assert np.abs(probs - centres).max() <= step / 2 + 1e-6


@pytest.mark.parametrize("median", [1, 3, 7])
def test_event_tracker_gives_the_offline_events(median):
    """Columns handed in random pieces: the same events as scoring all of
    them at once, each given once, none before it is complete."""
    gen = np.random.default_rng(median)
    labels = ["a", "b", "c"]
    # slowly varying probabilities, so events span several columns
    noise = gen.standard_normal((408, 3))
    smooth = sum(noise[i : i + 400] for i in range(8)) / 8**0.5
    probs = 1 / (1 + np.exp(-smooth))
    edges = lambda n: torch.arange(n + 1, dtype=torch.float64) * 0.1  # noqa: E731
    expected = scores_to_events(
        probs, edges(400), labels, [0.5, 0.6, 0.4], median
    )
    tracker = EventTracker(labels, edges, [0.5, 0.6, 0.4], median)
    got, pos = [], 0
    for size in gen.integers(0, 30, 60):
        piece = probs[pos : pos + size]
        new = tracker.add(pos, piece)
        pos += len(piece)
        assert all(event.offset <= pos * 0.1 for event in new)
        got += new
    got += tracker.add(pos, probs[pos:])
    got += tracker.finish(end_s=40.0)
    key = lambda e: (e.onset, e.label)  # noqa: E731
    assert len(expected) > 20
    got, expected = sorted(got, key=key), sorted(expected, key=key)
    assert [e.label for e in got] == [e.label for e in expected]
    assert np.allclose(
        np.array(got, dtype=object)[:, [0, 1, 3]].astype(float),
        np.array(expected, dtype=object)[:, [0, 1, 3]].astype(float),
    )
    assert len(tracker.probs) < 400  # columns behind the events are let go


def test_stream_errors_are_one_line(model_dir, tmp_path, monkeypatch, capsys):
    # no sounddevice (or no PortAudio): how to install it
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    assert main(["--model", model_dir, "--stream", "mic"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "pip install sounddevice" in err and "PortAudio" in err
    # a missing or non-WAV file
    missing = str(tmp_path / "none.wav")
    assert main(["--model", model_dir, "--stream", missing]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and missing in err and "does not exist" in err
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all, just text\n")
    assert main(["--model", model_dir, "--stream", str(text)]) == 2
    assert "not a WAV file" in capsys.readouterr().err
    # usage errors: bad rate, files with --stream, --device-index
    for extra in (
        ["--stream", "-", "--stream-rate", "0"],
        ["--stream", "-", "--stream-rate", "5000000"],
        ["--stream", "-", "a.wav"],
        ["--stream", "-", "--device-index", "1"],
        ["--stream", "-", "--stream-idle", "0"],
        [],
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["--model", model_dir, *extra])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("python -m speechbrain_ast.tag: error: ")
