"""Inference: the model folder an ``EncoderClassifier`` loads offline
(``model_folder``: writer and reader; ``hyperparams``: the text of its
``hyperparams.yaml``) and :class:`ASTAudioClassifier` (``classifier``:
lengths-aware scores and top-k labels)."""

from speechbrain_ast.inference.classifier import ASTAudioClassifier
from speechbrain_ast.inference.model_folder import (
    ModelFolderPretrainer,
    export_model_folder,
    export_trained_model,
    sized_label_encoder,
)

__all__ = [
    "ASTAudioClassifier",
    "ModelFolderPretrainer",
    "export_model_folder",
    "export_trained_model",
    "sized_label_encoder",
]
