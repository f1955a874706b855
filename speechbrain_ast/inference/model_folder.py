"""A trained or imported AST -> a model folder that SpeechBrain loads.

The folder holds ``hyperparams.yaml``, ``embedding_model.ckpt``,
``classifier.ckpt`` (plain state dicts) and ``label_encoder.txt``
(:class:`~speechbrain.dataio.encoder.CategoricalEncoder`'s own format), so
that ``EncoderClassifier.from_hparams(source=folder, savedir=...)`` and
:class:`speechbrain_ast.inference.classifier.ASTAudioClassifier` load it offline.

Authors
 * speechbrain-ast developers
"""

import json
import math
import os

import torch

from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.fetching import FetchSource
from speechbrain.utils.parameter_transfer import Pretrainer

__all__ = [
    "ModelFolderPretrainer",
    "export_model_folder",
    "module_config",
    "sized_label_encoder",
    "load_state_strict",
    "load_label_encoder_strict",
    "MODEL_FILES",
]

#: The files a model folder consists of.
MODEL_FILES = (
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    "label_encoder.txt",
)


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
    from speechbrain_ast.weights.pretrained import load_weights

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


def _yaml_scalar(value):
    """A plain Python value as a YAML scalar or flow sequence."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"Cannot export the non-finite value {value}.")
        text = repr(value)
        # YAML needs a dot in the mantissa to read "1e-05" as a float
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return mantissa + ("e" + exponent if exponent else "")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    raise TypeError(
        f"Cannot write {value!r} ({type(value).__name__}) to "
        "hyperparams.yaml: use None, bool, int, float, str or lists of them."
    )


def _yaml_mapping(mapping, indent):
    """``key: value`` lines for a flat mapping, indented."""
    pad = " " * indent
    return [f"{pad}{key}: {_yaml_scalar(val)}" for key, val in mapping.items()]


def _torch_value(value):
    """Tensors and tuples from a module's config into plain values."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def module_config(module):
    """The constructor arguments that rebuild ``module`` (without weights).

    Uses the module's ``config`` dict when it has one; otherwise reads the
    structure of an :class:`~speechbrain_ast.model.lobe.AST` (width, depth,
    heads, strides, epsilons) or :class:`~speechbrain_ast.model.lobe.ASTHead`.
    Dropout and stochastic-depth rates are inference-irrelevant and
    written as 0.

    Arguments
    ---------
    module : torch.nn.Module
        An ``AST``, an ``ASTHead`` or a module with a ``config`` dict.

    Returns
    -------
    dict
        Keyword arguments for ``type(module)``.

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST, ASTHead
    >>> module_config(ASTHead(64, 3))
    {'embed_dim': 64, 'n_classes': 3, 'norm_eps': 1e-05}
    >>> config = module_config(
    ...     AST(
    ...         input_tdim=128,
    ...         embed_dim=64,
    ...         depth=2,
    ...         num_heads=2,
    ...         norm_eps=1e-12,
    ...     )
    ... )
    >>> config["depth"], config["num_heads"], config["norm_eps"]
    (2, 2, 1e-12)
    """
    from speechbrain_ast.model.lobe import AST, ASTHead

    config = getattr(module, "config", None)
    if isinstance(config, dict):
        return {key: _torch_value(val) for key, val in config.items()}
    if isinstance(module, AST):
        block = module.blocks[0] if len(module.blocks) else None
        return {
            "input_fdim": int(module.input_fdim),
            "input_tdim": int(module.input_tdim),
            "patch_size": list(module.patch_size),
            "fstride": int(module.fstride),
            "tstride": int(module.tstride),
            "embed_dim": int(module.embed_dim),
            "depth": len(module.blocks),
            "num_heads": int(block.attn.num_heads) if block else 1,
            "mlp_ratio": (
                block.mlp.fc1.out_features / module.embed_dim if block else 4.0
            ),
            "qkv_bias": bool(block and block.attn.qkv.bias is not None),
            "norm_eps": float(module.norm.eps),
        }
    if isinstance(module, ASTHead):
        return {
            "embed_dim": int(module[0].normalized_shape[0]),
            "n_classes": int(module[1].out_features),
            "norm_eps": float(module[0].eps),
        }
    raise ValueError(
        f"Cannot recover the constructor arguments of "
        f"{type(module).__name__}: export an AST / ASTHead, or give the "
        "module a `config` dict attribute (its keyword arguments)."
    )


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


def _check_out_dir(out_dir, overwrite):
    """Refuses an existing non-empty folder unless ``overwrite``."""
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
    os.makedirs(out_dir, exist_ok=True)


