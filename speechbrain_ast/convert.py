"""Command line: a published AST checkpoint -> a SpeechBrain model folder.

::

    python -m speechbrain_ast.convert SRC --out DIR [--labels FILE]
        [--native-length] [--overwrite] [--multi-label | --single-label]
    python -m speechbrain_ast.convert SSAST.pth --out DIR --n-classes N

``SRC`` is a reference-format ``.pth`` (e.g. ``audioset_10_10_0.4593.pth``)
or a HuggingFace transformers AST folder (``config.json`` + weights, e.g. a
snapshot of ``MIT/ast-finetuned-audioset-10-10-0.4593``). The folder's
pipeline reproduces the reference exactly by default: Kaldi fbank, pad or
cut to the checkpoint's number of frames, the checkpoint's normalisation.
With ``--native-length`` each clip keeps its own length instead (see
docs/inference.md for what that changes).

Labels: a HuggingFace folder's ``id2label``; a ``.pth`` holds no names:
``--labels`` gives them, AudioSet's ``class_labels_indices.csv`` (columns
index, mid, display_name) or a text file with one label per line. Without
it, a ``.pth`` with the class count of a published checkpoint (AudioSet
527, ESC-50 50, Speech Commands 35) gets that dataset's names from the
label files shipped in ``speechbrain_ast/label_files/`` (a note says so);
any other count needs ``--labels``.

Scores: sigmoid for AudioSet (527 classes) and Speech Commands (35), both
trained with BCE in the reference, and for HuggingFace configs whose
``problem_type`` is ``multi_label_classification``; softmax otherwise
(``--multi-label`` / ``--single-label`` choose).

SSAST encoders (self-supervised, no classifier): a published
``SSAST-Base-Patch-400.pth`` / ``SSAST-Base-Frame-400.pth`` (keys
``module.v.*`` with ``module.mask_embed``) or the ``ssast_encoder.pt`` that
``recipes/SSAST/pretrain.py`` writes, told apart from a supervised ``.pth``
by those keys. The folder gets the encoder at its pretraining patch shape,
strides and length (``--input-tdim`` another length, positions adapted)
and a fresh, randomly initialised head of ``--n-classes N`` classes (named
``class0`` ...) or of the ``--labels`` file's classes: its scores mean
nothing until the model is fine-tuned (a recipe's ``--ssl_pretrain``).
What the folder is good for as it is: the encoder's embeddings
(``encode_batch``). The head is drawn with a fixed seed, so a conversion
is reproducible.

Authors
 * speechbrain-ast developers
"""

import argparse
import csv
import json
import logging
import os
import sys

import torch

from speechbrain_ast.features.fbank import DATASET_STATS
from speechbrain_ast.inference.model_folder import export_model_folder

__all__ = [
    "convert_checkpoint",
    "is_ssast_checkpoint",
    "read_labels",
    "shipped_labels",
    "main",
]

logger = logging.getLogger(__name__)

AUDIOSET_CLASSES = 527

LABEL_FILES = os.path.join(os.path.dirname(__file__), "label_files")

# The published reference checkpoints by class count: their dataset, its
# label file in LABEL_FILES and whether the reference trained it with BCE
# (sigmoid scores) rather than cross-entropy (softmax).
PUBLISHED_TASKS = {
    AUDIOSET_CLASSES: ("AudioSet", "class_labels_indices.csv", True),
    50: ("ESC-50", "esc_class_labels_indices.csv", False),
    35: ("Speech Commands V2", "speechcommands_class_labels_indices.csv", True),
}


