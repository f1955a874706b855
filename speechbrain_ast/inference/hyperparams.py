"""The text of a model folder's ``hyperparams.yaml``: the objects
SpeechBrain builds from it (frontend, normalisation, lobe, head, label
encoder, pretrainer), the modules' constructor arguments
(:func:`module_config`) and plain values as PyYAML writes them.
:func:`~speechbrain_ast.inference.model_folder.export_model_folder` writes
it with the folder's other files.

Authors
 * speechbrain-ast developers
"""

import math

import torch
import yaml

__all__ = ["event_settings", "hyperparams_text", "module_config"]


def _plain(value):
    """``value`` as plain YAML data: tensors and tuples as lists; anything
    hyperparams.yaml could not hold as a plain value is refused."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Cannot export the non-finite value {value}.")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"Cannot write {value!r} ({type(value).__name__}) to "
        "hyperparams.yaml: use None, bool, int, float, str or lists of them."
    )


def _yaml_mapping(mapping, indent=0):
    """``key: value`` lines of a flat mapping as PyYAML writes it (block
    style, quoted where YAML needs it), indented."""
    if not mapping:
        return []
    text = yaml.safe_dump(
        {key: _plain(val) for key, val in mapping.items()},
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=math.inf,
    )
    return [" " * indent + line for line in text.splitlines()]


def module_config(module):
    """The constructor arguments that rebuild ``module`` (without weights):
    its ``config`` dict (``AST`` and ``ASTHead`` record theirs), as plain
    values for hyperparams.yaml.

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
    >>> from speechbrain_ast.model import ASTHead
    >>> module_config(ASTHead(64, 3))
    {'embed_dim': 64, 'n_classes': 3, 'norm_eps': 1e-05}
    """
    config = getattr(module, "config", None)
    if not isinstance(config, dict):
        raise ValueError(
            f"Cannot recover the constructor arguments of "
            f"{type(module).__name__}: export an AST / ASTHead, or give the "
            "module a `config` dict attribute (its keyword arguments)."
        )
    return {key: _plain(val) for key, val in config.items()}


def event_settings(thresholds, median_window, n_classes):
    """The event detection settings a model folder records, checked:
    ``thresholds`` and ``median_window``, each only where given.

    Arguments
    ---------
    thresholds : float or sequence of float or None
        One threshold in [0, 1] or one per class.
    median_window : int or None
        Odd median filter length, in patch columns.
    n_classes : int
        The folder's number of classes.

    Returns
    -------
    dict
        Plain values for the yaml's top level.

    Example
    -------
    >>> event_settings([0.5, 0.25], 7, n_classes=2)
    {'thresholds': [0.5, 0.25], 'median_window': 7}
    >>> event_settings(None, None, n_classes=2)
    {}
    """
    settings = {}
    if thresholds is not None:
        values = torch.as_tensor(thresholds, dtype=torch.float64)
        in_range = bool(((values >= 0) & (values <= 1)).all())
        count = values.numel() in (1, n_classes)
        if values.dim() > 1 or not count or not in_range:
            raise ValueError(
                f"thresholds must be one number or {n_classes} (one per "
                f"class), each in [0, 1]; got {thresholds!r}."
            )
        settings["thresholds"] = values.tolist()
    if median_window is not None:
        if int(median_window) != median_window or median_window % 2 != 1:
            raise ValueError(
                "median_window must be an odd number of columns >= 1; got "
                f"{median_window!r}."
            )
        settings["median_window"] = int(median_window)
    return settings


def _class_path(module):
    """``package.module.Class`` for a YAML ``!new:`` tag."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def hyperparams_text(
    settings,
    frontend_kwargs,
    embedding_model,
    classifier,
    extra=None,
    frame_head=None,
):
    """The text of a model folder's hyperparams.yaml.

    Arguments
    ---------
    settings : dict
        The top-level values its objects refer to: ``sample_rate``,
        ``multi_label``, ``native_length``, ``n_classes``, ``norm_mean``
        and ``norm_std``; optionally the event detection settings
        ``thresholds`` and ``median_window``.
    frontend_kwargs : dict
        Keyword arguments of :class:`~speechbrain_ast.features.KaldiFbank`
        other than ``sample_rate``.
    embedding_model, classifier : torch.nn.Module
        Written as their class with their :func:`module_config`.
    extra : dict, optional
        Plain values recorded under ``export_info``.
    frame_head : torch.nn.Module, optional
        A frame head (:class:`speechbrain_ast.events.FrameHead`), written
        as a third module loaded from ``frame_head.ckpt``.

    Returns
    -------
    str

    Example
    -------
    >>> from speechbrain_ast.model import AST, ASTHead
    >>> text = hyperparams_text(
    ...     {"sample_rate": 16000, "n_classes": 3},
    ...     {"target_length": 128},
    ...     AST(input_tdim=128, embed_dim=8, depth=1, num_heads=2),
    ...     ASTHead(8, 3),
    ... )
    >>> for line in text.splitlines():
    ...     if "!new:speechbrain_ast.model" in line:
    ...         print(line)
    embedding_model: !new:speechbrain_ast.model.lobe.AST
    classifier: !new:speechbrain_ast.model.head.ASTHead
    """
    lobe = (_class_path(embedding_model), module_config(embedding_model))
    head = (_class_path(classifier), module_config(classifier))
    frames = []
    if frame_head is not None:
        frames = [
            "# frame head: sound event detection (speechbrain_ast.events)",
            f"frame_head: !new:{_class_path(frame_head)}",
            *_yaml_mapping(module_config(frame_head), 4),
            "",
        ]
    # the lines naming the frame head in modules and the pretrainer
    with_frames = frame_head is not None
    module_line = ["    frame_head: !ref <frame_head>"] * with_frames
    loadable_line = ["        frame_head: !ref <frame_head>"] * with_frames
    path_line = ["        frame_head: frame_head.ckpt"] * with_frames
    lines = [
        "# AST model folder written by speechbrain_ast.inference.",
        "# Load with speechbrain_ast.inference.ASTAudioClassifier.from_hparams",
        "# or speechbrain.inference.classifiers.EncoderClassifier.from_hparams",
        "# (source=<this folder>, savedir=<any folder>).",
        "# SECURITY: loading this file builds the Python objects it names",
        "# (!new: tags can run code): load only model folders you trust.",
        "",
        "# native_length true: each clip keeps its own length (no padding to",
        "# a fixed number of frames); see docs/inference.md",
        *_yaml_mapping(settings),
        *(["export_info:", *_yaml_mapping(extra, 4)] if extra else []),
        "",
        "# reads any rate / channel count soundfile reads for classify_file",
        "audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer",
        "    sample_rate: !ref <sample_rate>",
        "",
        "compute_features: !new:speechbrain_ast.features.KaldiFbank",
        *_yaml_mapping(frontend_kwargs, 4),
        "    sample_rate: !ref <sample_rate>",
        "",
        "mean_var_norm: !new:speechbrain_ast.features.FixedNormalization",
        "    mean: !ref <norm_mean>",
        "    std: !ref <norm_std>",
        "",
        f"embedding_model: !new:{lobe[0]}",
        *_yaml_mapping(lobe[1], 4),
        "",
        f"classifier: !new:{head[0]}",
        *_yaml_mapping(head[1], 4),
        "",
        *frames,
        "label_encoder: !apply:speechbrain_ast.inference.sized_label_encoder",
        "    - !ref <n_classes>",
        "",
        "modules:",
        "    compute_features: !ref <compute_features>",
        "    mean_var_norm: !ref <mean_var_norm>",
        "    embedding_model: !ref <embedding_model>",
        "    classifier: !ref <classifier>",
        *module_line,
        "",
        "# bare file names are looked up in the model folder",
        "pretrainer: !new:speechbrain_ast.inference.ModelFolderPretrainer",
        "    loadables:",
        "        embedding_model: !ref <embedding_model>",
        "        classifier: !ref <classifier>",
        "        label_encoder: !ref <label_encoder>",
        *loadable_line,
        "    paths:",
        "        embedding_model: embedding_model.ckpt",
        "        classifier: classifier.ckpt",
        "        label_encoder: label_encoder.txt",
        *path_line,
        "",
    ]
    return "\n".join(lines)
