"""The process's random state as a checkpoint recoverable: torch's CPU and
CUDA generators, numpy's and Python's, of every rank under DDP, so that a
resumed run draws the augmentation of an uninterrupted one.

Authors
 * speechbrain-ast developers
"""

import random
import warnings

import numpy as np
import torch

from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain_ast.training.ddp import world

__all__ = ["RandomState"]


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

    After a checkpoint saved mid-epoch, :meth:`restore_after_iterator_start`
    puts the state back once more when the train loader's iterator has
    started: torch's DataLoader draws its workers' base seed from the
    global generator there, a draw the uninterrupted run made at the start
    of the epoch (``SafeCheckpointer`` does this, and treats this
    recoverable as optional). Draws inside dataloader workers are not
    replayed (the recipes' pipelines draw none).

    SpeechBrain's ``SaveableGenerator`` is not enough: it holds torch's
    generators only (not numpy's nor Python's), and its saver runs on the
    main process only, so under DDP every rank resumes with rank 0's
    stream; nor does it undo the DataLoader's seed draw.

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

    def restore_after_iterator_start(self, loader):
        """Puts the loaded state back right after ``loader``'s next
        iterator is made (after a mid-epoch checkpoint).

        torch's DataLoader draws its workers' base seed from the global
        torch generator when an iterator is made
        (``DataLoader._get_iterator``); a run resumed mid-epoch makes that
        draw after loading the checkpoint, the uninterrupted run made it at
        the start of the epoch. The override is on the instance and removes
        itself on first use.

        Arguments
        ---------
        loader : torch.utils.data.DataLoader
            The train loader.

        Example
        -------
        >>> loader = torch.utils.data.DataLoader(range(4))
        >>> RandomState().restore_after_iterator_start(loader)
        >>> "_get_iterator" in vars(loader)
        True
        >>> _ = iter(loader)
        >>> "_get_iterator" in vars(loader)
        False
        """

        def first_iterator():
            """The class's iterator, then the random state put back."""
            del loader._get_iterator
            iterator = loader._get_iterator()
            self.restore()
            return iterator

        loader._get_iterator = first_iterator

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
