"""Data preparation for DESED (DCASE task 4, domestic sound event
detection): JSON manifests of the strongly labelled, weakly labelled and
unlabelled sets.

Expects the layout of DCASE task 4's ``dcase/dataset`` folder (the one
DESED_task's ``generate_dcase_task4_2022.py`` builds)::

    <data_folder>/
        audio/train/synthetic21_train/soundscapes/*.wav
        audio/train/weak/*.wav
        audio/train/unlabel_in_domain/*.wav
        audio/validation/synthetic21_validation/soundscapes/*.wav
        audio/validation/validation/*.wav
        audio/eval/public/*.wav
        metadata/train/synthetic21_train/soundscapes.tsv     # strong
        metadata/train/weak.tsv                              # weak
        metadata/train/unlabel_in_domain.tsv                 # file list
        metadata/validation/synthetic21_validation/soundscapes.tsv
        metadata/validation/validation.tsv                   # strong
        metadata/eval/public.tsv                             # strong

Strong tsv: ``filename onset offset event_label`` (tab-separated, header
line; a row with an empty onset is a clip without events); weak tsv:
``filename event_labels`` (labels comma-separated).

``download_desed`` fetches the parts that Zenodo serves directly: the
synthetic soundscapes of DCASE 2022 (``dcase_synth.zip``), the metadata of
the real sets and the public evaluation set. The real weak, unlabelled and
validation recordings come from YouTube: DESED's own script downloads them
(``desed.download_audioset_data(data_folder)``, package ``desed``), and the
task organisers share the ones YouTube no longer serves.

Writes under ``save_folder``: ``train.json``, ``valid.json``,
``test.json`` and ``unlabelled.json`` (id -> ``wav``, ``duration``,
``set``, ``strong``, ``labels``, ``events``), ``labels.txt`` (the classes,
one a line, sorted) and ``prepare_options.json`` (the same call again
does nothing). Every listed file is checked once, up front; the missing
and unreadable ones are all listed in one error, or with ``skip_missing``
left out and listed in ``missing_or_unreadable.tsv``.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import logging
import os

from speechbrain.utils.data_utils import download_file
from speechbrain_ast.data.prepare import (
    check_audio_files,
    load_prepared,
    raise_for_bad_audio,
    save_prepared,
)
from speechbrain_ast.events.evaluate import read_events_tsv

logger = logging.getLogger(__name__)

#: DESED's sets: name -> (audio folder, metadata tsv, kind)
DESED_SETS = {
    "synthetic_train": (
        "audio/train/synthetic21_train/soundscapes",
        "metadata/train/synthetic21_train/soundscapes.tsv",
        "strong",
    ),
    "weak": ("audio/train/weak", "metadata/train/weak.tsv", "weak"),
    "unlabel_in_domain": (
        "audio/train/unlabel_in_domain",
        "metadata/train/unlabel_in_domain.tsv",
        "unlabelled",
    ),
    "synthetic_validation": (
        "audio/validation/synthetic21_validation/soundscapes",
        "metadata/validation/synthetic21_validation/soundscapes.tsv",
        "strong",
    ),
    "validation": (
        "audio/validation/validation",
        "metadata/validation/validation.tsv",
        "strong",
    ),
    "public_eval": ("audio/eval/public", "metadata/eval/public.tsv", "strong"),
}
#: What Zenodo serves directly: archive name -> address
DOWNLOADS = {
    "dcase_synth.zip": "https://zenodo.org/record/6026841/files/"
    "dcase_synth.zip?download=1",
    "audioset_metadata.tar.gz": "https://zenodo.org/record/4639776/files/"
    "audioset_metadata.tar.gz?download=1",
    "DESED_public_eval.tar.gz": "https://zenodo.org/record/4560759/files/"
    "DESED_public_eval.tar.gz?download=1",
}
SPLITS = ("train", "valid", "test", "unlabelled")
REPORT_FILE = "missing_or_unreadable.tsv"
YOUTUBE_SETS = ("weak", "unlabel_in_domain", "validation")


def download_desed(data_folder):
    """Downloads and unpacks DESED's directly downloadable parts into
    ``data_folder`` (SpeechBrain's ``download_file``; an archive unpacked
    once is not fetched or unpacked again): the synthetic soundscapes,
    linked into the dataset's layout as DESED_task does, the metadata of
    the real sets and the public evaluation set.

    Arguments
    ---------
    data_folder : str
        The dataset folder (created).
    """
    archives = os.path.join(data_folder, "archives")
    os.makedirs(archives, exist_ok=True)
    for name, url in DOWNLOADS.items():
        done = os.path.join(archives, name + ".unpacked")
        if os.path.isfile(done):
            continue
        download_file(
            url, os.path.join(archives, name), unpack=True,
            dest_unpack=data_folder,
        )  # fmt: skip
        open(done, "w").close()
    # dcase_synth/{audio,metadata}/<split>/<set> -> <data_folder>/...
    synth = os.path.join(data_folder, "dcase_synth")
    for kind in ("audio", "metadata"):
        for split in ("train", "validation", "eval"):
            source = os.path.join(synth, kind, split)
            if not os.path.isdir(source):
                continue
            os.makedirs(os.path.join(data_folder, kind, split), exist_ok=True)
            for entry in os.listdir(source):
                link = os.path.join(data_folder, kind, split, entry)
                if not os.path.lexists(link):
                    os.symlink(os.path.join(source, entry), link)


def read_weak_tsv(path):
    """Reads a weak-label file (``filename event_labels``, labels
    comma-separated).

    Arguments
    ---------
    path : str

    Returns
    -------
    dict
        filename -> list of labels.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weak.tsv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("filename\\tevent_labels\\na.wav\\tDog,Cat\\n")
    >>> read_weak_tsv(path)
    {'a.wav': ['Cat', 'Dog']}
    """
    rows = _read_rows(path, ("filename", "event_labels"))
    weak = {}
    for number, row in rows:
        labels = [x.strip() for x in row["event_labels"].split(",")]
        if not row["filename"] or not all(labels):
            raise ValueError(
                f"{path}:{number}: a weak-label row is 'filename<TAB>label,"
                f"label,...' with at least one label; got {row}"
            )
        weak[row["filename"]] = sorted(set(labels))
    return weak


def _read_rows(path, columns):
    """(line number, row) of a tsv with a header holding ``columns``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}:1: the header {reader.fieldnames} lacks the columns "
                f"{missing}; DESED's file has {'<TAB>'.join(columns)}"
            )
        return [
            (number, {k: (v or "").strip() for k, v in row.items()})
            for number, row in enumerate(reader, start=2)
        ]


