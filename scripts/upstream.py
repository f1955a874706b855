#!/usr/bin/env python3
"""Writes the Audio Spectrogram Transformer contribution into an upstream
SpeechBrain checkout, whole or as a series of parts a reviewer can take
one at a time.

::

    python scripts/upstream.py UPSTREAM_CHECKOUT             # everything
    python scripts/upstream.py UPSTREAM_CHECKOUT --part 1    # then 2, 3, 4
    python scripts/upstream.py --list-parts                  # what is where

Part N goes on top of parts 1..N-1, written (and committed) before it; the
parts together are exactly what the command writes without ``--part``.
What each part holds is decided by :data:`PARTS`: library modules and
recipe files by sub-package and file name, and a module that a part's
code or yamls import joins the earliest part that needs it (an import
inside a function that :data:`LAZY` names does not: a weights reader
comes with the part that uses it). :data:`DEFERRED` definitions join
their module in a later part, or never. :data:`EXCLUDED` never goes
upstream (deployment, the command lines, event detection, our test-data
generators, the AudioSet label list). A recipe file may have an upstream
text of its own (``scripts/upstream/``: ESC-50's train script on
SpeechBrain's checkpointer, metrics and upstream's prepare script;
``tests/test_upstream_series.py`` checks it trains as ours does).

What is written (one line per file, ``wrote`` or ``unchanged``):

* the library as ``speechbrain/integrations/audio_spectrogram_transformer/``
  (timm is not an upstream dependency, so it goes where upstream keeps
  third-party integrations), with a README (install line, coverage
  record), an import guard for timm and ``lazy_export_all`` in its
  ``__init__.py`` files, and its tests in ``speechbrain/integrations/tests/``;
* the recipes at upstream's paths, next to upstream's own files, which are
  never overwritten: ``recipes/ESC50/classification/``,
  ``recipes/Google-speech-commands/``, new ``recipes/AudioSet/classification/``
  and ``recipes/AudioSet/SSAST/``. File names say
  ``spectrogram_transformer``: "AST" already names speech translation
  upstream (``recipes/CoVoST/AST``). The shared model definition
  (``hparams/ast_base_model.yaml``) is written into each yaml, as
  upstream's yamls define their models;
* one ``tests/recipes/<Dataset>.csv`` row per hparams file, each with a
  tiny run on upstream's samples (or small generated ones) and a
  ``performance_check`` where the run learns;
* an entry in each recipe README in upstream's layout (Supported Models,
  rows in the Results table, the papers' bibtex), ``timm`` in the recipes'
  ``extra_requirements.txt`` and in ``docs/conf.py``'s
  ``autodoc_mock_imports``, the words codespell needs in
  ``.dict-speechbrain.txt``.

It is idempotent: a second run writes nothing new. The written Python is
sorted and formatted with the checkout's own ruff settings (ruff must be
installed: upstream's ``lint-requirements.txt``). A folder that is not an
upstream SpeechBrain checkout is refused.

Authors
 * speechbrain-ast developers
"""

import argparse
import ast
import csv
import datetime
import difflib
import doctest
import fnmatch
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

try:  # as a module (python -m scripts.upstream) or as a file
    from scripts.upstream_readme import (
        YAML_NOTES,
        integration_readme,
        recipe_readme,
    )
except ImportError:
    from upstream_readme import YAML_NOTES, integration_readme, recipe_readme

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "speechbrain_ast")

PACKAGE = "speechbrain.integrations.audio_spectrogram_transformer"
PACKAGE_DIR = os.path.join(*PACKAGE.split("."))
TESTS_DIR = "speechbrain/integrations/tests"
NAME = "spectrogram_transformer"
# the name on the files' "Authors" lines, as upstream writes them
# ("Name Year"); give yours with --author when opening the pull request
DEFAULT_AUTHOR = "Audio Spectrogram Transformer integration authors"
OUR_AUTHOR_LINE = re.compile(
    r"^(?P<lead>[ \t]*#?[ \t]*)\* speechbrain-ast developers\b.*$", re.M
)
CODESPELL_WORDS = ["fpr", "passt"]
CSV_COLUMNS = [
    "Task", "Dataset", "Script_file", "Hparam_file", "Data_prep_file",
    "Readme_file", "Result_url", "HF_repo", "test_debug_flags",
    "test_debug_checks", "performance",
]  # fmt: skip
# Never upstream (paths under speechbrain_ast/, fnmatch patterns).
EXCLUDED = (
    "testing/*",  # our generated datasets: upstream's tests bring samples
    "deploy/*",  # ONNX export, int8, bf16/fp16: stays in this project
    "convert.py",  # the command lines
    "tag.py",
    "export_onnx.py",
    "features/exportable*",  # the ONNX-exportable frontend
    "inference/classifier*",  # ASTAudioClassifier (precision, int8)
    "label_files/README.md",  # provenance: in the integration README
    # AudioSet's ontology names (CC BY-SA 4.0): not in an Apache-2.0 tree;
    # the AudioSet recipe reads the file from the data folder
    "label_files/class_labels_indices.csv",
    "events/*",  # sound event detection: not part of the series
)

# Definitions that reach upstream after the rest of their module, so that
# a part holds what its recipes and tests use: {file: {name: part}}, the
# file under speechbrain_ast/ (or one of the PARTS' test files), the name
# a top-level function, class or constant, or Class.method; part None:
# never upstream. Until its part the upstream text leaves the definition
# out, with its __all__ entry and the imports only it used.
DEFERRED = {
    # the statistics of a user's own data (our AudioFolder recipe)
    "features/normalization.py": {
        "_manifest_paths": None,
        "compute_norm_stats": None,
    },
    # for the command lines and ASTAudioClassifier, which stay here
    "inference/model_folder.py": {"check_model_folder": None},
    # AudioSet's label list is not written (see EXCLUDED)
    "weights/labels.py": {
        "AUDIOSET_CLASSES": None,
        "PUBLISHED_TASKS": None,
        "shipped_labels": None,
    },
    # the helpers of the reference's and SSAST's readers
    "weights/common.py": {
        "_block_depth": 2,
        "lobe_config": 2,
        "strip_module_prefix": 2,
    },
    # Speech Commands' augmentation
    "training/augment.py": {"NoiseAndRoll": 3},
    "tests/test_upstream_integration.py": {
        "test_reference_checkpoint_initialises_the_backbone": 2,
        "test_imagenet_deit_initialises_the_lobe": 2,
        "test_safe_checkpointer_loads_the_last_good_checkpoint": 3,
        "test_ssast_encoder_initialises_the_lobe": 5,
    },
}
# Imports inside functions that do not bring the module into the
# importing file's part: {file: modules}. Each reader of a weights format
# comes with the part whose recipes or tests use it (ImageNet DeiT and the
# reference's .pth files: part 2; SSAST encoders: part 5); ESC-50 starts
# from the hub's transformers folder.
LAZY = {
    "weights/build.py": (
        "weights/deit.py",
        "weights/reference.py",
        "weights/ssast.py",
    )
}

