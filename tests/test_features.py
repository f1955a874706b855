"""Tests for speechbrain_ast.features: equality with torchaudio's Kaldi fbank
and transformers' ASTFeatureExtractor, lengths, padding, gradients,
normalisation and dataset statistics."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_ast.features import (
    DATASET_STATS,
    TORCHAUDIO_FBANK_KWARGS,
    FixedNormalization,
    KaldiFbank,
    compute_norm_stats,
    kaldi_mel_banks,
    pad_or_cut,
)

SR = 16000
REFERENCE_KWARGS = dict(
    htk_compat=True,
    sample_frequency=SR,
    use_energy=False,
    window_type="hanning",
    num_mel_bins=128,
    dither=0.0,
    frame_shift=10,
)


def test_library_constant_is_the_reference_call():
    assert TORCHAUDIO_FBANK_KWARGS == REFERENCE_KWARGS


def reference_fbank(wav):
    """The AST reference frontend, one clip [samples] -> [frames, 128]."""
    return torchaudio.compliance.kaldi.fbank(wav[None], **REFERENCE_KWARGS)


def make_clip(seconds, seed):
    """Noise plus a few tones at realistic amplitudes in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * SR)
    t = torch.arange(n, dtype=torch.float64) / SR
    wav = 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    for freq, amp in [(220.0, 0.3), (1000.0 + 100 * seed, 0.2), (5000.0, 0.1)]:
        wav += amp * torch.sin(2 * math.pi * freq * t)
    wav += 0.01  # a DC offset, as real recordings have
    return wav.clamp(-1, 1).float()


def pad_batch(clips):
    """Zero-padded batch and SpeechBrain relative lengths."""
    n = max(len(c) for c in clips)
    wavs = torch.zeros(len(clips), n)
    for i, c in enumerate(clips):
        wavs[i, : len(c)] = c
    lengths = torch.tensor([len(c) / n for c in clips])
    return wavs, lengths


@pytest.fixture(scope="module")
def clips():
    return [make_clip(1.0, 0), make_clip(5.0, 1), make_clip(10.0, 2)]


def test_mel_banks_match_torchaudio_in_float64():
    ours = kaldi_mel_banks(128, 512, SR, 20.0, 0.0)
    # torchaudio builds its banks in the default dtype: compare in float64
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref, _ = torchaudio.compliance.kaldi.get_mel_banks(
            128, 512, float(SR), 20.0, 0.0, 100.0, -500.0, 1.0
        )
    finally:
        torch.set_default_dtype(previous)
    assert ours.shape == (257, 128)
    assert (ours[:256] - ref.T).abs().max() < 1e-12
    assert torch.all(ours[256] == 0)  # Nyquist bin unused, as Kaldi
    # as in the reference, mel bin 3 catches no FFT bin at 512 points
    empty = (ours.sum(0) == 0).nonzero().flatten().tolist()
    assert empty == (ref.sum(1) == 0).nonzero().flatten().tolist() == [3]


@pytest.mark.parametrize("n_mels, high", [(64, 0.0), (40, -400.0)])
def test_mel_banks_other_settings(n_mels, high):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref, _ = torchaudio.compliance.kaldi.get_mel_banks(
            n_mels, 512, float(SR), 60.0, high, 100.0, -500.0, 1.0
        )
    finally:
        torch.set_default_dtype(previous)
    ours = kaldi_mel_banks(n_mels, 512, SR, 60.0, high)
    assert (ours[:256] - ref.T).abs().max() < 1e-12


def test_batched_equals_reference_clip_by_clip(clips):
    wavs, lengths = pad_batch(clips)
    feats = KaldiFbank()(wavs, lengths)
    assert feats.shape == (3, 998, 128)
    for i, clip in enumerate(clips):
        ref = reference_fbank(clip)
        n = ref.shape[0]
        assert n == KaldiFbank().num_frames(len(clip))
        diff = (feats[i, :n] - ref).abs().max().item()
        assert diff <= 1e-3, f"clip {i}: max abs diff {diff}"
        # the reference zero-pads in the log-mel domain
        assert torch.all(feats[i, n:] == 0)


