"""A synthetic mini AudioSet in the layout ``recipes/AudioSet`` supports.

Writes ``class_labels_indices.csv``, the three official segment lists
(3 ``#`` comment lines, then ``YTID, start, end, "mid1,mid2"``) and clips
under ``audio/<split>/``, named ``<YTID>.wav`` or, for every third clip,
``Y<YTID>.flac`` (the other common naming). As with real downloads, some
listed clips are missing and one file is corrupt. Each clip mixes the
signals of its one or two labels, so a model can learn them.

Usage: ``python -m speechbrain_ast.testing.audioset OUT_DIR [--n_classes 4
--clips balanced_train=8,unbalanced_train=4,eval=6 ...]``.

Authors
 * speechbrain-ast developers
"""

import argparse
import os
import string

import numpy as np
import soundfile as sf

from speechbrain_ast.testing.signals import class_signal

SPLITS = ("balanced_train", "unbalanced_train", "eval")
_YTID_CHARS = string.ascii_letters + string.digits + "-_"


def make_audioset(
    root,
    n_classes=4,
    clips=(("balanced_train", 8), ("unbalanced_train", 4), ("eval", 6)),
    missing=1,
    corrupt_split="eval",
    duration=1.0,
    sample_rate=16000,
    seed=0,
):
    """Writes a mini AudioSet under ``root``.

    Arguments
    ---------
    root : str
        The dataset folder to create.
    n_classes : int
        Number of labels in ``class_labels_indices.csv``.
    clips : sequence of (str, int)
        Clips listed per split (including the missing and corrupt ones).
    missing : int
        Listed clips per split without an audio file.
    corrupt_split : str or None
        A split in which one listed clip's file is not audio.
    duration : float
        Clip length in seconds (AudioSet's are 10 s).
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
    >>> root = make_audioset(tempfile.mkdtemp() + "/as")
    >>> sorted(os.listdir(root))[:2]
    ['audio', 'balanced_train_segments.csv']
    """
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    mids = [f"/m/syn{c:02d}" for c in range(n_classes)]
    with open(os.path.join(root, "class_labels_indices.csv"), "w") as f:
        f.write("index,mid,display_name\n")
        for c, mid in enumerate(mids):
            f.write(f'{c},{mid},"Synthetic sound {c}, made up"\n')
    for split, n_clips in clips:
        folder = os.path.join(root, "audio", split)
        os.makedirs(folder, exist_ok=True)
        lines = []
        for i in range(n_clips):
            ytid = "".join(rng.choice(list(_YTID_CHARS), 11))
            # every class appears; some clips carry a second label
            labels = [i % n_classes]
            if rng.random() < 0.4:
                labels.append(int(rng.integers(n_classes)))
            labels = sorted(set(labels))
            start = float(rng.integers(0, 300))
            lines.append(
                f"{ytid}, {start:.3f}, {start + 10:.3f}, "
                f'"{",".join(mids[c] for c in labels)}"\n'
            )
            if i < missing:
                continue
            if split == corrupt_split and i == missing:
                with open(os.path.join(folder, f"{ytid}.wav"), "wb") as f:
                    f.write(b"this is not audio" * 10)
                continue
            wav = sum(
                class_signal(
                    c, sample_rate, duration, rng=rng, n_classes=n_classes
                )
                for c in labels
            ) / len(labels)
            name = f"Y{ytid}.flac" if i % 3 == 2 else f"{ytid}.wav"
            sf.write(
                os.path.join(folder, name),
                np.asarray(wav, dtype=np.float32),
                sample_rate,
            )
        with open(os.path.join(root, f"{split}_segments.csv"), "w") as f:
            f.write(
                "# Segments csv created by speechbrain_ast.testing.audioset\n"
                f"# num_ytids={n_clips}, num_segs={n_clips}, "
                f"num_unique_labels={n_classes}\n"
                "# YTID, start_seconds, end_seconds, positive_labels\n"
            )
            f.writelines(lines)
    return root


def parse_clips(text):
    """``"split=N,..."`` as ``[(split, N), ...]``; a ``ValueError`` naming
    the part that is not one of the three splits with a count >= 0.

    Example
    -------
    >>> parse_clips("balanced_train=8,eval=6")
    [('balanced_train', 8), ('eval', 6)]
    """
    clips = []
    for part in text.split(","):
        split, _, count = part.strip().partition("=")
        if split not in SPLITS or not count.strip().isdigit():
            raise ValueError(
                f"{part.strip()!r}: write SPLIT=COUNT, SPLIT one of "
                f"{', '.join(SPLITS)}, COUNT a whole number >= 0"
            )
        if split in dict(clips):
            raise ValueError(f"{split!r} is given twice")
        clips.append((split, int(count)))
    return clips


def main(argv=None):
    """Command line: writes a synthetic AudioSet folder.

    Example
    -------
    >>> import tempfile
    >>> main(
    ...     [
    ...         tempfile.mkdtemp() + "/as",
    ...         "--clips",
    ...         "eval=3",
    ...         "--duration",
    ...         "0.1",
    ...     ]
    ... )
    synthetic AudioSet written to ...
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="folder to create")
    parser.add_argument(
        "--n_classes",
        type=int,
        default=4,
        help="labels in class_labels_indices.csv (default: 4)",
    )
    parser.add_argument(
        "--clips",
        default="balanced_train=8,unbalanced_train=4,eval=6",
        help="clips listed per split, missing and corrupt ones included "
        "(default: balanced_train=8,unbalanced_train=4,eval=6)",
    )
    parser.add_argument(
        "--missing",
        type=int,
        default=1,
        help="listed clips per split without an audio file (default: 1)",
    )
    parser.add_argument(
        "--corrupt_split",
        default="eval",
        help="split in which one listed file is not audio, or 'none' "
        "(default: eval)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=1.0,
        help="clip length in seconds (default: 1.0; AudioSet's are 10)",
    )
    parser.add_argument("--sample_rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        clips = parse_clips(args.clips)
    except ValueError as error:
        parser.error(f"--clips: {error}")
    corrupt = (
        None if args.corrupt_split.lower() == "none" else args.corrupt_split
    )
    if corrupt is not None and corrupt not in dict(clips):
        parser.error(
            f"--corrupt_split {args.corrupt_split!r}: not one of the --clips "
            f"splits ({', '.join(dict(clips))}) nor 'none'"
        )
    if args.n_classes < 1:
        parser.error(f"--n_classes must be at least 1, got {args.n_classes}")
    if args.missing < 0:
        parser.error(f"--missing must be at least 0, got {args.missing}")
    if args.duration <= 0 or args.sample_rate < 1:
        parser.error(
            f"--duration {args.duration} and --sample_rate "
            f"{args.sample_rate} must be positive"
        )
    make_audioset(
        args.root,
        n_classes=args.n_classes,
        clips=clips,
        missing=args.missing,
        corrupt_split=corrupt,
        duration=args.duration,
        sample_rate=args.sample_rate,
        seed=args.seed,
    )
    print(f"synthetic AudioSet written to {args.root}")


if __name__ == "__main__":
    main()
