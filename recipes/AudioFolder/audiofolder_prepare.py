"""Data preparation for a folder of your own labelled recordings.

Two layouts are read:

- one sub-folder per class (the audio-folder convention)::

      MY_SOUNDS/
          dog/bark1.wav, dog/outside/bark2.flac, ...
          rain/....ogg

  Every audio file below a class folder, at any depth, is a clip of that
  class. ``group_pattern`` (a regular expression searched in the file
  name; its first group, else the whole match) names the group a clip
  belongs to, e.g. the speaker of ``0_jackson_12.wav`` with ``_([a-z]+)_``.

- any folder of clips whose file names say their class: ``label_pattern``
  (a regular expression searched in the file name; its first group, else
  the whole match) gives the class, e.g. ``^([0-9])_`` for FSDD's
  ``0_jackson_12.wav``.

- a ``metadata.csv`` at the top of the folder, for multi-label data and
  predefined splits: a ``file`` column (paths relative to the folder), a
  ``label`` column (one class) or a ``labels`` column (classes separated
  by ``;``), an optional ``split`` column (``train``, ``valid``, ``test``)
  and an optional group column (named by ``group_column``; ``group`` when
  the file has one).

Without a split, the clips are split by class (stratified) into train,
valid and test (``valid_ratio``, ``test_ratio``), keeping every group
(speaker, recording, location) within one split. The split is written
once (``split.csv``) and reused as long as the folder's files and the
options stay the same. Requests that cannot work are refused with one line
naming the class and the counts: one class only, an empty class folder, a
class with fewer clips (or groups) than the three splits need. Every audio
file is checked once, up front, and all unreadable files are listed
together.

It writes ``train.csv``, ``valid.csv`` and ``test.csv`` (columns ``ID, wav,
duration, labels, group``; ``labels`` joined by ``;``), ``classes.json``
(the class names in index order, ``multi_label``, the clips' durations)
and ``split.csv`` under ``save_folder``, never inside the data folder.

Authors
 * speechbrain-ast developers
"""

import csv
import hashlib
import json
import logging
import math
import os
import random
import re

from speechbrain_ast.data.prepare import (
    check_audio_files,
    load_prepared,
    raise_for_bad_audio,
    save_prepared,
)
from speechbrain_ast.features import compute_norm_stats
from speechbrain_ast.weights.ssast import (
    finetune_strides,
    read_ssast_checkpoint,
)

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif")
SPLITS = ("train", "valid", "test")
MANIFEST_COLUMNS = ["ID", "wav", "duration", "labels", "group"]
METADATA = "metadata.csv"
LABEL_SEPARATOR = ";"
# the settings chosen from the data unless given
DATA_KEYS = (
    "n_classes",
    "multi_label",
    "loss",
    "target_length",
    "norm_mean",
    "norm_std",
)
# the lobe's shape, taken from an SSAST encoder unless given
ENCODER_KEYS = (
    "embed_dim",
    "depth",
    "num_heads",
    "patch_size",
    "fstride",
    "tstride",
)
MAX_FRAMES = 1024  # AudioSet's 10 s: longer clips are cut there


def _is_audio(name):
    return name.lower().endswith(AUDIO_EXTENSIONS) and not name.startswith(".")


