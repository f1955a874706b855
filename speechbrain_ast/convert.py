"""Command line: a published AST checkpoint -> a SpeechBrain model folder.

::

    python -m speechbrain_ast.convert SRC --out DIR [--labels FILE]
        [--native-length] [--overwrite] [--multi-label | --single-label]
    python -m speechbrain_ast.convert SSAST.pth --out DIR --n-classes N

``SRC`` is a reference-format ``.pth`` (e.g. ``audioset_10_10_0.4593.pth``)
or a HuggingFace transformers AST folder (``config.json`` + weights), or a
hub id (``MIT/ast-finetuned-audioset-10-10-0.4593``) or ``https://`` address
of one, fetched with SpeechBrain's ``fetch`` into the torch hub folder. The folder's
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
import logging
import os
import sys

import torch

from speechbrain_ast.features import DATASET_STATS
from speechbrain_ast.inference.model_folder import (
    check_out_dir,
    export_model_folder,
)
from speechbrain_ast.weights import (
    build_from_checkpoint,
    fetch_pretrained,
    is_ssast_checkpoint,
    read_hf_checkpoint,
    read_labels,
    read_reference_checkpoint,
    read_ssast_checkpoint,
    shipped_labels,
)
from speechbrain_ast.weights.labels import AUDIOSET_CLASSES, PUBLISHED_TASKS

__all__ = ["convert_checkpoint", "main"]

logger = logging.getLogger(__name__)


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
        A reference ``.pth`` file or a HuggingFace AST folder, or a hub id
        or web address of one
        (:func:`speechbrain_ast.weights.fetch.fetch_pretrained`).
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
    >>> from speechbrain_ast.model import AST, ASTHead
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
    out_dir = os.fspath(out_dir)
    check_out_dir(out_dir, overwrite)  # before any reading
    src = fetch_pretrained(src)  # a hub id or an address: fetched first
    if os.path.isdir(src):
        imported = read_hf_checkpoint(src)
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
            n_classes, imported.problem_type
        )
        if why:
            logger.info("sigmoid scores (%s; --single-label for softmax)", why)
    lobe, head, imported = build_from_checkpoint(imported)
    return _write_folder(
        src,
        out_dir,
        (lobe, head, imported),
        labels,
        native_length=native_length,
        norm_stats=norm_stats,
        multi_label=multi_label,
        overwrite=overwrite,
        extra={"source_format": source_format, "labels_from": labels_from},
    )


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
    # the mean of the patch tokens, as the SSAST reference fine-tunes
    lobe.set_pooling("mean")
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
    return _write_folder(
        src,
        out_dir,
        (lobe, head, imported),
        labels,
        native_length=native_length,
        norm_stats=norm_stats,
        multi_label=bool(multi_label),
        overwrite=overwrite,
        extra={
            "source_format": "ssast",
            "labels_from": labels_from,
            "head": f"untrained, seed {SSAST_HEAD_SEED}",
        },
    )


def _write_folder(
    src,
    out_dir,
    built,
    labels,
    native_length,
    norm_stats,
    multi_label,
    overwrite,
    extra,
):
    """The model folder of a built checkpoint (``build_from_checkpoint``'s
    lobe, head and ImportedAST): its frontend, statistics and origin."""
    lobe, head, imported = built
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
            "source_format": extra.pop("source_format"),
            "checkpoint_target_length": int(imported.target_length),
            **extra,
        },
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
        "ssast_encoder.pt); or a HuggingFace hub id or https:// address of "
        "one",
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
