"""Reading audio for AST: soundfile, downmix, resample, with named errors.

Every problem with a file (missing, empty, not audio, cut short, no samples,
NaN/Inf samples) raises :class:`AudioError`, whose message names the file and
says what to do, instead of a bare libsndfile error deep inside a data loader.

Authors
 * speechbrain-ast developers
"""

import math
import os
import struct

import soundfile as sf
import torch
import torchaudio

__all__ = ["AudioError", "audio_info", "load_audio", "resample"]


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and
    says what to do.

    Example
    -------
    >>> try:
    ...     load_audio("/no/such/file.wav")
    ... except AudioError as err:
    ...     print("does not exist" in str(err))
    True
    """


# Sample rates a file may declare: outside, its header is damaged (or it is
# not audio AST can use), and resampling it would take unbounded memory
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000

# torchaudio's polyphase kernel has (orig / g) * (new / g) taps in all
# (g = gcd): 70560 for 44.1 -> 16 kHz, but 7e8 (12 GB, a minute) for
# 44101 -> 16000 Hz; above this many taps resample in the frequency domain
_MAX_POLYPHASE_TAPS = 1 << 20


def resample(wav, orig_freq, new_freq):
    """Resamples ``wav`` along its last axis, for any pair of rates.

    Uses ``torchaudio.functional.resample`` (windowed sinc, polyphase)
    when the reduced rate ratio is small, as for all common rates
    (8, 11.025, 22.05, 32, 44.1, 48, 96 kHz). For an odd rate (e.g. 44101
    Hz, which a damaged header can also declare) that kernel would need
    gigabytes, so the signal is instead resampled exactly band-limited in
    the frequency domain (FFT, truncate or zero-pad the spectrum, inverse
    FFT), whose memory is linear in the length. Both give
    ``ceil(n * new_freq / orig_freq)`` samples.

    Arguments
    ---------
    wav : torch.Tensor
        ``[..., samples]`` float.
    orig_freq : int
        Rate of ``wav`` in Hz.
    new_freq : int
        Rate to return in Hz.

    Returns
    -------
    torch.Tensor
        ``[..., ceil(samples * new_freq / orig_freq)]``, dtype of ``wav``.

    Example
    -------
    >>> resample(torch.zeros(44100), 44100, 16000).shape
    torch.Size([16000])
    >>> resample(torch.zeros(44101), 44101, 16000).shape
    torch.Size([16000])
    """
    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq == new_freq:
        return wav
    g = math.gcd(orig_freq, new_freq)
    if (orig_freq // g) * (new_freq // g) <= _MAX_POLYPHASE_TAPS:
        return torchaudio.functional.resample(wav, orig_freq, new_freq)
    n = wav.shape[-1]
    m = math.ceil(n * new_freq / orig_freq)
    spec = torch.fft.rfft(wav.double(), dim=-1)
    out = spec.new_zeros(*spec.shape[:-1], m // 2 + 1)
    keep = min(spec.shape[-1], out.shape[-1])
    out[..., :keep] = spec[..., :keep]
    if m < n and m % 2 == 0:
        # the new Nyquist bin holds both signs of that frequency: keep it
        # real so the inverse FFT is the band-limited signal
        out[..., -1] = out[..., -1].real.clone()
    return (torch.fft.irfft(out, n=m, dim=-1) * (m / n)).to(wav.dtype)


def _declared_wav_shortfall(path):
    """Bytes missing from a RIFF/WAVE file's data chunk, or 0.

    libsndfile silently reads what is there when a WAV file is cut short
    (an interrupted copy or download), so the declared data size is checked
    by hand. Streaming writers that leave the size unknown (0 or 0xFFFFFFFF)
    are not flagged.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            # chunks are word aligned
            pos += 8 + chunk_size + (chunk_size % 2)
    return 0


