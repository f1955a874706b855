"""speechbrain_ast: the Audio Spectrogram Transformer (Gong, Chung & Glass,
Interspeech 2021) for SpeechBrain.

The library is flat, one idea per file: ``features`` (Kaldi-exact batched
fbank, normalisation), ``augment``, ``pos_embed``, ``model`` (the AST lobe and
head), ``pretrained`` (DeiT and published checkpoints), ``audio``, ``metrics``,
``training``, ``export``, ``inference``; ``convert`` and ``tag`` are the two
command lines. See docs/design.md.
"""

__version__ = "0.1.0"
