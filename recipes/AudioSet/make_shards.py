#!/usr/bin/env python3
"""Writes AudioSet clips into WebDataset tar shards for streaming training.

    python recipes/AudioSet/make_shards.py --data_folder /path/to/audioset \\
        --save_folder /path/to/shards --shard_size 1000 --workers 8

The clips and labels are those of the file-based recipe: the manifests
``train.csv`` and ``eval.csv`` (``ID, duration, wav, labels, split``) that
``audioset_prepare.py`` writes, prepared here into
``<save_folder>/manifests`` (the same call as the recipe's, so the same
rows), or taken from an existing folder with ``--manifest_folder``
(e.g. ``<output_folder>/manifests`` of a file-based run).

Every clip listed is checked first (its header, as the preparation does);
unusable ones are listed in ``<save_folder>/bad_clips.csv`` (split, ID,
problem, path) and stop the run with one error naming them all, unless
``--skip_bad`` leaves them out. Then per split, ``<save_folder>/<split>/``
gets ``shard-000000.tar`` ... (clip ``n`` in shard ``n // shard_size``,
manifest order), ``index.json`` and ``clips.csv``; ``class_labels_indices.csv``
is copied to ``<save_folder>``. Shards are written in parallel
(``--workers`` processes) under temporary names and renamed when complete;
after a kill, the same command verifies the complete shards, keeps them and
writes the rest. The same manifests give byte-identical shards.

Train from them with ``train.py ... --shards <save_folder>`` (see
``docs/shards.md``).

Authors
 * speechbrain-ast developers
"""

import argparse
import csv
import os
import shutil
import sys
import time

# the prepare script sits next to this one (Python puts the script's folder
# on sys.path), as train.py imports it
from audioset_prepare import LABELS_FILE, prepare_audioset

from speechbrain.dataio.dataio import load_data_csv
from speechbrain.utils.logger import get_logger
from speechbrain_ast.data.prepare import check_audio_files, raise_for_bad_audio
from speechbrain_ast.data.shards import write_shards

logger = get_logger(__name__)

SPLITS = ("train", "eval")
BAD_CLIPS_FILE = "bad_clips.csv"


