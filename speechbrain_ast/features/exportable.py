"""The Kaldi frontend in operations an ONNX graph has: the per-frame steps
up to the spectrum as one linear map (:func:`kaldi_frame_kernel`) and the
module built on it (:class:`ExportableFbank`).

Authors
 * speechbrain-ast developers
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain_ast.features.fbank import _LOG_FLOOR, KaldiFbank, _window

__all__ = ["ExportableFbank", "kaldi_frame_kernel"]


def kaldi_frame_kernel(frontend):
    """Kaldi's per-frame steps up to the spectrum as one linear map.

    DC-offset removal, pre-emphasis (first sample replicated), the window
    and the real DFT of the zero-padded frame are all linear in the frame's
    samples, so together they are one ``[2 * (n_fft // 2 + 1),
    win_length]`` matrix: the real parts' rows, then the imaginary parts'.
    Computed in float64 by putting the identity through the same steps.

    Arguments
    ---------
    frontend : KaldiFbank
        Its frame, window, pre-emphasis and DC settings are used.

    Returns
    -------
    torch.Tensor
        ``[2 * bins, win_length]`` float64.

    Example
    -------
    >>> fbank = KaldiFbank()
    >>> kaldi_frame_kernel(fbank).shape
    torch.Size([514, 400])
    """
    win, n_fft = frontend.win_length, frontend.n_fft
    frames = torch.eye(win, dtype=torch.float64)  # row i: the unit frame e_i
    if frontend.remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    a = frontend.preemphasis
    if a != 0.0:
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=-1)
        frames = frames - a * previous
    frames = frames * _window(frontend.window_type, win)
    # the DFT of a frame zero-padded to n_fft, bins 0 .. n_fft / 2
    angle = (2 * math.pi / n_fft) * torch.outer(
        torch.arange(win, dtype=torch.float64),
        torch.arange(n_fft // 2 + 1, dtype=torch.float64),
    )
    real = frames @ torch.cos(angle)
    imag = frames @ -torch.sin(angle)
    return torch.cat([real, imag], dim=1).T.contiguous()


class ExportableFbank(nn.Module):
    """:class:`KaldiFbank` in operations an ONNX graph has: for export.

    ``torch.fft`` has no ONNX counterpart the exporters can write, and the
    CPU inference path loops over clips in Python. This module computes the
    same features for a batch of equal-length clips with one strided 1-D
    convolution (:func:`kaldi_frame_kernel`: every frame's DC removal,
    pre-emphasis, window and DFT), squares, a matrix product with the mel
    filterbank and a floored log; the frame count and ``target_length``
    are written as slices and padding that work for any input length
    (a clip shorter than one frame has no frames, as in ``KaldiFbank``).
    Dither (training only) is left out. The numbers equal ``KaldiFbank``'s
    to float32 rounding (the sums run in another order).

    Arguments
    ---------
    frontend : KaldiFbank
        The frontend to reproduce.
    dtype : torch.dtype
        The dtype of the computation (float32 for export; float64 checks
        the arithmetic against ``KaldiFbank`` in float64).

    Example
    -------
    >>> fbank = KaldiFbank(target_length=128)
    >>> wavs = torch.rand(2, 16000, generator=torch.Generator().manual_seed(0))
    >>> wavs = wavs - 0.5
    >>> out = ExportableFbank(fbank)(wavs)
    >>> out.shape
    torch.Size([2, 128, 128])
    >>> bool((out - fbank(wavs)).abs().max() < 1e-3)
    True
    """

    def __init__(self, frontend, dtype=torch.float32):
        super().__init__()
        if not isinstance(frontend, KaldiFbank):
            raise ValueError(
                "ExportableFbank reproduces a KaldiFbank; got "
                f"{type(frontend).__name__}."
            )
        self.win_length = frontend.win_length
        self.hop_length = frontend.hop_length
        self.n_bins = frontend.n_fft // 2 + 1
        self.demean_waveform = frontend.demean_waveform
        self.target_length = frontend.target_length
        kernel = kaldi_frame_kernel(frontend).to(dtype).unsqueeze(1)
        self.register_buffer("kernel", kernel, persistent=False)
        self.register_buffer(
            "mel_banks", frontend.mel_banks.to(dtype), persistent=False
        )

    def forward(self, wavs):
        """Log-mel features of ``wavs`` ``[batch, samples]`` (every clip
        its full length): ``[batch, frames, n_mels]`` in the buffers' dtype
        (float32; float64 after ``.double()``), ``frames`` as
        :class:`KaldiFbank` gives them."""
        wavs = wavs.to(self.kernel.dtype)
        if self.demean_waveform:
            wavs = wavs - wavs.mean(dim=1, keepdim=True)
        n = wavs.shape[1]
        win, hop = self.win_length, self.hop_length
        # one frame of zeros at the end: a frame for any length, the
        # extra ones are cut below
        padded = F.pad(wavs, (0, win)).unsqueeze(1)
        spectrum = F.conv1d(padded, self.kernel, stride=hop)
        real, imag = spectrum[:, : self.n_bins], spectrum[:, self.n_bins :]
        power = (real * real + imag * imag).transpose(1, 2)
        mel = torch.matmul(power, self.mel_banks)
        feats = torch.log(torch.clamp(mel, min=_LOG_FLOOR))
        # Kaldi's snip_edges count, 0 below one frame, as slice arithmetic
        count = torch.sym_max(n - win + hop, 0) // hop
        feats = feats[:, :count]
        if self.target_length is not None:
            target = int(self.target_length)
            feats = F.pad(feats, (0, 0, 0, target))[:, :target]
        return feats
