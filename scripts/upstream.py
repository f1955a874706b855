#!/usr/bin/env python3
"""Writes the Audio Spectrogram Transformer contribution into an upstream
SpeechBrain checkout.

::

    python scripts/upstream.py UPSTREAM_CHECKOUT

What it writes (and prints, one line per file: ``wrote`` or ``unchanged``):

* the library as ``speechbrain/integrations/audio_spectrogram_transformer/``
  (timm is not an upstream dependency, so it goes where upstream keeps
  third-party integrations), with its ``extra_requirements.txt``, a README,
  and its tests in ``speechbrain/integrations/tests/``;
* the recipes at upstream's paths, next to upstream's own files, which are
  never overwritten: ``recipes/ESC50/classification/``,
  ``recipes/Google-speech-commands/`` and a new
  ``recipes/AudioSet/classification/``. File names say
  ``spectrogram_transformer``: "AST" already names speech translation
  upstream (``recipes/CoVoST/AST``). The shared model definition
  (``hparams/ast_base_model.yaml``, included by our yamls) is written into
  each yaml, as upstream's yamls define their models;
* one ``tests/recipes/<Dataset>.csv`` row per hparams file, in upstream's
  format, each with a ``performance_check`` its tiny run must pass;
* the sample data those rows train on: upstream's real ESC-50 clips in
  ``tests/samples/ESC50`` are used as they are; small generated Speech
  Commands and AudioSet folders go to
  ``tests/samples/spectrogram_transformer/``;
* a section in each recipe README (between marker comments, replaced on a
  rerun), lines added to ``extra_requirements.txt`` files, and the words
  codespell needs added to ``.dict-speechbrain.txt``.

It is idempotent: a second run writes nothing new. The written Python is
sorted and formatted with the checkout's own ruff settings (ruff must be
installed: upstream's ``lint-requirements.txt``). A folder that is not an
upstream SpeechBrain checkout is refused.

Authors
 * speechbrain-ast developers 2026
"""

import argparse
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PACKAGE = "speechbrain.integrations.audio_spectrogram_transformer"
PACKAGE_DIR = os.path.join(*PACKAGE.split("."))
NAME = "spectrogram_transformer"
MARK_BEGIN = (
    "<!-- audio spectrogram transformer: begin (scripts/upstream.py) -->"
)
MARK_END = "<!-- audio spectrogram transformer: end -->"
# the package docstring is written for upstream below; ``testing`` (our test
# data generators) stays here: upstream's tests bring their own samples
LIBRARY_SKIP = {"__init__.py", "testing"}
# the integration's own dependencies, beyond upstream's
INTEGRATION_REQUIREMENTS = ["timm>=0.9", "safetensors>=0.4"]
CODESPELL_WORDS = ["fpr", "passt"]
CSV_COLUMNS = [
    "Task", "Dataset", "Script_file", "Hparam_file", "Data_prep_file",
    "Readme_file", "Result_url", "HF_repo", "test_debug_flags",
    "test_debug_checks", "performance",
]  # fmt: skip

