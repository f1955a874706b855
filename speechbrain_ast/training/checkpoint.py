"""Checkpoints safe against kills and damaged files
(:class:`SafeCheckpointer`, what SpeechBrain's Checkpointer lacks), and the
mean weights of a range of epochs loaded for evaluation
(:meth:`SafeCheckpointer.recover_epoch_average`, averaged by SpeechBrain's
``average_checkpoints``).

Authors
 * speechbrain-ast developers
"""

import logging
import os
import pathlib
import warnings

import torch

from speechbrain.utils.checkpoints import (
    METAFNAME,
    PARAMFILE_EXT,
    Checkpointer,
    average_checkpoints,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process
from speechbrain_ast.training.ddp import unwrap
from speechbrain_ast.training.random_state import RandomState

__all__ = [
    "SafeCheckpointer",
]

logger = logging.getLogger(__name__)


class SafeCheckpointer(Checkpointer):
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
    >>> ckpt = SafeCheckpointer(
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
                    obj.restore_after_iterator_start(loader)

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

    def recover_epoch_average(self, first, last, modules, save_folder=None):
        """Loads into ``modules`` the mean weights of the checkpoints of
        epochs ``first`` to ``last`` (SpeechBrain's
        ``average_checkpoints``), to evaluate the averaged model.

        Arguments
        ---------
        first, last : int
            The epochs, both included, as the ``epoch`` of each
            checkpoint's meta data.
        modules : mapping of str to torch.nn.Module
            The recoverables to average, by name (e.g. a Brain's
            ``modules``); DDP wrappers are looked through.
        save_folder : str, optional
            Where the main process also writes the averaged state dicts,
            ``<save_folder>/averaged_epochs_<first>-<last>/<name>.ckpt``.

        Returns
        -------
        list of speechbrain.utils.checkpoints.Checkpoint
            The averaged checkpoints.

        Raises
        ------
        ValueError
            Unless there is one checkpoint per epoch.

        Example
        -------
        >>> import tempfile
        >>> model = torch.nn.Linear(1, 1, bias=False)
        >>> ckpt = SafeCheckpointer(tempfile.mkdtemp(), {"model": model})
        >>> for epoch in (1, 2):
        ...     _ = model.weight.data.fill_(float(epoch))
        ...     _ = ckpt.save_checkpoint(meta={"epoch": epoch})
        >>> _ = ckpt.recover_epoch_average(1, 2, {"model": model})
        >>> model.weight.item()
        1.5
        """
        checkpoints = self.find_checkpoints(
            ckpt_predicate=lambda c: first <= c.meta.get("epoch", 0) <= last
        )
        if len(checkpoints) != last - first + 1:
            raise ValueError(
                f"weight averaging of epochs {first}-{last} needs one "
                f"checkpoint per epoch, found {len(checkpoints)} in "
                f"{self.checkpoints_dir}: keep them (ckpt_keep)."
            )
        out = None
        if save_folder is not None:
            out = os.path.join(save_folder, f"averaged_epochs_{first}-{last}")
            os.makedirs(out, exist_ok=True)
        for name, module in modules.items():
            state = average_checkpoints(checkpoints, name)
            unwrap(module).load_state_dict(state)
            if out is not None and if_main_process():
                torch.save(state, os.path.join(out, f"{name}.ckpt"))
        return checkpoints