def test_frame_counts():
    fbank = KaldiFbank()
    assert fbank.num_frames(160000) == 998
    assert fbank.num_frames(16000) == 98
    assert fbank.num_frames(400) == 1
    assert fbank.num_frames(559) == 1
    assert fbank.num_frames(560) == 2
    assert fbank.num_frames(399) == 0
    counts = torch.tensor([0, 399, 400, 560, 160000])
    assert fbank.num_frames(counts).tolist() == [0, 0, 1, 2, 998]
    for n in (400, 559, 560, 1234):
        assert reference_fbank(torch.randn(n) * 0.1).shape[0] == (
            fbank.num_frames(n)
        )


def test_demean_equals_fbank_of_demeaned_clip(clips):
    wavs, lengths = pad_batch(clips[:2])
    feats = KaldiFbank(demean_waveform=True)(wavs, lengths)
    for i, clip in enumerate(clips[:2]):
        ref = reference_fbank(clip - clip.mean())
        n = ref.shape[0]
        assert (feats[i, :n] - ref).abs().max() <= 1e-3
        assert torch.all(feats[i, n:] == 0)


def test_target_length_pad_and_cut(clips):
    wavs, lengths = pad_batch(clips[:2])  # 1 s and 5 s
    full = KaldiFbank()(wavs, lengths)
    padded = KaldiFbank(target_length=600)(wavs, lengths)
    assert padded.shape == (2, 600, 128)
    assert torch.equal(padded[:, :498], full)
    assert torch.all(padded[:, 498:] == 0)
    cut = KaldiFbank(target_length=128)(wavs, lengths)
    assert torch.equal(cut, full[:, :128])
    assert torch.equal(pad_or_cut(full, 128), cut)


def test_pad_or_cut_2d_and_errors():
    feats = torch.randn(10, 4)
    assert pad_or_cut(feats, 12).shape == (12, 4)
    assert torch.equal(pad_or_cut(feats, 3), feats[:3])
    with pytest.raises(ValueError, match="shape"):
        pad_or_cut(torch.randn(5), 3)
    with pytest.raises(ValueError, match="target_length"):
        pad_or_cut(feats, -1)


def test_short_clips():
    fbank = KaldiFbank()
    wavs, lengths = pad_batch([torch.rand(300) - 0.5, torch.rand(1000) - 0.5])
    feats = fbank(wavs, lengths)
    assert feats.shape == (2, fbank.num_frames(1000), 128)
    assert torch.all(feats[0] == 0)  # 300 samples: no whole frame
    with pytest.raises(ValueError, match="400"):
        fbank(torch.rand(2, 399) - 0.5)
    # all too short but a target length: all zeros of the right shape
    out = KaldiFbank(target_length=16)(torch.rand(2, 399) - 0.5)
    assert out.shape == (2, 16, 128) and torch.all(out == 0)


