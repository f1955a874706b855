"""A synthetic mini ESC-50 in the official ``ESC-50-master`` layout.

``audio/<fold>-<src_file>-<take>-<target>.wav`` (44.1 kHz mono PCM-16 by
default, as the real dataset) and ``meta/esc50.csv`` with the columns
``filename,fold,target,category,esc10,src_file,take``. The sounds come from
:func:`speechbrain_ast.testing.signals.class_signal`, so the classes are learnable.

Usage: ``python -m speechbrain_ast.testing.esc50 OUT_DIR [--n_classes 5 ...]``
.

Authors
 * speechbrain-ast developers
"""

import argparse
import csv
import os

import numpy as np
import soundfile as sf

from speechbrain_ast.testing.signals import class_signal

__all__ = ["ESC50_COLUMNS", "make_esc50"]

ESC50_COLUMNS = [
    "filename", "fold", "target", "category", "esc10", "src_file", "take",
]  # fmt: skip
# the first ESC-50 categories by target index
CATEGORIES = [
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects",
    "sheep", "crow",
]  # fmt: skip


def make_esc50(
    root,
    n_classes=5,
    clips_per_fold=2,
    n_folds=5,
    duration=1.5,
    sample_rate=44100,
    seed=0,
):
    """Writes a mini ESC-50 under ``root`` and returns ``root``.

    Arguments
    ---------
    root : str
        The dataset folder to create (``ESC-50-master``-like).
    n_classes : int
        Number of classes (targets ``0..n_classes-1``).
    clips_per_fold : int
        Clips per class in each fold.
    n_folds : int
        Folds (ESC-50 has 5).
    duration : float
        Clip length in seconds (the real clips are 5 s).
    sample_rate : int
        Sample rate of the files (the real dataset: 44100).
    seed : int
        Seed of the generator: the same arguments write the same files.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile
    >>> root = make_esc50(
    ...     tempfile.mkdtemp(), n_classes=2, clips_per_fold=1, duration=0.5
    ... )
    >>> len(os.listdir(os.path.join(root, "audio")))
    10
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "audio"), exist_ok=True)
    os.makedirs(os.path.join(root, "meta"), exist_ok=True)
    rows = []
    src = 100000
    for fold in range(1, n_folds + 1):
        for target in range(n_classes):
            for _ in range(clips_per_fold):
                src += 1
                name = f"{fold}-{src}-A-{target}.wav"
                wav = class_signal(
                    target, sample_rate, duration, rng=rng, n_classes=n_classes
                )
                sf.write(
                    os.path.join(root, "audio", name),
                    wav.astype(np.float32),
                    sample_rate,
                    subtype="PCM_16",
                )
                category = (
                    CATEGORIES[target]
                    if target < len(CATEGORIES)
                    else f"class{target}"
                )
                rows.append([name, fold, target, category, "False", src, "A"])
    with open(os.path.join(root, "meta", "esc50.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ESC50_COLUMNS)
        writer.writerows(rows)
    return root


def main(argv=None):
    """Command line: writes a synthetic ESC-50 folder.

    Example
    -------
    >>> import tempfile
    >>> main(
    ...     [
    ...         tempfile.mkdtemp() + "/esc",
    ...         "--n_classes",
    ...         "2",
    ...         "--duration",
    ...         "0.1",
    ...     ]
    ... )
    synthetic ESC-50 written to ...
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", help="folder to create")
    parser.add_argument(
        "--n_classes", type=int, default=5, help="classes (default: 5)"
    )
    parser.add_argument(
        "--clips_per_fold",
        type=int,
        default=2,
        help="clips per class in each of the 5 folds (default: 2)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=1.5,
        help="clip length in seconds (default: 1.5; ESC-50's are 5)",
    )
    parser.add_argument("--sample_rate", type=int, default=44100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_esc50(
        args.root,
        n_classes=args.n_classes,
        clips_per_fold=args.clips_per_fold,
        duration=args.duration,
        sample_rate=args.sample_rate,
        seed=args.seed,
    )
    print(f"synthetic ESC-50 written to {args.root}")


if __name__ == "__main__":
    main()
