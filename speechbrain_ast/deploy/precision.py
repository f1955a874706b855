"""Reduced-precision (bf16 / fp16) inference: CPU capability checks and the
one-time weight cast.

SpeechBrain's ``run_opts={"precision": "bf16"}`` (or ``"fp16"``) makes an
inference interface run under ``torch.autocast`` (its ``inference_ctx``).
:class:`~speechbrain_ast.inference.classifier.ASTAudioClassifier` uses that context and
also casts the weights of the lobe's and head's ``nn.Linear`` and
``nn.Conv2d`` layers once (:func:`cast_for_inference`), so autocast does
not convert every weight matrix again on every call. LayerNorms,
embeddings, the residual stream and the frontend stay float32.

Measured on AST-Base (random weights, batch 1, 1024 frames, 2 cores of a
CPU with AMX-BF16): fp32 1.25 s; autocast alone 0.28 s; weights cast once
plus autocast 0.25 s (logits cosine vs fp32 0.99998); everything cast to
bf16, LayerNorms included, 0.24 s but cosine 0.99996.

A CPU without native instructions for the type runs it much slower than
float32: with oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``) two AST
blocks took 9x float32's time in bf16 and 10x in fp16. fp16 is fast only
with AMX-FP16: with AVX512-FP16 alone it took 1.1x float32's time.
:func:`warn_if_slow` says so instead of letting it happen silently.

Authors
 * speechbrain-ast developers
"""

import platform
import warnings

import torch
from torch import nn

__all__ = [
    "PRECISIONS",
    "cast_for_inference",
    "cpu_features",
    "cpu_flags",
    "cpu_model_name",
    "native_support",
    "precision_dtype",
    "warn_if_slow",
]

#: Precision names, as SpeechBrain's ``--precision`` / ``run_opts``.
PRECISIONS = {
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}

_CPUINFO = "/proc/cpuinfo"

#: The x86 features torch's own CPU queries answer (``torch.cpu``'s). AMX
#: tiles stand for AMX-BF16: every CPU with AMX has both.
_TORCH_QUERIES = {
    "avx512_bf16": "_is_avx512_bf16_supported",
    "amx_bf16": "_is_amx_tile_supported",
    "amx_fp16": "_is_amx_fp16_supported",
}

#: The features torch has no query for: ARM's bf16 / fp16 arithmetic and
#: x86's AVX512-FP16 (which only changes the warning's wording).
_FLAG_ONLY = frozenset({"bf16", "fphp", "asimdhp", "avx512_fp16"})


