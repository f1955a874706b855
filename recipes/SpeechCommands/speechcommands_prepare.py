"""Data preparation for Speech Commands V2 (35 words), official split.

Expects the official layout (what `speech_commands_v0.02.tar.gz` unpacks to):

    <data_folder>/
        validation_list.txt        # relative paths: right/a69b9b3e_nohash_0.wav
        testing_list.txt
        _background_noise_/*.wav   # not a class
        <word>/<speaker>_nohash_<n>.wav   # one folder per word, 35 words

Train is every clip that is in neither list (``_background_noise_``
excluded), as in the official split: no hash split is recomputed. When
``data_folder`` is missing (or empty) the archive is downloaded into it if
the network allows, otherwise the error says what to put where.

Writes under ``save_folder`` (never into the dataset): ``train.csv``,
``valid.csv``, ``test.csv`` (columns ``ID, duration, wav, label, speaker``),
``classes.txt`` (one word per line, sorted: the label index order) and
``prepare_options.json``, which records the options and the dataset path so
that a second call with the same ones does nothing, and a call with another
dataset path into the same folder stops instead of mixing.

Every audio file is checked once up front (``speechbrain_ast.data.audio``); all
unreadable, empty or wrong-format files are reported in one list, by name.

Authors
 * speechbrain-ast developers
"""

import csv
import os
import tarfile
import tempfile
import urllib.request

from speechbrain.utils.logger import get_logger
from speechbrain_ast.data.audio import AudioError
from speechbrain_ast.data.prepare import (
    check_audio_files,
    load_prepared,
    save_prepared,
)

logger = get_logger(__name__)

DOWNLOAD_URL = (
    "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
)
BACKGROUND = "_background_noise_"
SPLIT_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
MANIFESTS = ("train.csv", "valid.csv", "test.csv", "classes.txt")
# Bumped when the manifest format changes, so old manifests are rebuilt.
MANIFEST_VERSION = 1


def prepare_speech_commands(
    data_folder, save_folder, download=True, skip_prep=False
):
    """Writes the Speech Commands V2 manifests for the official split.

    Arguments
    ---------
    data_folder : str
        The unpacked dataset (see the module docstring for the layout).
    save_folder : str
        Where the manifests go (created if needed).
    download : bool
        Download and unpack the official archive into ``data_folder`` when
        that folder is missing or empty.
    skip_prep : bool
        Do nothing (manifests prepared elsewhere).

    Returns
    -------
    dict
        Paths of ``train``, ``valid``, ``test`` manifests and ``classes``.

    Raises
    ------
    FileNotFoundError
        When the dataset is missing and cannot be downloaded.
    ValueError
        When ``save_folder`` holds manifests of another dataset path.
    speechbrain_ast.data.audio.AudioError
        Listing every unreadable, empty or wrong-format clip.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.testing.speech_commands import make_speech_commands
    >>> tmp = tempfile.mkdtemp()
    >>> data = make_speech_commands(tmp + "/sc", words=["yes", "no"])
    >>> out = prepare_speech_commands(data, tmp + "/out", download=False)
    >>> sorted(out)
    ['classes', 'test', 'train', 'valid']
    """
    paths = {
        name.split(".")[0]: os.path.join(save_folder, name)
        for name in MANIFESTS
    }
    if skip_prep:
        return paths
    data_folder = os.path.abspath(data_folder)
    options = {
        "data_folder": data_folder,
        "manifest_version": MANIFEST_VERSION,
    }
    if load_prepared(save_folder, options, list(paths.values())):
        logger.info(
            f"Speech Commands manifests in {save_folder} match "
            f"{data_folder}: skipping preparation."
        )
        return paths

    _ensure_dataset(data_folder, download)
    words = list_words(data_folder)
    listed = {
        split: _read_split_list(data_folder, name)
        for split, name in SPLIT_LISTS.items()
    }
    held_out = listed["valid"] | listed["test"]

    clips = [
        (word, name, os.path.join(data_folder, word, name))
        for word in words
        for name in sorted(os.listdir(os.path.join(data_folder, word)))
        if name.lower().endswith(".wav")
    ]
    infos, problems = check_audio_files([path for _, _, path in clips])
    bad = [f"{path}: {err}" for path, err in problems.items()]
    rows = {"train": [], "valid": [], "test": []}
    for word, name, path in clips:
        if path in problems:
            continue
        rel = f"{word}/{name}"
        rate, frames, _ = infos[path]
        split = "train"
        if rel in listed["valid"]:
            split = "valid"
        elif rel in listed["test"]:
            split = "test"
        rows[split].append(
            {
                "ID": f"{word}_{os.path.splitext(name)[0]}",
                "duration": round(frames / rate, 4),
                "wav": path,
                "label": word,
                "speaker": name.split("_nohash_")[0],
            }
        )
    # A split list naming a clip that is not there is a broken download.
    for rel in sorted(held_out):
        if not os.path.isfile(os.path.join(data_folder, rel)):
            bad.append(
                f"{os.path.join(data_folder, rel)}: listed in the split "
                "lists but missing"
            )
    if bad:
        os.makedirs(save_folder, exist_ok=True)
        report = os.path.join(save_folder, "bad_files.txt")
        with open(report, "w") as f:
            f.write("\n".join(bad) + "\n")
        raise AudioError(
            f"{len(bad)} Speech Commands file(s) under {data_folder} cannot "
            f"be used (list also in {report}); re-download or remove them:\n"
            + "\n".join(bad)
        )

    os.makedirs(save_folder, exist_ok=True)
    for split, split_rows in rows.items():
        _write_csv(paths[split], split_rows)
        logger.info(f"{split}: {len(split_rows)} clips -> {paths[split]}")
    with open(paths["classes"], "w") as f:
        f.write("\n".join(words) + "\n")
    save_prepared(save_folder, options)
    return paths


