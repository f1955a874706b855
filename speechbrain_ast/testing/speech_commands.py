"""A synthetic mini Speech Commands V2 in the official layout.

One folder per word (all 35 V2 words by default, only a few populated),
``<speaker>_nohash_<n>.wav`` clips of 1 s at 16 kHz whose content depends on
the word (``speechbrain_ast.testing.signals``, one class per populated word, so a
model can learn it), ``validation_list.txt`` and
``testing_list.txt`` split by speaker as the official lists are, and a
``_background_noise_/`` folder that is not a class.

Usage: ``python -m speechbrain_ast.testing.speech_commands OUT_DIR [--words
yes,no,up ...]``.

Authors
 * speechbrain-ast developers
"""

import argparse
import os

import numpy as np
import soundfile as sf

from speechbrain_ast.testing.signals import class_signal

WORDS_V2 = [
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five",
    "follow", "forward", "four", "go", "happy", "house", "learn", "left",
    "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila",
    "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes",
    "zero",
]  # fmt: skip


def make_speech_commands(
    root,
    words=("yes", "no", "up"),
    speakers_per_word=6,
    clips_per_speaker=1,
    n_valid_speakers=1,
    n_test_speakers=1,
    all_folders=True,
    sample_rate=16000,
    seed=0,
):
    """Writes a mini Speech Commands V2 under ``root``.

    Arguments
    ---------
    root : str
        The dataset folder to create.
    words : sequence of str
        The words that get clips.
    speakers_per_word : int
        Speakers per populated word.
    clips_per_speaker : int
        Clips per speaker and word (``_nohash_0``, ``_nohash_1``, ...).
    n_valid_speakers, n_test_speakers : int
        Speakers of each word listed in ``validation_list.txt`` /
        ``testing_list.txt``; the others are training speakers.
    all_folders : bool
        Create (empty) folders for all 35 V2 words, as the real data has.
    sample_rate : int
        Sample rate of the clips.
    seed : int
        Random seed: the same arguments write the same files.

    Returns
    -------
    str
        ``root``.

    Example
    -------
    >>> import tempfile
    >>> root = make_speech_commands(tempfile.mkdtemp() + "/sc", words=["yes"])
    >>> sorted(os.listdir(root + "/yes"))[0]
    'spk00yes_nohash_0.wav'
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    for word in WORDS_V2 if all_folders else words:
        os.makedirs(os.path.join(root, word), exist_ok=True)
    lists = {"valid": [], "test": []}
    for index, word in enumerate(words):
        os.makedirs(os.path.join(root, word), exist_ok=True)
        for s in range(speakers_per_word):
            # Speaker ids are 8 hex digits in the real data; any name works.
            speaker = f"spk{s:02d}{word[:3]}"
            for n in range(clips_per_speaker):
                name = f"{speaker}_nohash_{n}.wav"
                wav = class_signal(
                    index, sample_rate, 1.0, rng=rng, n_classes=len(words)
                )
                sf.write(
                    os.path.join(root, word, name),
                    wav.astype(np.float32),
                    sample_rate,
                    subtype="PCM_16",
                )
                if s < n_valid_speakers:
                    lists["valid"].append(f"{word}/{name}")
                elif s < n_valid_speakers + n_test_speakers:
                    lists["test"].append(f"{word}/{name}")
    for split, name in [("valid", "validation"), ("test", "testing")]:
        with open(os.path.join(root, f"{name}_list.txt"), "w") as f:
            f.write("".join(line + "\n" for line in lists[split]))
    noise_dir = os.path.join(root, "_background_noise_")
    os.makedirs(noise_dir, exist_ok=True)
    noise = 0.1 * rng.standard_normal(2 * sample_rate)
    sf.write(os.path.join(noise_dir, "white_noise.wav"), noise, sample_rate)
    with open(os.path.join(noise_dir, "README.md"), "w") as f:
        f.write("Background noise, not a class.\n")
    return root


def main(argv=None):
    """Command line: writes a synthetic Speech Commands V2 folder.

    Example
    -------
    >>> import tempfile
    >>> main(
    ...     [
    ...         tempfile.mkdtemp() + "/sc",
    ...         "--words",
    ...         "yes,no",
    ...         "--only_populated",
    ...     ]
    ... )
    synthetic Speech Commands V2 written to ...
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="folder to create")
    parser.add_argument(
        "--words",
        default="yes,no,up",
        help="comma-separated words that get clips, one class each "
        "(default: yes,no,up)",
    )
    parser.add_argument(
        "--speakers_per_word",
        type=int,
        default=6,
        help="speakers per populated word (default: 6)",
    )
    parser.add_argument(
        "--clips_per_speaker",
        type=int,
        default=1,
        help="clips per speaker and word (default: 1)",
    )
    parser.add_argument(
        "--n_valid_speakers",
        type=int,
        default=1,
        help="speakers per word in validation_list.txt (default: 1)",
    )
    parser.add_argument(
        "--n_test_speakers",
        type=int,
        default=1,
        help="speakers per word in testing_list.txt (default: 1)",
    )
    parser.add_argument(
        "--only_populated",
        action="store_true",
        help="create folders for the --words only, not all 35 V2 words",
    )
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    words = [word.strip() for word in args.words.split(",") if word.strip()]
    if not words:
        parser.error(f"--words {args.words!r}: give at least one word")
    if len(set(words)) != len(words):
        parser.error(f"--words {args.words!r}: a word is listed twice")
    for name in ("clips_per_speaker", "sample_rate"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name} must be at least 1, got {getattr(args, name)}"
            )
    for name in ("n_valid_speakers", "n_test_speakers"):
        if getattr(args, name) < 0:
            parser.error(
                f"--{name} must be at least 0, got {getattr(args, name)}"
            )
    held_out = args.n_valid_speakers + args.n_test_speakers
    if args.speakers_per_word <= held_out:
        parser.error(
            f"--speakers_per_word {args.speakers_per_word} leaves no training "
            f"speaker after {args.n_valid_speakers} validation and "
            f"{args.n_test_speakers} test speakers: give more than {held_out}"
        )
    make_speech_commands(
        args.root,
        words=words,
        speakers_per_word=args.speakers_per_word,
        clips_per_speaker=args.clips_per_speaker,
        n_valid_speakers=args.n_valid_speakers,
        n_test_speakers=args.n_test_speakers,
        all_folders=not args.only_populated,
        sample_rate=args.sample_rate,
        seed=args.seed,
    )
    print(f"synthetic Speech Commands V2 written to {args.root}")


if __name__ == "__main__":
    main()
