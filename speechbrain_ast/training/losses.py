"""The classification losses the recipes train with, on soft targets
(one-hot, mixed by mixup, or multi-hot), each with the scores it implies:
cross-entropy with softmax scores, binary cross-entropy with sigmoid
scores (the recipes' ``loss: ce`` / ``loss: bce``).

Authors
 * speechbrain-ast developers
"""

import torch
import torch.nn.functional as F

__all__ = [
    "classification_loss",
]


def classification_loss(logits, targets, loss="ce"):
    """The mean loss of a batch and its scores, both in float32.

    Arguments
    ---------
    logits : torch.Tensor
        ``[B, C]`` (any float precision).
    targets : torch.Tensor
        ``[B, C]`` soft targets: one-hot, mixed or multi-hot.
    loss : str
        ``"ce"``: PyTorch's cross-entropy with class probabilities as
        targets, softmax scores; ``"bce"``: binary cross-entropy on each
        class, sigmoid scores.

    Returns
    -------
    loss : torch.Tensor
        0-d, the mean over the batch.
    scores : torch.Tensor
        ``[B, C]`` probabilities.

    Raises
    ------
    ValueError
        For a ``loss`` other than ``ce`` or ``bce``.

    Example
    -------
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    >>> loss, scores = classification_loss(logits, targets, "ce")
    >>> round(loss.item(), 4), scores.argmax(-1).tolist()
    (0.6269, [0, 1])
    >>> loss, scores = classification_loss(logits, targets, "bce")
    >>> round(loss.item(), 4), [round(s, 2) for s in scores[0].tolist()]
    (0.66, [0.88, 0.5])
    """
    logits = logits.float()
    if loss == "ce":  # soft targets: one-hot or mixed
        return F.cross_entropy(logits, targets), torch.softmax(logits, dim=-1)
    if loss == "bce":
        return (
            F.binary_cross_entropy_with_logits(logits, targets),
            torch.sigmoid(logits),
        )
    raise ValueError(f"loss is ce or bce, not {loss!r}")
