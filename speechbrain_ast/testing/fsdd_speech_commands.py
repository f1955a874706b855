"""The Free Spoken Digit Dataset (FSDD) rewritten in the Speech Commands
layout, with a speaker-disjoint split.

FSDD (github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) holds
real recordings named ``<digit>_<speaker>_<take>.wav`` (or ``.flac``), 8 kHz
mono. This writes them, samples unchanged (16-bit WAV at their own rate),
as ``<word>/<speaker>_nohash_<take>.wav`` with the digit's English word as
the class folder (``0`` -> ``zero``), and ``validation_list.txt`` /
``testing_list.txt`` naming every clip of the validation and test speakers:
the Speech Commands recipe then trains on speakers it never tests on.

Usage: ``python -m speechbrain_ast.testing.fsdd_speech_commands RECORDINGS OUT_DIR
--digits 0,1,2 --valid_speakers theo --test_speakers george``.

Authors
 * speechbrain-ast developers
"""

import argparse
import os
import re

import soundfile as sf

DIGIT_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine",
]  # fmt: skip
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.(wav|flac)$")


def list_fsdd(recordings):
    """The FSDD clips in a folder, by digit, speaker and take.

    Arguments
    ---------
    recordings : str
        A folder of ``<digit>_<speaker>_<take>.wav|flac`` files (other
        files are ignored).

    Returns
    -------
    list of tuple
        ``(digit, speaker, take, path)`` sorted by digit, speaker, take.

    Raises
    ------
    FileNotFoundError
        When the folder is missing or holds no FSDD-named file.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> sf.write(d + "/3_theo_7.flac", np.zeros(800), 8000)
    >>> [c[:3] for c in list_fsdd(d)]
    [(3, 'theo', 7)]
    """
    if not os.path.isdir(recordings):
        raise FileNotFoundError(
            f"FSDD recordings folder {recordings!r} does not exist: pass "
            "the dataset's recordings/ folder"
        )
    clips = []
    for name in os.listdir(recordings):
        match = _NAME.match(name)
        if match:
            digit, speaker, take = match.group(1, 2, 3)
            path = os.path.join(recordings, name)
            clips.append((int(digit), speaker, int(take), path))
    if not clips:
        raise FileNotFoundError(
            f"{recordings!r} holds no FSDD recording (files named "
            "<digit>_<speaker>_<take>.wav or .flac)"
        )
    return sorted(clips)


def make_fsdd_speech_commands(
    recordings,
    root,
    digits=(0, 1, 2),
    valid_speakers=("theo",),
    test_speakers=("george",),
    takes=None,
):
    """Writes FSDD clips under ``root`` in the Speech Commands layout.

    Arguments
    ---------
    recordings : str
        The FSDD folder of ``<digit>_<speaker>_<take>`` files.
    root : str
        The dataset folder to create.
    digits : sequence of int
        The digits that become classes (folder: the digit's word).
    valid_speakers, test_speakers : sequence of str
        Speakers whose clips are listed in ``validation_list.txt`` /
        ``testing_list.txt``; every other speaker is a training speaker.
    takes : int, optional
        Keep takes ``0 .. takes - 1`` of each digit and speaker only
        (all takes when None).

    Returns
    -------
    dict
        ``{"root": root, "train": n, "valid": n, "test": n}``: clip counts.

    Raises
    ------
    ValueError
        When a speaker is both validation and test, a held-out speaker or
        a digit has no clip, or no training speaker is left.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> src = tempfile.mkdtemp()
    >>> for spk in ["ann", "bob", "cy"]:
    ...     sf.write(f"{src}/0_{spk}_0.flac", np.zeros(800), 8000)
    >>> out = make_fsdd_speech_commands(
    ...     src, tempfile.mkdtemp() + "/sc", [0], ["bob"], ["cy"]
    ... )
    >>> out["train"], out["valid"], out["test"]
    (1, 1, 1)
    >>> open(out["root"] + "/testing_list.txt").read()
    'zero/cy_nohash_0.wav\\n'
    """
    digits = [int(d) for d in digits]
    valid, test = set(valid_speakers), set(test_speakers)
    if valid & test:
        raise ValueError(
            f"speaker(s) {sorted(valid & test)} are both validation and "
            "test speakers: a speaker-disjoint split needs distinct ones"
        )
    clips = [
        clip
        for clip in list_fsdd(recordings)
        if clip[0] in digits and (takes is None or clip[2] < takes)
    ]
    speakers = {clip[1] for clip in clips}
    for name in sorted(valid | test):
        if name not in speakers:
            raise ValueError(
                f"held-out speaker {name!r} has no clip of digits {digits} "
                f"in {recordings}; speakers there: {sorted(speakers)}"
            )
    if not speakers - valid - test:
        raise ValueError(
            f"no training speaker left: {sorted(speakers)} are all held out"
        )
    for digit in digits:
        if not any(clip[0] == digit for clip in clips):
            raise ValueError(f"digit {digit} has no clip in {recordings}")
    lists = {"train": [], "valid": [], "test": []}
    for digit in digits:
        os.makedirs(os.path.join(root, DIGIT_WORDS[digit]), exist_ok=True)
    for digit, speaker, take, path in clips:
        rel = f"{DIGIT_WORDS[digit]}/{speaker}_nohash_{take}.wav"
        data, rate = sf.read(path, dtype="int16", always_2d=True)
        sf.write(os.path.join(root, rel), data, rate, subtype="PCM_16")
        split = "train"
        if speaker in valid:
            split = "valid"
        elif speaker in test:
            split = "test"
        lists[split].append(rel)
    for split, name in [("valid", "validation"), ("test", "testing")]:
        with open(os.path.join(root, f"{name}_list.txt"), "w") as f:
            f.write("".join(line + "\n" for line in lists[split]))
    counts = {split: len(rows) for split, rows in lists.items()}
    return {"root": root, **counts}


