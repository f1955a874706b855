"""The AST lobe (Audio Spectrogram Transformer): spectrogram -> embedding.

AST is a DeiT-distilled ViT whose patches are cut from a log-mel spectrogram
with overlap: a 1-channel patch convolution over (frequency, time), a [CLS]
and a [DIST] token, a learnable positional embedding over the patch grid,
pre-norm transformer blocks (timm's ``Block``, fused attention) and a final
LayerNorm. Parameter names are timm DeiT's, so ImageNet weights and the
reference AudioSet checkpoints load by key.

For training it offers PaSST's patchout (Koutini et al. 2022): whole time
columns and frequency rows of the patch grid are dropped, which shortens
the sequence the blocks see and speeds a training step up several times.

Authors
 * speechbrain-ast developers
"""

from functools import partial

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block
from torch.fx.experimental.symbolic_shapes import statically_known_true

from speechbrain_ast.model.head import ASTHead
from speechbrain_ast.model.layers import (
    InplaceGELU,
    PatchEmbed,
    as_pair,
    patch_grid,
    patchout,
    supports_token_only,
    token_only_block,
)
from speechbrain_ast.model.pos_embed import NUM_TOKENS, cached_token_pos_embed

# ASTHead (model.head) also here: older model folders name it lobe.ASTHead
__all__ = ["AST", "ASTHead", "NUM_TOKENS", "POOLINGS"]

POOLINGS = ("cls", "mean")


