"""Int8 dynamic quantization of the AST lobe and head for CPU inference.

Nearly all of AST's compute is in its ``nn.Linear`` layers (query/key/value,
attention output, the two MLP layers of every block: about 79% of the FLOPs
of a 10 s clip; the attention matmuls are most of the rest). Dynamic
quantization stores those weights as int8 and quantizes the activations on
the fly, batch by batch, so no calibration data is needed.

The int8 matrix products are PyTorch's: the weights are packed for one
quantized engine, whose kernels then run them whatever engine is current.
oneDNN's are used where this PyTorch has them: on a 2-core AVX2 CPU (no
VNNI) AST-Base took 10 % less time with them than with fbgemm's (which
PyTorch's default ``x86`` engine uses for these layers; see
``docs/benchmarks.md``), with the same outputs to float32 rounding, as
both accumulate the same int8 products exactly in int32. A copy of a
quantized module (``copy.deepcopy``, pickling) is packed again for the
engine current at that moment (fbgemm's by default): quantize the float
model again rather than copying the int8 one.

Authors
 * speechbrain-ast developers
"""

import copy
import warnings

import torch
from torch import nn

__all__ = ["quantize_int8", "count_quantized"]


def quantize_int8(module, per_channel=True, inplace=False, engine=None):
    """Int8 dynamic quantization of every ``nn.Linear`` of a module.

    What changes: each ``nn.Linear`` (in an :class:`~speechbrain_ast.model.lobe.
    AST`: the ``qkv``, ``proj``, ``fc1`` and ``fc2`` layers of every block;
    in an :class:`~speechbrain_ast.model.head.ASTHead`: its ``Linear``) becomes
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
        Quantize ``module`` itself instead of a deep copy (its linear
        layers are replaced; a bare ``nn.Linear`` cannot be, so use the
        returned module).
    engine : str, optional
        The quantized engine to pack the weights for, one of
        ``torch.backends.quantized.supported_engines``. Default: ``"onednn"``
        where supported, else the current engine (``qnnpack`` on ARM). The
        global engine setting is restored afterwards.

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
    engine = _choose_engine(engine)
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    qconfig = per_channel_dynamic_qconfig if per_channel else None
    qconfig = qconfig or default_dynamic_qconfig
    target = module if inplace else copy.deepcopy(module)
    target.eval()
    current = torch.backends.quantized.engine
    try:
        torch.backends.quantized.engine = engine
        with warnings.catch_warnings():
            # torch.ao.quantization is deprecated in favour of torchao, which
            # this project does not depend on; the eager API still works
            warnings.filterwarnings("ignore", message=".*quantiz.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # torch swaps a module's children only: a bare Linear is quantized
            # as the one child of a container
            bare = type(target) is nn.Linear
            holder = nn.Sequential(target) if bare else target
            quantize_dynamic(
                holder, {nn.Linear: qconfig}, dtype=torch.qint8, inplace=True
            )
            return holder[0] if bare else holder
    finally:
        torch.backends.quantized.engine = current


def _choose_engine(engine):
    """The quantized engine to pack for: ``engine`` when supported, else a
    ``ValueError`` naming the supported ones; by default oneDNN where
    available, else the current engine."""
    engines = [
        e for e in torch.backends.quantized.supported_engines if e != "none"
    ]
    if not engines:
        raise ValueError(
            "this PyTorch build has no quantized CPU engine (supported: "
            f"{torch.backends.quantized.supported_engines}); int8 dynamic "
            "quantization is unavailable."
        )
    if engine is None:
        if "onednn" in engines:
            return "onednn"
        current = torch.backends.quantized.engine
        return current if current in engines else engines[0]
    if engine not in engines:
        raise ValueError(
            f"quantized engine {engine!r} is not available in this PyTorch; "
            f"choose one of {engines} (or None for the default)."
        )
    return engine


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
    >>> (
    ...     count_quantized(nn.Linear(4, 4)),
    ...     count_quantized(quantize_int8(nn.Linear(4, 4))),
    ... )
    (0, 1)
    """
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return sum(isinstance(m, DynamicLinear) for m in module.modules())
