"""Weight import: one reader per foreign format, side by side, each giving
an :class:`~speechbrain_ast.weights.common.ImportedAST`: ImageNet DeiT
(``deit``), the reference ``.pth`` files (``reference``), transformers'
folders (``hf``), SSAST encoders (``ssast``); the shared parts
(``common``), the lobe and head built from any of them (``build``), the
published checkpoints' class names (``labels``) and the fetching of weights
named by a hub id or a web address (``fetch``)."""

from speechbrain_ast.weights.build import (
    build_from_checkpoint,
    init_from_pretrained,
)
from speechbrain_ast.weights.common import (
    ImportedAST,
    adapt_token_pos_embed,
    load_weights,
    lobe_config,
)
from speechbrain_ast.weights.deit import deit_state_dict_for_ast, load_deit
from speechbrain_ast.weights.fetch import fetch_pretrained
from speechbrain_ast.weights.hf import (
    HF_KEY_MAP,
    hf_state_to_ast,
    read_hf_checkpoint,
)
from speechbrain_ast.weights.labels import read_labels, shipped_labels
from speechbrain_ast.weights.reference import (
    PUBLISHED_STRIDES,
    read_reference_checkpoint,
)
from speechbrain_ast.weights.ssast import (
    finetune_strides,
    is_ssast_checkpoint,
    load_ssast,
    read_ssast_checkpoint,
    save_ssast_encoder,
)

__all__ = [
    "HF_KEY_MAP",
    "PUBLISHED_STRIDES",
    "ImportedAST",
    "adapt_token_pos_embed",
    "build_from_checkpoint",
    "init_from_pretrained",
    "deit_state_dict_for_ast",
    "fetch_pretrained",
    "finetune_strides",
    "hf_state_to_ast",
    "is_ssast_checkpoint",
    "load_deit",
    "load_ssast",
    "load_weights",
    "lobe_config",
    "read_hf_checkpoint",
    "read_labels",
    "read_reference_checkpoint",
    "read_ssast_checkpoint",
    "save_ssast_encoder",
    "shipped_labels",
]