# Our recipe folders -> upstream's: csv (dataset) name, task, file names
# (ours -> upstream's; yamls are renamed by rule, see upstream_yaml_name).
RECIPES = {
    "ESC50": {
        "ours": "recipes/ESC50",
        "upstream": "recipes/ESC50/classification",
        "dataset": "ESC50",
        "task": "SoundClassification",
        "files": {"train.py": f"train_{NAME}.py"},
        # upstream's text of ours (SpeechBrain's checkpointer and metrics);
        # upstream's own esc50_prepare.py writes the manifests
        "upstream_text": {"train.py": "scripts/upstream/esc50_train.py.in"},
        "data_prep": "esc50_prepare.py",
        "yaml_rewrite": "esc50",
        "requirements": ["timm"],
    },
    "SpeechCommands": {
        "ours": "recipes/SpeechCommands",
        "upstream": "recipes/Google-speech-commands",
        "dataset": "Google-speech-commands",
        "task": "Command_recognition",
        "files": {
            "train.py": f"train_{NAME}.py",
            "speechcommands_prepare.py": f"prepare_GSC_{NAME}.py",
        },
        "requirements": ["timm"],
    },
    "AudioSet": {
        "ours": "recipes/AudioSet",
        "upstream": "recipes/AudioSet/classification",
        "dataset": "AudioSet",
        "task": "Tagging",
        "files": {
            "train.py": f"train_{NAME}.py",
            "audioset_prepare.py": f"audioset_prepare_{NAME}.py",
            "ensemble.py": f"ensemble_{NAME}.py",
            "make_shards.py": f"make_shards_{NAME}.py",
        },
        "requirements": ["timm", "webdataset>=0.2.86"],
    },
    "SSAST": {
        "ours": "recipes/SSAST",
        "upstream": "recipes/AudioSet/SSAST",
        "dataset": "AudioSet",
        "task": "Self_supervised_learning",
        "files": {"pretrain.py": "pretrain.py"},
        "yaml_names": "keep",  # ssast_small.yaml: no "AST" to rename
        "requirements": ["timm"],
    },
}

# The series. library: modules and data files under speechbrain_ast/
# (fnmatch; a name without wildcards beats a pattern of an earlier part);
# recipes: {recipe: file names and yaml names, fnmatch}; tests: our test
# files that go to speechbrain/integrations/tests/; samples: generated
# sample folders.
PARTS = [
    {
        "title": "The AST lobe with its frontend and weight import, "
        "ESC-50 fine-tuning, model folders for EncoderClassifier",
        "library": [
            "model/*",
            "features/*",
            "weights/*",
            "inference/*",
            "training/augment.py",
            "training/losses.py",
            "training/optim.py",
            "label_files/esc_*",
        ],
        "recipes": {"ESC50": ["train.py", "ast.yaml"]},
        "tests": ["tests/test_upstream_integration.py"],
    },
    {
        "title": "ImageNet (DeiT) weights and the reference's checkpoints; "
        "ESC-50's ablation configurations",
        "library": ["weights/deit.py", "weights/reference.py"],
        "recipes": {"ESC50": ["ast_*.yaml"]},
    },
    {
        "title": "Speech Commands V2, with the recipes' training helpers",
        "library": ["training/*", "data/*.py", "label_files/speechcommands_*"],
        "recipes": {
            "SpeechCommands": [
                "train.py",
                "speechcommands_prepare.py",
                "ast*.yaml",
            ],
        },
        "samples": ["SpeechCommands"],
    },
    {
        "title": "AudioSet, with WebDataset shards",
        "library": [
            "data/shards/*",
            "training/labels.py",
            "training/ensemble.py",
        ],
        "recipes": {
            "AudioSet": [
                "train.py",
                "audioset_prepare.py",
                "ensemble.py",
                "make_shards.py",
                "ast*.yaml",
            ]
        },
        "samples": ["AudioSet"],
    },
    {
        "title": "SSAST: self-supervised pretraining and fine-tuning "
        "from its encoders (--ssl_pretrain)",
        "library": ["ssast/*", "weights/ssast.py"],
        "recipes": {
            "SSAST": ["pretrain.py", "ssast*.yaml"],
            "ESC50": ["ssast*.yaml"],
            "SpeechCommands": ["ssast*.yaml"],
        },
    },
]

SAMPLES = "tests/samples/spectrogram_transformer"
TINY = (
    "--embed_dim=64 --depth=2 --num_heads=2 --imagenet_pretrain=False "
    "--audioset_pretrain=False --num_workers=0"
)


class NotAnUpstreamCheckout(ValueError):
    """The target folder is not an upstream SpeechBrain checkout."""


class PartOrderError(ValueError):
    """A part was asked for before the parts it goes on top of."""


def check_checkout(path):
    """Raises :class:`NotAnUpstreamCheckout` naming what is missing.

    An upstream checkout has ``speechbrain/``, ``recipes/``,
    ``tests/recipes/``, ``tests/consistency/`` and a ``pyproject.toml``
    whose project is ``speechbrain``.

    Arguments
    ---------
    path : str
        The folder to write into.

    Example
    -------
    >>> import tempfile
    >>> try:
    ...     check_checkout(tempfile.mkdtemp())
    ... except NotAnUpstreamCheckout as err:
    ...     print(str(err).split(":")[0])
    not an upstream SpeechBrain checkout
    """
    needed = ["speechbrain", "recipes", "tests/recipes", "tests/consistency"]
    missing = [p for p in needed if not os.path.isdir(os.path.join(path, p))]
    pyproject = os.path.join(path, "pyproject.toml")
    named = False
    if os.path.isfile(pyproject):
        with open(pyproject, encoding="utf-8") as f:
            named = re.search(r'^name\s*=\s*"speechbrain"', f.read(), re.M)
    if missing or not named:
        what = [f"{p}/ is missing" for p in missing]
        if not named:
            what.append('pyproject.toml does not name project "speechbrain"')
        raise NotAnUpstreamCheckout(
            f"not an upstream SpeechBrain checkout: {path} ("
            + "; ".join(what)
            + "). Give the root of a clone of SpeechBrain's repository."
        )


def upstream_yaml_name(name, recipe=None):
    """``ast.yaml`` -> ``spectrogram_transformer.yaml``,
    ``ast_scratch.yaml`` -> ``spectrogram_transformer_scratch.yaml``.

    Example
    -------
    >>> upstream_yaml_name("ast_patch128x2.yaml")
    'spectrogram_transformer_patch128x2.yaml'
    >>> upstream_yaml_name("ssast_small.yaml", RECIPES["SSAST"])
    'ssast_small.yaml'
    """
    if recipe is not None and recipe.get("yaml_names") == "keep":
        return name
    stem = name[: -len(".yaml")]
    if stem == "ast":
        return f"{NAME}.yaml"
    if stem.startswith("ast_"):
        return f"{NAME}_{stem[4:]}.yaml"
    return f"{NAME}_{stem}.yaml"


def rename_package(text):
    """Our package name -> the integration's, in any copied text.

    Example
    -------
    >>> rename_package("from speechbrain_ast.model.lobe import AST")
    'from speechbrain.integrations.audio_spectrogram_transformer.model.lobe import AST'
    """
    return re.sub(r"\bspeechbrain_ast\b", PACKAGE, text)


