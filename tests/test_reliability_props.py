"""Property tests (hypothesis) for the frontend and the lobe: random
lengths, amplitudes and batch compositions with padding give finite
outputs of the right shape, each padded example equals the same example
run alone, and half-precision autocast keeps silence and full-scale
clipping finite.

Authors
 * speechbrain-ast developers
"""

import contextlib
import math
import sys

import pytest
import torch
import torchaudio
from hypothesis import (
    HealthCheck,
    given,
    settings,
    strategies as st,
)

from speechbrain_ast.features import (
    TORCHAUDIO_FBANK_KWARGS,
    FixedNormalization,
    KaldiFbank,
)
from speechbrain_ast.model.lobe import AST, ASTHead

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


@contextlib.contextmanager
def _modules_hypothesis_can_scan():
    """Hides broken lazy modules from hypothesis while a property runs.

    Hypothesis (6.170) reads ``__file__`` of every module in sys.modules
    to collect constants; SpeechBrain's lazy modules whose target cannot be
    imported (e.g. ``speechbrain.integrations.k2_fsa`` without k2) raise
    ImportError there instead of AttributeError, which fails the run. The
    properties below are therefore plain tests that call a ``@given``
    function inside this context (also keeping hypothesis' collection-time
    scan out of the rest of the suite).
    """
    hidden = {}
    for name, module in list(sys.modules.items()):
        try:
            getattr(module, "__file__", None)
        except Exception:  # a lazy module that cannot load
            hidden[name] = sys.modules.pop(name)
    try:
        yield
    finally:
        sys.modules.update(hidden)


FLOOR = math.log(torch.finfo(torch.float32).eps)

# a clip: (samples, amplitude, kind, seed); amplitude 0 is silence, > 1 is
# clipped to full scale
CLIP = st.tuples(
    st.integers(min_value=1, max_value=6000),
    st.sampled_from([0.0, 1e-4, 0.01, 0.3, 1.0, 8.0]),
    st.sampled_from(["noise", "sine", "dc"]),
    st.integers(min_value=0, max_value=2**16),
)


def _clip(samples, amplitude, kind, seed):
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples, dtype=torch.float32) / 16000
    if kind == "noise":
        wav = torch.randn(samples, generator=gen)
    elif kind == "sine":
        wav = torch.sin(2 * torch.pi * (100 + seed % 4000) * t)
    else:
        wav = torch.ones(samples)
    return (amplitude * wav).clamp(-1.0, 1.0)


def _batch(clips, pad_seed):
    """Padded batch with garbage (not zeros) in the padding, so a leak
    of the padding into a clip's result would show."""
    longest = max(c.shape[0] for c in clips)
    gen = torch.Generator().manual_seed(pad_seed)
    batch = torch.rand(len(clips), longest, generator=gen) * 2 - 1
    for i, clip in enumerate(clips):
        batch[i, : clip.shape[0]] = clip
    lengths = torch.tensor([c.shape[0] / longest for c in clips])
    return batch, lengths


def test_fbank_padded_batch_equals_alone():
    with _modules_hypothesis_can_scan():
        _fbank_property()


@SETTINGS
@given(st.lists(CLIP, min_size=1, max_size=4), st.integers(0, 100))
def _fbank_property(specs, pad_seed):
    fbank = KaldiFbank()
    clips = [_clip(*spec) for spec in specs]
    batch, lengths = _batch(clips, pad_seed)
    if all(c.shape[0] < 400 for c in clips):
        with pytest.raises(ValueError, match="shorter than one frame"):
            fbank(batch, lengths)
        return
    feats = fbank(batch, lengths)
    assert feats.shape == (len(clips), fbank.num_frames(batch.shape[1]), 128)
    assert torch.isfinite(feats).all()
    for i, clip in enumerate(clips):
        n = fbank.num_frames(clip.shape[0])
        assert (feats[i, n:] == 0).all()
        if n == 0:
            continue
        alone = fbank(clip[None])[0]
        assert alone.shape == (n, 128)
        assert torch.allclose(feats[i, :n], alone, atol=1e-5, rtol=0)
        # and the numbers are Kaldi's (torchaudio's reference, float64 to
        # keep its own float32 rounding out of the comparison)
        ref = torchaudio.compliance.kaldi.fbank(
            clip[None].double(),
            **TORCHAUDIO_FBANK_KWARGS,
        ).float()
        # bins within a few nats of the log floor (power ~1e-6) carry
        # float32 rounding in the log; compare where there is energy
        mask = ref > FLOOR + 5.0
        diff = (alone - ref)[mask].abs()
        assert diff.numel() == 0 or diff.max() <= 2e-3
        assert ((alone - ref).abs() <= 0.05).all()


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    frontend = KaldiFbank(target_length=128)
    norm = FixedNormalization(dataset="audioset")
    lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    head = ASTHead(64, 5).eval()
    return frontend, norm, lobe, head


