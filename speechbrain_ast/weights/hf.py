"""HuggingFace transformers AST folders (``config.json`` +
``model.safetensors`` or ``pytorch_model.bin``) read into the lobe's and
head's terms: :func:`read_hf_checkpoint`, with the key mapping in the single
table ``HF_KEY_MAP`` (:func:`hf_state_to_ast`). Nothing is unpickled: the
weights are read with safetensors or weights only.

Authors
 * speechbrain-ast developers
"""

import json
import os

import torch

from speechbrain_ast.features import DATASET_STATS
from speechbrain_ast.weights.common import ImportedAST, load_weights

__all__ = [
    "HF_CONFIG_MAP",
    "HF_KEY_MAP",
    "hf_state_to_ast",
    "read_hf_checkpoint",
]

# The key mapping between the lobe / head and HuggingFace's files (the names
# on disk, which transformers 5 still writes). One row per tensor or module:
# (part, our name, HF name). A tuple of HF names is concatenated along dim 0
# (query, key, value -> qkv). "{n}" is the block index; module rows hold
# "weight" and "bias". An export inverts the table (split qkv in thirds).
HF_LOBE_PREFIX = "audio_spectrogram_transformer."
HF_KEY_MAP = (
    ("lobe", "cls_token", "embeddings.cls_token"),
    ("lobe", "dist_token", "embeddings.distillation_token"),
    ("lobe", "pos_embed", "embeddings.position_embeddings"),
    ("lobe", "patch_embed.proj", "embeddings.patch_embeddings.projection"),
    ("lobe", "blocks.{n}.norm1", "encoder.layer.{n}.layernorm_before"),
    (
        "lobe",
        "blocks.{n}.attn.qkv",
        (
            "encoder.layer.{n}.attention.attention.query",
            "encoder.layer.{n}.attention.attention.key",
            "encoder.layer.{n}.attention.attention.value",
        ),
    ),
    (
        "lobe",
        "blocks.{n}.attn.proj",
        "encoder.layer.{n}.attention.output.dense",
    ),
    ("lobe", "blocks.{n}.norm2", "encoder.layer.{n}.layernorm_after"),
    ("lobe", "blocks.{n}.mlp.fc1", "encoder.layer.{n}.intermediate.dense"),
    ("lobe", "blocks.{n}.mlp.fc2", "encoder.layer.{n}.output.dense"),
    ("lobe", "norm", "layernorm"),
    ("head", "0", "classifier.layernorm"),
    ("head", "1", "classifier.dense"),
)
_TOKEN_KEYS = ("cls_token", "dist_token", "pos_embed")

# The AST arguments in config.json: (our name, HF name, ASTConfig's default
# for a file that leaves it out; transformers is not a dependency, so its
# defaults are written here and a test compares them with ASTConfig's).
# intermediate_size gives mlp_ratio, hidden_act must be exact GELU.
HF_CONFIG_MAP = (
    ("input_fdim", "num_mel_bins", 128),
    ("input_tdim", "max_length", 1024),
    ("patch_size", "patch_size", 16),
    ("fstride", "frequency_stride", 10),
    ("tstride", "time_stride", 10),
    ("embed_dim", "hidden_size", 768),
    ("depth", "num_hidden_layers", 12),
    ("num_heads", "num_attention_heads", 12),
    ("qkv_bias", "qkv_bias", True),
    ("drop_rate", "hidden_dropout_prob", 0.0),
    ("attn_drop_rate", "attention_probs_dropout_prob", 0.0),
    ("norm_eps", "layer_norm_eps", 1e-12),
    (None, "intermediate_size", 3072),
    (None, "hidden_act", "gelu"),
)


def _read_json(path):
    """A JSON file's content; a damaged file is named in the error."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{path!r} is not valid JSON ({error}): the download is "
            "incomplete or the file was edited; download it again."
        ) from error


def _load_safetensors(path):
    """``safetensors.torch.load_file`` with the damaged file named."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except SafetensorError as error:
        raise ValueError(
            f"{path!r} is not a readable safetensors file ({error}): it is "
            "damaged or cut short; download it again."
        ) from error


def _read_hf_weights(directory):
    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    binary = os.path.join(directory, "pytorch_model.bin")
    if os.path.isfile(single) or os.path.isfile(index):
        if os.path.isfile(single):
            return _load_safetensors(single)
        weight_map = _read_json(index).get("weight_map", {})
        state = {}
        for shard in sorted(set(weight_map.values())):
            state.update(_load_safetensors(os.path.join(directory, shard)))
        return state
    if os.path.isfile(binary):
        return load_weights(binary)
    raise FileNotFoundError(
        f"{directory!r} has no model.safetensors or pytorch_model.bin; pass "
        "a folder written by save_pretrained or downloaded from the hub "
        "(e.g. MIT/ast-finetuned-audioset-10-10-0.4593)."
    )


def _expand(pattern, depth):
    """All (n, name) of a ``HF_KEY_MAP`` pattern."""
    if "{n}" not in pattern:
        return [(None, pattern)]
    return [(n, pattern.format(n=n)) for n in range(depth)]


