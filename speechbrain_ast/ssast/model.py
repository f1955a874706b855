"""SSAST: self-supervised pretraining of the AST lobe (Gong, Lai, Chung &
Glass, AAAI 2022).

Masked patch modelling on unlabelled audio. A spectrogram is cut into
patches that do not overlap (16 x 16 "patch-based" or 128 x 2
"frame-based"); the embeddings of some patches are replaced by a learned
mask embedding, the AST encoder runs over the whole sequence, and two
heads read its outputs at the masked positions:

* discriminative (masked patch classification, ``mpc``): ``cpredlayer``
  maps each output to the patch space; for every clip, each true masked
  patch must pick its own prediction among the predictions of all the
  clip's masked patches (InfoNCE, the other masked patches are the
  negatives);
* generative (masked patch reconstruction, ``mpg``): ``gpredlayer``
  predicts the patch's raw values, mean squared error.

The pretraining loss is ``mpc + mpg_weight * mpg`` (``mpg_weight`` 10 as
the reference). Masks are drawn per clip: clusters of neighbouring patches
for patch-based models (:func:`cluster_mask`), uniform frames for
frame-based ones (:func:`frame_mask`).

After pretraining only the encoder is kept: :func:`save_ssast_encoder`
writes it (weights only, with its patch configuration) and
:func:`load_ssast` loads it, or a published SSAST checkpoint
(``SSAST-Base-Patch-400.pth``, ``SSAST-Base-Frame-400.pth``), into an AST
lobe built for fine-tuning, with the positional embedding adapted to the
lobe's strides and length. :func:`read_ssast_checkpoint` reads either file
into :class:`speechbrain_ast.weights.pretrained.ImportedAST` (the converter's
entry point).

Authors
 * speechbrain-ast developers
"""

import os
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechbrain_ast.model.lobe import AST, NUM_TOKENS, patch_grid
from speechbrain_ast.model.pos_embed import adapt_pos_embed
from speechbrain_ast.weights.pretrained import (
    AUDIOSET_STATS,
    ImportedAST,
    load_weights,
    lobe_config,
)

__all__ = [
    "cluster_mask",
    "frame_mask",
    "patch_values",
    "SSAST",
    "save_ssast_encoder",
    "read_ssast_checkpoint",
    "load_ssast",
]

# the format tag of the files written by save_ssast_encoder
ENCODER_FORMAT = "speechbrain_ast.ssast_encoder"
ENCODER_VERSION = 1


def _check_mask_size(mask_size, num_patches, most):
    if int(mask_size) != mask_size or not 1 <= mask_size <= most:
        raise ValueError(
            f"cannot mask {mask_size!r} of {num_patches} patches: mask "
            f"between 1 and {most} (e.g. about 78% of them, as the "
            "reference's 400 of 512); lower mask_patch, or use a longer "
            "target_length."
        )


def cluster_mask(num_patches, t_dim, mask_size, cluster_factor=3, rng=None):
    """Indices of masked patches, drawn in clusters of neighbours.

    The reference's ``gen_maskid_patch``: a cluster side ``c`` is drawn once
    from ``3 .. cluster_factor + 2``; then, until more than ``mask_size``
    distinct patches are collected, a random start patch ``s`` adds the
    ``c x c`` block ``s + t_dim * i + j`` (``i, j < c``: ``c`` frequency
    rows and ``c`` time columns of the frequency-major grid), keeping the
    indices strictly between 0 and ``num_patches``. The ``mask_size``
    smallest of the collected indices are returned (the reference cuts a
    Python set of small integers, which iterates in ascending order).
    As in the reference, patch 0 is never masked and a block may wrap
    from the end of one frequency row into the next.

    Arguments
    ---------
    num_patches : int
        Patches in the sequence (``f_dim * t_dim``).
    t_dim : int
        Patches along time (the row length of the grid).
    mask_size : int
        How many to mask; at most ``num_patches - 2``.
    cluster_factor : int
        Number of cluster sides to draw from, starting at 3 (3: sides 3, 4
        or 5, the reference).
    rng : random.Random, optional
        Source of randomness (default: Python's ``random`` module, which
        SpeechBrain's ``seed_everything`` seeds).

    Returns
    -------
    torch.Tensor
        ``[mask_size]`` int64, ascending, distinct.

    Example
    -------
    >>> mask = cluster_mask(512, 64, 400, rng=random.Random(0))
    >>> mask.shape, len(set(mask.tolist())), int(mask.min()) > 0
    (torch.Size([400]), 400, True)
    """
    _check_mask_size(mask_size, num_patches, num_patches - 2)
    if int(cluster_factor) != cluster_factor or cluster_factor < 1:
        raise ValueError(
            f"cluster_factor must be a positive integer; got {cluster_factor!r}"
        )
    rng = random if rng is None else rng
    side = rng.randrange(cluster_factor) + 3
    offsets = [t_dim * i + j for i in range(side) for j in range(side)]
    chosen = set()
    while len(chosen) <= mask_size:
        start = rng.randrange(num_patches)
        chosen.update(
            start + offset
            for offset in offsets
            if 0 < start + offset < num_patches
        )
    return torch.tensor(sorted(chosen)[:mask_size], dtype=torch.long)