def read_labels(path):
    """Class names in index order from a label file.

    Arguments
    ---------
    path : str
        Either a CSV with a header holding ``index`` and ``display_name``
        (AudioSet's ``class_labels_indices.csv``: index, mid, display_name)
        or a text file with one label per line (line order = index).

    Returns
    -------
    list of str

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write(
    ...         'index,mid,display_name\\n1,/m/b,"Bark, dog"\\n0,/m/a,Speech\\n'
    ...     )
    >>> read_labels(path)
    ['Speech', 'Bark, dog']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file {path!r} does not exist.")
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.splitlines()
    header = [h.strip() for h in next(csv.reader(lines[:1]), [])]
    if "index" in header and "display_name" in header:
        by_index = {}
        for row in csv.DictReader(lines):
            try:
                index = int(row["index"])
            except (TypeError, ValueError):
                raise ValueError(
                    f"{path!r}: bad index {row.get('index')!r} in row {row}."
                ) from None
            by_index[index] = row["display_name"].strip()
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(
                f"{path!r}: the indices are not 0..{len(by_index) - 1} "
                "without gaps: fix the label file."
            )
        return [by_index[i] for i in range(len(by_index))]
    labels = [line.strip() for line in lines if line.strip()]
    if not labels:
        raise ValueError(f"label file {path!r} holds no labels.")
    return labels


def shipped_labels(n_classes):
    """The shipped label file of a published checkpoint's class count.

    Arguments
    ---------
    n_classes : int
        The checkpoint's number of classes.

    Returns
    -------
    tuple of (str, str) or None
        ``(dataset, path)`` for 527 (AudioSet), 50 (ESC-50) and 35 (Speech
        Commands V2) classes; None for any other count.

    Example
    -------
    >>> dataset, path = shipped_labels(527)
    >>> dataset, read_labels(path)[:2]
    ('AudioSet', ['Speech', 'Male speech, man speaking'])
    >>> shipped_labels(10) is None
    True
    """
    if n_classes not in PUBLISHED_TASKS:
        return None
    dataset, name, _ = PUBLISHED_TASKS[n_classes]
    return dataset, os.path.join(LABEL_FILES, name)


def _default_multi_label(n_classes, problem_type):
    """Sigmoid or softmax when not chosen; why, when the class count
    decided (for the note)."""
    if problem_type == "multi_label_classification":
        return True, None
    if n_classes in PUBLISHED_TASKS and PUBLISHED_TASKS[n_classes][2]:
        dataset = PUBLISHED_TASKS[n_classes][0]
        if n_classes == AUDIOSET_CLASSES or problem_type is None:
            return True, (
                f"{n_classes} classes: {dataset}, trained with BCE in the "
                "reference"
            )
    return False, None


def convert_checkpoint(
    src,
    out_dir,
    labels=None,
    native_length=False,
    multi_label=None,
    overwrite=False,
    input_tdim=None,
    fstride=None,
    tstride=None,
    norm_stats=None,
    input_fdim=128,
    n_classes=None,
):
    """Converts a published checkpoint into a model folder.

    Arguments
    ---------
    src : str
        A reference ``.pth`` file or a HuggingFace AST folder.
    out_dir : str
        The model folder to write (refused if it exists and is not empty,
        unless ``overwrite``).
    labels : list of str, optional
        Class names; default the HuggingFace ``id2label``, or for a
        ``.pth`` the shipped names of its class count
        (:func:`shipped_labels`; any other count needs them).
    native_length : bool
        Keep each clip's length instead of padding / cutting to the
        checkpoint's number of frames.
    multi_label : bool, optional
        Sigmoid (True) or softmax (False) scores. Default: True for 527
        classes (AudioSet), 35 (Speech Commands, unless a HuggingFace
        config says ``single_label_classification``) and for HuggingFace
        configs whose ``problem_type`` is ``multi_label_classification``.
    overwrite : bool
        Replace the model files of an existing folder.
    input_tdim : int, optional
        Frames a ``.pth`` was trained with (default 1024, AudioSet; then
        strides that no published checkpoint uses are refused).
    fstride, tstride : int, optional
        Strides of a ``.pth`` (inferred from its patch count when None).
    norm_stats : tuple of float, optional
        ``(mean, std)``; default the checkpoint's (HuggingFace
        preprocessor_config.json, or AudioSet's for a ``.pth``).
    input_fdim : int
        Mel bins a ``.pth`` was trained with (128 for every published one).
    n_classes : int, optional
        SSAST encoders only: classes of the fresh (untrained) head; or
        give ``labels``.

    Returns
    -------
    str
        ``out_dir``.

    Example
    -------
    >>> import os, tempfile, torch
    >>> from speechbrain_ast.model.lobe import AST, ASTHead
    >>> tmp = tempfile.mkdtemp()
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> state = {f"module.v.{k}": v for k, v in lobe.state_dict().items()}
    >>> state.update(
    ...     {
    ...         f"module.mlp_head.{k}": v
    ...         for k, v in ASTHead(64, 2).state_dict().items()
    ...     }
    ... )
    >>> torch.save(state, os.path.join(tmp, "ast.pth"))
    >>> out = convert_checkpoint(
    ...     os.path.join(tmp, "ast.pth"),
    ...     os.path.join(tmp, "model"),
    ...     labels=["yes", "no"],
    ...     input_tdim=128,
    ... )
    >>> sorted(os.listdir(out))[0]
    'classifier.ckpt'
    """
    from speechbrain_ast.weights.pretrained import (
        build_from_checkpoint,
        read_hf_checkpoint,
        read_reference_checkpoint,
    )

    src = os.fspath(src)
    out_dir = os.fspath(out_dir)
    _refuse_existing(out_dir, overwrite)
    hf_config = {}
    if os.path.isdir(src):
        imported = read_hf_checkpoint(src)
        with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
            hf_config = json.load(f)
        source_format = "huggingface"
    elif os.path.isfile(src) and is_ssast_checkpoint(src):
        return _convert_ssast(
            src,
            out_dir,
            labels=labels,
            n_classes=n_classes,
            native_length=native_length,
            multi_label=multi_label,
            overwrite=overwrite,
            input_tdim=input_tdim,
            strides=(fstride, tstride),
            norm_stats=norm_stats,
            input_fdim=input_fdim,
        )
    elif os.path.isfile(src):
        imported = read_reference_checkpoint(
            src,
            fstride=fstride,
            tstride=tstride,
            input_fdim=input_fdim,
            input_tdim=input_tdim,
        )
        source_format = "reference"
    else:
        raise FileNotFoundError(
            f"{src!r} does not exist: pass a reference .pth file or a "
            "HuggingFace AST folder."
        )
    if n_classes is not None:
        raise ValueError(
            f"--n-classes is for SSAST encoders (a fresh head); {src!r} has "
            "its own classifier: leave it out."
        )
    if imported.head_state is None:
        raise ValueError(
            f"{src!r} has no classifier head: a model folder needs one. "
            "Fine-tune it first (see the recipes)."
        )
    n_classes = imported.n_classes
    labels_from = "given" if labels is not None else "checkpoint"
    if labels is None:
        labels = imported.labels
    if labels is None and shipped_labels(n_classes) is not None:
        dataset, path = shipped_labels(n_classes)
        labels = read_labels(path)
        labels_from = os.path.basename(path)
        logger.info(
            "%d classes: %s's names from the shipped %s (pass --labels for "
            "other names)",
            n_classes,
            dataset,
            labels_from,
        )
    if labels is None:
        raise ValueError(
            f"{src!r} does not name its {n_classes} classes: pass --labels "
            "with a label file (index, mid, display_name CSV like AudioSet's "
            "class_labels_indices.csv, or one label per line). Names are "
            "shipped only for 527 (AudioSet), 50 (ESC-50) and 35 (Speech "
            "Commands) classes."
        )
    if len(labels) != n_classes:
        raise ValueError(
            f"{len(labels)} labels for the {n_classes} classes of {src!r}: "
            "pass the label file that belongs to this checkpoint."
        )
    if multi_label is None:
        multi_label, why = _default_multi_label(
            n_classes, hf_config.get("problem_type")
        )
        if why:
            logger.info("sigmoid scores (%s; --single-label for softmax)", why)
    lobe, head, imported = build_from_checkpoint(imported)
    frontend = {
        "sample_rate": 16000,
        "n_mels": imported.config["input_fdim"],
        "target_length": None if native_length else imported.target_length,
    }
    return export_model_folder(
        out_dir,
        lobe,
        head,
        labels,
        frontend,
        imported.norm_stats if norm_stats is None else norm_stats,
        multi_label=multi_label,
        overwrite=overwrite,
        extra={
            "converted_from": os.path.basename(os.path.normpath(src)),
            "source_format": source_format,
            "checkpoint_target_length": int(imported.target_length),
            "labels_from": labels_from,
        },
    )


def is_ssast_checkpoint(path):
    """Whether ``path`` holds a self-supervised SSAST encoder: a reference
    state dict with ``v.*`` and ``mask_embed`` keys (with or without the
    ``module.`` prefix) or an ``ssast_encoder.pt`` of
    ``recipes/SSAST/pretrain.py``.

    Arguments
    ---------
    path : str
        A checkpoint file.

    Returns
    -------
    bool

    Example
    -------
    >>> import os, tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "x.pth")
    >>> torch.save({"module.v.cls_token": torch.zeros(1)}, path)
    >>> is_ssast_checkpoint(path)
    False
    >>> torch.save(
    ...     {
    ...         "module.v.cls_token": torch.zeros(1),
    ...         "module.mask_embed": torch.zeros(1),
    ...     },
    ...     path,
    ... )
    >>> is_ssast_checkpoint(path)
    True
    """
    from speechbrain_ast.ssast.model import ENCODER_FORMAT
    from speechbrain_ast.weights.pretrained import load_weights

    content = load_weights(path)
    if not isinstance(content, dict):
        return False
    if content.get("format") == ENCODER_FORMAT:
        return True
    keys = {
        k[len("module.") :] if k.startswith("module.") else k
        for k in content
        if isinstance(k, str)
    }
    return "mask_embed" in keys and any(k.startswith("v.") for k in keys)


# the fresh head of an SSAST conversion is drawn with this seed
SSAST_HEAD_SEED = 0


def _convert_ssast(
    src,
    out_dir,
    labels,
    n_classes,
    native_length,
    multi_label,
    overwrite,
    input_tdim,
    strides,
    norm_stats,
    input_fdim,
):
    """An SSAST encoder and a fresh head into a model folder (see the
    module docstring)."""
    from speechbrain_ast.ssast.model import read_ssast_checkpoint
    from speechbrain_ast.weights.pretrained import build_from_checkpoint

    if any(stride is not None for stride in strides):
        raise ValueError(
            f"--fstride/--tstride do not apply to the SSAST encoder {src!r}:"
            " it is exported at its pretraining strides; fine-tune it with "
            "other strides through a recipe's --ssl_pretrain."
        )
    if labels is None and n_classes is None:
        raise ValueError(
            f"{src!r} is a self-supervised SSAST encoder without a "
            "classifier: pass --n-classes N (a fresh, untrained N-class "
            "head) or --labels FILE (a fresh head for its classes); to use "
            "it for a task, fine-tune it with a recipe's --ssl_pretrain."
        )
    if labels is not None and n_classes not in (None, len(labels)):
        raise ValueError(
            f"--n-classes {n_classes} but --labels names {len(labels)} "
            "classes: give one of them."
        )
    if labels is None:
        labels = [f"class{i}" for i in range(n_classes)]
        labels_from = "placeholders (untrained head)"
    else:
        labels_from = "given (untrained head)"
    imported = read_ssast_checkpoint(src, input_fdim=input_fdim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SSAST_HEAD_SEED)
        lobe, head, imported = build_from_checkpoint(
            imported, input_tdim=input_tdim, n_classes=len(labels)
        )
    logger.info(
        "SSAST encoder (%s x %s patches, strides %s/%s, %d frames) with a "
        "fresh, randomly initialised %d-class head: its scores mean nothing "
        "until fine-tuned (a recipe's --ssl_pretrain); encode_batch gives "
        "the encoder's embeddings",
        *imported.config["patch_size"],
        imported.config["fstride"],
        imported.config["tstride"],
        imported.target_length,
        len(labels),
    )
    frontend = {
        "sample_rate": 16000,
        "n_mels": imported.config["input_fdim"],
        "target_length": None if native_length else imported.target_length,
    }
    return export_model_folder(
        out_dir,
        lobe,
        head,
        labels,
        frontend,
        imported.norm_stats if norm_stats is None else norm_stats,
        multi_label=bool(multi_label),
        overwrite=overwrite,
        extra={
            "converted_from": os.path.basename(os.path.normpath(src)),
            "source_format": "ssast",
            "checkpoint_target_length": int(imported.target_length),
            "labels_from": labels_from,
            "head": f"untrained, seed {SSAST_HEAD_SEED}",
        },
    )


def _refuse_existing(out_dir, overwrite):
    """Fails before any reading when the output folder is taken."""
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(
            f"output folder {out_dir!r} already exists and is not empty: "
            "choose another --out, or pass --overwrite to replace its model "
            "files."
        )
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(
            f"{out_dir!r} exists and is not a folder: choose another --out."
        )


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ast.convert",
        description="Convert a published AST checkpoint (reference .pth or "
        "HuggingFace folder) into a SpeechBrain EncoderClassifier folder.",
    )
    parser.add_argument(
        "src",
        metavar="SRC",
        help=".pth file, HF folder, or SSAST encoder (.pth or "
        "ssast_encoder.pt)",
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="model folder to write"
    )
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="class_labels_indices.csv or one label per line (a .pth of "
        "527, 50 or 35 classes gets AudioSet's, ESC-50's or Speech "
        "Commands' names without it; overrides a HF folder's id2label)",
    )
    parser.add_argument(
        "--n-classes",
        type=int,
        metavar="N",
        help="SSAST encoders: a fresh, randomly initialised N-class head "
        "(scores meaningless until fine-tuned; or give --labels)",
    )
    parser.add_argument(
        "--native-length",
        action="store_true",
        help="keep each clip's length instead of padding to the "
        "checkpoint's frames (faster for short clips; outputs differ)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model files of an existing folder",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--multi-label",
        dest="multi_label",
        action="store_const",
        const=True,
        help="sigmoid scores (default for AudioSet, Speech Commands and "
        "multi-label configs)",
    )
    group.add_argument(
        "--single-label",
        dest="multi_label",
        action="store_const",
        const=False,
        help="softmax scores (default otherwise)",
    )
    parser.add_argument(
        "--input-tdim",
        type=int,
        help=".pth only: frames it was trained with (default 1024; ESC-50 "
        "512, Speech Commands 128)",
    )
    parser.add_argument(
        "--input-fdim",
        type=int,
        default=128,
        help=".pth only: mel bins it was trained with (default 128, as "
        "every published checkpoint)",
    )
    parser.add_argument("--fstride", type=int, help=".pth only")
    parser.add_argument("--tstride", type=int, help=".pth only")
    parser.add_argument(
        "--stats",
        choices=sorted(DATASET_STATS),
        help="normalisation statistics of this dataset (default: the "
        "checkpoint's; AudioSet for a .pth)",
    )
    return parser


def main(argv=None):
    """Runs the command line; returns the exit status.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on an error (one line on stderr).

    Example
    -------
    >>> main(["/no/such/checkpoint.pth", "--out", "/tmp/never"])
    1
    """
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("input_tdim", "input_fdim", "fstride", "tstride", "n_classes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be >= 1, got {value}"
            )
    # the converter's notes (label file, score choice): one line each
    notes = logging.StreamHandler(sys.stderr)
    notes.setFormatter(logging.Formatter("note: %(message)s"))
    level = logger.level
    logger.addHandler(notes)
    logger.setLevel(logging.INFO)
    try:
        labels = read_labels(args.labels) if args.labels else None
        out = convert_checkpoint(
            args.src,
            args.out,
            labels=labels,
            native_length=args.native_length,
            multi_label=args.multi_label,
            overwrite=args.overwrite,
            input_tdim=args.input_tdim,
            fstride=args.fstride,
            tstride=args.tstride,
            norm_stats=DATASET_STATS[args.stats] if args.stats else None,
            input_fdim=args.input_fdim,
            n_classes=args.n_classes,
        )
    except Exception as err:  # one line, never a traceback
        message = " ".join(str(err).split())
        print(
            f"error: converting {args.src!r}: {type(err).__name__}: {message}",
            file=sys.stderr,
        )
        return 1
    finally:
        logger.removeHandler(notes)
        logger.setLevel(level)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