# Our recipe folder -> upstream's, the csv (dataset) name, the task, and
# the file names there (ours -> upstream's; yamls are renamed by rule).
RECIPES = [
    {
        "ours": "recipes/ESC50",
        "upstream": "recipes/ESC50/classification",
        "dataset": "ESC50",
        "task": "SoundClassification",
        "files": {
            "train.py": f"train_{NAME}.py",
            "esc50_prepare.py": f"esc50_prepare_{NAME}.py",
            "cross_validate.py": f"cross_validate_{NAME}.py",
        },
        "requirements": ["timm"],
    },
    {
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
    {
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
]

SAMPLES = "tests/samples/spectrogram_transformer"
TINY = (
    "--embed_dim=64 --depth=2 --num_heads=2 --imagenet_pretrain=False "
    "--audioset_pretrain=False --num_workers=0"
)


class NotAnUpstreamCheckout(ValueError):
    """The target folder is not an upstream SpeechBrain checkout."""


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


def upstream_yaml_name(name):
    """``ast.yaml`` -> ``spectrogram_transformer.yaml``,
    ``ast_scratch.yaml`` -> ``spectrogram_transformer_scratch.yaml``.

    Example
    -------
    >>> upstream_yaml_name("ast_patch128x2.yaml")
    'spectrogram_transformer_patch128x2.yaml'
    """
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


def rename_text(text, recipe):
    """Our module and file names -> upstream's, in a recipe's files.

    Example
    -------
    >>> rename_text("python train.py hparams/ast.yaml", RECIPES[0])
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
        r"hparams/(ast\w*\.yaml)",
        lambda m: "hparams/" + upstream_yaml_name(m.group(1)),
        text,
    )
    text = text.replace(recipe["ours"] + "/", recipe["upstream"] + "/")
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


def upstream_yaml(text, recipe):
    """A recipe yaml as it goes upstream (model inlined, names renamed).

    Arguments
    ---------
    text : str
    recipe : dict
        One of :data:`RECIPES`.

    Returns
    -------
    str
    """
    text = inline_model(text, os.path.join(ROOT, recipe["ours"]))
    text = rename_text(text, recipe)
    text = re.sub(
        r"^(output_folder: !ref results/\w[\w-]*/)ast(\w*)/",
        rf"\g<1>{NAME}\2/",
        text,
        flags=re.M,
    )
    return re.sub(r"\n{3,}", "\n\n", text)


# -- writing ----------------------------------------------------------------


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

    def write(self, relpath, content, binary=False):
        """Writes ``content`` to ``relpath`` unless it is already there."""
        path = os.path.join(self.root, relpath)
        mode = "rb" if binary else "r"
        if os.path.isfile(path):
            kwargs = {} if binary else {"encoding": "utf-8"}
            with open(path, mode, **kwargs) as f:
                if f.read() == content:
                    print(f"unchanged {relpath}", file=self.out)
                    return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if binary:
            with open(path, "wb") as f:
                f.write(content)
        else:
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(content)
        self.written.append(relpath)
        print(f"wrote {relpath}", file=self.out)

    def read(self, relpath):
        """The checkout's file (empty when absent)."""
        path = os.path.join(self.root, relpath)
        if not os.path.isfile(path):
            return ""
        with open(path, encoding="utf-8") as f:
            return f.read()


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


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def library_files():
    """``{upstream relpath: text}`` of the integration package."""
    src = os.path.join(ROOT, "speechbrain_ast")
    files = {}
    for folder, dirs, names in os.walk(src):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith("__") and d not in LIBRARY_SKIP
        )
        rel_folder = os.path.relpath(folder, src)
        for name in sorted(names):
            rel = os.path.normpath(os.path.join(rel_folder, name))
            if name.endswith(".py") and rel not in LIBRARY_SKIP:
                text = rename_package(_read(os.path.join(folder, name)))
                files[os.path.join(PACKAGE_DIR, rel)] = text
    files[os.path.join(PACKAGE_DIR, "__init__.py")] = (
        '"""The Audio Spectrogram Transformer (Gong, Chung & Glass, '
        "Interspeech 2021)\nfor sound classification: a Kaldi-exact batched "
        "frontend, the AST lobe on\ntimm's transformer blocks, DeiT and "
        "AudioSet initialisation, SSAST\nself-supervised pretraining, model "
        "folders for ``EncoderClassifier``.\n\nInstall its requirements "
        "with ``pip install -r extra_requirements.txt``\n(in this "
        'folder).\n"""\n'
    )
    tests = os.path.join(ROOT, "tests", "test_upstream_integration.py")
    files[
        "speechbrain/integrations/tests/test_audio_spectrogram_transformer.py"
    ] = rename_package(_read(tests))
    return files


def library_data():
    """``{upstream relpath: bytes}`` of the package's data files."""
    out = {}
    src = os.path.join(ROOT, "speechbrain_ast")
    for folder, dirs, names in os.walk(src):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith("__") and d not in LIBRARY_SKIP
        )
        for name in sorted(names):
            if name.endswith((".py", ".pyc")):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, src)
            with open(path, "rb") as f:
                out[os.path.join(PACKAGE_DIR, rel)] = f.read()
    return out


def recipe_files(recipe):
    """``{upstream relpath: text}`` of one recipe's scripts and yamls."""
    ours = os.path.join(ROOT, recipe["ours"])
    files = {}
    for name, theirs in recipe["files"].items():
        path = os.path.join(ours, name)
        if os.path.isfile(path):
            files[f"{recipe['upstream']}/{theirs}"] = rename_text(
                _read(path), recipe
            )
    hparams = os.path.join(ours, "hparams")
    for name in sorted(os.listdir(hparams)):
        if name.endswith(".yaml"):
            text = upstream_yaml(_read(os.path.join(hparams, name)), recipe)
            files[
                f"{recipe['upstream']}/hparams/{upstream_yaml_name(name)}"
            ] = text
    return files