def rename_authors(text, author):
    """Our authors line -> upstream's ``Name Year``.

    Example
    -------
    >>> rename_authors("Authors\\n * speechbrain-ast developers\\n", "Jo Doe")[
    ...     :19
    ... ]
    'Authors\\n * Jo Doe 2'
    """
    year = datetime.date.today().year
    return OUR_AUTHOR_LINE.sub(
        lambda m: f"{m.group('lead')}* {author} {year}", text
    )


def rename_text(text, recipe):
    """Our module, file and yaml names -> upstream's, in a recipe's files.

    Example
    -------
    >>> rename_text("python train.py hparams/ast.yaml", RECIPES["ESC50"])
    'python train_spectrogram_transformer.py hparams/spectrogram_transformer.yaml'
    """
    text = rename_package(text)
    for ours, theirs in recipe["files"].items():
        module, new_module = ours[:-3], theirs[:-3]
        text = re.sub(rf"\b{module}\.py\b", theirs, text)
        text = re.sub(
            rf"\bfrom {module} import\b", f"from {new_module} import", text
        )
    text = re.sub(
        r"\b((?:ss)?ast\w*\.yaml)\b",
        lambda m: upstream_yaml_name(m.group(1), recipe),
        text,
    )
    for other in RECIPES.values():  # our folders -> upstream's
        text = text.replace(other["ours"] + "/", other["upstream"] + "/")
    return text


# -- the model definition, written into each yaml -------------------------


def _top_level_blocks(text):
    """(key, block text) of each top-level entry, comments dropped."""
    blocks, key, lines = [], None, []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.match(r"^([A-Za-z_]\w*)\s*:", line)
        if match:
            if key is not None:
                blocks.append((key, "\n".join(lines)))
            key, lines = match.group(1), [line]
        elif key is not None:
            lines.append(line)
    if key is not None:
        blocks.append((key, "\n".join(lines)))
    return blocks


def inline_model(text, recipe_dir):
    """Replaces ``model: !include:...`` and the ``!ref <model[...]>`` keys
    by the included definitions with the recipe's values.

    Arguments
    ---------
    text : str
        A recipe yaml.
    recipe_dir : str
        Its recipe folder (the include path is relative to the yaml's
        folder, ``<recipe>/hparams``).

    Returns
    -------
    str
    """
    match = re.search(
        r"^model: !include:(\S+)\n((?:[ \t]+\S.*\n)*)", text, flags=re.M
    )
    if match is None:
        return text
    include = os.path.normpath(
        os.path.join(recipe_dir, "hparams", match.group(1))
    )
    overrides = dict(
        re.findall(r"^\s+(\w+):\s*(.*\S)\s*$", match.group(2), flags=re.M)
    )
    with open(include, encoding="utf-8") as f:
        blocks = _top_level_blocks(f.read())
    defaults = {k: b.split(":", 1)[1].split("#")[0].strip() for k, b in blocks}

    def value(name):
        return overrides.get(name, defaults[name])

    objects = {}
    for key, block in blocks:
        if "!new:" in block:
            objects[key] = re.sub(
                r"!ref <(\w+)>", lambda m: value(m.group(1)), block
            )
    out = text[: match.start()] + text[match.end() :]
    for key, block in objects.items():
        ref = re.compile(rf"^{key}: !ref <model\[{key}\]>\n", flags=re.M)
        if not ref.search(out):
            raise ValueError(f"{key}: !ref <model[{key}]> not found")
        out = ref.sub(lambda m, b=block: b + "\n", out, count=1)
    return out


def yaml_header(key, recipe, author):
    """Upstream's yaml header: the model, the task, the authors."""
    year = datetime.date.today().year
    note = YAML_NOTES.get(key, "")
    title = "SSAST pretraining" if key.startswith("SSAST/") else "AST"
    model = f"Model: Audio Spectrogram Transformer ({title})"
    model += f": {note}" if note else ""
    lines = ["# " + "#" * 76]
    lines += ["# " + line for line in textwrap.wrap(model, 76)]
    lines += [
        f"# Task: {recipe['task']}, {recipe['dataset']}",
        "# Authors",
        f"#  * {author} {year}",
        "# " + "#" * 76,
    ]
    return "\n".join(lines) + "\n"


def upstream_yaml_body(text, recipe):
    """A recipe yaml's body as it goes upstream, with our names: our
    header dropped, the model inlined, the recipe's rewrite applied."""
    text = re.sub(r"\A(?:#.*\n|[ \t]*\n)*", "", text)  # our header
    text = inline_model(text, os.path.join(ROOT, recipe["ours"]))
    if recipe.get("yaml_rewrite") == "esc50":
        text = esc50_yaml(text)
    return text


def upstream_yaml(text, recipe, key, author):
    """A recipe yaml as it goes upstream (upstream's header, model inlined,
    names renamed).

    Arguments
    ---------
    text : str
    recipe : dict
        One of :data:`RECIPES`.
    key : str
        ``<recipe>/<our yaml name>``.
    author : str

    Returns
    -------
    str
    """
    text = rename_text(upstream_yaml_body(text, recipe), recipe)
    text = re.sub(
        r"^(output_folder: !ref results/\w[\w-]*/)ast(\w*)/",
        rf"\g<1>{NAME}\2/",
        text,
        flags=re.M,
    )
    text = yaml_header(key, recipe, author) + "\n" + text
    return re.sub(r"\n{3,}", "\n\n", text)


def _replace_once(text, pattern, new, what):
    """``text`` with the one match of ``pattern`` replaced by ``new``."""
    out, count = re.subn(pattern, new, text, flags=re.M)
    if count != 1:
        raise ValueError(
            f"{what}: {count} matches of {pattern!r} in an ESC-50 yaml, not "
            "1: update esc50_yaml in scripts/upstream.py"
        )
    return out


def esc50_yaml(text):
    """An ESC-50 yaml for the upstream train script
    (``scripts/upstream/esc50_train.py.in``): upstream's prepare script
    writes its manifests, SpeechBrain's ``Checkpointer`` saves the
    training (our crash-safe one, with the random state, stays here), and
    the class names are ESC-50's own (no ``allow_unseen_classes``).

    Example
    -------
    >>> text = "test_fold_nums: [5]\\n# allow\\nallow_unseen_classes: False\\n"
    >>> print(esc50_yaml(text + _ESC50_CHECKPOINTER).splitlines()[1])
    audio_data_folder: !ref <data_folder>/audio
    """
    rewrites = (
        (
            r"^(test_fold_nums: .*\n)",
            r"\1" + _ESC50_MANIFESTS,
            "the manifests",
        ),
        (r"(?:^#.*\n)*^allow_unseen_classes: .*\n", "", "class names"),
        (
            r"(?:^#.*\n)*^random_state: .*\n(?:\n)?",
            "",
            "the random state",
        ),
        (r"^[ \t]+random_state: !ref <random_state>\n", "", "its recovery"),
        (
            r"speechbrain_ast\.training\.checkpoint\.SafeCheckpointer$",
            "speechbrain.utils.checkpoints.Checkpointer",
            "the checkpointer",
        ),
    )
    for pattern, new, what in rewrites:
        text = _replace_once(text, pattern, new, what)
    return text


