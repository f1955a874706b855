"""The AST lobe (Audio Spectrogram Transformer) and its classification head.

AST is a DeiT-distilled ViT whose patches are cut from a log-mel spectrogram
with overlap: a 1-channel patch convolution over (frequency, time), a [CLS]
and a [DIST] token, a learnable positional embedding over the patch grid,
pre-norm transformer blocks (timm's ``Block``, fused attention) and a final
LayerNorm. Parameter names are timm DeiT's, so ImageNet weights and the
reference AudioSet checkpoints load by key.

Authors
 * speechbrain-ast developers
"""

from functools import partial

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block

from speechbrain_ast.pos_embed import adapt_pos_embed

NUM_TOKENS = 2  # [CLS] and [DIST]


def _pair(value, name):
    if isinstance(value, int):
        return value, value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(
        f"{name} must be an int or a pair (frequency, time); got {value!r}."
    )


def patch_grid(input_fdim, input_tdim, patch_size=16, fstride=10, tstride=10):
    """Number of patches along frequency and time for a spectrogram size.

    Arguments
    ---------
    input_fdim : int
        Number of mel bins.
    input_tdim : int
        Number of frames.
    patch_size : int or tuple of int
        Patch size, or ``(frequency, time)`` sizes.
    fstride : int
        Patch stride along frequency.
    tstride : int
        Patch stride along time.

    Returns
    -------
    tuple of int
        ``(f_dim, t_dim)`` = ``((F - pf) // fstride + 1, (T - pt) // tstride
        + 1)`` (0 where the input is shorter than a patch).

    Example
    -------
    >>> patch_grid(128, 1024)
    (12, 101)
    >>> patch_grid(128, 1024, patch_size=(128, 2), fstride=128, tstride=2)
    (1, 512)
    """
    pf, pt = _pair(patch_size, "patch_size")
    f_dim = (input_fdim - pf) // fstride + 1 if input_fdim >= pf else 0
    t_dim = (input_tdim - pt) // tstride + 1 if input_tdim >= pt else 0
    return f_dim, t_dim