def read_set(data_folder, name):
    """The clips of one DESED set, from its metadata file.

    Arguments
    ---------
    data_folder : str
    name : str
        A key of :data:`DESED_SETS`.

    Returns
    -------
    dict
        filename -> ``(labels, events)``: sorted labels, and the strong
        events ``[[onset, offset, label], ...]`` (None for a weak or
        unlabelled set).

    Raises
    ------
    FileNotFoundError
        When the metadata file is missing.
    """
    audio, tsv, kind = DESED_SETS[name]
    path = os.path.join(data_folder, tsv)
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    if kind == "strong":
        clips = read_events_tsv(path)
        return {
            f: (sorted({e[2] for e in events}), [list(e) for e in events])
            for f, events in clips.items()
        }
    if kind == "weak":
        return {f: (labels, None) for f, labels in read_weak_tsv(path).items()}
    return {
        row["filename"]: ([], None) for _, row in _read_rows(path, ["filename"])
    }


def prepare_desed(
    data_folder,
    save_folder,
    train_sets=("synthetic_train", "weak"),
    valid_sets=("synthetic_validation",),
    test_sets=("validation",),
    unlabelled_sets=("unlabel_in_domain",),
    skip_missing=False,
    download=False,
):
    """Writes the manifests of the chosen DESED sets.

    Arguments
    ---------
    data_folder : str
        The dataset folder (DCASE task 4's ``dcase/dataset``).
    save_folder : str
        Where the manifests go (not inside the dataset).
    train_sets, valid_sets, test_sets : list of str
        The sets of each split (keys of :data:`DESED_SETS`); weak sets
        train the clip scores only, strong sets also the frame scores.
    unlabelled_sets : list of str
        Listed in ``unlabelled.json`` when present (not used for training);
        an absent one is skipped with a warning.
    skip_missing : bool
        Leave the missing or unreadable files out (listed in
        ``missing_or_unreadable.tsv``) instead of stopping.
    download : bool
        First fetch the directly downloadable parts (:func:`download_desed`).

    Returns
    -------
    dict
        Split -> manifest path, and ``labels`` -> the class list.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from speechbrain_ast.testing.soundscapes import make_desed
    >>> src, data = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> sf.write(src + "/beep.wav", np.ones(4000) * 0.1, 16000)
    >>> _ = make_desed(data, {"Beep": [src + "/beep.wav"]}, duration=1.0)
    >>> out = prepare_desed(data, tempfile.mkdtemp())
    >>> out["labels"], sorted(out)
    (['Beep'], ['labels', 'test', 'train', 'unlabelled', 'valid'])
    """
    data_folder = os.path.abspath(data_folder)
    chosen = {
        "train": list(train_sets),
        "valid": list(valid_sets),
        "test": list(test_sets),
        "unlabelled": list(unlabelled_sets),
    }
    unknown = sorted(
        {s for sets in chosen.values() for s in sets} - set(DESED_SETS)
    )
    if unknown:
        raise ValueError(
            f"unknown DESED sets {unknown}: choose among {sorted(DESED_SETS)}"
        )
    for split in ("train", "valid", "test"):
        if not chosen[split]:
            raise ValueError(f"{split}_sets is empty: give at least one set")
    options = {
        "data_folder": data_folder,
        **{f"{split}_sets": sets for split, sets in chosen.items()},
        "skip_missing": bool(skip_missing),
    }
    manifests = {s: os.path.join(save_folder, f"{s}.json") for s in SPLITS}
    labels_file = os.path.join(save_folder, "labels.txt")
    record = load_prepared(
        save_folder, options, [*manifests.values(), labels_file]
    )
    if record:
        logger.info("DESED manifests in %s up to date: skip", save_folder)
        _recheck([manifests[split] for split in ("train", "valid", "test")])
        return {**manifests, "labels": record["labels"]}
    if download:
        download_desed(data_folder)

    clips, missing_meta = {}, []
    for split, sets in chosen.items():
        for name in sets:
            try:
                clips[name] = read_set(data_folder, name)
            except FileNotFoundError as err:
                if split == "unlabelled":
                    logger.warning("unlabelled set %s absent: %s", name, err)
                else:
                    missing_meta.append(str(err))
    if missing_meta:
        raise FileNotFoundError(
            f"{len(missing_meta)} DESED metadata files are missing: "
            + ", ".join(missing_meta)
            + ". data_folder must be DCASE task 4's dataset folder; pass "
            "--download True to fetch the synthetic soundscapes and the "
            "metadata from Zenodo, and get the real recordings with DESED's "
            "script (recipes/DESED/README.md)."
        )
    entries, problems, checked = _check_clips(data_folder, clips, chosen)
    if problems and not skip_missing:
        raise_for_bad_audio(
            [f"{name}/{f}: {err}" for name, f, err in problems],
            checked,
            f"DESED audio files in {data_folder}",
            "restore them, or pass --skip_missing True to train without "
            f"them (listed in {os.path.join(save_folder, REPORT_FILE)})",
        )
    labels = sorted(
        {
            label
            for split in ("train", "valid", "test")
            for name in chosen[split]
            for entry in entries[name].values()
            for label in entry["labels"]
        }
    )
    if not labels:
        raise ValueError(f"the DESED sets in {data_folder} hold no label")
    os.makedirs(save_folder, exist_ok=True)
    with open(
        os.path.join(save_folder, REPORT_FILE), "w", encoding="utf-8"
    ) as f:
        f.write("set\tfilename\terror\n")
        for name, filename, err in problems:
            f.write(f"{name}\t{filename}\t{' '.join(str(err).split())}\n")
    for split, sets in chosen.items():
        merged = {}
        for name in sets:
            for filename, entry in entries.get(name, {}).items():
                merged[f"{name}/{os.path.splitext(filename)[0]}"] = entry
        _write_json(manifests[split], merged)
        logger.info("%s: %d clips -> %s", split, len(merged), manifests[split])
    with open(labels_file, "w", encoding="utf-8") as f:
        f.write("".join(label + "\n" for label in labels))
    # written last: its presence means the manifests are complete
    save_prepared(save_folder, options, labels=labels, problems=len(problems))
    return {**manifests, "labels": labels}


