"""Tests for speechbrain_ast.data.audio: formats, downmix, resampling and the
named errors for broken files."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_ast.data.audio import (
    AudioError,
    audio_info,
    decode_audio,
    load_audio,
)


def _tone(n, sr, freq=440.0, amp=0.5):
    t = np.arange(n) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float64)


@pytest.mark.parametrize(
    "ext, subtype, atol",
    [
        ("wav", "PCM_16", 1 / 2**15),
        ("wav", "PCM_24", 1 / 2**23),
        ("wav", "FLOAT", 1e-7),
        ("flac", "PCM_16", 1 / 2**15),
        ("flac", "PCM_24", 1 / 2**23),
    ],
)
def test_formats_read_as_written(tmp_path, ext, subtype, atol):
    x = _tone(4000, 16000)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, 16000, subtype=subtype)
    wav = load_audio(path)
    assert wav.dtype == torch.float32 and wav.shape == (4000,)
    assert np.abs(wav.numpy() - x).max() <= atol
    assert audio_info(path) == (16000, 4000, 1)


def test_downmix_is_channel_mean(tmp_path):
    left, right = _tone(3000, 16000, 300.0), _tone(3000, 16000, 700.0, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="FLOAT")
    wav = load_audio(path)
    np.testing.assert_allclose(wav.numpy(), (left + right) / 2, atol=1e-6)
    assert audio_info(path) == (16000, 3000, 2)


def test_resampling_matches_torchaudio(tmp_path):
    x = _tone(44100, 44100, 1000.0)
    path = tmp_path / "cd.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    wav = load_audio(path, sample_rate=16000)
    expected = torchaudio.functional.resample(
        torch.from_numpy(x).float(), 44100, 16000
    )
    assert wav.shape == (16000,)
    assert torch.allclose(wav, expected, atol=1e-6)
    # a 1 kHz tone stays a 1 kHz tone: dominant FFT bin of 1 s at 16 kHz
    assert int(np.abs(np.fft.rfft(wav.numpy())).argmax()) == 1000
    # no resampling when the rates agree
    assert load_audio(path, sample_rate=44100).shape == (44100,)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="does not exist") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="0 bytes") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_header_without_samples(tmp_path):
    path = tmp_path / "nosamples.wav"
    sf.write(path, np.zeros(0), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path)
    with pytest.raises(AudioError, match="no samples"):
        audio_info(path)


def test_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not a wave file\n" * 20)
    with pytest.raises(AudioError, match="Cannot read") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_directory(tmp_path):
    with pytest.raises(AudioError, match="directory"):
        load_audio(tmp_path)


def test_truncated_wav(tmp_path):
    full = tmp_path / "full.wav"
    sf.write(full, _tone(16000, 16000), 16000, subtype="PCM_24")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:1000])
    with pytest.raises(AudioError, match="truncated") as err:
        load_audio(cut)
    assert str(cut) in str(err.value)


def test_truncated_flac(tmp_path):
    full = tmp_path / "full.flac"
    rng = np.random.default_rng(0)
    sf.write(full, rng.uniform(-0.5, 0.5, 16000), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[:3000])
    with pytest.raises(AudioError, match=str(cut)):
        load_audio(cut)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = _tone(1600, 16000)
    x[100] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN/Inf") as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_bad_sample_rate(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(160, 16000), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(path, sample_rate=0)


def test_audio_error_is_value_error():
    assert issubclass(AudioError, ValueError)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_decoding_bytes_equals_reading_the_file(tmp_path, ext):
    rng = np.random.default_rng(1)
    path = tmp_path / f"a.{ext}"
    sf.write(path, rng.uniform(-0.5, 0.5, (8000, 2)), 8000)
    assert torch.equal(decode_audio(path.read_bytes()), load_audio(path))


def test_decoding_bad_bytes_names_the_clip():
    with pytest.raises(AudioError, match="clip 'x'.*shard is damaged"):
        decode_audio(b"not audio" * 50, "clip 'x' (shard-000001.tar)")
