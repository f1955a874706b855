"""Tests of the Audio Spectrogram Transformer integration against code it
did not write: torchaudio's Kaldi fbank, and SpeechBrain's
``EncoderClassifier`` loading an exported model folder.

``scripts/upstream.py`` writes this file into an upstream SpeechBrain
checkout as ``speechbrain/integrations/tests/``
``test_audio_spectrogram_transformer.py`` (imports renamed); here it tests
the same code under its own name.

Authors
 * speechbrain-ast developers 2026
"""

import pytest
import torch

pytest.importorskip("timm", reason="the integration needs timm")


def test_fbank_equals_torchaudio_kaldi():
    """The batched frontend equals torchaudio's Kaldi fbank clip by clip."""
    import torchaudio

    from speechbrain_ast.features.fbank import (
        TORCHAUDIO_FBANK_KWARGS,
        KaldiFbank,
    )

    torch.manual_seed(0)
    clips = [torch.randn(16000) * 0.1, torch.randn(11000) * 0.3]
    wavs = torch.zeros(2, 16000)
    wavs[1, :11000] = clips[1]
    wavs[0] = clips[0]
    lens = torch.tensor([1.0, 11000 / 16000])
    fbank = KaldiFbank(target_length=None, demean_waveform=False)
    feats = fbank(wavs, lens)
    for i, clip in enumerate(clips):
        ref = torchaudio.compliance.kaldi.fbank(
            clip[None], **TORCHAUDIO_FBANK_KWARGS
        )
        ours = feats[i, : ref.shape[0]]
        assert (ours - ref).abs().max() < 1e-3


def test_lobe_and_head_any_length():
    """The lobe embeds clips of its training length and other lengths."""
    from speechbrain_ast.model.lobe import AST, ASTHead

    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2).eval()
    head = ASTHead(32, 5)
    for frames in (64, 40, 100):
        logits = head(lobe(torch.randn(2, frames, 128)))
        assert logits.shape == (2, 5)
        assert torch.isfinite(logits).all()


def test_model_folder_loads_through_encoder_classifier(tmp_path):
    """An exported folder loads with SpeechBrain's EncoderClassifier and
    gives the lobe's own logits (SpeechBrain's ``out_prob`` is the
    classifier's output)."""
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain_ast.features import FixedNormalization, KaldiFbank
    from speechbrain_ast.inference.model_folder import export_model_folder
    from speechbrain_ast.model.lobe import AST, ASTHead

    torch.manual_seed(0)
    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2).eval()
    head = ASTHead(32, 3).eval()
    folder = export_model_folder(
        str(tmp_path / "model"),
        lobe,
        head,
        ["dog", "rain", "siren"],
        frontend_kwargs={"target_length": 64},
        norm_stats=(-4.27, 4.57),
        multi_label=False,
    )
    model = EncoderClassifier.from_hparams(
        source=folder, savedir=str(tmp_path / "cache")
    )
    wav = torch.randn(1, 8000) * 0.1
    out_prob, _, _, labels = model.classify_batch(wav)
    with torch.no_grad():
        feats = KaldiFbank(target_length=64)(wav, torch.ones(1))
        logits = head(lobe(FixedNormalization(-4.27, 4.57)(feats)))
    assert torch.allclose(out_prob.reshape(1, -1), logits, atol=1e-5)
    assert labels[0] in ("dog", "rain", "siren")
