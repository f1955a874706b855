"""Decoding audio for AST, the one place it happens: files
(:func:`load_audio`), file bytes as shards hold them (:func:`decode_audio`)
and the windows of a long file (:func:`iter_windows`), each mono float32 at
the requested rate (channel mean, :func:`resample`).

Samples are read by SpeechBrain's ``dataio.audio_io.load`` (soundfile).
Every problem with a file (missing, empty, not audio, cut short, no samples,
NaN/Inf samples) raises :class:`AudioError`, whose message names the file and
says what to do, instead of a bare libsndfile error deep inside a data loader.

Authors
 * speechbrain-ast developers
"""

import io
import math
import os
import struct

import soundfile as sf
import torch
import torchaudio

from speechbrain.dataio import audio_io

__all__ = [
    "AudioError",
    "audio_info",
    "count_windows",
    "decode_audio",
    "file_windows",
    "iter_windows",
    "load_audio",
    "resample",
]


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

# what to do about audio that cannot be decoded
_DAMAGED_FILE = (
    "the file is damaged or cut short. Re-copy or re-download it, or remove "
    "it from your manifest"
)
_DAMAGED_SHARD = (
    "the shard is damaged; rerun make_shards.py, which verifies and "
    "rewrites damaged shards"
)


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
    _check_rate(sample_rate)
    file_rate, _, _ = audio_info(path)
    path = os.fspath(path)
    wav, _ = _read_mono(path, repr(path), _DAMAGED_FILE)
    return _at_rate(wav, file_rate, sample_rate)


def _check_rate(sample_rate):
    """Refuses a sample rate that is not a positive number of Hz."""
    if sample_rate is None or int(sample_rate) <= 0:
        raise ValueError(
            f"sample_rate must be a positive number of Hz, got {sample_rate!r}."
        )


def _read_mono(source, name, fix):
    """The samples of a file or file object, downmixed by the channel mean:
    ``([samples] float32, rate)``. ``name`` and ``fix`` (what to do) go
    into the errors."""
    try:
        data, rate = audio_io.load(
            source, channels_first=False, dtype=torch.float32
        )
    except RuntimeError as err:
        cause = err.__cause__ or err
        raise AudioError(f"Cannot decode {name} ({cause}): {fix}.") from err
    return _mono(data, name, fix), rate


def _mono(data, name, fix, count=None):
    """``data`` ``[frames, channels]`` downmixed by the channel mean, after
    checking that it has samples (``count`` of them if given) and that all
    are finite."""
    if data.shape[0] == 0:
        raise AudioError(
            f"Audio {name} has a valid header but no samples: {fix}."
        )
    if count is not None and data.shape[0] < count:
        raise AudioError(
            f"Audio {name} is truncated: it holds fewer samples than its "
            f"header declares; {fix}."
        )
    wav = torch.as_tensor(data).mean(dim=1)
    if not torch.isfinite(wav).all():
        bad = int((~torch.isfinite(wav)).sum())
        raise AudioError(
            f"Audio {name} contains {bad} NaN/Inf samples: it was written "
            "from broken data; regenerate or remove it."
        )
    return wav


def _at_rate(wav, rate, sample_rate):
    """``wav`` resampled from ``rate`` to ``sample_rate``, contiguous."""
    if int(rate) != int(sample_rate):
        wav = resample(wav, int(rate), int(sample_rate))
    return wav.contiguous()


def decode_audio(data, name="<bytes>", sample_rate=16000):
    """Decodes audio file bytes as :func:`load_audio` reads the file (mono
    by the channel mean, float32, resampled).

    Arguments
    ---------
    data : bytes
        The compressed file (FLAC, WAV, OGG, ...).
    name : str
        Named in errors (e.g. the clip's id and shard).
    sample_rate : int
        The rate to return.

    Returns
    -------
    torch.Tensor
        ``[samples]`` float32.

    Example
    -------
    >>> import numpy as np
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.full(800, 0.5), 8000, format="FLAC")
    >>> decode_audio(buf.getvalue()).shape
    torch.Size([1600])
    """
    _check_rate(sample_rate)
    wav, rate = _read_mono(io.BytesIO(data), name, _DAMAGED_SHARD)
    return _at_rate(wav, rate, sample_rate)


