"""Reading a split's shard folder: its index (``index.json``), its clip
list (``clips.csv``), the samples of a shard and their decoding.

A clip is stored as its compressed file bytes (``<key>.flac``, ``.wav``,
... never decoded) and a ``<key>.json`` holding ``id``, ``labels`` (a list),
``duration`` and the ``sha256`` of the audio bytes; keys are the clip's
position in the split (``000000042``). Shards are read with webdataset's
own tar iterators, so they are plain WebDataset shards.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os

from webdataset.tariterators import tarfile_samples

from speechbrain_ast.data.audio import decode_audio

__all__ = [
    "INDEX_FILE",
    "DecodeClip",
    "load_index",
    "read_clip_list",
    "read_shard",
    "shard_name",
]

INDEX_FILE = "index.json"
CLIPS_FILE = "clips.csv"
FORMAT = "speechbrain-ast audio shards"
FORMAT_VERSION = 1


def shard_name(number):
    """The file name of shard ``number``.

    Example
    -------
    >>> shard_name(3)
    'shard-000003.tar'
    """
    return f"shard-{number:06d}.tar"


def clip_key(position):
    """The key of the clip at ``position`` of its split.

    Example
    -------
    >>> clip_key(42)
    '000000042'
    """
    return f"{position:09d}"


def read_shard(path, positions=None):
    """The samples of a shard, in order, as WebDataset groups them.

    Arguments
    ---------
    path : str
        A shard written by
        :func:`speechbrain_ast.data.shards.write.write_shard`.
    positions : container of int, optional
        Only the clips at these positions (the other members' data are
        skipped, not kept).

    Yields
    ------
    dict
        ``__key__`` and one entry per member extension: the audio bytes
        (e.g. ``flac``) and ``json`` (the decoded metadata dict).

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from speechbrain_ast.data.shards import write_shard
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.wav", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.wav", "labels": ["/m/x"]}
    >>> _ = write_shard(tmp + "/s.tar", [clip], first=5)
    >>> [(s["__key__"], s["json"]["id"]) for s in read_shard(tmp + "/s.tar")]
    [('000000005', 'a')]
    """
    select = None
    if positions is not None:

        def select(name):
            """Whether member ``name`` belongs to a wanted clip."""
            return int(name.partition(".")[0]) in positions

    for sample in tarfile_samples([{"url": path}], select_files=select):
        del sample["__url__"]
        if "json" in sample:
            sample["json"] = json.loads(sample["json"])
        yield sample


def load_index(folder):
    """Reads a split's ``index.json`` and checks its shards exist.

    Arguments
    ---------
    folder : str
        A split's shard folder, as
        :func:`speechbrain_ast.data.shards.write.write_shards` wrote it.

    Returns
    -------
    dict
        The index (``num_clips``, ``shards`` with ``name``, ``first``,
        ``clips``).

    Raises
    ------
    FileNotFoundError
        When the index or a shard is missing (an unfinished or moved
        shard folder).

    Example
    -------
    >>> load_index("/no/such/folder")
    Traceback (most recent call last):
     ...
    FileNotFoundError: No shard index /no/such/folder/index.json: ...
    """
    path = os.path.join(folder, INDEX_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No shard index {path}: the folder is not a finished shard "
            "folder. Run (or finish) recipes/AudioSet/make_shards.py, "
            "which writes the index last."
        )
    with open(path, encoding="utf-8") as f:
        index = json.load(f)
    if index.get("format") != FORMAT or index.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} is not a version {FORMAT_VERSION} index of "
            f"{FORMAT!r}: rewrite the shards with make_shards.py."
        )
    missing = [
        s["name"]
        for s in index["shards"]
        if not os.path.isfile(os.path.join(folder, s["name"]))
    ]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} shards listed in {path} are missing "
            f"({missing[:5]}): copy them back or rerun make_shards.py."
        )
    return index


def read_clip_list(folder):
    """The split's clips in position order, from its ``clips.csv``.

    Arguments
    ---------
    folder : str
        A split's shard folder.

    Returns
    -------
    ids : list of str
    label_lists : list of list of str
        What :func:`speechbrain_ast.training.labels.balanced_sample_weights`
        takes, in position order.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from speechbrain_ast.data.shards import write_shards
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.wav", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.wav", "labels": ["/m/x", "/m/y"]}
    >>> _ = write_shards([clip], tmp + "/s")
    >>> read_clip_list(tmp + "/s")
    (['a'], [['/m/x', '/m/y']])
    """
    with open(
        os.path.join(folder, CLIPS_FILE), newline="", encoding="utf-8"
    ) as f:
        rows = list(csv.DictReader(f))
    return (
        [row["ID"] for row in rows],
        [[m for m in row["labels"].split(",") if m] for row in rows],
    )


class DecodeClip:
    """Shard sample -> ``{"id", "sig", "target"}`` (as the file-based
    recipe's pipeline gives).

    Arguments
    ---------
    encoder : object with ``encode(labels)``, optional
        E.g. a ``MultiHotEncoder``; without it ``labels`` (the list) is
        returned instead of ``target``.
    sample_rate : int
        The rate of ``sig``.

    Example
    -------
    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.zeros(160), 16000, format="WAV")
    >>> sample = {"wav": buf.getvalue(), "json": {"id": "a", "labels": ["x"]}}
    >>> out = DecodeClip()(sample)
    >>> out["id"], out["sig"].shape, out["labels"]
    ('a', torch.Size([160]), ['x'])
    """

    def __init__(self, encoder=None, sample_rate=16000):
        self.encoder = encoder
        self.sample_rate = sample_rate

    def __call__(self, sample):
        """Decodes one sample."""
        meta = sample["json"]
        [ext] = [k for k in sample if k not in ("json", "__key__", "__shard__")]
        where = f"clip {meta['id']!r} ({sample.get('__shard__', '?')})"
        out = {
            "id": meta["id"],
            "sig": decode_audio(sample[ext], where, self.sample_rate),
        }
        if self.encoder is None:
            out["labels"] = list(meta["labels"])
        else:
            out["target"] = self.encoder.encode(meta["labels"])
        return out
