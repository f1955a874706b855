"""Data preparation for ESC-50: CSV manifests per split, from the folds.

Expects the official ``ESC-50-master`` layout::

    ESC-50-master/
        audio/<fold>-<src_file>-<take>-<target>.wav   (5 s, 44.1 kHz)
        meta/esc50.csv   (filename,fold,target,category,esc10,src_file,take)

and downloads the official archive when the folder is missing and the
network works. It writes ``train.csv``, ``valid.csv`` and ``test.csv``
(columns ``ID, wav, duration, fold, class_index, category``) under
``save_folder``, never inside the dataset, plus ``prepare_options.json``
recording the dataset path and options: a second call with the same
arguments does nothing; other folds rebuild the manifests; another dataset
path into the same ``save_folder`` is an error (results and checkpoints in
that folder would silently mix two datasets). Every audio file is checked
once, up front, and all problems are reported together.

Audio stays at its native rate: the training pipeline resamples
44.1 kHz -> 16 kHz on the fly (:func:`speechbrain_ast.data.audio.load_audio`).

Authors
 * speechbrain-ast developers
"""

import csv
import logging
import os
import shutil
import tempfile
import urllib.request
import zipfile

from speechbrain_ast.data.prepare import (
    check_audio_files,
    load_prepared,
    raise_for_bad_audio,
    save_prepared,
)

logger = logging.getLogger(__name__)

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
META_COLUMNS = ["filename", "fold", "target", "category"]
MANIFEST_COLUMNS = ["ID", "wav", "duration", "fold", "class_index", "category"]
SPLITS = ("train", "valid", "test")


def download_esc50(data_folder, timeout=30):
    """Downloads and unpacks the official ESC-50 archive into data_folder.

    Raises a ``FileNotFoundError`` saying what to put where when the
    download fails (e.g. offline).
    """
    parent = os.path.dirname(os.path.abspath(data_folder)) or "."
    os.makedirs(parent, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=parent) as tmp:
            archive = os.path.join(tmp, "esc50.zip")
            logger.info("Downloading ESC-50 from %s", ESC50_URL)
            with urllib.request.urlopen(ESC50_URL, timeout=timeout) as r:
                with open(archive, "wb") as f:
                    shutil.copyfileobj(r, f)
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
            shutil.move(os.path.join(tmp, "ESC-50-master"), data_folder)
    except (OSError, zipfile.BadZipFile) as err:
        raise FileNotFoundError(
            f"ESC-50 not found at {data_folder!r} and the download of "
            f"{ESC50_URL} failed ({err}). Download and unzip it yourself so "
            f"that {os.path.join(data_folder, 'audio')} holds the 2000 wav "
            f"files and {os.path.join(data_folder, 'meta', 'esc50.csv')} "
            "the metadata, then run again."
        ) from err


