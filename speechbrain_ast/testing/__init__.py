"""Test data: learnable synthetic sounds (``signals``) and small datasets in
the official folder layouts (``esc50``, ``speech_commands``, ``audioset``,
and real FSDD recordings as ``fsdd_speech_commands``), for the tests, the
recipes' doctests, the benchmarks and the demo. Each module is also a
command line: ``python -m speechbrain_ast.testing.esc50 OUT_DIR``.

Authors
 * speechbrain-ast developers
"""
