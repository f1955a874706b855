"""ONNX export of model folders (waveform -> logits), checked with ONNX
Runtime and OpenVINO against the PyTorch folder; the export frontend
against KaldiFbank.

Authors
 * speechbrain-ast developers
"""

import os

import numpy as np
import pytest
import torch

from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.features import ExportableFbank, KaldiFbank
from speechbrain_ast.features.fbank import _window
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead

SOUNDS = os.path.join(os.path.dirname(__file__), "data", "sounds")
CLIPS = ["piano.flac", "jazz_guitar.flac", "snoring.flac"]
LABELS = ["dog", "rain", "speech", "siren", "bell"]


@pytest.fixture(scope="module")
def real_clips():
    return [load_audio(os.path.join(SOUNDS, c), 16000)[None] for c in CLIPS]


def test_export_frontend_is_kaldi_arithmetic_in_float64(real_clips):
    for options in ({}, {"demean_waveform": True}, {"window_type": "povey"}):
        fbank = KaldiFbank(**options).double()
        # the float64 reference with the window not rounded to float32
        fbank.window = _window(fbank.window_type, fbank.win_length)
        export = ExportableFbank(KaldiFbank(**options), torch.float64)
        for wav in real_clips:
            with torch.no_grad():
                diff = export(wav.double()) - fbank(wav.double())
            assert float(diff.abs().max()) < 1e-9, options


def test_export_frontend_matches_in_float32(real_clips):
    """To 1e-4 wherever the log-mel is above -10; in the bins near the
    log floor both float32 paths are up to ~4e-4 from float64, and the
    export path is no farther from it than KaldiFbank's own."""
    fbank = KaldiFbank(target_length=1024)
    export = ExportableFbank(fbank)
    exact = KaldiFbank(target_length=1024).double()
    for wav in real_clips:
        with torch.no_grad():
            ours, ref = export(wav), fbank(wav)
            truth = exact(wav.double())
        assert ours.shape == ref.shape and ours.dtype == torch.float32
        diff = (ours - ref).abs()
        assert float(diff[truth > -10].max()) <= 1e-4
        assert float(diff.max()) <= 1e-3
        ours_err = float((ours.double() - truth).abs().max())
        ref_err = float((ref.double() - truth).abs().max())
        assert ours_err <= 1.25 * ref_err, (ours_err, ref_err)


@pytest.mark.parametrize("n", [0, 100, 399, 400, 559, 560, 16000, 16123])
def test_export_frontend_frame_counts(n):
    wav = 0.1 * torch.randn(2, n, generator=torch.Generator().manual_seed(n))
    fbank = KaldiFbank()
    out = ExportableFbank(fbank)(wav)
    assert out.shape == (2, fbank.num_frames(n), 128)
    if n >= 400:
        assert float((out - fbank(wav)).abs().max()) < 1e-3
    fixed = KaldiFbank(target_length=64)
    assert torch.allclose(ExportableFbank(fixed)(wav), fixed(wav), atol=1e-3)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_lobe_forward_exports_with_a_dynamic_time_axis(tmp_path, pooling):
    """The lobe's own forward is the graph: one export serves inputs
    shorter than a patch, shorter than the built grid (centre cut) and
    longer (interpolated positions), with either pooling."""
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    pytest.importorskip("onnxscript", reason="the ONNX export needs it")
    from speechbrain_ast.deploy.onnx import export_features_onnx

    torch.manual_seed(3)
    lobe = AST(
        input_tdim=64, embed_dim=32, depth=2, num_heads=2, pooling=pooling
    ).eval()
    head = ASTHead(32, 3).eval()
    path = export_features_onnx(
        lobe, head, str(tmp_path / "f.onnx"), 64, native_length=True
    )
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for frames in (3, 16, 40, 64, 300):
        feats = torch.randn(2, frames, 128)
        with torch.no_grad():
            want = head(lobe(feats))
        (got,) = session.run(None, {"features": feats.numpy()})
        assert float(np.abs(got - want.numpy()).max()) <= 1e-4, frames


def _folder(tmp_path, native):
    torch.manual_seed(7)
    lobe = AST(input_tdim=256, embed_dim=32, depth=2, num_heads=2).eval()
    head = ASTHead(32, len(LABELS)).eval()
    with torch.no_grad():
        head[1].weight.mul_(3)
    name = "native" if native else "fixed"
    return str(
        export_model_folder(
            tmp_path / name,
            lobe,
            head,
            LABELS,
            {"target_length": None if native else 256},
            (-4.27, 4.57),
            multi_label=not native,
        )
    )


@pytest.fixture(scope="module", params=[False, True], ids=["fixed", "native"])
def exported(request, tmp_path_factory):
    pytest.importorskip("onnx", reason="the ONNX export needs onnx")
    pytest.importorskip("onnxscript", reason="the ONNX export needs onnxscript")
    from speechbrain_ast.deploy.onnx import export_onnx, load_folder

    tmp = tmp_path_factory.mktemp("onnx")
    folder = _folder(tmp, request.param)
    path = export_onnx(folder, str(tmp / "model.onnx"))
    return folder, path, load_folder(folder, str(tmp / "saved"))


def _clip(seconds, batch=1):
    gen = torch.Generator().manual_seed(int(seconds * 10))
    return 0.1 * torch.randn(batch, int(seconds * 16000), generator=gen)


