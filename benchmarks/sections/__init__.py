"""The sections of ``benchmarks/run.py``, one module each: ``latency``,
``frontend``, ``native``, ``int8``, ``training`` (``train`` and
``patchout``), ``compiled`` (``compile``), ``tag``, ``curves``
(``accuracy``); ``common`` holds what they share and ``plot`` draws the
figure.

Authors
 * speechbrain-ast developers
"""
