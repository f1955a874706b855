# Sourced by the scripts: creates and activates .venv, installing the pinned
# set from constraints.txt when the venv is new or setup.py/constraints changed.
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
stamp="$VENV/.installed-$(cat setup.py constraints.txt recipes/*/extra_requirements.txt 2>/dev/null | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "== installing (pip, pinned by constraints.txt)"
    python -m pip install -q --upgrade pip
    # the tests also cover the optional extras: deployment runtimes and the
    # recipes' own extra requirements (AudioSet's shards: webdataset)
    python -m pip install -q -c constraints.txt -e ".[test,deploy]" \
        $(for f in recipes/*/extra_requirements.txt; do [ -f "$f" ] && printf -- '-r %s ' "$f"; done)
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
