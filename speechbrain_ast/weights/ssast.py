"""SSAST encoders (Gong, Lai, Chung & Glass, AAAI 2022) into the AST lobe.

After pretraining (:class:`speechbrain_ast.ssast.model.SSAST`) only the
encoder is kept: :func:`save_ssast_encoder` writes it (weights only, with
the lobe's ``config``) and :func:`load_ssast` loads it, or a published SSAST
checkpoint (``SSAST-Base-Patch-400.pth``, ``SSAST-Base-Frame-400.pth``),
into an AST lobe built for fine-tuning, with the positional embedding
adapted to the lobe's strides and length. :func:`read_ssast_checkpoint`
reads either file into :class:`~speechbrain_ast.weights.common.ImportedAST`
(the converter's entry point); :func:`is_ssast_checkpoint` tells them from
a supervised checkpoint.

Authors
 * speechbrain-ast developers
"""

import os

import torch

from speechbrain_ast.features import DATASET_STATS
from speechbrain_ast.model.lobe import AST, NUM_TOKENS, patch_grid
from speechbrain_ast.weights.common import (
    ImportedAST,
    adapt_token_pos_embed,
    load_weights,
    lobe_config,
    strip_module_prefix,
)

__all__ = [
    "finetune_strides",
    "is_ssast_checkpoint",
    "load_ssast",
    "read_ssast_checkpoint",
    "save_ssast_encoder",
]

# the format tag of the files written by save_ssast_encoder
ENCODER_FORMAT = "speechbrain_ast.ssast_encoder"
ENCODER_VERSION = 1