def frame_mask(num_patches, mask_size, rng=None):
    """Indices of masked patches drawn uniformly without replacement.

    The reference's ``gen_maskid_frame``, for frame-based (128 x 2) models:
    clustering hurt there, so every frame patch is equally likely.

    Arguments
    ---------
    num_patches : int
        Patches in the sequence.
    mask_size : int
        How many to mask (at most ``num_patches``).
    rng : random.Random, optional
        Source of randomness (default: Python's ``random`` module).

    Returns
    -------
    torch.Tensor
        ``[mask_size]`` int64, distinct, in the order drawn.

    Example
    -------
    >>> mask = frame_mask(512, 400, rng=random.Random(0))
    >>> mask.shape, len(set(mask.tolist()))
    (torch.Size([400]), 400)
    """
    _check_mask_size(mask_size, num_patches, num_patches)
    rng = random if rng is None else rng
    return torch.tensor(
        rng.sample(range(num_patches), mask_size), dtype=torch.long
    )


def patch_values(feats, patch_size):
    """The raw values of the non-overlapping patches, the SSAST targets.

    Arguments
    ---------
    feats : torch.Tensor
        ``[batch, time, freq]`` features.
    patch_size : tuple of int
        ``(frequency, time)`` patch shape; the stride equals it.

    Returns
    -------
    torch.Tensor
        ``[batch, f_dim * t_dim, pf * pt]``: patches frequency-major as the
        lobe's tokens, each patch's values frequency-major
        (``value[f * pt + t] = feats[b, t0 + t, f0 + f]``).

    Example
    -------
    >>> patch_values(torch.randn(2, 1024, 128), (16, 16)).shape
    torch.Size([2, 512, 256])
    """
    image = feats.unsqueeze(1).transpose(2, 3)  # [B, 1, F, T]
    values = F.unfold(image, kernel_size=patch_size, stride=patch_size)
    return values.transpose(1, 2)


def _pred_layer(embed_dim, patch_dim):
    return nn.Sequential(
        nn.Linear(embed_dim, embed_dim),
        nn.ReLU(),
        nn.Linear(embed_dim, patch_dim),
    )


