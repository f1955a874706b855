"""The DataLoader of a :class:`~speechbrain_ast.data.shards.stream.
ShardStream` that saves its place in the epoch with the checkpoints
(:class:`ShardLoader`), and the train and eval loaders of a shard folder
(:func:`make_shard_loaders`).

Authors
 * speechbrain-ast developers
"""

import json
import os

from torch.utils.data import DataLoader

from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain_ast.data.shards.read import DecodeClip, read_clip_list
from speechbrain_ast.data.shards.stream import ShardStream

__all__ = ["ShardLoader", "make_shard_loaders"]


@register_checkpoint_hooks
class ShardLoader(DataLoader):
    """A DataLoader over a :class:`ShardStream` that knows its epoch and how
    many batches of it were consumed, and saves that with the checkpoints.

    Ours because SpeechBrain's ``SaveableDataLoader`` cannot save a place
    in an ``IterableDataset`` (it says to save it on the dataset).

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
    >>> from speechbrain_ast.data.shards import write_shards
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
    >>> from speechbrain_ast.data.shards import write_shards
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
