"""Test data: learnable synthetic sounds (``signals``), small datasets in
the official folder layouts (``esc50``, ``speech_commands``, ``audioset``,
real FSDD recordings as ``fsdd_speech_commands``, DESED-style soundscapes
with exact event times as ``soundscapes``), each also a command
line (``python -m speechbrain_ast.testing.esc50 OUT_DIR``), an offline
HuggingFace hub cache (``hub``) and small random model folders
(``model_folders``): for the tests, the library's and the recipes'
doctests, the benchmarks and the demo.

Authors
 * speechbrain-ast developers
"""
