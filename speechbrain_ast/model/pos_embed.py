"""The one positional-embedding adaptation of AST.

AST's positional embedding holds the [CLS] and [DIST] tokens' entries, then
those of a 2-D grid of patches (frequency x time).
When the grid changes (ImageNet DeiT 24 x 24 -> AST 12 x 101, an AudioSet
checkpoint's 12 x 101 -> a shorter task, or a runtime input of another
length) the embedding is adapted by the reference rule: time axis first
(centre cut when shrinking, interpolation when growing), then frequency the
same way; the tokens' entries are kept (:func:`adapt_token_pos_embed`),
and in eval mode the result is cached (:func:`cached_token_pos_embed`).
This module is the only place that rule is written. It has no
Python branch on the new sizes, so it also runs inside a graph traced with
a dynamic time axis (the lobe's ONNX export).

Authors
 * speechbrain-ast developers
"""

import torch
import torch.nn.functional as F
from torch.fx.experimental.symbolic_shapes import statically_known_true

__all__ = [
    "NUM_TOKENS",
    "adapt_pos_embed",
    "adapt_token_pos_embed",
    "cached_token_pos_embed",
]

NUM_TOKENS = 2  # [CLS] and [DIST], before the patches
METHODS = ("bilinear", "nearest")


def _check_grid(name, grid):
    # a symbolic size (a traced graph's) is valid by construction
    if (
        not isinstance(grid, (tuple, list))
        or len(grid) != 2
        or any(
            not isinstance(g, torch.SymInt) and (int(g) != g or g < 1)
            for g in grid
        )
    ):
        raise ValueError(
            f"{name} must be (frequency_patches, time_patches), two positive "
            f"integers; got {grid!r}."
        )
    return tuple(g if isinstance(g, torch.SymInt) else int(g) for g in grid)


def _resize_axis(grid, size, axis, method):
    """Centre-cuts or interpolates ``grid`` [B, D, f, t] along ``axis``.

    Both are computed and ``torch.where`` picks one, so a ``size`` known
    only at run time (a traced graph's) needs no Python branch.
    """
    src = grid.shape[axis]
    if statically_known_true(size == src):
        return grid
    positions = torch.arange(size, device=grid.device)
    # the reference keeps the centre patches when shrinking
    start = src // 2 - size // 2
    cut = grid.index_select(axis, (positions + start).clamp(0, src - 1))
    out_size = list(grid.shape[-2:])
    out_size[axis - 2] = size
    if method == "bilinear":
        grown = F.interpolate(
            grid, size=out_size, mode="bilinear", align_corners=False
        )
    else:
        grown = F.interpolate(grid, size=out_size, mode="nearest")
    shrink = positions[-1:] < src  # size <= src, as a one-element tensor
    return torch.where(shrink, cut, grown)


def adapt_pos_embed(patch_pos, src_grid, dst_grid, method="bilinear"):
    """Adapts a patch positional embedding from one patch grid to another.

    The rule of the reference implementation: the embedding is viewed as a
    [D, f, t] image; the time axis is adapted first (centre cut
    ``[s//2 - d//2 : s//2 - d//2 + d]`` when the new size ``d`` is not larger
    than the old size ``s``, else interpolation to ``(src_f, dst_t)``), then
    the frequency axis the same way. Used for ImageNet DeiT weights, AudioSet
    checkpoints and runtime length changes alike.

    Arguments
    ---------
    patch_pos : torch.Tensor
        ``[1, src_f * src_t, D]`` positional embedding of the patches only
        (without the [CLS] / [DIST] token embeddings), frequency-major
        (index = f * src_t + t). A leading batch size other than 1 is
        accepted and adapted row by row.
    src_grid : tuple of int
        ``(src_f, src_t)`` grid that ``patch_pos`` was made for.
    dst_grid : tuple of int
        ``(dst_f, dst_t)`` grid wanted.
    method : str
        ``"bilinear"`` (the paper's choice, ``align_corners=False``) or
        ``"nearest"``, used where an axis grows.

    Returns
    -------
    torch.Tensor
        ``[1, dst_f * dst_t, D]``, frequency-major, same dtype and device.

    Example
    -------
    >>> deit_pos = torch.randn(1, 24 * 24, 768)
    >>> adapt_pos_embed(deit_pos, (24, 24), (12, 101)).shape
    torch.Size([1, 1212, 768])
    >>> same = adapt_pos_embed(deit_pos, (24, 24), (24, 24))
    >>> torch.equal(same, deit_pos)
    True
    """
    if method not in METHODS:
        raise ValueError(
            f"method must be one of {METHODS}; got {method!r}. The paper's "
            "'reinit' option means not adapting at all: keep the fresh "
            "initialisation instead of calling adapt_pos_embed."
        )
    src_f, src_t = _check_grid("src_grid", src_grid)
    dst_f, dst_t = _check_grid("dst_grid", dst_grid)
    if not torch.is_tensor(patch_pos) or patch_pos.dim() != 3:
        shape = tuple(patch_pos.shape) if torch.is_tensor(patch_pos) else None
        raise ValueError(
            "patch_pos must be a tensor [1, num_patches, embed_dim]; got "
            f"shape {shape}."
        )
    batch, num, dim = patch_pos.shape
    if num != src_f * src_t:
        raise ValueError(
            f"patch_pos has {num} patch embeddings but src_grid {src_f} x "
            f"{src_t} needs {src_f * src_t}. Pass the embedding without the "
            "two token embeddings ([CLS], [DIST]) and the grid it was made "
            "for."
        )
    if statically_known_true(src_f == dst_f) and statically_known_true(
        src_t == dst_t
    ):
        return patch_pos
    grid = patch_pos.transpose(1, 2).reshape(batch, dim, src_f, src_t)
    grid = _resize_axis(grid, dst_t, 3, method)
    grid = _resize_axis(grid, dst_f, 2, method)
    grid = grid.reshape(batch, dim, dst_f * dst_t)
    return grid.transpose(1, 2).contiguous()


