"""ASTAudioClassifier: sigmoid / softmax scores, top-k labels, files.

Authors
 * speechbrain-ast developers
"""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead

LABELS = ["dog", "rain", "speech", "siren", "engine", "bell", "wind"]


def _load(tmp_path, multi_label):
    torch.manual_seed(5)
    lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    head = ASTHead(64, len(LABELS)).eval()
    with torch.no_grad():  # spread the logits so the ranking is clear
        head[1].weight.mul_(3)
    folder = tmp_path / ("multi" if multi_label else "single")
    export_model_folder(
        folder,
        lobe,
        head,
        LABELS,
        {"target_length": 128},
        (-4.27, 4.57),
        multi_label=multi_label,
    )
    return ASTAudioClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path / "saved")
    )


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    return _load(tmp_path_factory.mktemp("m"), True)


def _wavs():
    gen = torch.Generator().manual_seed(2)
    return 0.2 * torch.randn(4, 12000, generator=gen)


def test_multi_label_topk(multi):
    wavs = _wavs()
    logits = multi.compute_logits(wavs)
    scores, score, index, labels = multi.classify_batch(wavs)
    assert torch.allclose(scores, torch.sigmoid(logits))
    # multi-label scores are independent: they need not sum to 1
    assert not torch.allclose(scores.sum(-1), torch.ones(4), atol=1e-2)
    top = multi.predict_topk(wavs, k=3)
    for row, sc in zip(top, scores):
        assert len(row) == 3
        values, indices = torch.topk(sc, 3)
        assert [lab for lab, _ in row] == [LABELS[i] for i in indices]
        assert np.allclose([s for _, s in row], values.numpy(), atol=1e-6)
    assert [row[0][0] for row in top] == labels
    assert torch.equal(index, scores.argmax(-1))
    # k larger than the number of classes is capped
    assert len(multi.predict_topk(wavs[:1], k=50)[0]) == len(LABELS)
    with pytest.raises(ValueError, match="k must be"):
        multi.predict_topk(wavs, k=0)


def test_single_label_probabilities(tmp_path):
    model = _load(tmp_path, False)
    wavs = _wavs()
    scores, score, index, labels = model.classify_batch(wavs)
    assert torch.allclose(scores.sum(-1), torch.ones(4), atol=1e-6)
    assert torch.allclose(
        scores, torch.softmax(model.compute_logits(wavs), -1), atol=1e-6
    )
    assert torch.equal(score, scores.max(-1).values)


def test_classify_file_resamples_and_downmixes(multi, tmp_path):
    gen = np.random.default_rng(0)
    stereo = 0.2 * gen.standard_normal((44100, 2)).astype(np.float32)
    path = tmp_path / "stereo44k.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    mono16 = torchaudio.functional.resample(
        torch.from_numpy(stereo.mean(axis=1)), 44100, 16000
    )
    scores = multi.classify_file(str(path))[0]
    assert torch.allclose(
        scores, multi.classify_batch(mono16[None])[0], atol=1e-6
    )


def test_bad_shapes(multi):
    with pytest.raises(ValueError, match="batch, samples"):
        multi.compute_logits(torch.zeros(1, 2, 16000))
    with pytest.raises(ValueError, match="wav_lens"):
        multi.compute_logits(torch.zeros(2, 16000), torch.ones(3))


def test_further_modules_are_quantized_with_the_lobe_and_head(tmp_path):
    from speechbrain_ast.deploy.quantize import count_quantized

    lobe = AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    folder = export_model_folder(
        tmp_path / "model",
        lobe,
        ASTHead(32, len(LABELS)),
        LABELS,
        {"target_length": 64},
        (-4.27, 4.57),
        multi_label=True,
        extra_modules={"second_head": ASTHead(32, len(LABELS))},
    )
    model = ASTAudioClassifier.from_hparams(
        source=folder, savedir=str(tmp_path / "saved")
    ).quantize_int8()
    assert count_quantized(model.mods.second_head) == 1
    assert count_quantized(model.mods.classifier) == 1
    assert count_quantized(model.mods.compute_features) == 0
