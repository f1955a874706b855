"""Audio files for the reliability tests: the bad-input matrix, made with
numpy + soundfile (no datasets), each as small as the case allows.

Authors
 * speechbrain-ast developers
"""

import os
import struct

import numpy as np
import soundfile as sf

#: Cases that must raise ``AudioError`` naming the file, with a phrase
#: of the message each one must contain.
BAD_CASES = {
    "missing": "does not exist",
    "empty": "empty (0 bytes)",
    "no_samples": "no samples",
    "truncated": "truncated",
    "random_bytes": "Cannot read",
    "not_audio": "Cannot read",
    "nan": "NaN/Inf",
    "inf": "NaN/Inf",
}


def tone(seconds, rate, channels=1, amplitude=0.3, seed=0):
    """A noisy sine ``[samples, channels]`` float32, each channel its own."""
    gen = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    out = np.empty((n, channels), dtype=np.float32)
    for c in range(channels):
        out[:, c] = amplitude * np.sin(2 * np.pi * (220 + 110 * c) * t)
        out[:, c] += 0.05 * amplitude * gen.standard_normal(n)
    return out


def _wav_header_only(path, rate=16000):
    """A valid RIFF/WAVE header whose data chunk is empty."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", 0)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", len(body)) + body)


def make_bad_file(folder, case):
    """Writes the file of a :data:`BAD_CASES` case; returns its path."""
    path = os.path.join(folder, f"{case}.wav")
    if case == "missing":
        return path
    if case == "empty":
        open(path, "wb").close()
    elif case == "no_samples":
        _wav_header_only(path)
    elif case == "truncated":
        sf.write(path, tone(1.0, 16000), 16000, subtype="PCM_16")
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size // 2)
    elif case == "random_bytes":
        gen = np.random.default_rng(1)
        with open(path, "wb") as f:
            f.write(gen.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif case == "not_audio":
        path = os.path.join(folder, "notes.txt")
        with open(path, "w") as f:
            f.write("a shopping list, not audio\n" * 50)
    elif case in ("nan", "inf"):
        data = tone(0.5, 16000)
        data[4000, 0] = np.nan if case == "nan" else np.inf
        sf.write(path, data, 16000, subtype="FLOAT")
    else:
        raise KeyError(case)
    return path


def valid_wav_bytes(seconds=0.05, rate=16000, subtype="PCM_16", fmt="WAV"):
    """A small valid audio file's bytes (seeds for mutation fuzzing)."""
    import io

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, rate), rate, subtype=subtype, format=fmt)
    return buf.getvalue()


def write_long_8k(path, seconds=600, seed=0):
    """A long 8 kHz int16 file written block by block (cheap to make)."""
    gen = np.random.default_rng(seed)
    with sf.SoundFile(
        path, "w", samplerate=8000, channels=1, subtype="PCM_16"
    ) as f:
        block = 8000 * 60
        for start in range(0, seconds * 8000, block):
            n = min(block, seconds * 8000 - start)
            f.write((0.1 * gen.standard_normal(n)).astype(np.float32))
    return path