def read_manifest(path):
    """Rows of a prepared manifest as :func:`write_shards` takes them.

    Arguments
    ---------
    path : str
        ``train.csv`` or ``eval.csv`` (``ID, duration, wav, labels``).

    Returns
    -------
    list of dict
        ``ID``, ``wav``, ``labels`` (list), ``duration`` (float), in file
        order.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/eval.csv"
    >>> with open(path, "w") as f:
    ...     _ = f.write("ID,duration,wav,labels,split\\nx,1.0,/a/x.wav,\\"/m/a,/m/b\\",eval\\n")
    >>> read_manifest(path)
    [{'ID': 'x', 'wav': '/a/x.wav', 'labels': ['/m/a', '/m/b'], 'duration': 1.0}]
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Manifest {path} not found: run audioset_prepare.py (or this "
            "script with --data_folder) first."
        )
    # SpeechBrain's reader, as the file-based recipe's datasets use
    rows = load_data_csv(path)
    return [
        {
            "ID": clip_id,
            "wav": row["wav"],
            "labels": [m for m in row["labels"].split(",") if m],
            "duration": row["duration"],
        }
        for clip_id, row in rows.items()
    ]


def make_shards(
    save_folder,
    data_folder=None,
    manifest_folder=None,
    shard_size=1000,
    workers=1,
    train_splits=("balanced_train",),
    test_split="eval",
    skip_bad=False,
    check_workers=8,
):
    """Checks the clips of the manifests and writes them into shards.

    Arguments
    ---------
    save_folder : str
        Where the shard folders (``train/``, ``eval/``) go.
    data_folder : str, optional
        The AudioSet folder; prepared into ``<save_folder>/manifests``.
    manifest_folder : str, optional
        Existing manifests to use instead (``train.csv``, ``eval.csv``,
        ``class_labels_indices.csv``).
    shard_size : int
        Clips per shard.
    workers : int
        Processes writing shards.
    train_splits, test_split
        As for ``prepare_audioset`` (with ``data_folder``).
    skip_bad : bool
        Leave unusable clips out (listed in ``bad_clips.csv``) instead of
        stopping.
    check_workers : int
        Threads checking clip headers.

    Returns
    -------
    dict
        Per split, the index :func:`write_shards` returned.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.testing.audioset import make_audioset
    >>> tmp = tempfile.mkdtemp()
    >>> data = make_audioset(tmp + "/as")
    >>> out = make_shards(tmp + "/shards", data_folder=data, shard_size=4)
    >>> out["train"]["num_clips"], len(out["eval"]["shards"])
    (7, 1)
    """
    if manifest_folder is None:
        if data_folder is None:
            raise ValueError("Give data_folder or manifest_folder.")
        manifest_folder = os.path.join(save_folder, "manifests")
        prepare_audioset(
            data_folder,
            manifest_folder,
            train_splits=train_splits,
            test_split=test_split,
            num_workers=check_workers,
        )
    rows = {
        s: read_manifest(os.path.join(manifest_folder, f"{s}.csv"))
        for s in SPLITS
    }
    os.makedirs(save_folder, exist_ok=True)

    bad = []
    for split in SPLITS:
        paths = [row["wav"] for row in rows[split]]
        _, problems = check_audio_files(paths, check_workers)
        bad += [
            [split, row["ID"], str(problems[row["wav"]]), row["wav"]]
            for row in rows[split]
            if row["wav"] in problems
        ]
        if skip_bad:
            rows[split] = [r for r in rows[split] if r["wav"] not in problems]
    report = os.path.join(save_folder, BAD_CLIPS_FILE)
    with open(report, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "ID", "problem", "path"])
        writer.writerows(bad)
    if bad and skip_bad:
        logger.warning(
            "%d clips are unusable and left out of the shards (list: %s).",
            len(bad),
            report,
        )
    elif bad:
        raise_for_bad_audio(
            [f"{split} {ytid}: {problem}" for split, ytid, problem, _ in bad],
            sum(len(r) for r in rows.values()),
            f"clips listed in {manifest_folder}",
            f"restore them, or pass --skip_bad to leave them out (listed in "
            f"{report})",
        )

    shutil.copyfile(
        os.path.join(manifest_folder, LABELS_FILE),
        os.path.join(save_folder, LABELS_FILE),
    )
    out = {}
    for split in SPLITS:
        start = time.time()
        index = write_shards(
            rows[split],
            os.path.join(save_folder, split),
            shard_size=shard_size,
            workers=workers,
            split=split,
        )
        size = sum(s["bytes"] for s in index["shards"])
        logger.info(
            "AudioSet %s: %d clips in %d shards (%.1f MB; %d written, %d "
            "verified) in %.1f s",
            split,
            index["num_clips"],
            len(index["shards"]),
            size / 1e6,
            index["written"],
            index["verified"],
            time.time() - start,
        )
        out[split] = index
    return out


def _parse(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--data_folder", help="the AudioSet folder")
    where.add_argument(
        "--manifest_folder", help="prepared train.csv / eval.csv to use"
    )
    parser.add_argument("--save_folder", required=True)
    parser.add_argument("--shard_size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--train_splits", nargs="+", default=["balanced_train"],
        help="e.g. balanced_train unbalanced_train (the full set)",
    )  # fmt: skip
    parser.add_argument("--test_split", default="eval")
    parser.add_argument("--skip_bad", action="store_true")
    parser.add_argument("--check_workers", type=int, default=8)
    return parser.parse_args(argv)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = _parse(sys.argv[1:])
    make_shards(
        args.save_folder,
        data_folder=args.data_folder,
        manifest_folder=args.manifest_folder,
        shard_size=args.shard_size,
        workers=args.workers,
        train_splits=args.train_splits,
        test_split=args.test_split,
        skip_bad=args.skip_bad,
        check_workers=args.check_workers,
    )
