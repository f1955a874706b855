"""Frame scores of model folders, with and without a frame head, and the
model folder's frame head, thresholds and median window written and read
back.

Authors
 * speechbrain-ast developers
"""

import os

import pytest
import torch

from speechbrain.inference.classifiers import EncoderClassifier
from speechbrain_ast.events import (
    FrameHead,
    column_edges,
    event_extras,
    folder_event_settings,
    folder_frame_head,
    frame_scores,
)
from speechbrain_ast.events.model_folder import FRAME_HEAD_FILE
from speechbrain_ast.features import FixedNormalization
from speechbrain_ast.inference import (
    ASTAudioClassifier,
    export_model_folder,
    export_trained_model,
)
from speechbrain_ast.inference.model_folder import MODEL_FILES
from speechbrain_ast.model import AST, ASTHead
from speechbrain_ast.testing.model_folders import NORM_STATS, tiny_model_folder

LABELS = ["dog", "cat", "bird"]


def _load(folder, tmp_path, name="saved"):
    return ASTAudioClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path / name)
    )


# 128 Kaldi frames (25 ms windows, 10 ms apart): the tiny folders' length
FULL = 400 + 127 * 160


def _wavs(batch=2, samples=FULL, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, samples, generator=gen)


def _frame_folder(folder, target_length=128, **events):
    torch.manual_seed(0)
    lobe = AST(input_tdim=128, embed_dim=24, depth=1, num_heads=2)
    head = FrameHead(24, len(LABELS), pooling="attention")
    for param in head.parameters():
        torch.nn.init.normal_(param, std=0.3)
    export_model_folder(
        folder,
        lobe,
        ASTHead(24, len(LABELS)),
        LABELS,
        {"target_length": target_length},
        NORM_STATS,
        multi_label=True,
        **event_extras(LABELS, head, **events),
    )
    return head


def _by_hand(model, wavs, head):
    """The frames of the folder's own modules through ``head``."""
    mods = model.mods
    with torch.no_grad():
        feats = mods.mean_var_norm(mods.compute_features(wavs), None)
        frames = mods.embedding_model.forward_frames(feats)
        return head(frames)[0]


def test_a_clip_folder_scores_frames_with_its_clip_head(tmp_path):
    folder = tiny_model_folder(tmp_path / "model", embed_dim=24)
    model = _load(folder, tmp_path)
    assert "frame_head" not in model.mods
    assert folder_event_settings(model) == (None, None)
    wavs = _wavs()
    edges, frame_probs = frame_scores(model, wavs)
    # the clip head on every column, sigmoid
    clip_head = model.mods.classifier
    expected = _by_hand(model, wavs, lambda f: (torch.sigmoid(clip_head(f)),))
    assert frame_probs.shape == (2, 12, 3)
    assert torch.allclose(frame_probs, expected, atol=1e-5)
    assert torch.allclose(edges, column_edges(12, 10))
    assert folder_frame_head(model) is folder_frame_head(model)


def test_a_folder_with_a_frame_head_uses_it_and_its_settings(tmp_path):
    folder = tmp_path / "model"
    head = _frame_folder(folder, thresholds=[0.3, 0.5, 0.7], median_window=5)
    assert sorted(os.listdir(folder)) == sorted([*MODEL_FILES, FRAME_HEAD_FILE])
    # the settings are top-level values of the yaml, as folders had them
    text = (folder / "hyperparams.yaml").read_text()
    assert "\nthresholds:\n- 0.3\n- 0.5\n- 0.7\nmedian_window: 5\n" in text
    model = _load(folder, tmp_path)
    loaded = model.mods.frame_head
    assert isinstance(loaded, FrameHead) and loaded.config == head.config
    for key, value in head.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert folder_event_settings(model) == ([0.3, 0.5, 0.7], 5)
    assert folder_frame_head(model) is loaded
    wavs = _wavs()
    _, frame_probs = frame_scores(model, wavs)
    assert torch.allclose(
        frame_probs, _by_hand(model, wavs, head.eval()), atol=1e-5
    )
    # SpeechBrain's own classifier loads the folder too
    plain = EncoderClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path / "plain")
    )
    assert isinstance(plain.mods.frame_head, FrameHead)
    assert folder_event_settings(plain) == ([0.3, 0.5, 0.7], 5)


