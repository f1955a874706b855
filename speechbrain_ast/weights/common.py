"""What every weight reader shares: the imported checkpoint
(:class:`ImportedAST`), the weights-only file reader (:func:`load_weights`),
the lobe's arguments read from its tensors (:func:`lobe_config`), and,
for the readers, the model's
:func:`~speechbrain_ast.model.pos_embed.adapt_token_pos_embed` (a state
dict's positional embedding moved to another patch grid).

Authors
 * speechbrain-ast developers
"""

import dataclasses
import os
import pickle
import re
from typing import Optional

import torch

from speechbrain_ast.features import DATASET_STATS
from speechbrain_ast.model.pos_embed import adapt_token_pos_embed

__all__ = [
    "ImportedAST",
    # the model's, re-exported: the readers import it from here
    "adapt_token_pos_embed",
    "load_weights",
    "lobe_config",
    "strip_module_prefix",
]


@dataclasses.dataclass
class ImportedAST:
    """A checkpoint read into the lobe's and head's terms.

    Arguments
    ---------
    config : dict
        Keyword arguments for ``AST``.
    lobe_state : dict
        State dict for ``AST(**config)``.
    head_state : dict or None
        State dict for ``ASTHead`` (keys ``0.*``, ``1.*``); None when the
        checkpoint has no classifier.
    labels : list of str or None
        Class names in output order, when the checkpoint names them.
    target_length : int
        Number of frames the features are padded / cut to.
    norm_stats : tuple of float
        ``(mean, std)`` of the feature normalisation.
    head_norm_eps : float
        LayerNorm epsilon of the head.
    source : str
        Where it was read from.
    problem_type : str or None
        transformers' ``problem_type`` (e.g. ``multi_label_classification``)
        when the checkpoint states it.

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> imported = ImportedAST(lobe.config, lobe.state_dict())
    >>> imported.norm_stats, imported.n_classes
    ((-4.2677393, 4.5689974), None)
    """

    config: dict
    lobe_state: dict
    head_state: Optional[dict] = None
    labels: Optional[list] = None
    target_length: int = 1024
    norm_stats: tuple = DATASET_STATS["audioset"]
    head_norm_eps: float = 1e-5
    source: str = ""
    problem_type: Optional[str] = None

    @property
    def n_classes(self):
        """Number of classes of the checkpoint's head (None without one)."""
        if self.head_state is None:
            return None
        return self.head_state["1.weight"].shape[0]


def load_weights(path):
    """``torch.load`` that never unpickles code, with errors naming the file.

    Loads with ``weights_only=True``: a file that needs arbitrary Python
    objects (a pickled model, or a malicious pickle) is refused before any
    of its code runs. A missing, empty, cut-short or non-checkpoint file
    raises an error that names it instead of torch's internal one.

    Arguments
    ---------
    path : str or os.PathLike
        A file written by ``torch.save`` of tensors / plain containers.

    Returns
    -------
    object
        What was saved (usually a state dict).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is empty, damaged, not a checkpoint, or needs unpickling.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
    >>> torch.save({"w": torch.ones(2)}, path)
    >>> load_weights(path)["w"]
    tensor([1., 1.])
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"not a checkpoint")
    >>> try:
    ...     load_weights(path)
    ... except ValueError as err:
    ...     print("not a readable PyTorch checkpoint" in str(err))
    True
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist.")
    if os.path.getsize(path) == 0:
        raise ValueError(
            f"checkpoint {path!r} is empty (0 bytes): it was not written "
            "completely; re-download or re-save it."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():
            # a pickle the weights-only reader cannot follow: damaged, or
            # not written by torch.save; either way nothing is executed
            raise _damaged(
                path, error, " (it will not be unpickled)"
            ) from error
        raise ValueError(
            f"{path!r} is not a plain state dict of tensors: it needs "
            "arbitrary Python objects to load, and it will not be unpickled "
            "(that could run code). Load it in a trusted environment and "
            "re-save only its state_dict() with torch.save."
        ) from error
    except (RuntimeError, EOFError, KeyError, IndexError, TypeError) as error:
        # torch's zip reader and unpickler on a cut-short or foreign file
        raise _damaged(path, error) from error


def _damaged(path, error, note=""):
    first = " ".join(str(error).split())[:120]
    return ValueError(
        f"{path!r} is not a readable PyTorch checkpoint: it is damaged, cut "
        f"short or not a torch.save'd state dict{note} "
        f"({type(error).__name__}: {first}). Re-download or re-save it."
    )


def strip_module_prefix(state):
    """A state dict without DataParallel's ``module.`` prefix (when every
    key has it).

    Arguments
    ---------
    state : dict
        A state dict, e.g. of the reference's DataParallel checkpoints.

    Returns
    -------
    dict

    Example
    -------
    >>> sorted(strip_module_prefix({"module.v.a": 1, "module.b": 2}))
    ['b', 'v.a']
    """
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def _block_depth(state, prefix):
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in state for m in [pattern.match(k)] if m}
    if indices != set(range(len(indices))):
        raise ValueError(
            f"block indices {sorted(indices)} under {prefix!r} are not "
            "0..depth-1; the checkpoint is incomplete."
        )
    return len(indices)


def lobe_config(
    lobe_state, input_fdim, input_tdim, patch_size, fstride, tstride
):
    """The :class:`~speechbrain_ast.model.lobe.AST` arguments of a lobe state
    dict in our key layout, given its input and patch geometry: width,
    depth, heads (64 channels each, the DeiT/ViT rule), MLP ratio and QKV
    bias read from the weights.

    Arguments
    ---------
    lobe_state : dict
        The lobe's tensors (keys as ``AST.state_dict()``).
    input_fdim, input_tdim : int
        Input size it was trained at.
    patch_size : int or list of int
        Patch size (``[frequency, time]``).
    fstride, tstride : int
        Strides it was trained with.

    Returns
    -------
    dict
        Keyword arguments for ``AST``.

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> lobe = AST(input_tdim=32, embed_dim=64, depth=2, num_heads=1)
    >>> config = lobe_config(lobe.state_dict(), 128, 32, 16, 10, 10)
    >>> config["embed_dim"], config["depth"], config["num_heads"]
    (64, 2, 1)
    """
    embed_dim = lobe_state["cls_token"].shape[-1]
    return dict(
        input_fdim=input_fdim,
        input_tdim=input_tdim,
        patch_size=patch_size,
        fstride=fstride,
        tstride=tstride,
        embed_dim=embed_dim,
        depth=_block_depth(lobe_state, "blocks."),
        num_heads=max(embed_dim // 64, 1),
        mlp_ratio=lobe_state["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        qkv_bias="blocks.0.attn.qkv.bias" in lobe_state,
        norm_eps=1e-6,
    )
