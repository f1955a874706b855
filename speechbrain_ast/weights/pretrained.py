"""Pretrained weights into the AST lobe and head.

Three sources:

* ImageNet DeiT (distilled) from timm, the paper's starting point:
  ``load_deit`` (download or local file) on top of the pure tensor work of
  ``deit_state_dict_for_ast`` (1-channel patch conv, positional embedding
  adapted from the DeiT grid with ``adapt_pos_embed``, heads dropped).
* The reference implementation's AudioSet checkpoints (``*.pth``, a
  DataParallel state dict with ``module.v.*`` and ``module.mlp_head.*``):
  ``read_reference_checkpoint``.
* HuggingFace transformers folders (``config.json`` + ``model.safetensors``
  or ``pytorch_model.bin``): ``read_hf_checkpoint``, with the key mapping in
  the single table ``HF_KEY_MAP``.

``build_from_checkpoint`` turns either checkpoint into a ready lobe and head.
Nothing is ever unpickled: files are read with ``torch.load(...,
weights_only=True)`` or safetensors.

Authors
 * speechbrain-ast developers
"""

import dataclasses
import json
import logging
import math
import os
import pickle
import re
from typing import Optional

import torch

from speechbrain_ast.model.lobe import AST, NUM_TOKENS, ASTHead, patch_grid
from speechbrain_ast.model.pos_embed import adapt_pos_embed

logger = logging.getLogger(__name__)

# Statistics of the AudioSet log-mel features (REFERENCE.md), used by the
# published checkpoints' frontend.
AUDIOSET_STATS = (-4.2677393, 4.5689974)

# Strides of the published reference checkpoints (AudioSet: 10, 12, 14 and
# 16; ESC-50 and Speech Commands: 10). A stride inferred from a checkpoint
# read at the default length and outside these means the length is wrong.
PUBLISHED_STRIDES = (10, 12, 14, 16)

# Frames a reference checkpoint is read at when no length is given (AudioSet)
DEFAULT_INPUT_TDIM = 1024

# Name of each DeiT size by width, for error messages: (embed_dim, heads).
DEIT_SIZES = {"tiny": (192, 3), "small": (384, 6), "base": (768, 12)}

CHANNEL_REDUCTIONS = ("mean", "sum")
POS_EMBED_METHODS = ("bilinear", "nearest", "reinit")

# timm 0.4.5 (the reference's version) prefixed DeiT names with "vit_"
_OLD_TIMM_PREFIX = "vit_deit_"

# The key mapping between the lobe / head and HuggingFace's files (the names
# on disk, which transformers 5 still writes). One row per tensor or module:
# (part, our name, HF name). A tuple of HF names is concatenated along dim 0
# (query, key, value -> qkv). "{n}" is the block index; module rows hold
# "weight" and "bias". An export inverts the table (split qkv in thirds).
HF_LOBE_PREFIX = "audio_spectrogram_transformer."
HF_KEY_MAP = (
    ("lobe", "cls_token", "embeddings.cls_token"),
    ("lobe", "dist_token", "embeddings.distillation_token"),
    ("lobe", "pos_embed", "embeddings.position_embeddings"),
    ("lobe", "patch_embed.proj", "embeddings.patch_embeddings.projection"),
    ("lobe", "blocks.{n}.norm1", "encoder.layer.{n}.layernorm_before"),
    (
        "lobe",
        "blocks.{n}.attn.qkv",
        (
            "encoder.layer.{n}.attention.attention.query",
            "encoder.layer.{n}.attention.attention.key",
            "encoder.layer.{n}.attention.attention.value",
        ),
    ),
    (
        "lobe",
        "blocks.{n}.attn.proj",
        "encoder.layer.{n}.attention.output.dense",
    ),
    ("lobe", "blocks.{n}.norm2", "encoder.layer.{n}.layernorm_after"),
    ("lobe", "blocks.{n}.mlp.fc1", "encoder.layer.{n}.intermediate.dense"),
    ("lobe", "blocks.{n}.mlp.fc2", "encoder.layer.{n}.output.dense"),
    ("lobe", "norm", "layernorm"),
    ("head", "0", "classifier.layernorm"),
    ("head", "1", "classifier.dense"),
)
_TOKEN_KEYS = ("cls_token", "dist_token", "pos_embed")


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

    Example
    -------
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> imported = ImportedAST(
    ...     config=dict(input_tdim=128, embed_dim=64, depth=1, num_heads=1),
    ...     lobe_state=lobe.state_dict(),
    ...     head_state=None,
    ... )
    >>> imported.norm_stats
    (-4.2677393, 4.5689974)
    """

    config: dict
    lobe_state: dict
    head_state: Optional[dict] = None
    labels: Optional[list] = None
    target_length: int = 1024
    norm_stats: tuple = AUDIOSET_STATS
    head_norm_eps: float = 1e-5
    source: str = ""

    @property
    def n_classes(self):
        """Number of classes of the checkpoint's head (None without one)."""
        if self.head_state is None:
            return None
        return self.head_state["1.weight"].shape[0]


