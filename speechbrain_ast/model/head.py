"""AST's classification head: LayerNorm and Linear on the lobe's pooled
embedding (:class:`ASTHead`), with the reference's ``mlp_head`` keys.

Authors
 * speechbrain-ast developers
"""

import torch.nn as nn

__all__ = ["ASTHead"]


class ASTHead(nn.Sequential):
    """AST's classification head: LayerNorm + Linear on the pooled embedding.

    Keys ``0.*`` (LayerNorm) and ``1.*`` (Linear) equal the reference
    ``mlp_head.*``. It returns logits: sigmoid for multi-label tasks,
    softmax / cross-entropy for single-label ones.

    Arguments
    ---------
    embed_dim : int
        Width of the embedding.
    n_classes : int
        Number of classes.
    norm_eps : float
        LayerNorm epsilon (1e-5 in the reference, PyTorch's default).

    Example
    -------
    >>> import torch
    >>> head = ASTHead(64, 10)
    >>> head(torch.randn(3, 64)).shape
    torch.Size([3, 10])
    """

    def __init__(self, embed_dim, n_classes, norm_eps=1e-5):
        if n_classes < 1 or embed_dim < 1:
            raise ValueError(
                "ASTHead needs embed_dim >= 1 and n_classes >= 1; got "
                f"embed_dim={embed_dim}, n_classes={n_classes}."
            )
        super().__init__(
            nn.LayerNorm(embed_dim, eps=norm_eps),
            nn.Linear(embed_dim, n_classes),
        )
        # the constructor arguments: what model folders rebuild it from
        self.config = dict(
            embed_dim=int(embed_dim),
            n_classes=int(n_classes),
            norm_eps=float(norm_eps),
        )
