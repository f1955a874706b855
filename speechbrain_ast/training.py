"""What the three AST recipes share: the Brain, optimiser, schedule, DDP.

The recipes (``recipes/ESC50``, ``recipes/SpeechCommands``,
``recipes/AudioSet``) subclass :class:`ASTBrain` thinly; everything a recipe
could get subtly wrong lives here once:

* :func:`resolve_hparams_file` - ``python recipes/X/train.py hparams/ast.yaml``
  from the repository root and ``python train.py hparams/ast.yaml`` from the
  recipe folder run the same file.
* :func:`make_optimizer` / :class:`WarmupStepDecay` - the paper's Adam
  (betas 0.95/0.999, weight decay 5e-7), linear warm-up over the first
  optimiser steps and the reference's epoch-wise ``MultiStepLR`` decay.
* :class:`ASTBrain` - waveforms -> (mixup) -> Kaldi fbank -> (SpecAugment)
  -> normalisation -> (noise + roll) -> AST -> head; CE or BCE; per-epoch
  accuracy (single-label) or mAP / mean AUC / d-prime / accuracy
  (multi-label); best-by-metric checkpoints; DDP with *sharded* validation
  and test (every example evaluated exactly once over all ranks, metrics on
  the gathered set, identical to a single-process run).
* :class:`MultiHotEncoder`, :func:`balanced_sample_weights`,
  :func:`make_balanced_sampler` - AudioSet's labels and balanced sampler.
* :func:`average_checkpoints`, :func:`find_epoch_checkpoints`,
  :func:`ensemble_predictions` - weight averaging and Ensemble-S/M.

Like the rest of the library, nothing here reads YAML or parses arguments;
the recipes do.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import logging
import os
import pathlib
import warnings

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import speechbrain as sb
from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler
from speechbrain.utils.checkpoints import METAFNAME, PARAMFILE_EXT, Checkpointer
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from speechbrain_ast import metrics

__all__ = [
    "resolve_hparams_file",
    "init_from_pretrained",
    "init_recipe_model",
    "export_recipe_model",
    "make_optimizer",
    "WarmupStepDecay",
    "ASTCheckpointer",
    "ShardSampler",
    "gather_objects",
    "ASTBrain",
    "MultiHotEncoder",
    "balanced_sample_weights",
    "make_balanced_sampler",
    "average_checkpoints",
    "find_epoch_checkpoints",
    "ensemble_predictions",
]

logger = logging.getLogger(__name__)


def resolve_hparams_file(path, recipe_dir):
    """Finds a recipe's hparams file: recipe folder first, then the cwd.

    Arguments
    ---------
    path : str
        The hparams path given on the command line. Absolute paths are used
        as they are.
    recipe_dir : str
        The recipe's folder (``os.path.dirname(__file__)`` in train.py).

    Returns
    -------
    str
        The absolute path of the file used (also logged).

    Raises
    ------
    FileNotFoundError
        Naming every place tried.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> open(os.path.join(d, "hparams", "ast.yaml"), "w").close()
    >>> resolve_hparams_file("hparams/ast.yaml", d).endswith("ast.yaml")
    True
    """
    if os.path.isabs(path):
        candidates = [path]
    else:
        candidates = [
            os.path.join(os.path.abspath(recipe_dir), path),
            os.path.abspath(path),
        ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            logger.info("Using hparams file %s", candidate)
            return candidate
    raise FileNotFoundError(
        f"hparams file {path!r} not found; tried "
        + " and ".join(repr(c) for c in candidates)
        + ". Give a path relative to the recipe folder (e.g. "
        "hparams/ast.yaml), to the current directory, or an absolute path."
    )


# devices with PyTorch's fused Adam kernel for every floating dtype we train in
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_optimizer(params, lr, weight_decay=5e-7, betas=(0.95, 0.999)):
    """The paper's optimiser: Adam, betas (0.95, 0.999), weight decay 5e-7.

    It is PyTorch's fused Adam (one kernel for all parameters) when every
    parameter is a floating-point tensor on the CPU or a CUDA GPU: the same
    update to float rounding, and on the CPU several times faster than the
    default per-parameter loop (AST-Base: ~0.1 s instead of 0.4-0.8 s per
    step, a one-off timing on 2 cores). Elsewhere it is the default Adam.

    Arguments
    ---------
    params : iterable
        Parameters (or parameter groups).
    lr : float
        Base learning rate (before warm-up and decay).
    weight_decay : float
    betas : tuple of float

    Returns
    -------
    torch.optim.Adam

    Example
    -------
    >>> opt = make_optimizer(torch.nn.Linear(2, 2).parameters(), lr=1e-5)
    >>> opt.defaults["betas"], opt.defaults["weight_decay"]
    ((0.95, 0.999), 5e-07)
    >>> opt.defaults["fused"]
    True
    """

    def as_list(group_params):
        if isinstance(group_params, torch.Tensor):
            return [group_params]
        return list(group_params)

    # read here, so materialised once: parameter groups (dicts) or one
    # group of plain parameters, as torch.optim takes them
    params = as_list(params)
    if params and isinstance(params[0], dict):
        params = [dict(g, params=as_list(g["params"])) for g in params]
        tensors = [p for group in params for p in group["params"]]
    else:
        tensors = params
    fused = bool(tensors) and all(
        p.is_floating_point() and p.device.type in _FUSED_ADAM_DEVICES
        for p in tensors
    )
    return torch.optim.Adam(
        params,
        lr=lr,
        weight_decay=weight_decay,
        betas=tuple(betas),
        fused=fused or None,
    )


def init_from_pretrained(
    embedding_model,
    audioset_pretrain=False,
    imagenet_pretrain=False,
    imagenet_checkpoint=None,
    channel_reduction="mean",
    pos_embed="bilinear",
):
    """Initialises a recipe's AST lobe (in place) as the paper does.

    With ``audioset_pretrain`` (a reference ``.pth`` or a HuggingFace
    folder) the lobe gets that checkpoint's backbone, its positional
    embedding adapted to the lobe's ``input_tdim`` (the checkpoint's head
    is not used: the recipe's head stays fresh). Else, with
    ``imagenet_pretrain`` (a timm DeiT name), the DeiT weights
    (:func:`speechbrain_ast.pretrained.load_deit`). Else nothing (random
    initialisation, "from scratch").

    Arguments
    ---------
    embedding_model : speechbrain_ast.model.AST
    audioset_pretrain : str or False
    imagenet_pretrain : str or False
    imagenet_checkpoint : str, optional
        Local DeiT weights file (offline machines).
    channel_reduction : str
        ``"mean"`` or ``"sum"`` (DeiT's RGB patch conv -> 1 channel).
    pos_embed : str
        ``"bilinear"``, ``"nearest"`` or ``"reinit"`` (ImageNet only).

    Returns
    -------
    str
        What was loaded, for the log.

    Example
    -------
    >>> from speechbrain_ast.model import AST
    >>> init_from_pretrained(
    ...     AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    ... )
    'random initialisation'
    """
    from speechbrain_ast import pretrained

    if audioset_pretrain:
        if not os.path.exists(audioset_pretrain):
            raise FileNotFoundError(
                f"audioset_pretrain={audioset_pretrain!r} does not exist: "
                "give the path of an AudioSet AST checkpoint (the "
                "reference audioset_10_10_0.4593.pth or a HuggingFace AST "
                "folder), or --audioset_pretrain False"
            )
        lobe, _, _ = pretrained.build_from_checkpoint(
            audioset_pretrain, input_tdim=embedding_model.input_tdim
        )
        try:
            embedding_model.load_state_dict(lobe.state_dict())
        except RuntimeError as err:
            raise ValueError(
                f"{audioset_pretrain} does not fit the recipe's model "
                "(embed_dim, depth, num_heads, patch_size, fstride, "
                "tstride must match the checkpoint's): "
                f"{str(err)[:400]}"
            ) from err
        return f"AudioSet checkpoint {audioset_pretrain}"
    if imagenet_pretrain:
        pretrained.load_deit(
            embedding_model,
            name=imagenet_pretrain,
            checkpoint=imagenet_checkpoint,
            channel_reduction=channel_reduction,
            pos_embed=pos_embed,
        )
        return f"ImageNet {imagenet_pretrain} ({imagenet_checkpoint})"
    return "random initialisation"


class WarmupStepDecay:
    """Learning-rate schedule of the reference: warm-up, then step decay.

    ``lr(epoch, step) = lr * warmup(step) * decay_factor ** k(epoch)``, where
    ``warmup(step) = min(1, step / warmup_steps)`` for the global optimiser
    step (1-based; no warm-up when ``warmup_steps`` is 0), and ``k(epoch)``
    is the number of milestones ``decay_start, decay_start + decay_every,
    ...`` that are ``<= epoch - 1`` - exactly what the reference's
    ``MultiStepLR(range(start, 1000, every), gamma=factor)``, stepped after
    every (1-based) epoch, gives during that epoch. ESC-50: start 5, every
    1, factor 0.85 -> epochs 1-5 at ``lr``, epoch 6 at ``0.85 * lr``.

    It is stateless: :class:`ASTBrain` sets the learning rate before every
    optimiser step from the epoch and its checkpointed ``optimizer_step``,
    so a resumed run follows the same schedule.

    Arguments
    ---------
    lr : float
        Base learning rate.
    warmup_steps : int
        Linear warm-up length in optimiser steps (AudioSet: 1000), 0 = none.
    decay_start : int
        First milestone epoch of the step decay.
    decay_every : int
        Milestone spacing in epochs.
    decay_factor : float
        Multiplier per milestone (1.0 = no decay).

    Example
    -------
    >>> sched = WarmupStepDecay(1.0, decay_start=5, decay_factor=0.5)
    >>> [sched(epoch) for epoch in (1, 5, 6, 7)]
    [1.0, 1.0, 0.5, 0.25]
    >>> WarmupStepDecay(1.0, warmup_steps=10)(1, step=5)
    0.5
    """

    def __init__(
        self,
        lr,
        warmup_steps=0,
        decay_start=5,
        decay_every=1,
        decay_factor=1.0,
    ):
        if decay_every < 1 or warmup_steps < 0:
            raise ValueError(
                f"decay_every must be >= 1 (got {decay_every}) and "
                f"warmup_steps >= 0 (got {warmup_steps})"
            )
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.decay_start = decay_start
        self.decay_every = decay_every
        self.decay_factor = decay_factor

    def decay_count(self, epoch):
        """Number of decays applied during ``epoch`` (1-based)."""
        passed = epoch - 1 - self.decay_start
        return 0 if passed < 0 else passed // self.decay_every + 1

    def __call__(self, epoch, step=None):
        """The learning rate for ``epoch`` (1-based) at optimiser ``step``."""
        lr = self.lr * self.decay_factor ** self.decay_count(epoch)
        if step is not None and self.warmup_steps > 0:
            lr *= min(1.0, step / self.warmup_steps)
        return lr


class ASTCheckpointer(Checkpointer):
    """SpeechBrain's Checkpointer, safe against kills and damaged files.

    * Saving: SpeechBrain writes a checkpoint's ``CKPT.yaml`` first and the
      model and optimiser files after it, so a run killed while saving
      leaves a checkpoint that looks complete. Here the meta file is
      written under a temporary name and renamed last: only fully written
      checkpoints are listed. A folder left by a kill is ignored with a
      warning ("stopped while saving") and kept for inspection.
    * Recovering: when the chosen checkpoint cannot be loaded (a file
      missing, empty, truncated, not a checkpoint, or a pickle that is not
      plain tensors - files are read with ``weights_only``), a warning
      names the folder and the file, and the next checkpoint in order (the
      next most recent, or the next best by the key) is tried; damaged
      folders are never deleted. When none loads, a ``RuntimeError``
      lists every folder and its problem.

    Same arguments as :class:`speechbrain.utils.checkpoints.Checkpointer`.

    Example
    -------
    >>> import tempfile
    >>> ckpt = ASTCheckpointer(
    ...     tempfile.mkdtemp(), {"model": torch.nn.Linear(2, 2)}
    ... )
    >>> saved = ckpt.save_checkpoint(meta={"acc": 0.5})
    >>> sorted(p.name for p in saved.path.iterdir())
    ['CKPT.yaml', 'model.ckpt']
    >>> ckpt.recover_if_possible().meta["acc"]
    0.5
    """

    def _save_checkpoint_metafile(
        self, fpath, meta_to_include={}, end_of_epoch=True
    ):
        partial = pathlib.Path(str(fpath) + ".partial")
        return super()._save_checkpoint_metafile(
            partial, meta_to_include, end_of_epoch
        )

    def save_checkpoint(self, *args, **kwargs):
        """Saves as the parent class, then publishes the meta file."""
        saved = super().save_checkpoint(*args, **kwargs)
        if saved is not None:
            os.replace(
                saved.path / (METAFNAME + ".partial"), saved.path / METAFNAME
            )
        # every rank must list the same checkpoints afterwards: SpeechBrain's
        # deletion runs one collective per deleted checkpoint
        ddp_barrier()
        return saved

    def _warn_unfinished(self):
        for folder in sorted(self.checkpoints_dir.glob("CKPT+*")):
            unfinished = (folder / (METAFNAME + ".partial")).exists()
            if unfinished and not (folder / METAFNAME).exists():
                warnings.warn(
                    f"{folder}: the run stopped while saving this checkpoint "
                    "(it has no CKPT.yaml); it is ignored and left for you "
                    "to inspect or delete",
                    UserWarning,
                )

    def _diagnose(self, checkpoint):
        """The first unreadable file of a checkpoint, as a short text."""
        for name, obj in self.recoverables.items():
            path = checkpoint.paramfiles.get(name)
            if path is None or not os.path.exists(path):
                if not self.optional_recoverables.get(name, False):
                    return f"{name}{PARAMFILE_EXT} is missing"
                continue
            if os.path.getsize(path) == 0:
                return f"{name}{PARAMFILE_EXT} is empty"
            if hasattr(obj, "load_state_dict"):
                try:
                    torch.load(path, map_location="cpu", weights_only=True)
                except Exception as err:
                    return (
                        f"{name}{PARAMFILE_EXT} cannot be read "
                        f"({type(err).__name__}: {str(err)[:200]})"
                    )
        return None

    def recover_if_possible(
        self, importance_key=None, max_key=None, min_key=None, **kwargs
    ):
        """Loads the best loadable checkpoint (see the class docstring).

        Arguments as the parent's; returns the loaded checkpoint or None
        when there is none.
        """
        self._warn_unfinished()
        candidates = self.find_checkpoints(
            importance_key, max_key, min_key, kwargs.get("ckpt_predicate")
        )
        if not candidates:
            logger.info("Would load a checkpoint here, but none found yet.")
            return None
        failures = []
        for checkpoint in candidates:
            try:
                self.load_checkpoint(checkpoint)
                return checkpoint
            except Exception as err:
                problem = self._diagnose(checkpoint) or (
                    f"{type(err).__name__}: {str(err)[:200]}"
                )
            warnings.warn(
                f"checkpoint {checkpoint.path} cannot be loaded: {problem}. "
                "Trying an older one; the folder is kept.",
                UserWarning,
            )
            failures.append(f"{checkpoint.path}: {problem}")
        raise RuntimeError(
            f"No checkpoint in {self.checkpoints_dir} can be loaded:\n  "
            + "\n  ".join(failures)
            + "\nDelete the damaged folders, or the save folder to start "
            "over."
        )


class ShardSampler(torch.utils.data.Sampler):
    """Indices ``rank, rank + world_size, ...``: disjoint evaluation shards.

    Unlike ``DistributedSampler`` nothing is padded or repeated, so over all
    ranks every example is seen exactly once; shards differ in length by at
    most one. Position ``i`` of rank ``r`` is dataset index
    ``r + i * world_size``, which :class:`ASTBrain` uses to restore the
    dataset order after gathering.

    Arguments
    ---------
    num_examples : int
    rank : int
    world_size : int

    Example
    -------
    >>> list(ShardSampler(5, rank=1, world_size=2))
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


def _world():
    """(rank, world_size) of the initialised process group, else (0, 1)."""
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
    rank, world_size = _world()
    if world_size == 1:
        return [obj]
    out = [None] * world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def _unwrap(module):
    """The module inside a DDP wrapper (evaluation must not sync ranks)."""
    return (
        module.module if isinstance(module, DistributedDataParallel) else module
    )


class ASTBrain(sb.Brain):
    """The training loop shared by the AST recipes.

    A recipe's train.py subclasses it (usually only to add nothing, or to
    override a hook) and builds the datasets. Contract with the yaml:

    ``modules`` (trained): ``embedding_model`` (:class:`AST`) and
    ``classifier`` (:class:`ASTHead`).

    ``hparams`` used here (attributes of ``self.hparams``):

    * ``compute_features`` - :class:`KaldiFbank` with ``target_length``.
    * ``mean_var_norm`` - :class:`FixedNormalization`.
    * ``n_classes``, ``lr``, ``epoch_counter``, ``train_logger``,
      ``output_folder``; ``checkpointer`` passed to the constructor (use
      :class:`ASTCheckpointer`: safe against a kill while saving).
    * ``loss`` - ``"ce"`` (soft-target cross-entropy, ESC-50) or ``"bce"``
      (BCE-with-logits; AudioSet and Speech Commands as in the paper).
    * ``multi_label`` - metrics: False -> ``acc``; True -> ``mAP``,
      ``mAUC``, ``dprime``, ``acc``. The best checkpoint is chosen by
      :attr:`best_metric` (``acc`` or ``mAP``).
    * ``lr_scheduler`` - a :class:`WarmupStepDecay`.
    * optional (missing or null = off): ``mixup`` (:class:`Mixup`, applied
      when training and its ``prob`` > 0), ``spec_augment``
      (:class:`SpecAugment`), ``noise_roll`` (:class:`NoiseAndRoll`),
      ``ckpt_keep`` (how many of the best checkpoints by the metric are
      kept, besides the latest; default 1; a number >= the epochs keeps
      every epoch, for weight averaging),
      ``log_predictions`` (default True: the test stage saves
      ``<output_folder>/test_predictions.pt`` with ``ids``, ``scores``
      ``[N, C]`` (softmax for CE, sigmoid for BCE) and ``targets`` in
      dataset order - the input of :func:`ensemble_predictions`).

    The batch (a ``PaddedBatch``) must carry ``sig`` (waveforms at 16 kHz
    and relative lengths) and ``target``: class indices (int; ``[B]`` or
    ``[B, 1]``) or float one-/multi-hot ``[B, C]``. Override
    :meth:`get_targets` for another layout.

    Per epoch it writes the train loss, the validation loss and metrics and
    the learning rate to ``train_logger``, and one json line per stage to
    ``<output_folder>/metrics.jsonl`` (``{"stage", "epoch", "loss", <stats>}``
    - ESC-50's cross-validation reads the per-epoch validation accuracy
    there). The test stage logs ``Epoch loaded: N - test loss: ..., test
    acc: ...`` (and ``test mAP``, ``test mAUC``, ``test dprime``) to
    ``train_log.txt``.

    DDP (``torchrun --nproc_per_node=N train.py h.yaml``): training as in
    SpeechBrain (DistributedSampler); validation and test loaders get a
    :class:`ShardSampler`, each rank evaluates its own slice with the
    unwrapped modules (no collective calls, so uneven shards are fine), and
    :meth:`on_stage_end` gathers ids, scores, targets and summed losses from
    every rank; the metrics are computed on the full set on every rank, in
    dataset order, equal to a single-process evaluation.

    Hooks, small and overridable: :meth:`get_targets`, :meth:`augment_wavs`,
    :meth:`compute_feats`, :meth:`augment_feats`, :meth:`loss_fn`,
    :meth:`scores_from_logits`, :meth:`compute_stats`,
    :meth:`save_checkpoint`.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> from speechbrain.utils.epoch_loop import EpochCounter
    >>> from speechbrain.utils.train_logger import FileTrainLogger
    >>> from speechbrain_ast.features import FixedNormalization, KaldiFbank
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> out = tempfile.mkdtemp()
    >>> data = DynamicItemDataset(
    ...     {
    ...         f"clip{i}": {
    ...             "sig": torch.randn(8000) * (1 + 4 * (i % 2)),
    ...             "target": torch.tensor([i % 2]),
    ...         }
    ...         for i in range(6)
    ...     }
    ... )
    >>> data.set_output_keys(["id", "sig", "target"])
    >>> hparams = {
    ...     "compute_features": KaldiFbank(target_length=48),
    ...     "mean_var_norm": FixedNormalization(dataset="esc50"),
    ...     "n_classes": 2,
    ...     "lr": 1e-3,
    ...     "loss": "ce",
    ...     "output_folder": out,
    ...     "epoch_counter": EpochCounter(2),
    ...     "train_logger": FileTrainLogger(f"{out}/train_log.txt"),
    ...     "lr_scheduler": WarmupStepDecay(1e-3, warmup_steps=2),
    ... }
    >>> modules = {
    ...     "embedding_model": AST(
    ...         input_tdim=48, embed_dim=32, depth=1, num_heads=2
    ...     ),
    ...     "classifier": ASTHead(32, 2),
    ... }
    >>> checkpointer = ASTCheckpointer(
    ...     f"{out}/save", {**modules, "counter": hparams["epoch_counter"]}
    ... )
    >>> brain = ASTBrain(
    ...     modules,
    ...     hparams=hparams,
    ...     checkpointer=checkpointer,
    ...     run_opts={"device": "cpu", "noprogressbar": True},
    ... )
    >>> loader = {"batch_size": 4}
    >>> brain.fit(
    ...     hparams["epoch_counter"],
    ...     data,
    ...     data,
    ...     train_loader_kwargs=loader,
    ...     valid_loader_kwargs=loader,
    ... )
    >>> _ = brain.evaluate(data, max_key="acc", test_loader_kwargs=loader)
    >>> saved = torch.load(f"{out}/test_predictions.pt")
    >>> sorted(brain.last_stats), len(saved["ids"])
    (['acc', 'loss'], 6)
    """

    # -- hooks ---------------------------------------------------------------

    @property
    def multi_label(self):
        """Whether the task is multi-label (AudioSet)."""
        return bool(getattr(self.hparams, "multi_label", False))

    @property
    def best_metric(self):
        """The validation statistic that selects the best checkpoint."""
        return "mAP" if self.multi_label else "acc"

    def get_targets(self, batch):
        """Float targets ``[B, C]`` (one-hot from class indices)."""
        target = batch.target
        target = target.data if hasattr(target, "data") else target
        target = target.to(self.device)
        if not target.is_floating_point():
            target = target.reshape(target.shape[0], -1)[:, 0]
            target = F.one_hot(target.long(), self.hparams.n_classes)
        return target.float()

    def augment_wavs(self, wavs, targets, lens):
        """Mixup on waveforms and targets (training only)."""
        mixup = getattr(self.hparams, "mixup", None)
        if mixup is not None and getattr(mixup, "prob", 1.0) > 0:
            wavs, targets = mixup(wavs, targets, lens)
        return wavs, targets

    def compute_feats(self, wavs, lens):
        """Kaldi fbank, padded/cut to target_length; always in float32."""
        with torch.autocast(device_type=self.device_type, enabled=False):
            return self.hparams.compute_features(wavs.float(), lens)

    def augment_feats(self, feats, stage):
        """SpecAugment before, noise + roll after normalisation (train)."""
        train = stage == sb.Stage.TRAIN
        spec_augment = getattr(self.hparams, "spec_augment", None)
        if train and spec_augment is not None:
            feats = spec_augment(feats)
        feats = self.hparams.mean_var_norm(feats)
        noise_roll = getattr(self.hparams, "noise_roll", None)
        if train and noise_roll is not None:
            feats = noise_roll(feats)
        return feats

    def loss_fn(self, logits, targets):
        """Soft-target cross-entropy (``loss: ce``) or BCE with logits."""
        loss = getattr(self.hparams, "loss", "ce")
        if loss == "ce":
            return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        if loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        raise ValueError(f"loss must be 'ce' or 'bce', got {loss!r}")

    def scores_from_logits(self, logits):
        """Scores saved and ensembled: softmax for CE, sigmoid for BCE."""
        if getattr(self.hparams, "loss", "ce") == "ce":
            return torch.softmax(logits.float(), dim=-1)
        return torch.sigmoid(logits.float())

    def compute_stats(self, scores, targets):
        """Metrics over the full (gathered) set."""
        return metrics.classification_stats(
            scores, targets, multi_label=self.multi_label
        )

    def save_checkpoint(self, epoch, stats):
        """Keeps the best checkpoint by :attr:`best_metric` (+ the latest)."""
        self.checkpointer.save_and_keep_only(
            meta={**stats, "epoch": epoch},
            max_keys=[self.best_metric],
            num_to_keep=getattr(self.hparams, "ckpt_keep", 1),
        )

    # -- Brain methods ---------------------------------------------------------

    def init_optimizers(self):
        """Paper's Adam unless the yaml passes ``opt_class`` to the Brain."""
        if self.opt_class is None:
            self.opt_class = lambda params: make_optimizer(
                params, self.hparams.lr
            )
        super().init_optimizers()

    def compute_forward(self, batch, stage):
        """Waveforms -> logits ``[B, C]`` (and the targets, maybe mixed)."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        targets = self.get_targets(batch)
        if stage == sb.Stage.TRAIN:
            wavs, targets = self.augment_wavs(wavs, targets, lens)
            embedding_model = self.modules.embedding_model
            classifier = self.modules.classifier
        else:
            embedding_model = _unwrap(self.modules.embedding_model)
            classifier = _unwrap(self.modules.classifier)
        feats = self.compute_feats(wavs, lens)
        feats = self.augment_feats(feats, stage)
        logits = classifier(embedding_model(feats))
        return logits, targets

    def compute_objectives(self, predictions, batch, stage):
        """The loss; outside training, also collects scores for metrics."""
        logits, targets = predictions
        loss = self.loss_fn(logits.float(), targets)
        if stage != sb.Stage.TRAIN:
            n = logits.shape[0]
            self._eval["ids"].extend(batch.id)
            self._eval["scores"].append(self.scores_from_logits(logits).cpu())
            self._eval["targets"].append(targets.cpu())
            self._eval["loss_sum"] += loss.item() * n
            self._eval["count"] += n
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Sets the learning rate (warm-up and decay) for this step."""
        if should_step and getattr(self.hparams, "lr_scheduler", None):
            lr = self.hparams.lr_scheduler(
                self.hparams.epoch_counter.current, self.optimizer_step + 1
            )
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """Validation/test under DDP: a :class:`ShardSampler` per rank."""
        rank, world_size = _world()
        if stage != sb.Stage.TRAIN and world_size > 1:
            if "sampler" in loader_kwargs or "batch_sampler" in loader_kwargs:
                raise ValueError(
                    "sharded DDP evaluation sets its own sampler: remove "
                    f"'sampler'/'batch_sampler' from the {stage.name} "
                    "loader options"
                )
            loader_kwargs = {**loader_kwargs, "shuffle": False}
            loader_kwargs["sampler"] = ShardSampler(
                len(dataset), rank, world_size
            )
        return super().make_dataloader(
            dataset, stage, ckpt_prefix, **loader_kwargs
        )

    def on_stage_start(self, stage, epoch=None):
        """Resets the evaluation collectors."""
        self._eval = {
            "ids": [],
            "scores": [],
            "targets": [],
            "loss_sum": 0.0,
            "count": 0,
        }

    def gather_evaluation(self):
        """Ids, scores, targets and mean loss of the full evaluated set.

        Gathered from every rank and put back in dataset order (undoing the
        :class:`ShardSampler` interleaving). Returns a dict with ``ids``
        (list), ``scores``, ``targets`` (``[N, C]``), ``loss`` and
        ``per_rank`` (examples per rank).
        """
        rank, world_size = _world()
        # a rank can have nothing to evaluate (fewer examples than ranks)
        empty = [torch.zeros(0, self.hparams.n_classes)]
        local = {
            "ids": self._eval["ids"],
            "scores": torch.cat(self._eval["scores"] or empty),
            "targets": torch.cat(self._eval["targets"] or empty),
            "loss_sum": self._eval["loss_sum"],
            "count": self._eval["count"],
        }
        parts = gather_objects(local)
        positions, ids, scores, targets = [], [], [], []
        for r, part in enumerate(parts):
            n = len(part["ids"])
            positions.extend(r + i * world_size for i in range(n))
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

    def _log_jsonl(self, record):
        if if_main_process():
            path = os.path.join(self.hparams.output_folder, "metrics.jsonl")
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Metrics, logging, lr bookkeeping and checkpoints per stage."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        result = self.gather_evaluation()
        stats = {"loss": result["loss"]}
        stats.update(self.compute_stats(result["scores"], result["targets"]))
        logger.info(
            "%s: %d examples evaluated (per rank: %s)",
            stage.name,
            len(result["ids"]),
            result["per_rank"],
        )
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr},
                train_stats={"loss": self.train_loss},
                valid_stats=stats,
            )
            self._log_jsonl({"stage": "valid", "epoch": epoch, **stats})
            self.save_checkpoint(epoch, stats)
        else:
            self.hparams.train_logger.log_stats(
                {"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )
            self._log_jsonl(
                {
                    "stage": "test",
                    "epoch": self.hparams.epoch_counter.current,
                    "ids_evaluated": len(result["ids"]),
                    "per_rank": result["per_rank"],
                    **stats,
                }
            )
            if getattr(self.hparams, "log_predictions", True):
                self.save_predictions(result)
        self.last_stats = stats

    def save_predictions(self, result):
        """Writes ``test_predictions.pt`` (ids, scores, targets)."""
        if if_main_process():
            path = os.path.join(
                self.hparams.output_folder, "test_predictions.pt"
            )
            torch.save(
                {k: result[k] for k in ("ids", "scores", "targets")}, path
            )


class MultiHotEncoder:
    """Labels <-> float multi-hot vectors (SpeechBrain has none).

    Arguments
    ---------
    labels : list of str, optional
        The labels in index order.
    display_names : dict of str to str, optional
        Human-readable names (AudioSet: mid -> display_name).

    Example
    -------
    >>> enc = MultiHotEncoder(["/m/dog", "/m/cat", "/m/car"])
    >>> enc.encode(["/m/car", "/m/dog"])
    tensor([1., 0., 1.])
    >>> enc.decode(torch.tensor([0.2, 0.9, 0.7]))
    ['/m/cat', '/m/car']
    """

    def __init__(self, labels=None, display_names=None):
        self.labels = []
        self.index = {}
        self.display_names = dict(display_names or {})
        if labels is not None:
            self.fit(labels)

    def __len__(self):
        return len(self.labels)

    def fit(self, labels):
        """Adds labels (a flat list, or a list of label lists) in order."""
        for item in labels:
            for label in [item] if isinstance(item, str) else item:
                if label not in self.index:
                    self.index[label] = len(self.labels)
                    self.labels.append(label)
        return self

    @classmethod
    def from_class_labels_csv(cls, path):
        """Reads AudioSet's ``class_labels_indices.csv`` (index,mid,
        display_name), labels ordered by ``index``."""
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        needed = {"index", "mid", "display_name"}
        if not rows or not needed <= set(rows[0]):
            raise ValueError(
                f"{path} is not a class_labels_indices.csv: it needs the "
                "columns index, mid, display_name"
            )
        rows.sort(key=lambda row: int(row["index"]))
        return cls(
            [row["mid"] for row in rows],
            {row["mid"]: row["display_name"] for row in rows},
        )

    def encode(self, labels):
        """A list of labels -> float multi-hot ``[C]``."""
        out = torch.zeros(len(self.labels))
        for label in labels:
            if label not in self.index:
                raise KeyError(
                    f"label {label!r} is not among the {len(self)} known "
                    "labels; fit the encoder on the full label list"
                )
            out[self.index[label]] = 1.0
        return out

    def decode(self, multi_hot, threshold=0.5):
        """Labels whose value is above ``threshold``."""
        values = torch.as_tensor(multi_hot).tolist()
        return [lab for lab, v in zip(self.labels, values) if v > threshold]

    def save(self, path):
        """One line per label, ``label<TAB>display name``, in index order."""
        with open(path, "w", encoding="utf-8") as f:
            for label in self.labels:
                f.write(f"{label}\t{self.display_names.get(label, label)}\n")

    @classmethod
    def load(cls, path):
        """Reads what :meth:`save` wrote."""
        labels, names = [], {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    label, _, name = line.partition("\t")
                    labels.append(label)
                    names[label] = name or label
        return cls(labels, names)


def balanced_sample_weights(label_lists, encoder):
    """AudioSet's balanced-sampling weight per clip.

    ``weight(clip) = sum over its labels of 1000 / (class_count + 0.01)``
    with ``class_count`` the number of training clips carrying the class.

    Arguments
    ---------
    label_lists : list of list of str
        Each training clip's labels.
    encoder : MultiHotEncoder

    Returns
    -------
    torch.Tensor
        ``[N]`` float64 weights.

    Example
    -------
    >>> enc = MultiHotEncoder(["a", "b"])
    >>> balanced_sample_weights([["a"], ["a"], ["a", "b"]], enc)
    tensor([ 332.2259,  332.2259, 1322.3249], dtype=torch.float64)
    """
    multi_hot = torch.stack(
        [encoder.encode(labels) for labels in label_lists]
    ).double()
    class_weight = 1000.0 / (multi_hot.sum(0) + 0.01)
    return multi_hot @ class_weight


def make_balanced_sampler(weights, num_samples=None, seed=563375142):
    """A reproducible weighted sampler (with replacement) over the clips.

    Pass it to the train loader (``train_dataloader_opts`` ``sampler``,
    without ``shuffle``). Under DDP, SpeechBrain wraps it in a
    ``DistributedSamplerWrapper``: every rank draws the same sequence
    (same seed, ``set_epoch`` per epoch) and takes every N-th draw, so the
    ranks share one balanced epoch of ``num_samples`` draws without
    overlap.

    Arguments
    ---------
    weights : torch.Tensor
        ``[N]`` from :func:`balanced_sample_weights`.
    num_samples : int, optional
        Draws per epoch (default: N, one epoch's worth).
    seed : int

    Returns
    -------
    speechbrain.dataio.sampler.ReproducibleWeightedRandomSampler

    Example
    -------
    >>> s = make_balanced_sampler(torch.tensor([0.0, 1.0]), num_samples=3)
    >>> list(s)
    [1, 1, 1]
    """
    weights = torch.as_tensor(weights, dtype=torch.double)
    return ReproducibleWeightedRandomSampler(
        weights,
        num_samples=len(weights) if num_samples is None else num_samples,
        replacement=True,
        seed=seed,
    )


def average_checkpoints(paths):
    """Averages the weights of several checkpoints (weight averaging).

    Arguments
    ---------
    paths : list of str
        State-dict files with the same keys (e.g. ``embedding_model.ckpt``
        of the epochs to average, see :func:`find_epoch_checkpoints`).

    Returns
    -------
    dict
        Floating tensors averaged (in float64, cast back); other tensors
        (counters) taken from the last file.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> for i in (1, 3):
    ...     torch.save({"w": torch.full((2,), float(i))}, f"{d}/{i}.ckpt")
    >>> average_checkpoints([f"{d}/1.ckpt", f"{d}/3.ckpt"])["w"]
    tensor([2., 2.])
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one path")
    total, keys = None, None
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if keys is None:
            keys = set(state)
            total = {
                k: v.double() if v.is_floating_point() else v
                for k, v in state.items()
            }
            dtypes = {k: v.dtype for k, v in state.items()}
            continue
        if set(state) != keys:
            diff = sorted(keys.symmetric_difference(state))[:5]
            raise ValueError(
                f"{path} has different keys than {paths[0]} (e.g. {diff}); "
                "average checkpoints of the same model only"
            )
        for k, v in state.items():
            total[k] = total[k] + v.double() if v.is_floating_point() else v
    return {
        k: (v / len(paths)).to(dtypes[k]) if dtypes[k].is_floating_point else v
        for k, v in total.items()
    }


def find_epoch_checkpoints(checkpoints_dir, first, last):
    """The SpeechBrain checkpoint folders of epochs ``first..last``.

    Reads each ``CKPT+*/CKPT.yaml``'s ``epoch`` (written by
    :meth:`ASTBrain.save_checkpoint`); keep them with ``ckpt_keep``.

    Arguments
    ---------
    checkpoints_dir : str
    first, last : int
        Inclusive epoch range.

    Returns
    -------
    list of str
        Folders sorted by epoch, one per epoch.

    Example
    -------
    >>> import tempfile
    >>> find_epoch_checkpoints(tempfile.mkdtemp(), 1, 0)
    []
    """
    import yaml

    found = {}
    for name in sorted(os.listdir(checkpoints_dir)):
        meta_file = os.path.join(checkpoints_dir, name, "CKPT.yaml")
        if name.startswith("CKPT") and os.path.isfile(meta_file):
            with open(meta_file, encoding="utf-8") as f:
                epoch = (yaml.safe_load(f) or {}).get("epoch")
            if epoch is not None and first <= epoch <= last:
                found[epoch] = os.path.join(checkpoints_dir, name)
    missing = [e for e in range(first, last + 1) if e not in found]
    if missing:
        raise FileNotFoundError(
            f"no checkpoint for epochs {missing} in {checkpoints_dir}; "
            "keep every epoch's checkpoint (ckpt_keep) to average them"
        )
    return [found[e] for e in sorted(found)]


def ensemble_predictions(predictions):
    """Averages the scores of several models (Ensemble-S / Ensemble-M).

    Arguments
    ---------
    predictions : list of torch.Tensor
        ``[N, C]`` scores (probabilities) of each model, same examples in
        the same order (e.g. the ``scores`` of each run's
        ``test_predictions.pt``).

    Returns
    -------
    torch.Tensor
        ``[N, C]`` mean.

    Example
    -------
    >>> ensemble_predictions([torch.zeros(2, 3), torch.ones(2, 3)])[0]
    tensor([0.5000, 0.5000, 0.5000])
    """
    if not predictions:
        raise ValueError("ensemble_predictions needs at least one [N, C]")
    shapes = {tuple(p.shape) for p in predictions}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(
            f"all predictions must be [N, C] of one shape, got {shapes}"
        )
    return torch.stack([p.float() for p in predictions]).mean(0)


def init_recipe_model(hparams):
    """Initialises a recipe's lobe from its pretraining keys (in place):
    :func:`init_from_pretrained` with ``audioset_pretrain``,
    ``imagenet_pretrain``, ``imagenet_checkpoint``, ``channel_reduction``
    and ``pos_embed_adaptation``, and logs what was loaded.

    Arguments
    ---------
    hparams : dict
        The recipe's loaded hyperparameters (also ``embedding_model``).

    Returns
    -------
    str
        What was loaded.

    Example
    -------
    >>> from speechbrain_ast.model import AST
    >>> init_recipe_model(
    ...     {
    ...         "embedding_model": AST(
    ...             input_tdim=32, embed_dim=32, depth=1, num_heads=2
    ...         ),
    ...         "audioset_pretrain": False,
    ...         "imagenet_pretrain": False,
    ...         "imagenet_checkpoint": None,
    ...         "channel_reduction": "sum",
    ...         "pos_embed_adaptation": "bilinear",
    ...     }
    ... )
    'random initialisation'
    """
    loaded = init_from_pretrained(
        hparams["embedding_model"],
        audioset_pretrain=hparams["audioset_pretrain"],
        imagenet_pretrain=hparams["imagenet_pretrain"],
        imagenet_checkpoint=hparams["imagenet_checkpoint"],
        channel_reduction=hparams["channel_reduction"],
        pos_embed=hparams["pos_embed_adaptation"],
    )
    logger.info("AST initialised from: %s", loaded)
    return loaded


def export_recipe_model(hparams, labels):
    """Exports a recipe's (best, loaded) model as an EncoderClassifier
    folder, ``<output_folder>/model``, with the recipe's frontend settings.

    Re-running the same recipe re-exports into its own output folder (the
    folder belongs to the run); any other folder is refused by
    :func:`speechbrain_ast.export.export_model_folder`.

    Arguments
    ---------
    hparams : dict
        The recipe's loaded hyperparameters: ``output_folder``,
        ``embedding_model``, ``classifier``, ``target_length``,
        ``norm_mean``, ``norm_std``, ``multi_label``.
    labels : list of str
        Class names in output order.

    Returns
    -------
    str
        The folder written.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> hparams = {
    ...     "output_folder": tempfile.mkdtemp(),
    ...     "embedding_model": AST(
    ...         input_tdim=32, embed_dim=32, depth=1, num_heads=2
    ...     ),
    ...     "classifier": ASTHead(32, 2),
    ...     "target_length": 32,
    ...     "norm_mean": -6.6,
    ...     "norm_std": 5.4,
    ...     "multi_label": False,
    ... }
    >>> os.path.basename(export_recipe_model(hparams, ["dog", "rain"]))
    'model'
    """
    from speechbrain_ast.export import export_model_folder

    folder = export_model_folder(
        os.path.join(hparams["output_folder"], "model"),
        hparams["embedding_model"],
        hparams["classifier"],
        labels,
        frontend_kwargs={"target_length": hparams["target_length"]},
        norm_stats=(hparams["norm_mean"], hparams["norm_std"]),
        multi_label=hparams["multi_label"],
        overwrite=True,
    )
    logger.info("Model exported to %s", folder)
    return folder