class SSAST(nn.Module):
    """The SSAST pretraining model around an AST lobe.

    Arguments
    ---------
    encoder : speechbrain_ast.model.lobe.AST
        The lobe to pretrain; its strides must equal its patch size (no
        overlap while pretraining). Its patchout is not applied here.
    mask_patch : int
        Patches masked per clip (the reference: 400 of 512).
    cluster_factor : int
        Cluster sides drawn from ``3 .. cluster_factor + 2`` (patch masking).
    cluster_masking : bool, optional
        Clustered masks (:func:`cluster_mask`) or uniform ones
        (:func:`frame_mask`). Default: clusters unless the patches span the
        whole frequency axis (frame-based), as the reference decides.
    mpg_weight : float
        Weight of the generative loss in the sum (10 in the reference).
    objective : str
        ``"joint"`` (both losses), ``"mpc"`` or ``"mpg"``.
    shared_mask : bool
        False (the reference): the discriminative and the generative loss
        each mask the clip anew and run the encoder once each. True: one
        mask and one encoder pass feed both heads (half the compute).

    Example
    -------
    >>> lobe = AST(
    ...     input_tdim=128,
    ...     patch_size=16,
    ...     fstride=16,
    ...     tstride=16,
    ...     embed_dim=32,
    ...     depth=1,
    ...     num_heads=2,
    ... )
    >>> model = SSAST(lobe, mask_patch=40)
    >>> out = model(torch.randn(2, 128, 128))
    >>> sorted(out)
    ['acc', 'loss', 'mpc', 'mpg']
    >>> out["loss"].shape
    torch.Size([])
    """

    def __init__(
        self,
        encoder,
        mask_patch=400,
        cluster_factor=3,
        cluster_masking=None,
        mpg_weight=10.0,
        objective="joint",
        shared_mask=False,
    ):
        super().__init__()
        if not isinstance(encoder, AST):
            raise TypeError(
                f"SSAST needs a speechbrain_ast.model.lobe.AST encoder; got "
                f"{type(encoder).__name__}."
            )
        pf, pt = encoder.patch_size
        if (encoder.fstride, encoder.tstride) != (pf, pt):
            raise ValueError(
                f"SSAST pretrains on patches that do not overlap, but the "
                f"encoder has patch_size {(pf, pt)} with fstride="
                f"{encoder.fstride}, tstride={encoder.tstride}: build it "
                f"with fstride={pf} and tstride={pt} (fine-tuning may use "
                "smaller strides, load_ssast adapts them)."
            )
        if objective not in ("joint", "mpc", "mpg"):
            raise ValueError(
                f"objective must be 'joint', 'mpc' or 'mpg'; got {objective!r}"
            )
        self.encoder = encoder
        self.mask_patch = mask_patch
        self.cluster_factor = cluster_factor
        if cluster_masking is None:
            cluster_masking = pf != encoder.input_fdim
        self.cluster_masking = bool(cluster_masking)
        self.mpg_weight = float(mpg_weight)
        self.objective = objective
        self.shared_mask = bool(shared_mask)
        # the mask must fit the grid the encoder is built for
        self.draw_mask(rng=random.Random(0))

        dim = encoder.embed_dim
        self.cpredlayer = _pred_layer(dim, pf * pt)
        self.gpredlayer = _pred_layer(dim, pf * pt)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.xavier_normal_(self.mask_embed)

    def draw_mask(self, grid=None, rng=None):
        """One clip's masked patch indices (``[mask_patch]``) for ``grid``
        (default: the encoder's)."""
        f_dim, t_dim = self.encoder.patch_grid if grid is None else grid
        if self.cluster_masking:
            return cluster_mask(
                f_dim * t_dim, t_dim, self.mask_patch, self.cluster_factor, rng
            )
        return frame_mask(f_dim * t_dim, self.mask_patch, rng)

    def draw_masks(self, batch, grid=None, rng=None, device=None):
        """``[batch, mask_patch]`` indices, a mask of its own per clip."""
        masks = [self.draw_mask(grid, rng) for _ in range(batch)]
        return torch.stack(masks).to(device)

    def encode_masked(self, feats, mask_index):
        """Encoder outputs with the masked patch embeddings replaced.

        Arguments
        ---------
        feats : torch.Tensor
            ``[batch, time, input_fdim]`` normalised features.
        mask_index : torch.Tensor
            ``[batch, M]`` patch indices to mask (frequency-major).

        Returns
        -------
        torch.Tensor
            ``[batch, 2 + num_patches, embed_dim]`` after the final norm.
        """
        enc = self.encoder
        enc._check_input(feats)
        grid = enc.grid(feats.shape[1])
        patches = enc.patch_embed(feats)
        batch, num, _ = patches.shape
        masked = torch.zeros(batch, num, dtype=torch.bool, device=feats.device)
        masked.scatter_(1, mask_index, True)
        patches = torch.where(
            masked.unsqueeze(-1), self.mask_embed.to(patches.dtype), patches
        )
        pos = enc._pos_embed_for(grid)
        tokens = torch.cat(
            [
                enc.cls_token.expand(batch, -1, -1),
                enc.dist_token.expand(batch, -1, -1),
                patches,
            ],
            dim=1,
        )
        x = enc.pos_drop(tokens + pos)
        for block in enc.blocks:
            x = block(x)
        return enc.norm(x)

    def _masked_outputs(self, feats, mask_index):
        """Encoder outputs ``[B, M, D]`` and true patch values ``[B, M, P]``
        at the masked positions."""
        outputs = self.encode_masked(feats, mask_index)[:, NUM_TOKENS:]
        values = patch_values(feats, self.encoder.patch_size)
        take = mask_index.unsqueeze(-1)
        outputs = outputs.gather(1, take.expand(-1, -1, outputs.shape[-1]))
        values = values.gather(1, take.expand(-1, -1, values.shape[-1]))
        return outputs, values.detach()

    @staticmethod
    def infonce(pred, target):
        """The reference's masked patch classification loss and accuracy.

        Arguments
        ---------
        pred : torch.Tensor
            ``[B, M, P]`` predictions at the masked positions.
        target : torch.Tensor
            ``[B, M, P]`` true patch values.

        Returns
        -------
        contrast : torch.Tensor
            Per clip, ``scores = target @ pred^T`` (``[M, M]``), log-softmax
            over the predictions; minus the mean of the diagonal over
            clips and patches.
        acc : torch.Tensor
            Fraction of predictions ``j`` whose row-softmax column maximum
            is at target ``j``.
        """
        scores = torch.bmm(target.float(), pred.float().transpose(1, 2))
        log_prob = F.log_softmax(scores, dim=-1)
        contrast = -torch.diagonal(log_prob, dim1=1, dim2=2).mean()
        index = torch.arange(scores.shape[1], device=scores.device)
        acc = (log_prob.argmax(dim=1) == index).float().mean()
        return contrast, acc

    def mpc(self, feats, mask_index=None, rng=None):
        """Discriminative loss (InfoNCE) and accuracy on ``feats``.

        ``mask_index`` ``[B, M]`` (default: drawn with :meth:`draw_masks`).
        """
        if mask_index is None:
            mask_index = self._masks_for(feats, rng)
        outputs, values = self._masked_outputs(feats, mask_index)
        return self.infonce(self.cpredlayer(outputs), values)

    def mpg(self, feats, mask_index=None, rng=None):
        """Generative loss: MSE of the reconstructed masked patches."""
        if mask_index is None:
            mask_index = self._masks_for(feats, rng)
        outputs, values = self._masked_outputs(feats, mask_index)
        pred = self.gpredlayer(outputs).float()
        return F.mse_loss(pred, values.float())

    def _masks_for(self, feats, rng):
        grid = self.encoder.grid(feats.shape[1])
        return self.draw_masks(feats.shape[0], grid, rng, feats.device)

    def forward(self, feats, rng=None):
        """The pretraining objective on a batch.

        Arguments
        ---------
        feats : torch.Tensor
            ``[batch, time, input_fdim]`` normalised features.
        rng : random.Random, optional
            Source of the masks (e.g. a fixed one for validation).

        Returns
        -------
        dict
            ``loss`` (``mpc + mpg_weight * mpg``, or one of them by
            ``objective``), ``mpc``, ``acc`` and ``mpg`` (zeros for the
            objective's unused half).
        """
        zero = feats.new_zeros((), dtype=torch.float32)
        contrast, acc, mse = zero, zero, zero
        if self.shared_mask and self.objective == "joint":
            mask_index = self._masks_for(feats, rng)
            outputs, values = self._masked_outputs(feats, mask_index)
            contrast, acc = self.infonce(self.cpredlayer(outputs), values)
            pred = self.gpredlayer(outputs).float()
            mse = F.mse_loss(pred, values.float())
        else:
            if self.objective in ("joint", "mpc"):
                contrast, acc = self.mpc(feats, rng=rng)
            if self.objective in ("joint", "mpg"):
                mse = self.mpg(feats, rng=rng)
        if self.objective == "mpc":
            loss = contrast
        elif self.objective == "mpg":
            loss = mse
        else:
            loss = contrast + self.mpg_weight * mse
        return {"loss": loss, "mpc": contrast, "acc": acc, "mpg": mse}


