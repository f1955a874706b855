"""AST's training augmentations as batch-level tensor operations.

Each module works on the whole batch on the input's device and draws its
randomness from torch's global generator, so ``speechbrain``'s seeding
makes runs repeatable. All three are the identity in eval mode
(``module.eval()``); a recipe that keeps them outside ``Brain.modules``
must apply them in the training stage only.

Authors
 * speechbrain-ast developers
"""

import torch
from torch import nn
from torchaudio.functional import mask_along_axis_iid

__all__ = ["Mixup", "NoiseAndRoll", "SpecAugment"]


class SpecAugment(nn.Module):
    """One frequency mask and one time mask per example, filled with 0
    (applied before normalisation, as the AST reference does), drawn by
    torchaudio's masking, which the reference calls.

    Mask widths are ``floor(U * freqm)`` and ``floor(U * timem)`` with
    ``U ~ U[0, 1)``, so always less than ``freqm`` / ``timem``; each band
    starts uniformly within the remaining range: torchaudio's
    ``FrequencyMasking`` / ``TimeMasking`` with ``iid_masks`` on
    ``[batch, time, freq]`` features, the same masks for the same seed.
    A width bound larger than its axis is cut to the axis, where torchaudio
    would mask the whole axis most of the time. The time mask may fall on
    padded frames, as in the reference.

    Arguments
    ---------
    freqm : int
        Maximum frequency mask width (0 disables the mask).
    timem : int
        Maximum time mask width (0 disables the mask).

    Example
    -------
    >>> aug = SpecAugment(freqm=48, timem=192)
    >>> feats = torch.randn(4, 1024, 128)
    >>> out = aug(feats)
    >>> out.shape, bool((out == 0).any())
    (torch.Size([4, 1024, 128]), True)
    >>> torch.equal(aug.eval()(feats), feats)
    True
    """

    def __init__(self, freqm, timem):
        super().__init__()
        if freqm < 0 or timem < 0:
            raise ValueError(
                f"freqm and timem are mask widths >= 0, got {freqm}, {timem}."
            )
        self.freqm = freqm
        self.timem = timem

    def forward(self, feats, lengths=None):
        """Masks ``feats`` ``[batch, time, freq]`` (``lengths`` unused)."""
        if not self.training:
            return feats
        if feats.dim() != 3:
            raise ValueError(
                "SpecAugment expects [batch, time, freq] features, got shape "
                f"{tuple(feats.shape)}."
            )
        # torchaudio's [batch, channel, freq, time]; frequency first, as the
        # reference (axis 2 is frequency, axis 3 time)
        spec = feats.transpose(1, 2).unsqueeze(1)
        for axis, width in ((2, self.freqm), (3, self.timem)):
            width = min(width, spec.shape[axis])
            spec = mask_along_axis_iid(spec, width, 0.0, axis)
        return spec.squeeze(1).transpose(1, 2)

    def extra_repr(self):
        """The settings, for ``repr``."""
        return f"freqm={self.freqm}, timem={self.timem}"


