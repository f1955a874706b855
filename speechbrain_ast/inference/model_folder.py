"""A trained or imported AST -> a model folder that SpeechBrain loads.

The folder holds ``hyperparams.yaml`` (its text:
:mod:`speechbrain_ast.inference.hyperparams`), ``embedding_model.ckpt``,
``classifier.ckpt`` (plain state dicts) and ``label_encoder.txt``
(:class:`~speechbrain.dataio.encoder.CategoricalEncoder`'s own format), so
that ``EncoderClassifier.from_hparams(source=folder, savedir=...)`` and
its subclasses (``ASTAudioClassifier``) load it offline.
A folder may carry further modules (``<name>.ckpt``, loaded into ``mods``)
and top-level settings (read back in ``hparams``) for code built on it.
This module writes the folder and holds what loads it strictly.

Authors
 * speechbrain-ast developers
"""

import logging
import os
from functools import partial

import torch

from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.fetching import FetchSource
from speechbrain.utils.parameter_transfer import Pretrainer
from speechbrain_ast.inference.hyperparams import (
    hyperparams_text,
    module_config,
    module_file,
)
from speechbrain_ast.weights.common import load_weights

__all__ = [
    "ModelFolderPretrainer",
    "export_model_folder",
    "export_trained_model",
    "sized_label_encoder",
    "load_state_strict",
    "load_label_encoder_strict",
    "MODEL_FILES",
    "check_model_folder",
    "check_out_dir",
]

logger = logging.getLogger(__name__)

#: The files a model folder consists of.
MODEL_FILES = (
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    "label_encoder.txt",
)


def check_model_folder(folder):
    """Refuses a path that is not a model folder, before SpeechBrain's
    ``from_hparams`` would fail on it with a less clear error.

    Arguments
    ---------
    folder : str or os.PathLike
        The folder to load.

    Returns
    -------
    str
        The folder's ``hyperparams.yaml``.

    Example
    -------
    >>> check_model_folder("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: model folder 'no/such/folder' does not exist: give a folder written by speechbrain_ast.convert or a recipe's export.
    """
    folder = os.fspath(folder)
    written_by = "speechbrain_ast.convert or a recipe's export"
    if not os.path.exists(folder):
        raise FileNotFoundError(
            f"model folder {folder!r} does not exist: give a folder written "
            f"by {written_by}."
        )
    if not os.path.isdir(folder):
        raise NotADirectoryError(
            f"{folder!r} is a file, not a model folder: give the folder that "
            "holds hyperparams.yaml."
        )
    hparams = os.path.join(folder, MODEL_FILES[0])
    if not os.path.isfile(hparams):
        raise FileNotFoundError(
            f"model folder {folder!r} has no {MODEL_FILES[0]}: give a folder "
            f"written by {written_by}."
        )
    return hparams


def load_state_strict(module, path):
    """Loads a plain state dict into ``module``, weights only, all keys.

    SpeechBrain's default transfer hook loads non-strictly and only logs
    missing keys, which would leave a mismatched model silently random.

    Arguments
    ---------
    module : torch.nn.Module
        The module to fill.
    path : str or os.PathLike
        A file written by ``torch.save(module.state_dict(), path)``.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "lin.ckpt")
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    >>> load_state_strict(torch.nn.Linear(2, 3), path)
    """
    # weights only, and a damaged file is named instead of torch's error
    state = load_weights(path)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatch
        raise ValueError(
            f"Checkpoint {os.fspath(path)!r} does not fit "
            f"{type(module).__name__}: {' '.join(str(err).split())[:300]}. "
            "The model folder's hyperparams.yaml and checkpoint files come "
            "from different models: re-export or re-convert the folder."
        ) from err
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint {os.fspath(path)!r} does not fit "
            f"{type(module).__name__}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}. The model folder's "
            "hyperparams.yaml and checkpoint files come from different "
            "models: re-export or re-convert the folder."
        )