def csv_rows(recipe, yamls):
    """One upstream csv row per hparams file of a recipe.

    Arguments
    ---------
    recipe : dict
    yamls : list of str
        The upstream hparams paths of the recipe.

    Returns
    -------
    list of dict
    """
    up = recipe["upstream"]
    script = f"{up}/{recipe['files']['train.py']}"
    prep = [p for p in recipe["files"] if "prepare" in p][0]
    readme = f"{up}/README.md"
    rows = []
    for hparams in yamls:
        flags, checks = _row_test(recipe, hparams)
        rows.append(
            {
                "Task": recipe["task"],
                "Dataset": recipe["dataset"],
                "Script_file": script,
                "Hparam_file": hparams,
                "Data_prep_file": f"{up}/{recipe['files'][prep]}",
                "Readme_file": readme,
                "Result_url": "",
                "HF_repo": "",
                "test_debug_flags": flags,
                "test_debug_checks": checks,
                "performance": "",
            }
        )
    return rows


def _row_test(recipe, hparams):
    """The tiny run of one row (flags) and what it must produce (checks).

    The ``performance_check`` thresholds are the losses of a model that
    has learnt something on the sample data (chance: ln 50 = 3.9 for
    ESC-50's cross-entropy, ln 2 = 0.69 per class for BCE).
    """
    name = os.path.basename(hparams)
    common = "train_log.txt,log.txt,env.log,hyperparams.yaml,metrics.jsonl,"
    common += "test_predictions.pt,model/hyperparams.yaml,"
    common += "model/embedding_model.ckpt,model/classifier.ckpt"
    size = TINY
    if "ssast" in name:  # no encoder in the tiny run
        size += " --ssl_pretrain=False"
    if "128x2" in name:
        size = size.replace("--embed_dim=64", "--embed_dim=64 --fstride=128")
    if recipe["dataset"] == "ESC50":
        flags = (
            f"--data_folder=tests/samples/ESC50 {size} --target_length=128 "
            "--batch_size=4 --number_of_epochs=10 --lr=0.001 --warmup_steps=0 "
            "--lr_decay_start=100 --freqm=0 --timem=0 --mixup_prob=0"
        )
        check = (
            "performance_check=[train_log.txt, train loss, <=1.0, epoch: 10]"
        )
    elif recipe["dataset"] == "Google-speech-commands":
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


def _csv_text(header, rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def merge_csv(existing, rows, ours):
    """Upstream's rows (ours removed) followed by ours, in its columns.

    Arguments
    ---------
    existing : str
        The csv file's text ("" when new).
    rows : list of dict
    ours : callable
        Whether a row (dict) is one of ours.

    Returns
    -------
    str
    """
    if existing.strip():
        reader = csv.DictReader(io.StringIO(existing))
        header = list(reader.fieldnames)
        kept = [r for r in reader if not ours(r)]
    else:
        header, kept = list(CSV_COLUMNS), []
    for row in rows:
        for key in header:
            row.setdefault(key, "")
    rows = [{k: r.get(k, "") for k in header} for r in rows]
    return _csv_text(header, kept + rows)


def readme_section(recipe, yamls):
    """The recipe README's section, in upstream's results-table layout."""
    readme = _read(os.path.join(ROOT, recipe["ours"], "README.md"))
    results = _results_text(readme)
    script = recipe["files"]["train.py"]
    first = os.path.basename(yamls[0])
    lines = [
        MARK_BEGIN,
        "",
        "# Audio Spectrogram Transformer (AST)",
        "",
        "The Audio Spectrogram Transformer (Gong, Chung & Glass, Interspeech "
        "2021) from `speechbrain.integrations.audio_spectrogram_transformer` "
        "(install its requirements: `pip install -r extra_requirements.txt`"
        ", which includes timm).",
        "",
        "```bash",
        f"python {script} hparams/{first} --data_folder /path/to/data",
        "```",
        "",
        "| Hyperparams file | Result | Training time | HuggingFace link "
        "| Model link | GPUs |",
        "|:---:|:---:|:---:|:---:|:---:|:---:|",
    ]
    for path in yamls:
        lines.append(
            f"| {os.path.basename(path)} | see below | - | - | - | - |"
        )
    lines += ["", results.strip(), "", MARK_END, ""]
    return rename_text("\n".join(lines), recipe)


def _results_text(readme):
    """The ``## Results`` section of our README (or its first paragraph)."""
    match = re.search(r"^## Results.*?(?=^## |\Z)", readme, flags=re.S | re.M)
    if match:
        return match.group(0).replace("## Results", "## Results (AST)", 1)
    return ""


def merge_section(existing, section):
    """``existing`` with our marked section replaced (or appended)."""
    pattern = re.compile(
        re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END) + r"\n?", re.S
    )
    if pattern.search(existing):
        return pattern.sub(lambda m: section, existing, count=1)
    sep = "" if not existing or existing.endswith("\n\n") else "\n"
    return existing + sep + section


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


