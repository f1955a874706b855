"""ImageNet DeiT-distilled weights from timm into the AST lobe, the paper's
starting point: :func:`load_deit` (download or local file) on top of the
tensor work of :func:`deit_state_dict_for_ast` (1-channel patch conv,
positional embedding adapted from the DeiT grid, ImageNet heads dropped).

Authors
 * speechbrain-ast developers
"""

import logging
import math
import os

from speechbrain_ast.model.lobe import NUM_TOKENS
from speechbrain_ast.weights.common import adapt_token_pos_embed
from speechbrain_ast.weights.fetch import network_errors

__all__ = ["deit_state_dict_for_ast", "load_deit"]

logger = logging.getLogger(__name__)

# Name of each DeiT size by width, for error messages: (embed_dim, heads).
DEIT_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}

CHANNEL_REDUCTIONS = ("mean", "sum")
POS_EMBED_METHODS = ("bilinear", "nearest", "reinit")

# timm 0.4.5 (the reference's version) prefixed DeiT names with "vit_"
_OLD_TIMM_PREFIX = "vit_deit_"


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def _deit_size_hint():
    return ", ".join(
        f"deit_{size}_distilled_* has embed_dim={dim} and num_heads={heads}"
        for size, (dim, heads) in DEIT_SIZES.items()
    )


def deit_state_dict_for_ast(
    deit_state, model, channel_reduction="mean", pos_embed="bilinear"
):
    """Adapts a DeiT-distilled state dict to an AST lobe (tensors only).

    The 3-channel patch convolution becomes 1-channel (mean or sum over the
    input channels), the patch positional embedding is adapted from the
    DeiT's square grid to the lobe's grid (or the lobe's fresh one is kept),
    the [CLS] / [DIST] tokens, their embeddings, the blocks and the final norm
    are copied, and the ImageNet heads are dropped.

    Arguments
    ---------
    deit_state : dict
        State dict of a timm ``deit_*_distilled_patch16_*`` model.
    model : AST
        The lobe the weights are for (its shapes and its own positional
        embedding for ``"reinit"``).
    channel_reduction : str
        ``"mean"`` (the paper's words) or ``"sum"`` (the reference code) over
        the RGB input channels of the patch convolution.
    pos_embed : str
        ``"bilinear"`` (the paper), ``"nearest"``, or ``"reinit"`` (keep the
        lobe's random positional embedding; the paper's ablation).

    Returns
    -------
    dict
        A state dict that loads into ``model`` with ``strict=True``.

    Example
    -------
    >>> import timm
    >>> from speechbrain_ast.model.lobe import AST
    >>> deit = timm.create_model(
    ...     "deit_tiny_distilled_patch16_224", pretrained=False, depth=1
    ... )
    >>> lobe = AST(input_tdim=128, embed_dim=192, depth=1, num_heads=3)
    >>> state = deit_state_dict_for_ast(deit.state_dict(), lobe)
    >>> state["patch_embed.proj.weight"].shape, state["pos_embed"].shape
    (torch.Size([192, 1, 16, 16]), torch.Size([1, 146, 192]))
    >>> lobe.load_state_dict(state)
    <All keys matched successfully>
    """
    _check_choice("channel_reduction", channel_reduction, CHANNEL_REDUCTIONS)
    _check_choice("pos_embed", pos_embed, POS_EMBED_METHODS)
    if "dist_token" not in deit_state:
        raise ValueError(
            "the DeiT state dict has no dist_token: AST uses the distilled "
            "layout ([CLS] + [DIST] tokens). Use a deit_*_distilled_patch16_* "
            "model, e.g. deit_base_distilled_patch16_384."
        )
    dim = deit_state["cls_token"].shape[-1]
    if dim != model.embed_dim:
        raise ValueError(
            f"the DeiT has embed_dim={dim} but the lobe has "
            f"embed_dim={model.embed_dim}; build the lobe to match "
            f"({_deit_size_hint()})."
        )
    proj = deit_state["patch_embed.proj.weight"]
    if tuple(proj.shape[-2:]) != model.patch_size:
        raise ValueError(
            f"the DeiT's patches are {tuple(proj.shape[-2:])} but the lobe's "
            f"are {model.patch_size}; DeiT weights need patch_size=16."
        )
    theirs = {k for k in deit_state if k.startswith("blocks.")}
    ours = {k for k in model.state_dict() if k.startswith("blocks.")}
    if theirs != ours:
        raise ValueError(
            f"the DeiT's blocks do not match the lobe's (depth "
            f"{len(model.blocks)}): missing {sorted(ours - theirs)[:4]}, "
            f"unexpected {sorted(theirs - ours)[:4]}. Build the lobe with the "
            "DeiT's depth, width and mlp_ratio."
        )

    state = {}
    for key, value in deit_state.items():
        if key.startswith(("head.", "head_dist.")):
            continue  # ImageNet classifiers: the task gets a new head
        state[key] = value
    if channel_reduction == "sum":
        state["patch_embed.proj.weight"] = proj.sum(dim=1, keepdim=True)
    else:
        state["patch_embed.proj.weight"] = proj.mean(dim=1, keepdim=True)

    pos = deit_state["pos_embed"]
    if pos_embed == "reinit":
        state["pos_embed"] = model.pos_embed.detach().clone()
    else:
        num = pos.shape[1] - NUM_TOKENS
        side = math.isqrt(num)
        if side * side != num:
            raise ValueError(
                f"the DeiT's pos_embed has {num} patch positions, not a "
                "square grid; is this a DeiT-distilled state dict?"
            )
        state["pos_embed"] = adapt_token_pos_embed(
            pos, (side, side), model.patch_grid, pos_embed
        )

    expected = set(model.state_dict())
    unexpected = sorted(set(state) - expected)
    missing = sorted(expected - set(state))
    if unexpected or missing:
        raise ValueError(
            f"the DeiT state dict does not fit the lobe: missing {missing}, "
            f"unexpected {unexpected}."
        )
    return state