def _check_clips(data_folder, clips, chosen):
    """The manifest entries of the usable clips of every set, and the
    ``(set, filename, error)`` of the others (unlabelled sets: listed, not
    read)."""
    unlabelled = set(chosen["unlabelled"])
    paths = {
        (name, f): os.path.join(data_folder, DESED_SETS[name][0], f)
        for name, files in clips.items()
        for f in files
    }
    checked = [p for (name, _), p in paths.items() if name not in unlabelled]
    infos, bad = check_audio_files(checked)
    entries, problems = {name: {} for name in clips}, []
    for (name, filename), path in paths.items():
        labels, events = clips[name][filename]
        if name in unlabelled:
            if os.path.isfile(path):
                entries[name][filename] = {"wav": path, "set": name}
            continue
        if path in bad:
            problems.append((name, filename, bad[path]))
            continue
        rate, frames, _ = infos[path]
        entries[name][filename] = {
            "wav": path,
            "duration": round(frames / rate, 4),
            "set": name,
            "strong": events is not None,
            "labels": labels,
            "events": events or [],
        }
    return entries, problems, len(checked)


def _recheck(manifests):
    """Lists, in one error, the files of prepared manifests that went
    missing or became unreadable since."""
    listed = []
    for manifest in manifests:
        with open(manifest, encoding="utf-8") as f:
            listed += [(e["wav"], manifest) for e in json.load(f).values()]
    _, bad = check_audio_files([path for path, _ in listed])
    raise_for_bad_audio(
        [f"{path} ({manifest}): {bad[path]}" for path, manifest in listed
         if path in bad],
        len(listed),
        "audio files listed in the manifests",
        "restore them, or delete the manifests' folder to prepare again",
    )  # fmt: skip


def _write_json(path, data):
    """Atomically."""
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(path + ".tmp", path)