def read_meta(data_folder):
    """Rows of ``meta/esc50.csv`` (filename, fold, target, category)."""
    meta = os.path.join(data_folder, "meta", "esc50.csv")
    if not os.path.isfile(meta):
        raise FileNotFoundError(
            f"{meta} is missing: data_folder must be the ESC-50-master "
            "folder with audio/ and meta/esc50.csv"
        )
    with open(meta, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not set(META_COLUMNS) <= set(rows[0]):
        raise ValueError(
            f"{meta} must have the columns {META_COLUMNS} (the official "
            f"esc50.csv); found {sorted(rows[0]) if rows else 'no rows'}"
        )
    return rows


def check_audio(data_folder, rows):
    """Checks every listed file once; returns {filename: (rate, frames)}.

    Raises ``AudioError`` listing every missing, empty or unreadable file.
    """
    paths = {
        os.path.join(data_folder, "audio", row["filename"]): row["filename"]
        for row in rows
    }
    infos, problems = check_audio_files(list(paths))
    raise_for_bad_audio(
        [f"{paths[path]}: {err}" for path, err in problems.items()],
        len(rows),
        f"ESC-50 audio files in {os.path.join(data_folder, 'audio')}",
        "replace them (re-download or re-extract the dataset)",
    )
    return {paths[p]: (rate, frames) for p, (rate, frames, _) in infos.items()}


def _folds(value, name):
    folds = [int(f) for f in ([value] if isinstance(value, int) else value)]
    if not folds:
        raise ValueError(f"{name} is empty: give at least one fold (1-5)")
    return folds


def prepare_esc50(
    data_folder,
    save_folder,
    train_fold_nums=(1, 2, 3, 4),
    valid_fold_nums=(5,),
    test_fold_nums=(5,),
    download=True,
):
    """Writes train/valid/test manifests for the given folds.

    Arguments
    ---------
    data_folder : str
        The ``ESC-50-master`` folder (downloaded here when missing).
    save_folder : str
        Where the manifests go (not inside the dataset).
    train_fold_nums, valid_fold_nums, test_fold_nums : list of int
        Folds of each split. The paper validates and tests on the held-out
        fold (valid = test) and picks the epoch by fold-averaged accuracy.
    download : bool
        Try to download the dataset when ``data_folder`` is missing.

    Returns
    -------
    dict
        Split name -> manifest path.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.testing.esc50 import make_esc50
    >>> data = make_esc50(tempfile.mkdtemp(), n_classes=2, duration=0.3)
    >>> out = prepare_esc50(data, tempfile.mkdtemp(), [1, 2, 3], [4], [5])
    >>> sorted(out)
    ['test', 'train', 'valid']
    """
    data_folder = os.path.abspath(data_folder)
    options = {
        "data_folder": data_folder,
        "train_fold_nums": _folds(train_fold_nums, "train_fold_nums"),
        "valid_fold_nums": _folds(valid_fold_nums, "valid_fold_nums"),
        "test_fold_nums": _folds(test_fold_nums, "test_fold_nums"),
    }
    manifests = {s: os.path.join(save_folder, f"{s}.csv") for s in SPLITS}
    if load_prepared(save_folder, options, list(manifests.values())):
        logger.info("ESC-50 manifests in %s up to date: skip", save_folder)
        return manifests

    if not os.path.isdir(data_folder):
        if not download:
            raise FileNotFoundError(
                f"ESC-50 not found at {data_folder!r}: download "
                f"{ESC50_URL} and unzip it so that {data_folder}/audio and "
                f"{data_folder}/meta/esc50.csv exist"
            )
        download_esc50(data_folder)
    rows = read_meta(data_folder)
    info = check_audio(data_folder, rows)

    os.makedirs(save_folder, exist_ok=True)
    for split in SPLITS:
        folds = set(options[f"{split}_fold_nums"])
        selected = [row for row in rows if int(row["fold"]) in folds]
        if not selected:
            raise ValueError(
                f"no ESC-50 clip is in folds {sorted(folds)} ({split}); the "
                f"metadata has folds {sorted({int(r['fold']) for r in rows})}"
            )
        tmp = manifests[split] + ".tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(MANIFEST_COLUMNS)
            for row in selected:
                rate, frames = info[row["filename"]]
                writer.writerow(
                    [
                        os.path.splitext(row["filename"])[0],
                        os.path.join(data_folder, "audio", row["filename"]),
                        f"{frames / rate:.3f}",
                        row["fold"],
                        row["target"],
                        row["category"],
                    ]
                )
        os.replace(tmp, manifests[split])
        logger.info(
            "%s: %d clips -> %s", split, len(selected), manifests[split]
        )
    # written last: its presence means the manifests are complete
    save_prepared(save_folder, options)
    return manifests


def class_names(
    data_names,
    n_classes,
    official=None,
    allow_unseen=False,
    source="the data",
):
    """The class names of a recipe in index order, checked against
    ``n_classes``.

    Arguments
    ---------
    data_names : dict
        Class index -> name, as the data has them.
    n_classes : int
        The recipe's (the classifier's) number of classes.
    official : list of str, optional
        The dataset's official names in index order (e.g. ESC-50's 50
        categories). Then ``n_classes`` may not exceed their number; with
        ``n_classes == len(official)`` the classes no clip has are named
        from it, and every data name must equal the official one.
    allow_unseen : bool
        Accept ``n_classes`` above the data's classes without ``official``
        covering them: the classes no clip has are named from
        ``official`` (checked as above) or ``class<i>``.
    source : str
        Where the data names come from, for the messages.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        Naming the numbers and the flag to pass.

    Example
    -------
    >>> class_names({0: "dog", 1: "rooster"}, 2)
    ['dog', 'rooster']
    >>> class_names({0: "dog"}, 3, official=["dog", "rooster", "pig"])
    ['dog', 'rooster', 'pig']
    >>> try:
    ...     class_names({0: "dog", 1: "rooster"}, 3)
    ... except ValueError as err:
    ...     print(str(err)[:56])
    n_classes is 3 but the data has 2 classes (indices 0..1;
    """
    if not data_names:
        raise ValueError(f"{source} has no classes: check the dataset.")
    top = max(data_names)
    if top >= n_classes:
        raise ValueError(
            f"{source} has class index {top} but n_classes is {n_classes}: "
            f"pass --n_classes {top + 1}."
        )
    if official is not None and n_classes > len(official):
        raise ValueError(
            f"n_classes is {n_classes} but the dataset has {len(official)} "
            f"classes: pass --n_classes {len(official)} or fewer."
        )
    unseen = [i for i in range(n_classes) if i not in data_names]
    if not unseen:
        return [data_names[i] for i in range(n_classes)]
    complete = official is not None and n_classes == len(official)
    if not (complete or allow_unseen):
        shown = ", ".join(str(i) for i in unseen[:8])
        shown += ", ..." if len(unseen) > 8 else ""
        raise ValueError(
            f"n_classes is {n_classes} but {source} has {len(data_names)} "
            f"classes (indices {min(data_names)}..{top}; no clip has class "
            f"{shown}): pass --n_classes {top + 1}, or "
            "--allow_unseen_classes True to train a classifier with "
            "classes that no clip has."
        )
    if official is None:
        logger.warning(
            "n_classes %d: classes %s have no clip and are named class<i>",
            n_classes,
            unseen,
        )
        return [data_names.get(i, f"class{i}") for i in range(n_classes)]
    wrong = [
        f"{i}: {name!r} (official: {official[i]!r})"
        for i, name in sorted(data_names.items())
        if name != official[i]
    ]
    if wrong:
        raise ValueError(
            f"{source} names {len(wrong)} classes otherwise than the "
            f"dataset's official list ({'; '.join(wrong[:5])}), so the "
            f"{len(unseen)} classes no clip has cannot be named from it: "
            f"pass --n_classes {top + 1} to train on the data's classes."
        )
    return [official[i] for i in range(n_classes)]
