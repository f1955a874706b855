"""Shared pytest set-up: the repository root (``scripts``, ``recipes``) and
``tests/`` (the tests' helper modules) are importable; pytest imports test
and doctest modules with ``--import-mode=importlib`` because the recipes
have several modules named ``train``. Each recipe folder is importable too,
as it is when its script runs (Python puts a script's folder on sys.path):
the doctest collection imports ``train.py``, which imports its prepare
script."""

import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
for path in (ROOT, os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)
RECIPES = os.path.join(ROOT, "recipes")
for name in sorted(os.listdir(RECIPES)):
    if os.path.isdir(os.path.join(RECIPES, name)):
        sys.path.append(os.path.join(RECIPES, name))