def audio_info(path):
    """Checks an audio file without decoding it.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file (anything soundfile reads: WAV, FLAC, OGG, ...).

    Returns
    -------
    sample_rate : int
        The file's sample rate in Hz.
    frames : int
        Samples per channel.
    channels : int
        Number of channels.

    Raises
    ------
    AudioError
        If the file is missing, empty, not audio, cut short or has no
        samples.

    Example
    -------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros((8000, 2)), 16000)
    >>> audio_info(path)
    (16000, 8000, 2)
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AudioError(
            f"Audio file {path!r} does not exist: check the path (and any "
            "data-folder placeholder in your manifest)."
        )
    if os.path.isdir(path):
        raise AudioError(f"{path!r} is a directory, not an audio file.")
    if os.path.getsize(path) == 0:
        raise AudioError(
            f"Audio file {path!r} is empty (0 bytes): re-copy or re-download "
            "it, or remove it from your manifest."
        )
    try:
        info = sf.info(path)
    except (RuntimeError, OSError) as err:
        raise AudioError(
            f"Cannot read {path!r} as audio ({err}). It is not in a format "
            "soundfile/libsndfile reads (WAV, FLAC, OGG, ...) or is damaged: "
            "convert it, e.g. `ffmpeg -i in out.wav`, or remove it."
        ) from err
    shortfall = _declared_wav_shortfall(path)
    if shortfall:
        raise AudioError(
            f"Audio file {path!r} is truncated: its header declares "
            f"{shortfall} more bytes of samples than the file holds. Re-copy "
            "or re-download it, or remove it from your manifest."
        )
    if info.frames <= 0:
        raise AudioError(
            f"Audio file {path!r} has a valid header but no samples: "
            "remove it from your manifest or replace it."
        )
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"Audio file {path!r} declares a sample rate of "
            f"{info.samplerate} Hz, outside {MIN_SAMPLE_RATE}.."
            f"{MAX_SAMPLE_RATE} Hz: its header is damaged or it is not "
            "usable audio. Re-copy, re-encode or remove it."
        )
    return int(info.samplerate), int(info.frames), int(info.channels)


def load_audio(path, sample_rate=16000):
    """Reads an audio file as a mono float32 waveform at ``sample_rate``.

    Multi-channel audio is downmixed by the mean over channels; a file at
    another rate is resampled with :func:`resample`
    (``torchaudio.functional.resample`` for the usual rates).
    Integer formats are scaled to [-1, 1] by soundfile.

    Arguments
    ---------
    path : str or os.PathLike
        The audio file (anything soundfile reads: WAV incl. 24-bit and
        float, FLAC, OGG, ...).
    sample_rate : int
        The rate to return, in Hz (AST models expect 16000).

    Returns
    -------
    torch.Tensor
        ``[samples]`` float32.

    Raises
    ------
    AudioError
        For a missing, empty, unreadable (not audio, damaged, truncated)
        or zero-sample file, or one that contains NaN/Inf samples.

    Example
    -------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.full((44100, 2), 0.25), 44100, subtype="PCM_24")
    >>> wav = load_audio(path)
    >>> wav.shape, wav.dtype
    (torch.Size([16000]), torch.float32)
    """
    if sample_rate is None or int(sample_rate) <= 0:
        raise ValueError(
            f"sample_rate must be a positive number of Hz, got {sample_rate!r}."
        )
    file_rate, _, _ = audio_info(path)
    path = os.fspath(path)
    try:
        data, _ = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as err:
        raise AudioError(
            f"Cannot decode {path!r} ({err}): the file is damaged or cut "
            "short. Re-copy or re-download it, or remove it."
        ) from err
    if data.shape[0] == 0:
        raise AudioError(
            f"Audio file {path!r} has a valid header but no samples: "
            "remove it from your manifest or replace it."
        )
    wav = torch.from_numpy(data).mean(dim=1)
    if not torch.isfinite(wav).all():
        bad = int((~torch.isfinite(wav)).sum())
        raise AudioError(
            f"Audio file {path!r} contains {bad} NaN/Inf samples: it was "
            "written from broken data; regenerate or remove it."
        )
    if file_rate != int(sample_rate):
        wav = resample(wav, file_rate, int(sample_rate))
    return wav.contiguous()
