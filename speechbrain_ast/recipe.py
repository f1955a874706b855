"""What every recipe script does before and after its Brain: find its
hparams file, initialise the lobe from pretrained weights, log metrics as
json lines, save test predictions.

Authors
 * speechbrain-ast developers
"""

import json
import logging
import os

import torch

__all__ = [
    "resolve_hparams_file",
    "init_from_pretrained",
    "log_jsonl",
    "save_predictions",
]

logger = logging.getLogger(__name__)


def resolve_hparams_file(path, recipe_dir):
    """Finds a recipe's hparams file: recipe folder first, then the cwd.

    Arguments
    ---------
    path : str
        The hparams path given on the command line. Absolute paths are used
        as they are.
    recipe_dir : str
        The recipe's folder (``os.path.dirname(__file__)`` in train.py).

    Returns
    -------
    str
        The absolute path of the file used (also logged).

    Raises
    ------
    FileNotFoundError
        Naming every place tried.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> open(os.path.join(d, "hparams", "ast.yaml"), "w").close()
    >>> resolve_hparams_file("hparams/ast.yaml", d).endswith("ast.yaml")
    True
    """
    if os.path.isabs(path):
        candidates = [path]
    else:
        candidates = [
            os.path.join(os.path.abspath(recipe_dir), path),
            os.path.abspath(path),
        ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            logger.info("Using hparams file %s", candidate)
            return candidate
    raise FileNotFoundError(
        f"hparams file {path!r} not found; tried "
        + " and ".join(repr(c) for c in candidates)
        + ". Give a path relative to the recipe folder (e.g. "
        "hparams/ast.yaml), to the current directory, or an absolute path."
    )


def init_from_pretrained(
    embedding_model,
    audioset_pretrain=False,
    imagenet_pretrain=False,
    imagenet_checkpoint=None,
    channel_reduction="mean",
    pos_embed="bilinear",
):
    """Initialises a recipe's AST lobe (in place) as the paper does.

    With ``audioset_pretrain`` (a reference ``.pth`` or a HuggingFace
    folder) the lobe gets that checkpoint's backbone, its positional
    embedding adapted to the lobe's ``input_tdim`` (the checkpoint's head
    is not used: the recipe's head stays fresh). Else, with
    ``imagenet_pretrain`` (a timm DeiT name), the DeiT weights
    (:func:`speechbrain_ast.pretrained.load_deit`). Else nothing (random
    initialisation, "from scratch").

    Arguments
    ---------
    embedding_model : speechbrain_ast.model.AST
    audioset_pretrain : str or False
    imagenet_pretrain : str or False
    imagenet_checkpoint : str, optional
        Local DeiT weights file (offline machines).
    channel_reduction : str
        ``"mean"`` or ``"sum"`` (DeiT's RGB patch conv -> 1 channel).
    pos_embed : str
        ``"bilinear"``, ``"nearest"`` or ``"reinit"`` (ImageNet only).

    Returns
    -------
    str
        What was loaded, for the log.

    Example
    -------
    >>> from speechbrain_ast.model import AST
    >>> init_from_pretrained(
    ...     AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    ... )
    'random initialisation'
    """
    from speechbrain_ast import pretrained

    if audioset_pretrain:
        if not os.path.exists(audioset_pretrain):
            raise FileNotFoundError(
                f"audioset_pretrain={audioset_pretrain!r} does not exist: "
                "give the path of an AudioSet AST checkpoint (the "
                "reference audioset_10_10_0.4593.pth or a HuggingFace AST "
                "folder), or --audioset_pretrain False"
            )
        lobe, _, _ = pretrained.build_from_checkpoint(
            audioset_pretrain, input_tdim=embedding_model.input_tdim
        )
        try:
            embedding_model.load_state_dict(lobe.state_dict())
        except RuntimeError as err:
            raise ValueError(
                f"{audioset_pretrain} does not fit the recipe's model "
                "(embed_dim, depth, num_heads, patch_size, fstride, "
                "tstride must match the checkpoint's): "
                f"{str(err)[:400]}"
            ) from err
        return f"AudioSet checkpoint {audioset_pretrain}"
    if imagenet_pretrain:
        pretrained.load_deit(
            embedding_model,
            name=imagenet_pretrain,
            checkpoint=imagenet_checkpoint,
            channel_reduction=channel_reduction,
            pos_embed=pos_embed,
        )
        return f"ImageNet {imagenet_pretrain} ({imagenet_checkpoint})"
    return "random initialisation"


def log_jsonl(output_folder, record):
    """Appends ``record`` as one json line to
    ``<output_folder>/metrics.jsonl`` (on the main process only).

    ESC-50's cross-validation reads the per-epoch validation accuracy there.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> log_jsonl(d, {"stage": "valid", "epoch": 1, "acc": 50.0})
    >>> open(os.path.join(d, "metrics.jsonl")).read().strip()
    '{"stage": "valid", "epoch": 1, "acc": 50.0}'
    """
    from speechbrain.utils.distributed import if_main_process

    if if_main_process():
        path = os.path.join(output_folder, "metrics.jsonl")
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def save_predictions(output_folder, result):
    """Writes ``<output_folder>/test_predictions.pt`` with the ``ids``,
    ``scores`` and ``targets`` of an evaluation (main process only): the
    input of :func:`speechbrain_ast.ensemble.ensemble_predictions`.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> save_predictions(
    ...     d,
    ...     {
    ...         "ids": ["a"],
    ...         "scores": torch.ones(1, 2),
    ...         "targets": torch.ones(1, 2),
    ...     },
    ... )
    >>> sorted(torch.load(os.path.join(d, "test_predictions.pt")))
    ['ids', 'scores', 'targets']
    """
    from speechbrain.utils.distributed import if_main_process

    if if_main_process():
        torch.save(
            {k: result[k] for k in ("ids", "scores", "targets")},
            os.path.join(output_folder, "test_predictions.pt"),
        )
