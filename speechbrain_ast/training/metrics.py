"""Evaluation metrics of the AST paper: accuracy, mAP, mean AUC, d-prime.

Accuracy is SpeechBrain's ``ClassificationStats``. SpeechBrain has no
average precision, ROC AUC nor d-prime: those are ours, torch
implementations computed in float64 and exact (to rounding) against
scikit-learn's ``average_precision_score`` / ``roc_auc_score`` and scipy's
``norm.ppf``, ties included: tied scores form one threshold, as in
scikit-learn. Scores are anything monotone in the model's confidence per
class (logits, probabilities); targets are class indices ``[N]`` or one-/
multi-hot ``[N, C]`` (soft targets count as positive above 0.5).
:func:`evaluation_stats` gives the figures a recipe logs for an evaluation
stage: its mean loss and the classification statistics.

Authors
 * speechbrain-ast developers
"""

import math

import torch

from speechbrain.utils.metric_stats import ClassificationStats

__all__ = [
    "accuracy",
    "average_precision",
    "roc_auc",
    "mean_average_precision",
    "mean_auc",
    "d_prime",
    "classification_stats",
    "evaluation_stats",
]


def _as_2d(scores, targets):
    """Checks shapes; returns float64 scores [N, C] and 0/1 targets [N, C]."""
    scores = torch.as_tensor(scores).detach().cpu().to(torch.float64)
    targets = torch.as_tensor(targets).detach().cpu()
    if scores.dim() != 2:
        raise ValueError(
            f"scores must be [N, C], got shape {tuple(scores.shape)}"
        )
    if targets.dim() == 1:
        if targets.is_floating_point():
            raise ValueError(
                "1-D targets must be integer class indices, got dtype "
                f"{targets.dtype}; pass one-/multi-hot targets as [N, C]"
            )
        targets = torch.nn.functional.one_hot(targets.long(), scores.shape[1])
    if targets.shape != scores.shape:
        raise ValueError(
            f"targets of shape {tuple(targets.shape)} do not match scores "
            f"of shape {tuple(scores.shape)}"
        )
    return scores, (targets.to(torch.float64) > 0.5).to(torch.float64)


def _threshold_counts(score, target):
    """True and false positives at each distinct threshold, descending.

    Tied scores are one threshold: only the last index of each run of equal
    scores (after sorting) is kept, so ties count together as in sklearn.
    """
    order = torch.argsort(score, descending=True, stable=True)
    score, target = score[order], target[order]
    last_of_run = torch.ones_like(score, dtype=torch.bool)
    last_of_run[:-1] = score[1:] != score[:-1]
    tps = torch.cumsum(target, 0)[last_of_run]
    fps = torch.cumsum(1 - target, 0)[last_of_run]
    return tps, fps


def _per_class(scores, targets, area, needs_negatives):
    """``area(tps, fps, n_pos, n_neg)`` of each class's curve over the
    distinct thresholds (:func:`_threshold_counts`): ``[C]`` float64, NaN
    for a class without positives (or, if ``needs_negatives``, without
    negatives)."""
    scores, targets = _as_2d(scores, targets)
    out = torch.full((scores.shape[1],), math.nan, dtype=torch.float64)
    for c in range(scores.shape[1]):
        n_pos = targets[:, c].sum()
        n_neg = targets.shape[0] - n_pos
        if n_pos == 0 or (needs_negatives and n_neg == 0):
            continue
        tps, fps = _threshold_counts(scores[:, c], targets[:, c])
        out[c] = area(tps, fps, n_pos, n_neg)
    return out


def _precision_recall_area(tps, fps, n_pos, n_neg):
    precision = tps / (tps + fps)
    recall = tps / n_pos
    d_recall = torch.diff(recall, prepend=recall.new_zeros(1))
    return (d_recall * precision).sum()


def _roc_area(tps, fps, n_pos, n_neg):
    tpr = torch.cat([tps.new_zeros(1), tps / n_pos])
    fpr = torch.cat([fps.new_zeros(1), fps / n_neg])
    return torch.trapezoid(tpr, fpr)


def accuracy(scores, targets):
    """Top-1 accuracy in [0, 1]: argmax of scores against the target class.

    Arguments
    ---------
    scores : torch.Tensor
        ``[N, C]`` scores (logits or probabilities).
    targets : torch.Tensor
        ``[N]`` class indices, or ``[N, C]`` one-/multi-hot (its argmax is
        the class, as in the reference code).

    Returns
    -------
    float

    Example
    -------
    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    0.5
    """
    scores = torch.as_tensor(scores).detach().cpu()
    targets = torch.as_tensor(targets).detach().cpu()
    if targets.dim() == 2:
        targets = targets.argmax(dim=1)
    if scores.dim() != 2 or targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"accuracy needs scores [N, C] and targets [N] or [N, C], got "
            f"{tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if scores.shape[0] == 0:
        raise ValueError("accuracy of an empty set: no examples were given")
    stats = ClassificationStats()
    stats.append(
        range(len(targets)), scores.argmax(dim=1).tolist(), targets.tolist()
    )
    return float(stats.summarize("accuracy"))