_ESC50_MANIFESTS = """\
audio_data_folder: !ref <data_folder>/audio
# the manifests esc50_prepare.py writes
train_annotation: !ref <save_folder>/train.json
valid_annotation: !ref <save_folder>/valid.json
test_annotation: !ref <save_folder>/test.json
"""
# for esc50_yaml's example: the block it rewrites
_ESC50_CHECKPOINTER = """\
random_state: !new:speechbrain_ast.training.random_state.RandomState

checkpointer: !new:speechbrain_ast.training.checkpoint.SafeCheckpointer
    recoverables:
        random_state: !ref <random_state>
"""


# -- which part holds what ------------------------------------------------


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def matches(path, pattern):
    """fnmatch where ``*`` stays within one folder.

    Example
    -------
    >>> (
    ...     matches("data/audio.py", "data/*.py"),
    ...     matches("data/shards/read.py", "data/*.py"),
    ... )
    (True, False)
    """
    regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
    return re.match(regex, path) is not None


def _excluded(rel):
    return any(matches(rel, pat) for pat in EXCLUDED)


def library_sources():
    """``{path under speechbrain_ast/: text}`` of every Python file."""
    out = {}
    for folder, dirs, names in os.walk(SRC):
        dirs[:] = sorted(d for d in dirs if not d.startswith("__"))
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, SRC).replace(os.sep, "/")
                out[rel] = _read(path)
    return out


def library_data_files():
    """Paths under speechbrain_ast/ of the package's data files."""
    out = []
    for folder, dirs, names in os.walk(SRC):
        dirs[:] = sorted(d for d in dirs if not d.startswith("__"))
        for name in sorted(names):
            if not name.endswith((".py", ".pyc")):
                path = os.path.join(folder, name)
                out.append(os.path.relpath(path, SRC).replace(os.sep, "/"))
    return out


def _resolve(dotted, sources):
    """``speechbrain_ast.a.b[.Name]`` -> the module file that defines it
    (``a/b.py``; through a package's re-exports), or None."""
    parts = dotted.split(".")[1:]
    for cut in range(len(parts), -1, -1):
        base = "/".join(parts[:cut])
        rest = parts[cut:]
        for rel in (f"{base}.py", f"{base}/__init__.py".lstrip("/")):
            if rel in sources and rel != ".py":
                if rel.endswith("__init__.py") and rest:
                    return _from_init(rel, rest[0], sources)
                return rel
    return None


def _from_init(init, name, sources):
    """The module that package ``init`` takes ``name`` from (a submodule
    of that name, or the module of its re-export)."""
    package = init[: -len("__init__.py")]
    for rel in (f"{package}{name}.py", f"{package}{name}/__init__.py"):
        if rel in sources:
            return rel
    for node in ast.walk(ast.parse(sources[init])):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if any((a.asname or a.name) == name for a in node.names):
                return _resolve(f"{node.module}.{name}", sources)
    return init


def _doctest_code(tree):
    """The code of the docstring examples in a parsed module."""
    parser = doctest.DocTestParser()
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    code = []
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            doc = ast.get_docstring(node, clean=True) or ""
            code += [ex.source for ex in parser.get_examples(doc)]
    return "".join(code)


def _imports(text, examples=True):
    """The ``speechbrain_ast`` names a Python text imports, with those of
    its docstring examples (upstream runs the library's doctests)."""
    out = []
    tree = ast.parse(text)
    try:
        examples = ast.parse(_doctest_code(tree) if examples else "")
    except SyntaxError:
        examples = ast.parse("")
    for node in [*ast.walk(tree), *ast.walk(examples)]:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 0:
                out += [f"{node.module}.{a.name}" for a in node.names]
    return [n for n in out if n.split(".")[0] == "speechbrain_ast"]


def dependencies(text, sources, yaml=False, examples=True):
    """The library files a Python (or yaml) text needs.

    Example
    -------
    >>> deps = dependencies(
    ...     "from speechbrain_ast.model.lobe import AST", library_sources()
    ... )
    >>> "model/lobe.py" in deps
    True
    """
    if yaml:
        names = re.findall(r"\bspeechbrain_ast(?:\.\w+)+", text)
    else:
        names = _imports(text, examples)
    found = {_resolve(name, sources) for name in names}
    return {rel for rel in found if rel is not None}


def _pattern_part(rel):
    """The part (1-based) whose patterns name ``rel`` (None: no part).
    An exact name wins over a pattern; otherwise the first part."""
    for index, part in enumerate(PARTS, 1):
        if rel in part["library"]:
            return index
    for index, part in enumerate(PARTS, 1):
        if any(matches(rel, pat) for pat in part["library"]):
            return index
    return None


def recipe_part_files(recipe_key, part):
    """Our files (names under the recipe folder, yamls as
    ``hparams/NAME``) of one recipe that ``part`` (1-based) adds."""
    recipe = RECIPES[recipe_key]
    folder = os.path.join(ROOT, recipe["ours"])
    names = [n for n in recipe["files"] if os.path.isfile(f"{folder}/{n}")]
    yamls = sorted(os.listdir(os.path.join(folder, "hparams")))
    candidates = names + [n for n in yamls if n.endswith(".yaml")]
    out = []
    for name in candidates:
        owner = None
        for index, spec in enumerate(PARTS, 1):
            pats = spec["recipes"].get(recipe_key, [])
            if any(matches(name, pat) for pat in pats):
                owner = index
                break
        if owner == part:
            out.append(name if name.endswith(".py") else f"hparams/{name}")
    return out


def assign_parts():
    """``{library path: part}`` of every file that goes upstream, and
    ``{path: (part, why)}`` of those pulled into an earlier part than
    :data:`PARTS` names because that part's code imports them.

    Raises ValueError when a module matches no part, when a part needs an
    excluded module, or a definition :data:`DEFERRED` to a later part.
    """
    sources = library_sources()
    files = [r for r in sources if not r.endswith("__init__.py")]
    files += library_data_files()
    part_of, unplaced = {}, []
    for rel in files:
        if _excluded(rel):
            continue
        part = _pattern_part(rel)
        if part is None:
            unplaced.append(rel)
        part_of[rel] = part
    if unplaced:
        raise ValueError(
            "speechbrain_ast files in no part of the upstream series: "
            + ", ".join(sorted(unplaced))
            + ": add them to PARTS or EXCLUDED in scripts/upstream.py"
        )
    pulled = {}
    for part in range(1, len(PARTS) + 1):
        # a file's own part, and the parts its deferred definitions join
        roots = [r for r, p in part_of.items() if p == part]
        roots += [
            r
            for r, names in DEFERRED.items()
            if r in part_of and part in names.values()
        ]
        queue = [
            (dep, f"speechbrain_ast/{r}")
            for r in roots
            for dep in _deps(r, sources, part)
        ]
        for key in PARTS[part - 1]["recipes"]:
            for name in recipe_part_files(key, part):
                text = recipe_text(key, name)
                if name.endswith(".yaml"):
                    text = upstream_yaml_body(text, RECIPES[key])
                why = f"{RECIPES[key]['ours']}/{name}"
                # upstream runs no doctests in recipes
                yaml = name.endswith(".yaml")
                _check_deferred(text, sources, part, why, yaml, False)
                deps = dependencies(text, sources, yaml, examples=False)
                queue += [(dep, why) for dep in deps]
        while queue:
            dep, why = queue.pop()
            if dep.endswith("__init__.py"):
                continue
            if _excluded(dep):
                raise ValueError(
                    f"part {part} needs speechbrain_ast/{dep} (imported by "
                    f"{why}), which never goes upstream (EXCLUDED)"
                )
            if part_of.get(dep) is not None and part_of[dep] <= part:
                continue
            part_of[dep] = part
            pulled[dep] = (part, why)
            queue += [
                (d, f"speechbrain_ast/{dep}") for d in _deps(dep, sources, part)
            ]
    return part_of, pulled