def test_one_threshold_for_all_classes_reads_back_as_a_number(tmp_path):
    _frame_folder(tmp_path / "model", thresholds=0.4)
    model = _load(tmp_path / "model", tmp_path)
    assert folder_event_settings(model) == (0.4, None)


def test_columns_past_a_clips_audio_score_zero(tmp_path):
    model = _load(tiny_model_folder(tmp_path / "model", embed_dim=24), tmp_path)
    wavs = _wavs(samples=16000)
    _, frame_probs = frame_scores(model, wavs, torch.tensor([1.0, 0.5]))
    # 1 s: 98 frames, 9 columns (16-frame patches, 10 apart) of the 12
    # that 128 frames give; 0.5 s: 48 frames, 4 columns
    assert frame_probs.shape == (2, 12, 3)
    assert bool((frame_probs[0, :9] > 0).all())
    assert bool((frame_probs[0, 9:] == 0).all())
    assert bool((frame_probs[1, :4] > 0).all())
    assert bool((frame_probs[1, 4:] == 0).all())


def test_native_length_folders_pad_shorter_clips(tmp_path):
    folder = tmp_path / "model"
    _frame_folder(folder, target_length=None)
    model = _load(folder, tmp_path)
    assert model.native_length
    wavs = _wavs(samples=24000)
    edges, frame_probs = frame_scores(model, wavs, torch.tensor([1.0, 0.5]))
    # 1.5 s: 148 frames, 14 columns; 0.75 s: 73 frames, 6 columns
    assert frame_probs.shape == (2, 14, 3) and edges.shape == (15,)
    _, alone = frame_scores(model, wavs[1:, :12000])
    assert alone.shape == (1, 6, 3)
    assert torch.allclose(frame_probs[1, :6], alone[0], atol=1e-5)
    assert bool((frame_probs[1, 6:] == 0).all())


def test_event_settings_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="frame head has 2 outputs for 3"):
        event_extras(LABELS, FrameHead(24, 2))
    with pytest.raises(ValueError, match=r"3 \(one per class\).*\[0.5, 0.5\]"):
        event_extras(LABELS, thresholds=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"got 1.5"):
        event_extras(LABELS, thresholds=1.5)
    with pytest.raises(ValueError, match="odd number of columns >= 1; got 4"):
        event_extras(LABELS, median_window=4)


def test_folders_without_a_frame_head_are_as_before(tmp_path):
    folder = tmp_path / "model"
    _frame_folder(folder)
    # re-exported without one: the earlier frame head is gone
    export_trained_model(
        folder,
        {
            "embedding_model": AST(
                input_tdim=128, embed_dim=24, depth=1, num_heads=2
            ),
            "classifier": ASTHead(24, 3),
        },
        FixedNormalization(*NORM_STATS),
        LABELS,
        multi_label=True,
    )
    assert sorted(os.listdir(folder)) == sorted(MODEL_FILES)
    text = (folder / "hyperparams.yaml").read_text()
    assert "frame_head" not in text and "thresholds" not in text
    assert "frame_head" not in _load(folder, tmp_path, "again").mods


def test_a_recipes_export_carries_its_frame_head(tmp_path):
    modules = torch.nn.ModuleDict(
        {
            "embedding_model": AST(
                input_tdim=128, embed_dim=24, depth=1, num_heads=2
            ),
            "classifier": ASTHead(24, 3),
            "frame_head": FrameHead(24, 3, pooling="linear_softmax"),
        }
    )
    folder = export_trained_model(
        tmp_path / "model",
        modules,
        FixedNormalization(*NORM_STATS),
        LABELS,
        multi_label=True,
        **event_extras(LABELS, modules["frame_head"], [0.5, 0.4, 0.3], 7),
    )
    model = _load(folder, tmp_path)
    assert model.mods.frame_head.config["pooling"] == "linear_softmax"
    assert folder_event_settings(model) == ([0.5, 0.4, 0.3], 7)
