"""Data preparation for AudioSet from user-supplied clips.

AudioSet has no official audio download: users fetch the clips themselves,
so some listed clips are always missing. This script matches the official
segment lists against the clips that exist, reports every listed clip that
is missing or unreadable (a count per split in the log and the full list in
``<save_folder>/missing_or_unreadable.csv``) before any training starts, and
writes manifests of the clips that can be used.

Supported layout (CSV files as published by Google):

    <data_folder>/
        balanced_train_segments.csv     # 3 '#' comment lines, then
        unbalanced_train_segments.csv   #   YTID, start, end, "mid1,mid2"
        eval_segments.csv
        class_labels_indices.csv        # index,mid,display_name
        audio/
            balanced_train/<YTID>.wav   # or .flac (any soundfile format),
            unbalanced_train/...        #   or Y<YTID>.wav; sub-folders
            eval/...                    #   (e.g. parts) are searched too

Writes under ``save_folder`` (never into the dataset): ``train.csv`` (the
clips of ``train_splits``) and ``eval.csv`` with columns
``ID, duration, wav, labels, split`` (``labels``: the clip's label mids
joined by commas), ``class_labels_indices.csv`` (the label order),
``missing_or_unreadable.csv`` and ``prepare_options.json`` (the options and
dataset path: the same call again does nothing; another dataset path into
the same folder stops with an error instead of mixing).

Authors
 * speechbrain-ast developers
"""

import csv
import os
import shutil

from speechbrain.utils.logger import get_logger
from speechbrain_ast.data.prepare import (
    check_audio_files,
    load_prepared,
    save_prepared,
)

logger = get_logger(__name__)

SPLITS = ("balanced_train", "unbalanced_train", "eval")
LABELS_FILE = "class_labels_indices.csv"
REPORT_FILE = "missing_or_unreadable.csv"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# Bumped when the manifest format changes, so old manifests are rebuilt.
MANIFEST_VERSION = 1


def prepare_audioset(
    data_folder,
    save_folder,
    train_splits=("balanced_train",),
    test_split="eval",
    skip_prep=False,
    num_workers=8,
):
    """Writes AudioSet manifests of the listed clips that exist and read.

    Arguments
    ---------
    data_folder : str
        The dataset root (layout in the module docstring).
    save_folder : str
        Where manifests and the missing-clip report go.
    train_splits : sequence of str
        Segment lists making up ``train.csv``: ``["balanced_train"]`` for
        the balanced set, ``["balanced_train", "unbalanced_train"]`` for
        the full set.
    test_split : str
        The segment list of ``eval.csv`` (the official ``eval``).
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).
    num_workers : int
        Threads checking the audio files (the full set has 2M of them and
        the check is mostly waiting for the disk).

    Returns
    -------
    dict
        ``train``, ``eval``, ``labels``, ``report``: file paths; ``counts``:
        per split, ``{"listed", "usable", "missing", "unreadable"}`` (None
        when preparation was skipped).

    Raises
    ------
    FileNotFoundError
        When a segment list or the label list is missing, or no listed clip
        of a split exists.
    ValueError
        When ``save_folder`` holds manifests of another dataset path, or a
        segment list names a label that is not in the label list.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.testing.audioset import make_audioset
    >>> tmp = tempfile.mkdtemp()
    >>> data = make_audioset(tmp + "/as")
    >>> out = prepare_audioset(data, tmp + "/out")
    >>> out["counts"]["eval"]["listed"] > out["counts"]["eval"]["usable"]
    True
    """
    paths = {
        "train": os.path.join(save_folder, "train.csv"),
        "eval": os.path.join(save_folder, "eval.csv"),
        "labels": os.path.join(save_folder, LABELS_FILE),
        "report": os.path.join(save_folder, REPORT_FILE),
        "counts": None,
    }
    if skip_prep:
        return paths
    train_splits = list(train_splits)
    for split in train_splits + [test_split]:
        if split not in SPLITS:
            raise ValueError(
                f"Unknown AudioSet split {split!r}: use one of {SPLITS}."
            )
    data_folder = os.path.abspath(data_folder)
    options = {
        "data_folder": data_folder,
        "train_splits": train_splits,
        "test_split": test_split,
        "manifest_version": MANIFEST_VERSION,
    }
    files = [paths[key] for key in ("train", "eval", "labels", "report")]
    record = load_prepared(save_folder, options, files)
    if record:
        paths["counts"] = record["counts"]
        logger.info(
            f"AudioSet manifests in {save_folder} match {data_folder}: "
            "skipping preparation."
        )
        for split, count in paths["counts"].items():
            _log_counts(split, count, paths["report"])
        return paths

    labels_src = os.path.join(data_folder, LABELS_FILE)
    known_mids = set(read_label_list(labels_src)[0])
    counts, rows, problems = {}, {}, []
    for split in train_splits + [test_split]:
        segments = read_segments(
            os.path.join(data_folder, f"{split}_segments.csv")
        )
        for ytid, mids in segments.items():
            unknown = [m for m in mids if m not in known_mids]
            if unknown:
                raise ValueError(
                    f"{split}_segments.csv lists {ytid} with labels "
                    f"{unknown} that are not in {labels_src}: use the "
                    "label list that goes with these segment lists."
                )
        files = find_clips(os.path.join(data_folder, "audio", split), segments)
        infos, unreadable = check_audio_files(list(files.values()), num_workers)
        rows[split] = []
        count = {"listed": len(segments), "missing": 0, "unreadable": 0}
        for ytid, mids in segments.items():
            path = files.get(ytid)
            if path is None:
                count["missing"] += 1
                problems.append([split, ytid, "missing", ""])
                continue
            if path in unreadable:
                count["unreadable"] += 1
                problems.append(
                    [split, ytid, f"unreadable: {unreadable[path]}", path]
                )
                continue
            rate, frames, _ = infos[path]
            rows[split].append(
                {
                    "ID": ytid,
                    "duration": round(frames / rate, 4),
                    "wav": path,
                    "labels": ",".join(mids),
                    "split": split,
                }
            )
        count["usable"] = len(rows[split])
        counts[split] = count
        _log_counts(split, count, paths["report"])

    os.makedirs(save_folder, exist_ok=True)
    with open(paths["report"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "YTID", "problem", "path"])
        writer.writerows(problems)
    for split, count in counts.items():
        if not count["usable"]:
            raise FileNotFoundError(
                f"None of the {count['listed']} clips listed in "
                f"{split}_segments.csv is usable under "
                f"{os.path.join(data_folder, 'audio', split)}: put them "
                "there as <YTID>.wav / .flac (or Y<YTID>.wav)."
            )
    _write_csv(paths["train"], [r for s in train_splits for r in rows[s]])
    _write_csv(paths["eval"], rows[test_split])
    shutil.copyfile(labels_src, paths["labels"])
    save_prepared(save_folder, options, counts=counts)
    paths["counts"] = counts
    return paths


