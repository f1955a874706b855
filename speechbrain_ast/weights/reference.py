"""The reference implementation's checkpoints (``ast_models``, e.g.
``audioset_10_10_0.4593.pth``) read into the lobe's and head's terms:
:func:`read_reference_checkpoint`. The architecture is read from the
tensors; the strides from the number of patches.

Authors
 * speechbrain-ast developers
"""

import os

import torch

from speechbrain_ast.features import DATASET_STATS
from speechbrain_ast.model.lobe import NUM_TOKENS, patch_grid
from speechbrain_ast.weights.common import (
    ImportedAST,
    load_weights,
    lobe_config,
    strip_module_prefix,
)

__all__ = ["PUBLISHED_STRIDES", "read_reference_checkpoint"]

# Strides of the published reference checkpoints (AudioSet: 10, 12, 14 and
# 16; ESC-50 and Speech Commands: 10). A stride inferred from a checkpoint
# read at the default length and outside these means the length is wrong.
PUBLISHED_STRIDES = (10, 12, 14, 16)

# Frames a reference checkpoint is read at when no length is given (AudioSet)
DEFAULT_INPUT_TDIM = 1024


def _infer_strides(
    num_patches, kernel, input_fdim, input_tdim, fstride, tstride
):
    """Strides that give ``num_patches`` patches (square when both unknown)."""

    def count(fs, ts):
        """Number of patches with strides ``fs``, ``ts``."""
        f_dim, t_dim = patch_grid(input_fdim, input_tdim, kernel, fs, ts)
        return f_dim * t_dim

    if fstride is not None and tstride is not None:
        candidates = [(fstride, tstride)]
    elif fstride is not None:
        candidates = [(fstride, s) for s in range(1, input_tdim + 1)]
    elif tstride is not None:
        candidates = [(s, tstride) for s in range(1, input_fdim + 1)]
    else:
        top = max(input_fdim, input_tdim)
        candidates = [(s, s) for s in range(1, top + 1)]
    found = [c for c in candidates if count(*c) == num_patches]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"no (fstride, tstride) among {candidates[:1]}..{candidates[-1:]} "
            f"gives the checkpoint's {num_patches} patches for a {input_fdim} "
            f"x {input_tdim} input with {kernel} patches; give the strides "
            "and input size it was trained with: convert's --fstride, "
            "--tstride, --input-fdim, --input-tdim (the arguments fstride, "
            "tstride, input_fdim, input_tdim in Python; AudioSet: 10, 10, "
            "128, 1024)."
        )
    raise ValueError(
        f"several strides fit the checkpoint's {num_patches} patches: "
        f"{found}; give both: convert's --fstride and --tstride (fstride "
        "and tstride in Python)."
    )


def read_reference_checkpoint(
    path, fstride=None, tstride=None, input_fdim=128, input_tdim=None
):
    """Reads a checkpoint of the reference implementation (``ast_models``).

    The file is a (DataParallel) state dict: ``module.v.*`` for the DeiT-style
    backbone (its unused ``v.head``/``v.head_dist`` are dropped) and
    ``module.mlp_head.0/1.*`` for the head; the ``module.`` prefix is
    optional. The architecture is read from the tensors: width from
    ``cls_token``, depth from the block indices, heads = width / 64, patch
    size from the patch conv, and the strides from the number of patches for
    the given input size when not given. Without ``input_tdim`` the file is
    read at 1024 frames (AudioSet); a stride inferred then that no published
    checkpoint uses (``PUBLISHED_STRIDES``) means it was trained at another
    length, and is refused: e.g. a 120-frame checkpoint would otherwise fit
    strides (31, 31) at 1024 frames and give wrong outputs.

    Arguments
    ---------
    path : str or path-like
        The ``.pth`` file (e.g. ``audioset_10_10_0.4593.pth``).
    fstride : int, optional
        Frequency stride it was trained with (inferred when None).
    tstride : int, optional
        Time stride it was trained with (inferred when None).
    input_fdim : int
        Mel bins it was trained with.
    input_tdim : int, optional
        Frames it was trained with (1024 for AudioSet, the default; ESC-50
        512, Speech Commands 128).

    Returns
    -------
    ImportedAST
        Backbone LayerNorm eps 1e-6 and head eps 1e-5 as the reference;
        AudioSet normalisation statistics; no labels.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.model.lobe import AST
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    >>> path = os.path.join(tempfile.mkdtemp(), "ast.pth")
    >>> torch.save(state, path)
    >>> imported = read_reference_checkpoint(path, input_tdim=128)
    >>> imported.config["fstride"], imported.config["depth"]
    (10, 1)
    """
    state = load_weights(path)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()
    ):
        raise ValueError(
            f"{os.fspath(path)!r} does not hold a state dict of tensors."
        )
    state = strip_module_prefix(state)
    if "v.cls_token" not in state:
        raise ValueError(
            f"{os.fspath(path)!r} is not a reference AST checkpoint: no "
            f"'module.v.cls_token' (keys start {sorted(state)[:3]}). For a "
            "HuggingFace folder use read_hf_checkpoint."
        )
    lobe_state, head_state, unknown = {}, {}, []
    for key, value in state.items():
        if key.startswith(("v.head.", "v.head_dist.")):
            continue  # DeiT's ImageNet heads, unused by AST
        if key.startswith("v."):
            lobe_state[key[2:]] = value
        elif key.startswith("mlp_head."):
            head_state[key[len("mlp_head.") :]] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"unexpected keys in {os.fspath(path)!r}: {unknown[:5]}."
        )

    proj = lobe_state["patch_embed.proj.weight"]
    kernel = tuple(proj.shape[-2:])
    num_patches = lobe_state["pos_embed"].shape[1] - NUM_TOKENS
    length_given = input_tdim is not None
    if not length_given:
        input_tdim = DEFAULT_INPUT_TDIM
    given = (fstride, tstride)
    try:
        fstride, tstride = _infer_strides(
            num_patches, kernel, input_fdim, input_tdim, fstride, tstride
        )
    except ValueError as err:
        if length_given:
            raise
        raise ValueError(
            f"{os.fspath(path)!r}: {err} It was read at the default "
            f"{input_tdim} frames: if it was trained at another length, give "
            "it: convert's --input-tdim N (input_tdim=N in Python)."
        ) from None
    odd = [
        s
        for s, g in zip((fstride, tstride), given)
        if g is None and s not in PUBLISHED_STRIDES
    ]
    if not length_given and odd:
        raise ValueError(
            f"{os.fspath(path)!r}: read at {input_tdim} frames (the default), "
            f"its {num_patches} patches fit strides ({fstride}, {tstride}), "
            "which no published AST checkpoint uses (they use "
            f"{', '.join(map(str, PUBLISHED_STRIDES))}): it was trained at "
            "another length. Give the frames it was trained with: convert's "
            "--input-tdim N (input_tdim=N in Python; ESC-50 512, Speech "
            "Commands 128), and --fstride/--tstride if they are not square."
        )
    config = lobe_config(
        lobe_state, input_fdim, input_tdim, kernel, fstride, tstride
    )
    return ImportedAST(
        config=config,
        lobe_state=lobe_state,
        head_state=head_state or None,
        labels=None,
        target_length=input_tdim,
        norm_stats=DATASET_STATS["audioset"],
        head_norm_eps=1e-5,
        source=os.fspath(path),
    )
