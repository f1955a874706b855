"""The AST frontend: Kaldi-exact batched log-mel filterbank, pad/cut and the
fixed-statistics normalisation the pretrained weights were trained with.

AST's weights only transfer through the frontend they were trained on,
``torchaudio.compliance.kaldi.fbank(wave, htk_compat=True,
sample_frequency=16000, use_energy=False, window_type='hanning',
num_mel_bins=128, dither=0.0, frame_shift=10)``, which works on one clip at a
time on the CPU. :class:`KaldiFbank` computes the same numbers for a padded
batch on any device and is differentiable.

Authors
 * speechbrain-ast developers
"""

import math
import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DATASET_STATS",
    "ExportableFbank",
    "TORCHAUDIO_FBANK_KWARGS",
    "FixedNormalization",
    "KaldiFbank",
    "compute_norm_stats",
    "kaldi_frame_kernel",
    "kaldi_mel_banks",
    "pad_or_cut",
]

# The reference's call of torchaudio.compliance.kaldi.fbank (and what
# transformers' ASTFeatureExtractor passes): KaldiFbank() with its defaults
# computes the same features, batched
TORCHAUDIO_FBANK_KWARGS = dict(
    htk_compat=True,
    sample_frequency=16000,
    use_energy=False,
    window_type="hanning",
    num_mel_bins=128,
    dither=0.0,
    frame_shift=10,
)

# Kaldi floors spectra at numeric_limits<float>::epsilon() whatever the dtype
_LOG_FLOOR = torch.finfo(torch.float32).eps
# frames per block on the CPU with autograd (256 x 512 floats: the
# temporaries fit in L2)
_CPU_BLOCK = 256
# frames per block of the CPU inference path (a 10 s clip's 998 in one): its
# buffers are reused, so fewer, larger blocks win over cache residency
_CPU_INFERENCE_BLOCK = 1024
# contiguous groups of mel bins the CPU inference path multiplies separately
_MEL_GROUPS = 4

# (mean, std) of the reference log-mel features, from the AST repository
DATASET_STATS = {
    "audioset": (-4.2677393, 4.5689974),
    "esc50": (-6.6268077, 5.358466),
    "speechcommands": (-6.845978, 5.5654526),
}

_WINDOWS = ("hanning", "hamming", "povey", "rectangular", "blackman")


def _mel(freq):
    """Kaldi/HTK mel scale (natural log form)."""
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(n_mels, n_fft, sample_rate, low_freq=20.0, high_freq=0.0):
    """Kaldi's triangular mel filterbank as a ``[n_fft // 2 + 1, n_mels]``
    matrix (power spectrum bins x mel bins).

    Triangles are linear in the mel domain (mel = 1127 ln(1 + f / 700)),
    their edges equally spaced in mel between ``low_freq`` and ``high_freq``.
    As in Kaldi the Nyquist bin gets no weight. Computed in float64.
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
    if high_freq <= 0.0:
        high_freq += nyquist
    if not (0.0 <= low_freq < high_freq <= nyquist):
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
    dtype = torch.float64
    mel_low = _mel(torch.tensor(low_freq, dtype=dtype))
    mel_high = _mel(torch.tensor(high_freq, dtype=dtype))
    delta = (mel_high - mel_low) / (n_mels + 1)
    idx = torch.arange(n_mels, dtype=dtype).unsqueeze(1)
    left = mel_low + idx * delta
    center = left + delta
    right = left + 2 * delta
    fft_bin_width = sample_rate / n_fft
    mel = _mel(fft_bin_width * torch.arange(n_fft // 2, dtype=dtype))
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    # Kaldi leaves the Nyquist bin out of every triangle
    banks = F.pad(banks, (0, 1))
    return banks.T.contiguous()


def _mel_groups(banks, groups=_MEL_GROUPS):
    """Split a ``[bins, mels]`` filterbank into contiguous groups of mel
    bins, each with the band of FFT bins its triangles cover.

    Each FFT bin feeds at most two triangles, so the matrix is mostly zeros
    (98 % for AST's 257 x 128); multiplying each group by its own band does
    a fraction of the dense work. The split minimises the total band x mels
    area (dynamic programming over the split points).

    Returns
    -------
    list of tuple
        ``(mel_start, mel_end, bin_start, bin_end)`` per group, covering
        every mel bin in order; an all-zero group has an empty band.
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


def _window(window_type, size):
    """Kaldi's analysis windows (symmetric), float64."""
    dtype = torch.float64
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False, dtype=dtype)
    if window_type == "hamming":
        return torch.hamming_window(
            size, periodic=False, alpha=0.54, beta=0.46, dtype=dtype
        )
    if window_type == "povey":
        return torch.hann_window(size, periodic=False, dtype=dtype) ** 0.85
    if window_type == "rectangular":
        return torch.ones(size, dtype=dtype)
    if window_type == "blackman":
        a = 2 * math.pi / (size - 1) * torch.arange(size, dtype=dtype)
        return 0.42 - 0.5 * torch.cos(a) + 0.08 * torch.cos(2 * a)
    raise ValueError(
        f"Unknown window_type {window_type!r}: use one of {_WINDOWS} "
        "(AST uses 'hanning')."
    )