def load_label_encoder_strict(encoder, path):
    """Loads ``label_encoder.txt`` into ``encoder``, checking its size.

    SpeechBrain's default loader (``load_if_possible``) leaves the encoder
    empty when the file is damaged, and ``expect_len`` is only checked when
    a label is decoded, so a label file that does not fit the head would
    surface as an IndexError or a wrong label at classification time.

    Arguments
    ---------
    encoder : CategoricalEncoder
        The encoder to fill (``expect_len`` set by
        :func:`sized_label_encoder`).
    path : str or os.PathLike
        The label file (CategoricalEncoder's text format).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "label_encoder.txt")
    >>> saved = CategoricalEncoder()
    >>> saved.update_from_iterable(["a", "b"])
    >>> saved.save(path)
    >>> load_label_encoder_strict(sized_label_encoder(2), path)
    >>> try:
    ...     load_label_encoder_strict(sized_label_encoder(3), path)
    ... except ValueError as err:
    ...     print("holds 2 labels" in str(err))
    True
    """
    path = os.fspath(path)
    try:
        encoder.load(path)
    except (ValueError, SyntaxError) as err:
        raise ValueError(
            f"Label file {path!r} is damaged ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]}): re-export or re-convert "
            "the model folder."
        ) from err
    expected = getattr(encoder, "expected_len", None)
    if expected is not None and len(encoder) != expected:
        raise ValueError(
            f"Label file {path!r} holds {len(encoder)} labels but the "
            f"model has {expected} outputs (n_classes in hyperparams.yaml): "
            "the folder mixes files of different models; re-export or "
            "re-convert it."
        )


class ModelFolderPretrainer(Pretrainer):
    """A :class:`~speechbrain.utils.parameter_transfer.Pretrainer` whose
    ``paths`` may name files relative to the model folder.

    SpeechBrain resolves a bare file name in ``paths`` against the current
    directory, so a folder would have to hard-code its own location to
    load ``label_encoder.txt``. Here a bare name (no ``/``) is looked up in
    the ``source`` given to ``from_hparams`` (a local folder or a hub
    repository), so the folder can be moved or published as it is. Torch
    modules load strictly and weights-only (:func:`load_state_strict`),
    label encoders with a size check (:func:`load_label_encoder_strict`).

    Arguments
    ---------
    *args, **kwargs
        As :class:`~speechbrain.utils.parameter_transfer.Pretrainer`.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> lin = torch.nn.Linear(2, 3)
    >>> torch.save(lin.state_dict(), os.path.join(folder, "weights.ckpt"))
    >>> other = torch.nn.Linear(2, 3)
    >>> pretrainer = ModelFolderPretrainer(
    ...     loadables={"lin": other}, paths={"lin": "weights.ckpt"}
    ... )
    >>> _ = pretrainer.collect_files(default_source=folder)
    >>> pretrainer.load_collected()
    >>> torch.equal(other.weight, lin.weight)
    True
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, obj in self.loadables.items():
            if isinstance(obj, torch.nn.Module):
                self.custom_hooks.setdefault(name, load_state_strict)
            elif isinstance(obj, CategoricalEncoder):
                self.custom_hooks.setdefault(name, load_label_encoder_strict)

    def collect_files(self, default_source=None, **kwargs):
        """Resolves bare file names against ``default_source``, then
        collects as the parent class (see there for the arguments)."""
        if default_source is not None:
            for name, path in list(self.paths.items()):
                if isinstance(path, str) and "/" not in path:
                    self.paths[name] = _join_source(default_source, path)
        return super().collect_files(default_source=default_source, **kwargs)


def _join_source(source, filename):
    """``source`` (path, hub id or FetchSource) + ``/filename``."""
    if isinstance(source, FetchSource):
        fetch_from, root = source
        return FetchSource(fetch_from, f"{os.fspath(root)}/{filename}")
    return f"{os.fspath(source)}/{filename}"


def sized_label_encoder(n_classes):
    """An empty ``CategoricalEncoder`` that checks it holds ``n_classes``.

    The model folder's encoder is filled from label_encoder.txt; the
    expected size catches a label file that does not match the head.

    Arguments
    ---------
    n_classes : int
        Number of classes of the head.

    Returns
    -------
    CategoricalEncoder

    Example
    -------
    >>> encoder = sized_label_encoder(2)
    >>> encoder.update_from_iterable(["a", "b"])
    >>> encoder.decode_ndim([1])
    ['b']
    """
    encoder = CategoricalEncoder()
    encoder.expect_len(int(n_classes))
    return encoder


def check_out_dir(out_dir, overwrite=False):
    """Refuses an output path that is a file, or an existing non-empty
    folder unless ``overwrite`` (writers call it before any work).

    Arguments
    ---------
    out_dir : str or os.PathLike
        The model folder to write.
    overwrite : bool
        Whether the model files of an existing folder may be replaced.

    Example
    -------
    >>> import tempfile
    >>> check_out_dir(os.path.join(tempfile.mkdtemp(), "new"))
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(
            f"{out_dir!r} exists and is not a folder: choose another output "
            "folder."
        )
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(
            f"Model folder {out_dir!r} already exists and is not empty: "
            "choose another folder, or pass overwrite=True (--overwrite on "
            "the command line) to replace its model files."
        )