def adapt_token_pos_embed(pos, src_grid, dst_grid, method="bilinear"):
    """A lobe's whole ``pos_embed`` ([CLS], [DIST], then the patch grid)
    moved to another patch grid: the tokens' embeddings kept, the patches'
    adapted with :func:`adapt_pos_embed`.

    Arguments
    ---------
    pos : torch.Tensor
        ``[1, 2 + f * t, D]`` for ``src_grid`` ``(f, t)``.
    src_grid, dst_grid : tuple of int
        ``(frequency, time)`` patches before and after.
    method : str
        ``"bilinear"`` or ``"nearest"`` where an axis grows.

    Returns
    -------
    torch.Tensor
        ``[1, 2 + f' * t', D]``.

    Example
    -------
    >>> adapt_token_pos_embed(
    ...     torch.zeros(1, 2 + 12 * 101, 8), (12, 101), (12, 5)
    ... ).shape
    torch.Size([1, 62, 8])
    """
    patch_pos = adapt_pos_embed(pos[:, NUM_TOKENS:], src_grid, dst_grid, method)
    return torch.cat([pos[:, :NUM_TOKENS], patch_pos], dim=1)


def cached_token_pos_embed(pos, src_grid, dst_grid, cache, training=False):
    """A lobe's ``pos_embed`` for a patch grid: itself on ``src_grid``, else
    :func:`adapt_token_pos_embed`'s result, kept in ``cache`` in eval mode.

    An entry of ``cache`` (``{grid: (source, version, adapted)}``) is used
    while the source keeps its storage, version, dtype and device, so an
    optimiser step, ``load_state_dict`` or ``.to()`` invalidates it; the
    source is kept alive in the entry, so its storage address cannot be
    reused by another tensor meanwhile. Training mode (the parameter changes
    every step: the cache is emptied), autograd through ``pos`` and tracing
    (a graph adapts for any length) adapt anew and store nothing.

    Arguments
    ---------
    pos : torch.Tensor
        ``[1, 2 + f * t, D]`` for ``src_grid`` ``(f, t)``.
    src_grid, dst_grid : tuple of int
        The grid ``pos`` is built for and the one wanted (its sizes may be
        symbolic while tracing).
    cache : dict
        The lobe's cache, filled and emptied here.
    training : bool
        Whether the lobe is in training mode.

    Returns
    -------
    torch.Tensor
        ``[1, 2 + f' * t', D]``.

    Example
    -------
    >>> cache, pos = {}, torch.randn(1, 2 + 12 * 12, 8)
    >>> short = cached_token_pos_embed(pos, (12, 12), (12, 5), cache)
    >>> short.shape, list(cache)
    (torch.Size([1, 62, 8]), [(12, 5)])
    >>> cached_token_pos_embed(pos, (12, 12), (12, 5), cache) is short
    True
    """
    if all(statically_known_true(a == b) for a, b in zip(dst_grid, src_grid)):
        return pos
    if training:
        # the parameter changes every step: entries would only go stale
        cache.clear()
        return adapt_token_pos_embed(pos, src_grid, dst_grid)
    if torch.compiler.is_compiling() or (
        torch.is_grad_enabled() and pos.requires_grad
    ):
        # a traced graph adapts for any length; a gradient must flow
        # through the adaptation
        return adapt_token_pos_embed(pos, src_grid, dst_grid)
    entry = cache.get(dst_grid)
    if (
        entry is not None
        and entry[0].data_ptr() == pos.data_ptr()
        and entry[1] == pos._version
        and entry[0].dtype == pos.dtype
        and entry[0].device == pos.device
    ):
        return entry[2]
    # a plain tensor (not an inference-mode one), with no graph, so that
    # the entry can be reused outside inference mode and deep-copied
    with torch.inference_mode(False), torch.no_grad():
        adapted = adapt_token_pos_embed(pos, src_grid, dst_grid).detach()
    if len(cache) >= 8:  # a few lengths in use at a time
        cache.clear()
    cache[dst_grid] = (pos.detach(), pos._version, adapted)
    return adapted
