"""Tests for speechbrain_ast.training.augment: SpecAugment against torchaudio's
masking, mixup consistency and statistics, noise bounds and rolls, and how
these differ from SpeechBrain's AddNoise and RandomShift."""

import pytest
import torch
import torchaudio

from speechbrain_ast.training.augment import Mixup, NoiseAndRoll, SpecAugment


def _bands(mask):
    """Start and width of the True run of a 1-D bool mask, checking that it
    is one contiguous band (or empty)."""
    idx = mask.nonzero().flatten()
    if idx.numel() == 0:
        return None, 0
    width = idx.numel()
    assert idx[-1] - idx[0] + 1 == width, "mask is not one contiguous band"
    return int(idx[0]), width


def test_specaugment_one_band_per_axis():
    torch.manual_seed(0)
    batch, time, freq = 64, 300, 128
    aug = SpecAugment(freqm=48, timem=96)
    out = aug(torch.ones(batch, time, freq))
    fwidths, twidths = [], []
    for example in out == 0:
        fmask = example.all(dim=0)  # frequency bins zero at every frame
        tmask = example.all(dim=1)  # frames zero at every bin
        # nothing is masked outside the union of the two bands
        assert torch.equal(example, fmask[None, :] | tmask[:, None])
        _, fw = _bands(fmask)
        _, tw = _bands(tmask)
        fwidths.append(fw)
        twidths.append(tw)
    assert max(fwidths) < 48 and max(twidths) < 96
    # widths floor(U * param): mean (param - 1) / 2, spread over the range
    assert abs(sum(fwidths) / batch - 23.5) < 6
    assert abs(sum(twidths) / batch - 47.5) < 12
    assert min(twidths) < 20 and max(twidths) > 75


def test_specaugment_equals_torchaudio_masking():
    """Same seed, same masks as torchaudio's FrequencyMasking then
    TimeMasking with iid_masks on [batch, 1, freq, time]."""
    feats = torch.randn(8, 200, 128)
    torch.manual_seed(123)
    ours = SpecAugment(freqm=48, timem=96)(feats)
    torch.manual_seed(123)
    spec = feats.transpose(1, 2).unsqueeze(1)
    spec = torchaudio.transforms.FrequencyMasking(48, iid_masks=True)(spec)
    spec = torchaudio.transforms.TimeMasking(96, iid_masks=True)(spec)
    assert torch.equal(ours, spec.squeeze(1).transpose(1, 2))


def test_specaugment_eval_identity_and_zero_widths():
    feats = torch.randn(2, 50, 16)
    aug = SpecAugment(freqm=8, timem=10).eval()
    assert torch.equal(aug(feats), feats)
    assert torch.equal(SpecAugment(0, 0)(feats), feats)
    # a mask param larger than the axis never masks the whole axis
    torch.manual_seed(1)
    out = SpecAugment(freqm=0, timem=1000)(torch.ones(256, 20, 4))
    assert (out.sum(dim=(1, 2)) > 0).all()
    # where torchaudio's masking, given the bound as it is, often does
    torch.manual_seed(1)
    spec = torchaudio.transforms.TimeMasking(1000, iid_masks=True)(
        torch.ones(256, 1, 4, 20)
    )
    assert (spec.sum(dim=(1, 2, 3)) == 0).any()
    with pytest.raises(ValueError, match="batch, time, freq"):
        SpecAugment(8, 8)(torch.ones(20, 4))


