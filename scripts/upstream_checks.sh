#!/usr/bin/env bash
# Upstream SpeechBrain's own checks on the contribution, as its CI and
# reviewers run them:
#   1. a checkout assembled from the verbatim copy of upstream's checks
#      (scripts/assemble_upstream.py; CONTRIBUTING.md says what it holds);
#   2. scripts/upstream.py writes the contribution into it (twice: the
#      second run must write nothing);
#   3. in the checkout: pytest tests/consistency, tests/.run-linters.sh
#      (ruff and yamllint as lint-requirements.txt pins them), codespell
#      with .dict-speechbrain.txt, the integration's tests and doctests,
#      and run_recipe_tests on every spectrogram-transformer hparams file,
#      performance checks included.
# The checkout's python sees the checkout's speechbrain package first and
# this project's installed packages after it, but not speechbrain_ast: the
# contribution must run on its own.
# Usage: bash scripts/upstream_checks.sh [UPSTREAM_COPY]   (sourced venv)
set -euo pipefail
cd "$(dirname "$0")/.."
COPY="${1:-../shared/upstream-speechbrain}"
if [ ! -f "$COPY/tests/.run-linters.sh" ]; then
    echo "== upstream checks skipped: no copy of upstream SpeechBrain's checks at $COPY"
    exit 0
fi
ROOT="$(pwd)"
WORK="$(mktemp -d)"
[ -n "${KEEP_UPSTREAM_CHECKOUT:-}" ] || trap 'rm -rf "$WORK"' EXIT
CHECKOUT="$WORK/speechbrain"

echo "== upstream: assembling a checkout from $COPY"
python scripts/assemble_upstream.py "$COPY" "$CHECKOUT"
echo "== upstream: writing the contribution"
python scripts/upstream.py "$CHECKOUT" | tail -n 1
again="$(python scripts/upstream.py "$CHECKOUT" | tail -n 1)"
case "$again" in
    "0 files written"*) echo "second run: $again" ;;
    *) echo "error: scripts/upstream.py is not idempotent: $again"; exit 1 ;;
esac
git -C "$CHECKOUT" add -A

# a python for the checkout: its own speechbrain first, then our packages
SITE="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python -m venv --without-pip "$WORK/venv"
UPSITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n%s\n' "$CHECKOUT" "$SITE" > "$UPSITE/checkout.pth"
export PATH="$WORK/venv/bin:$PATH"
cd "$CHECKOUT"
python - <<'EOF'
import speechbrain, importlib.util
assert speechbrain.__file__.startswith(__import__("os").getcwd()), speechbrain.__file__
assert importlib.util.find_spec("speechbrain_ast") is None, "speechbrain_ast is visible"
EOF

echo "== upstream: pytest tests/consistency"
python -m pytest -q -p no:cacheprovider tests/consistency
echo "== upstream: tests/.run-linters.sh"
bash tests/.run-linters.sh
echo "== upstream: codespell"
git ls-files | grep -E "audio_spectrogram_transformer|spectrogram_transformer|^recipes/AudioSet/" \
    | xargs codespell --ignore-words=.dict-speechbrain.txt --skip="*.ipynb,*.csv" \
        --ignore-regex='base64,.*?=='
echo "== upstream: the integration's tests and doctests"
OMP_NUM_THREADS=1 python -m pytest -q -p no:cacheprovider --doctest-modules \
    speechbrain/integrations/audio_spectrogram_transformer \
    speechbrain/integrations/tests/test_audio_spectrogram_transformer.py
echo "== upstream: run_recipe_tests on every spectrogram-transformer hparams file"
python - <<'EOF'
import glob
import sys

from tests.utils.recipe_tests import run_recipe_tests

hparams = sorted(
    glob.glob("recipes/**/hparams/spectrogram_transformer*.yaml", recursive=True)
)
print(f"{len(hparams)} hparams files:", *hparams, sep="\n  ")
ok = run_recipe_tests(
    filters_fields=["Hparam_file"],
    filters=[hparams],
    do_checks=True,
    run_opts="--device=cpu",
)
if not ok:
    for log in sorted(glob.glob("tests/tmp/*/stderr.txt")):
        print(f"--- {log}", open(log).read()[-2000:], sep="\n")
sys.exit(0 if ok else 1)
EOF
echo "== upstream checks passed"