# ---------------------------------------------------------------------------
# ImageNet DeiT
# ---------------------------------------------------------------------------


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
        patch_pos = adapt_pos_embed(
            pos[:, NUM_TOKENS:], (side, side), model.patch_grid, pos_embed
        )
        state["pos_embed"] = torch.cat([pos[:, :NUM_TOKENS], patch_pos], 1)

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


def _network_errors():
    errors = [OSError, ConnectionError, TimeoutError]
    try:
        from huggingface_hub.errors import HfHubHTTPError

        errors.append(HfHubHTTPError)
    except ImportError:  # older huggingface_hub
        pass
    try:
        import httpx

        errors.append(httpx.HTTPError)
    except ImportError:
        pass
    return tuple(errors)


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
    >>> import os, tempfile, timm
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
    except _network_errors() as error:
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
    ours = model.blocks[0].attn.num_heads if len(model.blocks) else None
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


# ---------------------------------------------------------------------------
# Published AST checkpoints
# ---------------------------------------------------------------------------


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

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> lobe = AST(input_tdim=32, embed_dim=64, depth=2, num_heads=1)
    >>> state = lobe.state_dict()
    >>> config = lobe_config(state, 128, 32, 16, 10, 10)
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
    >>> import os, tempfile
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
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
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
        norm_stats=AUDIOSET_STATS,
        head_norm_eps=1e-5,
        source=os.fspath(path),
    )


def _read_json(path):
    """A JSON file's content; a damaged file is named in the error."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path!r} is not valid JSON ({error}): the download is "
            "incomplete or the file was edited; download it again."
        ) from error


def _load_safetensors(path):
    """``safetensors.torch.load_file`` with the damaged file named."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except SafetensorError as error:
        raise ValueError(
            f"{path!r} is not a readable safetensors file ({error}): it is "
            "damaged or cut short; download it again."
        ) from error


def _read_hf_weights(directory):
    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    binary = os.path.join(directory, "pytorch_model.bin")
    if os.path.isfile(single) or os.path.isfile(index):
        if os.path.isfile(single):
            return _load_safetensors(single)
        weight_map = _read_json(index).get("weight_map", {})
        state = {}
        for shard in sorted(set(weight_map.values())):
            state.update(_load_safetensors(os.path.join(directory, shard)))
        return state
    if os.path.isfile(binary):
        return load_weights(binary)
    raise FileNotFoundError(
        f"{directory!r} has no model.safetensors or pytorch_model.bin; pass "
        "a folder written by save_pretrained or downloaded from the hub "
        "(e.g. MIT/ast-finetuned-audioset-10-10-0.4593)."
    )


def _expand(pattern, depth):
    """All (n, name) of a ``HF_KEY_MAP`` pattern."""
    if "{n}" not in pattern:
        return [(None, pattern)]
    return [(n, pattern.format(n=n)) for n in range(depth)]


def hf_state_to_ast(hf_state, depth):
    """Maps a HuggingFace AST state dict (file names) with ``HF_KEY_MAP``.

    Arguments
    ---------
    hf_state : dict
        Tensors as in ``model.safetensors`` of ``ASTForAudioClassification``
        (or of ``ASTModel``, without the ``audio_spectrogram_transformer.``
        prefix and without a classifier).
    depth : int
        Number of layers.

    Returns
    -------
    lobe_state : dict
    head_state : dict or None

    Example
    -------
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> hf = {"embeddings.cls_token": lobe.cls_token.detach()}
    >>> hf_state_to_ast(hf, depth=1)[0]["cls_token"].shape
    torch.Size([1, 1, 64])
    """
    has_prefix = any(k.startswith(HF_LOBE_PREFIX) for k in hf_state)
    remaining = dict(hf_state)
    parts = {"lobe": {}, "head": {}}
    for part, ours, theirs in HF_KEY_MAP:
        prefix = HF_LOBE_PREFIX if part == "lobe" and has_prefix else ""
        suffixes = [""] if ours in _TOKEN_KEYS else [".weight", ".bias"]
        for n, our_name in _expand(ours, depth):
            names = theirs if isinstance(theirs, tuple) else (theirs,)
            for suffix in suffixes:
                keys = [prefix + name.format(n=n) + suffix for name in names]
                present = [k in remaining for k in keys]
                if not any(present):
                    continue  # absent bias or head: checked when loading
                if not all(present):
                    missing = [k for k, p in zip(keys, present) if not p]
                    raise ValueError(f"HF checkpoint lacks {missing}.")
                tensors = [remaining.pop(k) for k in keys]
                value = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
                parts[part][our_name + suffix] = value
    if remaining:
        raise ValueError(
            "HF checkpoint has keys that AST does not know: "
            f"{sorted(remaining)[:5]}; is it an audio-spectrogram-transformer "
            "checkpoint with this many layers?"
        )
    return parts["lobe"], parts["head"] or None