def list_words(data_folder):
    """The class folders of a Speech Commands layout, sorted.

    Arguments
    ---------
    data_folder : str
        The dataset root.

    Returns
    -------
    list of str
        Every sub-folder except ``_background_noise_`` and hidden ones.

    Example
    -------
    >>> import tempfile, os
    >>> root = tempfile.mkdtemp()
    >>> for d in ["yes", "_background_noise_", "no"]:
    ...     os.makedirs(os.path.join(root, d))
    >>> list_words(root)
    ['no', 'yes']
    """
    return sorted(
        name
        for name in os.listdir(data_folder)
        if os.path.isdir(os.path.join(data_folder, name))
        and name != BACKGROUND
        and not name.startswith((".", "_"))
    )


def _ensure_dataset(data_folder, download):
    """Downloads the archive into a missing/empty ``data_folder``, or raises
    an error saying what is expected where."""
    layout_ok = all(
        os.path.isfile(os.path.join(data_folder, name))
        for name in SPLIT_LISTS.values()
    )
    if layout_ok:
        return
    empty = not os.path.isdir(data_folder) or not os.listdir(data_folder)
    what = (
        f"Speech Commands V2 is not in {data_folder!r}: expected "
        "validation_list.txt, testing_list.txt, _background_noise_/ and one "
        "folder of .wav files per word. Download "
        f"{DOWNLOAD_URL} and unpack it into that folder "
        f"(mkdir -p {data_folder} && tar -xzf speech_commands_v0.02.tar.gz "
        f"-C {data_folder}), or pass --data_folder pointing at it."
    )
    if not (empty and download):
        raise FileNotFoundError(what)
    logger.info(f"Downloading {DOWNLOAD_URL} into {data_folder} ...")
    try:
        _download_and_unpack(DOWNLOAD_URL, data_folder)
    except OSError as err:
        raise FileNotFoundError(f"{what} (download failed: {err})") from err


def _download_and_unpack(url, data_folder):
    """Fetches the tar.gz next to ``data_folder`` and unpacks it there."""
    os.makedirs(data_folder, exist_ok=True)
    parent = os.path.dirname(data_folder.rstrip(os.sep)) or "."
    with tempfile.NamedTemporaryFile(dir=parent, suffix=".tar.gz") as tmp:
        with urllib.request.urlopen(url, timeout=30) as response:
            while True:
                block = response.read(1 << 20)
                if not block:
                    break
                tmp.write(block)
        tmp.flush()
        with tarfile.open(tmp.name) as archive:
            archive.extractall(data_folder, filter="data")


def _read_split_list(data_folder, name):
    """The set of relative paths in one official split list."""
    with open(os.path.join(data_folder, name)) as f:
        return {line.strip() for line in f if line.strip()}


def _write_csv(path, rows):
    fields = ["ID", "duration", "wav", "label", "speaker"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
