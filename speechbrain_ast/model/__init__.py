"""The AST model: the lobe (``lobe``: patch embedding, timm's transformer
blocks, the pooled embedding) built from its parts (``layers``), the
classification head (``head``), and the positional embedding's adaptation
to other patch grids (``pos_embed``)."""

from speechbrain_ast.model.head import ASTHead
from speechbrain_ast.model.lobe import AST
from speechbrain_ast.model.pos_embed import adapt_pos_embed

__all__ = ["AST", "ASTHead", "adapt_pos_embed"]
