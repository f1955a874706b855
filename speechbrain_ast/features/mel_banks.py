"""Kaldi's triangular mel filterbank as a matrix (:func:`kaldi_mel_banks`),
and its split into groups of mel bins, each with the band of FFT bins its
triangles cover (:func:`mel_groups`): the matrix is mostly zeros, and
:class:`~speechbrain_ast.features.KaldiFbank`'s CPU inference path
multiplies each group by its own band.

Authors
 * speechbrain-ast developers
"""

import math

import torch
import torch.nn.functional as F
import torchaudio

__all__ = ["MEL_GROUPS", "kaldi_mel_banks", "mel_groups"]

# contiguous groups of mel bins the CPU inference path multiplies separately
MEL_GROUPS = 4


def kaldi_mel_banks(n_mels, n_fft, sample_rate, low_freq=20.0, high_freq=0.0):
    """Kaldi's triangular mel filterbank as a ``[n_fft // 2 + 1, n_mels]``
    matrix (power spectrum bins x mel bins), in float64.

    The triangles are torchaudio's (``compliance.kaldi.get_mel_banks``:
    linear in mel = 1127 ln(1 + f / 700), edges equally spaced in mel
    between ``low_freq`` and ``high_freq``), computed in float64 and with
    the Nyquist bin added as a row of zeros (Kaldi gives it no weight).
    With AST's settings (128 bins, 512 FFT points) mel bin 3 falls between
    two FFT bins and is all zero, so its log-mel is always log(eps), in the
    reference too.

    Arguments
    ---------
    n_mels : int
        Number of mel bins (more than 3).
    n_fft : int
        FFT size (even), e.g. 512.
    sample_rate : float
        Sample rate in Hz.
    low_freq : float
        Low edge of the first triangle in Hz.
    high_freq : float
        High edge of the last triangle in Hz; a value <= 0 is added to the
        Nyquist frequency (Kaldi's convention, 0 means Nyquist).

    Returns
    -------
    torch.Tensor
        ``[n_fft // 2 + 1, n_mels]`` float64.

    Example
    -------
    >>> banks = kaldi_mel_banks(128, 512, 16000)
    >>> banks.shape, banks.dtype
    (torch.Size([257, 128]), torch.float64)
    """
    nyquist = 0.5 * sample_rate
    high = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not (0.0 <= low_freq < high <= nyquist):
        raise ValueError(
            f"Need 0 <= low_freq < high_freq <= Nyquist ({nyquist} Hz), got "
            f"low_freq={low_freq}, high_freq={high_freq}: choose frequencies "
            "inside the sample rate's range."
        )
    if n_mels <= 3 or n_fft % 2:
        raise ValueError(
            f"Need n_mels > 3 and an even n_fft, got n_mels={n_mels}, "
            f"n_fft={n_fft}."
        )
    # torchaudio builds the banks in the default dtype: float64 here
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        banks, _ = torchaudio.compliance.kaldi.get_mel_banks(
            n_mels, n_fft, float(sample_rate), float(low_freq), float(high),
            100.0, -500.0, 1.0,
        )  # fmt: skip
    finally:
        torch.set_default_dtype(previous)
    return F.pad(banks.double(), (0, 1)).T.contiguous()


def mel_groups(banks, groups=MEL_GROUPS):
    """Split a ``[bins, mels]`` filterbank into contiguous groups of mel
    bins, each with the band of FFT bins its triangles cover.

    Each FFT bin feeds at most two triangles, so the matrix is mostly zeros
    (98 % for AST's 257 x 128); multiplying each group by its own band does
    a fraction of the dense work. The split minimises the total band x mels
    area (dynamic programming over the split points).

    Arguments
    ---------
    banks : torch.Tensor
        ``[bins, mels]`` filterbank (:func:`kaldi_mel_banks`).
    groups : int
        How many groups (at most one per mel bin).

    Returns
    -------
    list of tuple
        ``(mel_start, mel_end, bin_start, bin_end)`` per group, covering
        every mel bin in order; an all-zero group has an empty band.

    Example
    -------
    >>> banks = kaldi_mel_banks(128, 512, 16000)
    >>> power = torch.rand(3, 257, dtype=torch.float64)
    >>> grouped = torch.cat(
    ...     [
    ...         power[:, b0:b1] @ banks[b0:b1, m0:m1]
    ...         for m0, m1, b0, b1 in mel_groups(banks)
    ...     ],
    ...     dim=1,
    ... )
    >>> bool(torch.allclose(grouped, power @ banks))
    True
    """
    n_bins, n_mels = banks.shape
    groups = min(groups, n_mels)
    nonzero = banks != 0
    rows = torch.arange(n_bins).unsqueeze(1)
    first = torch.where(nonzero, rows, n_bins).amin(0)
    end = torch.where(nonzero, rows + 1, 0).amax(0)
    # band of the mels a..b (inclusive) at [a, b]
    idx = torch.arange(n_mels)
    inside = idx.unsqueeze(0) >= idx.unsqueeze(1)
    band_start = torch.where(inside, first, n_bins).cummin(1).values
    band_end = torch.where(inside, end, 0).cummax(1).values
    width = (band_end - band_start).clamp(min=0)
    area = width * (idx.unsqueeze(0) - idx.unsqueeze(1) + 1)
    area = torch.where(inside, area.double(), math.inf)
    # cost[a]: least area covering mels 0..a-1 with the groups so far
    cost = torch.full((n_mels + 1,), math.inf, dtype=torch.float64)
    cost[0] = 0.0
    starts = []
    for _ in range(groups):
        total = cost[:n_mels].unsqueeze(1) + area
        best, start = total.min(0)
        cost = torch.cat([cost.new_full((1,), math.inf), best])
        starts.append(start)
    split, b = [], n_mels - 1
    for start in reversed(starts):
        a = int(start[b])
        split.append((a, b + 1))
        b = a - 1
    out = []
    for a, b in reversed(split):
        lo, hi = int(band_start[a, b - 1]), int(band_end[a, b - 1])
        out.append((a, b, lo, hi) if hi > lo else (a, b, 0, 0))
    return out