def hf_state_to_ast(hf_state, depth):
    """Maps a HuggingFace AST state dict (file names) with ``HF_KEY_MAP``.

    Arguments
    ---------
    hf_state : dict
        Tensors as in ``model.safetensors`` of ``ASTForAudioClassification``
        (or of ``ASTModel``, without the ``audio_spectrogram_transformer.``
        prefix and without a classifier).
    depth : int
        Number of layers.

    Returns
    -------
    lobe_state : dict
    head_state : dict or None

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> hf = {"embeddings.cls_token": lobe.cls_token.detach()}
    >>> hf_state_to_ast(hf, depth=1)[0]["cls_token"].shape
    torch.Size([1, 1, 64])
    """
    has_prefix = any(k.startswith(HF_LOBE_PREFIX) for k in hf_state)
    remaining = dict(hf_state)
    parts = {"lobe": {}, "head": {}}
    for part, ours, theirs in HF_KEY_MAP:
        prefix = HF_LOBE_PREFIX if part == "lobe" and has_prefix else ""
        suffixes = [""] if ours in _TOKEN_KEYS else [".weight", ".bias"]
        for n, our_name in _expand(ours, depth):
            names = theirs if isinstance(theirs, tuple) else (theirs,)
            for suffix in suffixes:
                keys = [prefix + name.format(n=n) + suffix for name in names]
                present = [k in remaining for k in keys]
                if not any(present):
                    continue  # absent bias or head: checked when loading
                if not all(present):
                    missing = [k for k, p in zip(keys, present) if not p]
                    raise ValueError(f"HF checkpoint lacks {missing}.")
                tensors = [remaining.pop(k) for k in keys]
                value = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
                parts[part][our_name + suffix] = value
    if remaining:
        raise ValueError(
            "HF checkpoint has keys that AST does not know: "
            f"{sorted(remaining)[:5]}; is it an audio-spectrogram-transformer "
            "checkpoint with this many layers?"
        )
    return parts["lobe"], parts["head"] or None


def read_hf_checkpoint(directory):
    """Reads a HuggingFace transformers AST folder.

    Reads ``config.json`` and ``model.safetensors`` (or
    ``pytorch_model.bin``, weights only) and, when present,
    ``preprocessor_config.json`` for the normalisation statistics (else
    AudioSet's). The key names are mapped with ``HF_KEY_MAP``; the
    configuration's ``layer_norm_eps`` is used for the backbone and the head
    so that logits equal HuggingFace's.

    Arguments
    ---------
    directory : str or path-like
        Folder from ``save_pretrained`` or a hub snapshot (e.g.
        ``MIT/ast-finetuned-audioset-10-10-0.4593``).

    Returns
    -------
    ImportedAST

    Example
    -------
    >>> import tempfile
    >>> from transformers import ASTConfig, ASTForAudioClassification
    >>> config = ASTConfig(
    ...     hidden_size=64,
    ...     num_hidden_layers=1,
    ...     num_attention_heads=1,
    ...     intermediate_size=128,
    ...     max_length=128,
    ...     num_labels=3,
    ... )
    >>> folder = tempfile.mkdtemp()
    >>> ASTForAudioClassification(config).save_pretrained(folder)
    >>> imported = read_hf_checkpoint(folder)
    >>> imported.config["embed_dim"], imported.n_classes
    (64, 3)
    """
    directory = os.fspath(directory)
    config_path = os.path.join(directory, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"{directory!r} has no config.json; pass a HuggingFace AST "
            "folder (save_pretrained output or a hub snapshot)."
        )
    hf = {theirs: default for _, theirs, default in HF_CONFIG_MAP}
    hf.update(_read_json(config_path))
    if hf["hidden_act"] != "gelu":
        raise ValueError(
            f"{config_path}: hidden_act={hf['hidden_act']!r}; the AST lobe "
            "uses exact GELU ('gelu') only."
        )
    config = {ours: hf[theirs] for ours, theirs, _ in HF_CONFIG_MAP if ours}
    config["mlp_ratio"] = hf["intermediate_size"] / config["embed_dim"]
    lobe_state, head_state = hf_state_to_ast(
        _read_hf_weights(directory), config["depth"]
    )
    labels = None
    id2label = hf.get("id2label")
    if head_state is not None and id2label:
        labels = [id2label[k] for k in sorted(id2label, key=int)]
        n_classes = head_state["1.weight"].shape[0]
        if len(labels) != n_classes:
            raise ValueError(
                f"{config_path}: id2label names {len(labels)} classes but "
                f"the classifier has {n_classes}."
            )
    norm_stats = DATASET_STATS["audioset"]
    pre_path = os.path.join(directory, "preprocessor_config.json")
    if os.path.isfile(pre_path):
        pre = _read_json(pre_path)
        if "mean" in pre and "std" in pre:
            norm_stats = (float(pre["mean"]), float(pre["std"]))
        # the extractor's mel bins feed the model's patch grid: they agree
        # in every published folder; otherwise the folder is inconsistent
        pre_bins = pre.get("num_mel_bins")
        if pre_bins is not None and pre_bins != config["input_fdim"]:
            raise ValueError(
                f"{config_path} says num_mel_bins={config['input_fdim']} but "
                f"{pre_path} says num_mel_bins={pre_bins}: the model and its "
                "feature extractor disagree, so this folder was edited or "
                "mixed from two checkpoints. Make both files give the number "
                "of mel bins the model was trained with."
            )
    return ImportedAST(
        config=config,
        lobe_state=lobe_state,
        head_state=head_state,
        labels=labels,
        target_length=config["input_tdim"],
        norm_stats=norm_stats,
        head_norm_eps=config["norm_eps"],
        source=directory,
        problem_type=hf.get("problem_type"),
    )
