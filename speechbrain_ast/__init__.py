"""speechbrain_ast: the Audio Spectrogram Transformer (Gong, Chung & Glass,
Interspeech 2021) for SpeechBrain.

Sub-packages, one idea each: ``model`` (the AST lobe and head),
``features`` (Kaldi-exact batched fbank, normalisation), ``weights``
(DeiT, the reference checkpoints, transformers' folders, SSAST encoders),
``ssast`` (self-supervised pretraining), ``training`` (what the recipes
train with beyond SpeechBrain's blocks), ``data`` (audio reading, the
prepare scripts' checks, WebDataset shards), ``deploy`` (ONNX, int8,
bf16/fp16), ``inference`` (model folders, ``ASTAudioClassifier``),
``testing`` (generated datasets); ``convert``, ``tag`` and ``export_onnx``
are the command lines. See docs/design.md.
"""

__version__ = "0.2.0"