def _class_path(module):
    """``package.module.Class`` for a YAML ``!new:`` tag."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


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
):
    """Writes a model folder that ``EncoderClassifier.from_hparams`` loads.

    Arguments
    ---------
    out_dir : str or os.PathLike
        The folder to write. An existing non-empty folder is refused unless
        ``overwrite``; with ``overwrite`` only the model files are replaced.
    embedding_model : torch.nn.Module
        The AST lobe (:class:`speechbrain_ast.model.lobe.AST`); rebuilt from its
        constructor arguments (see :func:`module_config`).
    classifier : torch.nn.Module
        The head (:class:`speechbrain_ast.model.lobe.ASTHead`).
    labels : sequence of str
        Class names, index order; as many as the head has outputs, unique.
    frontend_kwargs : dict
        Keyword arguments of :class:`speechbrain_ast.features.fbank.KaldiFbank`
        (``target_length=None`` keeps each clip's native length).
    norm_stats : tuple of float
        ``(mean, std)`` of :class:`speechbrain_ast.features.fbank.FixedNormalization`.
    multi_label : bool
        True for sigmoid scores (AudioSet), False for softmax.
    overwrite : bool
        Replace the model files of an existing folder.
    extra : dict, optional
        Plain values (str, numbers, bools, lists) recorded under
        ``export_info`` in hyperparams.yaml, e.g. the source checkpoint.

    Returns
    -------
    str
        The folder.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_ast.model.lobe import AST, ASTHead
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
    n_classes = _num_outputs(classifier)
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
    mean, std = (float(v) for v in norm_stats)
    frontend_kwargs = dict(frontend_kwargs)
    sample_rate = int(frontend_kwargs.get("sample_rate", 16000))
    frontend_kwargs["sample_rate"] = sample_rate
    native_length = frontend_kwargs.get("target_length") is None
    lobe_config = module_config(embedding_model)
    head_config = module_config(classifier)

    _check_out_dir(out_dir, overwrite)
    yaml_text = _hyperparams_text(
        embedding_model=embedding_model,
        classifier=classifier,
        lobe_config=lobe_config,
        head_config=head_config,
        frontend_kwargs=frontend_kwargs,
        mean=mean,
        std=std,
        sample_rate=sample_rate,
        multi_label=bool(multi_label),
        native_length=native_length,
        n_classes=len(labels),
        extra=dict(extra or {}),
    )
    # write next to the target, then rename: no half-written model files
    state = {
        "embedding_model.ckpt": _plain_state(embedding_model),
        "classifier.ckpt": _plain_state(classifier),
    }
    for name, tensors in state.items():
        tmp = os.path.join(out_dir, name + ".tmp")
        torch.save(tensors, tmp)
        os.replace(tmp, os.path.join(out_dir, name))
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    tmp = os.path.join(out_dir, "label_encoder.txt.tmp")
    encoder.save(tmp)
    os.replace(tmp, os.path.join(out_dir, "label_encoder.txt"))
    tmp = os.path.join(out_dir, "hyperparams.yaml.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(yaml_text)
    os.replace(tmp, os.path.join(out_dir, "hyperparams.yaml"))
    return out_dir


def _plain_state(module):
    """A CPU state dict of plain tensors (loads with weights_only=True)."""
    return {
        key: val.detach().cpu().clone()
        for key, val in module.state_dict().items()
    }


def _num_outputs(classifier):
    """Output width of the classifier's last Linear layer, or None."""
    linears = [
        m for m in classifier.modules() if isinstance(m, torch.nn.Linear)
    ]
    return linears[-1].out_features if linears else None


def _hyperparams_text(
    embedding_model,
    classifier,
    lobe_config,
    head_config,
    frontend_kwargs,
    mean,
    std,
    sample_rate,
    multi_label,
    native_length,
    n_classes,
    extra,
):
    """The text of hyperparams.yaml."""
    lines = [
        "# AST model folder written by speechbrain_ast.inference.",
        "# Load with speechbrain_ast.inference.ASTAudioClassifier.from_hparams",
        "# or speechbrain.inference.classifiers.EncoderClassifier.from_hparams",
        "# (source=<this folder>, savedir=<any folder>).",
        "# SECURITY: loading this file builds the Python objects it names",
        "# (!new: tags can run code): load only model folders you trust.",
        "",
        f"sample_rate: {sample_rate}",
        f"multi_label: {_yaml_scalar(multi_label)}",
        "# true: each clip keeps its own length (no padding to a fixed",
        "# number of frames); see docs/inference.md",
        f"native_length: {_yaml_scalar(native_length)}",
        f"n_classes: {n_classes}",
        f"norm_mean: {_yaml_scalar(mean)}",
        f"norm_std: {_yaml_scalar(std)}",
        *(["export_info:", *_yaml_mapping(extra, 4)] if extra else []),
        "",
        "# reads any rate / channel count soundfile reads for classify_file",
        "audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer",
        "    sample_rate: !ref <sample_rate>",
        "",
        "compute_features: !new:speechbrain_ast.features.KaldiFbank",
        *_yaml_mapping(
            {k: v for k, v in frontend_kwargs.items() if k != "sample_rate"},
            4,
        ),
        "    sample_rate: !ref <sample_rate>",
        "",
        "mean_var_norm: !new:speechbrain_ast.features.FixedNormalization",
        "    mean: !ref <norm_mean>",
        "    std: !ref <norm_std>",
        "",
        f"embedding_model: !new:{_class_path(embedding_model)}",
        *_yaml_mapping(lobe_config, 4),
        "",
        f"classifier: !new:{_class_path(classifier)}",
        *_yaml_mapping(head_config, 4),
        "",
        "label_encoder: !apply:speechbrain_ast.inference.sized_label_encoder",
        "    - !ref <n_classes>",
        "",
        "modules:",
        "    compute_features: !ref <compute_features>",
        "    mean_var_norm: !ref <mean_var_norm>",
        "    embedding_model: !ref <embedding_model>",
        "    classifier: !ref <classifier>",
        "",
        "# bare file names are looked up in the model folder",
        "pretrainer: !new:speechbrain_ast.inference.ModelFolderPretrainer",
        "    loadables:",
        "        embedding_model: !ref <embedding_model>",
        "        classifier: !ref <classifier>",
        "        label_encoder: !ref <label_encoder>",
        "    paths:",
        "        embedding_model: embedding_model.ckpt",
        "        classifier: classifier.ckpt",
        "        label_encoder: label_encoder.txt",
        "",
    ]
    return "\n".join(lines)
