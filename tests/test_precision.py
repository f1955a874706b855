"""bf16 / fp16 inference through SpeechBrain's ``precision`` run option.

Authors
 * speechbrain-ast developers
"""

import os
import warnings

import pytest
import torch

from speechbrain_ast.deploy import precision
from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.model.lobe import AST, ASTHead

SOUNDS = os.path.join(os.path.dirname(__file__), "data", "sounds")
CLIPS = ["piano.flac", "jazz_guitar.flac", "snoring.flac"]
LABELS = [f"class{i}" for i in range(12)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(3)
    lobe = AST(input_tdim=1024, embed_dim=64, depth=2, num_heads=2).eval()
    head = ASTHead(64, len(LABELS)).eval()
    with torch.no_grad():  # spread the logits: a clear top-1
        head[1].weight.mul_(4)
    return export_model_folder(
        tmp_path_factory.mktemp("prec") / "model",
        lobe,
        head,
        LABELS,
        {"target_length": 1024},
        (-4.27, 4.57),
        multi_label=True,
    )


def _load(folder, tmp_path, prec=None, flags=None, monkeypatch=None):
    if flags is not None:
        # an empty set stands for a CPU whose features cannot be read
        features = frozenset(flags) or None
        monkeypatch.setattr(precision, "cpu_features", lambda: features)
    run_opts = {"device": "cpu"}
    if prec is not None:
        run_opts["precision"] = prec
    return ASTAudioClassifier.from_hparams(
        source=str(folder), savedir=str(tmp_path / "saved"), run_opts=run_opts
    )


@pytest.fixture(scope="module")
def clips(folder, tmp_path_factory):
    model = _load(folder, tmp_path_factory.mktemp("clips"))
    return [model.load_audio(os.path.join(SOUNDS, c))[None] for c in CLIPS]


@pytest.mark.parametrize("prec", ["bf16", "fp16"])
def test_reduced_precision_agrees_on_real_clips(
    folder, clips, tmp_path, prec, monkeypatch
):
    fp32 = _load(folder, tmp_path)
    # a CPU with both native types: no warning, whatever this machine has
    native = _load(
        folder, tmp_path, prec, {"amx_bf16", "amx_fp16"}, monkeypatch
    )
    lobe = native.mods.embedding_model
    dtype = precision.PRECISIONS[prec]
    assert lobe.blocks[0].attn.qkv.weight.dtype == dtype
    assert lobe.patch_embed.proj.weight.dtype == dtype
    assert lobe.blocks[0].norm1.weight.dtype == torch.float32
    assert lobe.pos_embed.dtype == torch.float32
    assert native.mods.classifier[1].weight.dtype == dtype
    for wav in clips:
        # the frontend is untouched: the same float32 log-mel
        feats = native.mods.compute_features(wav)
        assert feats.dtype == torch.float32
        assert torch.equal(feats, fp32.mods.compute_features(wav))
        ref = fp32.compute_logits(wav)
        low = native.compute_logits(wav)
        assert low.dtype == torch.float32
        assert not torch.equal(low, ref)  # it did run in lower precision
        cos = torch.nn.functional.cosine_similarity(low, ref)
        assert float(cos) >= 0.9999, (prec, float(cos))
        assert int(low.argmax()) == int(ref.argmax())
        assert (
            native.predict_topk(wav, k=1)[0][0][0]
            == fp32.labels[int(ref.argmax())]
        )


def test_bf16_warns_without_native_instructions(folder, tmp_path, monkeypatch):
    with pytest.warns(RuntimeWarning) as record:
        model = _load(folder, tmp_path, "bf16", {"avx2", "fma"}, monkeypatch)
    message = str(record[0].message)
    assert "avx512_bf16" in message and "amx_bf16" in message
    assert "9-10x slower" in message and "'fp32'" in message
    # still usable, just slow
    assert model.compute_logits(torch.zeros(1, 16000)).shape == (1, 12)


def test_fp16_warnings(folder, tmp_path, monkeypatch):
    with pytest.warns(RuntimeWarning, match="no faster than float32"):
        _load(folder, tmp_path, "fp16", {"avx512_fp16"}, monkeypatch)
    with pytest.warns(RuntimeWarning, match="amx_fp16"):
        _load(folder, tmp_path, "fp16", {"avx2"}, monkeypatch)
    with pytest.warns(RuntimeWarning, match="could not be read"):
        _load(folder, tmp_path, "fp16", set(), monkeypatch)


def test_no_warning_when_native_or_fp32(folder, tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _load(folder, tmp_path, "bf16", {"avx512_bf16"}, monkeypatch)
        _load(folder, tmp_path, "fp32", {"avx2"}, monkeypatch)
        fp32 = _load(folder, tmp_path, None, {"avx2"}, monkeypatch)
    assert fp32.mods.embedding_model.blocks[0].mlp.fc1.weight.dtype == (
        torch.float32
    )


def test_int8_refuses_a_bf16_model(folder, tmp_path, monkeypatch):
    model = _load(folder, tmp_path, "bf16", {"amx_bf16"}, monkeypatch)
    with pytest.raises(ValueError, match="precision='bf16'"):
        model.quantize_int8()


def test_native_support_table():
    assert precision.native_support("bf16", {"avx512_bf16"})[0] is True
    assert precision.native_support("bf16", {"bf16", "asimd"})[0] is True
    assert precision.native_support("bf16", {"avx512f"})[0] is False
    assert precision.native_support("fp16", {"amx_fp16"})[0] is True
    assert precision.native_support("fp16", {"avx512_fp16"})[0] is False
    assert precision.native_support("fp32", set())[0] is True
    assert precision.native_support("bf16", set())[0] is False
    with pytest.raises(ValueError, match="Unknown precision 'int4'"):
        precision.native_support("int4", set())


def test_cpu_flags_reads_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\n"
        "flags\t\t: fpu AVX2 amx_bf16\n"
    )
    monkeypatch.setattr(precision, "_CPUINFO", str(info))
    assert precision.cpu_flags() == {"fpu", "avx2", "amx_bf16"}
    assert precision.cpu_model_name() == "Test CPU 9000"
    monkeypatch.setattr(precision, "_CPUINFO", str(tmp_path / "none"))
    assert precision.cpu_flags() == frozenset()


def test_cpu_features_ask_torch_on_x86(monkeypatch):
    """torch's CPU queries answer for x86's bf16 / AMX features; the
    flags fill in only what torch has no query for."""
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(
        precision, "cpu_flags", lambda: frozenset({"avx512_bf16", "fphp"})
    )
    answers = dict.fromkeys(precision._TORCH_QUERIES.values(), False)
    for query in answers:
        monkeypatch.setattr(torch.cpu, query, lambda q=query: answers[q])
    # the flag avx512_bf16 is torch's to answer: not taken from the flags
    assert precision.cpu_features() == {"fphp"}
    answers["_is_amx_tile_supported"] = True
    assert precision.cpu_features() == {"amx_bf16", "fphp"}
    assert precision.native_support("bf16") == (True, "the CPU has amx_bf16")
    # the answers equal torch's own on this machine
    monkeypatch.undo()
    machine = precision.platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        features = precision.cpu_features()
        assert ("avx512_bf16" in features) == (
            torch.cpu._is_avx512_bf16_supported()
        )
        assert ("amx_fp16" in features) == torch.cpu._is_amx_fp16_supported()


def test_cpu_features_read_flags_elsewhere(monkeypatch):
    monkeypatch.setattr(precision.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(
        precision, "cpu_flags", lambda: frozenset({"asimd", "bf16"})
    )
    assert precision.cpu_features() == {"bf16"}
    assert precision.native_support("bf16")[0] is True
    assert precision.native_support("fp16")[0] is False
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
    assert precision.cpu_features() is None
    assert precision.native_support("bf16")[0] is None
