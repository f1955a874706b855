# Sourced by the scripts: creates and activates .venv, installing the pinned
# set from constraints.txt when the venv is new or setup.py/constraints changed.
# PYTHON: the interpreter that creates a new .venv (default python3); the
# pinned set needs Python 3.11 or newer (numpy 2.4 does), checked first.
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
# the interpreter that will run: the existing venv's, else $PYTHON
if [ -x "$VENV/bin/python" ]; then
    _sbast_py="$VENV/bin/python"
    _sbast_fix="it was created with that Python: remove it (rm -rf $VENV) and run again with a newer one, e.g. PYTHON=python3.12 bash scripts/test.sh"
else
    _sbast_py="$PYTHON"
    _sbast_fix="pick another interpreter with PYTHON, e.g. PYTHON=python3.12 bash scripts/test.sh (or scripts/demo.sh)"
fi
_sbast_ver="$("$_sbast_py" -c 'import sys; print("%d.%d.%d" % tuple(sys.version_info[:3]))' 2>/dev/null || true)"
_sbast_major="${_sbast_ver%%.*}"
_sbast_minor="${_sbast_ver#*.}"
_sbast_minor="${_sbast_minor%%.*}"
case "$_sbast_major:$_sbast_minor" in
    *[!0-9:]* | :* | *:) _sbast_ver="" _sbast_major=0 _sbast_minor=0 ;;
esac
if [ "$_sbast_major" -ne 3 ] || [ "$_sbast_minor" -lt 11 ]; then
    if [ -z "$_sbast_ver" ]; then
        echo "error: cannot run Python '$_sbast_py' (PYTHON=$PYTHON): speechbrain-ast needs Python 3.11 or newer; $_sbast_fix" >&2
    else
        echo "error: found Python $_sbast_ver ($_sbast_py = $(command -v "$_sbast_py")), but speechbrain-ast needs Python 3.11 or newer (the pinned numpy in constraints.txt does); $_sbast_fix" >&2
    fi
    # sourced: stop the calling script (an interactive shell only returns)
    case $- in
        *i*) return 1 ;;
        *) exit 1 ;;
    esac
fi
unset _sbast_py _sbast_fix _sbast_ver _sbast_major _sbast_minor
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
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