def main(argv=None):
    """Command line: writes FSDD in the Speech Commands layout.

    Example
    -------
    >>> import tempfile, numpy as np
    >>> src = tempfile.mkdtemp()
    >>> for spk in ["ann", "bob", "cy"]:
    ...     sf.write(f"{src}/1_{spk}_0.wav", np.zeros(800), 8000)
    >>> main(
    ...     [
    ...         src,
    ...         tempfile.mkdtemp() + "/fsdd",
    ...         "--digits",
    ...         "1",
    ...         "--valid_speakers",
    ...         "bob",
    ...         "--test_speakers",
    ...         "cy",
    ...     ]
    ... )
    FSDD in the Speech Commands layout written to ...: 1 train, 1 valid, 1 test clips
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", help="FSDD's recordings/ folder")
    parser.add_argument("root", help="folder to create")
    parser.add_argument(
        "--digits",
        default="0,1,2",
        help="comma-separated digits, one class each (default: 0,1,2)",
    )
    parser.add_argument(
        "--valid_speakers",
        default="theo",
        help="comma-separated validation speakers (default: theo)",
    )
    parser.add_argument(
        "--test_speakers",
        default="george",
        help="comma-separated test speakers (default: george)",
    )
    parser.add_argument(
        "--takes",
        type=int,
        default=None,
        help="keep takes 0..N-1 of each digit and speaker (default: all)",
    )
    args = parser.parse_args(argv)

    def _split(value, name):
        items = [x.strip() for x in value.split(",") if x.strip()]
        if not items:
            parser.error(f"--{name} {value!r}: give at least one")
        return items

    digits = _split(args.digits, "digits")
    if not all(d.isdigit() and len(d) == 1 for d in digits):
        parser.error(f"--digits {args.digits!r}: digits are 0-9")
    if args.takes is not None and args.takes < 1:
        parser.error(f"--takes must be at least 1, got {args.takes}")
    try:
        counts = make_fsdd_speech_commands(
            args.recordings,
            args.root,
            digits=[int(d) for d in digits],
            valid_speakers=_split(args.valid_speakers, "valid_speakers"),
            test_speakers=_split(args.test_speakers, "test_speakers"),
            takes=args.takes,
        )
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    print(
        f"FSDD in the Speech Commands layout written to {args.root}: "
        f"{counts['train']} train, {counts['valid']} valid, "
        f"{counts['test']} test clips"
    )


if __name__ == "__main__":
    main()