def _audio_below(folder):
    """Audio files below ``folder``, sorted, at any depth."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in sorted(names) if _is_audio(n)]
    return found


def _group_of(path, pattern):
    return "" if pattern is None else _match(path, pattern, "group_pattern")


def _match(path, pattern, name):
    match = re.search(pattern, os.path.basename(path))
    if match is None:
        raise ValueError(
            f"{name} {pattern!r} does not match the file name "
            f"{os.path.basename(path)!r} ({path}): give a pattern that "
            "matches every file name, or none."
        )
    return match.group(1) if match.groups() else match.group(0)


def _clip(path, label, group_pattern=None):
    """A clip of one class found by its file (its split chosen later)."""
    return {
        "wav": path,
        "labels": [label],
        "group": _group_of(path, group_pattern),
        "split": "",
    }


def read_class_folders(data_folder, group_pattern=None):
    """Clips of the one-sub-folder-per-class layout.

    Arguments
    ---------
    data_folder : str
        The folder holding one sub-folder per class.
    group_pattern : str, optional
        Regular expression giving each clip's group from its file name.

    Returns
    -------
    list of dict
        ``{"wav", "labels", "group", "split"}`` per clip (``split`` "").

    Raises
    ------
    ValueError
        For an empty class folder, audio files outside any class folder, or
        a folder without class sub-folders.

    Example
    -------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(root, "dog"))
    >>> read_class_folders(root)
    Traceback (most recent call last):
     ...
    ValueError: ...
    """
    classes = sorted(
        d
        for d in os.listdir(data_folder)
        if os.path.isdir(os.path.join(data_folder, d)) and not d.startswith(".")
    )
    loose = [n for n in os.listdir(data_folder) if _is_audio(n)]
    if loose:
        raise ValueError(
            f"{len(loose)} audio files lie directly in {data_folder} (e.g. "
            f"{sorted(loose)[0]!r}), not in a class sub-folder: move each "
            "into the folder of its class, or describe them in a "
            f"{METADATA}."
        )
    if not classes:
        raise ValueError(
            f"{data_folder} has no class sub-folders and no {METADATA}: put "
            "the clips of each class into a sub-folder named after it."
        )
    clips = []
    for name in classes:
        files = _audio_below(os.path.join(data_folder, name))
        if not files:
            raise ValueError(
                f"class folder {os.path.join(data_folder, name)!r} has no "
                f"audio files ({', '.join(AUDIO_EXTENSIONS)}): add clips or "
                "remove the folder."
            )
        clips += [_clip(path, name, group_pattern) for path in files]
    return clips


def read_named_files(data_folder, label_pattern, group_pattern=None):
    """Clips of a folder whose file names say their class.

    Arguments
    ---------
    data_folder : str
        The folder; every audio file below it, at any depth, is a clip.
    label_pattern : str
        Regular expression giving each clip's class from its file name.
    group_pattern : str, optional
        Regular expression giving each clip's group from its file name.

    Returns
    -------
    list of dict
        ``{"wav", "labels", "group", "split"}`` per clip (``split`` "").

    Example
    -------
    >>> import tempfile
    >>> read_named_files(tempfile.mkdtemp(), "^([0-9])_")
    Traceback (most recent call last):
     ...
    ValueError: ...
    """
    files = _audio_below(data_folder)
    if not files:
        raise ValueError(
            f"{data_folder} has no audio files ({', '.join(AUDIO_EXTENSIONS)})."
        )
    return [
        _clip(path, _match(path, label_pattern, "label_pattern"), group_pattern)
        for path in files
    ]


def read_metadata(data_folder, group_column=None):
    """Clips listed in ``<data_folder>/metadata.csv``.

    Arguments
    ---------
    data_folder : str
        The folder holding ``metadata.csv`` and the files it lists.
    group_column : str, optional
        The column naming each clip's group (default: ``group`` if present).

    Returns
    -------
    list of dict
        ``{"wav", "labels", "group", "split"}`` per clip.

    Raises
    ------
    ValueError
        Naming the missing column, the row or the value that is wrong.

    Example
    -------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> with open(os.path.join(root, "metadata.csv"), "w") as f:
    ...     _ = f.write("file,labels\\na.wav,dog;rain\\n")
    >>> read_metadata(root)[0]["labels"]
    ['dog', 'rain']
    """
    path = os.path.join(data_folder, METADATA)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    label_column = next((c for c in ("labels", "label") if c in columns), None)
    if "file" not in columns or label_column is None:
        raise ValueError(
            f"{path} has the columns {columns}; it needs a 'file' column and "
            "a 'label' (one class) or 'labels' (classes separated by ';') "
            "column."
        )
    if group_column is None and "group" in columns:
        group_column = "group"
    if group_column is not None and group_column not in columns:
        raise ValueError(
            f"group_column {group_column!r} is not a column of {path} "
            f"(columns: {columns})."
        )
    clips = []
    for line, row in enumerate(rows, start=2):
        labels = [
            label.strip()
            for label in (row[label_column] or "").split(LABEL_SEPARATOR)
            if label.strip()
        ]
        split = (row.get("split") or "").strip()
        if not labels or not (row["file"] or "").strip():
            raise ValueError(
                f"{path}, line {line}: the file or its label is empty."
            )
        if split and split not in SPLITS:
            raise ValueError(
                f"{path}, line {line}: split {split!r} is not one of "
                f"{', '.join(SPLITS)}."
            )
        clips.append(
            {
                "wav": os.path.join(data_folder, row["file"].strip()),
                "labels": labels,
                "group": (row[group_column] or "").strip()
                if group_column
                else "",
                "split": split,
            }
        )
    if not clips:
        raise ValueError(f"{path} lists no clips.")
    return clips


def _counts(clips, classes):
    counts = dict.fromkeys(classes, 0)
    for clip in clips:
        for label in clip["labels"]:
            counts[label] += 1
    return counts


def _check_splittable(clips, classes, grouped):
    """Refuses classes too rare for three splits, naming the counts."""
    needed = len(SPLITS)
    units = {name: set() for name in classes}
    for i, clip in enumerate(clips):
        for label in clip["labels"]:
            units[label].add(clip["group"] if grouped else i)
    what = "groups" if grouped else "clips"
    rare = {name: len(u) for name, u in units.items() if len(u) < needed}
    if rare:
        shown = ", ".join(f"{name!r}: {n}" for name, n in sorted(rare.items()))
        raise ValueError(
            f"{len(rare)} classes have fewer than {needed} {what}, which the "
            f"split into {', '.join(SPLITS)} needs ({shown}): add clips of "
            "them, remove them, or give a 'split' column in metadata.csv."
        )


def split_clips(clips, valid_ratio=0.1, test_ratio=0.1, seed=1234):
    """Assigns each clip to train, valid or test: stratified by class,
    every group within one split, every class in every split.

    Arguments
    ---------
    clips : list of dict
        With ``labels`` (list of str) and ``group`` ("" for none).
    valid_ratio, test_ratio : float
        The share of each class's clips in the validation and test splits.
    seed : int
        The split is a function of the clips and the seed.

    Returns
    -------
    list of str
        The split of each clip, in order.

    Raises
    ------
    ValueError
        When a class has fewer clips (groups) than three splits need.

    Example
    -------
    >>> clips = [{"labels": [c], "group": ""} for c in "aaaaabbbbb"]
    >>> splits = split_clips(clips, 0.2, 0.2)
    >>> sorted(splits.count(s) for s in ("train", "valid", "test"))
    [2, 2, 6]
    """
    if not (
        0 < valid_ratio and 0 < test_ratio and valid_ratio + test_ratio < 1
    ):
        raise ValueError(
            f"valid_ratio {valid_ratio} and test_ratio {test_ratio} must be "
            "above 0 with a sum below 1."
        )
    classes = sorted({label for clip in clips for label in clip["labels"]})
    grouped = any(clip["group"] for clip in clips)
    _check_splittable(clips, classes, grouped)
    # the units that move together: groups, else single clips
    units = {}
    for i, clip in enumerate(clips):
        key = ("g", clip["group"]) if grouped else ("c", i)
        units.setdefault(key, []).append(i)
    order = sorted(units)
    random.Random(seed).shuffle(order)
    total = _counts(clips, classes)
    share = {"valid": valid_ratio, "test": test_ratio}
    share["train"] = 1 - valid_ratio - test_ratio
    have = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    placed = {}

    def labels_of(key):
        return [lab for i in units[key] for lab in clips[i]["labels"]]

    def place(key, split):
        placed[key] = split
        for label in labels_of(key):
            have[split][label] += 1

    # first every class into every split, rarest classes first
    for name in sorted(classes, key=lambda c: (total[c], c)):
        for split in ("test", "valid", "train"):
            if have[split][name]:
                continue
            key = next(
                (k for k in order if k not in placed and name in labels_of(k)),
                None,
            )
            if key is not None:
                place(key, split)
    # then each unit where its classes are furthest below their share
    for key in order:
        if key in placed:
            continue
        labels = labels_of(key)

        def deficit(split, labels=labels):
            return sum(
                (share[split] * total[lab] - have[split][lab]) / total[lab]
                for lab in labels
            )

        place(key, max(SPLITS, key=deficit))
    missing = [
        f"{name!r} in {split}"
        for split in SPLITS
        for name in classes
        if not have[split][name]
    ]
    if missing:
        raise ValueError(
            "the groups cannot be split so that every class is in every "
            f"split ({', '.join(missing[:5])}): add clips of other groups, "
            "or give a 'split' column in metadata.csv."
        )
    split_of = {}
    for key, members in units.items():
        for i in members:
            split_of[i] = placed[key]
    return [split_of[i] for i in range(len(clips))]


def _fingerprint(clips):
    text = "\n".join(
        f"{c['wav']}\t{';'.join(c['labels'])}\t{c['group']}\t{c['split']}"
        for c in clips
    )
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _read_split_file(path, clips):
    with open(path, newline="", encoding="utf-8") as f:
        saved = {row["wav"]: row["split"] for row in csv.DictReader(f)}
    if set(saved) != {c["wav"] for c in clips}:
        return None
    return [saved[c["wav"]] for c in clips]


def prepare_audio_folder(
    data_folder,
    save_folder,
    valid_ratio=0.1,
    test_ratio=0.1,
    group_column=None,
    group_pattern=None,
    label_pattern=None,
    seed=1234,
    num_workers=4,
):
    """Writes the manifests of a folder of labelled recordings.

    Arguments
    ---------
    data_folder : str
        One sub-folder per class, or a folder with ``metadata.csv``.
    save_folder : str
        Where the manifests, ``classes.json`` and ``split.csv`` go.
    valid_ratio, test_ratio : float
        Shares of the automatic split (unused with a ``split`` column).
    group_column : str, optional
        ``metadata.csv``'s column naming each clip's group.
    group_pattern : str, optional
        Regular expression giving a clip's group from its file name.
    label_pattern : str, optional
        Regular expression giving a clip's class from its file name (then
        every audio file below ``data_folder`` is a clip).
    seed : int
        Seed of the automatic split.
    num_workers : int
        Threads reading the audio headers.

    Returns
    -------
    dict
        ``classes`` (index order), ``multi_label``, ``counts`` (clips per
        split and class) and ``durations`` (seconds: ``min``, ``median``,
        ``p95``, ``max`` over the training clips).

    Example
    -------
    >>> import tempfile
    >>> prepare_audio_folder(tempfile.mkdtemp() + "/none", tempfile.mkdtemp())
    Traceback (most recent call last):
     ...
    FileNotFoundError: ...
    """
    data_folder = os.path.abspath(data_folder)
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(
            f"data folder {data_folder!r} does not exist: pass --data_folder "
            "with one sub-folder per class, or a metadata.csv."
        )
    if label_pattern is not None:
        clips = read_named_files(data_folder, label_pattern, group_pattern)
    elif os.path.isfile(os.path.join(data_folder, METADATA)):
        clips = read_metadata(data_folder, group_column)
    else:
        if group_column is not None:
            raise ValueError(
                f"group_column {group_column!r} needs a {METADATA} in "
                f"{data_folder}; with class folders use group_pattern."
            )
        clips = read_class_folders(data_folder, group_pattern)
    classes = sorted({label for clip in clips for label in clip["labels"]})
    if len(classes) < 2:
        raise ValueError(
            f"{data_folder} has one class only ({classes[0]!r}, {len(clips)} "
            "clips): a classifier needs at least two."
        )
    options = {
        "data_folder": data_folder,
        "valid_ratio": valid_ratio,
        "test_ratio": test_ratio,
        "group_column": group_column,
        "group_pattern": group_pattern,
        "label_pattern": label_pattern,
        "seed": seed,
        "clips": _fingerprint(clips),
    }
    manifests = [os.path.join(save_folder, f"{s}.csv") for s in SPLITS]
    classes_file = os.path.join(save_folder, "classes.json")
    record = load_prepared(save_folder, options, [*manifests, classes_file])
    if record is not None:
        logger.info("%s already prepared: reusing it", save_folder)
        return record["info"]

    infos, problems = check_audio_files([c["wav"] for c in clips], num_workers)
    raise_for_bad_audio(
        [f"{path}: {problems[path]}" for path in sorted(problems)],
        len(clips),
        f"audio files in {data_folder}",
        "replace or remove them",
    )
    split_file = os.path.join(save_folder, "split.csv")
    splits = [c["split"] for c in clips]
    if not all(splits):
        if any(splits):
            raise ValueError(
                f"{os.path.join(data_folder, METADATA)} gives a split for "
                f"{sum(map(bool, splits))} of {len(clips)} clips: give one "
                "for every clip, or for none."
            )
        saved = None
        if os.path.isfile(split_file):
            saved = _read_split_file(split_file, clips)
        splits = saved or split_clips(clips, valid_ratio, test_ratio, seed)
    counts = {
        split: _counts(
            [c for c, s in zip(clips, splits) if s == split], classes
        )
        for split in SPLITS
    }
    empty = [
        f"{name!r} in {split}"
        for split in SPLITS
        for name in classes
        if not counts[split][name]
    ]
    if not counts["train"] or empty:
        raise ValueError(
            f"the split leaves classes without clips ({', '.join(empty[:5])}"
            "): every class needs clips in train, valid and test."
        )

    os.makedirs(save_folder, exist_ok=True)
    durations = {}
    for split in SPLITS:
        path = os.path.join(save_folder, f"{split}.csv")
        with open(path + ".tmp", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, MANIFEST_COLUMNS)
            writer.writeheader()
            for i, (clip, s) in enumerate(zip(clips, splits)):
                if s != split:
                    continue
                rate, frames, _ = infos[clip["wav"]]
                duration = frames / rate
                durations.setdefault(split, []).append(duration)
                writer.writerow(
                    {
                        "ID": f"clip{i:06d}",
                        "wav": clip["wav"],
                        "duration": f"{duration:.4f}",
                        "labels": LABEL_SEPARATOR.join(clip["labels"]),
                        "group": clip["group"],
                    }
                )
        os.replace(path + ".tmp", path)
    with open(split_file + ".tmp", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["wav", "split"])
        writer.writerows(zip((c["wav"] for c in clips), splits))
    os.replace(split_file + ".tmp", split_file)
    train = sorted(durations["train"])
    info = {
        "classes": classes,
        "multi_label": any(len(c["labels"]) > 1 for c in clips),
        "counts": counts,
        "durations": {
            "min": train[0],
            "median": train[len(train) // 2],
            "p95": train[min(len(train) - 1, int(0.95 * len(train)))],
            "max": train[-1],
        },
    }
    with open(classes_file, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    save_prepared(save_folder, options, info=info)
    logger.info(
        "%s: %d classes, clips per split %s",
        data_folder,
        len(classes),
        {s: sum(1 for x in splits if x == s) for s in SPLITS},
    )
    return info


def target_frames(seconds):
    """Frames of 10 ms covering ``seconds``, rounded up to 16, at most
    1024 (a clip keeps its length instead of being padded to 10 s).

    Arguments
    ---------
    seconds : float

    Returns
    -------
    int

    Example
    -------
    >>> target_frames(1.0), target_frames(0.5), target_frames(30.0)
    (112, 48, 1024)
    """
    frames = 1 + max(0, int(seconds * 16000) - 400) // 160
    return min(MAX_FRAMES, max(16, 16 * math.ceil(frames / 16)))


def stats_file(save_folder, target_length):
    """The training split's fbank statistics, computed once and kept.

    Arguments
    ---------
    save_folder : str
        Where ``train.csv`` is.
    target_length : int
        The frames each clip is padded or cut to.

    Returns
    -------
    str
        The path of ``norm_stats_<target_length>.json``.
    """
    path = os.path.join(save_folder, f"norm_stats_{target_length}.json")
    if not os.path.isfile(path):
        mean, std = compute_norm_stats(
            os.path.join(save_folder, "train.csv"), target_length=target_length
        )
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"mean": round(mean, 6), "std": round(std, 6)}, f)
        os.replace(path + ".tmp", path)
    return path


def choose_settings(info, save_folder, given, encoder=None, path=None):
    """The data-dependent settings not given on the command line; with
    ``path``, also written there (read back by :func:`read_settings`).

    Arguments
    ---------
    info : dict
        What the preparation found (classes, multi_label, durations).
    save_folder : str
        Where the manifests are and the statistics are kept.
    given : dict
        The command line's overrides.
    encoder : str, optional
        An SSAST encoder file: the lobe's width, depth, heads and patches
        are its, the strides those the SSAST reference fine-tunes with.
    path : str, optional
        A json file (``chosen_settings.json``): key -> ``{"value", "why"}``.

    Returns
    -------
    dict
        key -> ``(value, how it was chosen)`` for every key of DATA_KEYS
        (and of ENCODER_KEYS with an encoder).
    """
    chosen = {}

    def choose(key, value, why):
        if given.get(key) is not None:
            chosen[key] = (given[key], "given on the command line")
        else:
            chosen[key] = (value, why)
        return chosen[key][0]

    classes = info["classes"]
    choose("n_classes", len(classes), f"{len(classes)} classes in the data")
    multi = choose(
        "multi_label",
        info["multi_label"],
        "clips with several labels"
        if info["multi_label"]
        else "one label per clip",
    )
    choose(
        "loss",
        "bce" if multi else "ce",
        "multi-label" if multi else "single-label",
    )
    p95 = info["durations"]["p95"]
    length = choose(
        "target_length",
        target_frames(p95),
        f"95 % of the training clips last at most {p95:.2f} s",
    )
    if given.get("norm_mean") is None or given.get("norm_std") is None:
        with open(stats_file(save_folder, length), encoding="utf-8") as f:
            stats = json.load(f)
    else:
        stats = {"mean": None, "std": None}
    why = "fbank statistics of the training split"
    choose("norm_mean", stats["mean"], why)
    choose("norm_std", stats["std"], why)
    if encoder:
        config = read_ssast_checkpoint(encoder).config
        why = f"the SSAST encoder's ({os.path.basename(encoder)})"
        for key in ENCODER_KEYS[:3]:
            choose(key, config[key], why)
        patch = choose("patch_size", list(config["patch_size"]), why)
        fstride, tstride = finetune_strides(patch)
        why = "the SSAST reference's fine-tuning strides for these patches"
        choose("fstride", fstride, why)
        choose("tstride", tstride, why)
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(
                {k: {"value": v, "why": w} for k, (v, w) in chosen.items()},
                f,
                indent=2,
            )
    return chosen


def read_settings(path):
    """The settings :func:`choose_settings` wrote.

    Arguments
    ---------
    path : str
        Its json file.

    Returns
    -------
    dict
        key -> ``(value, how it was chosen)``, in the order chosen.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "chosen_settings.json")
    >>> info = {
    ...     "classes": ["a", "b"],
    ...     "multi_label": False,
    ...     "durations": {"p95": 1.0},
    ... }
    >>> given = {"norm_mean": -4.0, "norm_std": 4.0}
    >>> chosen = choose_settings(info, "unused", given, path=path)
    >>> read_settings(path) == chosen
    True
    >>> read_settings(path)["target_length"]
    (112, '95 % of the training clips last at most 1.00 s')
    """
    with open(path, encoding="utf-8") as f:
        return {k: (v["value"], v["why"]) for k, v in json.load(f).items()}