def _batch(batch=6, n=4000, classes=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    wavs = torch.randn(batch, n, generator=gen)
    labels = torch.randint(0, classes, (batch,), generator=gen)
    targets = torch.nn.functional.one_hot(labels, classes).float()
    return wavs, targets


def test_mixup_consistency_with_lengths():
    torch.manual_seed(0)
    wavs, _ = _batch()
    # distinct one-hot targets identify the partner and lambda exactly
    targets = torch.eye(6)
    lengths = torch.tensor([1.0, 0.5, 0.25, 0.75, 1.0, 0.6])
    counts = torch.round(lengths * 4000).long()
    for i, c in enumerate(counts):
        wavs[i, c:] = 0.0  # padding, as a SpeechBrain batch has
    mixed, mixed_targets = Mixup(prob=1.0)(wavs, targets, lengths)
    for i in range(6):
        lam = mixed_targets[i, i].item()
        partner = [j for j in range(6) if j != i and mixed_targets[i, j] > 0]
        assert len(partner) == 1
        j = partner[0]
        assert abs(mixed_targets[i, j].item() - (1 - lam)) < 1e-6
        assert 0 < lam < 1
        c = int(counts[i])
        other = wavs[j].clone()
        other[c:] = 0.0  # the partner never extends the clip
        expected = lam * wavs[i] + (1 - lam) * other
        assert torch.allclose(mixed[i], expected, atol=1e-5)
        assert torch.all(mixed[i, c:] == 0)
    assert torch.allclose(mixed_targets.sum(1), torch.ones(6))


def test_mixup_probability_zero_and_eval_identity():
    wavs, targets = _batch()
    out = Mixup(prob=0.0)(wavs, targets)
    assert torch.equal(out[0], wavs) and torch.equal(out[1], targets)
    out = Mixup(prob=1.0).eval()(wavs, targets)
    assert torch.equal(out[0], wavs) and torch.equal(out[1], targets)
    # a single clip has no partner
    out = Mixup(prob=1.0)(wavs[:1], targets[:1])
    assert torch.equal(out[0], wavs[:1])


def test_mixup_lambda_distribution_and_probability():
    torch.manual_seed(0)
    batch, rounds = 64, 40
    targets = torch.eye(batch)
    wavs = torch.zeros(batch, 8)
    mixup = Mixup(prob=0.5)
    lams, mixed = [], 0
    for _ in range(rounds):
        _, out = mixup(wavs, targets)
        diag = out.diagonal()
        mixed += int((diag < 1).sum())
        lams.append(diag[diag < 1])
    lams = torch.cat(lams)
    # Beta(10, 10): mean 1/2, variance 1 / (4 * 21) = 0.0119
    assert abs(lams.mean().item() - 0.5) < 0.02
    assert abs(lams.var().item() - 1 / 84) < 0.003
    assert abs(mixed / (batch * rounds) - 0.5) < 0.05


def test_mixup_multi_hot_and_checks():
    torch.manual_seed(2)
    wavs = torch.randn(4, 100)
    targets = torch.tensor(
        [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    )
    _, out = Mixup(prob=1.0)(wavs, targets)
    assert (out >= 0).all() and (out <= 1 + 1e-6).all()
    with pytest.raises(ValueError, match="float"):
        Mixup(1.0)(wavs, torch.ones(4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="rows"):
        Mixup(1.0)(wavs, targets[:3])
    with pytest.raises(ValueError, match="prob"):
        Mixup(1.5)


def test_noise_bounded_and_per_example_scale():
    torch.manual_seed(0)
    feats = torch.zeros(32, 128, 64)
    out = NoiseAndRoll(noise_scale=0.1, max_roll=0)(feats)
    assert out.min() >= 0 and out.max() < 0.1
    # one random factor per example: the examples' maxima differ
    maxima = out.amax(dim=(1, 2))
    assert maxima.max() > 0.08 and maxima.min() < 0.03


def test_roll_is_a_per_example_time_shift():
    torch.manual_seed(0)
    batch, time, freq = 200, 50, 3
    feats = torch.arange(time, dtype=torch.float32)[None, :, None]
    feats = feats.expand(batch, time, freq).contiguous()
    out = NoiseAndRoll(noise_scale=0.0, max_roll=10)(feats)
    shifts = []
    for b in range(batch):
        # a permutation of the frames, equal to torch.roll by some shift
        assert torch.equal(out[b, :, 0].sort().values, feats[b, :, 0])
        shift = int((-out[b, 0, 0].item()) % time)
        shift = shift - time if shift >= time // 2 else shift
        assert torch.equal(out[b], torch.roll(feats[b], shift, dims=0))
        shifts.append(shift)
    # shifts drawn from [-10, 10), as numpy's randint(-10, 10)
    assert min(shifts) == -10 and max(shifts) == 9


def test_noise_and_roll_eval_identity():
    feats = torch.randn(2, 20, 8)
    assert torch.equal(NoiseAndRoll().eval()(feats), feats)
    with pytest.raises(ValueError, match="batch, time, freq"):
        NoiseAndRoll()(torch.ones(3, 4))


def test_noise_and_roll_are_not_speechbrains_add_noise_and_shift():
    """Why NoiseAndRoll is ours: SpeechBrain's AddNoise scales its noise to
    each clip's level (silence stays silent) where the reference's noise has
    an absolute scale, and its RandomShift shifts the whole batch by one
    amount where the reference rolls each clip on its own."""
    from speechbrain.augment.freq_domain import RandomShift
    from speechbrain.augment.time_domain import AddNoise

    torch.manual_seed(0)
    silence = torch.zeros(8, 128, 16)
    noisy = AddNoise(snr_low=0, snr_high=10)(silence.flatten(1), torch.ones(8))
    assert torch.equal(noisy, torch.zeros_like(noisy))
    assert (NoiseAndRoll(noise_scale=0.1, max_roll=0)(silence) > 0).all()

    frames = torch.arange(128.0)[None, :, None].expand(64, 128, 2)
    frames = frames.contiguous()
    shifted, _ = RandomShift(min_shift=-10, max_shift=9, dim=1)(
        frames, torch.ones(64)
    )
    rolled = NoiseAndRoll(noise_scale=0.0, max_roll=10)(frames)
    assert len(set(shifted[:, 0, 0].tolist())) == 1
    assert len(set(rolled[:, 0, 0].tolist())) > 5