def _timm_model_name(name):
    if name.startswith(_OLD_TIMM_PREFIX):
        new = name[len("vit_") :]
        logger.info("timm model %r is now called %r", name, new)
        name = new
    if "deit" not in name or "distilled" not in name:
        raise ValueError(
            f"{name!r} is not a distilled DeiT: AST uses the distilled layout "
            "([CLS] + [DIST] tokens). Use deit_base_distilled_patch16_384 "
            "(the paper) or deit_{tiny,small,base}_distilled_patch16_224."
        )
    return name


def load_deit(
    model,
    name="deit_base_distilled_patch16_384",
    checkpoint=None,
    channel_reduction="mean",
    pos_embed="bilinear",
):
    """Loads ImageNet DeiT-distilled weights from timm into an AST lobe.

    Without ``checkpoint`` timm downloads the weights (online). With a local
    file (``.pth``/``.bin``/``.safetensors`` as timm saves or publishes
    them) nothing is downloaded: timm reads the file (weights only) for the
    architecture ``name``, built with the lobe's depth so that a shallower
    checkpoint also loads.

    Arguments
    ---------
    model : AST
        The lobe; its width, heads and depth must match the DeiT and its
        patches be 16 x 16.
    name : str
        timm model name; the old ``vit_deit_*`` names of timm 0.4.5 are
        accepted.
    checkpoint : str or path-like, optional
        Local weights file, for machines without network access.
    channel_reduction : str
        ``"mean"`` or ``"sum"`` over the patch conv's RGB channels.
    pos_embed : str
        ``"bilinear"``, ``"nearest"`` or ``"reinit"``.

    Returns
    -------
    AST
        ``model``, with the weights loaded (strictly).

    Example
    -------
    >>> import tempfile
    >>> import timm
    >>> import torch
    >>> from speechbrain_ast.model.lobe import AST
    >>> deit = timm.create_model(
    ...     "deit_tiny_distilled_patch16_224", pretrained=False, depth=1
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "deit.pth")
    >>> torch.save(deit.state_dict(), path)
    >>> lobe = AST(input_tdim=128, embed_dim=192, depth=1, num_heads=3)
    >>> lobe = load_deit(
    ...     lobe, "deit_tiny_distilled_patch16_224", checkpoint=path
    ... )
    >>> torch.equal(lobe.cls_token, deit.cls_token)
    True
    """
    _check_choice("channel_reduction", channel_reduction, CHANNEL_REDUCTIONS)
    _check_choice("pos_embed", pos_embed, POS_EMBED_METHODS)
    import timm

    name = _timm_model_name(name)
    kwargs = dict(pretrained=True)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(
                f"DeiT checkpoint {checkpoint!r} does not exist; pass the path "
                f"of the downloaded {name} weights."
            )
        kwargs["pretrained_cfg_overlay"] = dict(file=checkpoint)
        kwargs["depth"] = len(model.blocks)
    try:
        deit = timm.create_model(name, **kwargs)
    except network_errors() as error:
        if checkpoint is not None:
            raise
        raise RuntimeError(
            f"could not download the ImageNet weights of timm's {name!r} "
            f"({type(error).__name__}: {error}). Offline? Download them on a "
            f"machine with network access (timm.create_model({name!r}, "
            "pretrained=True) caches them, or fetch the file from the "
            f"HuggingFace hub repository timm/{name}) and pass "
            "checkpoint=PATH to load_deit."
        ) from error
    except RuntimeError as error:
        if checkpoint is None or "state_dict" not in str(error):
            raise
        raise ValueError(
            f"{checkpoint!r} does not fit timm's {name!r} with the lobe's "
            f"depth {len(model.blocks)}: {error}"
        ) from error

    heads = deit.blocks[0].attn.num_heads if len(deit.blocks) else None
    ours = model.config["num_heads"] if len(model.blocks) else None
    if (
        deit.embed_dim != model.embed_dim
        or heads != ours
        or len(deit.blocks) != len(model.blocks)
    ):
        raise ValueError(
            f"timm's {name} (embed_dim={deit.embed_dim}, depth="
            f"{len(deit.blocks)}, num_heads={heads}) does not match the lobe "
            f"(embed_dim={model.embed_dim}, depth={len(model.blocks)}, "
            f"num_heads={ours}); {_deit_size_hint()}, depth 12."
        )
    deit_patch = tuple(deit.patch_embed.proj.kernel_size)
    if deit_patch != (16, 16) or model.patch_size != (16, 16):
        raise ValueError(
            f"DeiT weights need 16 x 16 patches on both sides; {name} has "
            f"{deit_patch}, the lobe {model.patch_size}. Build the lobe with "
            "patch_size=16."
        )
    state = deit_state_dict_for_ast(
        deit.state_dict(), model, channel_reduction, pos_embed
    )
    model.load_state_dict(state, strict=True)
    return model