def test_lobe_padded_batch_equals_alone(pipeline):
    with _modules_hypothesis_can_scan():
        _lobe_property(pipeline)


def _lobe_property(pipeline):
    @SETTINGS
    @given(st.lists(CLIP, min_size=1, max_size=4), st.integers(0, 100))
    def check(specs, pad_seed):
        _lobe_padded_batch_equals_alone(pipeline, specs, pad_seed)

    check()


def _lobe_padded_batch_equals_alone(pipeline, specs, pad_seed):
    frontend, norm, lobe, head = pipeline
    clips = [_clip(*spec) for spec in specs]
    batch, lengths = _batch(clips, pad_seed)
    with torch.no_grad():
        feats = norm(frontend(batch, lengths))
        emb = lobe(feats)
        logits = head(emb)
        assert emb.shape == (len(clips), 64)
        assert logits.shape == (len(clips), 5)
        assert torch.isfinite(logits).all()
        for i, clip in enumerate(clips):
            alone = head(lobe(norm(frontend(clip[None]))))[0]
            assert torch.allclose(logits[i], alone, atol=1e-5, rtol=1e-5)


def test_lobe_any_length_and_offset(pipeline):
    """Any number of frames (shorter than a patch, longer than built)
    and any feature level give finite embeddings of the right shape."""

    @SETTINGS
    @given(
        st.integers(min_value=1, max_value=300),
        st.integers(min_value=1, max_value=3),
        st.floats(min_value=-50, max_value=50),
    )
    def check(frames, batch, offset):
        _any_length(pipeline[2], frames, batch, offset)

    with _modules_hypothesis_can_scan():
        check()


def _any_length(lobe, frames, batch, offset):
    gen = torch.Generator().manual_seed(frames)
    x = torch.randn(batch, frames, 128, generator=gen) + offset
    with torch.no_grad():
        out = lobe(x)
        frames_out = lobe.forward_frames(x)
    assert out.shape == (batch, 64) and torch.isfinite(out).all()
    assert frames_out.shape == (batch, lobe.grid(frames)[1], 64)
    assert torch.isfinite(frames_out).all()


def _autocast_dtypes():
    dtypes = [torch.bfloat16]
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            torch.ones(2, 2) @ torch.ones(2, 2)
        dtypes.append(torch.float16)
    except (RuntimeError, AssertionError):  # older torch: bf16 only
        pass
    return dtypes


@pytest.mark.parametrize("dtype", _autocast_dtypes())
@pytest.mark.parametrize("signal", ["silence", "clipped", "square", "dc"])
def test_autocast_silence_and_clipping_finite(pipeline, dtype, signal):
    frontend, norm, lobe, head = pipeline
    t = torch.arange(32000) / 16000
    wav = {
        "silence": torch.zeros(32000),
        "clipped": (10 * torch.sin(2 * torch.pi * 440 * t)).clamp(-1, 1),
        "square": torch.sign(torch.sin(2 * torch.pi * 50 * t)),
        "dc": torch.ones(32000),
    }[signal]
    wavs = torch.stack([wav, wav * 0.5])
    with torch.no_grad():
        full = head(lobe(norm(frontend(wavs))))
        with torch.autocast("cpu", dtype=dtype):
            feats = frontend(wavs.to(dtype))
            assert feats.dtype == torch.float32  # frontend stays float32
            logits = head(lobe(norm(feats)))
    assert logits.dtype == dtype  # the lobe did run in half precision
    assert torch.isfinite(logits).all()
    # and it is the same model: half precision is close to float32
    scale = full.abs().max().item() + 1.0
    assert (logits.float() - full).abs().max().item() < 0.1 * scale
