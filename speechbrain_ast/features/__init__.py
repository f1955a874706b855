"""The frontend the pretrained weights were trained on: Kaldi-exact batched
log-mel filterbanks (``fbank``), and the fixed normalisation with the
datasets' statistics."""

from speechbrain_ast.features.fbank import (
    DATASET_STATS,
    ExportableFbank,
    FixedNormalization,
    KaldiFbank,
    compute_norm_stats,
    pad_or_cut,
)

__all__ = [
    "DATASET_STATS",
    "ExportableFbank",
    "FixedNormalization",
    "KaldiFbank",
    "compute_norm_stats",
    "pad_or_cut",
]
