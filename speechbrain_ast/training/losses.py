"""The recipes' classification losses and the scores that go with them:
soft-target cross-entropy with softmax scores (ESC-50), or binary
cross-entropy with sigmoid scores (AudioSet; Speech Commands as in the
paper), chosen by the yaml's ``loss: ce | bce``.

Authors
 * speechbrain-ast developers
"""

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "classification_loss", "class_scores"]

LOSSES = ("ce", "bce")


def _check(loss):
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


def classification_loss(logits, targets, loss="ce"):
    """Mean loss of a batch.

    Arguments
    ---------
    logits : torch.Tensor
        ``[B, C]``.
    targets : torch.Tensor
        ``[B, C]`` float targets: one-hot, mixed (mixup) or multi-hot.
    loss : str
        ``"ce"``: cross-entropy with soft targets,
        ``-sum(targets * log_softmax(logits))``; ``"bce"``: binary
        cross-entropy with logits, averaged over classes and examples.

    Returns
    -------
    torch.Tensor
        0-d.

    Example
    -------
    >>> logits = torch.tensor([[2.0, 0.0]])
    >>> targets = torch.tensor([[1.0, 0.0]])
    >>> round(classification_loss(logits, targets, "ce").item(), 4)
    0.1269
    >>> round(classification_loss(logits, targets, "bce").item(), 4)
    0.41
    """
    _check(loss)
    logits = logits.float()
    if loss == "ce":
        return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    return F.binary_cross_entropy_with_logits(logits, targets)


def class_scores(logits, loss="ce"):
    """Per-class scores that match the loss: softmax for ``"ce"``, sigmoid
    for ``"bce"``.

    Example
    -------
    >>> class_scores(torch.zeros(1, 2), "ce")
    tensor([[0.5000, 0.5000]])
    >>> class_scores(torch.zeros(1, 2), "bce")
    tensor([[0.5000, 0.5000]])
    """
    _check(loss)
    if loss == "ce":
        return torch.softmax(logits.float(), dim=-1)
    return torch.sigmoid(logits.float())
