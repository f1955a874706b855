"""The frontend the pretrained weights were trained on: Kaldi-exact batched
log-mel filterbanks (``fbank``) with Kaldi's mel filterbank matrix
(``mel_banks``), their ONNX-exportable form (``exportable``), and the fixed
normalisation with the datasets' statistics (``normalization``)."""

from speechbrain_ast.features.exportable import (
    ExportableFbank,
    kaldi_frame_kernel,
)
from speechbrain_ast.features.fbank import (
    TORCHAUDIO_FBANK_KWARGS,
    KaldiFbank,
    pad_or_cut,
)
from speechbrain_ast.features.mel_banks import kaldi_mel_banks
from speechbrain_ast.features.normalization import (
    DATASET_STATS,
    FixedNormalization,
    compute_norm_stats,
)

__all__ = [
    "DATASET_STATS",
    "TORCHAUDIO_FBANK_KWARGS",
    "ExportableFbank",
    "FixedNormalization",
    "KaldiFbank",
    "compute_norm_stats",
    "kaldi_frame_kernel",
    "kaldi_mel_banks",
    "pad_or_cut",
]