def export_model_folder(
    out_dir,
    embedding_model,
    classifier,
    labels,
    frontend_kwargs,
    norm_stats,
    multi_label,
    overwrite=False,
    extra=None,
    extra_modules=None,
    extra_settings=None,
):
    """Writes a model folder that ``EncoderClassifier.from_hparams`` loads.

    Arguments
    ---------
    out_dir : str or os.PathLike
        The folder to write. An existing non-empty folder is refused unless
        ``overwrite``; with ``overwrite`` only the model files are replaced.
    embedding_model : torch.nn.Module
        The AST lobe (:class:`speechbrain_ast.model.lobe.AST`); rebuilt from its
        constructor arguments (see
        :func:`~speechbrain_ast.inference.hyperparams.module_config`).
    classifier : torch.nn.Module
        The head (:class:`speechbrain_ast.model.head.ASTHead`).
    labels : sequence of str
        Class names, index order; as many as the head has outputs, unique.
    frontend_kwargs : dict
        Keyword arguments of :class:`speechbrain_ast.features.fbank.KaldiFbank`
        (``target_length=None`` keeps each clip's native length).
    norm_stats : tuple of float
        ``(mean, std)`` of :class:`speechbrain_ast.features.FixedNormalization`.
    multi_label : bool
        True for sigmoid scores (AudioSet), False for softmax.
    overwrite : bool
        Replace the model files of an existing folder.
    extra : dict, optional
        Plain values (str, numbers, bools, lists) recorded under
        ``export_info`` in hyperparams.yaml, e.g. the source checkpoint.
    extra_modules : dict, optional
        Further modules by name (each with a ``config`` dict, see
        :func:`~speechbrain_ast.inference.hyperparams.module_config`),
        written to ``<name>.ckpt`` and loaded into ``mods`` with the lobe
        and head. Checkpoints of an earlier export's modules that this one
        does not write are removed.
    extra_settings : dict, optional
        Further plain values at the top of hyperparams.yaml, read back as
        the loaded model's ``hparams.<name>``.

    Returns
    -------
    str
        The folder.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=2)
    >>> head = ASTHead(64, 3)
    >>> folder = export_model_folder(
    ...     os.path.join(tempfile.mkdtemp(), "model"),
    ...     lobe,
    ...     head,
    ...     ["dog", "cat", "bird"],
    ...     {"target_length": 128},
    ...     (-4.27, 4.57),
    ...     multi_label=True,
    ... )
    >>> sorted(os.listdir(folder)) == sorted(MODEL_FILES)
    True
    """
    out_dir = os.fspath(out_dir)
    labels = [str(label) for label in labels]
    module_config(embedding_model)  # refuses a module without a config
    n_classes = module_config(classifier).get("n_classes")
    if n_classes is not None and len(labels) != n_classes:
        raise ValueError(
            f"{len(labels)} labels given for a classifier with {n_classes} "
            "outputs: pass one label per output, in index order."
        )
    # CategoricalEncoder's text format splits each line on " => "
    unstorable = [lab for lab in labels if " => " in lab]
    if unstorable:
        raise ValueError(
            f"Labels {unstorable[:5]} contain ' => ', which SpeechBrain's "
            "label_encoder.txt cannot store (it separates label and index): "
            "rename them."
        )
    duplicates = sorted({lab for lab in labels if labels.count(lab) > 1})
    if duplicates:
        raise ValueError(
            f"Labels must be unique, these repeat: {duplicates[:5]}. Rename "
            "them (e.g. append the class index)."
        )
    frontend_kwargs = dict(frontend_kwargs)
    settings = {
        "sample_rate": int(frontend_kwargs.pop("sample_rate", 16000)),
        "multi_label": bool(multi_label),
        "native_length": frontend_kwargs.get("target_length") is None,
        "n_classes": len(labels),
        "norm_mean": float(norm_stats[0]),
        "norm_std": float(norm_stats[1]),
    }
    yaml_text = hyperparams_text(
        settings,
        frontend_kwargs,
        embedding_model,
        classifier,
        dict(extra or {}),
        extra_modules,
        extra_settings,
    )

    check_out_dir(out_dir, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    modules = {
        "embedding_model": embedding_model,
        "classifier": classifier,
        **(extra_modules or {}),
    }
    writers = {
        module_file(name): partial(torch.save, _plain_state(module))
        for name, module in modules.items()
    }
    writers["label_encoder.txt"] = encoder.save
    writers["hyperparams.yaml"] = partial(_write_text, yaml_text)
    for name in os.listdir(out_dir):  # an earlier export's further modules
        if name.endswith(".ckpt") and name not in writers:
            os.remove(os.path.join(out_dir, name))
    for name, write in writers.items():
        # write next to the target, then rename: no half-written model files
        tmp = os.path.join(out_dir, name + ".tmp")
        write(tmp)
        os.replace(tmp, os.path.join(out_dir, name))
    return out_dir


def export_trained_model(
    out_dir,
    modules,
    normalization,
    labels,
    multi_label,
    frontend=None,
    extra_modules=None,
    extra_settings=None,
):
    """The model folder of a trained recipe, written by the main process
    with :func:`export_model_folder` (the model files of an earlier export
    replaced): the frontend pads or cuts to the lobe's ``input_tdim``, the
    statistics are the training's normalisation's.

    Arguments
    ---------
    out_dir : str or os.PathLike
        The folder to write.
    modules : mapping of str to torch.nn.Module
        With the ``embedding_model`` (the AST lobe) and the ``classifier``
        (e.g. the recipe yaml's ``modules``).
    normalization : speechbrain_ast.features.FixedNormalization
        The features' normalisation the model was trained with.
    labels : sequence of str
        Class names, index order.
    multi_label : bool
        True for sigmoid scores, False for softmax.
    frontend : speechbrain_ast.features.KaldiFbank, optional
        The training's frontend: the folder reads audio at its
        ``sample_rate`` (default 16 kHz).
    extra_modules, extra_settings : dict, optional
        Further modules and top-level values of the folder (see
        :func:`export_model_folder`).

    Returns
    -------
    str or None
        The folder; None on the other processes.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.features import FixedNormalization
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=2)
    >>> modules = {"embedding_model": lobe, "classifier": ASTHead(64, 2)}
    >>> folder = export_trained_model(
    ...     os.path.join(tempfile.mkdtemp(), "model"),
    ...     modules,
    ...     FixedNormalization(-4.27, 4.57),
    ...     ["dog", "cat"],
    ...     multi_label=False,
    ... )
    >>> sorted(os.listdir(folder)) == sorted(MODEL_FILES)
    True
    """
    if not if_main_process():
        return None
    embedding_model = modules["embedding_model"]
    folder = export_model_folder(
        out_dir,
        embedding_model,
        modules["classifier"],
        labels,
        frontend_kwargs={
            "target_length": embedding_model.config["input_tdim"],
            "sample_rate": getattr(frontend, "sample_rate", 16000),
        },
        norm_stats=(normalization.mean, normalization.std),
        multi_label=multi_label,
        overwrite=True,
        extra_modules=extra_modules,
        extra_settings=extra_settings,
    )
    logger.info("Model exported to %s", folder)
    return folder


def _write_text(text, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _plain_state(module):
    """A CPU state dict of plain tensors (loads with weights_only=True)."""
    return {
        key: val.detach().cpu().clone()
        for key, val in module.state_dict().items()
    }