def _deps(rel, sources, part):
    """The library files that ``rel``'s text in ``part`` needs, less
    those it imports only inside functions (:data:`LAZY`)."""
    if not rel.endswith(".py"):
        return set()
    text = upstream_source(rel, sources[rel], part)
    _check_deferred(text, sources, part, f"speechbrain_ast/{rel}")
    return dependencies(text, sources) - set(LAZY.get(rel, ()))


def _check_deferred(text, sources, part, why, yaml=False, examples=True):
    """Raises ValueError when ``text``, in ``part``, imports a definition
    :data:`DEFERRED` to a later part (or never written)."""
    if yaml:
        names = re.findall(r"\bspeechbrain_ast(?:\.\w+)+", text)
    else:
        names = _imports(text, examples)
    for name in names:
        rel = _resolve(name, sources)
        later = DEFERRED.get(rel, {}).get(name.rsplit(".", 1)[-1], 0)
        if later is None or later > part:
            when = "never" if later is None else f"in part {later}"
            raise ValueError(
                f"part {part}: {why} imports {name}, which goes upstream "
                f"{when} (DEFERRED in scripts/upstream.py)"
            )


def recipe_text(key, name):
    """Our text of a recipe file (``name`` under its folder), or the
    upstream text :data:`RECIPES` gives for it."""
    recipe = RECIPES[key]
    theirs = recipe.get("upstream_text", {}).get(name)
    if theirs is not None:
        return _read(os.path.join(ROOT, theirs))
    return _read(os.path.join(ROOT, recipe["ours"], name))


def _definitions(tree):
    """``{name: node}`` of a module's top-level definitions and methods
    (``Class.method``)."""
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = (
                node.targets if isinstance(node, ast.Assign) else [node.target]
            )
            for target in targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = node
            if isinstance(node, ast.ClassDef):
                for sub in node.body:
                    if isinstance(sub, ast.FunctionDef):
                        out[f"{node.name}.{sub.name}"] = sub
    return out


def upstream_source(rel, text, part):
    """``text`` (of ``rel``, a library file or a test file of
    :data:`PARTS`) as parts 1..``part`` have it: without the definitions
    :data:`DEFERRED` to a later part, nor their entries in ``__all__``
    (their now unused imports go when the text is formatted).

    Example
    -------
    >>> text = '__all__ = ["a", "b"]\\n\\n\\ndef a():\\n    pass\\n\\n\\n'
    >>> text += "# b's comment\\ndef b():\\n    pass\\n"
    >>> DEFERRED["x.py"] = {"b": 2}
    >>> print(upstream_source("x.py", text, 1).strip())
    __all__ = ["a"]
    <BLANKLINE>
    <BLANKLINE>
    def a():
        pass
    >>> del DEFERRED["x.py"]
    """
    later = {
        name
        for name, p in DEFERRED.get(rel, {}).items()
        if p is None or p > part
    }
    if not later:
        return text
    tree = ast.parse(text)
    found = _definitions(tree)
    missing = sorted(later - set(found))
    if missing:
        raise ValueError(
            f"DEFERRED names {missing}, which speechbrain_ast/{rel} does not "
            "define: update DEFERRED in scripts/upstream.py"
        )
    lines = text.splitlines(keepends=True)
    drop = set()
    for name in later:
        node = found[name]
        decorators = getattr(node, "decorator_list", [])
        first = min([d.lineno for d in decorators] + [node.lineno])
        while first > 1 and lines[first - 2].lstrip().startswith("#"):
            first -= 1  # the comment lines just above it
        drop.update(range(first - 1, node.end_lineno))
    exports = found.get("__all__")
    if exports is not None:
        span = range(exports.lineno - 1, exports.end_lineno)
        names = [ast.literal_eval(e) for e in exports.value.elts]
        kept = [n for n in names if n not in later]
        if len(span) == 1:
            listed = ", ".join(f'"{n}"' for n in kept)
            lines[span[0]] = f"__all__ = [{listed}]\n"
        else:
            drop.update(
                i
                for i in span
                if lines[i].strip().strip(",") in (f'"{n}"' for n in later)
            )
    text = "".join(line for i, line in enumerate(lines) if i not in drop)
    return _without_unused_imports(text)


def _without_unused_imports(text):
    """``text`` without the top-level imports its code no longer uses; one
    that only its docstring examples use (doctests run in the module's
    namespace) is kept on its own line, marked for the linter."""
    tree = ast.parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    exports = _definitions(tree).get("__all__")
    if exports is not None:
        used |= {ast.literal_eval(e) for e in exports.value.elts}
    examples = {
        n.id
        for n in ast.walk(ast.parse(_doctest_code(tree)))
        if isinstance(n, ast.Name)
    }
    lines = text.splitlines(keepends=True)
    for node in reversed(tree.body):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        bound = [(a, (a.asname or a.name).split(".")[0]) for a in node.names]
        if all(name in used for _, name in bound):
            continue
        kept = [a for a, name in bound if name in used]
        for_examples = [a for a, name in bound if name not in used]
        for_examples = [
            a for a in for_examples if (a.asname or a.name) in examples
        ]
        new = []
        for aliases, note in ((kept, ""), (for_examples, "  # noqa: F401")):
            if aliases:
                stmt = type(node)(**{**node.__dict__, "names": aliases})
                new.append(ast.unparse(stmt) + note + "\n")
        lines[node.lineno - 1 : node.end_lineno] = new
    return "".join(lines)


def _read_include(text, recipe):
    """The text of the model definition a recipe yaml includes ("")."""
    match = re.search(r"^model: !include:(\S+)", text, flags=re.M)
    if match is None:
        return ""
    folder = os.path.join(ROOT, recipe["ours"], "hparams")
    return _read(os.path.normpath(os.path.join(folder, match.group(1))))


# -- what is written -------------------------------------------------------


def _format_python(sources, checkout):
    """Sorts imports and formats ``{relpath: text}`` with the checkout's
    ruff settings (its pyproject.toml), as its pre-commit hooks would."""
    ruff = shutil.which("ruff")
    if ruff is None:
        raise RuntimeError(
            "ruff is needed to format the contribution as upstream does: "
            "pip install -r lint-requirements.txt (in the upstream checkout)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(
            os.path.join(checkout, "pyproject.toml"),
            os.path.join(tmp, "pyproject.toml"),
        )
        for rel, text in sources.items():
            path = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        files = [os.path.join(tmp, rel) for rel in sources]
        for cmd in (
            [ruff, "check", "--fix-only", "--select", "I", "-q", *files],
            [ruff, "format", "-q", *files],
        ):
            subprocess.run(cmd, cwd=tmp, check=True)
        out = {}
        for rel in sources:
            with open(os.path.join(tmp, rel), encoding="utf-8") as f:
                out[rel] = f.read()
        return out


