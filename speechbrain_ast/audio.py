"""Reading audio for AST: soundfile, downmix, resample, with named errors.

Every problem with a file (missing, empty, not audio, cut short, no samples,
NaN/Inf samples) raises :class:`AudioError`, whose message names the file and
says what to do, instead of a bare libsndfile error deep inside a data loader.

Authors
 * speechbrain-ast developers
"""

import os
import struct

import soundfile as sf
import torch
import torchaudio

__all__ = ["AudioError", "audio_info", "load_audio"]


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
    return int(info.samplerate), int(info.frames), int(info.channels)


def load_audio(path, sample_rate=16000):
    """Reads an audio file as a mono float32 waveform at ``sample_rate``.

    Multi-channel audio is downmixed by the mean over channels; a file at
    another rate is resampled with ``torchaudio.functional.resample``.
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
        wav = torchaudio.functional.resample(wav, file_rate, int(sample_rate))
    return wav.contiguous()