class PatchEmbed(nn.Module):
    """Cuts a [B, T, F] spectrogram into overlapping patches and embeds them.

    The spectrogram is seen as a 1-channel image with frequency as height and
    time as width; the patch grid is flattened frequency-major.

    Arguments
    ---------
    patch_size : tuple of int
        ``(frequency, time)`` size of a patch.
    stride : tuple of int
        ``(fstride, tstride)``.
    embed_dim : int
        Width of the patch embeddings.

    Example
    -------
    >>> embed = PatchEmbed((16, 16), (10, 10), 64)
    >>> embed(torch.randn(2, 128, 128)).shape
    torch.Size([2, 144, 64])
    """

    def __init__(self, patch_size, stride, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(
            1, embed_dim, kernel_size=patch_size, stride=stride
        )

    def forward(self, x):
        """[B, T, F] -> [B, f_dim * t_dim, D], frequency-major."""
        x = self.proj(x.unsqueeze(1).transpose(2, 3))
        return x.flatten(2).transpose(1, 2)


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
    ):
        super().__init__()
        pf, pt = _pair(patch_size, "patch_size")
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
        self.input_fdim = input_fdim
        self.input_tdim = input_tdim
        self.patch_size = (pf, pt)
        self.fstride = fstride
        self.tstride = tstride
        self.embed_dim = embed_dim
        self.patch_grid = patch_grid(
            input_fdim, input_tdim, (pf, pt), fstride, tstride
        )

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
            )
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self._init_weights()

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

    @property
    def num_patches(self):
        """Number of patches of the grid the model was built for."""
        return self.patch_grid[0] * self.patch_grid[1]

    def grid(self, num_frames):
        """``(f_dim, t_dim)`` patch grid for an input of ``num_frames``.

        Inputs shorter than one patch are zero-padded to one patch.
        """
        num_frames = max(int(num_frames), self.patch_size[1])
        return patch_grid(
            self.input_fdim,
            num_frames,
            self.patch_size,
            self.fstride,
            self.tstride,
        )

    def _check_input(self, x):
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
        if batch == 0 or frames == 0:
            raise ValueError(
                f"AST expects features {expected} with at least one clip and "
                f"one frame; received {tuple(x.shape)}."
            )
        if not torch.isfinite(x).all():
            raise ValueError(
                f"AST received features {tuple(x.shape)} (expected "
                f"{expected}) containing NaN or Inf; check the audio and the "
                "frontend (log of zero energy?)."
            )

    def _pos_embed_for(self, grid):
        """The positional embedding for a patch grid (adapted if needed)."""
        if grid == self.patch_grid:
            return self.pos_embed
        patch_pos = adapt_pos_embed(
            self.pos_embed[:, NUM_TOKENS:], self.patch_grid, grid
        )
        return torch.cat([self.pos_embed[:, :NUM_TOKENS], patch_pos], dim=1)

    def forward_features(self, x, return_hidden_states=False):
        """All tokens after the final norm.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, input_fdim]``.
        return_hidden_states : bool
            Also return the output of every block (before the final norm).

        Returns
        -------
        tokens : torch.Tensor
            ``[batch, 2 + f_dim * t_dim, embed_dim]``: [CLS], [DIST], then
            the patches frequency-major.
        hidden_states : list of torch.Tensor
            Only with ``return_hidden_states``: ``depth`` tensors shaped as
            ``tokens``.
        """
        self._check_input(x)
        if x.shape[1] < self.patch_size[1]:
            # too short for one patch: pad with silence (zeros) as the
            # reference pads short clips in the log-mel domain
            pad = self.patch_size[1] - x.shape[1]
            x = nn.functional.pad(x, (0, 0, 0, pad))
        grid = self.grid(x.shape[1])
        patches = self.patch_embed(x)
        batch = patches.shape[0]
        tokens = torch.cat(
            [
                self.cls_token.expand(batch, -1, -1),
                self.dist_token.expand(batch, -1, -1),
                patches,
            ],
            dim=1,
        )
        x = self.pos_drop(tokens + self._pos_embed_for(grid))
        hidden_states = []
        for block in self.blocks:
            x = block(x)
            if return_hidden_states:
                hidden_states.append(x)
        x = self.norm(x)
        if return_hidden_states:
            return x, hidden_states
        return x

    def forward(self, x, lengths=None):
        """Pooled clip embedding ``(tok[:, 0] + tok[:, 1]) / 2``.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, input_fdim]``.
        lengths : torch.Tensor, optional
            Relative lengths in [0, 1]. Accepted for SpeechBrain's
            ``embedding_model(feats, wav_lens)`` call and unused on purpose:
            the reference attends over the zero-padded frames and the
            pretrained weights expect that.

        Returns
        -------
        torch.Tensor
            ``[batch, embed_dim]``.
        """
        tokens = self.forward_features(x)
        return (tokens[:, 0] + tokens[:, 1]) / 2

    def forward_frames(self, x):
        """Frame-level embeddings: patch tokens averaged over frequency.

        Arguments
        ---------
        x : torch.Tensor
            Features ``[batch, time, input_fdim]``.

        Returns
        -------
        torch.Tensor
            ``[batch, t_dim, embed_dim]``, one vector per patch column
            (``tstride`` frames apart).
        """
        tokens = self.forward_features(x)
        f_dim, t_dim = self.grid(x.shape[1])
        patches = tokens[:, NUM_TOKENS:].reshape(
            tokens.shape[0], f_dim, t_dim, self.embed_dim
        )
        return patches.mean(dim=1)


class ASTHead(nn.Sequential):
    """AST's classification head: LayerNorm + Linear on the pooled embedding.

    Keys ``0.*`` (LayerNorm) and ``1.*`` (Linear) equal the reference
    ``mlp_head.*``. It returns logits: sigmoid for multi-label tasks,
    softmax / cross-entropy for single-label ones.

    Arguments
    ---------
    embed_dim : int
        Width of the embedding.
    n_classes : int
        Number of classes.
    norm_eps : float
        LayerNorm epsilon (1e-5 in the reference, PyTorch's default).

    Example
    -------
    >>> head = ASTHead(64, 10)
    >>> head(torch.randn(3, 64)).shape
    torch.Size([3, 10])
    """

    def __init__(self, embed_dim, n_classes, norm_eps=1e-5):
        if n_classes < 1 or embed_dim < 1:
            raise ValueError(
                "ASTHead needs embed_dim >= 1 and n_classes >= 1; got "
                f"embed_dim={embed_dim}, n_classes={n_classes}."
            )
        super().__init__(
            nn.LayerNorm(embed_dim, eps=norm_eps),
            nn.Linear(embed_dim, n_classes),
        )