def pad_or_cut(feats, target_length):
    """Zero-pads or cuts features at the end of the time axis.

    Arguments
    ---------
    feats : torch.Tensor
        ``[batch, time, freq]`` (or ``[time, freq]``).
    target_length : int
        Number of frames to return.

    Returns
    -------
    torch.Tensor
        ``[batch, target_length, freq]``.

    Example
    -------
    >>> feats = torch.ones(2, 5, 3)
    >>> pad_or_cut(feats, 7)[0, :, 0]
    tensor([1., 1., 1., 1., 1., 0., 0.])
    >>> pad_or_cut(feats, 2).shape
    torch.Size([2, 2, 3])
    """
    if feats.dim() < 2:
        raise ValueError(
            f"pad_or_cut expects [batch, time, freq] or [time, freq] "
            f"features, got shape {tuple(feats.shape)}."
        )
    target_length = int(target_length)
    if target_length < 0:
        raise ValueError(f"target_length must be >= 0, got {target_length}.")
    n = feats.shape[-2]
    if n >= target_length:
        return feats[..., :target_length, :]
    return F.pad(feats, (0, 0, 0, target_length - n))


class KaldiFbank(nn.Module):
    """Batched, length-aware, differentiable Kaldi log-mel filterbank.

    Equals ``torchaudio.compliance.kaldi.fbank(wav[None], htk_compat=True,
    sample_frequency=16000, use_energy=False, window_type='hanning',
    num_mel_bins=128, dither=0.0, frame_shift=10)`` clip by clip: frames of
    25 ms every 10 ms that fit inside the clip (Kaldi's snip_edges, so a
    10 s clip gives 998 frames), DC offset removed per frame, pre-emphasis
    0.97 (first sample replicated), Hann window, zero-padded to a power of
    two (512), power spectrum, Kaldi/HTK mel filterbank, natural log floored
    at float32 epsilon.

    Without autograd on the CPU (``torch.no_grad()``, or input that does
    not require grad) a faster path computes the same numbers in another
    order (see ``_log_mel_inference``); with autograd or on a GPU the steps
    run in Kaldi's order, batched.

    Each clip's frames past its own frame count are exactly 0 (the
    reference zero-pads in the log-mel domain). A clip shorter than one
    frame (400 samples at 16 kHz) has 0 frames, so it is all zeros; if every
    clip of the batch is that short and there is no ``target_length``, a
    ``ValueError`` is raised.

    Arguments
    ---------
    sample_rate : int
        Sample rate in Hz of the input waveforms.
    n_mels : int
        Number of mel bins.
    frame_length : float
        Frame length in milliseconds.
    frame_shift : float
        Frame shift in milliseconds.
    preemphasis : float
        Pre-emphasis coefficient (0 disables it).
    remove_dc_offset : bool
        Subtract each frame's mean before pre-emphasis.
    window_type : str
        One of "hanning" (AST), "hamming", "povey", "rectangular",
        "blackman".
    low_freq : float
        Low edge of the mel filterbank in Hz.
    high_freq : float
        High edge in Hz; <= 0 is relative to the Nyquist frequency.
    dither : float
        Standard deviation of Gaussian noise added to the waveform in
        training mode only (Kaldi adds it per frame; AST uses 0).
    demean_waveform : bool
        Subtract each clip's mean over its own samples first, as the AST
        reference training does.
    target_length : int or None
        If given, zero-pad or cut the output to this many frames.

    Example
    -------
    >>> fbank = KaldiFbank()
    >>> wavs = torch.rand(2, 16000) - 0.5
    >>> fbank(wavs, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 98, 128])
    >>> fbank.num_frames(160000)
    998
    >>> KaldiFbank(target_length=128)(wavs).shape
    torch.Size([2, 128, 128])
    """

    def __init__(
        self,
        sample_rate=16000,
        n_mels=128,
        frame_length=25.0,
        frame_shift=10.0,
        preemphasis=0.97,
        remove_dc_offset=True,
        window_type="hanning",
        low_freq=20.0,
        high_freq=0.0,
        dither=0.0,
        demean_waveform=False,
        target_length=None,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        # Kaldi truncates the millisecond products to whole samples
        self.win_length = int(sample_rate * frame_length * 0.001)
        self.hop_length = int(sample_rate * frame_shift * 0.001)
        if self.win_length < 2 or self.hop_length < 1:
            raise ValueError(
                f"frame_length={frame_length} ms / frame_shift={frame_shift} "
                f"ms give {self.win_length} / {self.hop_length} samples at "
                f"{sample_rate} Hz: use longer frames."
            )
        self.n_fft = 1 << (self.win_length - 1).bit_length()
        self.preemphasis = preemphasis
        self.remove_dc_offset = remove_dc_offset
        self.window_type = window_type
        self.dither = dither
        self.demean_waveform = demean_waveform
        self.target_length = target_length
        # not persistent: they follow from the arguments, checkpoints stay
        # empty, and .to(device) still moves them
        self.register_buffer(
            "window",
            _window(window_type, self.win_length).float(),
            persistent=False,
        )
        self.register_buffer(
            "mel_banks",
            kaldi_mel_banks(
                n_mels, self.n_fft, sample_rate, low_freq, high_freq
            ).float(),
            persistent=False,
        )
        self._mel_groups = _mel_groups(self.mel_banks)

    def num_frames(self, num_samples):
        """Kaldi snip_edges frame count of a clip with ``num_samples``
        samples (int or integer tensor): 0 if shorter than one frame."""
        if torch.is_tensor(num_samples):
            frames = 1 + (num_samples - self.win_length) // self.hop_length
            return torch.where(
                num_samples >= self.win_length,
                frames,
                torch.zeros_like(frames),
            )
        num_samples = int(num_samples)
        if num_samples < self.win_length:
            return 0
        return 1 + (num_samples - self.win_length) // self.hop_length

    def forward(self, wavs, lengths=None):
        """Computes log-mel features.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` float waveforms in [-1, 1] (a ``[samples]``
            tensor is treated as a batch of one).
        lengths : torch.Tensor or None
            ``[batch]`` relative lengths in [0, 1]: clip i has
            ``round(lengths[i] * samples)`` valid samples.

        Returns
        -------
        torch.Tensor
            ``[batch, frames, n_mels]``; ``frames`` is the frame count of the
            padded length, or ``target_length`` when set. Always computed in
            at least float32, also under autocast.
        """
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2 or not wavs.is_floating_point():
            raise ValueError(
                "KaldiFbank expects float waveforms [batch, samples], got "
                f"shape {tuple(wavs.shape)} dtype {wavs.dtype}."
            )
        if wavs.dtype in (torch.float16, torch.bfloat16):
            # the power spectrum overflows float16 and bfloat16 is too coarse
            # for the log: half-precision input is computed in float32
            wavs = wavs.float()
        batch, n = wavs.shape
        counts = self._sample_counts(lengths, batch, n, wavs.device)

        if self.demean_waveform:
            valid = torch.arange(n, device=wavs.device) < counts.unsqueeze(1)
            total = (wavs * valid).sum(1, keepdim=True)
            mean = total / counts.clamp(min=1).unsqueeze(1)
            wavs = wavs - mean.to(wavs.dtype)
        if self.dither > 0 and self.training:
            wavs = wavs + self.dither * torch.randn_like(wavs)

        frame_counts = self.num_frames(counts)
        if self.target_length is None and int(frame_counts.max()) == 0:
            raise ValueError(
                f"All {batch} clips are shorter than one frame: the longest "
                f"has {int(counts.max())} samples, the minimum is "
                f"{self.win_length} ({self.win_length / self.sample_rate} s "
                f"at {self.sample_rate} Hz). Pad the audio or set "
                "target_length."
            )
        n_frames = self.num_frames(n)
        if n_frames == 0:
            feats = wavs.new_zeros(batch, 0, self.n_mels)
        else:
            # mixed-precision training must not run the frontend in half
            with torch.autocast(wavs.device.type, enabled=False):
                feats = self._log_mel(wavs, frame_counts)
            if lengths is not None:  # zero the frames past each clip's end
                keep = torch.arange(n_frames, device=wavs.device)
                keep = keep.unsqueeze(0) < frame_counts.unsqueeze(1)
                feats = feats.masked_fill(~keep.unsqueeze(-1), 0.0)
        if self.target_length is not None:
            feats = pad_or_cut(feats, self.target_length)
        return feats

    def _sample_counts(self, lengths, batch, n, device):
        """Valid samples per clip from relative lengths."""
        if lengths is None:
            return torch.full((batch,), n, device=device, dtype=torch.long)
        lengths = torch.as_tensor(lengths, device=device)
        if lengths.shape != (batch,):
            raise ValueError(
                f"lengths must have shape [{batch}] (one relative length "
                f"per clip), got {tuple(lengths.shape)}."
            )
        if (lengths < 0).any() or (lengths > 1 + 1e-6).any():
            raise ValueError(
                "lengths are relative (SpeechBrain convention) and must lie "
                f"in [0, 1], got {lengths.tolist()}."
            )
        counts = torch.round(lengths.double() * n).long()
        return counts.clamp(0, n)

    def _log_mel(self, wavs, frame_counts):
        """Log-mel of every whole frame of the padded batch; frames past a
        clip's ``frame_counts`` may be left unset (``forward`` zeroes them).

        Without autograd on the CPU this is :meth:`_log_mel_inference`.
        Otherwise the frames (of all clips, flattened) go through
        :meth:`_frames_log_mel`, on the CPU in blocks of ``_CPU_BLOCK``
        frames whose temporaries stay in the cache (a whole batch at once is
        memory-bound and several times slower); the blocks are independent
        of clip boundaries and the result is the same as in one piece. On a
        GPU the batch is one piece.
        """
        cpu = wavs.device.type == "cpu"
        if cpu and not (torch.is_grad_enabled() and wavs.requires_grad):
            return self._log_mel_inference(wavs, frame_counts)
        frames = wavs.unfold(1, self.win_length, self.hop_length)
        batch, n_frames, _ = frames.shape
        frames = frames.flatten(0, 1)
        if cpu and frames.shape[0] > _CPU_BLOCK:
            mel = torch.cat(
                [self._frames_log_mel(b) for b in frames.split(_CPU_BLOCK)]
            )
        else:
            mel = self._frames_log_mel(frames)
        return mel.reshape(batch, n_frames, self.n_mels)

    def _frames_log_mel(self, frames):
        """Log-mel of frames ``[n, win_length]`` (Kaldi's order of steps)."""
        dtype = frames.dtype
        if self.remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        if self.preemphasis != 0.0:
            # Kaldi replicates each frame's first sample as its predecessor
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - self.preemphasis * previous
        frames = frames * self.window.to(dtype)
        frames = F.pad(frames, (0, self.n_fft - self.win_length))
        spectrum = torch.view_as_real(torch.fft.rfft(frames, dim=-1))
        # |X|^2 as re^2 + im^2 keeps the gradient finite at X = 0 (and is
        # much faster than a sum over the last dimension of size 2)
        squares = spectrum * spectrum
        power = squares[..., 0] + squares[..., 1]
        mel = torch.matmul(power, self.mel_banks.to(dtype))
        return torch.log(torch.clamp(mel, min=_LOG_FLOOR))

    def _log_mel_inference(self, wavs, frame_counts):
        """The CPU path without autograd: the same numbers as
        :meth:`_frames_log_mel` up to float rounding, and 3.3-3.6x faster than
        a per-clip loop of torchaudio's fbank (32 clips of 10 s, 2 CPU
        cores: ``python benchmarks/run.py --only frontend``).

        No frame is copied before it is windowed: Kaldi's per-frame
        pre-emphasis ``y[j] = x[j] - a x[j-1]`` (``y[0] = (1 - a) x[0]``) is
        folded into the windowing, ``w[j] x[j] - a w[j] x[j-1]`` read from
        the waveform's frame view, with ``w[0]`` scaled by ``1 - a``; the
        frame's DC offset, which pre-emphasis scales by ``1 - a``, is removed
        as a rank-1 update ``-(1 - a) mean(x) w``. Clip by clip, in blocks of
        at most ``_CPU_INFERENCE_BLOCK`` frames, every step writes into
        buffers (and views of them) made once per call: window, FFT, |X|^2,
        the mel product group by group (:func:`_mel_groups`, a quarter of the
        dense work), clamp and log into the output. Frames past a clip's
        ``frame_counts`` are neither computed nor set: ``forward`` zeroes
        them, as for the other path.
        """
        dtype = wavs.dtype
        batch, n = wavs.shape
        win, hop, a = self.win_length, self.hop_length, self.preemphasis
        window = self.window.to(dtype)
        first_window = window.clone()
        first_window[0] *= 1 - a
        emphasis_window = window[1:] * -a
        banks = self.mel_banks.to(dtype)
        n_frames = self.num_frames(n)
        block = min(_CPU_INFERENCE_BLOCK, n_frames)
        out = wavs.new_empty(batch, n_frames, self.n_mels)
        padded = wavs.new_zeros(block, self.n_fft)
        power = wavs.new_empty(block, self.n_fft // 2 + 1)
        mel = wavs.new_empty(block, self.n_mels)

        def views(b):
            """The buffers' views for a block of ``b`` frames."""
            products = [
                (power[:b, b0:b1], banks[b0:b1, m0:m1], mel[:b, m0:m1])
                for m0, m1, b0, b1 in self._mel_groups
            ]
            windowed = padded[:b, :win]
            return (
                windowed,
                windowed[:, 1:],
                padded[:b],
                power[:b],
                products,
                mel[:b],
            )

        block_views = {block: views(block)}
        frames = wavs.unfold(1, win, hop)
        if self.remove_dc_offset:
            dc = frames.mean(-1).mul_(1 - a)
        for i, count in enumerate(frame_counts.tolist()):
            for s in range(0, count, block):
                b = min(block, count - s)
                if b not in block_views:
                    block_views[b] = views(b)
                windowed, after_first, whole, pw, products, ml = block_views[b]
                x = frames[i, s : s + b]
                torch.mul(x, first_window, out=windowed)
                if a != 0.0:
                    after_first.addcmul_(x[:, :-1], emphasis_window)
                if self.remove_dc_offset:
                    windowed.addr_(dc[i, s : s + b], window, alpha=-1)
                squares = torch.view_as_real(torch.fft.rfft(whole)).flatten(1)
                squares.mul_(squares)
                torch.add(squares[:, 0::2], squares[:, 1::2], out=pw)
                for p, bank, m in products:
                    torch.mm(p, bank, out=m)
                torch.log(ml.clamp_(min=_LOG_FLOOR), out=out[i, s : s + b])
        return out

    def extra_repr(self):
        """The settings, for ``repr``."""
        return (
            f"sample_rate={self.sample_rate}, n_mels={self.n_mels}, "
            f"win_length={self.win_length}, hop_length={self.hop_length}, "
            f"n_fft={self.n_fft}, window_type={self.window_type!r}, "
            f"demean_waveform={self.demean_waveform}, "
            f"target_length={self.target_length}"
        )


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


def _dataset_key(name):
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


class FixedNormalization(nn.Module):
    """AST's normalisation with fixed dataset statistics:
    ``(x - mean) / (2 * std)``.

    This is the ``mean_var_norm`` of an AST ``EncoderClassifier``. It has
    no parameters and no state: the statistics are plain floats, so it
    works on any device and dtype and adds nothing to checkpoints. Padded
    frames are normalised too, as in the reference.

    Arguments
    ---------
    mean : float or None
        Mean of the log-mel features (give with ``std``).
    std : float or None
        Standard deviation of the log-mel features.
    dataset : str or None
        Instead of mean/std, a key of ``DATASET_STATS``: "audioset",
        "esc50" or "speechcommands".

    Example
    -------
    >>> norm = FixedNormalization(dataset="audioset")
    >>> norm(torch.full((1, 2, 3), -4.2677393)).abs().max() < 1e-6
    tensor(True)
    >>> FixedNormalization(mean=1.0, std=0.5)(torch.ones(1, 1, 1))
    tensor([[[0.]]])
    """

    def __init__(self, mean=None, std=None, dataset=None):
        super().__init__()
        if dataset is not None:
            if mean is not None or std is not None:
                raise ValueError(
                    f"Give either dataset={dataset!r} or mean/std, not both."
                )
            key = _dataset_key(dataset)
            if key not in DATASET_STATS:
                raise ValueError(
                    f"Unknown dataset {dataset!r}: known ones are "
                    f"{sorted(DATASET_STATS)}. For other data give mean and "
                    "std, e.g. from compute_norm_stats."
                )
            mean, std = DATASET_STATS[key]
        if mean is None or std is None:
            raise ValueError(
                "FixedNormalization needs mean and std (e.g. from "
                "compute_norm_stats) or dataset= one of "
                f"{sorted(DATASET_STATS)}; got mean={mean}, std={std}."
            )
        if not (math.isfinite(std) and std > 0 and math.isfinite(mean)):
            raise ValueError(
                f"Need a finite mean and a positive std, got mean={mean}, "
                f"std={std}."
            )
        self.mean = float(mean)
        self.std = float(std)

    def forward(self, x, lengths=None):
        """Normalises ``x`` ``[batch, time, freq]``; ``lengths`` is
        accepted for SpeechBrain's ``mean_var_norm(feats, lengths)`` call
        and unused."""
        return (x - self.mean) / (2.0 * self.std)

    def extra_repr(self):
        """The statistics, for ``repr``."""
        return f"mean={self.mean}, std={self.std}"


def _manifest_paths(files_or_manifest, wav_column, replacements):
    """Audio paths from a list of files or a SpeechBrain CSV manifest."""
    if isinstance(files_or_manifest, (str, os.PathLike)):
        from speechbrain.dataio.dataio import load_data_csv

        manifest = os.fspath(files_or_manifest)
        if not os.path.isfile(manifest):
            raise ValueError(
                f"Manifest {manifest!r} does not exist: give a SpeechBrain "
                "CSV manifest or a list of audio paths."
            )
        rows = load_data_csv(manifest, replacements=replacements)
        paths = []
        for row_id, row in rows.items():
            if wav_column not in row:
                raise ValueError(
                    f"Manifest {manifest!r} has no column {wav_column!r} "
                    f"(columns: {sorted(row)}): set wav_column."
                )
            paths.append(row[wav_column])
        return paths
    return [os.fspath(p) for p in files_or_manifest]


@torch.no_grad()
def compute_norm_stats(
    files_or_manifest,
    frontend=None,
    target_length=None,
    wav_column="wav",
    replacements=None,
):
    """Global mean and std of the log-mel features of a dataset, for
    :class:`FixedNormalization`.

    The statistics are exact over all frames (running sums in float64,
    population std). Without ``target_length`` only each clip's own frames
    count; with it, each clip is padded/cut to ``target_length`` frames
    first, padding zeros included, as the reference training sees them.
    (The reference script instead averaged per-batch means and stds of
    ``target_length``-padded features, which differs slightly.)

    Arguments
    ---------
    files_or_manifest : str or list
        A list of audio paths, or the path of a SpeechBrain CSV manifest.
    frontend : KaldiFbank or None
        The feature extractor; default ``KaldiFbank(demean_waveform=True)``,
        what the reference training computes.
    target_length : int or None
        Pad/cut each clip to this many frames before counting.
    wav_column : str
        The manifest's audio path column.
    replacements : dict or None
        Manifest placeholders, e.g. ``{"data_root": "/data"}`` for
        ``$data_root/a.wav`` (as SpeechBrain's ``load_data_csv``).

    Returns
    -------
    mean : float
    std : float

    Example
    -------
    >>> import numpy as np, soundfile as sf, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "a.wav")
    >>> sf.write(path, np.random.uniform(-0.5, 0.5, 16000), 16000)
    >>> mean, std = compute_norm_stats([path])
    >>> -20 < mean < 10 and 0 < std < 20
    True
    """
    from speechbrain_ast.data.audio import load_audio
    from speechbrain_ast.data.prepare import (
        check_audio_files,
        raise_for_bad_audio,
    )

    paths = _manifest_paths(files_or_manifest, wav_column, replacements)
    # headers first: every bad file in one list, before hours of decoding
    _, problems = check_audio_files(paths)
    raise_for_bad_audio(
        [str(err) for err in problems.values()],
        len(paths),
        "files",
        "fix or remove them before computing the statistics",
    )
    if frontend is None:
        frontend = KaldiFbank(demean_waveform=True)
    was_training = frontend.training
    frontend.eval()
    buffer = next(frontend.buffers(), None)
    device = buffer.device if buffer is not None else torch.device("cpu")
    count, mean, m2 = 0, 0.0, 0.0
    try:
        for path in paths:
            wav = load_audio(path, frontend.sample_rate).to(device)
            n_frames = frontend.num_frames(wav.numel())
            if n_frames == 0:
                # too short for a frame: only padding, if any, counts
                feats = torch.zeros(0, frontend.n_mels, dtype=torch.float64)
            else:
                feats = frontend(wav.unsqueeze(0))[0].double()
            if target_length is not None:
                feats = pad_or_cut(feats, target_length)
            elif frontend.target_length is not None:
                # count only the clip's own frames, not the padding
                feats = feats[:n_frames]
            if feats.numel() == 0:
                continue
            # Chan et al.'s pairwise update: exact and stable in float64
            n_b = feats.numel()
            mean_b = float(feats.mean())
            m2_b = float(((feats - mean_b) ** 2).sum())
            total = count + n_b
            diff = mean_b - mean
            mean += diff * n_b / total
            m2 += m2_b + diff * diff * count * n_b / total
            count = total
    finally:
        frontend.train(was_training)
    if count == 0:
        raise ValueError(
            f"No features from {len(paths)} files: every clip is shorter "
            f"than one frame ({frontend.win_length} samples) or the list is "
            "empty. Give longer audio or a target_length."
        )
    return mean, math.sqrt(m2 / count)