class Mixup(nn.Module):
    """Waveform mixup as in AST: per example with probability ``prob``,
    mix with another clip of the batch.

    ``x_i <- lam * x_i + (1 - lam) * x_j`` with ``lam ~ Beta(alpha,
    alpha)`` and ``j != i`` drawn uniformly; the targets are mixed with the
    same ``lam``, and unmixed examples keep ``lam = 1``. A mixed clip keeps
    its own length: partner samples beyond it (and beyond the partner's own
    length) are zeroed. The reference also removes the mean of the mix; use
    ``KaldiFbank(demean_waveform=True)`` for that.

    Arguments
    ---------
    prob : float
        Probability that an example is mixed (0 disables mixup).
    alpha : float
        Beta distribution parameter (AST: 10).

    Example
    -------
    >>> mixup = Mixup(prob=1.0)
    >>> wavs = torch.randn(3, 16000)
    >>> targets = torch.eye(3)
    >>> mixed, mixed_targets = mixup(wavs, targets)
    >>> mixed.shape, torch.allclose(mixed_targets.sum(1), torch.ones(3))
    (torch.Size([3, 16000]), True)
    """

    def __init__(self, prob, alpha=10.0):
        super().__init__()
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}.")
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}.")
        self.prob = prob
        self.alpha = alpha

    def forward(self, wavs, targets, lengths=None):
        """Mixes a batch.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, samples]`` waveforms.
        targets : torch.Tensor
            ``[batch, classes]`` float one-hot or multi-hot targets.
        lengths : torch.Tensor or None
            ``[batch]`` relative lengths in [0, 1].

        Returns
        -------
        wavs : torch.Tensor
            ``[batch, samples]`` mixed waveforms.
        targets : torch.Tensor
            ``[batch, classes]`` mixed targets.
        """
        if wavs.dim() != 2 or targets.dim() != 2:
            raise ValueError(
                "Mixup expects wavs [batch, samples] and float targets "
                f"[batch, classes], got {tuple(wavs.shape)} and "
                f"{tuple(targets.shape)}."
            )
        if targets.shape[0] != wavs.shape[0]:
            raise ValueError(
                f"wavs has {wavs.shape[0]} clips but targets has "
                f"{targets.shape[0]} rows."
            )
        if not targets.is_floating_point():
            raise ValueError(
                f"Mixup needs float one-/multi-hot targets, got dtype "
                f"{targets.dtype}: convert class indices with one_hot."
            )
        batch, n = wavs.shape
        if not self.training or self.prob == 0 or batch < 2:
            return wavs, targets
        device = wavs.device
        # a partner other than the clip itself
        partner = torch.arange(batch, device=device)
        partner = partner + torch.randint(1, batch, (batch,), device=device)
        partner = partner % batch
        alpha = torch.tensor(float(self.alpha), device=device)
        lam = torch.distributions.Beta(alpha, alpha).sample((batch,))
        mixed = torch.rand(batch, device=device) < self.prob
        lam = torch.where(mixed, lam, torch.ones_like(lam))

        if lengths is None:
            valid = torch.ones(batch, n, dtype=torch.bool, device=device)
        else:
            lengths = torch.as_tensor(lengths, device=device).double()
            counts = torch.round(lengths * n)
            valid = torch.arange(n, device=device) < counts[:, None]
        other = wavs[partner] * (valid & valid[partner])
        lam_w = lam.to(wavs.dtype)[:, None]
        wavs = lam_w * wavs + (1 - lam_w) * other
        lam_t = lam.to(targets.dtype)[:, None]
        targets = lam_t * targets + (1 - lam_t) * targets[partner]
        return wavs, targets

    def extra_repr(self):
        """The settings, for ``repr``."""
        return f"prob={self.prob}, alpha={self.alpha}"


class NoiseAndRoll(nn.Module):
    """The AST Speech Commands augmentation, after normalisation: uniform
    noise, then a random circular shift in time.

    Per example: ``feats + U[0, 1)-noise * f * noise_scale`` with one random
    factor ``f ~ U[0, 1)`` per example, then ``torch.roll`` along time by an
    integer drawn from ``[-max_roll, max_roll)``.

    Not SpeechBrain's ``AddNoise`` and ``RandomShift``: ``AddNoise`` mixes
    noise at a signal-to-noise ratio (relative to each clip's level) and
    ``RandomShift`` shifts the whole batch by one amount, where the
    reference adds noise of absolute scale and rolls each clip on its own.

    Arguments
    ---------
    noise_scale : float
        Noise amplitude bound (AST: 1 / 10).
    max_roll : int
        Shift bound in frames (AST: 10).

    Example
    -------
    >>> aug = NoiseAndRoll()
    >>> feats = torch.zeros(2, 128, 128)
    >>> out = aug(feats)
    >>> bool(out.min() >= 0) and bool(out.max() < 0.1)
    True
    """

    def __init__(self, noise_scale=0.1, max_roll=10):
        super().__init__()
        if noise_scale < 0 or max_roll < 0:
            raise ValueError(
                f"noise_scale and max_roll must be >= 0, got {noise_scale}, "
                f"{max_roll}."
            )
        self.noise_scale = noise_scale
        self.max_roll = int(max_roll)

    def forward(self, feats, lengths=None):
        """Augments ``feats`` ``[batch, time, freq]`` (``lengths``
        unused)."""
        if not self.training:
            return feats
        if feats.dim() != 3:
            raise ValueError(
                "NoiseAndRoll expects [batch, time, freq] features, got "
                f"shape {tuple(feats.shape)}."
            )
        batch, time, _ = feats.shape
        device = feats.device
        if self.noise_scale > 0:
            factor = torch.rand(batch, 1, 1, device=device, dtype=feats.dtype)
            noise = torch.rand_like(feats)
            feats = feats + noise * factor * self.noise_scale
        if self.max_roll > 0 and time > 0:
            shift = torch.randint(
                -self.max_roll, self.max_roll, (batch,), device=device
            )
            # torch.roll(x, s)[t] = x[(t - s) % time], per example
            index = torch.arange(time, device=device)[None] - shift[:, None]
            index = index.remainder(time)
            index = index[:, :, None].expand(-1, -1, feats.shape[2])
            feats = torch.gather(feats, 1, index)
        return feats

    def extra_repr(self):
        """The settings, for ``repr``."""
        return f"noise_scale={self.noise_scale}, max_roll={self.max_roll}"
