"""WebDataset tar shards of audio clips: writing, checking and streaming.

A clip is stored as its compressed file bytes (``<key>.flac``, ``.wav``,
... never decoded) and a ``<key>.json`` holding ``id``, ``labels`` (a list),
``duration`` and the ``sha256`` of the audio bytes. Keys are the clip's
position in the split (``000000042``), so shards are plain WebDataset
shards that ``webdataset.WebDataset`` also reads. One folder per split
holds ``shard-000000.tar`` ..., ``index.json`` (clips per shard and in
total) and ``clips.csv`` (position, ID, labels, duration, shard: what the
balanced sampler's weights are computed from without reading a shard).

Writing (:func:`write_shards`) is deterministic (clips in manifest order,
members sorted, mtime 0, uid/gid 0, no user names: the same clips give
byte-identical shards), parallel over shards, and resumable: a shard is
written under a temporary name and renamed when complete; a rerun verifies
the complete shards it finds and writes only the others.

Reading for training and evaluation (:class:`ShardStream`, through
:class:`ShardLoader`) follows a plan computed from ``index.json`` alone, the
same on every rank and data-loader worker; it is described in
:class:`ShardStream`.

Authors
 * speechbrain-ast developers
"""

import csv
import glob
import hashlib
import io
import json
import math
import multiprocessing
import os
import tarfile

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, IterableDataset

from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger
from speechbrain_ast.data.audio import AudioError, resample

__all__ = [
    "INDEX_FILE",
    "DecodeClip",
    "ShardLoader",
    "ShardStream",
    "balanced_repeats",
    "buffer_shuffle",
    "decode_audio",
    "load_index",
    "make_shard_loaders",
    "read_clip_list",
    "read_shard",
    "shard_name",
    "verify_shard",
    "write_shard",
    "write_shards",
]

logger = get_logger(__name__)

INDEX_FILE = "index.json"
CLIPS_FILE = "clips.csv"
FORMAT = "speechbrain-ast audio shards"
FORMAT_VERSION = 1
_TMP = ".tmp"


def shard_name(number):
    """The file name of shard ``number``.

    Example
    -------
    >>> shard_name(3)
    'shard-000003.tar'
    """
    return f"shard-{number:06d}.tar"


def _key(position):
    return f"{position:09d}"


def _meta_bytes(meta):
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def _tarinfo(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _audio_ext(path):
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if not ext or ext == "json":
        raise ValueError(
            f"{path!r}: an audio file needs an extension other than .json "
            "(e.g. .flac, .wav): it names the member in the shard."
        )
    return ext


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_meta(clip):
    return {
        "id": clip["ID"],
        "labels": list(clip["labels"]),
        "duration": clip.get("duration"),
    }


def write_shard(path, clips, first):
    """Writes one shard, atomically (temporary name, then rename).

    Arguments
    ---------
    path : str
        The shard to write.
    clips : list of dict
        ``ID``, ``wav`` (the audio file), ``labels`` (list of str) and
        optionally ``duration``, in the order they go into the shard.
    first : int
        Position of the first clip in the split (its key).

    Returns
    -------
    dict
        ``name``, ``first``, ``clips``, ``bytes``, ``sha256`` of the shard.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.flac", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.flac", "labels": ["/m/x"]}
    >>> write_shard(tmp + "/" + shard_name(0), [clip], first=0)["clips"]
    1
    """
    tmp = f"{path}{_TMP}{os.getpid()}"
    with open(tmp, "wb") as f:
        tar = tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT)
        with tar:
            for n, clip in enumerate(clips):
                with open(clip["wav"], "rb") as audio_file:
                    audio = audio_file.read()
                meta = _expected_meta(clip)
                meta["sha256"] = hashlib.sha256(audio).hexdigest()
                key = _key(first + n)
                members = {
                    f"{key}.{_audio_ext(clip['wav'])}": audio,
                    f"{key}.json": _meta_bytes(meta),
                }
                for name in sorted(members):
                    data = members[name]
                    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {
        "name": os.path.basename(path),
        "first": first,
        "clips": len(clips),
        "bytes": os.path.getsize(path),
        "sha256": _file_sha256(path),
    }