def _package_doc(packages):
    lines = [
        "The Audio Spectrogram Transformer (AST; Gong, Chung & Glass,",
        "Interspeech 2021) for audio classification: the AST lobe on timm's",
        "transformer blocks, its Kaldi fbank frontend, the import of",
        "published weights (ImageNet DeiT, the reference checkpoints,",
        "transformers' folders), and model folders that",
        "``EncoderClassifier`` loads.",
        "",
        "Sub-packages: " + ", ".join(f"``{p}``" for p in packages) + ".",
        "",
        "Adapted from the reference implementation,",
        "https://github.com/YuanGongND/ast (BSD-3-Clause).",
    ]
    return "\n".join(lines)


def init_files(written, upto=len(PARTS)):
    """``{upstream path: text}`` of the package ``__init__.py`` files for
    the library paths in ``written`` (paths under speechbrain_ast/): the
    top one with the import guard for timm, each with ``lazy_export_all``
    and the re-exports of ours whose module is written."""
    sources = library_sources()
    packages = {""}
    for rel in written:
        folder = os.path.dirname(rel)
        while folder:
            packages.add(folder)
            folder = os.path.dirname(folder)
    out = {}
    tail = (
        "from speechbrain.utils.importutils import lazy_export_all\n\n"
        "lazy_export_all(__file__, __name__, export_subpackages=True)\n"
    )
    for package in sorted(packages):
        upstream = os.path.join(PACKAGE_DIR, package, "__init__.py")
        if package == "":
            subs = sorted(p for p in packages if p and "/" not in p)
            subs = [p for p in subs if f"{p}/__init__.py" in sources]
            out[upstream] = (
                f'"""{_package_doc(subs)}\n"""\n\n'
                "try:\n"
                "    import timm  # noqa: F401\n"
                "except ImportError as e:\n"
                '    MSG = "Please install timm to use the Audio Spectrogram '
                'Transformer.\\n"\n'
                '    MSG += "pip install timm\\n"\n'
                '    MSG += "For more information, visit: '
                'https://github.com/huggingface/pytorch-image-models"\n'
                "    raise ImportError(MSG) from e\n\n" + tail
            )
            continue
        init = f"{package}/__init__.py"
        if init not in sources:
            continue
        tree = ast.parse(sources[init])
        doc = ast.get_docstring(tree, clean=False) or f"``{package}``."
        imports, names = [], []
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                keep = [
                    a.name
                    for a in node.names
                    if _available(
                        f"{node.module}.{a.name}", written, upto, sources
                    )
                ]
                if keep:
                    imports.append(
                        f"from {node.module} import {', '.join(keep)}\n"
                    )
                    names += keep
        body = "".join(imports) + tail.split("\n\n")[0] + "\n\n"
        if names:
            body += "__all__ = [" + ", ".join(f'"{n}"' for n in names)
            body += "]\n\n"
        body += tail.split("\n\n")[1]
        out[upstream] = rename_package(f'"""{doc}"""\n\n{body}')
    return out


def _available(name, written, upto, sources):
    """Whether the dotted ``speechbrain_ast`` name is in parts 1..upto:
    its module is ``written`` and its definition not :data:`DEFERRED`."""
    rel = _resolve(name, sources)
    later = DEFERRED.get(rel, {}).get(name.rsplit(".", 1)[-1], 0)
    return rel in written and later is not None and later <= upto


def library_files(part_of, upto, author):
    """``{upstream path: text or bytes}`` of the library in parts 1..upto."""
    written = {r for r, p in part_of.items() if p <= upto}
    out = {}
    sources = library_sources()
    for rel in sorted(written):
        upstream = os.path.join(PACKAGE_DIR, rel)
        if rel.endswith(".py"):
            text = upstream_source(rel, sources[rel], upto)
            out[upstream] = rename_authors(rename_package(text), author)
        else:
            with open(os.path.join(SRC, rel), "rb") as f:
                out[upstream] = f.read()
    out.update(init_files(written, upto))
    for index, part in enumerate(PARTS[:upto], 1):
        for test in part.get("tests", []):
            name = os.path.basename(test).replace(
                "test_upstream_integration",
                "test_audio_spectrogram_transformer",
            )
            text = upstream_source(test, _read(os.path.join(ROOT, test)), upto)
            out[f"{TESTS_DIR}/{name}"] = rename_authors(
                rename_package(text), author
            )
    return out


def recipe_files(key, upto, author):
    """``{upstream path: text}`` of one recipe's files in parts 1..upto."""
    recipe = RECIPES[key]
    out = {}
    for part in range(1, upto + 1):
        for name in recipe_part_files(key, part):
            text = recipe_text(key, name)
            if name.endswith(".yaml"):
                base = os.path.basename(name)
                theirs = f"hparams/{upstream_yaml_name(base, recipe)}"
                text = upstream_yaml(text, recipe, f"{key}/{base}", author)
            else:
                theirs = recipe["files"][name]
                text = rename_authors(rename_text(text, recipe), author)
            out[f"{recipe['upstream']}/{theirs}"] = text
    return out


def _row_test(key, hparams):
    """The tiny run of one row (flags) and what it must produce (checks).

    The ``performance_check`` thresholds are the losses of a model that
    has learnt something on the sample data (chance: ln 50 = 3.9 for
    ESC-50's cross-entropy, ln 2 = 0.69 per class for BCE).
    """
    name = os.path.basename(hparams)
    if key == "SSAST":
        flags = (
            "--data_folder=tests/samples/ASR --embed_dim=32 --depth=1 "
            "--num_heads=2 --target_length=64 --mask_patch=10 "
            "--batch_size=2 --num_workers=0 --number_of_epochs=1 "
            "--valid_fraction=0.2 --warmup_steps=1"
        )
        return flags, (
            "file_exists=[train_log.txt,log.txt,env.log,hyperparams.yaml,"
            "ssast_encoder.pt]"
        )
    common = "train_log.txt,log.txt,env.log,hyperparams.yaml,"
    if key != "ESC50":  # our evaluation log (training/recipe.py)
        common += "metrics.jsonl,test_predictions.pt,"
    common += "model/hyperparams.yaml,"
    common += "model/embedding_model.ckpt,model/classifier.ckpt"
    size = TINY
    if "ssast" in name:  # no encoder in the tiny run
        size += " --ssl_pretrain=False"
    if "128x2" in name:
        size = size.replace("--embed_dim=64", "--embed_dim=64 --fstride=128")
    if key == "ESC50":
        flags = (
            f"--data_folder=tests/samples/ESC50 {size} --target_length=128 "
            "--batch_size=4 --number_of_epochs=10 --lr=0.001 --warmup_steps=0 "
            "--lr_decay_start=100 --freqm=0 --timem=0 --mixup_prob=0"
        )
        check = (
            "performance_check=[train_log.txt, train loss, <=1.0, epoch: 10]"
        )
    elif key == "SpeechCommands":
        flags = (
            f"--data_folder={SAMPLES}/SpeechCommands {size} --batch_size=4 "
            "--number_of_epochs=16 --lr=0.001 --warmup_steps=0 --mixup_prob=0 --freqm=0 "
            "--timem=0 --noise_scale=0 --lr_decay_start=100 --n_classes=3"
        )
        check = (
            "performance_check=[train_log.txt, train loss, <=0.6, epoch: 16]"
        )
    else:
        flags = (
            f"--data_folder={SAMPLES}/AudioSet {size} --n_classes=4 "
            "--target_length=128 --batch_size=4 --lr=0.001 --warmup_steps=2 "
            "--wa_start=9 --wa_end=10 --number_of_epochs=10 --mixup_prob=0 "
            "--freqm=0 --timem=0 --lr_decay_start=100"
        )
        check = (
            "performance_check=[train_log.txt, train loss, <=0.6, epoch: 10]"
        )
    return flags, f"file_exists=[{common}] {check}"