def read_hf_checkpoint(directory):
    """Reads a HuggingFace transformers AST folder.

    Reads ``config.json`` and ``model.safetensors`` (or
    ``pytorch_model.bin``, weights only) and, when present,
    ``preprocessor_config.json`` for the normalisation statistics (else
    AudioSet's). The key names are mapped with ``HF_KEY_MAP``; the
    configuration's ``layer_norm_eps`` is used for the backbone and the head
    so that logits equal HuggingFace's.

    Arguments
    ---------
    directory : str or path-like
        Folder from ``save_pretrained`` or a hub snapshot (e.g.
        ``MIT/ast-finetuned-audioset-10-10-0.4593``).

    Returns
    -------
    ImportedAST

    Example
    -------
    >>> import tempfile
    >>> from transformers import ASTConfig, ASTForAudioClassification
    >>> config = ASTConfig(
    ...     hidden_size=64,
    ...     num_hidden_layers=1,
    ...     num_attention_heads=1,
    ...     intermediate_size=128,
    ...     max_length=128,
    ...     num_labels=3,
    ... )
    >>> folder = tempfile.mkdtemp()
    >>> ASTForAudioClassification(config).save_pretrained(folder)
    >>> imported = read_hf_checkpoint(folder)
    >>> imported.config["embed_dim"], imported.n_classes
    (64, 3)
    """
    directory = os.fspath(directory)
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"{directory!r} has no config.json; pass a HuggingFace AST "
            "folder (save_pretrained output or a hub snapshot)."
        )
    hf = _read_json(config_path)
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(
            f"{config_path}: hidden_act={act!r}; the AST lobe uses exact GELU "
            "('gelu') only."
        )
    embed_dim = hf.get("hidden_size", 768)
    depth = hf.get("num_hidden_layers", 12)
    eps = hf.get("layer_norm_eps", 1e-12)
    max_length = hf.get("max_length", 1024)
    config = dict(
        input_fdim=hf.get("num_mel_bins", 128),
        input_tdim=max_length,
        patch_size=hf.get("patch_size", 16),
        fstride=hf.get("frequency_stride", 10),
        tstride=hf.get("time_stride", 10),
        embed_dim=embed_dim,
        depth=depth,
        num_heads=hf.get("num_attention_heads", 12),
        mlp_ratio=hf.get("intermediate_size", 4 * embed_dim) / embed_dim,
        qkv_bias=hf.get("qkv_bias", True),
        drop_rate=hf.get("hidden_dropout_prob", 0.0),
        attn_drop_rate=hf.get("attention_probs_dropout_prob", 0.0),
        norm_eps=eps,
    )
    lobe_state, head_state = hf_state_to_ast(_read_hf_weights(directory), depth)
    labels = None
    id2label = hf.get("id2label")
    if head_state is not None and id2label:
        labels = [id2label[k] for k in sorted(id2label, key=int)]
        n_classes = head_state["1.weight"].shape[0]
        if len(labels) != n_classes:
            raise ValueError(
                f"{config_path}: id2label names {len(labels)} classes but "
                f"the classifier has {n_classes}."
            )
    norm_stats = AUDIOSET_STATS
    pre_path = os.path.join(directory, "preprocessor_config.json")
    if os.path.isfile(pre_path):
        pre = _read_json(pre_path)
        if "mean" in pre and "std" in pre:
            norm_stats = (float(pre["mean"]), float(pre["std"]))
        # the extractor's mel bins feed the model's patch grid: they agree
        # in every published folder; otherwise the folder is inconsistent
        pre_bins = pre.get("num_mel_bins")
        if pre_bins is not None and pre_bins != config["input_fdim"]:
            raise ValueError(
                f"{config_path} says num_mel_bins={config['input_fdim']} but "
                f"{pre_path} says num_mel_bins={pre_bins}: the model and its "
                "feature extractor disagree, so this folder was edited or "
                "mixed from two checkpoints. Make both files give the number "
                "of mel bins the model was trained with."
            )
    return ImportedAST(
        config=config,
        lobe_state=lobe_state,
        head_state=head_state,
        labels=labels,
        target_length=max_length,
        norm_stats=norm_stats,
        head_norm_eps=eps,
        source=directory,
    )


