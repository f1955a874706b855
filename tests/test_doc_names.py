"""The docs name only modules, classes and functions that exist.

Every dotted name ``speechbrain_ast.x.y`` and every path
``speechbrain_ast/x/y.py`` in the README, CONTRIBUTING, ``docs/``, the
recipe READMEs, the yamls and the library's own docstrings must import or
exist: a moved or renamed piece cannot leave stale text behind.

Authors
 * speechbrain-ast developers
"""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOTTED = re.compile(r"\bspeechbrain_ast(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PATH = re.compile(r"\bspeechbrain_ast(?:/[A-Za-z_][A-Za-z0-9_]*)+(?:\.py)?/?")


def _texts():
    files = [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "recipes").glob("**/*.md")),
        *sorted((ROOT / "recipes").glob("**/*.yaml")),
        *sorted((ROOT / "hparams").glob("*.yaml")),
        *sorted((ROOT / "speechbrain_ast").glob("**/*.py")),
    ]
    return [f for f in files if f.is_file()]


def resolves(dotted):
    """Whether ``a.b.c`` is a module or an attribute chain below one.

    Arguments
    ---------
    dotted : str

    Returns
    -------
    bool

    Example
    -------
    >>> resolves("speechbrain_ast.model.AST")
    True
    >>> resolves("speechbrain_ast.no_such_module")
    False
    """
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return False
        return True
    return False


def _names(pattern):
    found = {}
    for path in _texts():
        text = path.read_text(encoding="utf-8")
        for match in pattern.finditer(text):
            name = match.group(0).rstrip(".")
            found.setdefault(name, path.relative_to(ROOT).as_posix())
    return sorted(found.items())


# the README's note on what moved names the old module model folders of
# version 0.1 still name
MOVED = {("speechbrain_ast.export", "README.md")}


@pytest.mark.parametrize("name,where", _names(DOTTED))
def test_dotted_name_exists(name, where):
    # the file name of SSAST encoders, a format tag, not a module
    if name == "speechbrain_ast.ssast_encoder" or (name, where) in MOVED:
        return
    assert resolves(name), f"{where} names {name}, which does not exist"


@pytest.mark.parametrize("name,where", _names(PATH))
def test_path_exists(name, where):
    assert (ROOT / name).exists(), f"{where} names {name}, which does not exist"


TEST = re.compile(r"\b(tests/test_\w+\.py)::(\w+)")


@pytest.mark.parametrize(
    "name,where",
    sorted(
        {
            (m.group(0), p.relative_to(ROOT).as_posix())
            for p in _texts()
            for m in TEST.finditer(p.read_text(encoding="utf-8"))
        }
    ),
)
def test_named_test_exists(name, where):
    path, function = name.split("::")
    text = (ROOT / path).read_text(encoding="utf-8")
    assert f"def {function}(" in text, f"{where} names {name}, which is gone"