class AST(nn.Module):
    """The Audio Spectrogram Transformer lobe: spectrogram -> embedding.

    Arguments
    ---------
    input_fdim : int
        Number of mel bins of the input (128 for the published weights).
    input_tdim : int
        Number of frames the positional embedding is built for (1024 for
        AudioSet, 512 ESC-50, 128 Speech Commands). Other lengths still work:
        the embedding is adapted at run time with ``adapt_pos_embed``.
    patch_size : int or tuple of int
        Patch size; a pair is ``(frequency, time)`` (e.g. ``(128, 2)``).
    fstride : int
        Patch stride along frequency (10: 6 bins of overlap).
    tstride : int
        Patch stride along time.
    embed_dim : int
        Width (768 for AST-Base).
    depth : int
        Number of transformer blocks.
    num_heads : int
        Attention heads; must divide ``embed_dim``.
    mlp_ratio : float
        Hidden width of the MLP relative to ``embed_dim``.
    qkv_bias : bool
        Bias on the query/key/value projection (True for DeiT).
    drop_rate : float
        Dropout after the positional embedding and on block projections.
    attn_drop_rate : float
        Dropout on attention weights.
    drop_path_rate : float
        Stochastic depth, increasing linearly over the blocks to this rate.
    norm_eps : float
        LayerNorm epsilon of the blocks and the final norm (1e-6 as DeiT).
    patchout_time : int
        Patchout: number of whole time columns of the patch grid dropped at
        random in every training forward (PaSST uses 40 of AudioSet's 99).
        0 disables it. Ignored in eval mode.
    patchout_freq : int
        Patchout: number of whole frequency rows dropped (PaSST: 4 of 12).
    pooling : str
        The clip embedding of :meth:`forward`: ``"cls"``, the mean of the
        [CLS] and [DIST] outputs (the supervised AST), or ``"mean"``, the
        mean of the patch tokens (SSAST's fine-tuning, ``ft_avgtok``: its
        pretraining supervises every patch token, not [CLS]).

    Notes
    -----
    Patchout drops the same columns and rows for every clip of a batch, as
    PaSST does: the batch stays one dense tensor (a single index_select),
    and over the steps each clip still sees a different random subset. It
    applies after the positional embedding is added, so the kept patches
    keep their own positions, and [CLS]/[DIST] are always kept. The counts
    must leave at least one column and one row of the grid the model is
    built for (``ValueError`` otherwise); an input shorter than that grid
    keeps at least one column (the count is clamped at run time, so short
    clips in a batch do not fail a training run).

    In eval mode, positional embeddings adapted to other grids than the
    built one (native-length inference) are cached; an optimiser step,
    ``load_state_dict`` or ``.to()`` invalidates them, and training mode,
    autograd through ``pos_embed`` and tracing never use the cache
    (:func:`~speechbrain_ast.model.pos_embed.cached_token_pos_embed`).

    The forward traces (``torch.export``, ``torch.onnx.export(...,
    dynamo=True)``, ``torch.compile``) with a dynamic time axis: the grid,
    the padding of short inputs and the positional embedding's adaptation
    are written without branches on the number of frames, so one graph
    serves every length (what an ONNX export of the lobe needs).

    Example
    -------
    >>> model = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2)
    >>> feats = torch.randn(3, 128, 128)
    >>> model(feats).shape
    torch.Size([3, 64])
    >>> model.grid(128), model.num_patches
    ((12, 12), 144)
    >>> model.forward_frames(torch.randn(3, 300, 128)).shape
    torch.Size([3, 29, 64])
    >>> model = AST(
    ...     input_tdim=128,
    ...     embed_dim=64,
    ...     depth=2,
    ...     num_heads=2,
    ...     patchout_time=4,
    ...     patchout_freq=2,
    ... ).train()
    >>> model.forward_features(feats).shape  # 2 + (12 - 2) * (12 - 4)
    torch.Size([3, 82, 64])
    >>> model.eval().forward_features(feats).shape
    torch.Size([3, 146, 64])
    >>> mean = AST(
    ...     input_tdim=128, embed_dim=64, depth=1, num_heads=2, pooling="mean"
    ... )
    >>> bool(
    ...     torch.allclose(
    ...         mean(feats), mean.forward_features(feats)[:, 2:].mean(1)
    ...     )
    ... )
    True
    """

    def __init__(
        self,
        input_fdim=128,
        input_tdim=1024,
        patch_size=16,
        fstride=10,
        tstride=10,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.0,
        norm_eps=1e-6,
        patchout_time=0,
        patchout_freq=0,
        pooling="cls",
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {POOLINGS}; got {pooling!r}."
            )
        pf, pt = as_pair(patch_size, "patch_size")
        if pf < 1 or pt < 1:
            raise ValueError(f"patch_size must be positive; got {patch_size}.")
        if fstride <= 0 or tstride <= 0:
            raise ValueError(
                f"fstride and tstride must be positive; got fstride={fstride}"
                f", tstride={tstride}."
            )
        if pf > input_fdim:
            raise ValueError(
                f"the patch is {pf} bins high but the input has only "
                f"input_fdim={input_fdim} bins; use a patch_size of at most "
                f"{input_fdim} along frequency."
            )
        if pt > input_tdim:
            raise ValueError(
                f"the patch is {pt} frames wide but input_tdim={input_tdim}; "
                f"build the model for at least {pt} frames."
            )
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by "
                f"num_heads={num_heads}; pick a number of heads that divides "
                "it (AST-Base: 768 and 12)."
            )
        # the constructor arguments, from which model folders, encoder files
        # and imported checkpoints rebuild the lobe (plain values, no tuples)
        self.config = dict(
            input_fdim=int(input_fdim),
            input_tdim=int(input_tdim),
            patch_size=[pf, pt],
            fstride=int(fstride),
            tstride=int(tstride),
            embed_dim=int(embed_dim),
            depth=int(depth),
            num_heads=int(num_heads),
            mlp_ratio=float(mlp_ratio),
            qkv_bias=bool(qkv_bias),
            drop_rate=float(drop_rate),
            attn_drop_rate=float(attn_drop_rate),
            drop_path_rate=float(drop_path_rate),
            norm_eps=float(norm_eps),
            patchout_time=int(patchout_time),
            patchout_freq=int(patchout_freq),
            pooling=str(pooling),
        )
        self.input_fdim = input_fdim
        self.input_tdim = input_tdim
        self.patch_size = (pf, pt)
        self.fstride = fstride
        self.tstride = tstride
        self.embed_dim = embed_dim
        self.pooling = pooling
        self.patch_grid = patch_grid(
            input_fdim, input_tdim, (pf, pt), fstride, tstride
        )
        self.patchout_time, self.patchout_freq = self._check_patchout(
            patchout_time, patchout_freq
        )
        # eval-mode cache of adapted positional embeddings, see Notes
        self._pos_cache = {}

        self.patch_embed = PatchEmbed((pf, pt), (fstride, tstride), embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, NUM_TOKENS + self.num_patches, embed_dim)
        )
        self.pos_drop = nn.Dropout(drop_rate)
        drop_paths = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=drop_paths[i],
                norm_layer=partial(nn.LayerNorm, eps=norm_eps),
                act_layer=InplaceGELU,
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self._init_weights()

    def set_pooling(self, pooling):
        """Switches the clip embedding of :meth:`forward` (and the config
        that model folders are written from).

        Arguments
        ---------
        pooling : str
            ``"cls"`` or ``"mean"`` (see the class's arguments).

        Returns
        -------
        AST
            ``self``.

        Example
        -------
        >>> AST(input_tdim=16, embed_dim=8, depth=1, num_heads=2).set_pooling(
        ...     "mean"
        ... ).config["pooling"]
        'mean'
        """
        if pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {POOLINGS}; got {pooling!r}."
            )
        self.pooling = self.config["pooling"] = pooling
        return self

    def _init_weights(self):
        # as timm's ViT/DeiT: truncated normal for tokens, positions, Linear
        for param in (self.cls_token, self.dist_token, self.pos_embed):
            trunc_normal_(param, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _check_patchout(self, patchout_time, patchout_freq):
        f_dim, t_dim = self.patch_grid
        for name, count, size, axis in (
            ("patchout_time", patchout_time, t_dim, "time columns"),
            ("patchout_freq", patchout_freq, f_dim, "frequency rows"),
        ):
            if int(count) != count or not 0 <= count < size:
                raise ValueError(
                    f"{name}={count!r} but the patch grid for input_tdim="
                    f"{self.input_tdim} has {size} {axis} ({f_dim} x "
                    f"{t_dim}): drop between 0 and {size - 1} of them."
                )
        return int(patchout_time), int(patchout_freq)

    @property
    def num_patches(self):
        """Number of patches of the grid the model was built for."""
        return self.patch_grid[0] * self.patch_grid[1]

    def grid(self, num_frames):
        """``(f_dim, t_dim)`` patch grid for an input of ``num_frames``
        (a symbolic size too); inputs shorter than one patch are zero-padded
        to one patch."""
        return patch_grid(
            self.input_fdim,
            torch.sym_max(num_frames, self.patch_size[1]),
            self.patch_size,
            self.fstride,
            self.tstride,
        )

    def check_input(self, x):
        """Raises a ``ValueError`` naming the problem if ``x`` is not
        features ``[batch, time, input_fdim]`` with finite values.

        While tracing (``torch.export``, ``torch.compile``) only the number
        of dimensions and of mel bins are checked: the other sizes may be
        symbolic and the values are unknown.

        Arguments
        ---------
        x : torch.Tensor
            The lobe's input.

        Example
        -------
        >>> lobe = AST(input_tdim=128, embed_dim=8, depth=0, num_heads=2)
        >>> lobe.check_input(torch.zeros(1, 10, 64))
        Traceback (most recent call last):
        ...
        ValueError: AST expects features [batch, time, 128]; received (1, 10, 64). The model was built for input_fdim=128 mel bins: compute features with that many bins (the last axis is frequency).
        """
        expected = f"[batch, time, {self.input_fdim}]"
        if not torch.is_tensor(x) or x.dim() != 3:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f"AST expects features {expected}; received {shape}. Add a "
                "batch dimension for a single clip (x.unsqueeze(0))."
            )
        batch, frames, bins = x.shape
        if bins != self.input_fdim:
            raise ValueError(
                f"AST expects features {expected}; received {tuple(x.shape)}."
                f" The model was built for input_fdim={self.input_fdim} mel "
                "bins: compute features with that many bins (the last axis "
                "is frequency)."
            )
        if torch.compiler.is_compiling():
            return
        if batch == 0 or frames == 0:
            raise ValueError(
                f"AST expects features {expected} with at least one clip and "
                f"one frame; received {tuple(x.shape)}."
            )
        # a sum is NaN/Inf if any element is: one cheap reduction; only if
        # it is not finite (NaN/Inf, or a float overflow) look closer
        if not torch.isfinite(x.sum()) and not torch.isfinite(x).all():
            raise ValueError(
                f"AST received features {tuple(x.shape)} (expected "
                f"{expected}) containing NaN or Inf; check the audio and the "
                "frontend (log of zero energy?)."
            )

    def pos_embed_for(self, grid):
        """The positional embedding for a patch grid, adapted where the grid
        is not the built one and cached in eval mode (see Notes and
        :func:`~speechbrain_ast.model.pos_embed.cached_token_pos_embed`).

        Arguments
        ---------
        grid : tuple of int
            ``(f_dim, t_dim)``; ``t_dim`` may be symbolic while tracing.

        Returns
        -------
        torch.Tensor
            ``[1, 2 + f_dim * t_dim, embed_dim]``: [CLS], [DIST], patches.
        """
        pos, cache = self.pos_embed, self._pos_cache
        return cached_token_pos_embed(
            pos, self.patch_grid, grid, cache, self.training
        )

    def _tokens(
        self,
        x,
        return_hidden_states=False,
        tokens_only=False,
        masked=None,
        mask_embed=None,
    ):
        """``(tokens, hidden_states, grid)``; ``grid`` is the patch grid
        left after patchout. ``tokens_only``: only [CLS] and [DIST] are
        needed from the last block. ``masked``, ``mask_embed``: see
        :meth:`forward_features`."""
        self.check_input(x)
        patch_time = self.patch_size[1]
        if not statically_known_true(x.shape[1] >= patch_time):
            # too short for one patch (or a length known only at run time):
            # pad with silence (zeros) as the reference pads short clips in
            # the log-mel domain; sym_max, not a branch, so a graph traces
            pad = torch.sym_max(patch_time - x.shape[1], 0)
            x = nn.functional.pad(x, (0, 0, 0, pad))
        grid = self.grid(x.shape[1])
        patches = self.patch_embed(x)
        batch = patches.shape[0]
        if masked is not None:
            mask_embed = mask_embed.to(patches.dtype)
            patches = torch.where(masked.unsqueeze(-1), mask_embed, patches)
        pos = self.pos_embed_for(grid)
        # positions are added before patchout, so kept patches carry their
        # own; [CLS] and [DIST] are always kept
        patches = patches + pos[:, NUM_TOKENS:]
        drop = self.patchout_time or self.patchout_freq
        if self.training and drop and masked is None:
            patches, grid = patchout(
                patches, grid, self.patchout_time, self.patchout_freq
            )
        tokens = torch.cat(
            [
                self.cls_token.expand(batch, -1, -1),
                self.dist_token.expand(batch, -1, -1),
            ],
            dim=1,
        )
        x = torch.cat([tokens + pos[:, :NUM_TOKENS], patches], dim=1)
        x = self.pos_drop(x)
        hidden_states = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if i == last and tokens_only and supports_token_only(block):
                x = token_only_block(block, x, NUM_TOKENS)
            else:
                x = block(x)
            if return_hidden_states:
                hidden_states.append(x)
        return self.norm(x), hidden_states, grid

    def forward_features(
        self, x, return_hidden_states=False, masked=None, mask_embed=None
    ):
        """All tokens after the final norm.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, input_fdim]``.
        return_hidden_states : bool
            Also return the output of every block (before the final norm).
        masked : torch.Tensor, optional
            ``[batch, f_dim * t_dim]`` bool: the patches whose embeddings
            are replaced by ``mask_embed`` before the positions are added
            (masked patch modelling, as SSAST pretrains); no patchout then.
        mask_embed : torch.Tensor, optional
            ``[1, 1, embed_dim]``, the embedding of a masked patch.

        Returns
        -------
        tokens : torch.Tensor
            ``[batch, 2 + f_dim * t_dim, embed_dim]``: [CLS], [DIST], then
            the patches frequency-major.
        hidden_states : list of torch.Tensor
            Only with ``return_hidden_states``: ``depth`` tensors shaped as
            ``tokens``.

        In training mode with patchout the patch tokens are those of the
        kept grid, ``2 + (f_dim - patchout_freq) * (t_dim -
        patchout_time)`` tokens.
        """
        x, hidden_states, _ = self._tokens(
            x, return_hidden_states, masked=masked, mask_embed=mask_embed
        )
        if return_hidden_states:
            return x, hidden_states
        return x

    def forward(self, x, lengths=None):
        """Pooled clip embedding: ``(tok[:, 0] + tok[:, 1]) / 2`` with
        ``pooling="cls"``, the mean of the patch tokens with ``"mean"``.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, input_fdim]``.
        lengths : torch.Tensor, optional
            Relative lengths in [0, 1]. Accepted for SpeechBrain's
            ``embedding_model(feats, wav_lens)`` call and unused on purpose:
            the reference attends over the zero-padded frames and the
            pretrained weights expect that.

        With ``"cls"`` the last block computes only the two token outputs
        (the patch tokens still serve as its keys and values): the same
        embedding as ``forward_features``, up to float rounding, with ~7%
        fewer FLOPs.

        Returns
        -------
        torch.Tensor
            ``[batch, embed_dim]``.
        """
        tokens, _, _ = self._tokens(x, tokens_only=self.pooling == "cls")
        return self._pool(tokens)

    def _pool(self, tokens):
        """The clip embedding of the tokens, by the lobe's pooling."""
        if self.pooling == "mean":
            return tokens[:, NUM_TOKENS:].mean(dim=1)
        return (tokens[:, 0] + tokens[:, 1]) / 2

    def forward_frames(self, x, with_clip=False):
        """Frame-level embeddings: patch tokens averaged over frequency.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, input_fdim]``.
        with_clip : bool
            Also return :meth:`forward`'s clip embedding from the same pass
            (equal up to float rounding with ``pooling="cls"``: here the
            last block computes every token).

        Returns
        -------
        torch.Tensor
            ``[batch, t_dim, embed_dim]``, one vector per patch column
            (``tstride`` frames apart); in training mode with patchout,
            one per kept column. With ``with_clip``: ``(clip, frames)``.
        """
        tokens, _, (f_dim, t_dim) = self._tokens(x)
        patches = tokens[:, NUM_TOKENS:].reshape(
            tokens.shape[0], f_dim, t_dim, self.embed_dim
        )
        frames = patches.mean(dim=1)
        return (self._pool(tokens), frames) if with_clip else frames
