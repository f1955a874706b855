"""The upstream contribution as a series of parts (``scripts/upstream.py
--part N``): the parts partition the whole, each part's code finds what it
imports in itself or an earlier part, nothing excluded is written, a part
asked for out of order is refused, the READMEs and lists merge into
upstream's files idempotently. Upstream's own checks on every part run in
``scripts/upstream_checks.sh``.

Authors
 * speechbrain-ast developers
"""

import ast
import os
import re
import subprocess
import sys

import pytest

from scripts import upstream, upstream_readme

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPSTREAM_TRAIN = "scripts/upstream/esc50_train.py.in"
SPLITS = ("train", "valid", "test")
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
            # its text in its part: DEFERRED left out, LAZY not counted
            for dep in upstream._deps(rel, sources, part):
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
    assert upstream._pattern_part("data/shards/read.py") == 4
    assert upstream._pattern_part("training/labels.py") == 4
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
        "hparams/ast.yaml",
    ]


def test_deferred_definitions_wait_for_their_part():
    """A definition DEFERRED to a later part is left out before it, with
    its ``__all__`` entry; the last part has every numbered one."""
    sources = upstream.library_sources()
    rel = "training/augment.py"
    first = upstream.upstream_source(rel, sources[rel], 1)
    assert "class NoiseAndRoll" not in first
    assert '"NoiseAndRoll"' not in first and "class Mixup" in first
    last = upstream.upstream_source(rel, sources[rel], len(upstream.PARTS))
    assert last == sources[rel]
    rel = "inference/model_folder.py"  # never upstream (part None)
    assert "def check_model_folder" not in upstream.upstream_source(
        rel, sources[rel], len(upstream.PARTS)
    )
    for rel, names in upstream.DEFERRED.items():
        path = rel if rel.startswith("tests/") else f"speechbrain_ast/{rel}"
        found = upstream._definitions(ast.parse(open(path).read()))
        assert set(names) <= set(found), rel
        assert all(
            p is None or 1 < p <= len(upstream.PARTS) for p in names.values()
        )


def test_lazy_imports_are_inside_functions():
    """The modules of LAZY are imported only inside functions, so that
    the importing module loads without them."""
    sources = upstream.library_sources()
    for rel, lazy in upstream.LAZY.items():
        tree = ast.parse(sources[rel])
        imports = (ast.Import, ast.ImportFrom)
        top = "\n".join(
            ast.unparse(n) for n in tree.body if isinstance(n, imports)
        )
        top_level = upstream.dependencies(top, sources, examples=False)
        assert not top_level & set(lazy), rel
        assert set(lazy) <= upstream.dependencies(sources[rel], sources), rel


def test_a_deferred_definition_is_not_imported_early():
    sources = upstream.library_sources()
    text = "from speechbrain_ast.training.augment import NoiseAndRoll"
    part = upstream.DEFERRED["training/augment.py"]["NoiseAndRoll"]
    upstream._check_deferred(text, sources, part, "here")
    with pytest.raises(ValueError, match=f"goes upstream in part {part}"):
        upstream._check_deferred(text, sources, part - 1, "here")


def test_every_esc50_yaml_fits_the_upstream_train_script():
    """Each ESC-50 yaml, rewritten for the upstream train script, keeps
    our model and training values and gives every key the script reads."""
    from hyperpyyaml import load_hyperpyyaml

    script = open(os.path.join(ROOT, UPSTREAM_TRAIN), encoding="utf-8").read()
    read = set(re.findall(r'hparams\["(\w+)"\]', script))
    read |= set(re.findall(r"hparams\.(\w+)", script))
    read |= {f"{s}_annotation" for s in SPLITS}
    recipe = upstream.RECIPES["ESC50"]
    folder = os.path.join(ROOT, recipe["ours"], "hparams")
    for name in sorted(os.listdir(folder)):
        ours = open(os.path.join(folder, name), encoding="utf-8").read()
        text = upstream.upstream_yaml_body(ours, recipe)
        keys = set(re.findall(r"^(\w+):", text, flags=re.M))
        assert read <= keys, (name, read - keys)
        assert "SafeCheckpointer" not in text and "random_state" not in text
        small = {"embed_dim": 32, "depth": 1, "num_heads": 2}
        overrides = {"data_folder": "/data", "ssl_pretrain": "x", **small}
        hparams = load_hyperpyyaml(text, overrides)
        assert hparams["train_annotation"].endswith("save/train.json")
        assert not hparams["checkpointer"].recoverables.keys() - {
            "embedding_model",
            "classifier",
            "counter",
        }


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


