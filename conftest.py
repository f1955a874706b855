"""Shared pytest set-up: the repository root is importable (``scripts``,
``recipes``) so tests can use the synthetic-data generators and recipe code."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
