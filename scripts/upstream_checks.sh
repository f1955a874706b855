#!/usr/bin/env bash
# Upstream SpeechBrain's own checks on the contribution, part by part, as
# its CI, its pre-commit hooks and its reviewers run them:
#   1. a checkout assembled from the verbatim copy of upstream's checks
#      (scripts/assemble_upstream.py; CONTRIBUTING.md says what it holds);
#   2. for each part of the series in order: scripts/upstream.py --part N
#      writes it (twice: the second run must write nothing), then on the
#      part's files upstream's pre-commit hooks (.pre-commit-config.yaml:
#      trailing-whitespace, end-of-file-fixer, requirements-txt-fixer,
#      mixed-line-ending, check-added-large-files, ruff, ruff-format,
#      yamllint, codespell; the hook executables, no network), and in the
#      checkout pytest tests/consistency, tests/.run-linters.sh, the
#      integration's tests and doctests with their line coverage (at least
#      80 %, by upstream's command), and run_recipe_tests on the part's
#      hparams files, performance checks included; then the part is
#      committed;
#   3. the whole contribution written at once onto the parts must
#      write nothing: the parts are exactly the whole.
# The checkout's python sees the checkout's speechbrain package first and
# this project's installed packages after it, but not speechbrain_ast: the
# contribution must run on its own.
# Usage: bash scripts/upstream_checks.sh [UPSTREAM_COPY]   (sourced venv)
# RECORD_COVERAGE=1 also stores each part's coverage table in
# scripts/upstream_coverage/ (the integration README's record).
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
PARTS="$(python -c 'from scripts.upstream import PARTS; print(len(PARTS))')"
INTEGRATION=speechbrain/integrations/audio_spectrogram_transformer
GIT=(git -c user.name=upstream-checks -c user.email=checks@localhost)

echo "== upstream: assembling a checkout from $COPY"
python scripts/assemble_upstream.py "$COPY" "$CHECKOUT"
# what the checks leave behind is not part of any part
printf '%s\n' __pycache__/ tests/tmp/ .coverage '*.egg-info/' >> "$CHECKOUT/.git/info/exclude"
export PYTHONDONTWRITEBYTECODE=1 COVERAGE_FILE="$WORK/.coverage"

# a python for the checkout: its own speechbrain first, then our packages
SITE="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python -m venv --without-pip "$WORK/venv"
UPSITE="$("$WORK/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n%s\n' "$CHECKOUT" "$SITE" > "$UPSITE/checkout.pth"
# "tests" is the checkout's (a namespace package there), not the regular
# package of that name that dcase_util (sed_eval's) installs in ours
printf 'import sys, types; sys.modules.setdefault("tests", types.ModuleType("tests")).__path__ = ["%s/tests"]\n' \
    "$CHECKOUT" > "$UPSITE/checkout_tests.pth"
BIN="$(dirname "$(command -v python)")"
UPPY="$WORK/venv/bin/python"
HOOKS=yes
if [ ! -x "$BIN/trailing-whitespace-fixer" ]; then
    HOOKS=
    echo "== pre-commit hooks skipped: pip install pre-commit-hooks"
fi
COV=yes
"$UPPY" -c 'import pytest_cov' 2>/dev/null || {
    COV=
    echo "== coverage skipped: pip install pytest-cov"
}

write_part() {  # N: write part N, then again: the second run writes nothing
    python scripts/upstream.py "$CHECKOUT" --part "$1" | tail -n 1
    local again
    again="$(python scripts/upstream.py "$CHECKOUT" --part "$1" | tail -n 1)"
    case "$again" in
        "0 files written"*) ;;
        *) echo "error: --part $1 is not idempotent: $again"; exit 1 ;;
    esac
}

hooks() {  # upstream's pre-commit hooks on the staged files of the part
    local files py text yaml reqs
    mapfile -t files < <(git diff --cached --name-only --diff-filter=ACM)
    mapfile -t text < <(printf '%s\n' "${files[@]}" | xargs grep -Il '' || true)
    mapfile -t py < <(printf '%s\n' "${files[@]}" | grep -E '\.py$' || true)
    mapfile -t yaml < <(printf '%s\n' "${files[@]}" | grep -E '\.ya?ml$' || true)
    mapfile -t reqs < <(printf '%s\n' "${files[@]}" | grep -E 'requirements.*\.txt$' || true)
    echo "   ${#files[@]} files (${#py[@]} python, ${#yaml[@]} yaml)"
    "$BIN/trailing-whitespace-fixer" "${text[@]}"
    "$BIN/end-of-file-fixer" "${py[@]}"
    [ "${#reqs[@]}" -eq 0 ] || "$BIN/requirements-txt-fixer" "${reqs[@]}"
    "$BIN/mixed-line-ending" --fix=no "${py[@]}"
    "$BIN/check-added-large-files" --maxkb=1024 "${files[@]}"
    ruff check -q "${py[@]}"
    ruff format -q --check "${py[@]}"
    [ "${#yaml[@]}" -eq 0 ] || yamllint --no-warnings "${yaml[@]}"
    codespell --ignore-words=.dict-speechbrain.txt --skip="*.ipynb" \
        --ignore-regex='base64,.*?==' "${text[@]}"
    git diff --exit-code --stat
}