def finetune_strides(patch_size):
    """The strides the SSAST reference fine-tunes an encoder of
    ``patch_size`` (freq, time) patches with: 10 and 10 for 16 x 16 patches
    (``run_esc_patch.sh``, ``run_as.sh``), else the patch's height and half
    its width (frames of 128 x 2: 128 and 1, ``run_sc.sh``,
    ``run_esc_frame.sh``).

    Arguments
    ---------
    patch_size : tuple of int

    Returns
    -------
    fstride, tstride : int

    Example
    -------
    >>> finetune_strides((16, 16)), finetune_strides((128, 2))
    ((10, 10), (128, 1))
    """
    pf, pt = patch_size
    if (pf, pt) == (16, 16):
        return 10, 10
    return pf, max(1, pt // 2)


def save_ssast_encoder(model, path, norm_stats=DATASET_STATS["audioset"]):
    """Writes the pretrained encoder as a weights-only file.

    Arguments
    ---------
    model : SSAST or speechbrain_ast.model.lobe.AST
        The pretraining model (its encoder is saved) or a lobe.
    path : str or path-like
        Output file (e.g. ``<output_folder>/ssast_encoder.pt``).
    norm_stats : tuple of float
        ``(mean, std)`` of the feature normalisation it was trained with.

    Returns
    -------
    dict
        What was written: ``format``, ``version``, ``config`` (the AST
        keyword arguments: patch size, strides, grid, width, depth, heads),
        ``state_dict`` (the lobe's), ``norm_stats``; plain types and tensors
        only, so ``torch.load(..., weights_only=True)`` reads it.

    Example
    -------
    >>> import tempfile
    >>> lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    >>> path = os.path.join(tempfile.mkdtemp(), "ssast_encoder.pt")
    >>> save_ssast_encoder(lobe, path)["config"]["patch_size"]
    [16, 16]
    """
    model = getattr(model, "module", model)  # DDP / DataParallel
    lobe = getattr(model, "encoder", model)  # SSAST's encoder
    lobe = getattr(lobe, "module", lobe)
    if not isinstance(lobe, AST):
        raise TypeError(
            f"save_ssast_encoder needs an SSAST model or an AST lobe; got "
            f"{type(model).__name__}."
        )
    content = {
        "format": ENCODER_FORMAT,
        "version": ENCODER_VERSION,
        "config": dict(lobe.config),
        "state_dict": {
            k: v.detach().cpu().clone() for k, v in lobe.state_dict().items()
        },
        "norm_stats": [float(norm_stats[0]), float(norm_stats[1])],
    }
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    partial = path + ".partial"
    torch.save(content, partial)
    os.replace(partial, path)  # a kill while writing leaves no half file
    return content


def _from_reference(state, path, input_fdim):
    """ImportedAST from an SSAST reference state dict (prefix removed)."""
    lobe_state, unknown = {}, []
    for key, value in state.items():
        if key.startswith(("v.head.", "v.head_dist.")):
            continue  # timm DeiT's ImageNet heads, unused
        if key.startswith("v."):
            lobe_state[key[2:]] = value
        elif not key.startswith(
            ("cpredlayer.", "gpredlayer.", "mask_embed", "p_input_")
        ):
            unknown.append(key)
    if unknown:
        raise ValueError(f"unexpected keys in {path!r}: {unknown[:5]}.")
    for key in ("cls_token", "pos_embed", "patch_embed.proj.weight"):
        if key not in lobe_state:
            raise ValueError(
                f"{path!r} has no 'module.v.{key}': it is not a complete "
                "SSAST checkpoint."
            )
    fshape, tshape = (
        int(s) for s in lobe_state["patch_embed.proj.weight"].shape[-2:]
    )
    num_patches = lobe_state["pos_embed"].shape[1] - NUM_TOKENS
    if "p_input_fdim" in state and "p_input_tdim" in state:
        input_fdim = int(state["p_input_fdim"].item())
        input_tdim = int(state["p_input_tdim"].item())
        grid = patch_grid(
            input_fdim, input_tdim, (fshape, tshape), fshape, tshape
        )
        if grid[0] * grid[1] != num_patches:
            raise ValueError(
                f"{path!r}: its p_input_fdim x p_input_tdim = {input_fdim} x "
                f"{input_tdim} gives {grid[0] * grid[1]} patches of {fshape} "
                f"x {tshape}, but its pos_embed has {num_patches}; the file "
                "is inconsistent."
            )
    else:
        # pretraining patches do not overlap: the grid follows the shapes
        f_dim = input_fdim // fshape
        if f_dim < 1 or num_patches % f_dim:
            raise ValueError(
                f"{path!r}: {num_patches} positional embeddings do not fit "
                f"{f_dim} frequency rows of {fshape}-bin patches over "
                f"{input_fdim} mel bins; pass the input_fdim it was "
                "pretrained with."
            )
        input_tdim = (num_patches // f_dim) * tshape
    config = lobe_config(
        lobe_state, input_fdim, input_tdim, [fshape, tshape], fshape, tshape
    )
    return config, lobe_state, DATASET_STATS["audioset"]


def read_ssast_checkpoint(path, input_fdim=128, num_heads=None):
    """Reads an SSAST encoder: a published checkpoint or ours.

    Two formats, told apart by their keys:

    * the reference's (``SSAST-Base-Patch-400.pth``,
      ``SSAST-Base-Frame-400.pth``): a DataParallel state dict with
      ``module.v.*`` (timm DeiT layout), ``module.cpredlayer.*``,
      ``module.gpredlayer.*``, ``module.mask_embed`` and usually
      ``module.p_input_fdim`` / ``module.p_input_tdim`` (the ``module.``
      prefix is optional). The patch shape comes from the patch
      convolution, the strides equal it (no overlap while pretraining),
      and the pretraining grid from ``p_input_*`` or, without them, from
      the positional embedding's length over ``input_fdim`` bins. Width
      from the tokens, depth from the block indices, heads = width / 64
      (DeiT's) unless ``num_heads`` is given. The pretraining heads and
      mask embedding are not needed for fine-tuning and are dropped.
    * ours (:func:`save_ssast_encoder`, ``ssast_encoder.pt``): the lobe's
      state dict and its configuration.

    Arguments
    ---------
    path : str or path-like
        The file.
    input_fdim : int
        Mel bins of the pretraining input, used only for a reference file
        without ``p_input_fdim`` (128 in the reference).
    num_heads : int, optional
        Attention heads, for a reference file whose heads are not width /
        64 (the head count cannot be read from the weights).

    Returns
    -------
    speechbrain_ast.weights.common.ImportedAST
        ``config`` (AST arguments at the pretraining grid and strides),
        ``lobe_state``, no head, ``target_length`` = the pretraining
        length, ``norm_stats``. ``build_from_checkpoint(imported,
        input_tdim=..., n_classes=...)`` builds a lobe and a fresh head
        from it.

    Example
    -------
    >>> import tempfile
    >>> lobe = AST(
    ...     input_tdim=64,
    ...     patch_size=(128, 2),
    ...     fstride=128,
    ...     tstride=2,
    ...     embed_dim=64,
    ...     depth=1,
    ...     num_heads=1,
    ... )
    >>> from speechbrain_ast.ssast.model import SSAST
    >>> ssast = SSAST(lobe, mask_patch=20)
    >>> state = {
    ...     "module." + k.replace("encoder.", "v.", 1): v
    ...     for k, v in ssast.state_dict().items()
    ... }
    >>> path = os.path.join(tempfile.mkdtemp(), "SSAST-Tiny-Frame.pth")
    >>> torch.save(state, path)
    >>> imported = read_ssast_checkpoint(path)
    >>> imported.config["patch_size"], imported.config["input_tdim"]
    ([128, 2], 64)
    """
    path = os.fspath(path)
    content = load_weights(path)
    if not isinstance(content, dict):
        raise ValueError(
            f"{path!r} holds a {type(content).__name__}, not an SSAST "
            "checkpoint (a state dict) or an ssast_encoder.pt file."
        )
    if content.get("format") == ENCODER_FORMAT:
        if content.get("version") != ENCODER_VERSION:
            raise ValueError(
                f"{path!r} is an ssast_encoder file of version "
                f"{content.get('version')!r}; this library reads version "
                f"{ENCODER_VERSION}: update speechbrain_ast."
            )
        config = dict(content["config"])
        lobe_state = dict(content["state_dict"])
        default = DATASET_STATS["audioset"]
        norm_stats = tuple(content.get("norm_stats", default))
    else:
        if not all(
            isinstance(k, str) and torch.is_tensor(v)
            for k, v in content.items()
        ):
            raise ValueError(
                f"{path!r} is neither an ssast_encoder.pt file nor a state "
                "dict of tensors."
            )
        state = strip_module_prefix(content)
        if "v.cls_token" not in state:
            raise ValueError(
                f"{path!r} is not an SSAST checkpoint: no 'module.v.cls_token'"
                f" (keys start {sorted(state)[:3]}). Pass a published SSAST "
                "checkpoint (SSAST-Base-Patch-400.pth) or the ssast_encoder.pt"
                " that recipes/SSAST/pretrain.py writes."
            )
        if "mask_embed" not in state and "cpredlayer.0.weight" not in state:
            raise ValueError(
                f"{path!r} has no 'module.mask_embed' nor "
                "'module.cpredlayer.*': it looks like a supervised AST "
                "checkpoint; load it with --audioset_pretrain instead."
            )
        config, lobe_state, norm_stats = _from_reference(
            state, path, input_fdim
        )
        if num_heads is not None:
            config["num_heads"] = int(num_heads)
    return ImportedAST(
        config=config,
        lobe_state=lobe_state,
        head_state=None,
        labels=None,
        target_length=config["input_tdim"],
        norm_stats=norm_stats,
        source=path,
    )


def load_ssast(lobe, path, method="bilinear", input_fdim=128, num_heads=None):
    """Loads an SSAST encoder into an AST lobe built for fine-tuning.

    The lobe keeps its own strides and length: the patch convolution's
    weights are copied (the patch shape must be the pretraining one; the
    stride may differ, e.g. 10 for 16 x 16 patches or 1 for 128 x 2), and
    the patch positional embedding is adapted from the pretraining grid to
    the lobe's grid with :func:`speechbrain_ast.model.pos_embed.adapt_pos_embed`
    (time then frequency: centre cut when shrinking, interpolation when
    growing; the [CLS] and [DIST] embeddings are kept).

    Arguments
    ---------
    lobe : speechbrain_ast.model.lobe.AST
        The lobe to initialise, in place.
    path : str or path-like
        A published SSAST checkpoint or an ``ssast_encoder.pt`` (see
        :func:`read_ssast_checkpoint`).
    method : str
        ``"bilinear"`` (the reference) or ``"nearest"`` where an axis grows.
    input_fdim : int
        See :func:`read_ssast_checkpoint`.
    num_heads : int, optional
        See :func:`read_ssast_checkpoint`.

    Returns
    -------
    speechbrain_ast.weights.common.ImportedAST
        What was read (its ``config`` is the pretraining one).

    Example
    -------
    >>> import tempfile
    >>> pre = AST(
    ...     input_tdim=64,
    ...     fstride=16,
    ...     tstride=16,
    ...     embed_dim=32,
    ...     depth=1,
    ...     num_heads=2,
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "ssast_encoder.pt")
    >>> _ = save_ssast_encoder(pre, path)
    >>> lobe = AST(input_tdim=100, embed_dim=32, depth=1, num_heads=2)
    >>> _ = load_ssast(lobe, path)
    >>> lobe.pos_embed.shape  # 2 + 12 x 9 patches at stride 10
    torch.Size([1, 110, 32])
    """
    if not isinstance(lobe, AST):
        raise TypeError(
            f"load_ssast needs a speechbrain_ast.model.lobe.AST lobe; got "
            f"{type(lobe).__name__}."
        )
    imported = read_ssast_checkpoint(path, input_fdim, num_heads)
    config = imported.config
    state = dict(imported.lobe_state)
    src_patch = tuple(config["patch_size"])
    if tuple(lobe.patch_size) != src_patch:
        raise ValueError(
            f"{os.fspath(path)!r} was pretrained with {src_patch[0]} x "
            f"{src_patch[1]} patches but the lobe has "
            f"{lobe.patch_size[0]} x {lobe.patch_size[1]}: build it with "
            f"patch_size={list(src_patch)} (the strides may differ)."
        )
    if lobe.input_fdim != config["input_fdim"]:
        raise ValueError(
            f"{os.fspath(path)!r} was pretrained on {config['input_fdim']} "
            f"mel bins but the lobe has input_fdim={lobe.input_fdim}: use "
            "the same number of bins."
        )
    ours = lobe.config
    if (ours["embed_dim"], ours["depth"]) != (
        config["embed_dim"],
        config["depth"],
    ):
        raise ValueError(
            f"{os.fspath(path)!r} holds an encoder of width "
            f"{config['embed_dim']} and depth {config['depth']}, the lobe "
            f"has {ours['embed_dim']} and {ours['depth']}: build the lobe "
            "with the checkpoint's embed_dim, depth and num_heads."
        )
    if ours["depth"] and ours["num_heads"] != config["num_heads"]:
        raise ValueError(
            f"{os.fspath(path)!r} holds an encoder with "
            f"{config['num_heads']} attention heads, the lobe has "
            f"{ours['num_heads']}: "
            "build the lobe with the checkpoint's num_heads (or pass "
            "num_heads= for a reference file whose heads are not width / "
            "64)."
        )
    src_grid = patch_grid(
        config["input_fdim"],
        config["input_tdim"],
        src_patch,
        config["fstride"],
        config["tstride"],
    )
    state["pos_embed"] = adapt_token_pos_embed(
        state["pos_embed"], src_grid, lobe.patch_grid, method
    )
    try:
        lobe.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{os.fspath(path)!r} does not fit the lobe (num_heads, "
            f"mlp_ratio, qkv_bias must match the checkpoint's "
            f"{config['num_heads']}, {config['mlp_ratio']}, "
            f"{config['qkv_bias']}): {str(err)[:400]}"
        ) from err
    return imported


def is_ssast_checkpoint(path):
    """Whether ``path`` holds a self-supervised SSAST encoder: a reference
    state dict with ``v.*`` and ``mask_embed`` keys (with or without the
    ``module.`` prefix) or an ``ssast_encoder.pt`` of
    ``recipes/SSAST/pretrain.py``.

    Arguments
    ---------
    path : str
        A checkpoint file.

    Returns
    -------
    bool

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.pth")
    >>> torch.save({"module.v.cls_token": torch.zeros(1)}, path)
    >>> is_ssast_checkpoint(path)
    False
    >>> torch.save(
    ...     {
    ...         "module.v.cls_token": torch.zeros(1),
    ...         "module.mask_embed": torch.zeros(1),
    ...     },
    ...     path,
    ... )
    >>> is_ssast_checkpoint(path)
    True
    """
    content = load_weights(path)
    if not isinstance(content, dict):
        return False
    if content.get("format") == ENCODER_FORMAT:
        return True
    keys = {
        k[len("module.") :] if k.startswith("module.") else k
        for k in content
        if isinstance(k, str)
    }
    return "mask_embed" in keys and any(k.startswith("v.") for k in keys)
