"""The parts of the AST lobe around timm's transformer blocks.

The patch grid of a spectrogram and its patch embedding (overlapping
patches, unlike timm's ``PatchEmbed``), PaSST's patchout, an in-place GELU
for inference, and the last block computed for the [CLS] / [DIST] tokens
only. The grid
arithmetic uses ``torch.sym_max`` instead of Python branches, so a symbolic
number of frames (``torch.export`` with a dynamic time axis) traces through.

Authors
 * speechbrain-ast developers
"""

import torch
import torch.nn as nn
from timm.layers import Attention
from timm.models.vision_transformer import Block

__all__ = [
    "InplaceGELU",
    "PatchEmbed",
    "as_pair",
    "patch_grid",
    "patchout",
    "supports_token_only",
    "token_only_block",
]


def as_pair(value, name):
    """``(frequency, time)`` from an int or a pair, as ints.

    Arguments
    ---------
    value : int or tuple of int
        One size for both axes, or ``(frequency, time)``.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    tuple of int

    Example
    -------
    >>> as_pair(16, "patch_size"), as_pair([128, 2], "patch_size")
    ((16, 16), (128, 2))
    """
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
        Number of frames (a symbolic size too).
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
    >>> patch_grid(128, 10)
    (12, 0)
    """
    pf, pt = as_pair(patch_size, "patch_size")
    # (size - patch) // stride + 1 is <= 0 exactly when size < patch
    f_dim = torch.sym_max((input_fdim - pf) // fstride + 1, 0)
    t_dim = torch.sym_max((input_tdim - pt) // tstride + 1, 0)
    return f_dim, t_dim


class PatchEmbed(nn.Module):
    """Cuts a [B, T, F] spectrogram into overlapping patches and embeds them.

    The spectrogram is seen as a 1-channel image with frequency as height and
    time as width; the patch grid is flattened frequency-major. timm's
    ``PatchEmbed`` has no stride of its own (patches do not overlap there).

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


def patchout(patches, grid, drop_time, drop_freq):
    """Drops random whole time columns and frequency rows of a patch grid
    (PaSST's patchout, Koutini et al. 2022).

    The same columns and rows for every clip of the batch: the result stays
    one dense tensor. An input shorter than ``drop_time + 1`` columns
    (``drop_freq + 1`` rows) keeps one.

    Arguments
    ---------
    patches : torch.Tensor
        ``[batch, f_dim * t_dim, dim]``, frequency-major.
    grid : tuple of int
        ``(f_dim, t_dim)``.
    drop_time : int
        Time columns to drop.
    drop_freq : int
        Frequency rows to drop.

    Returns
    -------
    patches : torch.Tensor
        ``[batch, kept_f * kept_t, dim]``, frequency-major, in order.
    grid : tuple of int
        ``(kept_f, kept_t)``.

    Example
    -------
    >>> patches = torch.arange(12.0).reshape(1, 12, 1)  # a 3 x 4 grid
    >>> kept, grid = patchout(patches, (3, 4), drop_time=2, drop_freq=1)
    >>> kept.shape, grid
    (torch.Size([1, 4, 1]), (2, 2))
    """
    f_dim, t_dim = grid
    drop_t = min(drop_time, t_dim - 1)
    drop_f = min(drop_freq, f_dim - 1)
    if drop_t == 0 and drop_f == 0:
        return patches, grid
    batch, _, dim = patches.shape
    patches = patches.reshape(batch, f_dim, t_dim, dim)
    device = patches.device
    # sorted, so the kept grid stays frequency-major in time order
    if drop_t:
        keep = torch.randperm(t_dim, device=device)[: t_dim - drop_t]
        patches = patches.index_select(2, keep.sort().values)
    if drop_f:
        keep = torch.randperm(f_dim, device=device)[: f_dim - drop_f]
        patches = patches.index_select(1, keep.sort().values)
    grid = (f_dim - drop_f, t_dim - drop_t)
    return patches.reshape(batch, grid[0] * grid[1], dim), grid


class InplaceGELU(nn.GELU):
    """Exact (erf) GELU that overwrites its input when no gradient is
    needed.

    In timm's ``Mlp`` the activation's input is the first layer's fresh
    output, used nowhere else; the hidden activations (4x the width) are the
    largest tensors of a forward pass, and not allocating a second copy
    makes AST-Base's CPU inference about 2% faster, with the same numbers.
    With autograd it is ``nn.GELU``.

    Example
    -------
    >>> x = torch.randn(3)
    >>> y = InplaceGELU()(x.clone())
    >>> bool(torch.equal(y, nn.functional.gelu(x)))
    True
    """

    def forward(self, x):
        """GELU, in place when no gradient is needed."""
        if x.requires_grad and torch.is_grad_enabled():
            return super().forward(x)
        return torch.ops.aten.gelu_(x)


def supports_token_only(block):
    """Whether :func:`token_only_block` reproduces ``block``: timm's plain
    ``Block`` with its ``Attention`` (no gate).

    Arguments
    ---------
    block : torch.nn.Module
        A transformer block.

    Returns
    -------
    bool

    Example
    -------
    >>> supports_token_only(Block(dim=8, num_heads=2))
    True
    >>> supports_token_only(nn.Identity())
    False
    """
    return (
        type(block) is Block
        and type(block.attn) is Attention
        and getattr(block.attn, "gate", None) is None
    )


def token_only_block(block, x, num_tokens):
    """``block(x)[:, :num_tokens]`` without computing the other outputs.

    The pooled embedding reads only [CLS] and [DIST], so in the last block
    the patch tokens are needed as keys and values but not as queries:
    their attention rows, output projection and MLP (about 7% of AST-Base's
    FLOPs) are skipped. The modules are timm's, called in ``Block``'s
    order; :func:`supports_token_only` says when this applies.

    Arguments
    ---------
    block : timm.models.vision_transformer.Block
        The block.
    x : torch.Tensor
        Its input ``[batch, tokens, dim]``.
    num_tokens : int
        How many leading tokens to compute.

    Returns
    -------
    torch.Tensor
        ``[batch, num_tokens, dim]``.

    Example
    -------
    >>> block = Block(dim=8, num_heads=2).eval()
    >>> x = torch.randn(2, 10, 8)
    >>> got = token_only_block(block, x, 2)
    >>> bool(torch.allclose(got, block(x)[:, :2], atol=1e-6))
    True
    """
    attn = block.attn
    batch, n, _ = x.shape
    qkv = attn.qkv(block.norm1(x))
    qkv = qkv.reshape(batch, n, 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q[:, :, :num_tokens]), attn.k_norm(k)
    dropout = attn.attn_drop.p if attn.training else 0.0
    out = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    out = out.transpose(1, 2).reshape(batch, num_tokens, attn.attn_dim)
    out = attn.proj_drop(attn.proj(attn.norm(out)))
    x = x[:, :num_tokens] + block.drop_path1(block.ls1(out))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