def csv_rows(key, yamls):
    """One upstream csv row per hparams file of a recipe.

    Arguments
    ---------
    key : str
        A key of :data:`RECIPES`.
    yamls : list of str
        The upstream hparams paths of the recipe.

    Returns
    -------
    list of dict
    """
    recipe = RECIPES[key]
    up = recipe["upstream"]
    script = [
        t
        for o, t in recipe["files"].items()
        if o in ("train.py", "pretrain.py")
    ]
    prep = [t for o, t in recipe["files"].items() if "prepare" in o]
    prep = [recipe["data_prep"]] if "data_prep" in recipe else prep
    rows = []
    for hparams in yamls:
        flags, checks = _row_test(key, hparams)
        rows.append(
            {
                "Task": recipe["task"],
                "Dataset": recipe["dataset"],
                "Script_file": f"{up}/{script[0]}",
                "Hparam_file": hparams,
                "Data_prep_file": f"{up}/{prep[0]}" if prep else "",
                "Readme_file": f"{up}/README.md",
                "Result_url": "",
                "HF_repo": "",
                "test_debug_flags": flags,
                "test_debug_checks": checks,
                "performance": "",
            }
        )
    return rows


def _csv_text(header, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def is_our_row(row):
    """Whether a csv row is one this script writes."""
    hparams = row.get("Hparam_file") or ""
    return NAME in hparams or "/SSAST/" in hparams


def merge_csv(existing, rows):
    """Upstream's rows (ours removed) followed by ours, in its columns.

    Arguments
    ---------
    existing : str
        The csv file's text ("" when new).
    rows : list of dict

    Returns
    -------
    str
    """
    if existing.strip():
        reader = csv.DictReader(io.StringIO(existing))
        header = list(reader.fieldnames)
        kept = [r for r in reader if not is_our_row(r)]
    else:
        header, kept = list(CSV_COLUMNS), []
    rows = [{k: r.get(k, "") for k in header} for r in rows]
    return _csv_text(header, kept + rows)


def merge_lines(existing, lines):
    """``existing`` plus the ``lines`` it lacks (compared stripped and
    case-insensitively, as requirement names and codespell words are)."""
    have = {line.strip().lower() for line in existing.splitlines()}
    missing = [line for line in lines if line.strip().lower() not in have]
    if not missing:
        return existing
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + "\n".join(missing) + "\n"


def merge_requirements(existing, lines):
    """A requirements file with ``lines`` added, sorted as upstream's
    ``requirements-txt-fixer`` hook sorts it (case-insensitively)."""
    text = merge_lines(existing, lines)
    reqs = [line for line in text.splitlines() if line.strip()]
    head = [r for r in reqs if r.startswith("#")]
    body = sorted((r for r in reqs if not r.startswith("#")), key=str.lower)
    return "\n".join(head + body) + "\n"


def merge_mock_imports(conf, modules):
    """docs/conf.py with ``modules`` in ``autodoc_mock_imports``."""
    match = re.search(r"autodoc_mock_imports = \[\n(.*?)\]", conf, re.S)
    if match is None:
        return conf
    have = re.findall(r'"([^"]+)"', match.group(1))
    missing = [m for m in modules if m not in have]
    if not missing:
        return conf
    add = "".join(f'    "{m}",\n' for m in missing)
    return conf[: match.end(1)] + add + conf[match.end(1) :]


def sample_data(names):
    """Generates the small sample folders ``names`` (``SpeechCommands``,
    ``AudioSet``; deterministic) and returns ``{relpath: bytes}``."""
    from speechbrain_ast.testing.audioset import make_audioset
    from speechbrain_ast.testing.speech_commands import make_speech_commands

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "SpeechCommands" in names:
            make_speech_commands(
                os.path.join(tmp, "SpeechCommands"),
                words=("yes", "no", "up"),
                speakers_per_word=4,
                seed=0,
            )
        if "AudioSet" in names:
            make_audioset(os.path.join(tmp, "AudioSet"), n_classes=4, seed=0)
        for folder, _, files in sorted(os.walk(tmp)):
            for name in sorted(files):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, tmp)
                with open(path, "rb") as f:
                    out[f"{SAMPLES}/{rel}"] = f.read()
    return out


def contribution(checkout, upto=len(PARTS), author=DEFAULT_AUTHOR):
    """``{relpath: text or bytes}`` of parts 1..``upto`` for ``checkout``
    (whose own shared files, the csvs, READMEs and lists, are merged).

    Arguments
    ---------
    checkout : str
        The upstream SpeechBrain checkout.
    upto : int
        The last part (1-based).
    author : str
        The name on the Authors lines.

    Returns
    -------
    dict
    """
    part_of, _ = assign_parts()

    def theirs(rel):
        path = os.path.join(checkout, rel)
        return _read(path) if os.path.isfile(path) else ""

    python, other = {}, {}
    for rel, content in library_files(part_of, upto, author).items():
        (python if rel.endswith(".py") else other)[rel] = content
    yamls, requirements = {}, {}
    for key, recipe in RECIPES.items():
        files = recipe_files(key, upto, author)
        for rel, text in files.items():
            (python if rel.endswith(".py") else other)[rel] = text
        ours = sorted(p for p in files if p.endswith(".yaml"))
        if ours:
            yamls[key] = ours
            req = f"{recipe['upstream']}/extra_requirements.txt"
            requirements.setdefault(req, []).extend(recipe["requirements"])
    for rel in python:
        if not rel.startswith((PACKAGE_DIR, TESTS_DIR)) and NAME not in rel:
            if "/SSAST/" not in rel and os.path.exists(
                os.path.join(checkout, rel)
            ):
                raise FileExistsError(f"{rel} exists upstream; not overwritten")
    out = _format_python(python, checkout)
    out.update(other)
    csvs = {}
    for key, paths in yamls.items():
        rel = f"tests/recipes/{RECIPES[key]['dataset']}.csv"
        csvs.setdefault(rel, []).extend(csv_rows(key, paths))
    for rel, rows in csvs.items():
        out[rel] = merge_csv(theirs(rel), rows)
    for key, paths in yamls.items():
        rel = f"{RECIPES[key]['upstream']}/README.md"
        names = {
            upstream_yaml_name(n, RECIPES[key]): n
            for n in os.listdir(
                os.path.join(ROOT, RECIPES[key]["ours"], "hparams")
            )
        }
        out[rel] = recipe_readme(key, RECIPES[key], theirs(rel), paths, names)
    for rel, lines in requirements.items():
        out[rel] = merge_requirements(theirs(rel), lines)
    subpackages = {
        r.split("/")[0]
        for r, p in part_of.items()
        if p <= upto and r.endswith(".py") and "/" in r
    }
    recipes = {key for spec in PARTS[:upto] for key in spec["recipes"]}
    out[os.path.join(PACKAGE_DIR, "README.md")] = integration_readme(
        sorted(subpackages), upto, recipes
    )
    out[".dict-speechbrain.txt"] = merge_lines(
        theirs(".dict-speechbrain.txt"), CODESPELL_WORDS
    )
    if os.path.isfile(os.path.join(checkout, "docs", "conf.py")):
        out["docs/conf.py"] = merge_mock_imports(
            theirs("docs/conf.py"), ["timm"]
        )
    samples = [s for p in PARTS[:upto] for s in p.get("samples", [])]
    if samples:
        out.update(sample_data(samples))
    return out


