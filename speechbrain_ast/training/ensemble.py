"""Ensembles: the mean of several models' scores (the paper's Ensemble-S
and Ensemble-M).

Authors
 * speechbrain-ast developers
"""

import torch

__all__ = ["ensemble_predictions"]


def ensemble_predictions(predictions):
    """Averages the scores of several models (Ensemble-S / Ensemble-M).

    Arguments
    ---------
    predictions : list of torch.Tensor
        ``[N, C]`` scores (probabilities) of each model, same examples in
        the same order (e.g. the ``scores`` of each run's
        ``test_predictions.pt``).

    Returns
    -------
    torch.Tensor
        ``[N, C]`` mean.

    Example
    -------
    >>> ensemble_predictions([torch.zeros(2, 3), torch.ones(2, 3)])[0]
    tensor([0.5000, 0.5000, 0.5000])
    """
    if not predictions:
        raise ValueError("ensemble_predictions needs at least one [N, C]")
    shapes = {tuple(p.shape) for p in predictions}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(
            f"all predictions must be [N, C] of one shape, got {shapes}"
        )
    return torch.stack([p.float() for p in predictions]).mean(0)
