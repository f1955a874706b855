#!/usr/bin/env bash
# The test command: creates .venv when missing, installs the pinned set,
# lints (ruff, codespell, yamllint: upstream SpeechBrain's settings) and
# runs the whole suite with doctests.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
echo "== ruff"
ruff check .
ruff format --check --diff .
echo "== codespell"
codespell -I .dict-speechbrain-ast.txt \
    --skip="*.ipynb,*.json,*.png,*.csv,./.git,./.venv,*.egg-info,./demo_output,./results"
echo "== yamllint"
yamllint -s hparams recipes
# upstream SpeechBrain's own checks on the contribution scripts/upstream.py
# writes (skipped with one line where the copy of its checks is absent)
bash scripts/upstream_checks.sh
echo "== pytest"
python -m pytest -q "$@"