# ---------------------------------------------------------------------------
# Encoder files: ours and the published checkpoints
# ---------------------------------------------------------------------------


def _encoder_config(lobe):
    """The keyword arguments that rebuild ``lobe``'s architecture."""
    block = lobe.blocks[0] if len(lobe.blocks) else None
    return dict(
        input_fdim=lobe.input_fdim,
        input_tdim=lobe.input_tdim,
        patch_size=list(lobe.patch_size),
        fstride=lobe.fstride,
        tstride=lobe.tstride,
        embed_dim=lobe.embed_dim,
        depth=len(lobe.blocks),
        num_heads=block.attn.num_heads if block is not None else 1,
        mlp_ratio=(
            block.mlp.fc1.out_features / lobe.embed_dim if block else 4.0
        ),
        qkv_bias=bool(block is not None and block.attn.qkv.bias is not None),
        norm_eps=lobe.norm.eps,
    )


def save_ssast_encoder(model, path, norm_stats=AUDIOSET_STATS):
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
    lobe = model.encoder if isinstance(model, SSAST) else model
    lobe = getattr(lobe, "module", lobe)  # DDP / DataParallel
    if not isinstance(lobe, AST):
        raise TypeError(
            f"save_ssast_encoder needs an SSAST model or an AST lobe; got "
            f"{type(model).__name__}."
        )
    content = {
        "format": ENCODER_FORMAT,
        "version": ENCODER_VERSION,
        "config": _encoder_config(lobe),
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
    return config, lobe_state, AUDIOSET_STATS


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
    speechbrain_ast.weights.pretrained.ImportedAST
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
        norm_stats = tuple(content.get("norm_stats", AUDIOSET_STATS))
    else:
        if not all(
            isinstance(k, str) and torch.is_tensor(v)
            for k, v in content.items()
        ):
            raise ValueError(
                f"{path!r} is neither an ssast_encoder.pt file nor a state "
                "dict of tensors."
            )
        state = content
        if state and all(k.startswith("module.") for k in state):
            state = {k[len("module.") :]: v for k, v in state.items()}
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
    speechbrain_ast.weights.pretrained.ImportedAST
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
    if (
        lobe.embed_dim != config["embed_dim"]
        or len(lobe.blocks) != config["depth"]
    ):
        raise ValueError(
            f"{os.fspath(path)!r} holds an encoder of width "
            f"{config['embed_dim']} and depth {config['depth']}, the lobe "
            f"has {lobe.embed_dim} and {len(lobe.blocks)}: build the lobe "
            "with the checkpoint's embed_dim, depth and num_heads."
        )
    heads = lobe.blocks[0].attn.num_heads if len(lobe.blocks) else None
    if heads is not None and heads != config["num_heads"]:
        raise ValueError(
            f"{os.fspath(path)!r} holds an encoder with "
            f"{config['num_heads']} attention heads, the lobe has {heads}: "
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
    pos = state["pos_embed"]
    patch_pos = adapt_pos_embed(
        pos[:, NUM_TOKENS:], src_grid, lobe.patch_grid, method=method
    )
    state["pos_embed"] = torch.cat([pos[:, :NUM_TOKENS], patch_pos], dim=1)
    try:
        lobe.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{os.fspath(path)!r} does not fit the lobe (num_heads, "
            f"mlp_ratio, qkv_bias must match the checkpoint's "
            f"{config['num_heads']}, {config['mlp_ratio']}, "
            f"{config['qkv_bias']}): {str(err)[:400]}"
        ) from err
    lobe._pos_cache.clear()
    return imported
