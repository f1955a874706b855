"""SSAST (Gong et al., AAAI 2022): masked spectrogram patch modelling, its
masks and targets (``masks``) and the pretraining model (``model``). Its
encoders are read into an AST lobe by :mod:`speechbrain_ast.weights.ssast`."""

from speechbrain_ast.ssast.masks import cluster_mask, frame_mask, patch_values
from speechbrain_ast.ssast.model import SSAST

__all__ = ["SSAST", "cluster_mask", "frame_mask", "patch_values"]
