"""DESED-style soundscapes synthesised from real recordings, with their
exact strong labels, written in DESED's folder layout.

Each soundscape is a background recording (looped to the clip's length,
from a random offset) with foreground events placed at random onsets and
random event-to-background ratios (SNR), as DESED's synthetic part is made
with Scaper; written here because Scaper needs SoX's C library. Every
foreground recording is cut to its audible part (its 10 ms frames within
40 dB of its loudest) on a whole-millisecond grid, so the onsets and
offsets in the tsv are where the sound starts and stops, to the sample.
Events do not overlap (``min_gap`` apart), so each labelled span is one
sound.

Per set (:data:`DESED_SETS`): 16 kHz mono PCM-16 wav, the strong tsv
(``filename onset offset event_label``), the weak tsv (``filename
event_labels``, comma-separated) or the unlabelled list, and the strong
sets' durations tsv, each tab-separated with a header.

Usage: ``python -m speechbrain_ast.testing.soundscapes OUT_DIR --fsdd
RECORDINGS --backgrounds FILE_OR_FOLDER ... [--sets weak=10,...]``
(or ``--foregrounds FOLDER``, one sub-folder of recordings per class).

Authors
 * speechbrain-ast developers
"""

import argparse
import csv
import os
import random

import soundfile as sf
import torch

from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.testing.fsdd_speech_commands import DIGIT_WORDS, list_fsdd

__all__ = [
    "DESED_SETS",
    "active_span",
    "make_soundscapes",
    "write_desed_set",
    "make_desed",
    "fsdd_foregrounds",
    "folder_foregrounds",
    "main",
]

SAMPLE_RATE = 16000
_MS = SAMPLE_RATE // 1000  # samples per millisecond
BACKGROUND_RMS = 0.02  # the level SNRs are measured against
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")

#: DESED's sets: name -> (audio folder, metadata tsv, kind, durations tsv
#: or None), relative to the dataset root (DCASE task 4's ``dcase/dataset``)
DESED_SETS = {
    "synthetic_train": ("audio/train/synthetic21_train/soundscapes",
                        "metadata/train/synthetic21_train/soundscapes.tsv",
                        "strong",
                        "metadata/train/synthetic21_train/durations.tsv"),
    "weak": ("audio/train/weak", "metadata/train/weak.tsv", "weak", None),
    "unlabel_in_domain": ("audio/train/unlabel_in_domain",
                          "metadata/train/unlabel_in_domain.tsv",
                          "unlabelled", None),
    "synthetic_validation": (
        "audio/validation/synthetic21_validation/soundscapes",
        "metadata/validation/synthetic21_validation/soundscapes.tsv",
        "strong", "metadata/validation/synthetic21_validation/durations.tsv"),
    "validation": ("audio/validation/validation",
                   "metadata/validation/validation.tsv", "strong",
                   "metadata/validation/validation_durations.tsv"),
    "public_eval": ("audio/eval/public", "metadata/eval/public.tsv", "strong",
                    "metadata/eval/public_durations.tsv"),
}  # fmt: skip
_HEADERS = {
    "strong": ["filename", "onset", "offset", "event_label"],
    "weak": ["filename", "event_labels"],
    "unlabelled": ["filename"],
}


