"""Shared pytest set-up: the repository root (``scripts``, ``recipes``) and
``tests/`` (the tests' helper modules) are importable; pytest imports test
and doctest modules with ``--import-mode=importlib`` because the recipes
have several modules named ``train``."""

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
for path in (ROOT, os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)