def read_shard(path):
    """The samples of a shard, in order, as WebDataset groups them.

    Arguments
    ---------
    path : str
        A shard written by :func:`write_shard`.

    Yields
    ------
    dict
        ``__key__`` and one entry per member extension: the audio bytes
        (e.g. ``flac``) and ``json`` (the decoded metadata dict).

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.wav", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.wav", "labels": ["/m/x"]}
    >>> _ = write_shard(tmp + "/s.tar", [clip], first=5)
    >>> [(s["__key__"], s["json"]["id"]) for s in read_shard(tmp + "/s.tar")]
    [('000000005', 'a')]
    """
    with tarfile.open(path, "r:") as tar:
        sample = None
        for member in tar:
            key, _, ext = member.name.partition(".")
            if sample is not None and key != sample["__key__"]:
                yield _finish(sample)
                sample = None
            if sample is None:
                sample = {"__key__": key}
            sample[ext] = tar.extractfile(member).read()
        if sample is not None:
            yield _finish(sample)


def _finish(sample):
    if "json" in sample:
        sample["json"] = json.loads(sample["json"])
    return sample


def verify_shard(path, clips, first):
    """Checks that a shard holds exactly these clips, undamaged.

    Every member is read back: keys in order, metadata equal to the
    clips', each audio member's sha256 equal to the one recorded next to
    it, and its size equal to the source file's.

    Arguments
    ---------
    path, clips, first
        As for :func:`write_shard`.

    Returns
    -------
    str or None
        None when the shard is good, else what is wrong with it.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> sf.write(tmp + "/a.wav", np.zeros(1600), 16000)
    >>> clip = {"ID": "a", "wav": tmp + "/a.wav", "labels": ["/m/x"]}
    >>> _ = write_shard(tmp + "/s.tar", [clip], first=0)
    >>> verify_shard(tmp + "/s.tar", [clip], first=0) is None
    True
    >>> verify_shard(tmp + "/s.tar", [dict(clip, ID="b")], first=0)
    "clip 000000000: metadata {'duration': None, 'id': 'a', ..."
    """
    try:
        samples = list(read_shard(path))
    except (tarfile.TarError, OSError, ValueError) as err:
        return f"not a readable tar file ({err})"
    if len(samples) != len(clips):
        return f"{len(samples)} clips, expected {len(clips)}"
    for n, (sample, clip) in enumerate(zip(samples, clips)):
        key = _key(first + n)
        ext = _audio_ext(clip["wav"])
        if sample["__key__"] != key or set(sample) != {"__key__", "json", ext}:
            return f"clip {n}: members {sorted(sample)}, expected {key}.{ext}"
        meta = dict(sample["json"])
        sha = meta.pop("sha256", None)
        if meta != _expected_meta(clip):
            return (
                f"clip {key}: metadata {meta}, expected {_expected_meta(clip)}"
            )
        if hashlib.sha256(sample[ext]).hexdigest() != sha:
            return f"clip {key}: audio bytes do not match their sha256"
        if len(sample[ext]) != os.path.getsize(clip["wav"]):
            return f"clip {key}: audio size differs from {clip['wav']}"
    return None


def _write_or_verify(job):
    """One shard of :func:`write_shards` (runs in a worker process)."""
    path, clips, first = job
    if os.path.isfile(path):
        problem = verify_shard(path, clips, first)
        if problem is None:
            return {
                "name": os.path.basename(path),
                "first": first,
                "clips": len(clips),
                "bytes": os.path.getsize(path),
                "sha256": _file_sha256(path),
            }, "verified"
        logger.warning("Rewriting %s: %s", path, problem)
    return write_shard(path, clips, first), "written"


