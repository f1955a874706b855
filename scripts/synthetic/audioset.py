"""A synthetic mini AudioSet in the layout ``recipes/AudioSet`` supports.

Writes ``class_labels_indices.csv``, the three official segment lists
(3 ``#`` comment lines, then ``YTID, start, end, "mid1,mid2"``) and clips
under ``audio/<split>/``, named ``<YTID>.wav`` or, for every third clip,
``Y<YTID>.flac`` (the other common naming). As with real downloads, some
listed clips are missing and one file is corrupt. Each clip mixes the
signals of its one or two labels, so a model can learn them.

Authors
 * speechbrain-ast developers
"""

import os
import string

import numpy as np
import soundfile as sf

from scripts.synthetic.signals import class_signal

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
                "# Segments csv created by scripts/synthetic/audioset.py\n"
                f"# num_ytids={n_clips}, num_segs={n_clips}, "
                f"num_unique_labels={n_classes}\n"
                "# YTID, start_seconds, end_seconds, positive_labels\n"
            )
            f.writelines(lines)
    return root
