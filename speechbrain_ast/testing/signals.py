"""Learnable synthetic sounds: one class = one kind of event in one band.

Class ``index`` of ``n_classes`` gets a centre frequency, log-spaced from
250 Hz to 6 kHz, and a kind (``index % 3``): a harmonic tone, a band of
noise or a rising chirp around that frequency. Each clip puts one event of
its class at a random onset, with a random length, amplitude and a small
frequency jitter, over background noise: separable by a spectrogram model,
but not identical clip to clip.

``python -m speechbrain_ast.testing.signals OUT.wav --index 2 --n_classes 5``
writes one clip, to listen to
a class.

Authors
 * speechbrain-ast developers
"""

import argparse

import numpy as np
import torch

__all__ = ["class_frequency", "class_signal", "synthetic_audio"]

LOW_HZ, HIGH_HZ = 250.0, 6000.0
KINDS = ("tone", "noise band", "chirp")


def class_frequency(index, n_classes):
    """Centre frequency in Hz of class ``index`` (log-spaced).

    Example
    -------
    >>> class_frequency(0, 5), class_frequency(4, 5)
    (250.0, 6000.0)
    """
    if not 0 <= index < n_classes:
        raise ValueError(f"class index {index} outside [0, {n_classes})")
    position = index / max(n_classes - 1, 1)
    return float(LOW_HZ * (HIGH_HZ / LOW_HZ) ** position)


def _band_noise(rng, n, sample_rate, low, high):
    """White noise band-passed in the frequency domain to [low, high]."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[(freqs < low) | (freqs > high)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.abs(noise).max() + 1e-9)


def class_signal(
    index,
    sample_rate,
    duration,
    rng=None,
    n_classes=5,
    noise_level=(0.003, 0.02),
):
    """One clip of class ``index``: an event over background noise.

    Arguments
    ---------
    index : int
        The class, in ``[0, n_classes)``.
    sample_rate : int
        Samples per second (e.g. 44100 for ESC-50, 16000 elsewhere).
    duration : float
        Clip length in seconds.
    rng : numpy.random.Generator, optional
        Randomness (onset, length, amplitude, jitter, noise).
    n_classes : int
        How many classes share the frequency range.
    noise_level : tuple of float
        Range of the background noise's standard deviation.

    Returns
    -------
    numpy.ndarray
        float64 ``[round(duration * sample_rate)]`` in (-1, 1).

    Example
    -------
    >>> wav = class_signal(2, 16000, 1.0, np.random.default_rng(0))
    >>> wav.shape, bool(np.abs(wav).max() < 1)
    ((16000,), True)
    """
    rng = np.random.default_rng() if rng is None else rng
    n = int(round(duration * sample_rate))
    freq = class_frequency(index, n_classes) * rng.uniform(0.98, 1.02)
    freq = min(freq, 0.4 * sample_rate)
    length = int(n * rng.uniform(0.4, 0.8))
    onset = int(rng.integers(0, n - length + 1))
    t = np.arange(length) / sample_rate
    kind = KINDS[index % 3]
    if kind == "tone":
        event = sum(
            np.sin(2 * np.pi * freq * h * t + rng.uniform(0, 2 * np.pi)) / h
            for h in (1, 2, 3)
            if freq * h < 0.45 * sample_rate
        )
    elif kind == "noise band":
        event = _band_noise(rng, length, sample_rate, freq / 1.15, freq * 1.15)
    else:
        # linear sweep from freq / 1.5 to freq * 1.5 over the event
        f0, f1 = freq / 1.5, min(freq * 1.5, 0.45 * sample_rate)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1] + 1e-9))
        event = np.sin(phase)
    # short fades: no clicks at the event edges
    fade = np.minimum(
        1.0,
        np.minimum(np.arange(length), np.arange(length)[::-1])
        / (0.01 * sample_rate + 1),
    )
    event = event / (np.abs(event).max() + 1e-9) * fade
    wav = rng.normal(0.0, rng.uniform(*noise_level), n)
    wav[onset : onset + length] += rng.uniform(0.2, 0.7) * event
    return np.clip(wav, -0.99, 0.99)


def synthetic_audio(n, seconds, seed=0, sample_rate=16000):
    """Real-looking audio ``[n, samples]`` float32 in [-1, 1]: a chirp, a
    tone and bursts of noise per clip.

    Example
    -------
    >>> synthetic_audio(2, 0.5).shape
    torch.Size([2, 8000])
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    clips = []
    for _ in range(n):
        f0, f1 = rng.uniform(100, 4000, 2)
        sweep = f0 + (f1 - f0) * t / max(t[-1], 1e-9) / 2
        chirp = np.sin(2 * np.pi * sweep * t)
        tone = np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
        burst = rng.uniform(size=t.size // 800 + 1) > 0.5
        noise = rng.normal(0, 0.05, t.size) * burst.repeat(800)[: t.size]
        clips.append(0.3 * chirp + 0.1 * tone + noise)
    return torch.tensor(np.stack(clips), dtype=torch.float32)


def main(argv=None):
    """Command line: writes one clip of one class to a WAV file.

    Example
    -------
    >>> import tempfile
    >>> main(
    ...     [tempfile.mkdtemp() + "/c.wav", "--index", "1", "--duration", "0.1"]
    ... )
    class 1 (noise band around 553 Hz) written to ...
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="WAV file to write")
    parser.add_argument(
        "--index", type=int, default=0, help="the class (default: 0)"
    )
    parser.add_argument(
        "--n_classes",
        type=int,
        default=5,
        help="classes sharing the 250 Hz - 6 kHz range (default: 5)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=1.0,
        help="seconds (default: 1.0)",
    )
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 0 <= args.index < args.n_classes:
        parser.error(
            f"--index {args.index} is not a class of --n_classes "
            f"{args.n_classes}: give 0 to {args.n_classes - 1}"
        )
    if args.duration <= 0 or args.sample_rate < 1:
        parser.error(
            f"--duration {args.duration} and --sample_rate "
            f"{args.sample_rate} must be positive"
        )
    import soundfile as sf

    wav = class_signal(
        args.index,
        args.sample_rate,
        args.duration,
        rng=np.random.default_rng(args.seed),
        n_classes=args.n_classes,
    )
    sf.write(args.out, wav.astype(np.float32), args.sample_rate)
    kind = KINDS[args.index % 3]
    hz = class_frequency(args.index, args.n_classes)
    print(
        f"class {args.index} ({kind} around {hz:.0f} Hz) written to {args.out}"
    )


if __name__ == "__main__":
    main()