def test_input_checks():
    fbank = KaldiFbank()
    with pytest.raises(ValueError, match="batch, samples"):
        fbank(torch.zeros(1, 2, 1000))
    with pytest.raises(ValueError, match="lengths"):
        fbank(torch.zeros(2, 1000), torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fbank(torch.zeros(2, 1000), torch.tensor([1.0, 1.5]))
    assert fbank(torch.rand(800) - 0.5).shape == (1, 3, 128)
    with pytest.raises(ValueError, match="window_type"):
        KaldiFbank(window_type="hann")
    with pytest.raises(ValueError, match="Nyquist"):
        KaldiFbank(high_freq=9000.0)


def test_gradient_flows(clips):
    wavs, lengths = pad_batch([clips[0], clips[0][:8000]])
    wavs.requires_grad_(True)
    feats = KaldiFbank(demean_waveform=True, target_length=128)(wavs, lengths)
    feats.sum().backward()
    assert wavs.grad is not None
    assert torch.isfinite(wavs.grad).all()
    assert wavs.grad.abs().sum() > 0
    # padding past a clip's own samples gets no gradient
    assert torch.all(wavs.grad[1, 8000:] == 0)
    # silence (zero power) still gives a finite gradient
    silent = torch.zeros(1, 1600, requires_grad=True)
    KaldiFbank()(silent).sum().backward()
    assert torch.isfinite(silent.grad).all()


def test_float64_matches_reference_in_float64(clips):
    clip = clips[0].double()
    feats = KaldiFbank().to(torch.float64)(clip[None])[0]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = reference_fbank(clip)
    finally:
        torch.set_default_dtype(previous)
    assert feats.dtype == torch.float64
    # only the float32-stored filterbank differs
    assert (feats - ref).abs().max() < 2e-4


def test_autocast_and_half_input_stay_float32(clips):
    clip = clips[0]
    ref = reference_fbank(clip)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = KaldiFbank()(clip[None])[0]
    assert feats.dtype == torch.float32
    assert (feats - ref).abs().max() <= 1e-3
    # float16 input: only the input rounding remains
    feats = KaldiFbank()(clip[None].half())[0]
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert (feats - reference_fbank(clip.half().float())).abs().max() <= 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_reference(clips):
    wavs, lengths = pad_batch(clips)
    feats = KaldiFbank().to("cuda")(wavs.cuda(), lengths.cuda()).cpu()
    for i, clip in enumerate(clips):
        ref = reference_fbank(clip)
        assert (feats[i, : ref.shape[0]] - ref).abs().max() <= 1e-3


def test_other_windows_match_torchaudio(clips):
    clip = clips[0]
    for window in ("hamming", "povey", "rectangular", "blackman"):
        kwargs = dict(REFERENCE_KWARGS, window_type=window, num_mel_bins=64)
        ref = torchaudio.compliance.kaldi.fbank(clip[None], **kwargs)
        ours = KaldiFbank(n_mels=64, window_type=window)(clip[None])[0]
        assert (ours - ref).abs().max() <= 1e-3, window


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"preemphasis": 0.0},
        {"remove_dc_offset": False},
        {"window_type": "hamming", "remove_dc_offset": False},
        {"window_type": "rectangular", "preemphasis": 0.5},
        {"n_mels": 23, "low_freq": 64.0, "high_freq": -400.0},
    ],
)
def test_inference_and_autograd_paths_match_torchaudio(clips, options):
    """Without autograd the CPU path rearranges Kaldi's steps (pre-emphasis
    folded into the windowing, rank-1 DC removal, grouped mel product,
    frames past a clip's end skipped); with autograd it follows Kaldi's
    order. Both equal torchaudio for each option, on a padded batch of clips
    of 1 s, 5 s and 0.3 s."""
    torchaudio_names = {
        "preemphasis": "preemphasis_coefficient",
        "n_mels": "num_mel_bins",
    }
    kwargs = dict(REFERENCE_KWARGS)
    for name, value in options.items():
        kwargs[torchaudio_names.get(name, name)] = value
    short = clips[0][:4800]
    wavs, lengths = pad_batch([clips[0], clips[1], short])
    fbank = KaldiFbank(**options)
    with torch.no_grad():
        inference = fbank(wavs, lengths)
    graph = fbank(wavs.clone().requires_grad_(True), lengths).detach()
    assert inference.shape == graph.shape == (3, 498, fbank.n_mels)
    for i, clip in enumerate([clips[0], clips[1], short]):
        ref = torchaudio.compliance.kaldi.fbank(clip[None], **kwargs)
        n = ref.shape[0]
        for feats in (inference, graph):
            assert (feats[i, :n] - ref).abs().max() <= 1e-3, (i, options)
            assert torch.all(feats[i, n:] == 0)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"window_type": "hamming"},
        {"window_type": "povey", "preemphasis": 0.0},
        {"window_type": "rectangular", "remove_dc_offset": False},
    ],
)
def test_inference_path_is_exact_rearrangement(clips, options):
    """In float64 the rearranged inference path equals Kaldi's order to
    rounding (1e-9), so every difference in float32 is rounding, not a
    change of formula."""
    wavs, lengths = pad_batch([clips[0], clips[0][:7000]])
    wavs = wavs.double()
    fbank = KaldiFbank(**options).double()
    with torch.no_grad():
        inference = fbank(wavs, lengths)
    graph = fbank(wavs.clone().requires_grad_(True), lengths).detach()
    assert inference.dtype == torch.float64
    assert (inference - graph).abs().max() < 1e-9


def test_inference_path_blocks(clips, monkeypatch):
    """Clips longer than a block go through the inference path block by
    block, a short last block included; the result does not depend on the
    block size (float64: equal to Kaldi's order to rounding)."""
    import speechbrain_ast.features.fbank as features

    wavs, lengths = pad_batch([clips[1], clips[0][:7000], clips[0]])
    wavs = wavs.double()
    fbank = KaldiFbank().double()
    graph = fbank(wavs.clone().requires_grad_(True), lengths).detach()
    monkeypatch.setattr(features, "_CPU_INFERENCE_BLOCK", 64)
    with torch.no_grad():
        blocks = fbank(wavs, lengths)
    # 498, 42 and 98 frames: 7 full blocks and three partial ones
    assert fbank.num_frames(lengths * wavs.shape[1]).tolist() == [498, 42, 98]
    assert (blocks - graph).abs().max() < 1e-9


