"""The upstream contribution as a series of parts (``scripts/upstream.py
--part N``): the parts partition the whole, each part's code finds what it
imports in itself or an earlier part, nothing excluded is written, a part
asked for out of order is refused, the READMEs and lists merge into
upstream's files idempotently. Upstream's own checks on every part run in
``scripts/upstream_checks.sh``.

Authors
 * speechbrain-ast developers
"""

import os
import subprocess
import sys

import pytest

from scripts import upstream, upstream_readme

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY = os.path.join(ROOT, "..", "shared", "upstream-speechbrain")
needs_copy = pytest.mark.skipif(
    not os.path.isfile(os.path.join(COPY, "tests", ".run-linters.sh")),
    reason="no copy of upstream SpeechBrain's checks",
)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """An assembled upstream checkout (no contribution written)."""
    from scripts.assemble_upstream import assemble

    dest = str(tmp_path_factory.mktemp("up") / "speechbrain")
    assemble(COPY, dest)
    return dest


def test_every_library_file_has_a_part_and_imports_resolve():
    part_of, _ = upstream.assign_parts()
    sources = upstream.library_sources()
    for rel, part in part_of.items():
        assert 1 <= part <= len(upstream.PARTS), rel
        if rel.endswith(".py"):
            for dep in upstream.dependencies(sources[rel], sources):
                if not dep.endswith("__init__.py"):
                    assert part_of[dep] <= part, (rel, dep)


def test_excluded_never_goes_upstream():
    part_of, _ = upstream.assign_parts()
    for rel in part_of:
        assert not upstream._excluded(rel), rel
    for rel in ("deploy/onnx.py", "convert.py", "tag.py", "export_onnx.py"):
        assert upstream._excluded(rel)
    assert upstream._excluded("label_files/class_labels_indices.csv")
    assert upstream._excluded("testing/esc50.py")


def test_patterns_stay_within_one_folder():
    assert upstream.matches("data/audio.py", "data/*.py")
    assert not upstream.matches("data/shards/read.py", "data/*.py")
    assert upstream._pattern_part("data/shards/read.py") == 3
    assert upstream._pattern_part("training/labels.py") == 3
    assert upstream._pattern_part("model/lobe.py") == 1


def test_recipe_files_are_in_exactly_one_part():
    for key, recipe in upstream.RECIPES.items():
        seen = []
        for part in range(1, len(upstream.PARTS) + 1):
            seen += upstream.recipe_part_files(key, part)
        assert len(seen) == len(set(seen)), key
        folder = os.path.join(ROOT, recipe["ours"], "hparams")
        yamls = [f"hparams/{n}" for n in os.listdir(folder)]
        assert sorted(n for n in seen if n.endswith(".yaml")) == sorted(yamls)
    assert upstream.recipe_part_files("ESC50", 1) == [
        "train.py",
        "esc50_prepare.py",
        "hparams/ast.yaml",
    ]


def test_author_lines_as_upstream_writes_them():
    text = "Authors\n * speechbrain-ast developers\n#  * speechbrain-ast developers\n"
    out = upstream.rename_authors(text, "Jo Doe")
    assert "speechbrain-ast" not in out
    assert out.splitlines()[1].startswith(" * Jo Doe 2")
    assert out.splitlines()[2].startswith("#  * Jo Doe 2")


def test_requirements_sorted_as_the_hook_sorts_them():
    text = upstream.merge_requirements("webdataset\nnumpy\n", ["timm", "Numpy"])
    assert text == "numpy\ntimm\nwebdataset\n"


def test_mock_imports_gain_timm_once():
    conf = 'x = 1\nautodoc_mock_imports = [\n    "k2",\n]\n'
    once = upstream.merge_mock_imports(conf, ["timm"])
    assert '    "k2",\n    "timm",\n]' in once
    assert upstream.merge_mock_imports(once, ["timm"]) == once


@needs_copy
def test_readmes_in_upstreams_layout_and_idempotent(checkout):
    recipe = upstream.RECIPES["ESC50"]
    rel = f"{recipe['upstream']}/README.md"
    theirs = open(os.path.join(checkout, rel), encoding="utf-8").read()
    yamls = [f"{recipe['upstream']}/hparams/spectrogram_transformer.yaml"]
    names = {"spectrogram_transformer.yaml": "ast.yaml"}
    once = upstream_readme.recipe_readme("ESC50", recipe, theirs, yamls, names)
    twice = upstream_readme.recipe_readme("ESC50", recipe, once, yamls, names)
    assert once == twice
    supported = once.index("## Supported Models")
    entry = once.index("### Audio Spectrogram Transformer (AST)")
    results = once.index("## Results")
    assert supported < entry < results
    assert "| spectrogram_transformer.yaml |" in once[results:]
    assert once.count("gong21b_interspeech") == 1
    assert "YuanGongND/ast" in once and "BSD-3-Clause" in once
    assert theirs.replace(once, "") == theirs  # upstream's text is kept
    for line in theirs.splitlines():
        assert line in once


@needs_copy
def test_parts_in_order_make_the_whole(checkout, tmp_path):
    import shutil

    dest = str(tmp_path / "speechbrain")
    shutil.copytree(checkout, dest)
    with pytest.raises(upstream.PartOrderError, match="write it first"):
        upstream.write_contribution(dest, out=open(os.devnull, "w"), part=2)
    for part in range(1, len(upstream.PARTS) + 1):
        written = upstream.write_contribution(
            dest, out=open(os.devnull, "w"), part=part
        )
        assert written
        if part == 1:
            first = set(written)
            assert all(
                "AudioSet" not in p and "Google-speech" not in p for p in first
            )
    assert upstream.write_contribution(dest, out=open(os.devnull, "w")) == []
    files = upstream.contribution(dest)
    package = [p for p in files if p.startswith(upstream.PACKAGE_DIR)]
    assert not any(p.endswith("/class_labels_indices.csv") for p in package)
    assert not any("/deploy/" in p or p.endswith("/convert.py") for p in files)
    assert not any(
        p.endswith("extra_requirements.txt") and "integrations" in p
        for p in files
    )
    texts = [t for t in files.values() if isinstance(t, str)]
    assert not any("speechbrain-ast developers" in t for t in texts)
    assert not any("speechbrain_ast" in t for t in texts)


def test_part_refused_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "scripts/upstream.py", str(tmp_path), "--part", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        "error: not an upstream SpeechBrain checkout"
    )