def test_onnxruntime_equals_pytorch_at_1_5_10_s(exported, real_clips):
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    _, path, classifier = exported
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    # 1, 5 and 10 s, two clips per batch, and real recordings at full length
    # (10.2-16.5 s: past a native folder's 256 frames the positional
    # embedding is interpolated in the graph)
    inputs = [_clip(1, 2), _clip(5, 2), _clip(10, 2), _clip(0.03)]
    for wav in inputs + real_clips:
        (logits,) = session.run(None, {"waveform": wav.numpy()})
        ref = classifier.compute_logits(wav)
        assert logits.shape == tuple(ref.shape)
        assert float(np.abs(logits - ref.numpy()).max()) <= 1e-4, wav.shape


def test_onnx_classifier_scores_as_the_folder(exported, real_clips):
    """One scoring for both: the runtime classifier and the PyTorch folder
    derive it from the same base class and give the same top-k."""
    pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    from speechbrain_ast.deploy.onnx_runtime import OnnxClassifier
    from speechbrain_ast.inference.classifier import ClipScoring

    _, path, classifier = exported
    runtime = OnnxClassifier(path)
    for name in ("scores_from_logits", "topk_from_scores", "predict_topk"):
        assert getattr(type(runtime), name) is getattr(ClipScoring, name)
        assert getattr(type(classifier), name) is getattr(ClipScoring, name)
    wav = real_clips[0]
    want = classifier.predict_topk(wav, k=3)[0]
    got = runtime.predict_topk(wav, k=3)[0]
    assert [label for label, _ in got] == [label for label, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert abs(a - b) <= 1e-4


def test_metadata_carries_labels_and_settings(exported):
    from speechbrain_ast.deploy.onnx import read_metadata

    folder, path, classifier = exported
    meta = read_metadata(path)
    assert meta["labels"] == LABELS == classifier.labels
    assert meta["multi_label"] == classifier.multi_label
    assert meta["native_length"] == classifier.native_length
    assert meta["sample_rate"] == 16000 and meta["precision"] == "fp32"
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        read_metadata(os.path.join(folder, "hyperparams.yaml"))


def test_openvino_runs_the_export(exported, real_clips):
    ov = pytest.importorskip("openvino", reason="needs openvino")
    _, path, classifier = exported
    compiled = ov.Core().compile_model(
        path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    for wav in [_clip(1), real_clips[0]]:
        logits = compiled(wav.numpy())[0]
        ref = classifier.compute_logits(wav).numpy()
        assert float(np.abs(logits - ref).max()) <= 1e-4


def test_int8_export_close_to_fp32(exported, tmp_path, real_clips):
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime")
    from speechbrain_ast.deploy.onnx import export_onnx, read_metadata

    folder, fp32_path, _ = exported
    path = export_onnx(folder, str(tmp_path / "int8.onnx"), "int8")
    assert read_metadata(path)["precision"] == "int8"
    assert os.path.getsize(path) < os.path.getsize(fp32_path)
    fp32 = ort.InferenceSession(fp32_path, providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    nodes = __import__("onnx").load(path).graph.node
    ops = [node.op_type for node in nodes]
    # the 4 linear layers of each of the 2 blocks
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") >= 8
    assert "ConvInteger" not in ops  # frontend and patch embedding: float
    for wav in real_clips:
        a = fp32.run(None, {"waveform": wav.numpy()})[0]
        b = int8.run(None, {"waveform": wav.numpy()})[0]
        assert not np.array_equal(a, b)
        cos = float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))
        assert cos >= 0.999, cos


def test_command_line_and_errors(tmp_path, capsys):
    pytest.importorskip("onnx", reason="the ONNX export needs onnx")
    from speechbrain_ast.export_onnx import main

    folder = _folder(tmp_path, False)
    out = tmp_path / "cli.onnx"
    assert main([folder, "--out", str(out)]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    assert main([str(tmp_path), "--out", str(out)]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_reduced_precision_model_is_refused(tmp_path, monkeypatch):
    from speechbrain_ast.deploy import precision
    from speechbrain_ast.deploy.onnx import WaveformToLogits
    from speechbrain_ast.inference.classifier import ASTAudioClassifier

    monkeypatch.setattr(precision, "cpu_features", lambda: {"amx_bf16"})
    model = ASTAudioClassifier.from_hparams(
        source=_folder(tmp_path, False),
        savedir=str(tmp_path / "saved"),
        run_opts={"precision": "bf16", "device": "cpu"},
    )
    with pytest.raises(ValueError, match="export a float32 model"):
        WaveformToLogits(model)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_tag_backends_print_what_torch_prints(exported, backend, capsys):
    pytest.importorskip(backend, reason=f"--backend {backend} needs {backend}")
    import json

    from speechbrain_ast.tag import main

    folder, path, _ = exported
    clip = os.path.join(SOUNDS, CLIPS[0])
    common = [clip, "--top-k", "3", "--json", "--no-progress"]
    windows = ["--window", "4", "--hop", "2"]
    outputs = []
    for extra in ([], windows):
        assert main(["--model", folder, *common, *extra]) == 0
        torch_out = json.loads(capsys.readouterr().out)
        args = ["--model", path, "--backend", backend, *common, *extra]
        assert main(args) == 0
        outputs.append((torch_out, json.loads(capsys.readouterr().out)))
    for torch_out, onnx_out in outputs:
        _same(torch_out, onnx_out)
    assert main(["--model", folder, "--backend", backend, clip]) == 2
    assert "needs --model FILE.onnx" in capsys.readouterr().err


def _same(a, b):
    """Equal JSON structures, numbers to 1e-4 (labels, windows, spans)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float):
        assert abs(a - b) < 1e-4
    else:
        assert a == b