def count_windows(num_samples, window, hop):
    """Number of windows over ``num_samples`` samples.

    Windows start at 0, ``hop``, ``2 * hop``, ... before the end; the
    last one is the first that reaches the end (it may be shorter than
    ``window``).

    Arguments
    ---------
    num_samples : int
        Length of the recording (any unit, e.g. samples).
    window : int
        Window length, same unit.
    hop : int
        Distance between window starts, same unit.

    Returns
    -------
    int
        At least 1 for a non-empty recording.

    Example
    -------
    >>> count_windows(60 * 16000, 10 * 16000, 5 * 16000)
    11
    >>> count_windows(62, 10, 5), count_windows(7, 10, 5)
    (12, 1)
    >>> count_windows(100, 10, 30)  # gaps: starts 0, 30, 60, 90
    4
    """
    if window <= 0 or hop <= 0:
        raise ValueError(f"window ({window}) and hop ({hop}) must be > 0.")
    if num_samples <= window:
        return 1
    # the first window that reaches the end is the last; with gaps
    # (hop > window) no window starts at or past the end
    return min(
        1 + math.ceil((num_samples - window) / hop),
        math.ceil(num_samples / hop),
    )


def file_windows(path, window_s, hop_s):
    """The windows of an audio file in its own samples (see
    :func:`count_windows`): ``(file_rate, window, hop, count)``.

    Example
    -------
    >>> import numpy as np, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros(20000), 8000)
    >>> file_windows(path, 1.0, 0.5)
    (8000, 8000, 4000, 4)
    """
    file_rate, frames, _ = audio_info(path)
    window = max(1, round(window_s * file_rate))
    hop = max(1, round(hop_s * file_rate))
    return file_rate, window, hop, count_windows(frames, window, hop)


def iter_windows(path, window_s, hop_s, sample_rate=16000):
    """Streams the windows of an audio file, mono, at ``sample_rate``.

    The file is read block by block, each sample once (at most one window
    plus one hop in memory); each window is downmixed and resampled as a
    whole, as a standalone clip would be. Windows start every ``hop_s``
    seconds and the last one reaches the file's end
    (:func:`count_windows`). Ours because SpeechBrain's ``audio_io.load``
    opens the file for each read and would decode overlaps twice.

    Arguments
    ---------
    path : str
        An audio file soundfile reads.
    window_s : float
        Window length in seconds.
    hop_s : float
        Hop between window starts in seconds.
    sample_rate : int
        The rate of the returned windows.

    Yields
    ------
    start_s : float
        Window start in seconds.
    end_s : float
        Window end in seconds (the file's end for the last window).
    wav : torch.Tensor
        ``[samples]`` float32 mono at ``sample_rate``.

    Raises
    ------
    AudioError
        For a missing, empty, unreadable or truncated file, or NaN/Inf
        samples (raised when the bad window is reached).

    Example
    -------
    >>> import numpy as np, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> sf.write(path, np.zeros((25 * 800, 2)), 8000)
    >>> [(s, e, w.shape[0]) for s, e, w in iter_windows(path, 1.0, 0.5)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [(0.0, 1.0, 16000), (0.5, 1.5, 16000), (1.0, 2.0, 16000),
     (1.5, 2.5, 16000)]
    """
    _check_rate(sample_rate)
    path = os.fspath(path)
    file_rate, window, hop, n_windows = file_windows(path, window_s, hop_s)
    frames = audio_info(path)[1]
    name = repr(path)
    try:
        with sf.SoundFile(path) as f:
            buf = torch.zeros(0)
            buf_start = 0  # file position of buf[0]

            def read(count):
                """The next ``count`` samples of the file, mono, checked."""
                data = f.read(count, dtype="float32", always_2d=True)
                return _mono(data, name, _DAMAGED_FILE, count)

            for k in range(n_windows):
                start = k * hop
                end = min(start + window, frames)
                # forget what lies before this window
                drop = min(max(0, start - buf_start), buf.shape[0])
                buf, buf_start = buf[drop:], buf_start + drop
                while buf_start < start:  # hop > window: skip the gap
                    skip = min(start - buf_start, window)
                    read(skip)
                    buf_start += skip
                need = end - (buf_start + buf.shape[0])
                if need > 0:
                    buf = torch.cat([buf, read(need)])
                wav = _at_rate(
                    buf[: end - start].clone(), file_rate, sample_rate
                )
                yield start / file_rate, end / file_rate, wav
    except (RuntimeError, OSError) as err:
        raise AudioError(
            f"Cannot decode {name} ({err}): {_DAMAGED_FILE}."
        ) from err
