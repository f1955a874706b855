"""Tests of int8 dynamic quantization of the AST lobe and head.

Authors
 * speechbrain-ast developers
"""

import pytest
import torch
from torch import nn

from speechbrain_ast.deploy.quantize import (
    _choose_engine,
    count_quantized,
    quantize_int8,
)
from speechbrain_ast.features import FixedNormalization, KaldiFbank
from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.testing.signals import synthetic_audio
from speechbrain_ast.weights import build_from_checkpoint


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    from transformers import ASTConfig, ASTForAudioClassification

    config = ASTConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=512,
        max_length=128,
        num_labels=10,
    )
    torch.manual_seed(0)
    model = ASTForAudioClassification(config).eval()
    folder = tmp_path_factory.mktemp("hf_quant")
    model.save_pretrained(folder)
    return folder, model


def test_linear_layers_quantized_rest_kept():
    lobe = AST(input_tdim=128, embed_dim=64, depth=3, num_heads=2).eval()
    head = ASTHead(64, 5).eval()
    qlobe, qhead = quantize_int8(lobe), quantize_int8(head)
    # qkv, proj, fc1, fc2 per block; the head's Linear
    assert count_quantized(qlobe) == 4 * 3 and count_quantized(qhead) == 1
    # copies: the float modules are untouched
    assert count_quantized(lobe) == 0 and isinstance(head[1], nn.Linear)
    # float32 where the docstring says so
    assert isinstance(qlobe.patch_embed.proj, nn.Conv2d)
    assert qlobe.pos_embed.dtype == torch.float32
    assert isinstance(qlobe.blocks[0].norm1, nn.LayerNorm)
    assert isinstance(qhead[0], nn.LayerNorm)
    # any length still works (adapted positions, native length)
    with torch.no_grad():
        assert qhead(qlobe(torch.randn(2, 98, 128))).shape == (2, 5)
    same = quantize_int8(lobe, inplace=True)
    assert same is lobe and count_quantized(lobe) == 12
    # a bare Linear too (torch's quantize_dynamic swaps children only)
    linear = nn.Linear(8, 3)
    qlinear = quantize_int8(linear)
    assert count_quantized(qlinear) == 1 and isinstance(linear, nn.Linear)
    x = torch.randn(5, 8)
    torch.testing.assert_close(qlinear(x), linear(x), atol=0.05, rtol=0)


@pytest.mark.parametrize("per_channel", [True, False])
def test_logits_agree_with_transformers_fp32(hf_folder, per_channel):
    folder, hf_model = hf_folder
    lobe, head, _ = build_from_checkpoint(folder)
    qlobe = quantize_int8(lobe, per_channel=per_channel)
    qhead = quantize_int8(head, per_channel=per_channel)
    frontend = KaldiFbank(target_length=128)
    norm = FixedNormalization(dataset="audioset")
    feats = norm(frontend(synthetic_audio(8, 1.28)))
    with torch.no_grad():
        want = hf_model(input_values=feats).logits
        got = qhead(qlobe(feats))
    cos = nn.functional.cosine_similarity(got, want)
    # the target in docs/benchmarks.md; measured min 0.9986 per channel,
    # 0.9960 per tensor
    assert cos.min() > 0.995, cos
    assert (got - want).abs().max() > 0  # it did quantize


ENGINES = [e for e in torch.backends.quantized.supported_engines if e != "none"]


@pytest.mark.skipif(
    not {"onednn", "x86"} <= set(ENGINES), reason="needs oneDNN and x86"
)
def test_onednn_default_gives_fbgemm_outputs():
    """Packed for oneDNN (the default where available) or for PyTorch's x86
    engine (fbgemm), the int8 layers give the same outputs up to int8
    quantization noise (on AVX2 CPUs equal to float rounding; on a CPU with
    AMX the two engines' kernels differed by up to 0.02 on outputs of unit
    scale, cosine > 0.9999), whichever engine is current when they run; the
    global engine is left as it was."""
    torch.manual_seed(0)
    lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    feats = torch.randn(3, 128, 128) * 2
    before = torch.backends.quantized.engine
    default = quantize_int8(lobe)
    assert torch.backends.quantized.engine == before
    assert _choose_engine(None) == "onednn"
    fbgemm = quantize_int8(lobe, engine="x86")
    with torch.no_grad():
        a, b = default(feats), fbgemm(feats)
        torch.backends.quantized.engine = "onednn"
        try:
            c = fbgemm(feats)
        finally:
            torch.backends.quantized.engine = before
    assert (a - lobe(feats)).abs().max() > 0  # it did quantize
    cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0)
    assert cosine > 0.9999
    torch.testing.assert_close(a, b, rtol=0, atol=0.05)
    torch.testing.assert_close(b, c, rtol=0, atol=0)


def test_engine_choice_without_onednn(monkeypatch):
    """Where PyTorch has no oneDNN (e.g. ARM: qnnpack), the current engine
    is used; with no engine at all, a ValueError says so."""
    from types import SimpleNamespace

    def engines(supported, current):
        backend = SimpleNamespace(supported_engines=supported, engine=current)
        monkeypatch.setattr(torch.backends, "quantized", backend)

    engines(["qnnpack", "none"], "qnnpack")
    assert _choose_engine(None) == "qnnpack"
    engines(["qnnpack", "fbgemm", "none"], "none")
    assert _choose_engine(None) == "qnnpack"
    assert _choose_engine("fbgemm") == "fbgemm"
    engines(["none"], "none")
    with pytest.raises(ValueError, match="no quantized CPU engine"):
        _choose_engine(None)


def test_errors():
    with pytest.raises(ValueError, match="torch.nn.Module, got dict"):
        quantize_int8({})
    lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=2)
    lobe.to("meta")
    with pytest.raises(ValueError, match=r"CPU modules only.*\['meta'\]"):
        quantize_int8(lobe)
    before = torch.backends.quantized.engine
    with pytest.raises(ValueError, match="engine 'fast' is not available"):
        quantize_int8(nn.Linear(4, 4), engine="fast")
    assert torch.backends.quantized.engine == before
