"""Checkpoints: SpeechBrain's Checkpointer made safe against kills and
damaged files, and the weight averaging of several epochs' checkpoints.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import pathlib
import warnings

import torch

from speechbrain.utils.checkpoints import METAFNAME, PARAMFILE_EXT, Checkpointer
from speechbrain.utils.distributed import ddp_barrier

__all__ = ["ASTCheckpointer", "average_checkpoints", "find_epoch_checkpoints"]

logger = logging.getLogger(__name__)


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