def _load_script(path, name):
    """The module of a script file (any suffix)."""
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader(name, path)
    module = importlib.util.module_from_spec(
        importlib.util.spec_from_loader(name, loader)
    )
    loader.exec_module(module)
    return module


def test_upstream_esc50_script_trains_as_ours(tmp_path):
    """The upstream ESC-50 script (SpeechBrain's checkpointer and
    accuracy, upstream's manifests) reads a clip and its class as ours
    does, and its training and evaluation steps give our losses, logits
    and learning rate."""
    import json

    import numpy as np
    import soundfile as sf
    import torch
    from hyperpyyaml import load_hyperpyyaml

    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch
    from speechbrain_ast.data.audio import load_audio

    theirs = _load_script(os.path.join(ROOT, UPSTREAM_TRAIN), "up_esc50")
    ours = _load_script(
        os.path.join(ROOT, "recipes", "ESC50", "train.py"), "our_esc50"
    )

    # upstream's manifest of a 44.1 kHz stereo clip of class 3
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "a.wav", rng.uniform(-0.5, 0.5, (44100, 2)), 44100)
    manifest = tmp_path / "train.json"
    manifest.write_text(json.dumps({"a": {"wav": "a.wav", "classID": 3}}))
    hparams = {"audio_data_folder": str(tmp_path), "n_classes": 50}
    hparams.update({f"{s}_annotation": str(manifest) for s in SPLITS})
    item = theirs.dataio_prepare(hparams)["train"][0]
    assert torch.equal(item["sig"], load_audio(tmp_path / "a.wav", 16000))
    assert item["target"].argmax() == 3 and item["target"].sum() == 1

    path = os.path.join(ROOT, "recipes", "ESC50", "hparams", "ast.yaml")
    overrides = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
        "embed_dim": 32,
        "depth": 1,
        "num_heads": 2,
        "target_length": 64,
        "mixup_prob": 0.5,
    }
    with open(path, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    brains = [
        module.ESC50Brain(
            modules=hparams["modules"],
            opt_class=hparams["opt_class"],
            hparams=hparams,
            run_opts={"device": "cpu"},
        )
        for module in (ours, theirs)
    ]
    targets = torch.nn.functional.one_hot(torch.tensor([3, 7]), 50).float()
    batch = PaddedBatch(
        [
            {"id": "a", "sig": torch.randn(16000) * 0.1, "target": targets[0]},
            {"id": "b", "sig": torch.randn(9000) * 0.1, "target": targets[1]},
        ]
    )
    for stage in (sb.Stage.TRAIN, sb.Stage.VALID):
        results = []
        for brain in brains:
            brain.modules.train(stage == sb.Stage.TRAIN)
            brain.on_stage_start(stage)
            torch.manual_seed(1)  # the same mixup and SpecAugment draws
            with torch.set_grad_enabled(stage == sb.Stage.TRAIN):
                logits, mixed = brain.compute_forward(batch, stage)
                loss = brain.compute_objectives((logits, mixed), batch, stage)
            results.append((logits, mixed, loss))
        for mine, upstream_ in zip(*results):
            assert torch.equal(mine, upstream_), stage
    rates = []
    for brain in brains:
        brain.init_optimizers()
        hparams["epoch_counter"].current = 8
        brain.optimizer_step = 3
        brain.on_fit_batch_start(batch, True)
        rates.append(brain.optimizer.param_groups[0]["lr"])
    assert rates[0] == rates[1] == pytest.approx(1e-5 * 0.85**3)
