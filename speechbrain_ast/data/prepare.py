"""What every recipe's data preparation shares: skipping work already done,
refusing to mix datasets in one output folder, and checking audio files up
front so that problems are reported all at once, by name, before training.

Nothing here knows a dataset: the recipes' ``<dataset>_prepare.py`` scripts
decide what the options and manifests are.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor

from speechbrain_ast.data.audio import AudioError, audio_info

__all__ = [
    "OPTIONS_FILE",
    "check_audio_files",
    "check_manifests",
    "load_prepared",
    "raise_for_bad_audio",
    "save_prepared",
]

# Written last by a preparation: its presence means the manifests are whole
OPTIONS_FILE = "prepare_options.json"


def load_prepared(save_folder, options, files):
    """The record of an earlier preparation that can be reused, else None.

    Arguments
    ---------
    save_folder : str
        Where the manifests and ``prepare_options.json`` are.
    options : dict
        This preparation's options; must hold ``data_folder``.
    files : list of str
        Files the preparation writes; all must exist to reuse it.

    Returns
    -------
    dict or None
        The stored record (the options plus what ``save_prepared`` was
        given) when every option matches and every file exists; None when
        the preparation must run (again).

    Raises
    ------
    ValueError
        When ``save_folder`` was prepared from another ``data_folder``:
        manifests of two datasets must never mix silently.

    Example
    -------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> load_prepared(out, {"data_folder": "/data/a"}, []) is None
    True
    >>> save_prepared(out, {"data_folder": "/data/a"}, counts=3)
    >>> load_prepared(out, {"data_folder": "/data/a"}, [])["counts"]
    3
    >>> load_prepared(out, {"data_folder": "/data/b"}, [])
    Traceback (most recent call last):
     ...
    ValueError: ...
    """
    path = os.path.join(save_folder, OPTIONS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("data_folder") != options["data_folder"]:
        raise ValueError(
            f"{save_folder} already holds manifests prepared from "
            f"{record.get('data_folder')!r}, not {options['data_folder']!r}."
            " Use another output folder for another dataset, or delete "
            f"{path} and the manifests to start over."
        )
    same = all(record.get(key) == value for key, value in options.items())
    if not same or not all(os.path.isfile(f) for f in files):
        return None
    return record


def save_prepared(save_folder, options, **info):
    """Records a finished preparation (atomically; call it last).

    Arguments
    ---------
    save_folder : str
        Where the manifests are.
    options : dict
        The options ``load_prepared`` compares next time.
    **info
        Anything else to keep (e.g. counts to report again on a skip).

    Example
    -------
    >>> import tempfile
    >>> save_prepared(tempfile.mkdtemp(), {"data_folder": "/data"})
    """
    os.makedirs(save_folder, exist_ok=True)
    path = os.path.join(save_folder, OPTIONS_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(dict(options, **info), f, indent=2)
    os.replace(path + ".tmp", path)


def check_audio_files(paths, num_workers=4):
    """Reads the header of every file once (in threads: it is I/O).

    Arguments
    ---------
    paths : list of str
        Audio files.
    num_workers : int
        Threads reading headers.

    Returns
    -------
    infos : dict
        path -> ``(sample_rate, frames, channels)`` of the usable files.
    problems : dict
        path -> the ``AudioError`` of each missing, empty or unreadable
        file.

    Example
    -------
    >>> infos, problems = check_audio_files(["/no/such/file.wav"])
    >>> infos, list(problems)
    ({}, ['/no/such/file.wav'])
    """

    def check(path):
        """The header of ``path``, or the problem found."""
        try:
            return audio_info(path)
        except AudioError as err:
            return err

    with ThreadPoolExecutor(max(1, int(num_workers))) as pool:
        results = dict(zip(paths, pool.map(check, paths)))
    infos = {p: r for p, r in results.items() if not isinstance(r, Exception)}
    problems = {p: r for p, r in results.items() if isinstance(r, Exception)}
    return infos, problems


def raise_for_bad_audio(problems, total, what, advice):
    """Raises one ``AudioError`` listing every problem, if there is any.

    Arguments
    ---------
    problems : list of str
        One line per bad file, naming it.
    total : int
        How many files were checked.
    what : str
        What the files are, e.g. "ESC-50 audio files in /data/audio".
    advice : str
        What to do about them.

    Example
    -------
    >>> raise_for_bad_audio([], 3, "clips", "replace them")
    >>> raise_for_bad_audio(["a.wav: empty"], 3, "clips", "replace them")
    Traceback (most recent call last):
     ...
    speechbrain_ast.data.audio.AudioError: 1 of 3 clips cannot be used; replace them:
      a.wav: empty
    """
    if problems:
        raise AudioError(
            f"{len(problems)} of {total} {what} cannot be used; {advice}:\n  "
            + "\n  ".join(problems)
        )


def check_manifests(manifests, num_workers=4):
    """Checks every clip that the manifests list, before training starts
    (files can go away or change after preparation).

    Arguments
    ---------
    manifests : list of str
        CSV manifests with a ``wav`` column.
    num_workers : int
        Threads reading headers.

    Raises
    ------
    speechbrain_ast.data.audio.AudioError
        Listing every missing, empty or unreadable file and its manifest.

    Example
    -------
    >>> import tempfile
    >>> manifest = tempfile.mkdtemp() + "/train.csv"
    >>> with open(manifest, "w") as f:
    ...     _ = f.write("ID,wav\\nx,/no/such/x.wav\\n")
    >>> check_manifests([manifest])
    Traceback (most recent call last):
     ...
    speechbrain_ast.data.audio.AudioError: 1 of 1 audio files listed in ...
    """
    listed = []
    for manifest in manifests:
        with open(manifest, newline="", encoding="utf-8") as f:
            listed += [(row["wav"], manifest) for row in csv.DictReader(f)]
    _, problems = check_audio_files([p for p, _ in listed], num_workers)
    raise_for_bad_audio(
        [
            f"{path} ({manifest}): {problems[path]}"
            for path, manifest in listed
            if path in problems
        ],  # fmt: skip
        len(listed),
        "audio files listed in the manifests",
        "restore them, or delete the manifests' folder to prepare again",
    )
