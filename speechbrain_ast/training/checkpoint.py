"""Checkpoints: SpeechBrain's Checkpointer made safe against kills and
damaged files, the random state as a recoverable (so that a resumed run
draws the same augmentation as an uninterrupted one), and the weight
averaging of several epochs' checkpoints.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import pathlib
import random
import warnings

import numpy as np
import torch

from speechbrain.utils.checkpoints import (
    METAFNAME,
    PARAMFILE_EXT,
    Checkpointer,
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.distributed import ddp_barrier
from speechbrain_ast.training.ddp import world

__all__ = [
    "ASTCheckpointer",
    "RandomState",
    "average_checkpoints",
    "find_epoch_checkpoints",
]

logger = logging.getLogger(__name__)


class RandomState:
    """The process's random state as a checkpoint recoverable.

    Mixup, SpecAugment, noise, dropout and torch's samplers draw from the
    global generators: torch's CPU generator, the CUDA generators, numpy's
    global generator and Python's ``random``. A checkpoint that does not
    hold them resumes from the seeded state, so the resumed run draws other
    numbers than the interrupted one would have drawn after the same step.
    With this object among a checkpointer's recoverables every checkpoint
    holds those states (of every rank under DDP: one file, a list by rank)
    and loading it puts them back: the next draws are those the
    uninterrupted run made.

    The file holds tensors and plain numbers only, so it loads with
    ``torch.load(..., weights_only=True)``. CUDA states are saved once CUDA
    is initialised (before that nothing has drawn from them). Loading a
    file saved with another world size leaves the seeded state, with a
    warning.

    :class:`ASTCheckpointer` treats this recoverable as optional
    (checkpoints written without it load, with a warning) and, after an
    intra-epoch checkpoint, puts the state back once more when the train
    loader's iterator has started: torch's DataLoader draws its workers'
    base seed from the global generator there, a draw the uninterrupted run
    made at the start of the epoch. Draws inside dataloader workers are not
    replayed (the recipes' data pipelines draw none).

    Example
    -------
    >>> import tempfile
    >>> state = RandomState()
    >>> path = tempfile.mkdtemp() + "/random_state.ckpt"
    >>> state.save(path)
    >>> after_save = torch.rand(2), np.random.rand(), random.random()
    >>> state.load(path)
    >>> again = torch.rand(2), np.random.rand(), random.random()
    >>> torch.equal(after_save[0], again[0]), after_save[1:] == again[1:]
    (True, True)
    >>> state.restore()  # the loaded state once more: as after saving
    True
    """

    _KEYS = ("torch", "cuda", "numpy", "python")

    def __init__(self):
        self.loaded = None

    def state_dict(self):
        """This process's generator states, as tensors and plain numbers.

        Returns
        -------
        dict
            ``torch`` (the CPU state), ``cuda`` (a list, one per device;
            empty when CUDA is not initialised), ``numpy`` and ``python``.
        """
        _, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        cuda = []
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = torch.cuda.get_rng_state_all()
        return {
            "torch": torch.get_rng_state(),
            "cuda": cuda,
            "numpy": {
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "python": {
                "version": int(version),
                "internal": torch.tensor(internal, dtype=torch.int64),
                "gauss_next": gauss_next,
            },
        }

    def load_state_dict(self, state):
        """Puts the states of :meth:`state_dict` back and keeps them for
        :meth:`restore`.

        Arguments
        ---------
        state : dict
            As :meth:`state_dict` returns it.
        """
        if not isinstance(state, dict) or set(state) != set(self._KEYS):
            found = sorted(state) if isinstance(state, dict) else type(state)
            raise ValueError(
                f"not a random state: expected the keys {list(self._KEYS)}, "
                f"found {found}"
            )
        self.loaded = state
        self.restore()

    def restore(self):
        """Puts the last loaded states back again.

        Returns
        -------
        bool
            False when nothing was loaded (nothing changed).
        """
        state = self.loaded
        if state is None:
            return False
        torch.set_rng_state(state["torch"])
        cuda = state["cuda"]
        if cuda and torch.cuda.is_available():
            count = torch.cuda.device_count()
            if len(cuda) != count:
                warnings.warn(
                    f"the random state was saved with {len(cuda)} CUDA "
                    f"devices, this process has {count}: the first "
                    f"{min(len(cuda), count)} are restored",
                    UserWarning,
                )
            for device, device_state in enumerate(cuda[:count]):
                torch.cuda.set_rng_state(device_state, device)
        np_state = state["numpy"]
        np.random.set_state(
            (
                "MT19937",
                np_state["keys"].numpy().astype(np.uint32),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["cached_gaussian"],
            )
        )
        py_state = state["python"]
        random.setstate(
            (
                py_state["version"],
                tuple(py_state["internal"].tolist()),
                py_state["gauss_next"],
            )
        )
        return True

    @mark_as_saver
    def save(self, path):
        """Writes every rank's states to ``path`` (rank 0 writes; under
        DDP every rank must call it, as the checkpointer does).

        Arguments
        ---------
        path : str or pathlib.Path
        """
        rank, world_size = world()
        states = [self.state_dict()]
        if world_size > 1:
            states = [None] * world_size
            torch.distributed.all_gather_object(states, self.state_dict())
        if rank == 0:
            torch.save({"world_size": world_size, "ranks": states}, path)

    @mark_as_loader
    def load(self, path, end_of_epoch=True):
        """Puts this rank's states from ``path`` back.

        Arguments
        ---------
        path : str or pathlib.Path
            A file :meth:`save` wrote.
        end_of_epoch : bool
            Unused (the states are those of the moment of saving).
        """
        del end_of_epoch
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if not (
            isinstance(saved, dict)
            and isinstance(saved.get("ranks"), list)
            and saved.get("world_size") == len(saved["ranks"])
        ):
            raise ValueError(
                f"{path} is not a random state written by RandomState.save "
                "(a dict of world_size and ranks); delete the file to "
                "resume from the seeded random state"
            )
        rank, world_size = world()
        if saved["world_size"] != world_size:
            warnings.warn(
                f"{path} holds the random state of {saved['world_size']} "
                f"processes, this run has {world_size}: the random state "
                "is not restored, so random draws (augmentation) differ "
                "from the interrupted run's",
                UserWarning,
            )
            return
        try:
            self.load_state_dict(saved["ranks"][rank])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise ValueError(
                f"{path}: rank {rank}'s random state cannot be put back "
                f"({type(err).__name__}: {err}); delete the file to resume "
                "from the seeded random state"
            ) from err


# every rank runs the saver (it gathers all ranks' states; rank 0 writes):
# SpeechBrain's default runs savers on the main process only
RandomState = register_checkpoint_hooks(RandomState, save_on_main_only=False)


def _restore_after_iterator_start(loader, state):
    """Puts ``state`` back right after ``loader``'s next iterator is made.

    torch's DataLoader draws its workers' base seed from the global torch
    generator when an iterator is made (``DataLoader._get_iterator``); a
    run resumed mid-epoch makes that draw after loading the checkpoint,
    the uninterrupted run made it at the start of the epoch. The override
    is on the instance and removes itself on first use.
    """

    def first_iterator():
        """The class's iterator, then the random state put back."""
        del loader._get_iterator
        iterator = loader._get_iterator()
        state.restore()
        return iterator

    loader._get_iterator = first_iterator


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
    * The random state: a :class:`RandomState` recoverable is optional
      (checkpoints written without it load, with a warning) and is put
      back after every other recoverable; after an intra-epoch checkpoint
      it is put back once more when a DataLoader recoverable (the train
      loader) has made its iterator, so that the resumed run's draws from
      the next step on are the uninterrupted run's.

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

    def add_recoverable(
        self,
        name,
        obj,
        custom_load_hook=None,
        custom_save_hook=None,
        optional_load=False,
    ):
        """Registers a recoverable as the parent class; a
        :class:`RandomState` is optional.

        Arguments
        ---------
        name : str
        obj : object
        custom_load_hook, custom_save_hook : callable, optional
        optional_load : bool
            As the parent's; True for a :class:`RandomState`.
        """
        super().add_recoverable(
            name,
            obj,
            custom_load_hook,
            custom_save_hook,
            optional_load or isinstance(obj, RandomState),
        )

    def add_recoverables(self, recoverables):
        """Registers several recoverables (a mapping of names to objects),
        as the parent class; a :class:`RandomState` is optional.

        Arguments
        ---------
        recoverables : mapping
        """
        super().add_recoverables(recoverables)
        for name, obj in dict(recoverables).items():
            if isinstance(obj, RandomState):
                self.optional_recoverables[name] = True
            else:
                self.optional_recoverables.setdefault(name, False)

    def load_checkpoint(self, checkpoint):
        """Loads as the parent class, then puts the random state back
        (see the class docstring).

        Arguments
        ---------
        checkpoint : speechbrain.utils.checkpoints.Checkpoint
        """
        for obj in self.recoverables.values():
            if isinstance(obj, RandomState):
                obj.loaded = None  # restored below only if loaded now
        super().load_checkpoint(checkpoint)
        intra_epoch = not checkpoint.meta.get("end-of-epoch", True)
        for name, obj in self.recoverables.items():
            if not isinstance(obj, RandomState):
                continue
            if name not in checkpoint.paramfiles:
                warnings.warn(
                    f"{checkpoint.path} has no {name}{PARAMFILE_EXT} (saved "
                    "without the random state): the run goes on from the "
                    "seeded random state, so its random draws "
                    "(augmentation) differ from an uninterrupted run's",
                    UserWarning,
                )
                continue
            if not obj.restore() or not intra_epoch:
                continue
            for loader in self.recoverables.values():
                if isinstance(loader, torch.utils.data.DataLoader):
                    _restore_after_iterator_start(loader, obj)

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
    the recipes' ``save_and_keep_only`` meta); keep them with ``ckpt_keep``.

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