def test_mel_groups_cover_the_filterbank():
    """The grouped mel product of the inference path multiplies each group
    of mel bins by the FFT bins its triangles cover: together they must
    reproduce the dense product exactly, with a fraction of its work."""
    from speechbrain_ast.features.mel_banks import mel_groups

    for n_mels, n_fft, low, high in [
        (128, 512, 20.0, 0.0),
        (23, 512, 64, -400),
    ]:
        banks = kaldi_mel_banks(n_mels, n_fft, SR, low, high)
        groups = mel_groups(banks)
        assert [g[0] for g in groups][0] == 0 and groups[-1][1] == n_mels
        assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
        power = torch.rand(7, n_fft // 2 + 1, dtype=torch.float64)
        grouped = torch.cat(
            [
                power[:, b0:b1] @ banks[b0:b1, m0:m1]
                for m0, m1, b0, b1 in groups
            ],
            dim=1,
        )
        assert torch.allclose(grouped, power @ banks, rtol=1e-12, atol=0)
        work = sum((m1 - m0) * (b1 - b0) for m0, m1, b0, b1 in groups)
        assert work < 0.3 * banks.numel()


def test_dither_only_in_training():
    wavs = torch.rand(2, 4000) - 0.5
    fbank = KaldiFbank(dither=1e-3)
    fbank.eval()
    assert torch.equal(fbank(wavs), KaldiFbank()(wavs))
    fbank.train()
    assert not torch.equal(fbank(wavs), KaldiFbank()(wavs))


def test_buffers_follow_module_and_stay_out_of_state_dict():
    fbank = KaldiFbank()
    assert fbank.state_dict() == {}
    assert {name for name, _ in fbank.named_buffers()} == {
        "window",
        "mel_banks",
    }
    doubled = KaldiFbank().to(torch.float64)
    assert doubled.mel_banks.dtype == torch.float64


# transformers warns about Kaldi's all-zero mel bin 3 (see kaldi_mel_banks)
@pytest.mark.filterwarnings("ignore:At least one mel filter")
@pytest.mark.parametrize("numpy_path", [False, True])
def test_equals_transformers_feature_extractor(monkeypatch, numpy_path):
    """KaldiFbank(target_length=1024) + AudioSet normalisation equals
    ASTFeatureExtractor's output. transformers uses torchaudio's Kaldi fbank
    when torchaudio is installed (it is here) and its own numpy
    implementation otherwise; both paths are checked."""
    from transformers.models.audio_spectrogram_transformer import (
        feature_extraction_audio_spectrogram_transformer as hf_fe,
    )

    if numpy_path:
        monkeypatch.setattr(hf_fe, "is_speech_available", lambda: False)
    else:
        assert hf_fe.is_speech_available()
    extractor = hf_fe.ASTFeatureExtractor()
    assert hasattr(extractor, "mel_filters") == numpy_path
    frontend = KaldiFbank(target_length=1024)
    norm = FixedNormalization(dataset="audioset")
    for seconds, seed in [(3.0, 3), (11.0, 4)]:  # padded, then cut
        wav = make_clip(seconds, seed)
        expected = extractor(
            wav.numpy(), sampling_rate=SR, return_tensors="pt"
        ).input_values
        ours = norm(frontend(wav[None]))
        assert ours.shape == expected.shape == (1, 1024, 128)
        assert (ours - expected).abs().max() <= 1e-3


def test_fixed_normalization():
    x = torch.randn(2, 10, 128)
    for name, (mean, std) in DATASET_STATS.items():
        norm = FixedNormalization(dataset=name)
        assert torch.allclose(norm(x), (x - mean) / (2 * std))
        assert norm.state_dict() == {} and not list(norm.parameters())
    custom = FixedNormalization(mean=-5.0, std=4.0)
    assert torch.allclose(custom(x, torch.ones(2)), (x + 5.0) / 8.0)
    assert (
        FixedNormalization(dataset="Speech_Commands").mean
        == (DATASET_STATS["speechcommands"][0])
    )
    assert custom(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="audioset"):
        FixedNormalization(dataset="librispeech")
    with pytest.raises(ValueError, match="not both"):
        FixedNormalization(mean=1.0, std=1.0, dataset="esc50")
    with pytest.raises(ValueError, match="compute_norm_stats"):
        FixedNormalization()
    with pytest.raises(ValueError, match="std"):
        FixedNormalization(mean=0.0, std=0.0)


def test_fixed_normalization_differs_from_speechbrains_input_normalization():
    """SpeechBrain's InputNormalization estimates the statistics from the
    batches and scales by one std: the reference's fixed (x - mean) /
    (2 std) is not one of its settings."""
    from speechbrain.processing.features import InputNormalization

    x = torch.randn(4, 50, 8) * 3 + 1
    theirs = InputNormalization(norm_type="global")(x, torch.ones(4))
    assert abs(float(theirs.std()) - 1.0) < 0.01  # its own statistics
    ours = FixedNormalization(mean=float(x.mean()), std=float(x.std()))(x)
    assert abs(float(ours.std()) - 0.5) < 0.01  # the reference's 2 std
    audioset = FixedNormalization(dataset="audioset")(x)
    assert not torch.allclose(audioset, theirs, atol=0.1)


@pytest.fixture(scope="module")
def stats_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats")
    paths = []
    for i, seconds in enumerate([0.5, 1.3, 2.0, 0.02]):  # last: < 1 frame
        path = folder / f"clip{i}.wav"
        sf.write(path, make_clip(seconds, 10 + i).numpy(), SR, "FLOAT")
        paths.append(str(path))
    return folder, paths


def _numpy_stats(paths, target_length=None, demean=True):
    """Direct computation: all frames in one array, numpy mean/std."""
    frames = []
    for path in paths:
        wav = torch.from_numpy(sf.read(path, dtype="float32")[0])
        if demean:
            wav = wav - wav.mean()
        if len(wav) < 400:
            feats = torch.zeros(0, 128)
        else:
            feats = reference_fbank(wav)
        if target_length is not None:
            feats = pad_or_cut(feats, target_length)
        frames.append(feats.double().numpy())
    values = np.concatenate(frames)
    return values.mean(), values.std()


def test_compute_norm_stats_list(stats_files):
    _, paths = stats_files
    mean, std = compute_norm_stats(paths)
    ref_mean, ref_std = _numpy_stats(paths)
    assert abs(mean - ref_mean) < 1e-4 and abs(std - ref_std) < 1e-4
    mean, std = compute_norm_stats(paths, target_length=150)
    ref_mean, ref_std = _numpy_stats(paths, target_length=150)
    assert abs(mean - ref_mean) < 1e-4 and abs(std - ref_std) < 1e-4
    # a frontend without demeaning, and one with its own target length
    mean, _ = compute_norm_stats(paths, frontend=KaldiFbank())
    assert abs(mean - _numpy_stats(paths, demean=False)[0]) < 1e-4
    frontend = KaldiFbank(demean_waveform=True, target_length=1024)
    mean, std = compute_norm_stats(paths, frontend=frontend)
    ref_mean, ref_std = _numpy_stats(paths)
    assert abs(mean - ref_mean) < 1e-4 and abs(std - ref_std) < 1e-4


def test_compute_norm_stats_manifest(stats_files):
    folder, paths = stats_files
    manifest = folder / "train.csv"
    lines = ["ID,duration,audio"]
    for i, path in enumerate(paths):
        rel = path.replace(str(folder), "$data_root")
        lines.append(f"utt{i},1.0,{rel}")
    manifest.write_text("\n".join(lines) + "\n")
    mean, std = compute_norm_stats(
        str(manifest),
        wav_column="audio",
        replacements={"data_root": str(folder)},
    )
    ref_mean, ref_std = _numpy_stats(paths)
    assert abs(mean - ref_mean) < 1e-4 and abs(std - ref_std) < 1e-4
    with pytest.raises(ValueError, match="wav_column"):
        compute_norm_stats(
            str(manifest), replacements={"data_root": str(folder)}
        )


def test_compute_norm_stats_nothing_to_count(stats_files):
    _, paths = stats_files
    with pytest.raises(ValueError, match="shorter than one frame"):
        compute_norm_stats(paths[3:])
    with pytest.raises(ValueError, match="does not exist"):
        compute_norm_stats("/no/such/manifest.csv")
