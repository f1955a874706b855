"""Int8 dynamic quantization of the AST lobe and head for CPU inference.

Nearly all of AST's compute is in its ``nn.Linear`` layers (query/key/value,
attention output, the two MLP layers of every block: about 79% of the FLOPs
of a 10 s clip; the attention matmuls are most of the rest). Dynamic
quantization stores those weights as int8 and quantizes the activations on
the fly, batch by batch, so no calibration data is needed.

Authors
 * speechbrain-ast developers
"""

import copy
import warnings

import torch
from torch import nn

__all__ = ["quantize_int8", "count_quantized"]


def quantize_int8(module, per_channel=True, inplace=False):
    """Int8 dynamic quantization of every ``nn.Linear`` of a module.

    What changes: each ``nn.Linear`` (in an :class:`~speechbrain_ast.model.
    AST`: the ``qkv``, ``proj``, ``fc1`` and ``fc2`` layers of every block;
    in an :class:`~speechbrain_ast.model.ASTHead`: its ``Linear``) becomes
    PyTorch's dynamically quantized linear: weights int8 (per output
    channel by default), activations quantized to uint8 per call from their
    observed range, accumulation in int32, output float32.

    What it keeps in float32: the patch-embedding convolution, the
    [CLS]/[DIST] tokens and positional embedding (and its adaptation to
    other lengths), every LayerNorm, the attention softmax and its two
    matmuls (scaled-dot-product attention), GELU, the residual additions
    and the frontend. The module's API, shapes and eval-mode behaviour are
    unchanged. It is an inference-only, CPU-only copy: train and save the
    float model, and quantize it where it is used (its ``state_dict`` holds
    packed int8 weights that a float model cannot load).

    Arguments
    ---------
    module : torch.nn.Module
        The lobe, the head, or any module containing ``nn.Linear`` layers,
        on the CPU.
    per_channel : bool
        One int8 scale per output channel (default, closer to the float
        logits) instead of one per weight matrix.
    inplace : bool
        Quantize ``module`` itself instead of a deep copy.

    Returns
    -------
    torch.nn.Module
        The quantized module, in eval mode.

    Example
    -------
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=2, num_heads=2).eval()
    >>> qlobe = quantize_int8(lobe)
    >>> count_quantized(qlobe), count_quantized(lobe)
    (8, 0)
    >>> feats = torch.randn(2, 128, 128)
    >>> with torch.no_grad():
    ...     cos = nn.functional.cosine_similarity(qlobe(feats), lobe(feats))
    >>> bool(cos.min() > 0.99)
    True
    """
    if not isinstance(module, nn.Module):
        raise ValueError(
            f"quantize_int8 expects a torch.nn.Module, got "
            f"{type(module).__name__}."
        )
    devices = {p.device.type for p in module.parameters()}
    if devices - {"cpu"}:
        raise ValueError(
            f"quantize_int8 works on CPU modules only; this one has "
            f"parameters on {sorted(devices)}. Call .cpu() first (on a GPU, "
            "use bf16/fp16 autocast instead)."
        )
    engines = torch.backends.quantized.supported_engines
    if not {"fbgemm", "x86", "qnnpack", "onednn"} & set(engines):
        raise ValueError(
            "this PyTorch build has no quantized CPU engine (supported: "
            f"{engines}); int8 dynamic quantization is unavailable."
        )
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    qconfig = per_channel_dynamic_qconfig if per_channel else None
    qconfig = qconfig or default_dynamic_qconfig
    target = module if inplace else copy.deepcopy(module)
    target.eval()
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which
        # this project does not depend on; the eager API still works
        warnings.filterwarnings("ignore", message=".*quantiz.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return quantize_dynamic(
            target, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
        )


def count_quantized(module):
    """Number of dynamically quantized linear layers in ``module``.

    Arguments
    ---------
    module : torch.nn.Module
        Any module.

    Returns
    -------
    int
        How many of its submodules are int8 dynamic linear layers.

    Example
    -------
    >>> count_quantized(nn.Linear(4, 4))
    0
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in module.modules())