integration_tests() {  # N: upstream's coverage command on the integration
    local opts=()
    [ -z "$COV" ] || opts+=(--cov="$INTEGRATION/" --cov-context=test --cov-fail-under=80)
    OMP_NUM_THREADS=1 "$UPPY" -m pytest -q -p no:cacheprovider --doctest-modules \
        "${opts[@]}" "$INTEGRATION/" \
        speechbrain/integrations/tests/test_audio_spectrogram_transformer*.py \
        > "$WORK/coverage.txt" || { cat "$WORK/coverage.txt"; exit 1; }
    grep -E "^TOTAL|passed|failed" "$WORK/coverage.txt" | tail -n 2
    if [ -n "${RECORD_COVERAGE:-}" ]; then
        mkdir -p "$ROOT/scripts/upstream_coverage"
        sed -n '/coverage: platform/,/^TOTAL/p' "$WORK/coverage.txt" \
            | sed -e 's/ *$//' -e 's/^_* *\(coverage: .*\) _*$/\1/' \
            > "$ROOT/scripts/upstream_coverage/part$1.txt"
    fi
}

cd "$CHECKOUT"
"$UPPY" - <<'EOF'
import speechbrain, importlib.util
assert speechbrain.__file__.startswith(__import__("os").getcwd()), speechbrain.__file__
assert importlib.util.find_spec("speechbrain_ast") is None, "speechbrain_ast is visible"
EOF
for N in $(seq 1 "$PARTS"); do
    echo "== upstream part $N: writing (${SECONDS}s)"
    (cd "$ROOT" && write_part "$N")
    "${GIT[@]}" add -A
    if [ -n "$HOOKS" ]; then
        echo "== upstream part $N: pre-commit hooks"
        hooks
    fi
    mapfile -t YAMLS < <(git diff --cached --name-only --diff-filter=A -- 'recipes/*.yaml')
    echo "== upstream part $N: pytest tests/consistency"
    "$UPPY" -m pytest -q -p no:cacheprovider tests/consistency | tail -n 1
    echo "== upstream part $N: tests/.run-linters.sh"
    PATH="$WORK/venv/bin:$PATH" bash tests/.run-linters.sh | grep -v "^===" | tail -n 3
    if git diff --cached --quiet -- ':(glob)speechbrain/integrations/**/*.py'; then
        echo "== upstream part $N: integration unchanged, its tests as in part $((N - 1))"
    else
        echo "== upstream part $N: the integration's tests and doctests"
        integration_tests "$N"
    fi
    echo "== upstream part $N: run_recipe_tests on its ${#YAMLS[@]} hparams files"
    # two runners, each on every other hparams file (the rows are
    # single-threaded: two cores, half the time)
    pids=()
    for half in 0 1; do
        mine=()
        for i in "${!YAMLS[@]}"; do
            [ $((i % 2)) -ne "$half" ] || mine+=("${YAMLS[$i]}")
        done
        [ "${#mine[@]}" -gt 0 ] || continue
        OMP_NUM_THREADS=1 PATH="$WORK/venv/bin:$PATH" python - "${mine[@]}" \
            > "$WORK/rows$half.txt" 2>&1 <<'EOF' &
import glob
import sys

from tests.utils.recipe_tests import run_recipe_tests

hparams = sys.argv[1:]
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
        pids+=($!)
    done
    for half in "${!pids[@]}"; do
        wait "${pids[$half]}" || { cat "$WORK/rows$half.txt"; exit 1; }
    done
    cat "$WORK"/rows*.txt 2>/dev/null | grep -E "Running test|\.\.\. [0-9.]+s$" \
        | sed -e 's/INFO:tests.utils.recipe_tests://' | paste - - || true
    rm -f "$WORK"/rows*.txt
    rm -rf tests/tmp
    "${GIT[@]}" commit -q -m "part $N"
done

echo "== upstream: the whole contribution at once onto the parts"
again="$(cd "$ROOT" && python scripts/upstream.py "$CHECKOUT" | tail -n 1)"
case "$again" in
    "0 files written"*) echo "the parts are the whole: $again" ;;
    *) echo "error: the parts differ from the whole: $again"; exit 1 ;;
esac
echo "== upstream checks passed (${SECONDS}s)"
