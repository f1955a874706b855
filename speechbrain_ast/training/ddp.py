"""DDP evaluation that sees every example exactly once: disjoint slices of
the dataset per rank (:class:`DistributedEvalSampler`), the unwrapped
modules for evaluation, and :class:`DistributedEvaluation`, which gathers
every rank's ids, scores, targets and losses back into dataset order, so
metrics equal a single-process run.

PyTorch's ``DistributedSampler`` pads the last ranks with repeated
examples (counted twice), and SpeechBrain's Brain evaluates the whole set
on every rank: this module splits the work without either.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys
import types

import torch
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistributedEvalSampler",
    "world",
    "gather_objects",
    "unwrap",
    "unwrapped",
    "distributed_loader_kwargs",
    "DistributedEvaluation",
    "end_ddp",
]


class DistributedEvalSampler(torch.utils.data.Sampler):
    """Disjoint evaluation slices: indices ``rank``, ``rank + world_size``
    and so on.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so over all
    ranks every example is seen exactly once; slices differ in length by at
    most one. Position ``i`` of rank ``r`` is dataset index
    ``r + i * world_size``, which :class:`DistributedEvaluation` uses to
    restore the dataset order after gathering.

    Arguments
    ---------
    num_examples : int
    rank : int
    world_size : int

    Example
    -------
    >>> list(DistributedEvalSampler(5, rank=1, world_size=2))
    [1, 3]
    """

    def __init__(self, num_examples, rank, world_size):
        self.num_examples = num_examples
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        return iter(range(self.rank, self.num_examples, self.world_size))

    def __len__(self):
        return len(range(self.rank, self.num_examples, self.world_size))


def world():
    """(rank, world_size) of the initialised process group, else (0, 1).

    Example
    -------
    >>> world()
    (0, 1)
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def gather_objects(obj):
    """Every rank's ``obj`` as a list in rank order (``[obj]`` without DDP).

    Tensors inside should be on the CPU (``all_gather_object`` pickles).

    Example
    -------
    >>> gather_objects({"n": 3})
    [{'n': 3}]
    """
    rank, world_size = world()
    if world_size == 1:
        return [obj]
    out = [None] * world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def unwrap(module):
    """The module inside a DDP wrapper (evaluation must not sync ranks).

    Example
    -------
    >>> layer = torch.nn.Linear(2, 2)
    >>> unwrap(layer) is layer
    True
    """
    return (
        module.module if isinstance(module, DistributedDataParallel) else module
    )


def unwrapped(modules):
    """Every module of a Brain's ``modules`` inside its DDP wrapper, as
    attributes: what an evaluation step calls, so that ranks need not step
    together.

    Arguments
    ---------
    modules : mapping of str to torch.nn.Module
        E.g. a Brain's ``modules`` (a ``ModuleDict``).

    Returns
    -------
    types.SimpleNamespace

    Example
    -------
    >>> modules = torch.nn.ModuleDict({"classifier": torch.nn.Linear(2, 2)})
    >>> unwrapped(modules).classifier is modules["classifier"]
    True
    """
    return types.SimpleNamespace(
        **{name: unwrap(module) for name, module in modules.items()}
    )


def distributed_loader_kwargs(dataset, loader_kwargs, stage_name="evaluation"):
    """Loader options for distributed evaluation: under DDP, a
    :class:`DistributedEvalSampler` for this rank (no shuffling); unchanged
    otherwise.

    Arguments
    ---------
    dataset : torch.utils.data.Dataset
    loader_kwargs : dict
        The stage's loader options.
    stage_name : str
        For the error message.

    Returns
    -------
    dict

    Example
    -------
    >>> distributed_loader_kwargs(range(4), {"batch_size": 2})
    {'batch_size': 2}
    """
    rank, world_size = world()
    if world_size == 1:
        return loader_kwargs
    if "sampler" in loader_kwargs or "batch_sampler" in loader_kwargs:
        raise ValueError(
            "distributed evaluation sets its own sampler: remove "
            f"'sampler'/'batch_sampler' from the {stage_name} loader options"
        )
    return {
        **loader_kwargs,
        "shuffle": False,
        "sampler": DistributedEvalSampler(len(dataset), rank, world_size),
    }


class DistributedEvaluation:
    """Collects one evaluation stage's ids, scores, targets and losses on
    each rank, and gathers them from every rank in dataset order.

    Each rank evaluates the slice its :class:`DistributedEvalSampler` gives
    it (uneven slices are fine: no collective call runs per batch);
    :meth:`gather` then returns the full set on every rank, in dataset
    order, so the metrics equal those of a single-process evaluation.

    Arguments
    ---------
    n_classes : int
        Width of the scores (for a rank that evaluated nothing).

    Example
    -------
    >>> ev = DistributedEvaluation(n_classes=2)
    >>> ev.append(["a", "b"], torch.ones(2, 2), torch.zeros(2, 2), 0.5)
    >>> out = ev.gather()
    >>> out["ids"], out["loss"], out["per_rank"]
    (['a', 'b'], 0.5, [2])
    """

    def __init__(self, n_classes):
        self.n_classes = n_classes
        self.ids, self.scores, self.targets = [], [], []
        self.loss_sum = 0.0
        self.count = 0

    def append(self, ids, scores, targets, loss):
        """Adds a batch: its ids, scores and targets ``[B, C]`` and its mean
        loss (a float or a 0-d tensor)."""
        n = len(ids)
        self.ids.extend(ids)
        self.scores.append(scores.detach().float().cpu())
        self.targets.append(targets.detach().float().cpu())
        self.loss_sum += float(loss) * n
        self.count += n

    def gather(self):
        """The full evaluated set, from every rank, in dataset order.

        Returns
        -------
        dict
            ``ids`` (list), ``scores`` and ``targets`` (``[N, C]``),
            ``loss`` (mean over examples) and ``per_rank`` (examples per
            rank).
        """
        _, world_size = world()
        # a rank can have nothing to evaluate (fewer examples than ranks)
        empty = [torch.zeros(0, self.n_classes)]
        local = {
            "ids": self.ids,
            "scores": torch.cat(self.scores or empty),
            "targets": torch.cat(self.targets or empty),
            "loss_sum": self.loss_sum,
            "count": self.count,
        }
        parts = gather_objects(local)
        positions, ids, scores, targets = [], [], [], []
        for r, part in enumerate(parts):
            # position i of rank r is dataset index r + i * world_size
            positions.extend(
                r + i * world_size for i in range(len(part["ids"]))
            )
            ids.extend(part["ids"])
            scores.append(part["scores"])
            targets.append(part["targets"])
        order = sorted(range(len(ids)), key=positions.__getitem__)
        index = torch.tensor(order, dtype=torch.long)
        count = sum(p["count"] for p in parts)
        return {
            "ids": [ids[i] for i in order],
            "scores": torch.cat(scores)[index],
            "targets": torch.cat(targets)[index],
            "loss": sum(p["loss_sum"] for p in parts) / max(count, 1),
            "per_rank": [p["count"] for p in parts],
        }


def end_ddp():
    """Ends a DDP run cleanly: every rank waits for the others, the
    process group is destroyed and the process exits (status 0) with its
    logs flushed; call it last. Nothing without DDP.

    Example
    -------
    >>> end_ddp()
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        # the last statement of a DDP run: leave now, logs flushed, since
        # C++ threads torn down at interpreter exit can still abort a rank
        # ("terminate called without an active exception")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