def build_from_checkpoint(source, input_tdim=None, n_classes=None):
    """Builds the AST lobe and head from a published checkpoint.

    Arguments
    ---------
    source : str, path-like or ImportedAST
        A reference ``.pth`` file (read with the AudioSet defaults of
        ``read_reference_checkpoint``), a HuggingFace folder, or what one of
        the readers returned.
    input_tdim : int, optional
        Number of frames to build the lobe for; the positional embedding is
        adapted from the checkpoint's grid with ``adapt_pos_embed``. Default:
        the checkpoint's.
    n_classes : int, optional
        Classes of the head. None or the checkpoint's number keeps the
        checkpoint's head; another number gives a fresh ``ASTHead`` (the
        checkpoint's is dropped, as for fine-tuning on a new task).

    Returns
    -------
    lobe : AST
        In eval mode.
    head : ASTHead or None
        None when the checkpoint has no head and ``n_classes`` is None.
    imported : ImportedAST
        What was built: its config, states, labels (None for a fresh head)
        and ``target_length`` follow ``input_tdim`` and ``n_classes``.

    Example
    -------
    >>> import os, tempfile
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    >>> state.update(
    ...     {
    ...         f"module.mlp_head.{k}": v
    ...         for k, v in ASTHead(64, 5).state_dict().items()
    ...     }
    ... )
    >>> path = os.path.join(tempfile.mkdtemp(), "ast.pth")
    >>> torch.save(state, path)
    >>> imported = read_reference_checkpoint(path, input_tdim=128)
    >>> lobe, head, _ = build_from_checkpoint(imported, input_tdim=64)
    >>> head(lobe(torch.randn(2, 64, 128))).shape
    torch.Size([2, 5])
    """
    if not isinstance(source, ImportedAST):
        path = os.fspath(source)
        if os.path.isdir(path):
            source = read_hf_checkpoint(path)
        elif os.path.isfile(path):
            source = read_reference_checkpoint(path)
        else:
            raise FileNotFoundError(
                f"checkpoint {path!r} does not exist: pass a reference .pth "
                "file or a HuggingFace folder."
            )
    imported = source
    config = dict(imported.config)
    lobe_state = dict(imported.lobe_state)
    if input_tdim is not None and input_tdim != config["input_tdim"]:
        src_grid = patch_grid(
            config["input_fdim"],
            config["input_tdim"],
            config["patch_size"],
            config["fstride"],
            config["tstride"],
        )
        config["input_tdim"] = input_tdim
        lobe = AST(**config)
        pos = lobe_state["pos_embed"]
        patch_pos = adapt_pos_embed(
            pos[:, NUM_TOKENS:], src_grid, lobe.patch_grid
        )
        lobe_state["pos_embed"] = torch.cat([pos[:, :NUM_TOKENS], patch_pos], 1)
    else:
        lobe = AST(**config)
    lobe.load_state_dict(lobe_state, strict=True)
    lobe.eval()

    head_state, labels = imported.head_state, imported.labels
    head = None
    if head_state is not None and n_classes in (None, imported.n_classes):
        head = ASTHead(
            config["embed_dim"],
            imported.n_classes,
            norm_eps=imported.head_norm_eps,
        )
        head.load_state_dict(head_state, strict=True)
        head.eval()
    elif n_classes is not None:
        if head_state is not None:
            logger.info(
                "dropping the checkpoint's %d-class head for a new %d-class "
                "head",
                imported.n_classes,
                n_classes,
            )
        head = ASTHead(
            config["embed_dim"], n_classes, norm_eps=imported.head_norm_eps
        )
        head_state, labels = head.state_dict(), None
    built = dataclasses.replace(
        imported,
        config=config,
        lobe_state=lobe_state,
        head_state=head_state,
        labels=labels,
        target_length=config["input_tdim"],
    )
    return lobe, head, built