def active_span(wav, top_db=40.0, frame_ms=10):
    """The audible part of a recording, on a whole-millisecond grid.

    The 10 ms frames within ``top_db`` of the loudest one bound the sound;
    inside them, the first and last samples above that level are its ends,
    rounded outwards to whole milliseconds.

    Arguments
    ---------
    wav : torch.Tensor
        ``[samples]`` at 16 kHz.
    top_db : float
        How far below the loudest frame a frame or sample still counts.
    frame_ms : int
        Frame length in milliseconds (frames start every millisecond).

    Returns
    -------
    tuple of int or None
        ``(start, end)`` sample indices, multiples of 16; None for a silent
        recording or one shorter than one frame.

    Example
    -------
    >>> wav = torch.zeros(16000)
    >>> wav[3205:7990] = 0.5
    >>> active_span(wav)
    (3200, 8000)
    >>> active_span(torch.zeros(800)) is None
    True
    """
    frame = frame_ms * _MS
    if wav.numel() < frame:
        return None
    power = wav.unfold(0, frame, _MS).pow(2).mean(dim=1)
    peak = float(power.max())
    if peak <= 0.0:
        return None
    threshold = peak * 10 ** (-top_db / 10)
    frames = torch.nonzero(power >= threshold).flatten()
    first, last = int(frames[0]) * _MS, int(frames[-1]) * _MS + frame
    loud = torch.nonzero(wav[first:last].abs() >= threshold**0.5).flatten()
    start = (first + int(loud[0])) // _MS * _MS
    end = -(-(first + int(loud[-1]) + 1) // _MS) * _MS
    return start, min(end, wav.numel() // _MS * _MS)


def _load_event(path, cache):
    """A foreground recording cut to its audible part (cached)."""
    if path not in cache:
        wav = load_audio(path, SAMPLE_RATE)
        span = active_span(wav)
        if span is None:
            raise ValueError(
                f"foreground recording {path!r} is silent or shorter than "
                "10 ms: remove it from the foregrounds"
            )
        cache[path] = wav[span[0] : span[1]]
    return cache[path]


def _background(path, cache, samples, rng):
    """``samples`` of a background recording from a random offset, looped,
    at :data:`BACKGROUND_RMS`."""
    if path not in cache:
        wav = load_audio(path, SAMPLE_RATE)
        rms = float(wav.pow(2).mean().sqrt())
        if rms <= 0.0:
            raise ValueError(
                f"background recording {path!r} is silent: remove it from "
                "the backgrounds"
            )
        cache[path] = wav * (BACKGROUND_RMS / rms)
    wav = cache[path]
    start = rng.randrange(wav.numel())
    reps = (start + samples) // wav.numel() + 1
    return wav.repeat(reps)[start : start + samples].clone()


def _onsets(rng, lengths_ms, duration_ms, gap_ms, tries=200):
    """Non-overlapping onsets (ms) for events of ``lengths_ms``, at least
    ``gap_ms`` apart; an event that finds no room is left out (None)."""
    taken, onsets = [], []
    for length in lengths_ms:
        onsets.append(None)
        for _ in range(tries):
            start = rng.randrange(duration_ms - length + 1)
            end = start + length
            if all(end + gap_ms <= a or b + gap_ms <= start for a, b in taken):
                taken.append((start, end))
                onsets[-1] = start
                break
    return onsets


def make_soundscapes(
    folder,
    n_clips,
    foregrounds,
    backgrounds=None,
    duration=10.0,
    events_per_clip=(1, 4),
    snr_db=(6.0, 30.0),
    min_gap=0.1,
    seed=0,
    prefix="soundscape",
):
    """Writes ``n_clips`` soundscapes into ``folder``.

    Arguments
    ---------
    folder : str
        Where the wav files go (created).
    n_clips : int
        How many soundscapes.
    foregrounds : dict of str to list of str
        Class label -> recordings of that class (any rate, any channels).
    backgrounds : list of str, optional
        Background recordings (looped when shorter than a clip); None or
        empty: silence (the events alone).
    duration : float
        Clip length in seconds (whole milliseconds).
    events_per_clip : tuple of int
        The least and most events of a clip; one without room is left out.
    snr_db : tuple of float
        Range of the event-to-background ratio (RMS over the event's span
        against :data:`BACKGROUND_RMS`), drawn uniformly per event.
    min_gap : float
        Seconds between two events of a clip.
    seed : int
        Seeds every draw: the same arguments write the same files.
    prefix : str
        File names: ``<prefix>_<index>.wav``.

    Returns
    -------
    list of dict
        Per clip: ``filename``, ``duration`` (seconds) and ``events``, a
        list of ``(onset, offset, label)`` in seconds sorted by onset.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> src = tempfile.mkdtemp()
    >>> tone = np.sin(np.arange(8000) * 0.3) * 0.5
    >>> sf.write(src + "/beep.wav", tone, 16000)
    >>> clips = make_soundscapes(
    ...     tempfile.mkdtemp(), 2, {"beep": [src + "/beep.wav"]}, duration=2.0
    ... )
    >>> clips[0]["filename"], len(clips[0]["events"][0])
    ('soundscape_0000.wav', 3)
    >>> onset, offset, label = clips[0]["events"][0]
    >>> round(offset - onset, 3), label
    (0.5, 'beep')
    """
    if not foregrounds or not all(foregrounds.values()):
        raise ValueError(
            "foregrounds must map each class label to at least one "
            f"recording; got {sorted(foregrounds or {})}"
        )
    lo, hi = int(events_per_clip[0]), int(events_per_clip[1])
    if not 0 <= lo <= hi:
        raise ValueError(
            f"events_per_clip {events_per_clip}: need 0 <= lo <= hi"
        )
    duration_ms = int(round(duration * 1000))
    if duration_ms < 10:
        raise ValueError(f"duration {duration} s: give at least 0.01 s")
    rng = random.Random(seed)
    labels = sorted(foregrounds)
    events_cache, background_cache = {}, {}
    os.makedirs(folder, exist_ok=True)
    clips, samples = [], duration_ms * _MS
    for index in range(n_clips):
        mix = torch.zeros(samples)
        if backgrounds:
            bg = rng.choice(sorted(backgrounds))
            mix = _background(bg, background_cache, samples, rng)
        chosen = []
        for _ in range(rng.randint(lo, hi)):
            label = rng.choice(labels)
            path = rng.choice(sorted(foregrounds[label]))
            wav = _load_event(path, events_cache)[:samples]
            snr = rng.uniform(*snr_db)
            chosen.append((label, wav, snr))
        lengths = [wav.numel() // _MS for _, wav, _ in chosen]
        onsets = _onsets(rng, lengths, duration_ms, int(min_gap * 1000))
        events = []
        for (label, wav, snr), onset, length in zip(chosen, onsets, lengths):
            if onset is None:
                continue
            wav = wav[: length * _MS]
            gain = BACKGROUND_RMS * 10 ** (snr / 20) / wav.pow(2).mean().sqrt()
            start = onset * _MS
            mix[start : start + wav.numel()] += wav * gain
            events.append((onset / 1000, (onset + length) / 1000, label))
        peak = float(mix.abs().max())
        if peak > 0.99:  # one gain for the whole clip: the spans stay exact
            mix = mix * (0.99 / peak)
        filename = f"{prefix}_{index:04d}.wav"
        path = os.path.join(folder, filename)
        sf.write(path, mix.numpy(), SAMPLE_RATE, subtype="PCM_16")
        clip = {"filename": filename, "duration": duration_ms / 1000}
        clips.append({**clip, "events": sorted(events)})
    return clips


def _write_tsv(path, header, rows):
    """A tab-separated file with a header line (folders created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_desed_set(root, set_name, n_clips, foregrounds, backgrounds=None,
                    seed=0, **kwargs):  # fmt: skip
    """Writes one DESED set (:data:`DESED_SETS`) of synthesised soundscapes
    under ``root``: the audio and its metadata tsv (strong, weak or the
    unlabelled list), and the durations tsv of a strongly labelled set.

    Arguments
    ---------
    root : str
        The dataset root (DCASE task 4's ``dcase/dataset``).
    set_name : str
        A key of :data:`DESED_SETS`.
    n_clips : int
        How many soundscapes.
    foregrounds, backgrounds, seed, **kwargs
        As :func:`make_soundscapes`.

    Returns
    -------
    list of dict
        :func:`make_soundscapes`'s clips.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> src, root = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> sf.write(src + "/beep.wav", np.ones(4000) * 0.1, 16000)
    >>> _ = write_desed_set(
    ...     root, "weak", 1, {"beep": [src + "/beep.wav"]}, duration=1.0
    ... )
    >>> open(root + "/metadata/train/weak.tsv").read().splitlines()
    ['filename\\tevent_labels', 'weak_0000.wav\\tbeep']
    """
    if set_name not in DESED_SETS:
        raise ValueError(
            f"unknown DESED set {set_name!r}: choose one of "
            f"{sorted(DESED_SETS)}"
        )
    audio, tsv, kind, durations = DESED_SETS[set_name]
    clips = make_soundscapes(
        os.path.join(root, audio), n_clips, foregrounds, backgrounds,
        seed=seed, prefix=set_name, **kwargs,
    )  # fmt: skip
    if kind == "strong":
        rows = []
        for clip in clips:
            rows += [
                [clip["filename"], f"{on:.3f}", f"{off:.3f}", label]
                for on, off, label in clip["events"]
            ] or [[clip["filename"], "", "", ""]]
    elif kind == "weak":
        rows = [
            [c["filename"], ",".join(sorted({e[2] for e in c["events"]}))]
            for c in clips
        ]
    else:
        rows = [[c["filename"]] for c in clips]
    _write_tsv(os.path.join(root, tsv), _HEADERS[kind], rows)
    if durations:
        _write_tsv(
            os.path.join(root, durations),
            ["filename", "duration"],
            [[c["filename"], f"{c['duration']:.3f}"] for c in clips],
        )
    return clips


def make_desed(root, foregrounds, backgrounds=None, counts=None, seed=0,
               **kwargs):  # fmt: skip
    """A mini DESED under ``root``: every set of ``counts`` synthesised
    from the same recordings (each set with its own seed).

    Arguments
    ---------
    root : str
        The dataset root to create.
    foregrounds, backgrounds, **kwargs
        As :func:`make_soundscapes`.
    counts : dict of str to int, optional
        Set name -> clips (default: a few of each set but the public eval).
    seed : int
        The first set's seed; the next sets take the next ones.

    Returns
    -------
    dict
        Set name -> its clips.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> src, root = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> sf.write(src + "/beep.wav", np.ones(4000) * 0.1, 16000)
    >>> sets = make_desed(
    ...     root, {"beep": [src + "/beep.wav"]}, counts={"validation": 2},
    ...     duration=1.0,
    ... )  # fmt: skip
    >>> sorted(os.listdir(root + "/audio/validation/validation"))
    ['validation_0000.wav', 'validation_0001.wav']
    """
    if counts is None:
        counts = {"synthetic_train": 8, "weak": 4, "unlabel_in_domain": 2,
                  "synthetic_validation": 4, "validation": 4}  # fmt: skip
    return {
        name: write_desed_set(
            root, name, n, foregrounds, backgrounds, seed=seed + i, **kwargs
        )
        for i, (name, n) in enumerate(counts.items())
    }


def fsdd_foregrounds(recordings, speakers=None, digits=None):
    """Free Spoken Digit Dataset recordings as foreground classes, one per
    digit word.

    Arguments
    ---------
    recordings : str
        FSDD's folder of ``<digit>_<speaker>_<take>`` files.
    speakers : iterable of str, optional
        Keep these speakers only (speaker-disjoint sets).
    digits : iterable of int, optional
        Keep these digits only.

    Returns
    -------
    dict of str to list of str
        ``"zero"`` ... -> paths.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> for name in ["3_theo_0", "3_ann_0", "4_theo_1"]:
    ...     sf.write(f"{d}/{name}.flac", np.zeros(800), 8000)
    >>> {k: len(v) for k, v in fsdd_foregrounds(d, ["theo"]).items()}
    {'three': 1, 'four': 1}
    """
    keep = None if speakers is None else set(speakers)
    found = {}
    for digit, speaker, _, path in list_fsdd(recordings):
        if (keep is None or speaker in keep) and (
            digits is None or digit in set(digits)
        ):
            found.setdefault(DIGIT_WORDS[digit], []).append(path)
    if not found:
        raise ValueError(
            f"no FSDD recording of speakers {sorted(keep or [])} and digits "
            f"{digits} in {recordings}"
        )
    return found


def folder_foregrounds(folder):
    """Foreground classes from a folder with one sub-folder of recordings
    per class (as DESED's sound bank ``foreground/<class>/``).

    Arguments
    ---------
    folder : str

    Returns
    -------
    dict of str to list of str
        Sub-folder name -> its audio files.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(d + "/Dog")
    >>> sf.write(d + "/Dog/a.wav", np.zeros(800), 16000)
    >>> list(folder_foregrounds(d))
    ['Dog']
    """
    found = {}
    for label in sorted(os.listdir(folder)):
        sub = os.path.join(folder, label)
        if os.path.isdir(sub):
            files = _audio_files(sub)
            if files:
                found[label] = files
    if not found:
        raise ValueError(
            f"{folder!r} has no sub-folder of audio files: put each class's "
            "recordings in a sub-folder named after the class"
        )
    return found


def _audio_files(path):
    """The audio files of a folder (sorted), or ``[path]`` for a file."""
    if os.path.isfile(path):
        return [path]
    return [
        os.path.join(path, name)
        for name in sorted(os.listdir(path))
        if name.lower().endswith(AUDIO_SUFFIXES)
    ]


def main(argv=None):
    """Command line: writes DESED-style soundscapes in DESED's layout.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> src = tempfile.mkdtemp()
    >>> for name in ["1_ann_0", "2_ann_0"]:
    ...     sf.write(f"{src}/{name}.wav", np.ones(1600) * 0.1, 8000)
    >>> main([tempfile.mkdtemp(), "--fsdd", src, "--sets", "weak=2",
    ...       "--duration", "2"])  # fmt: skip
    DESED-style soundscapes written to ...: weak 2
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", help="the dataset folder to create")
    source = parser.add_mutually_exclusive_group(required=True)
    # fmt: off
    source.add_argument("--fsdd", help="FSDD recordings: digits as classes")
    source.add_argument("--foregrounds",
                        help="a folder with one sub-folder per class")
    parser.add_argument("--backgrounds", nargs="*", default=[],
                        help="background recordings or folders of them "
                        "(default: silence)")
    parser.add_argument("--sets", default="synthetic_train=20,weak=10,"
                        "synthetic_validation=10,validation=10",
                        help=f"set=clips,... of {', '.join(DESED_SETS)}")
    # fmt: on
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = {}
    for item in args.sets.split(","):
        name, _, number = item.partition("=")
        if name not in DESED_SETS or not number.isdigit():
            parser.error(
                f"--sets item {item!r}: give set=clips with a set among "
                f"{', '.join(DESED_SETS)}"
            )
        counts[name] = int(number)
    try:
        if args.fsdd:
            foregrounds = fsdd_foregrounds(args.fsdd)
        else:
            foregrounds = folder_foregrounds(args.foregrounds)
        backgrounds = [f for p in args.backgrounds for f in _audio_files(p)]
        make_desed(
            args.root, foregrounds, backgrounds, counts, args.seed,
            duration=args.duration,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(
        f"DESED-style soundscapes written to {args.root}: "
        + ", ".join(f"{name} {n}" for name, n in counts.items())
    )


if __name__ == "__main__":
    main()
