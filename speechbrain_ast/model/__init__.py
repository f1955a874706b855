"""The AST lobe: patch embedding, timm's transformer blocks, the pooled
embedding and the classification head (``lobe``), and the positional
embedding's adaptation to other patch grids (``pos_embed``)."""

from speechbrain_ast.model.lobe import AST, ASTHead
from speechbrain_ast.model.pos_embed import adapt_pos_embed

__all__ = ["AST", "ASTHead", "adapt_pos_embed"]
