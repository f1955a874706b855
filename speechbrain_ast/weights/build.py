"""A ready AST lobe and head from any imported checkpoint:
:func:`build_from_checkpoint` (a reference ``.pth``, a HuggingFace folder,
or what one of the readers returned, SSAST encoders included); a recipe's
lobe initialised in place from its pretraining settings
(:func:`init_from_pretrained`: AudioSet, SSAST or ImageNet weights).

Authors
 * speechbrain-ast developers
"""

import dataclasses
import logging
import os

from speechbrain_ast.model.lobe import AST, ASTHead, patch_grid
from speechbrain_ast.weights.common import ImportedAST, adapt_token_pos_embed
from speechbrain_ast.weights.fetch import fetch_pretrained
from speechbrain_ast.weights.hf import read_hf_checkpoint

__all__ = ["build_from_checkpoint", "init_from_pretrained"]

logger = logging.getLogger(__name__)


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
    >>> import torch
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> head = ASTHead(64, 5)
    >>> imported = ImportedAST(
    ...     lobe.config, lobe.state_dict(), head_state=head.state_dict()
    ... )
    >>> lobe, head, _ = build_from_checkpoint(imported, input_tdim=64)
    >>> head(lobe(torch.randn(2, 64, 128))).shape
    torch.Size([2, 5])
    """
    if not isinstance(source, ImportedAST):
        path = os.fspath(source)
        if os.path.isdir(path):
            source = read_hf_checkpoint(path)
        elif os.path.isfile(path):
            # imported here, as the ImageNet and SSAST readers below: each
            # format's reader is needed only by the weights that use it
            from speechbrain_ast.weights.reference import (
                read_reference_checkpoint,
            )

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
        lobe_state["pos_embed"] = adapt_token_pos_embed(
            lobe_state["pos_embed"], src_grid, lobe.patch_grid
        )
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
        config=dict(lobe.config),
        lobe_state=lobe_state,
        head_state=head_state,
        labels=labels,
        target_length=config["input_tdim"],
    )
    return lobe, head, built


def init_from_pretrained(
    embedding_model,
    audioset_pretrain=False,
    ssl_pretrain=False,
    imagenet_pretrain=False,
    imagenet_checkpoint=None,
    channel_reduction="mean",
    pos_embed="bilinear",
    pooling="auto",
    savedir=None,
):
    """Initialises a recipe's AST lobe (in place) as the paper does.

    With ``audioset_pretrain`` (a reference ``.pth`` or a HuggingFace
    folder, or a hub id such as ``MIT/ast-finetuned-audioset-10-10-0.4593``
    or a web address) the lobe gets that checkpoint's backbone, its positional
    embedding adapted to the lobe's ``input_tdim`` (the checkpoint's head
    is not used: the recipe's head stays fresh). Else, with
    ``ssl_pretrain`` (a published SSAST checkpoint such as
    ``SSAST-Base-Patch-400.pth`` or an ``ssast_encoder.pt`` of
    ``recipes/SSAST/pretrain.py``), that self-supervised encoder
    (:func:`speechbrain_ast.weights.load_ssast`: the patch shape must be the
    pretraining one, the strides and length may differ, the positional
    embedding is adapted). Else, with ``imagenet_pretrain`` (a timm DeiT
    name), the DeiT weights (:func:`speechbrain_ast.weights.load_deit`).
    Else nothing (random initialisation, "from scratch").

    Arguments
    ---------
    embedding_model : speechbrain_ast.model.lobe.AST
    audioset_pretrain : str or False
    ssl_pretrain : str or False
    imagenet_pretrain : str or False
    imagenet_checkpoint : str, optional
        Local DeiT weights file (offline machines).
    channel_reduction : str
        ``"mean"`` or ``"sum"`` (DeiT's RGB patch conv -> 1 channel).
    pos_embed : str
        ``"bilinear"``, ``"nearest"`` or ``"reinit"`` (ImageNet only);
        an SSAST encoder's grid is adapted with ``"nearest"`` when given,
        else bilinearly.
    pooling : str
        The lobe's clip embedding: ``"cls"``, ``"mean"``, or ``"auto"``:
        the mean of the patch tokens for an SSAST encoder, as every
        fine-tuning script of the SSAST reference does (``ft_avgtok``),
        else [CLS]/[DIST] as the supervised AST.
    savedir : str, optional
        Where weights named by a hub id or a web address are fetched
        (:func:`speechbrain_ast.weights.fetch.fetch_pretrained`); each of
        ``audioset_pretrain``, ``ssl_pretrain`` and ``imagenet_checkpoint``
        may be one.

    Returns
    -------
    str
        What was loaded, for the log.

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> init_from_pretrained(
    ...     AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    ... )
    'random initialisation; pooling cls'
    """
    if pooling not in ("auto", "cls", "mean"):
        raise ValueError(f"pooling must be auto, cls or mean; got {pooling!r}.")
    fetched = {
        name: fetch_pretrained(value, savedir, name=name) if value else value
        for name, value in (
            ("audioset_pretrain", audioset_pretrain),
            ("ssl_pretrain", ssl_pretrain),
            ("imagenet_checkpoint", imagenet_checkpoint),
        )
    }
    loaded = _init_weights(
        embedding_model,
        fetched["audioset_pretrain"],
        fetched["ssl_pretrain"],
        imagenet_pretrain,
        fetched["imagenet_checkpoint"],
        channel_reduction,
        pos_embed,
    )
    if pooling == "auto":
        ssast = bool(ssl_pretrain) and not audioset_pretrain
        pooling = "mean" if ssast else "cls"
    embedding_model.set_pooling(pooling)
    return f"{loaded}; pooling {pooling}"


def _init_weights(
    embedding_model,
    audioset_pretrain,
    ssl_pretrain,
    imagenet_pretrain,
    imagenet_checkpoint,
    channel_reduction,
    pos_embed,
):
    """The weights of :func:`init_from_pretrained`; what was loaded."""
    if audioset_pretrain:
        lobe, _, _ = build_from_checkpoint(
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
    if ssl_pretrain:
        _load_ssl(embedding_model, ssl_pretrain, pos_embed)
        return f"SSAST encoder {ssl_pretrain}"
    if imagenet_pretrain:
        from speechbrain_ast.weights.deit import load_deit

        load_deit(
            embedding_model,
            name=imagenet_pretrain,
            checkpoint=imagenet_checkpoint,
            channel_reduction=channel_reduction,
            pos_embed=pos_embed,
        )
        return f"ImageNet {imagenet_pretrain} ({imagenet_checkpoint})"
    return "random initialisation"


def _stride_flags(patch):
    """The recipe flags for a lobe with ``patch`` (freq, time) patches and
    the SSAST reference's fine-tuning strides."""
    from speechbrain_ast.weights.ssast import finetune_strides

    pf, pt = patch
    size = str(pf) if pf == pt else f'"[{pf},{pt}]"'
    fstride, tstride = finetune_strides(patch)
    return f"--patch_size {size} --fstride {fstride} --tstride {tstride}"


def _load_ssl(embedding_model, path, pos_embed):
    """:func:`speechbrain_ast.weights.load_ssast` with the recipe's flags in
    the error of a patch shape that does not fit."""
    from speechbrain_ast.weights.ssast import load_ssast, read_ssast_checkpoint

    method = "nearest" if pos_embed == "nearest" else "bilinear"
    try:
        load_ssast(embedding_model, path, method=method)
    except ValueError as err:
        patch = tuple(read_ssast_checkpoint(path).config["patch_size"])
        if patch == tuple(embedding_model.patch_size):
            raise
        have = embedding_model.patch_size
        raise ValueError(
            f"{path} was pretrained with {patch[0]} x {patch[1]} patches "
            f"but the recipe's model has {have[0]} x {have[1]} (patch_size "
            f"{list(have)}, fstride {embedding_model.fstride}, tstride "
            f"{embedding_model.tstride}): pass {_stride_flags(patch)}"
        ) from err