def read_segments(path):
    """Reads an official AudioSet segment list.

    Arguments
    ---------
    path : str
        A ``*_segments.csv``: ``#`` comment lines, then
        ``YTID, start_seconds, end_seconds, "mid1,mid2,..."``.

    Returns
    -------
    dict
        YTID -> list of label mids, in file order.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "eval_segments.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write(
    ...         "# Segments csv\\n# num_ytids=1\\n"
    ...         "# YTID, start_seconds, end_seconds, positive_labels\\n"
    ...         '--4gqARaEJE, 0.000, 10.000, "/m/068hy,/m/07q6cd_"\\n'
    ...     )
    >>> read_segments(path)
    {'--4gqARaEJE': ['/m/068hy', '/m/07q6cd_']}
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"AudioSet segment list {path!r} not found: download it from "
            "https://research.google.com/audioset/download.html and put it "
            "in the data folder."
        )
    segments = {}
    with open(path, newline="") as f:
        lines = (line for line in f if not line.startswith("#"))
        for n, row in enumerate(csv.reader(lines, skipinitialspace=True)):
            if not row:
                continue
            if len(row) != 4:
                raise ValueError(
                    f"{path}: data row {n + 1} has {len(row)} fields, "
                    'expected 4 (YTID, start, end, "labels"): is this an '
                    "official AudioSet segment list?"
                )
            segments[row[0]] = [m.strip() for m in row[3].split(",") if m]
    return segments


def read_label_list(path):
    """Reads ``class_labels_indices.csv`` (``index,mid,display_name``).

    Arguments
    ---------
    path : str
        The label list.

    Returns
    -------
    mids : list of str
        Label mids in index order.
    names : list of str
        Display names in the same order.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "class_labels_indices.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write(
    ...         'index,mid,display_name\\n0,/m/09x0r,"Speech"\\n'
    ...         '1,/m/05zppz,"Male speech, man speaking"\\n'
    ...     )
    >>> read_label_list(path)
    (['/m/09x0r', '/m/05zppz'], ['Speech', 'Male speech, man speaking'])
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"AudioSet label list {path!r} not found: download "
            "class_labels_indices.csv (index,mid,display_name) and put it "
            "in the data folder."
        )
    with open(path, newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    return [r["mid"] for r in rows], [r["display_name"] for r in rows]


def find_clips(audio_folder, ytids):
    """Maps YouTube ids to the audio files present for them.

    Arguments
    ---------
    audio_folder : str
        Searched recursively; a missing folder means no clips.
    ytids : collection of str
        The ids wanted.

    Returns
    -------
    dict
        YTID -> path, for files named ``<YTID>.<ext>`` or ``Y<YTID>.<ext>``.

    Example
    -------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> open(os.path.join(root, "Yabc.flac"), "w").close()
    >>> find_clips(root, {"abc", "xyz"}) == {"abc": root + "/Yabc.flac"}
    True
    """
    found = {}
    for folder, _, names in sorted(os.walk(audio_folder)):
        for name in sorted(names):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in AUDIO_EXTENSIONS:
                continue
            # A YTID may itself start with "Y": the exact name wins.
            if stem in ytids:
                found[stem] = os.path.join(folder, name)
            elif stem.startswith("Y") and stem[1:] in ytids:
                found.setdefault(stem[1:], os.path.join(folder, name))
    return found


def _log_counts(split, count, report):
    """Logs one split's listed/usable/missing/unreadable counts, loudly when
    clips are left out."""
    message = (
        f"AudioSet {split}: {count['listed']} clips listed, "
        f"{count['usable']} usable, {count['missing']} missing, "
        f"{count['unreadable']} unreadable"
    )
    if count["missing"] or count["unreadable"]:
        logger.warning(f"{message} (left out; list: {report}).")
    else:
        logger.info(message + ".")


def _write_csv(path, rows):
    fields = ["ID", "duration", "wav", "labels", "split"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