def write_shards(clips, save_folder, shard_size=1000, workers=1, split=None):
    """Writes a split's clips into shards, with ``index.json`` and
    ``clips.csv``; resumable and deterministic.

    Clip ``n`` goes into shard ``n // shard_size``. Shards are written in
    parallel (one process per shard at a time), each under a temporary
    name renamed when complete; temporary files left by a killed run are
    removed, complete shards found are verified (:func:`verify_shard`) and
    kept, damaged ones rewritten. The index is written last (atomically):
    its presence means the split is complete.

    Arguments
    ---------
    clips : list of dict
        ``ID``, ``wav``, ``labels`` (list of str), ``duration`` per clip,
        in the order they are stored (their positions).
    save_folder : str
        The split's shard folder (created).
    shard_size : int
        Clips per shard (the last one may hold fewer).
    workers : int
        Processes writing shards.
    split : str, optional
        Recorded in the index.

    Returns
    -------
    dict
        The index: ``num_clips``, ``shard_size``, ``shards`` (``name``,
        ``first``, ``clips``, ``bytes``, ``sha256`` each), and counts of
        shards ``written`` and ``verified`` in this call.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> clips = []
    >>> for i in range(5):
    ...     sf.write(f"{tmp}/{i}.flac", np.zeros(800 + i), 16000)
    ...     clips.append({"ID": str(i), "wav": f"{tmp}/{i}.flac", "labels": []})
    >>> index = write_shards(clips, tmp + "/shards", shard_size=2)
    >>> [s["clips"] for s in index["shards"]], index["num_clips"]
    ([2, 2, 1], 5)
    >>> write_shards(clips, tmp + "/shards", shard_size=2)["verified"]
    3
    """
    if int(shard_size) < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size!r}")
    if not clips:
        raise ValueError(f"No clips to write into {save_folder}.")
    ids = [clip["ID"] for clip in clips]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"Clip IDs must be unique; repeated: {dupes}")
    os.makedirs(save_folder, exist_ok=True)
    for stale in glob.glob(os.path.join(save_folder, f"shard-*.tar{_TMP}*")):
        os.remove(stale)
    index_path = os.path.join(save_folder, INDEX_FILE)
    if os.path.exists(index_path):
        os.remove(index_path)  # rewritten last, when every shard is good
    jobs = []
    for number, first in enumerate(range(0, len(clips), shard_size)):
        path = os.path.join(save_folder, shard_name(number))
        jobs.append((path, clips[first : first + shard_size], first))
    planned = {os.path.basename(job[0]) for job in jobs}
    for extra in glob.glob(os.path.join(save_folder, "shard-*.tar")):
        if os.path.basename(extra) not in planned:
            logger.info("Removing %s (not part of this split)", extra)
            os.remove(extra)
    workers = max(1, min(int(workers), len(jobs)))
    if workers == 1:
        results = [_write_or_verify(job) for job in jobs]
    else:
        with multiprocessing.get_context().Pool(workers) as pool:
            results = pool.map(_write_or_verify, jobs, chunksize=1)
    index = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "split": split,
        "shard_size": int(shard_size),
        "num_clips": len(clips),
        "shards": [record for record, _ in results],
    }
    clips_path = os.path.join(save_folder, CLIPS_FILE)
    with open(clips_path + _TMP, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["position", "ID", "labels", "duration", "shard"])
        for position, clip in enumerate(clips):
            writer.writerow(
                [
                    position,
                    clip["ID"],
                    ",".join(clip["labels"]),
                    clip.get("duration", ""),
                    shard_name(position // shard_size),
                ]
            )
    os.replace(clips_path + _TMP, clips_path)
    with open(index_path + _TMP, "w", encoding="utf-8") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(index_path + _TMP, index_path)
    done = [what for _, what in results]
    return dict(
        index,
        written=done.count("written"),
        verified=done.count("verified"),
    )


def load_index(folder):
    """Reads a split's ``index.json`` and checks its shards exist.

    Arguments
    ---------
    folder : str
        A split's shard folder, as :func:`write_shards` wrote it.

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


def decode_audio(data, name="<bytes>", sample_rate=16000):
    """Decodes audio file bytes as :func:`speechbrain_ast.data.audio.load_audio`
    reads the file (mono by the channel mean, float32, resampled).

    Arguments
    ---------
    data : bytes
        The compressed file (FLAC, WAV, OGG, ...).
    name : str
        Named in errors (the clip's id and shard).
    sample_rate : int
        The rate to return.

    Returns
    -------
    torch.Tensor
        ``[samples]`` float32.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.full(800, 0.5), 8000, format="FLAC")
    >>> decode_audio(buf.getvalue()).shape
    torch.Size([1600])
    """
    try:
        wav, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as err:
        raise AudioError(
            f"Cannot decode {name} ({err}): the shard is damaged; rerun "
            "make_shards.py, which verifies and rewrites damaged shards."
        ) from err
    if wav.shape[0] == 0:
        raise AudioError(f"{name} has no samples: rewrite its shard.")
    wav = torch.from_numpy(wav).mean(dim=1)
    if not torch.isfinite(wav).all():
        raise AudioError(f"{name} contains NaN/Inf samples.")
    if rate != int(sample_rate):
        wav = resample(wav, rate, int(sample_rate))
    return wav.contiguous()


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
    >>> import numpy as np, soundfile as sf
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


def buffer_shuffle(items, buffer_size, rng):
    """The order a shuffle buffer of ``buffer_size`` gives ``items``.

    As WebDataset's ``shuffle``: the buffer fills, then each new item
    replaces a uniformly chosen buffered one, which is emitted; the rest
    leaves in random order. An item moves at most ``buffer_size`` places
    forward, so a stream reader never holds more than that many clips.

    Arguments
    ---------
    items : numpy.ndarray
        The stream order.
    buffer_size : int
        0 or 1: no shuffling.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        A permutation of ``items``.

    Example
    -------
    >>> out = buffer_shuffle(np.arange(6), 3, np.random.default_rng(0))
    >>> sorted(out.tolist())
    [0, 1, 2, 3, 4, 5]
    """
    items = np.asarray(items)
    if buffer_size <= 1 or len(items) <= 1:
        return items.copy()
    out = np.empty_like(items)
    picks = rng.integers(0, buffer_size, size=len(items))
    buf, k = [], 0
    for i, item in enumerate(items.tolist()):
        if len(buf) < buffer_size:
            buf.append(item)
            continue
        j = picks[i]
        out[k] = buf[j]
        buf[j] = item
        k += 1
    out[k:] = np.asarray(buf, dtype=items.dtype)[rng.permutation(len(buf))]
    return out


def balanced_repeats(weights, rng, num_draws=None):
    """How many times each clip is drawn in one epoch of weighted
    sampling: ``floor(c) + Bernoulli(c - floor(c))`` with ``c = num_draws
    * w / sum(w)``.

    The expected count of every clip, hence of every class, equals that
    of ``num_draws`` draws with replacement from the weights (the file
    recipe's ``ReproducibleWeightedRandomSampler``), with less variance.

    Arguments
    ---------
    weights : array-like
        ``[N]`` non-negative, e.g. from ``balanced_sample_weights``.
    rng : numpy.random.Generator
    num_draws : int, optional
        Expected draws per epoch (default N).

    Returns
    -------
    numpy.ndarray
        ``[N]`` int64 counts.

    Example
    -------
    >>> balanced_repeats([1.0, 3.0], np.random.default_rng(0)).tolist()
    [0, 2]
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or (weights < 0).any() or not weights.sum() > 0:
        raise ValueError(
            "balanced weights must be a 1-d array of non-negative numbers "
            f"with a positive sum (got shape {weights.shape})"
        )
    num_draws = len(weights) if num_draws is None else int(num_draws)
    expected = num_draws * weights / weights.sum()
    base = np.floor(expected)
    extra = rng.random(len(weights)) < (expected - base)
    return (base + extra).astype(np.int64)


def _world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShardStream(IterableDataset):
    """Batches of clips streamed from a split's shards, split over DDP
    ranks and data-loader workers; yields lists of decoded samples (use
    :class:`ShardLoader`, which collates them into ``PaddedBatch``).

    The plan of an epoch is computed from ``index.json`` alone, the same
    in every process, from ``(seed, epoch)``:

    Training (``train=True``). The shard order is permuted; the clips in
    that order make the epoch's stream of ``N`` clips (with ``weights``:
    each clip repeated :func:`balanced_repeats` times, ``M`` draws). The
    stream is cut at the clip level into ``world_size`` contiguous parts
    of ``floor(M / R)`` or ``ceil(M / R)`` clips, so over all ranks every
    clip (every draw) is seen exactly once, whatever the number of shards.
    Each rank's part goes through a shuffle buffer of ``buffer_size``
    (:func:`buffer_shuffle`, seeded by ``(seed, epoch, rank)``) and is cut
    into exactly ``T = ceil(ceil(M / R) / batch_size)`` batches of near-equal
    size (at most ``batch_size``; they differ by at most one clip), the same
    ``T`` on every rank, as DDP needs equal step counts.

    Evaluation (``train=False``). Rank ``r`` gets positions ``r, r + R,
    ...`` (as :class:`speechbrain_ast.training.ddp.ShardSampler`, so the
    recipe's gathering puts scores back in position order = manifest
    order), in order, in batches of ``batch_size``; every clip once.

    Workers. Data-loader worker ``w`` of ``W`` produces the rank's batches
    ``s + w, s + w + W, ...`` (``s``: the batches skipped on resume, see
    below); PyTorch's round-robin over workers then yields the
    rank's batches in plan order, so batches do not depend on ``W``. A
    worker opens only the shards holding its clips, reads them forward
    (skipping the other members' data), keeps the compressed bytes of
    clips read but not yet due (at most about ``buffer_size``) and decodes
    each clip when its batch is made.

    Resume. :meth:`set_epoch` takes ``skip``: the batches of the epoch
    already consumed; they are neither read nor decoded, and the batches
    after them are those of an uninterrupted epoch.

    Arguments
    ---------
    folder : str
        A split's shard folder (:func:`write_shards`).
    decode : callable
        Shard sample dict -> example dict, e.g. :class:`DecodeClip`.
    batch_size : int
    train : bool
        Training plan (shuffled, equal batch counts) or evaluation plan.
    seed : int
    buffer_size : int
        Shuffle buffer, in clips (training).
    weights : array-like, optional
        ``[N]`` per-clip weights in position order (balanced sampling;
        training only).
    rank, world_size : int, optional
        Default: from ``torch.distributed`` when initialised, else 0, 1.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> clips = []
    >>> for i in range(5):
    ...     sf.write(f"{tmp}/{i}.wav", np.zeros(160), 16000)
    ...     clips.append({"ID": f"c{i}", "wav": f"{tmp}/{i}.wav", "labels": []})
    >>> _ = write_shards(clips, tmp + "/s", shard_size=2)
    >>> stream = ShardStream(
    ...     tmp + "/s", DecodeClip(), batch_size=2, train=False
    ... )
    >>> [[x["id"] for x in batch] for batch in stream]
    [['c0', 'c1'], ['c2', 'c3'], ['c4']]
    """

    def __init__(
        self,
        folder,
        decode,
        batch_size,
        train=True,
        seed=0,
        buffer_size=1000,
        weights=None,
        rank=None,
        world_size=None,
    ):
        super().__init__()
        self.folder = folder
        self.index = load_index(folder)
        self.decode = decode
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.train = bool(train)
        self.seed = int(seed)
        self.buffer_size = int(buffer_size)
        default_rank, default_world = _world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {rank} is not in 0..{self.world_size - 1}")
        shards = self.index["shards"]
        self._firsts = np.array([s["first"] for s in shards], dtype=np.int64)
        self._counts = np.array([s["clips"] for s in shards], dtype=np.int64)
        self.num_clips = int(self._counts.sum())
        if weights is not None:
            if not self.train:
                raise ValueError("weights (balanced sampling) are for training")
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (self.num_clips,):
                raise ValueError(
                    f"weights have shape {tuple(weights.shape)} but {folder} "
                    f"holds {self.num_clips} clips: compute them from "
                    "read_clip_list(folder) (position order)."
                )
        self.weights = weights
        self.epoch = 1
        self.skip = 0
        self._plan_cache = None

    def set_epoch(self, epoch, skip=0):
        """Selects the epoch to stream and how many of its batches (already
        consumed) to leave out."""
        self.epoch = int(epoch)
        self.skip = int(skip)

    def epoch_stream(self, epoch):
        """The epoch's global clip positions in stream order (before the
        split over ranks); a repeated position is a repeated draw."""
        if not self.train:
            return np.arange(self.num_clips, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch), 0])
        order = rng.permutation(len(self._counts))
        stream = np.concatenate(
            [
                np.arange(self._firsts[s], self._firsts[s] + self._counts[s])
                for s in order
            ]
        )
        if self.weights is not None:
            repeats_rng = np.random.default_rng([self.seed, int(epoch), 1])
            repeats = balanced_repeats(self.weights, repeats_rng)
            stream = np.repeat(stream, repeats[stream])
        return stream

    def plan(self, epoch):
        """This rank's epoch: ``(stream, batches)``, the positions it reads
        in stream order and its batches (arrays of positions)."""
        key = (int(epoch), self.rank, self.world_size)
        if self._plan_cache is not None and self._plan_cache[0] == key:
            return self._plan_cache[1]
        stream = self.epoch_stream(epoch)
        draws, ranks, r = len(stream), self.world_size, self.rank
        if self.train:
            part = stream[draws * r // ranks : draws * (r + 1) // ranks]
            n_batches = math.ceil(math.ceil(draws / ranks) / self.batch_size)
            if draws // ranks < n_batches:
                raise ValueError(
                    f"{draws} training clips cannot be cut into "
                    f"{n_batches} non-empty batches on each of {ranks} "
                    "ranks: use a batch size above 1, or fewer ranks."
                )
            rng = np.random.default_rng([self.seed, int(epoch), 2, r])
            order = buffer_shuffle(part, self.buffer_size, rng)
            n = len(part)
            bounds = [n * j // n_batches for j in range(n_batches + 1)]
        else:
            part = order = stream[r::ranks]
            n = len(part)
            bounds = list(range(0, n, self.batch_size)) + [n]
            if n == 0:
                bounds = [0]
        batches = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        self._plan_cache = (key, (part, batches))
        return part, batches

    def num_batches(self, epoch=None):
        """Batches of this rank in ``epoch`` (default: the set epoch)."""
        return len(self.plan(self.epoch if epoch is None else epoch)[1])

    def __len__(self):
        return self.num_batches()

    def _shard_of(self, positions):
        return np.searchsorted(self._firsts, positions, side="right") - 1

    def _read(self, stream, needed):
        """(position, sample) for the needed positions, in stream order;
        shards without needed clips are not opened."""
        shard_ids = self._shard_of(stream)
        seen = set()
        for s in shard_ids.tolist():
            if s in seen:
                continue
            seen.add(s)
            first, count = self._firsts[s], self._counts[s]
            wanted = {p for p in range(first, first + count) if p in needed}
            if not wanted:
                continue
            name = self.index["shards"][s]["name"]
            path = os.path.join(self.folder, name)
            with tarfile.open(path, "r:") as tar:
                sample, left = None, len(wanted)
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    position = int(key)
                    if sample is not None and position != sample[0]:
                        yield sample[0], _finish(sample[1])
                        left -= 1
                        sample = None
                        if left == 0:
                            break
                    if position not in wanted:
                        continue
                    if sample is None:
                        sample = (position, {"__key__": key, "__shard__": name})
                    sample[1][ext] = tar.extractfile(member).read()
                if sample is not None:
                    yield sample[0], _finish(sample[1])

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (
            (0, 1) if info is None else (info.id, info.num_workers)
        )
        stream, batches = self.plan(self.epoch)
        mine = [
            j
            for j in range(self.skip, len(batches))
            if (j - self.skip) % workers == worker  # worker 0 yields first
        ]
        if not mine:
            return
        needed_list = np.concatenate([batches[j] for j in mine])
        positions, uses = np.unique(needed_list, return_counts=True)
        uses = dict(zip(positions.tolist(), uses.tolist()))
        reader = self._read(stream, uses)
        store = {}
        for j in mine:
            examples = []
            for p in batches[j].tolist():
                while p not in store:
                    q, sample = next(reader)
                    store[q] = [sample, uses[q]]
                entry = store[p]
                examples.append(self.decode(entry[0]))
                entry[1] -= 1
                if entry[1] == 0:
                    del store[p]
            yield examples


@register_checkpoint_hooks
class ShardLoader(DataLoader):
    """A DataLoader over a :class:`ShardStream` that knows its epoch and how
    many batches of it were consumed, and saves that with the checkpoints.

    Give it to ``Brain.fit`` / ``Brain.evaluate`` as the dataset (a
    DataLoader is used as it is). Each pass takes its epoch from
    ``epoch_counter.current`` (SpeechBrain's ``EpochCounter``, set by the
    ``fit`` loop before the pass; without one, passes are counted), and a
    pass of the epoch that was interrupted leaves out the batches already
    consumed. Add it to the checkpointer's recoverables (``checkpointer.
    add_recoverable("train_loader", loader)``): with intra-epoch checkpoints
    (``ckpt_interval_steps`` / ``ckpt_interval_minutes``) a killed run
    restarted with the same command continues mid-epoch with the batches
    an uninterrupted run would have seen. Evaluation streams
    (``train=False``) always stream the whole set.

    Arguments
    ---------
    dataset : ShardStream
    num_workers : int
    epoch_counter : speechbrain.utils.epoch_loop.EpochCounter, optional
    **loader_kwargs
        Other DataLoader options (``pin_memory``, ``prefetch_factor``,
        ...). Batch size, shuffling and sampling belong to the stream.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> tmp = tempfile.mkdtemp()
    >>> clips = []
    >>> for i in range(6):
    ...     sf.write(f"{tmp}/{i}.wav", np.zeros(160 + i), 16000)
    ...     clips.append({"ID": f"c{i}", "wav": f"{tmp}/{i}.wav", "labels": []})
    >>> _ = write_shards(clips, tmp + "/s", shard_size=4)
    >>> loader = ShardLoader(ShardStream(tmp + "/s", DecodeClip(), 2, seed=1))
    >>> epoch1 = [b.id for b in loader]
    >>> sorted(sum(epoch1, [])) == [c["ID"] for c in clips]
    True
    >>> len(loader), loader.state()
    (3, {'epoch': 1, 'consumed': 3})
    """

    _FORBIDDEN = ("batch_size", "shuffle", "sampler", "batch_sampler")

    def __init__(
        self, dataset, num_workers=0, epoch_counter=None, **loader_kwargs
    ):
        if not isinstance(dataset, ShardStream):
            raise TypeError(
                f"ShardLoader streams a ShardStream, got {type(dataset)}"
            )
        bad = [k for k in self._FORBIDDEN if k in loader_kwargs]
        if bad or loader_kwargs.get("persistent_workers"):
            raise ValueError(
                f"ShardLoader options {bad or ['persistent_workers']} are not "
                "allowed: batch size, shuffling and balanced sampling are "
                "ShardStream arguments, and workers restart every pass."
            )
        loader_kwargs.setdefault("collate_fn", PaddedBatch)
        super().__init__(
            dataset, batch_size=None, num_workers=num_workers, **loader_kwargs
        )
        self.epoch_counter = epoch_counter
        self._epoch = 0
        self._consumed = 0

    def _next_epoch(self):
        """(epoch, batches to leave out) of the next pass."""
        if not self.dataset.train:
            return (self._epoch or 1), 0
        if self.epoch_counter is not None:
            epoch = int(self.epoch_counter.current)
        elif 0 < self._consumed < self.dataset.num_batches(self._epoch or 1):
            epoch = self._epoch
        else:
            epoch = self._epoch + 1
        skip = self._consumed if epoch == self._epoch else 0
        if skip >= self.dataset.num_batches(epoch):
            skip = 0
        return epoch, skip

    def __len__(self):
        return self.dataset.num_batches(self._next_epoch()[0])

    def __iter__(self):
        epoch, skip = self._next_epoch()
        self._epoch, self._consumed = epoch, skip
        self.dataset.set_epoch(epoch, skip=skip)
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state(self):
        """``{"epoch", "consumed"}``: the pass in progress (or last done)."""
        return {"epoch": self._epoch, "consumed": self._consumed}

    @mark_as_saver
    def _save(self, path):
        state = dict(
            self.state(),
            world_size=self.dataset.world_size,
            seed=self.dataset.seed,
        )
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f)

    @mark_as_loader
    def _recover(self, path, end_of_epoch=True):
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        same = (
            state["world_size"] == self.dataset.world_size
            and state["seed"] == self.dataset.seed
        )
        if state["consumed"] and not same and not end_of_epoch:
            raise ValueError(
                f"{path} was saved mid-epoch with world_size "
                f"{state['world_size']} and seed {state['seed']}, but this "
                f"run has {self.dataset.world_size} and {self.dataset.seed}: "
                "the epoch's plan differs. Resume with the same settings, or "
                "delete the intra-epoch checkpoint to restart the epoch."
            )
        self._epoch, self._consumed = state["epoch"], state["consumed"]


def make_shard_loaders(
    shards,
    encoder,
    batch_size,
    num_workers=0,
    seed=0,
    balanced=False,
    buffer_size=1000,
    epoch_counter=None,
    eval_batch_size=None,
    sample_rate=16000,
):
    """The train and eval loaders of a shard folder (``<shards>/train``,
    ``<shards>/eval``, as ``make_shards.py`` writes it).

    Arguments
    ---------
    shards : str
        The folder holding the split folders.
    encoder : speechbrain_ast.training.labels.MultiHotEncoder
        Label order of the targets.
    batch_size : int
    num_workers : int
        Data-loader workers per rank.
    seed : int
        Seeds every epoch's plan (with the epoch number).
    balanced : bool
        Balanced resampling: per-clip weights from
        :func:`speechbrain_ast.training.labels.balanced_sample_weights` over the
        clips' labels (``clips.csv``), drawn by :func:`balanced_repeats`.
    buffer_size : int
        Shuffle buffer in clips.
    epoch_counter : speechbrain.utils.epoch_loop.EpochCounter, optional
        The ``fit`` loop's counter (the training plan's epoch).
    eval_batch_size : int, optional
        Default: ``batch_size``.
    sample_rate : int

    Returns
    -------
    dict
        ``train`` and ``eval``: :class:`ShardLoader` objects to pass to
        ``Brain.fit`` / ``Brain.evaluate``; add ``train`` to the
        checkpointer's recoverables for mid-epoch resume.

    Example
    -------
    >>> import tempfile, numpy as np, soundfile as sf
    >>> from speechbrain_ast.training.labels import MultiHotEncoder
    >>> tmp = tempfile.mkdtemp()
    >>> clips = []
    >>> for i in range(4):
    ...     sf.write(f"{tmp}/{i}.wav", np.zeros(160), 16000)
    ...     clips.append(
    ...         {"ID": f"c{i}", "wav": f"{tmp}/{i}.wav", "labels": ["a"]}
    ...     )
    >>> for split in ("train", "eval"):
    ...     _ = write_shards(clips, f"{tmp}/shards/{split}", shard_size=3)
    >>> loaders = make_shard_loaders(
    ...     tmp + "/shards", MultiHotEncoder(["a", "b"]), 2, balanced=True
    ... )
    >>> batch = next(iter(loaders["eval"]))
    >>> batch.id, batch.target.data.tolist()
    (['c0', 'c1'], [[1.0, 0.0], [1.0, 0.0]])
    """
    from speechbrain_ast.training.labels import balanced_sample_weights

    decode = DecodeClip(encoder, sample_rate)
    train_folder = os.path.join(shards, "train")
    weights = None
    if balanced:
        _, label_lists = read_clip_list(train_folder)
        weights = balanced_sample_weights(label_lists, encoder).numpy()
    train = ShardStream(
        train_folder,
        decode,
        batch_size,
        train=True,
        seed=seed,
        buffer_size=buffer_size,
        weights=weights,
    )
    evaluate = ShardStream(
        os.path.join(shards, "eval"),
        decode,
        eval_batch_size or batch_size,
        train=False,
    )
    return {
        "train": ShardLoader(train, num_workers, epoch_counter=epoch_counter),
        "eval": ShardLoader(evaluate, num_workers),
    }