def sample_data(root):
    """Generates the small Speech Commands and AudioSet sample folders
    (deterministic) and returns ``{relpath: bytes}``."""
    from speechbrain_ast.testing.audioset import make_audioset
    from speechbrain_ast.testing.speech_commands import make_speech_commands

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_speech_commands(
            os.path.join(tmp, "SpeechCommands"),
            words=("yes", "no", "up"),
            speakers_per_word=4,
            seed=0,
        )
        make_audioset(os.path.join(tmp, "AudioSet"), n_classes=4, seed=0)
        for folder, _, files in sorted(os.walk(tmp)):
            for name in sorted(files):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, tmp)
                with open(path, "rb") as f:
                    out[f"{SAMPLES}/{rel}"] = f.read()
    return out


def write_contribution(checkout, out=sys.stdout):
    """Writes everything into ``checkout``; returns the paths written.

    Arguments
    ---------
    checkout : str
        The upstream SpeechBrain checkout.
    out : file
        Where the per-file lines are printed.

    Returns
    -------
    list of str
        The files written (changed or new), relative to ``checkout``.
    """
    check_checkout(checkout)
    writer = Writer(checkout, out)
    python, yaml_files = {}, {}
    python.update(library_files())
    rows = {}
    for recipe in RECIPES:
        files = recipe_files(recipe)
        yamls = sorted(p for p in files if p.endswith(".yaml"))
        for rel, text in files.items():
            (yaml_files if rel.endswith(".yaml") else python)[rel] = text
        rows[recipe["dataset"]] = (recipe, yamls)
    for rel in python:
        if os.path.exists(os.path.join(checkout, rel)) and not rel.startswith(
            PACKAGE_DIR
        ):
            theirs = writer.read(rel)
            if (
                MARK_BEGIN not in theirs
                and "spectrogram_transformer" not in rel
            ):
                raise FileExistsError(f"{rel} exists upstream; not overwritten")
    for rel, text in _format_python(python, checkout).items():
        writer.write(rel, text)
    for rel, text in yaml_files.items():
        writer.write(rel, text)
    for rel, data in library_data().items():
        writer.write(rel, data, binary=True)
    writer.write(
        os.path.join(PACKAGE_DIR, "extra_requirements.txt"),
        "\n".join(INTEGRATION_REQUIREMENTS) + "\n",
    )
    for dataset, (recipe, yamls) in rows.items():
        rel = f"tests/recipes/{dataset}.csv"
        ours = set(yamls)
        writer.write(
            rel,
            merge_csv(
                writer.read(rel),
                csv_rows(recipe, yamls),
                lambda row, ours=ours: row["Hparam_file"].strip() in ours
                or NAME in row["Hparam_file"],
            ),
        )
        readme = f"{recipe['upstream']}/README.md"
        writer.write(
            readme,
            merge_section(writer.read(readme), readme_section(recipe, yamls)),
        )
        req = f"{recipe['upstream']}/extra_requirements.txt"
        writer.write(req, merge_lines(writer.read(req), recipe["requirements"]))
    writer.write(
        ".dict-speechbrain.txt",
        merge_lines(writer.read(".dict-speechbrain.txt"), CODESPELL_WORDS),
    )
    for rel, data in sample_data(checkout).items():
        writer.write(rel, data, binary=True)
    return writer.written


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Write the Audio Spectrogram Transformer contribution "
        "into an upstream SpeechBrain checkout (idempotent)."
    )
    parser.add_argument("checkout", help="root of the upstream checkout")
    args = parser.parse_args(argv)
    try:
        written = write_contribution(args.checkout)
    except (NotAnUpstreamCheckout, FileExistsError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{len(written)} files written into {args.checkout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
