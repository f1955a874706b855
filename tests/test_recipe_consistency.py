"""Recipe consistency, as upstream SpeechBrain's check demands.

For every yaml under ``recipes/*/hparams/``: each top-level key is used by
the recipe's Python (``hparams["key"]``, ``hparams.key``,
``self.hparams.key``, ``getattr(self.hparams, "key", ...)``), or referenced
by another key of the yaml (``<key>`` / ``<key[...]>``), or is a SpeechBrain
run option (the Brain reads those from hparams). The recipe's Python is its
script alone (``train.py``, or ``pretrain.py``), as upstream's check and its
reviewers read it: the Brain that uses ``loss``, ``mixup``, ... is there.
Also checks the ``tests/recipes/*.csv`` rows (upstream's format) name
existing files.

Authors
 * speechbrain-ast developers
"""

import ast
import csv
import glob
import os
import re

import pytest

from speechbrain.utils.run_opts import RunOptions

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV_COLUMNS = [
    "Task", "Dataset", "Script_file", "Hparam_file", "Data_prep_file",
    "Readme_file", "Result_url", "HF_repo", "test_debug_flags",
    "test_debug_checks",
]  # fmt: skip
RUN_OPTIONS = set(RunOptions().as_dict())
YAMLS = sorted(
    glob.glob(os.path.join(ROOT, "recipes", "*", "hparams", "*.yaml"))
)


def top_level_keys(text):
    """Keys at column 0 (comments, documents markers and lists skipped)."""
    return re.findall(r"^([A-Za-z_][\w.]*)\s*:", text, flags=re.MULTILINE)


def python_uses(source, key):
    k = re.escape(key)
    patterns = [
        rf"hparams\[\s*[\"']{k}[\"']\s*\]",
        rf"hparams\.{k}\b",
        rf"hparams\.get\(\s*[\"']{k}[\"']",
        rf"getattr\(\s*self\.hparams\s*,\s*[\"']{k}[\"']",
    ]
    return any(re.search(p, source) for p in patterns)


def yaml_references(text, key):
    return re.search(rf"<{re.escape(key)}(\[[^>]*\])?>", text) is not None


def test_there_are_recipe_yamls():
    assert any("ESC50" in path for path in YAMLS)


@pytest.mark.parametrize(
    "yaml_path", YAMLS, ids=[os.path.relpath(p, ROOT) for p in YAMLS]
)
def test_every_yaml_key_is_used(yaml_path):
    recipe_dir = os.path.dirname(os.path.dirname(yaml_path))
    sources = [
        os.path.join(recipe_dir, name)
        for name in ("train.py", "pretrain.py")
        if os.path.isfile(os.path.join(recipe_dir, name))
    ]
    assert sources, f"{recipe_dir} has no train.py or pretrain.py"
    python = "\n".join(open(p, encoding="utf-8").read() for p in sources)
    with open(yaml_path, encoding="utf-8") as f:
        text = f.read()
    unused = [
        key
        for key in top_level_keys(text)
        if not key.startswith("__")
        and key not in RUN_OPTIONS
        and not python_uses(python, key)
        and not yaml_references(text, key)
    ]
    assert not unused, (
        f"{os.path.relpath(yaml_path, ROOT)}: keys used neither by the "
        f"recipe's Python nor by another key: {unused}"
    )


@pytest.mark.parametrize(
    "csv_path",
    sorted(glob.glob(os.path.join(ROOT, "tests", "recipes", "*.csv"))),
)
def test_recipe_csv_rows_name_existing_files(csv_path):
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert rows
    for row in rows:
        for column in ("Script_file", "Hparam_file", "Readme_file"):
            assert os.path.isfile(os.path.join(ROOT, row[column])), row[column]
        if row["Data_prep_file"]:
            assert os.path.isfile(os.path.join(ROOT, row["Data_prep_file"]))
        assert row["test_debug_flags"].strip()


@pytest.mark.parametrize(
    "yaml_path", YAMLS, ids=[os.path.relpath(p, ROOT) for p in YAMLS]
)
def test_every_yaml_has_a_csv_row(yaml_path):
    """As upstream's test_recipe_list: each hparams file of
    ``recipes/<Dataset>/`` is a row of ``tests/recipes/<Dataset>.csv``."""
    rel = os.path.relpath(yaml_path, ROOT)
    dataset = rel.split(os.sep)[1]
    path = os.path.join(ROOT, "tests", "recipes", f"{dataset}.csv")
    assert os.path.isfile(path), f"no tests/recipes/{dataset}.csv"
    with open(path, newline="", encoding="utf-8") as f:
        listed = {row["Hparam_file"] for row in csv.DictReader(f)}
    assert rel in listed, f"{rel} is not listed in {path}"


def test_performance_checks_have_upstreams_format():
    """``performance_check=[file, variable, <op><number>, epoch: N]``, the
    format upstream's recipe runner parses (or none)."""
    pattern = re.compile(
        r"performance_check=\[\s*[^,\]]+,\s*[^,\]]+,\s*(<=|>=|==|<|>)"
        r"-?[0-9.]+,\s*epoch:\s*-?\d+\s*\]"
    )
    for path in glob.glob(os.path.join(ROOT, "tests", "recipes", "*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                checks = row["test_debug_checks"]
                if "performance_check" in checks:
                    assert pattern.search(checks), (path, checks)


@pytest.mark.parametrize(
    "script",
    [
        os.path.join(ROOT, "recipes", name)
        for name in (
            "ESC50/train.py",
            "SpeechCommands/train.py",
            "AudioSet/train.py",
            "SSAST/pretrain.py",
            "AudioFolder/train.py",
            "DESED/train.py",
        )
    ],
    ids=lambda p: os.path.relpath(p, ROOT),
)
def test_recipe_scripts_take_a_few_library_parts(script):
    """A recipe calls SpeechBrain and the AST pieces it trains: at most a
    dozen names from the library, none from the library's command lines."""
    with open(script, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith(
            "speechbrain_ast"
        ):
            assert node.module.split(".")[1:2] not in (["tag"], ["export_onnx"])
            names += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            assert not any(
                a.name.startswith("speechbrain_ast") for a in node.names
            )
    assert len(names) <= 12, names