class Writer:
    """Writes files under the checkout, printing what changed.

    Arguments
    ---------
    root : str
        The checkout.
    out : file
        Where the ``wrote`` / ``unchanged`` lines go.
    """

    def __init__(self, root, out=sys.stdout):
        self.root = root
        self.out = out
        self.written = []

    def write(self, relpath, content):
        """Writes ``content`` (str or bytes) to ``relpath`` unless it is
        already there."""
        path = os.path.join(self.root, relpath)
        data = content.encode("utf-8") if isinstance(content, str) else content
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if f.read() == data:
                    print(f"unchanged {relpath}", file=self.out)
                    return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.written.append(relpath)
        print(f"wrote {relpath}", file=self.out)


def part_new_paths(part):
    """The upstream paths of the library modules and recipe files that
    ``part`` adds (cheap: nothing is formatted or generated)."""
    part_of, _ = assign_parts()
    paths = [
        os.path.join(PACKAGE_DIR, rel)
        for rel, p in part_of.items()
        if p == part and rel.endswith(".py")
    ]
    for key, recipe in RECIPES.items():
        for name in recipe_part_files(key, part):
            if name.endswith(".yaml"):
                base = os.path.basename(name)
                theirs = f"hparams/{upstream_yaml_name(base, recipe)}"
            else:
                theirs = recipe["files"][name]
            paths.append(f"{recipe['upstream']}/{theirs}")
    return sorted(paths)


def check_earlier_parts(checkout, part):
    """Raises :class:`PartOrderError` unless parts 1..part-1 are in the
    checkout (each part's new modules and recipe files present)."""
    for earlier in range(1, part):
        for path in part_new_paths(earlier):
            if not os.path.isfile(os.path.join(checkout, path)):
                before = f"parts 1-{part - 1}" if part > 2 else "part 1"
                raise PartOrderError(
                    f"part {part} goes on top of {before}: part {earlier} "
                    f"is not in {checkout} ({path} is missing); write it "
                    f"first with --part {earlier}"
                )


def write_contribution(
    checkout, out=sys.stdout, part=None, author=DEFAULT_AUTHOR
):
    """Writes every part (``part=None``) or one part into ``checkout``;
    returns the paths written.

    Arguments
    ---------
    checkout : str
        The upstream SpeechBrain checkout.
    out : file
        Where the per-file lines are printed.
    part : int, optional
        Only this part (1-based), on top of the earlier ones.
    author : str
        The name on the Authors lines.

    Returns
    -------
    list of str
        The files written (changed or new), relative to ``checkout``.
    """
    check_checkout(checkout)
    if part is not None:
        if not 1 <= part <= len(PARTS):
            raise PartOrderError(f"--part is 1 to {len(PARTS)}, not {part}")
        check_earlier_parts(checkout, part)
    files = contribution(checkout, part or len(PARTS), author)
    writer = Writer(checkout, out)
    for rel in sorted(files):
        writer.write(rel, files[rel])
    return writer.written


def describe_parts(checkout):
    """One line per part: its title, files and added lines, and the
    modules an earlier part needs (pulled forward)."""
    part_of, pulled = assign_parts()
    lines = []
    for part in range(1, len(PARTS) + 1):
        before = contribution(checkout, part - 1) if part > 1 else {}
        now = contribution(checkout, part)
        changed = [p for p, c in now.items() if before.get(p) != c]
        added = sum(
            added_lines(before.get(rel, theirs_text(checkout, rel)), now[rel])
            for rel in changed
        )
        lines.append(
            f"part {part}: {PARTS[part - 1]['title']}: {len(changed)} files, "
            f"{added} added lines"
        )
        for rel, (p, why) in sorted(pulled.items()):
            if p == part:
                lines.append(f"    speechbrain_ast/{rel}: needed by {why}")
        new = {p: now[p] for p in changed}
        for path, module in dangling_references(new, part_of, part):
            lines.append(f"    {path} names {module}, not written")
    return lines


def dangling_references(files, part_of, upto):
    """``(path, module)`` for each mention, in ``files`` (the written text
    of parts 1..upto), of an integration module that is not written
    (excluded, or in a later part): text to change in this project."""
    sources = library_sources()
    out = set()
    pattern = re.escape(PACKAGE) + r"((?:\.\w+)+)"
    for path, text in files.items():
        if isinstance(text, bytes):
            continue
        for match in re.finditer(pattern, text):
            rel = _resolve("speechbrain_ast" + match.group(1), sources)
            if rel is None or rel.endswith("__init__.py"):
                continue
            if part_of.get(rel) is None or part_of[rel] > upto:
                out.add((path, f"speechbrain_ast/{rel}"))
    return sorted(out)


def added_lines(old, new):
    """Lines a diff from ``old`` to ``new`` adds (0 for binary files).

    Example
    -------
    >>> added_lines("a\\nb\\n", "a\\nc\\nb\\nd\\n")
    2
    """
    if isinstance(new, bytes) or isinstance(old, bytes):
        return 0
    diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="")
    return sum(
        1
        for line in diff
        if line.startswith("+") and not line.startswith("+++")
    )


def theirs_text(checkout, rel):
    """The checkout's text of ``rel`` ("" when absent or binary)."""
    path = os.path.join(checkout, rel)
    try:
        return _read(path) if os.path.isfile(path) else ""
    except UnicodeDecodeError:
        return ""


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Write the Audio Spectrogram Transformer contribution "
        "into an upstream SpeechBrain checkout (idempotent), whole or one "
        "part of the series at a time."
    )
    parser.add_argument("checkout", help="root of the upstream checkout")
    parser.add_argument(
        "--part",
        type=int,
        help=f"write part N (1-{len(PARTS)}) on top of parts 1..N-1",
    )
    parser.add_argument(
        "--author",
        default=DEFAULT_AUTHOR,
        help="the name on the files' Authors lines (upstream lists people)",
    )
    parser.add_argument(
        "--list-parts",
        action="store_true",
        help="print each part's title, files and added lines",
    )
    args = parser.parse_args(argv)
    try:
        check_checkout(args.checkout)
        if args.list_parts:
            print("\n".join(describe_parts(args.checkout)))
            return 0
        written = write_contribution(
            args.checkout, part=args.part, author=args.author
        )
    except (
        NotAnUpstreamCheckout,
        PartOrderError,
        FileExistsError,
        RuntimeError,
        ValueError,
    ) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(written)} files written into {args.checkout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
