#!/usr/bin/env python3
"""The README texts of the upstream contribution (``scripts/upstream.py``),
in upstream SpeechBrain's layout: an entry under a recipe README's
"Supported Models", rows in its Results table and the papers' bibtex
under "Citing"; new READMEs for the AudioSet recipes; the integration's
README with its install line and coverage record.

::

    python scripts/upstream_readme.py UPSTREAM_CHECKOUT ESC50

prints what the ESC-50 README becomes with every hparams file of the
series (the keys are those of ``RECIPES`` in ``scripts/upstream.py``).

Authors
 * speechbrain-ast developers
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "speechbrain.integrations.audio_spectrogram_transformer"
PACKAGE_DIR = PACKAGE.replace(".", "/")
ENTRY = "Audio Spectrogram Transformer (AST)"
SSAST_ENTRY = "SSAST: self-supervised pretraining of the AST encoder"
# the coverage records of the integration's tests, one per part
COVERAGE_RECORDS = os.path.join(HERE, "upstream_coverage")

REFERENCE_CODE = (
    "[YuanGongND/ast](https://github.com/YuanGongND/ast) "
    "(BSD-3-Clause, Copyright (c) 2021 Yuan Gong)"
)
SSAST_CODE = (
    "[YuanGongND/ssast](https://github.com/YuanGongND/ssast) "
    "(BSD-3-Clause, Copyright (c) 2021 Yuan Gong)"
)
AST_BIBTEX = """\
@inproceedings{gong21b_interspeech,
    title={{AST: Audio Spectrogram Transformer}},
    author={Yuan Gong and Yu-An Chung and James Glass},
    booktitle={Proc. Interspeech 2021},
    pages={571--575},
    year={2021},
    doi={10.21437/Interspeech.2021-698},
}"""
SSAST_BIBTEX = """\
@inproceedings{gong2022ssast,
    title={{SSAST}: Self-Supervised Audio Spectrogram Transformer},
    author={Yuan Gong and Cheng-I Lai and Yu-An Chung and James Glass},
    booktitle={Proceedings of the AAAI Conference on Artificial Intelligence},
    volume={36},
    number={10},
    pages={10699--10709},
    year={2022},
}"""
SPEECHBRAIN_BIBTEX = """\
@misc{speechbrainV1,
  title={Open-Source Conversational AI with SpeechBrain 1.0},
  author={Mirco Ravanelli and Titouan Parcollet and Adel Moumen and Sylvain de Langen and Cem Subakan and Peter Plantinga and Yingzhi Wang and Pooneh Mousavi and Luca Della Libera and Artem Ploujnikov and Francesco Paissan and Davide Borra and Salah Zaiem and Zeyu Zhao and Shucong Zhang and Georgios Karakasidis and Sung-Lin Yeh and Pierre Champion and Aku Rouhe and Rudolf Braun and Florian Mai and Juan Zuluaga-Gomez and Seyed Mahed Mousavi and Andreas Nautsch and Xuechen Liu and Sangeet Sagar and Jarod Duret and Salima Mdhaffar and Gaelle Laperriere and Mickael Rouvier and Renato De Mori and Yannick Esteve},
  year={2024},
  eprint={2407.00463},
  archivePrefix={arXiv},
  primaryClass={cs.LG},
  url={https://arxiv.org/abs/2407.00463},
}"""
RULE = "-" * 105
DATA_FOLDERS = {
    "ESC50": "ESC50",
    "SpeechCommands": "GSC",
    "AudioSet": "audioset",
}

# One line per hparams file (our recipe folder / our yaml name).
YAML_NOTES = {
    "ESC50/ast.yaml": "AudioSet + ImageNet pretraining, fold 5 held out "
    "(the paper reports 95.6 +- 0.4 % over the 5 folds)",
    "ESC50/ast_imagenet.yaml": "ImageNet (DeiT) pretraining only "
    "(the paper reports 88.7 %)",
    "ESC50/ast_scratch.yaml": "no pretraining",
    "ESC50/ast_patch128x2.yaml": "no pretraining, 128 x 2 patches",
    "ESC50/ast_scratch_small.yaml": "a small AST from scratch for a CPU",
    "ESC50/ssast_patch.yaml": "fine-tuning an SSAST patch encoder "
    "(`--ssl_pretrain`)",
    "ESC50/ssast_frame.yaml": "fine-tuning an SSAST frame encoder "
    "(`--ssl_pretrain`)",
    "SpeechCommands/ast.yaml": "ImageNet (DeiT) pretraining, the 35 words "
    "(the paper reports 98.1 %)",
    "SpeechCommands/ast_scratch_small.yaml": "a small AST from scratch "
    "for a CPU",
    "SpeechCommands/ssast_frame.yaml": "fine-tuning an SSAST frame encoder "
    "(`--ssl_pretrain`)",
    "AudioSet/ast_balanced.yaml": "balanced training set (the paper "
    "reports 0.347 mAP for one model)",
    "AudioSet/ast_full.yaml": "full training set (the paper reports "
    "0.459 mAP for one model)",
    "SSAST/ssast_small.yaml": "a small encoder, 128 x 2 frame patches",
    "SSAST/ssast_base.yaml": "SSAST-Base, the paper's encoder",
}


def _code(lines, lang="shell"):
    return [f"```{lang}", *lines, "```"]


def _model_list(key, yamls, ours_names):
    """Markdown bullets: each hparams file and what it is."""
    out = []
    for path in yamls:
        name = os.path.basename(path)
        note = YAML_NOTES.get(f"{key}/{ours_names.get(name, name)}", "")
        out.append(f"- `hparams/{name}`" + (f": {note}" if note else ""))
    return out


def _ast_entry(key, recipe, yamls, ours_names, heading="###"):
    """The Supported Models entry of the AST in a recipe README."""
    script = next(
        t
        for o, t in recipe["files"].items()
        if o in ("train.py", "pretrain.py")
    )
    first = os.path.basename(yamls[0])
    ssl = [y for y in yamls if "ssast" in os.path.basename(y)]
    lines = [
        f"{heading} {ENTRY}",
        "",
        f"`{script}` fine-tunes the [Audio Spectrogram Transformer]"
        "(https://arxiv.org/abs/2104.01778) (Gong, Chung & Glass, Interspeech "
        f"2021) from `{PACKAGE}`, which needs timm "
        "(`pip install -r extra_requirements.txt`). The pretrained weights "
        "named in the yaml are fetched from the HuggingFace hub (or read "
        "from a local path). To run this, you can use the command:",
        "",
        *_code(
            [
                f"python {script} hparams/{first} "
                f"--data_folder /yourpath/{DATA_FOLDERS.get(key, key)}"
            ]
        ),
        "",
        "The hparams files:",
        "",
        *_model_list(key, yamls, ours_names),
    ]
    if ssl:
        lines += [
            "",
            "With `--ssl_pretrain PATH` the lobe starts from a "
            "self-supervised SSAST encoder (the published "
            "`SSAST-Base-Patch-400.pth`, or the `ssast_encoder.pt` of "
            "`recipes/AudioSet/SSAST`).",
        ]
    lines += [
        "",
        f"The model and its weight import follow the reference "
        f"implementation, {REFERENCE_CODE}.",
    ]
    return lines


def _table_rows(yamls, columns):
    """Results-table rows of our hparams files (figures to be filled in
    once trained on the full dataset)."""
    cells = " | ".join("-" for _ in range(columns - 1))
    return [f"| {os.path.basename(y)} | {cells} |" for y in yamls]


def _drop_ours(text, start, end_pattern):
    """``text`` without the block from the line ``start`` to the first
    match of ``end_pattern`` after it (included)."""
    index = text.find(start)
    if index < 0:
        return text
    match = re.compile(end_pattern, re.M).search(text, index + len(start))
    stop = match.end() if match else len(text)
    return text[:index] + text[stop:]


def _drop_bibtex(text, bibtex):
    block = "\n".join(_code([bibtex], "bibtex")) + "\n\n"
    return text.replace(block, "")


def _add_rows(text, rows, name_marker):
    """The first markdown table after "Results" / "Performance summary"
    with our rows (old ones removed) appended."""
    lines = text.split("\n")
    lines = [
        line
        for line in lines
        if not (line.startswith("|") and name_marker in line)
    ]
    start = next(
        (
            i
            for i, line in enumerate(lines)
            if re.match(r"#+ .*(Results|Performance summary)", line)
        ),
        None,
    )
    if start is None:
        return "\n".join(lines)
    first = next(
        i for i in range(start, len(lines)) if lines[i].startswith("|")
    )
    last = first
    while last + 1 < len(lines) and lines[last + 1].startswith("|"):
        last += 1
    return "\n".join(lines[: last + 1] + rows + lines[last + 1 :])


def _columns(text):
    """The number of columns of the first Results table (2 when none)."""
    for line in text.split("\n"):
        if line.startswith("|"):
            return line.count("|") - 1
    return 2


def esc50_readme(key, recipe, existing, yamls, ours_names):
    """ESC-50's README (upstream's layout: Supported Models, Results,
    Citing) with our entry, rows and bibtex."""
    text = _drop_ours(existing, f"### {ENTRY}\n", rf"^{RULE}\n\n")
    text = _drop_bibtex(_drop_bibtex(text, AST_BIBTEX), SSAST_BIBTEX)
    entry = "\n".join(_ast_entry(key, recipe, yamls, ours_names))
    entry += f"\n\n{RULE}\n\n"
    anchor = re.search(r"^### To train with WHAM", text, re.M)
    if anchor is None:
        anchor = re.search(r"^## Results", text, re.M)
    text = text[: anchor.start()] + entry + text[anchor.start() :]
    rows = _table_rows(yamls, _columns(text.split("## Results", 1)[-1]))
    text = _add_rows(text, rows, "spectrogram_transformer")
    bib = "\n".join(_code([AST_BIBTEX], "bibtex")) + "\n\n"
    if any("ssast" in y for y in yamls):
        bib += "\n".join(_code([SSAST_BIBTEX], "bibtex")) + "\n\n"
    anchor = text.find("If you use **SpeechBrain**")
    return text[:anchor] + bib + text[anchor:]


def gsc_readme(key, recipe, existing, yamls, ours_names):
    """Speech Commands' README (its own layout: How to run, Performance
    summary) with our section and rows."""
    text = _drop_ours(existing, f"# {ENTRY}\n", r"^```\n\n\n")
    entry = _ast_entry(key, recipe, yamls, ours_names, heading="#")
    bib = [AST_BIBTEX] + (
        [SSAST_BIBTEX] if any("ssast" in y for y in yamls) else []
    )
    entry += ["", "Please cite:", "", *_code(bib, "bibtex")]
    anchor = re.search(r"^# Performance summary", text, re.M)
    text = (
        text[: anchor.start()]
        + "\n".join(entry)
        + "\n\n\n"
        + text[anchor.start() :]
    )
    rows = [f"| AST, {os.path.basename(y)} | - |" for y in yamls]
    return _add_rows(text, rows, "spectrogram_transformer")


def _about():
    return [
        "## Citing",
        "",
        "If you use **SpeechBrain**, please cite:",
        "",
        *_code([SPEECHBRAIN_BIBTEX], "bibtex"),
        "",
        RULE,
        "",
        "## About SpeechBrain",
        "",
        "- Website: https://speechbrain.github.io/",
        "- Code: https://github.com/speechbrain/speechbrain/",
        "- HuggingFace: https://huggingface.co/speechbrain/",
        "",
    ]


def audioset_readme(key, recipe, yamls, ours_names):
    """The new README of recipes/AudioSet/classification."""
    lines = [
        "# Audio Tagging - AudioSet",
        "",
        "This recipe trains a tagger for [AudioSet]"
        "(https://research.google.com/audioset/) (527 labels, multi-label, "
        "10 s clips; the metric is mAP).",
        "",
        "## Dataset",
        "",
        "AudioSet is distributed as lists of YouTube segments: download the "
        "clips you can still get, with the segment csv files and "
        "`class_labels_indices.csv` (the label list, AudioSet ontology, "
        "CC BY-SA 4.0), and lay them out as "
        f"`{recipe['files']['audioset_prepare.py']}` describes. For the full "
        "set, write WebDataset shards once with "
        f"`{recipe['files']['make_shards.py']}` and train from them "
        "(`--shards`).",
        "",
        RULE,
        "",
        "## Installing Extra Dependencies",
        "",
        *_code(["pip install -r extra_requirements.txt"]),
        "",
        RULE,
        "",
        "## Supported Models",
        "",
        *_ast_entry(key, recipe, yamls, ours_names),
        "",
        RULE,
        "",
        "## Results",
        "",
        "| Hyperparams file | mAP | Training time | HuggingFace link "
        "| Model link | GPUs |",
        "|:---:|:---:|:---:|:---:|:---:|:---:|",
        *_table_rows(yamls, 6),
        "",
        RULE,
        "",
        "## Citing",
        "",
        "If you find this recipe useful, please cite:",
        "",
        *_code([AST_BIBTEX], "bibtex"),
        "",
        *_about()[2:],
    ]
    return "\n".join(lines)


def ssast_readme(key, recipe, yamls, ours_names):
    """The new README of recipes/AudioSet/SSAST."""
    lines = [
        f"# {SSAST_ENTRY}",
        "",
        "Masked spectrogram patch modelling (Gong, Lai, Chung & Glass, "
        "[SSAST](https://arxiv.org/abs/2110.09784), AAAI 2022) on "
        "unlabelled audio: `pretrain.py` trains the AST encoder of "
        f"`{PACKAGE}` and writes `ssast_encoder.pt`, which the AST recipes "
        "fine-tune with `--ssl_pretrain`.",
        "",
        RULE,
        "",
        "## Installing Extra Dependencies",
        "",
        *_code(["pip install -r extra_requirements.txt"]),
        "",
        RULE,
        "",
        "## Supported Models",
        "",
        "Every `.wav` / `.flac` file under `--data_folder` (or the `wav` "
        "column of `--train_manifest`) is used. To run this, you can use "
        "the command:",
        "",
        *_code(
            [
                f"python pretrain.py hparams/{os.path.basename(yamls[0])} "
                "--data_folder /yourpath/audio"
            ]
        ),
        "",
        "The hparams files:",
        "",
        *_model_list(key, yamls, ours_names),
        "",
        f"The pretraining follows the reference implementation, {SSAST_CODE}.",
        "",
        RULE,
        "",
        "## Results",
        "",
        "| Hyperparams file | Training time | Model link | GPUs |",
        "|:---:|:---:|:---:|:---:|",
        *_table_rows(yamls, 4),
        "",
        RULE,
        "",
        "## Citing",
        "",
        "If you find this recipe useful, please cite:",
        "",
        *_code([SSAST_BIBTEX], "bibtex"),
        "",
        *_about()[2:],
    ]
    return "\n".join(lines)


def recipe_readme(key, recipe, existing, yamls, ours_names):
    """A recipe README with our entry for the hparams files ``yamls``.

    Arguments
    ---------
    key : str
        Our recipe (``ESC50``, ``SpeechCommands``, ``AudioSet``, ``SSAST``).
    recipe : dict
        Its entry of ``RECIPES`` in ``scripts/upstream.py``.
    existing : str
        Upstream's README ("" when new).
    yamls : list of str
        The upstream hparams paths.
    ours_names : dict
        Upstream yaml name -> ours.

    Returns
    -------
    str
    """
    if key == "ESC50":
        return esc50_readme(key, recipe, existing, yamls, ours_names)
    if key == "SpeechCommands":
        return gsc_readme(key, recipe, existing, yamls, ours_names)
    if key == "AudioSet":
        return audioset_readme(key, recipe, yamls, ours_names)
    return ssast_readme(key, recipe, yamls, ours_names)


def integration_readme(subpackages, part, recipes=("ESC50",)):
    """The integration's README (of parts 1..``part``, whose recipes are
    ``recipes``): what it holds, the install line, the provenance of its
    code and label files, the coverage record."""
    lines = [
        "Audio Spectrogram Transformer",
        "-----------------------------",
        "",
        "The Audio Spectrogram Transformer (AST; Gong, Chung & Glass, "
        "Interspeech 2021) for audio classification, on the transformer "
        "blocks of [timm](https://github.com/huggingface/pytorch-image-models): "
        + ", ".join(f"`{p}`" for p in subpackages)
        + ". Its recipes fine-tune it on ESC-50"
        + (", Speech Commands" if "SpeechCommands" in recipes else "")
        + (" and AudioSet" if "AudioSet" in recipes else "")
        + (", and pretrain it with SSAST" if "SSAST" in recipes else "")
        + "; a trained model is a folder that "
        "`speechbrain.inference.classifiers.EncoderClassifier` loads.",
        "",
        "The model, its frontend and its weight import follow the reference "
        f"implementation, {REFERENCE_CODE}"
        + (f"; SSAST follows {SSAST_CODE}" if "SSAST" in recipes else "")
        + ". The class names in `label_files/` are the reference's files "
        "(BSD-3-Clause).",
        "",
        "Here is a record of test setup and relevant results:",
        "",
    ]
    # the latest record up to this part (a part that leaves the
    # integration's code as it was has none of its own)
    records = [
        os.path.join(COVERAGE_RECORDS, f"part{n}.txt")
        for n in range(part, 0, -1)
    ]
    record = next((r for r in records if os.path.isfile(r)), "")
    command = [
        "$ pip install timm",
        f"$ pytest --cov={PACKAGE_DIR}/ --cov-context=test "
        f"--doctest-modules {PACKAGE_DIR}/ "
        "speechbrain/integrations/tests/test_audio_spectrogram_transformer*.py",
    ]
    if os.path.isfile(record):
        with open(record, encoding="utf-8") as f:
            command += ["", *f.read().rstrip("\n").split("\n")]
    lines += _code(command, "bash")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Print a recipe README as scripts/upstream.py writes it "
        "(every part of the series)."
    )
    parser.add_argument("checkout", help="root of the upstream checkout")
    parser.add_argument(
        "recipe", help="ESC50, SpeechCommands, AudioSet or SSAST"
    )
    args = parser.parse_args(argv)
    try:
        from scripts import upstream
    except ImportError:
        import upstream
    files = upstream.contribution(args.checkout)
    recipe = upstream.RECIPES.get(args.recipe)
    if recipe is None:
        print(f"error: unknown recipe {args.recipe!r}", file=sys.stderr)
        return 2
    print(files[f"{recipe['upstream']}/README.md"], end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
