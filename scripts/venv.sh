# Sourced by the scripts: creates and activates .venv, installing the pinned
# set from constraints.txt when the venv is new or setup.py/constraints changed.
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
stamp="$VENV/.installed-$(cat setup.py constraints.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "== installing (pip, pinned by constraints.txt)"
    python -m pip install -q --upgrade pip
    python -m pip install -q -c constraints.txt -e ".[test]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
