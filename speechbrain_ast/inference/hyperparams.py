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
import re

import torch
import yaml

__all__ = ["hyperparams_text", "module_config", "module_file"]


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


def _class_path(module):
    """``package.module.Class`` for a YAML ``!new:`` tag."""
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def module_file(name):
    """The file that holds the weights of the folder's module ``name``.

    Arguments
    ---------
    name : str
        The module's name in the yaml's ``modules``.

    Returns
    -------
    str

    Example
    -------
    >>> module_file("classifier")
    'classifier.ckpt'
    """
    return f"{name}.ckpt"


def _check_names(names, text):
    """Refuses names of further modules and settings that are not
    identifiers or that ``text`` (the yaml) has twice at its top level."""
    top_level = re.findall(r"^(\w+):", text, flags=re.M)
    for name in names:
        if not (isinstance(name, str) and name.isidentifier()):
            why = "is not a Python identifier"
        elif top_level.count(name) > 1:
            why = "is already an entry of hyperparams.yaml"
        else:
            continue
        raise ValueError(
            f"The name {name!r} of a further module or setting {why}: "
            "choose another name."
        )


def hyperparams_text(
    settings,
    frontend_kwargs,
    embedding_model,
    classifier,
    extra=None,
    extra_modules=None,
    extra_settings=None,
):
    """The text of a model folder's hyperparams.yaml.

    Arguments
    ---------
    settings : dict
        The top-level values its objects refer to: ``sample_rate``,
        ``multi_label``, ``native_length``, ``n_classes``, ``norm_mean``
        and ``norm_std``.
    frontend_kwargs : dict
        Keyword arguments of :class:`~speechbrain_ast.features.KaldiFbank`
        other than ``sample_rate``.
    embedding_model, classifier : torch.nn.Module
        Written as their class with their :func:`module_config`.
    extra : dict, optional
        Plain values recorded under ``export_info``.
    extra_modules : dict, optional
        Further modules by name, each written as its class with its
        :func:`module_config`, listed in ``modules`` and loaded from its
        :func:`module_file`.
    extra_settings : dict, optional
        Further top-level plain values, written after ``settings``.

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
    ...     extra_modules={"second_head": ASTHead(8, 3)},
    ...     extra_settings={"threshold": 0.5},
    ... )
    >>> for line in text.splitlines():
    ...     if "!new:speechbrain_ast.model" in line or "threshold" in line:
    ...         print(line)
    threshold: 0.5
    embedding_model: !new:speechbrain_ast.model.lobe.AST
    classifier: !new:speechbrain_ast.model.head.ASTHead
    second_head: !new:speechbrain_ast.model.head.ASTHead
    """
    extra_modules = dict(extra_modules or {})
    extra_settings = dict(extra_settings or {})
    # the modules with weights: their definitions, references and files
    modules = [("embedding_model", embedding_model), ("classifier", classifier)]
    modules += extra_modules.items()
    definitions = []
    for name, module in modules:
        definitions += [f"{name}: !new:{_class_path(module)}"]
        definitions += [*_yaml_mapping(module_config(module), 4), ""]
    refs = [f"{name}: !ref <{name}>" for name, _ in modules]
    files = [f"{name}: {module_file(name)}" for name, _ in modules]
    lines = [
        "# AST model folder written by speechbrain_ast.inference.",
        "# Load with speechbrain.inference.classifiers.EncoderClassifier",
        "# (or a subclass, such as ASTAudioClassifier) .from_hparams",
        "# (source=<this folder>, savedir=<any folder>).",
        "# SECURITY: loading this file builds the Python objects it names",
        "# (!new: tags can run code): load only model folders you trust.",
        "",
        "# native_length true: each clip keeps its own length (no padding to",
        "# a fixed number of frames); see docs/inference.md",
        *_yaml_mapping(settings),
        *_yaml_mapping(extra_settings),
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
        *definitions,
        "label_encoder: !apply:speechbrain_ast.inference.sized_label_encoder",
        "    - !ref <n_classes>",
        "",
        "modules:",
        "    compute_features: !ref <compute_features>",
        "    mean_var_norm: !ref <mean_var_norm>",
        *[f"    {ref}" for ref in refs],
        "",
        "# bare file names are looked up in the model folder",
        "pretrainer: !new:speechbrain_ast.inference.ModelFolderPretrainer",
        "    loadables:",
        *[f"        {ref}" for ref in refs],
        "        label_encoder: !ref <label_encoder>",
        "    paths:",
        *[f"        {file}" for file in files],
        "        label_encoder: label_encoder.txt",
        "",
    ]
    text = "\n".join(lines)
    _check_names([*extra_modules, *extra_settings], text)
    return text