def _cpuinfo_field(names):
    """The value of the first ``/proc/cpuinfo`` line whose key is in
    ``names``, or None where the file cannot be read or has none."""
    try:
        with open(_CPUINFO, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in names:
                    return value.strip()
    except OSError:
        return None
    return None


def cpu_flags():
    """The CPU's feature flags, lower case (``/proc/cpuinfo``'s ``flags``
    on x86, ``Features`` on ARM).

    Read from the file because torch has no query for ARM's features nor
    for all of x86's; :func:`cpu_features` asks torch first.

    Returns
    -------
    frozenset of str
        Empty where they cannot be read (not Linux).

    Example
    -------
    >>> isinstance(cpu_flags(), frozenset)
    True
    """
    value = _cpuinfo_field({"flags", "features"})
    return frozenset(value.lower().split()) if value else frozenset()


def cpu_features():
    """The CPU features that decide whether bf16 / fp16 run natively.

    On x86 torch's own queries answer (``avx512_bf16``, ``amx_bf16``,
    ``amx_fp16``: what the CPU has and the OS enables); the features torch
    has no query for (ARM's ``bf16``, ``fphp``, ``asimdhp``; x86's
    ``avx512_fp16``) come from :func:`cpu_flags`.

    Returns
    -------
    frozenset of str or None
        None where nothing can be known (not x86, and no readable flags).

    Example
    -------
    >>> features = cpu_features()
    >>> features is None or features <= {
    ...     "avx512_bf16",
    ...     "amx_bf16",
    ...     "amx_fp16",
    ...     "bf16",
    ...     "fphp",
    ...     "asimdhp",
    ...     "avx512_fp16",
    ... }
    True
    """
    flags = cpu_flags()
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i686"):
        return flags & _FLAG_ONLY if flags else None
    found = set(flags & _FLAG_ONLY)
    for name, query in _TORCH_QUERIES.items():
        ask = getattr(torch.cpu, query, None)
        # a torch release without the query: the flag
        if ask() if ask is not None else name in flags:
            found.add(name)
    return frozenset(found)


def cpu_model_name():
    """The CPU's model name (``/proc/cpuinfo``, else ``platform``; torch
    has no query for it).

    Returns
    -------
    str

    Example
    -------
    >>> isinstance(cpu_model_name(), str)
    True
    """
    name = _cpuinfo_field({"model name", "cpu model", "hardware"})
    return name or platform.processor() or platform.machine() or "unknown"


def precision_dtype(precision):
    """The torch dtype of a precision name.

    Arguments
    ---------
    precision : str or None
        ``"fp32"`` (or None), ``"bf16"`` or ``"fp16"``.

    Returns
    -------
    torch.dtype

    Example
    -------
    >>> precision_dtype("bf16")
    torch.bfloat16
    """
    if precision is None:
        return torch.float32
    if precision not in PRECISIONS:
        raise ValueError(
            f"Unknown precision {precision!r}: use one of {sorted(PRECISIONS)}."
        )
    return PRECISIONS[precision]


def native_support(precision, features=None):
    """Whether the CPU computes ``precision`` natively, and why (not).

    bf16 is native with ``avx512_bf16`` or ``amx_bf16`` (x86) or ``bf16``
    (ARM); fp16 with ``amx_fp16`` (x86) or ``fphp`` / ``asimdhp`` (ARM).

    Arguments
    ---------
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    features : set of str, optional
        The CPU's features; default :func:`cpu_features`.

    Returns
    -------
    native : bool or None
        True or False; None where the features cannot be known.
    reason : str
        What was found, for a message.

    Example
    -------
    >>> native_support("bf16", {"avx2", "amx_bf16"})
    (True, 'the CPU has amx_bf16')
    >>> native_support("bf16", {"avx2", "fma"})[0]
    False
    """
    precision_dtype(precision)
    if precision in (None, "fp32"):
        return True, "float32 is always native"
    if features is None:
        features = cpu_features()
    if features is None:
        return None, "the CPU's features could not be read (/proc/cpuinfo)"
    features = {f.lower() for f in features}
    if precision == "bf16":
        wanted = ("amx_bf16", "avx512_bf16", "bf16")
    else:
        wanted = ("amx_fp16", "fphp", "asimdhp")
    found = [name for name in wanted if name in features]
    if found:
        return True, f"the CPU has {found[0]}"
    names = " / ".join(wanted[:2])
    if precision == "fp16" and "avx512_fp16" in features:
        return False, f"the CPU has avx512_fp16 but not {wanted[0]}"
    return False, f"the CPU has no {names} among its features"


def _slow_cost(precision, features):
    """What running ``precision`` without native support costs."""
    if precision == "fp16" and "avx512_fp16" in features:
        return (
            "fp16 matrix products run no faster than float32 there "
            "(1.1x float32's time, measured on AST)"
        )
    return (
        f"PyTorch emulates {precision} matrix products with float32 "
        "arithmetic and conversions there, about 9-10x slower than float32 "
        "(measured on AST with oneDNN limited to AVX2)"
    )


def warn_if_slow(precision, device_type="cpu"):
    """Warns when ``precision`` would be slow on this CPU.

    Nothing happens for float32, for a non-CPU device, or where the CPU
    computes the type natively (:func:`native_support`).

    Arguments
    ---------
    precision : str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.
    device_type : str
        ``"cpu"``, ``"cuda"``, ...

    Returns
    -------
    bool
        True if a warning was given.

    Example
    -------
    >>> warn_if_slow("fp32")
    False
    """
    precision_dtype(precision)
    if precision in (None, "fp32") or device_type != "cpu":
        return False
    features = cpu_features()
    native, reason = native_support(precision, features)
    if native:
        return False
    if native is None:
        cost = (
            f"without native {precision} instructions it runs several "
            "times slower than float32"
        )
    else:
        cost = _slow_cost(precision, features)
    warnings.warn(
        f"precision={precision!r} on this CPU ({cpu_model_name()}): "
        f"{reason}, so {cost}. Use precision 'fp32' (or int8: "
        "quantize_int8, tag --int8) on this machine.",
        RuntimeWarning,
        stacklevel=3,
    )
    return True


def cast_for_inference(module, dtype):
    """Casts the weights of every ``nn.Linear`` and ``nn.Conv*d`` of
    ``module`` to ``dtype`` once, in place, for inference under autocast.

    Under ``torch.autocast`` with the same dtype those layers then run
    without converting their weights on each call; every other parameter
    (LayerNorms, tokens, positional embedding) stays as it is, and
    autocast runs LayerNorm in float32.

    Arguments
    ---------
    module : torch.nn.Module
        The lobe or head.
    dtype : torch.dtype
        ``torch.bfloat16`` or ``torch.float16`` (float32 leaves it as is).

    Returns
    -------
    int
        How many layers were cast.

    Example
    -------
    >>> head = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 2))
    >>> cast_for_inference(head, torch.bfloat16)
    1
    >>> head[0].weight.dtype, head[1].weight.dtype
    (torch.float32, torch.bfloat16)
    """
    if dtype == torch.float32:
        return 0
    layers = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    count = 0
    for layer in module.modules():
        if isinstance(layer, layers):
            layer.to(dtype)
            count += 1
    return count
