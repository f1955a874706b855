"""DESED-style soundscapes from the project's real recordings: the strong
labels are where the sound is, to the millisecond, the files are in
DESED's layout and read back as DESED's, and the same seed writes the same
files.

Authors
 * speechbrain-ast developers
"""

import os

import numpy as np
import pytest
import soundfile as sf
from test_real_learning import fsdd_recordings

from recipes.DESED.desed_prepare import read_weak_tsv
from speechbrain_ast.events.evaluate import read_durations_tsv, read_events_tsv
from speechbrain_ast.testing.soundscapes import (
    DESED_SETS,
    fsdd_foregrounds,
    main,
    make_desed,
    make_soundscapes,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = os.path.join(ROOT, "tests", "data", "sounds")
BACKGROUNDS = [os.path.join(SOUNDS, n) for n in ("piano.flac", "snoring.flac")]
MS = 16  # samples per millisecond at 16 kHz


@pytest.fixture(scope="module")
def foregrounds(tmp_path_factory):
    recordings = fsdd_recordings(str(tmp_path_factory.mktemp("fsdd") / "rec"))
    return fsdd_foregrounds(recordings, speakers=["theo", "george"])


def _spans(clip):
    return [
        (round(on * 16000), round(off * 16000)) for on, off, _ in clip["events"]
    ]


def test_labelled_spans_are_where_the_sound_is(foregrounds, tmp_path):
    """Over silence, the written file is exactly zero outside the tsv's
    spans, and each span starts and ends with a millisecond that holds a
    sample within 40 dB of the event's loudest 10 ms."""
    clips = make_soundscapes(
        str(tmp_path), 6, foregrounds, duration=4.0, events_per_clip=(2, 4)
    )
    assert sum(len(c["events"]) for c in clips) >= 12
    for clip in clips:
        wav, rate = sf.read(os.path.join(tmp_path, clip["filename"]))
        assert rate == 16000 and wav.shape == (64000,)
        inside = np.zeros(len(wav), dtype=bool)
        for start, end in _spans(clip):
            inside[start:end] = True
            event = wav[start:end]
            loudest = max(
                np.mean(event[i : i + 160] ** 2)
                for i in range(0, len(event) - 159, MS)
            )
            floor = (loudest * 1e-4) ** 0.5  # -40 dB, as an amplitude
            assert np.abs(event[:MS]).max() >= floor * 0.9
            assert np.abs(event[-MS:]).max() >= floor * 0.9
        assert not np.any(wav[~inside])
        assert np.all(np.diff(_spans(clip), axis=0)[:, 0] > 0)  # no overlap


def test_events_are_louder_than_the_background(foregrounds, tmp_path):
    clips = make_soundscapes(
        str(tmp_path), 4, foregrounds, BACKGROUNDS, duration=4.0,
        snr_db=(15.0, 20.0),
    )  # fmt: skip
    for clip in clips:
        wav, _ = sf.read(os.path.join(tmp_path, clip["filename"]))
        inside = np.zeros(len(wav), dtype=bool)
        for start, end in _spans(clip):
            inside[start:end] = True
        assert np.mean(wav[inside] ** 2) > 10 * np.mean(wav[~inside] ** 2)


def test_same_seed_same_files(foregrounds, tmp_path):
    a = make_soundscapes(str(tmp_path / "a"), 2, foregrounds, BACKGROUNDS,
                         duration=2.0, seed=3)  # fmt: skip
    b = make_soundscapes(str(tmp_path / "b"), 2, foregrounds, BACKGROUNDS,
                         duration=2.0, seed=3)  # fmt: skip
    c = make_soundscapes(str(tmp_path / "c"), 2, foregrounds, BACKGROUNDS,
                         duration=2.0, seed=4)  # fmt: skip
    assert a == b and a != c
    name = a[0]["filename"]
    assert (tmp_path / "a" / name).read_bytes() == (
        tmp_path / "b" / name
    ).read_bytes()


def test_desed_layout_reads_back_as_desed(foregrounds, tmp_path):
    counts = {"synthetic_train": 3, "weak": 2, "unlabel_in_domain": 1,
              "validation": 2}  # fmt: skip
    sets = make_desed(str(tmp_path), foregrounds, BACKGROUNDS, counts,
                      duration=2.0)  # fmt: skip
    for name, clips in sets.items():
        audio, tsv, kind, durations = DESED_SETS[name]
        names = sorted(os.listdir(tmp_path / audio))
        assert names == [c["filename"] for c in clips]
        path = str(tmp_path / tsv)
        if kind == "strong":
            assert read_events_tsv(path) == {
                c["filename"]: c["events"] for c in clips
            }
            assert read_durations_tsv(str(tmp_path / durations)) == {
                c["filename"]: 2.0 for c in clips
            }
        elif kind == "weak":
            assert read_weak_tsv(path) == {
                c["filename"]: sorted({e[2] for e in c["events"]})
                for c in clips
            }
        else:
            assert open(path).read().split() == ["filename", *names]


def test_clip_without_events_has_an_empty_row(foregrounds, tmp_path):
    make_desed(str(tmp_path), foregrounds, counts={"validation": 1},
               duration=1.0, events_per_clip=(0, 0))  # fmt: skip
    path = tmp_path / DESED_SETS["validation"][1]
    assert read_events_tsv(str(path)) == {"validation_0000.wav": []}


def test_bad_sources_are_named(tmp_path):
    silent = str(tmp_path / "silent.wav")
    sf.write(silent, np.zeros(1600), 16000)
    with pytest.raises(ValueError, match="silent.wav"):
        make_soundscapes(str(tmp_path / "out"), 1, {"x": [silent]})
    with pytest.raises(ValueError, match="at least one recording"):
        make_soundscapes(str(tmp_path / "out"), 1, {"x": []})


def test_command_line(foregrounds, tmp_path, capsys):
    recordings = os.path.dirname(foregrounds["zero"][0])
    main([str(tmp_path / "d"), "--fsdd", recordings, "--backgrounds", SOUNDS,
          "--sets", "weak=2,validation=1", "--duration", "2"])  # fmt: skip
    assert "weak 2, validation 1" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "d" / DESED_SETS["weak"][0])) == 2
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "e"), "--fsdd", recordings, "--sets", "nope=2"])
    assert err.value.code == 2
