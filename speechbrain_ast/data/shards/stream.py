"""Streaming a split's shards for training and evaluation: the plan of an
epoch (which clips, in which order and batches, on which DDP rank and
data-loader worker), computed from ``index.json`` alone, and the reading
that follows it (:class:`ShardStream`); balanced resampling
(:func:`balanced_repeats`).

The plan is ours because ``webdataset.WebDataset`` splits shards, not
clips, over ranks and workers: it cannot give every clip exactly once per
epoch with equal step counts, nor resume mid-epoch with the same batches.
Its parts are used where they fit: its tar reading
(:func:`~speechbrain_ast.data.shards.read.read_shard`) and its shuffle
buffer (``webdataset.filters.shuffle``, seeded).

Authors
 * speechbrain-ast developers
"""

import math
import os
import random

import numpy as np
import torch
from torch.utils.data import IterableDataset
from webdataset.filters import shuffle

from speechbrain_ast.data.shards.read import load_index, read_shard
from speechbrain_ast.training.ddp import world

__all__ = ["ShardStream", "balanced_repeats"]


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


class ShardStream(IterableDataset):
    """Batches of clips streamed from a split's shards, split over DDP
    ranks and data-loader workers; yields lists of decoded samples (use
    :class:`~speechbrain_ast.data.shards.loader.ShardLoader`, which
    collates them into ``PaddedBatch``).

    The plan of an epoch is computed from ``index.json`` alone, the same
    in every process, from ``(seed, epoch)``:

    Training (``train=True``). The shard order is permuted; the clips in
    that order make the epoch's stream of ``N`` clips (with ``weights``:
    each clip repeated :func:`balanced_repeats` times, ``M`` draws). The
    stream is cut at the clip level into ``world_size`` contiguous parts
    of ``floor(M / R)`` or ``ceil(M / R)`` clips, so over all ranks every
    clip (every draw) is seen exactly once, whatever the number of shards.
    Each rank's part goes through a shuffle buffer of ``buffer_size``
    (``webdataset.filters.shuffle``, seeded by ``(seed, epoch, rank)``;
    a clip leaves it at most ``buffer_size`` places early) and is cut
    into exactly ``T = ceil(ceil(M / R) / batch_size)`` batches of near-equal
    size (at most ``batch_size``; they differ by at most one clip), the same
    ``T`` on every rank, as DDP needs equal step counts.

    Evaluation (``train=False``). Rank ``r`` gets positions ``r, r + R,
    ...`` (as :class:`speechbrain_ast.training.ddp.DistributedEvalSampler`,
    so the recipe's gathering puts scores back in position order =
    manifest order), in order, in batches of ``batch_size``; every clip
    once.

    Workers. Data-loader worker ``w`` of ``W`` produces the rank's batches
    ``s + w, s + w + W, ...`` (``s``: the batches skipped on resume, see
    below); PyTorch's round-robin over workers then yields the
    rank's batches in plan order, so batches do not depend on ``W``. A
    worker opens only the shards holding its clips, reads them forward
    (keeping only its own clips' members), keeps the compressed bytes of
    clips read but not yet due (at most about ``buffer_size``) and decodes
    each clip when its batch is made.

    Resume. :meth:`set_epoch` takes ``skip``: the batches of the epoch
    already consumed; they are neither read nor decoded, and the batches
    after them are those of an uninterrupted epoch.

    Arguments
    ---------
    folder : str
        A split's shard folder (written by
        :func:`~speechbrain_ast.data.shards.write.write_shards`).
    decode : callable
        Shard sample dict -> example dict, e.g.
        :class:`~speechbrain_ast.data.shards.read.DecodeClip`.
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
    >>> from speechbrain_ast.data.shards import DecodeClip, write_shards
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
        default_rank, default_world = world()
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
            shuffled = shuffle(
                self.buffer_size,
                initial=self.buffer_size,
                rng=random.Random(int(rng.integers(2**63))),
            )(iter(part.tolist()))
            order = np.fromiter(shuffled, dtype=np.int64, count=len(part))
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
        seen = set()
        for s in self._shard_of(stream).tolist():
            if s in seen:
                continue
            seen.add(s)
            first, count = self._firsts[s], self._counts[s]
            wanted = {p for p in range(first, first + count) if p in needed}
            if not wanted:
                continue
            name = self.index["shards"][s]["name"]
            path = os.path.join(self.folder, name)
            for sample in read_shard(path, wanted):
                sample["__shard__"] = name
                yield int(sample["__key__"]), sample

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