def average_precision(scores, targets):
    """Average precision per class, as sklearn's average_precision_score.

    AP = sum over thresholds of (R_k - R_{k-1}) * P_k (no interpolation).

    Arguments
    ---------
    scores : torch.Tensor
        ``[N, C]`` scores.
    targets : torch.Tensor
        ``[N]`` class indices or ``[N, C]`` multi-hot.

    Returns
    -------
    torch.Tensor
        ``[C]`` float64; NaN for classes without positives.

    Example
    -------
    >>> s = torch.tensor([[0.9], [0.8], [0.3], [0.1]])
    >>> t = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    >>> round(average_precision(s, t)[0].item(), 4)  # (1 + 2/3) / 2
    0.8333
    """
    return _per_class(scores, targets, _precision_recall_area, False)


def roc_auc(scores, targets):
    """Area under the ROC curve per class, as sklearn's roc_auc_score.

    Trapezoids over the distinct thresholds, so a tie between a positive
    and a negative counts one half.

    Arguments
    ---------
    scores : torch.Tensor
        ``[N, C]`` scores.
    targets : torch.Tensor
        ``[N]`` class indices or ``[N, C]`` multi-hot.

    Returns
    -------
    torch.Tensor
        ``[C]`` float64; NaN for classes with only positives or only
        negatives (the AUC is undefined there).

    Example
    -------
    >>> s = torch.tensor([[0.9], [0.5], [0.5], [0.1]])
    >>> t = torch.tensor([[1.0], [1.0], [0.0], [0.0]])
    >>> roc_auc(s, t)[0].item()  # 3 of 4 pairs right, one tie = 1/2
    0.875
    """
    return _per_class(scores, targets, _roc_area, True)


def _nanmean(values, what):
    valid = values[~torch.isnan(values)]
    if valid.numel() == 0:
        raise ValueError(
            f"{what} is undefined: no class has both positive and negative "
            "examples in the evaluated set; evaluate on more data"
        )
    return valid.mean().item()


def mean_average_precision(scores, targets):
    """mAP: average precision averaged over the classes that have positives.

    Example
    -------
    >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.7]])
    >>> mean_average_precision(s, torch.tensor([0, 1]))
    1.0
    """
    return _nanmean(average_precision(scores, targets), "mAP")


def mean_auc(scores, targets):
    """Mean ROC AUC over the classes with positives and negatives.

    Example
    -------
    >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.7]])
    >>> mean_auc(s, torch.tensor([0, 1]))
    1.0
    """
    return _nanmean(roc_auc(scores, targets), "mean AUC")


def d_prime(auc):
    """d-prime from an AUC: ``sqrt(2) * Phi^-1(auc)`` (scipy's norm.ppf).

    Arguments
    ---------
    auc : float or torch.Tensor
        AUC value(s) in [0, 1]; 1 gives inf, 0.5 gives 0.

    Returns
    -------
    float or torch.Tensor (float64), matching the input.

    Example
    -------
    >>> round(d_prime(0.9), 6)
    1.812388
    """
    value = torch.as_tensor(auc, dtype=torch.float64)
    result = math.sqrt(2.0) * torch.special.ndtri(value)
    return result.item() if value.dim() == 0 else result


def classification_stats(scores, targets, multi_label=False):
    """The per-epoch statistics the recipes log.

    Arguments
    ---------
    scores : torch.Tensor
        ``[N, C]`` scores.
    targets : torch.Tensor
        ``[N]`` class indices or ``[N, C]`` one-/multi-hot.
    multi_label : bool
        False: ``{"acc"}``; True: ``{"mAP", "mAUC", "dprime", "acc"}``, with
        d-prime from the mean AUC as the reference code computes it.

    Returns
    -------
    dict of str to float

    Example
    -------
    >>> s = torch.tensor([[0.9, 0.1], [0.2, 0.7], [0.6, 0.3]])
    >>> t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> stats = classification_stats(s, t, multi_label=True)
    >>> sorted(stats), round(stats["acc"], 4)
    (['acc', 'dprime', 'mAP', 'mAUC'], 0.6667)
    """
    stats = {"acc": accuracy(scores, targets)}
    if multi_label:
        auc = mean_auc(scores, targets)
        stats = {
            "mAP": mean_average_precision(scores, targets),
            "mAUC": auc,
            "dprime": d_prime(auc),
            "acc": stats["acc"],
        }
    return stats


def evaluation_stats(result, multi_label=False):
    """The statistics the recipes log for an evaluation stage: the mean
    loss, then :func:`classification_stats` of the scores.

    Arguments
    ---------
    result : dict
        With ``loss`` (float), ``scores`` ``[N, C]`` and ``targets``, as
        :meth:`speechbrain_ast.training.ddp.DistributedEvaluation.gather`
        returns.
    multi_label : bool
        As :func:`classification_stats`.

    Returns
    -------
    dict of str to float
        ``loss`` first.

    Example
    -------
    >>> result = {
    ...     "loss": 0.25,
    ...     "scores": torch.tensor([[0.9, 0.1], [0.2, 0.7]]),
    ...     "targets": torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
    ... }
    >>> evaluation_stats(result)
    {'loss': 0.25, 'acc': 0.5}
    """
    stats = {"loss": result["loss"]}
    stats.update(
        classification_stats(result["scores"], result["targets"], multi_label)
    )
    return stats
