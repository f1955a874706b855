"""SSAST's masks and targets: which patches are masked (clusters of
neighbours for patch-based models, :func:`cluster_mask`; uniform frames for
frame-based ones, :func:`frame_mask`) and the raw patch values the
generative objective reconstructs (:func:`patch_values`).

Authors
 * speechbrain-ast developers
"""

import random

import torch
import torch.nn.functional as F

__all__ = ["cluster_mask", "frame_mask", "patch_values"]


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
