"""The AST frontend: Kaldi-exact batched log-mel filterbank
(:class:`KaldiFbank`), Kaldi's analysis windows and the time-axis pad/cut;
the mel filterbank matrix is :mod:`speechbrain_ast.features.mel_banks`'s.

AST's weights only transfer through the frontend they were trained on,
``torchaudio.compliance.kaldi.fbank(wave, htk_compat=True,
sample_frequency=16000, use_energy=False, window_type='hanning',
num_mel_bins=128, dither=0.0, frame_shift=10)``, which works on one clip at a
time on the CPU. :class:`KaldiFbank` computes the same numbers for a padded
batch on any device and is differentiable.

Authors
 * speechbrain-ast developers
"""

import torch
import torch.nn.functional as F
from torch import nn

from speechbrain.dataio.dataio import length_to_mask
from speechbrain_ast.features.mel_banks import kaldi_mel_banks, mel_groups

__all__ = [
    "TORCHAUDIO_FBANK_KWARGS",
    "KaldiFbank",
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

_WINDOWS = ("hanning", "hamming", "povey", "rectangular", "blackman")


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
    if window_type == "blackman":  # Kaldi's blackman_coeff 0.42
        return torch.blackman_window(size, periodic=False, dtype=dtype)
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

    Ours because torchaudio's ``compliance.kaldi.fbank`` takes one clip
    without lengths; this one computes its numbers for a padded batch.

    Equals ``torchaudio.compliance.kaldi.fbank(wav[None],
    **TORCHAUDIO_FBANK_KWARGS)`` clip by clip: frames of
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
        self._mel_groups = mel_groups(self.mel_banks)

    def num_frames(self, num_samples):
        """Kaldi snip_edges frame count of a clip with ``num_samples``
        samples (int or integer tensor): 0 if shorter than one frame."""
        if torch.is_tensor(num_samples):
            frames = 1 + (num_samples - self.win_length) // self.hop_length
            return frames.clamp(min=0)
        return max(
            0, 1 + (int(num_samples) - self.win_length) // self.hop_length
        )

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
            valid = length_to_mask(counts, n, dtype=torch.bool)
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
                keep = length_to_mask(frame_counts, n_frames, dtype=torch.bool)
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
        the mel product group by group
        (:func:`~speechbrain_ast.features.mel_banks.mel_groups`, a quarter
        of the dense work), clamp and log into the output. Frames past a clip's
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
